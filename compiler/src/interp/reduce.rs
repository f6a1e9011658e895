//! Reductions (kept axes of extent 1) and inclusive scans.
//!
//! Decisions beyond prim.rs: `Sum`, `Prod`, `Max`, `Min` apply to f32 and i32 (i32 wraps),
//! `Mean` to f32 only, `Max`/`Min` also to bool (any/all); `ArgMax`/`ArgMin` to any dtype.
//! Elements are combined in row-major order. An empty reduction gives the identity (0 for
//! `Sum`, 1 for `Prod`, −∞/+∞ for f32 `Max`/`Min`, false/true for bool), NaN for `Mean`
//! (0/0), and is an error for i32 `Max`/`Min` and for `ArgMax`/`ArgMin`. NaN propagates
//! through `Max`/`Min`, and `ArgMax`/`ArgMin` return the first NaN's index when there is one
//! (PyTorch's behaviour).

use super::{ErrorKind, Res, Value, alloc, numel, strides, wrap_i32};
use crate::prim::{DType, ReduceOp, ScanOp};

pub(super) fn reduce(op: ReduceOp, axes: &[usize], x: &Value) -> Res<Value> {
    let rank = x.shape.len();
    if axes.windows(2).any(|w| w[0] >= w[1]) || axes.iter().any(|&a| a >= rank) {
        return Err(ErrorKind::Attribute(format!(
            "axes {axes:?} must be sorted, distinct and below rank {rank}"
        )));
    }
    let arg = matches!(op, ReduceOp::ArgMax | ReduceOp::ArgMin);
    if arg && axes.len() != 1 {
        return Err(ErrorKind::Attribute(format!("`{}` takes exactly one axis, not {axes:?}", op.name())));
    }
    let dtype = x.dtype;
    let allowed = match op {
        ReduceOp::Sum | ReduceOp::Prod => dtype != DType::Bool,
        ReduceOp::Mean => dtype == DType::F32,
        ReduceOp::Max | ReduceOp::Min | ReduceOp::ArgMax | ReduceOp::ArgMin => true,
    };
    if !allowed {
        return Err(ErrorKind::DType(format!("`{}` does not apply to {dtype}", op.name())));
    }
    let mut shape = x.shape.clone();
    let mut count: usize = 1;
    for &a in axes {
        count *= shape[a];
        shape[a] = 1;
    }
    let n_out = numel(&shape)?;
    if count == 0
        && n_out > 0
        && (arg || (dtype == DType::I32 && matches!(op, ReduceOp::Max | ReduceOp::Min)))
    {
        return Err(ErrorKind::Shape(format!("`{}` over an empty axis", op.name())));
    }
    // The output offset of each input element: its index with the reduced coordinates zeroed.
    let mut out_strides = strides(&shape);
    for &a in axes {
        out_strides[a] = 0;
    }
    let in_axis_stride = if arg { strides(&x.shape)[axes[0]] } else { 0 };
    let in_axis_extent = if arg { x.shape[axes[0]] } else { 1 };

    let init = match (op, dtype) {
        (ReduceOp::Sum | ReduceOp::Mean | ReduceOp::ArgMax | ReduceOp::ArgMin, _) => 0.0,
        (ReduceOp::Prod, _) => 1.0,
        (ReduceOp::Max, DType::Bool) => 0.0,
        (ReduceOp::Min, DType::Bool) => 1.0,
        (ReduceOp::Max, _) => f64::NEG_INFINITY,
        (ReduceOp::Min, _) => f64::INFINITY,
    };
    let mut acc = alloc(n_out, init)?;
    // For ArgMax/ArgMin: the best value so far per output (None before the first element).
    let mut best: Vec<Option<f64>> = if arg { vec![None; n_out] } else { Vec::new() };
    let out_shape_full = &x.shape;
    for (i, &v) in x.data.iter().enumerate() {
        let o = super::offset_of(i, out_shape_full, &out_strides);
        let a = acc[o];
        acc[o] = match op {
            ReduceOp::Sum | ReduceOp::Mean if dtype == DType::I32 => wrap_i32(a as i64 + v as i64),
            ReduceOp::Sum | ReduceOp::Mean => a + v,
            ReduceOp::Prod if dtype == DType::I32 => wrap_i32((a as i64).wrapping_mul(v as i64)),
            ReduceOp::Prod => a * v,
            ReduceOp::Max => nan_or(a, v, f64::max),
            ReduceOp::Min => nan_or(a, v, f64::min),
            ReduceOp::ArgMax | ReduceOp::ArgMin => {
                let better = match best[o] {
                    None => true,
                    Some(b) if b.is_nan() => false,
                    Some(_) if v.is_nan() => true,
                    Some(b) if op == ReduceOp::ArgMax => v > b,
                    Some(b) => v < b,
                };
                if better {
                    best[o] = Some(v);
                    ((i / in_axis_stride) % in_axis_extent) as f64
                } else {
                    a
                }
            }
        };
    }
    if op == ReduceOp::Mean {
        for a in &mut acc {
            *a /= count as f64;
        }
    }
    let out_dtype = if arg { DType::I32 } else { dtype };
    Ok(Value { dtype: out_dtype, shape, data: acc })
}

/// `f(a, b)`, or NaN when either is NaN.
fn nan_or(a: f64, b: f64, f: fn(f64, f64) -> f64) -> f64 {
    if a.is_nan() || b.is_nan() { f64::NAN } else { f(a, b) }
}

/// Inclusive running sum or product along `axis` (f32 or i32; i32 wraps).
pub(super) fn scan(op: ScanOp, axis: usize, x: &Value) -> Res<Value> {
    if axis >= x.shape.len() {
        return Err(ErrorKind::Attribute(format!("axis {axis} of shape {:?}", x.shape)));
    }
    super::want_dtype(x, &[DType::F32, DType::I32], "a scan's operand")?;
    let extent = x.shape[axis];
    let inner: usize = x.shape[axis + 1..].iter().product();
    let outer: usize = x.shape[..axis].iter().product();
    let int = x.dtype == DType::I32;
    let mut data = x.data.clone();
    for o in 0..outer {
        for i in 0..inner {
            for k in 1..extent {
                let at = (o * extent + k) * inner + i;
                let (prev, v) = (data[at - inner], data[at]);
                data[at] = match (op, int) {
                    (ScanOp::Sum, false) => prev + v,
                    (ScanOp::Prod, false) => prev * v,
                    (ScanOp::Sum, true) => wrap_i32(prev as i64 + v as i64),
                    (ScanOp::Prod, true) => wrap_i32((prev as i64).wrapping_mul(v as i64)),
                };
            }
        }
    }
    Ok(Value { dtype: x.dtype, shape: x.shape.clone(), data })
}
