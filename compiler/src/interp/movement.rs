//! Movement ops: reshape, permute, broadcast, slice, pad, concat, gather and its adjoint
//! scatter-add. They keep the dtype of their (data) operand.
//!
//! Decisions beyond prim.rs: a `Slice` may not read past its axis (an empty slice reads
//! nothing and is always in range); a `Pad` value must be representable in the dtype; a
//! `Gather` index must lie in `[0, extent)` (no negative wrap-around); `ScatterAdd` adds,
//! into each output slot, the `src` elements that name it in increasing position order, so
//! it equals a per-output loop over the index tensor and is deterministic.

use super::{ErrorKind, Res, Value, alloc, numel, offset_of, representable, strides, want_dtype};
use crate::prim::DType;

pub(super) fn reshape(x: &Value, shape: &[usize]) -> Res<Value> {
    if numel(shape)? != x.numel() {
        return Err(ErrorKind::Shape(format!("cannot reshape {:?} to {shape:?}", x.shape)));
    }
    Ok(Value { dtype: x.dtype, shape: shape.to_vec(), data: x.data.clone() })
}

pub(super) fn permute(x: &Value, perm: &[usize]) -> Res<Value> {
    let rank = x.shape.len();
    let mut seen = vec![false; rank];
    for &p in perm {
        if p >= rank || std::mem::replace(&mut seen[p], true) {
            return Err(ErrorKind::Attribute(format!("{perm:?} is not a permutation of {rank} axes")));
        }
    }
    if perm.len() != rank {
        return Err(ErrorKind::Attribute(format!("{perm:?} is not a permutation of {rank} axes")));
    }
    let in_strides = strides(&x.shape);
    let shape: Vec<usize> = perm.iter().map(|&p| x.shape[p]).collect();
    let read: Vec<usize> = perm.iter().map(|&p| in_strides[p]).collect();
    let data = (0..x.numel()).map(|i| x.data[offset_of(i, &shape, &read)]).collect();
    Ok(Value { dtype: x.dtype, shape, data })
}

pub(super) fn broadcast(x: &Value, shape: &[usize]) -> Res<Value> {
    let ok = x.shape.len() == shape.len() && x.shape.iter().zip(shape).all(|(&e, &o)| e == o || e == 1);
    if !ok {
        return Err(ErrorKind::Shape(format!("cannot broadcast {:?} to {shape:?}", x.shape)));
    }
    let read = super::elementwise::broadcast_strides(&x.shape, shape);
    let mut data = alloc(numel(shape)?, 0.0)?;
    for (i, d) in data.iter_mut().enumerate() {
        *d = x.data[offset_of(i, shape, &read)];
    }
    Ok(Value { dtype: x.dtype, shape: shape.to_vec(), data })
}

pub(super) fn slice(x: &Value, axis: usize, start: usize, step: usize, shape: &[usize]) -> Res<Value> {
    let rank = x.shape.len();
    if axis >= rank || step == 0 {
        return Err(ErrorKind::Attribute(format!("axis {axis} (rank {rank}), step {step} (must be ≥ 1)")));
    }
    if shape.len() != rank || (0..rank).any(|i| i != axis && shape[i] != x.shape[i]) {
        return Err(ErrorKind::Shape(format!(
            "a slice of {:?} along axis {axis} cannot be {shape:?}",
            x.shape
        )));
    }
    let n = shape[axis];
    if n > 0 {
        let last = (n - 1).checked_mul(step).and_then(|l| l.checked_add(start));
        if last.is_none_or(|l| l >= x.shape[axis]) {
            return Err(ErrorKind::Shape(format!(
                "{n} elements from {start} by {step} overrun an axis of extent {}",
                x.shape[axis]
            )));
        }
    }
    let (outer, inner, extent) = split(&x.shape, axis);
    let mut data = alloc(numel(shape)?, 0.0)?;
    for o in 0..outer {
        for k in 0..n {
            let src = (o * extent + start + k * step) * inner;
            let dst = (o * n + k) * inner;
            data[dst..dst + inner].copy_from_slice(&x.data[src..src + inner]);
        }
    }
    Ok(Value { dtype: x.dtype, shape: shape.to_vec(), data })
}

pub(super) fn pad(x: &Value, pads: &[(usize, usize)], value: f64) -> Res<Value> {
    if pads.len() != x.shape.len() {
        return Err(ErrorKind::Attribute(format!("{} pads for a rank-{} tensor", pads.len(), x.shape.len())));
    }
    representable(value, x.dtype)?;
    let mut shape = Vec::with_capacity(pads.len());
    for (&e, &(before, after)) in x.shape.iter().zip(pads) {
        let padded = e.checked_add(before).and_then(|p| p.checked_add(after));
        shape.push(padded.ok_or_else(|| ErrorKind::TooLarge(format!("padding {pads:?}")))?);
    }
    let out_strides = strides(&shape);
    let base: usize = pads.iter().zip(&out_strides).map(|(&(before, _), &s)| before * s).sum();
    let mut data = alloc(numel(&shape)?, value)?;
    for (i, &v) in x.data.iter().enumerate() {
        data[base + offset_of(i, &x.shape, &out_strides)] = v;
    }
    Ok(Value { dtype: x.dtype, shape, data })
}

pub(super) fn concat(inputs: &[&Value], axis: usize) -> Res<Value> {
    let first = inputs[0];
    let rank = first.shape.len();
    if axis >= rank {
        return Err(ErrorKind::Attribute(format!("axis {axis} of a rank-{rank} tensor")));
    }
    let mut total = 0usize;
    for v in inputs {
        if v.dtype != first.dtype {
            return Err(ErrorKind::DType(format!("concat of {} and {}", first.dtype, v.dtype)));
        }
        if v.shape.len() != rank || (0..rank).any(|i| i != axis && v.shape[i] != first.shape[i]) {
            return Err(ErrorKind::Shape(format!(
                "concat of {:?} and {:?} along {axis}",
                first.shape, v.shape
            )));
        }
        total += v.shape[axis];
    }
    let mut shape = first.shape.clone();
    shape[axis] = total;
    let (outer, inner, _) = split(&shape, axis);
    let mut data = Vec::new();
    data.try_reserve_exact(numel(&shape)?)
        .map_err(|_| ErrorKind::TooLarge(format!("concat to {shape:?}")))?;
    for o in 0..outer {
        for v in inputs {
            let chunk = v.shape[axis] * inner;
            data.extend_from_slice(&v.data[o * chunk..(o + 1) * chunk]);
        }
    }
    Ok(Value { dtype: first.dtype, shape, data })
}

/// `out[o, j, i] = x[o, idx[j], i]`, with `o` the axes before `axis`, `i` those after and
/// `j` every index of `idx` (row-major).
pub(super) fn gather(x: &Value, idx: &Value, axis: usize) -> Res<Value> {
    want_dtype(idx, &[DType::I32], "a gather index")?;
    if axis >= x.shape.len() {
        return Err(ErrorKind::Attribute(format!("axis {axis} of shape {:?}", x.shape)));
    }
    let (outer, inner, extent) = split(&x.shape, axis);
    let positions = checked_indices(idx, extent)?;
    let shape = taken_shape(&x.shape, axis, &idx.shape);
    let j_len = positions.len();
    let mut data = alloc(numel(&shape)?, 0.0)?;
    for o in 0..outer {
        for (j, &k) in positions.iter().enumerate() {
            let src = (o * extent + k) * inner;
            let dst = (o * j_len + j) * inner;
            data[dst..dst + inner].copy_from_slice(&x.data[src..src + inner]);
        }
    }
    Ok(Value { dtype: x.dtype, shape, data })
}

/// The adjoint of [`gather`]: inputs `(idx, src)`, `out[o, idx[j], i] += src[o, j, i]`.
pub(super) fn scatter_add(idx: &Value, src: &Value, axis: usize, shape: &[usize]) -> Res<Value> {
    want_dtype(idx, &[DType::I32], "a scatter index")?;
    want_dtype(src, &[DType::F32, DType::I32], "scatter_add's source")?;
    if axis >= shape.len() {
        return Err(ErrorKind::Attribute(format!("axis {axis} of output shape {shape:?}")));
    }
    let (outer, inner, extent) = split(shape, axis);
    let positions = checked_indices(idx, extent)?;
    let expected = taken_shape(shape, axis, &idx.shape);
    if src.shape != expected {
        return Err(ErrorKind::Shape(format!(
            "scatter_add into {shape:?} along {axis} with indices {:?} needs a source of shape {expected:?}, not {:?}",
            idx.shape, src.shape
        )));
    }
    let int = src.dtype == DType::I32;
    let j_len = positions.len();
    let mut data = alloc(numel(shape)?, 0.0)?;
    for o in 0..outer {
        for (j, &k) in positions.iter().enumerate() {
            let from = (o * j_len + j) * inner;
            let to = (o * extent + k) * inner;
            for i in 0..inner {
                let (a, b) = (data[to + i], src.data[from + i]);
                data[to + i] = if int { super::wrap_i32(a as i64 + b as i64) } else { a + b };
            }
        }
    }
    Ok(Value { dtype: src.dtype, shape: shape.to_vec(), data })
}

/// `x.shape[..axis] ++ idx_shape ++ x.shape[axis + 1..]`.
fn taken_shape(x: &[usize], axis: usize, idx: &[usize]) -> Vec<usize> {
    let mut shape = x[..axis].to_vec();
    shape.extend_from_slice(idx);
    shape.extend_from_slice(&x[axis + 1..]);
    shape
}

/// The index tensor's entries as positions, each checked to lie in `[0, extent)`.
fn checked_indices(idx: &Value, extent: usize) -> Res<Vec<usize>> {
    idx.data
        .iter()
        .map(|&k| match usize::try_from(k as i64) {
            Ok(k) if k < extent => Ok(k),
            _ => Err(ErrorKind::IndexOutOfRange { index: k as i64, extent }),
        })
        .collect()
}

/// `(outer, inner, extent)`: the element counts before and after `axis`, and its extent.
pub(super) fn split(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    (shape[..axis].iter().product(), shape[axis + 1..].iter().product(), shape[axis])
}
