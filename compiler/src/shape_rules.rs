//! The shape rule of every primitive: given the input types (and, for ops whose output shape
//! is not a function of their inputs, the node's declared type), the output type or why not.
//!
//! One exhaustive `match` over `Prim`. The rules compare dims symbolically; the elaborator
//! turns a [`RuleError`] into a diagnostic with spans.

use crate::dim::{Dim, DivError};
use crate::prim::{Arity, BinaryOp, ConvGeometry, DType, Prim, ReduceOp, UnaryOp, Window};
use crate::types::{TensorType, shape_text};

/// Why an op cannot apply to its inputs, in words about shapes (no spans here).
#[derive(Clone, Debug, PartialEq)]
pub struct RuleError {
    pub message: String,
    /// A concrete suggestion, when one exists.
    pub help: Option<String>,
    /// The element types are wrong (E0122), not the shapes (E0106).
    pub dtype: bool,
}

fn fail<T>(message: impl Into<String>) -> Result<T, RuleError> {
    Err(RuleError { message: message.into(), help: None, dtype: false })
}

/// An element-type mistake, with the conversion that fixes it.
fn fail_dtype<T>(message: impl Into<String>, help: &str) -> Result<T, RuleError> {
    Err(RuleError { message: message.into(), help: Some(help.to_string()), dtype: true })
}

fn overflow(_: impl std::fmt::Debug) -> RuleError {
    RuleError { message: "a dimension overflows 64-bit integers".into(), help: None, dtype: false }
}

fn div_err(e: DivError) -> RuleError {
    match e {
        DivError::ByZero => {
            RuleError { message: "a dimension divides by zero".into(), help: None, dtype: false }
        }
        DivError::Overflow => overflow(e),
    }
}

/// The output type of `prim` applied to `inputs`. `declared` is the node's type for the ops
/// that take their shape from the node (see `prim.rs`); it is validated against the inputs.
pub fn infer(
    prim: &Prim,
    inputs: &[&TensorType],
    declared: Option<&TensorType>,
) -> Result<TensorType, RuleError> {
    match prim.arity() {
        Arity::Exactly(n) if inputs.len() != n => {
            return fail(format!("`{prim}` takes {n} input(s), found {}", inputs.len()));
        }
        Arity::AtLeast(n) if inputs.len() < n => {
            return fail(format!("`{prim}` takes at least {n} input(s), found {}", inputs.len()));
        }
        _ => {}
    }
    let need_declared = || {
        declared.cloned().ok_or_else(|| RuleError {
            message: format!("`{prim}` needs a declared type"),
            help: None,
            dtype: false,
        })
    };
    match prim {
        Prim::Input { .. } | Prim::Param { .. } | Prim::Buffer { .. } | Prim::Fill { .. } => need_declared(),
        Prim::Iota { axis } => {
            let t = need_declared()?;
            if *axis >= t.rank() {
                return fail(format!("iota axis {axis} is out of range for rank {}", t.rank()));
            }
            Ok(t)
        }
        Prim::Random { .. } => {
            let t = need_declared()?;
            if t.dtype != DType::F32 {
                return fail_dtype("random draws are f32", "draw f32 values and convert with to_int(..)");
            }
            Ok(t)
        }
        Prim::Unary(op) => {
            let x = inputs[0];
            match op {
                UnaryOp::Not => expect_dtype(x, DType::Bool, "`!`")?,
                UnaryOp::Neg | UnaryOp::Abs | UnaryOp::Sign => expect_numeric(x, op.name())?,
                _ => expect_dtype(x, DType::F32, op.name())?,
            }
            Ok(x.clone())
        }
        Prim::Binary(op) => {
            let (a, b) = (inputs[0], inputs[1]);
            if a.dtype != b.dtype {
                return fail_dtype(
                    format!("`{}` of {} and {}: the element types differ", op.name(), a.dtype, b.dtype),
                    "convert one side with to_float(..) or to_int(..)",
                );
            }
            let dtype = match op {
                BinaryOp::And | BinaryOp::Or => {
                    expect_dtype(a, DType::Bool, op.name())?;
                    DType::Bool
                }
                op if op.is_comparison() => DType::Bool,
                _ => {
                    expect_numeric(a, op.name())?;
                    a.dtype
                }
            };
            Ok(TensorType::new(dtype, broadcast_shapes(&a.shape, &b.shape)?))
        }
        Prim::Select => {
            let (c, a, b) = (inputs[0], inputs[1], inputs[2]);
            expect_dtype(c, DType::Bool, "select's condition")?;
            if a.dtype != b.dtype {
                return fail_dtype(
                    "select's branches have different element types",
                    "convert one branch with to_float(..)",
                );
            }
            let shape = broadcast_shapes(&broadcast_shapes(&c.shape, &a.shape)?, &b.shape)?;
            Ok(TensorType::new(a.dtype, shape))
        }
        Prim::Cast { to } => Ok(TensorType::new(*to, inputs[0].shape.clone())),
        Prim::StopGrad => Ok(inputs[0].clone()),
        Prim::Grad => {
            let (f, x) = (inputs[0], inputs[1]);
            if f.rank() != 0 {
                return fail(format!("grad needs a scalar function, found {f}"));
            }
            if x.dtype != DType::F32 || f.dtype != DType::F32 {
                return fail_dtype(
                    "grad is defined for f32 values only",
                    "differentiate with respect to a float tensor",
                );
            }
            Ok(x.clone())
        }
        Prim::Reduce { op, axes } => {
            let x = inputs[0];
            check_axes(axes, x.rank())?;
            let mut shape = x.shape.clone();
            for &a in axes {
                shape[a] = Dim::constant(1);
            }
            let dtype = match op {
                ReduceOp::ArgMax | ReduceOp::ArgMin => {
                    if axes.len() != 1 {
                        return fail(format!("{} takes exactly one axis", op.name()));
                    }
                    DType::I32
                }
                ReduceOp::Mean => {
                    expect_dtype(x, DType::F32, "mean")?;
                    DType::F32
                }
                ReduceOp::Sum | ReduceOp::Max | ReduceOp::Min | ReduceOp::Prod => x.dtype,
            };
            Ok(TensorType::new(dtype, shape))
        }
        Prim::Scan { axis, .. } => {
            check_axes(&[*axis], inputs[0].rank())?;
            Ok(inputs[0].clone())
        }
        Prim::Reshape => {
            let t = need_declared()?;
            let (from, to) = (inputs[0].numel().map_err(overflow)?, t.numel().map_err(overflow)?);
            if from != to {
                return Err(RuleError {
                    message: format!(
                        "cannot reshape {} ({from} elements) to {} ({to} elements)",
                        shape_text(&inputs[0].shape),
                        shape_text(&t.shape)
                    ),
                    help: None,
                    dtype: false,
                });
            }
            Ok(TensorType::new(inputs[0].dtype, t.shape))
        }
        Prim::Permute { perm } => {
            let x = inputs[0];
            let mut seen = vec![false; x.rank()];
            if perm.len() != x.rank()
                || perm.iter().any(|&p| p >= x.rank() || std::mem::replace(&mut seen[p], true))
            {
                return fail(format!("{perm:?} is not a permutation of the {} axes", x.rank()));
            }
            Ok(TensorType::new(x.dtype, perm.iter().map(|&p| x.shape[p].clone()).collect()))
        }
        Prim::Broadcast => {
            let t = need_declared()?;
            let x = inputs[0];
            if x.rank() != t.rank() {
                return fail(format!("cannot broadcast rank {} to rank {}", x.rank(), t.rank()));
            }
            for (a, b) in x.shape.iter().zip(&t.shape) {
                if a != b && a.as_const() != Some(1) {
                    return fail(format!(
                        "cannot broadcast {} to {}",
                        shape_text(&x.shape),
                        shape_text(&t.shape)
                    ));
                }
            }
            Ok(TensorType::new(x.dtype, t.shape))
        }
        Prim::Slice { axis, start, step } => {
            let t = need_declared()?;
            let x = inputs[0];
            check_axes(&[*axis], x.rank())?;
            if *step == 0 {
                return fail("a slice step must be at least 1");
            }
            if let (Some(n), Some(len)) = (x.shape[*axis].as_const(), t.shape[*axis].as_const()) {
                let last = (*start as i64) + (len - 1).max(0) * (*step as i64);
                if len > 0 && last >= n {
                    return fail(format!("slice reaches index {last} of an axis of extent {n}"));
                }
            }
            Ok(TensorType::new(x.dtype, t.shape))
        }
        Prim::Pad { pads, .. } => {
            let x = inputs[0];
            if pads.len() != x.rank() {
                return fail("pad needs one (before, after) pair per axis");
            }
            let shape = x
                .shape
                .iter()
                .zip(pads)
                .map(|(d, (a, b))| d.add(&Dim::constant((a + b) as i64)))
                .collect::<Result<_, _>>()
                .map_err(overflow)?;
            Ok(TensorType::new(x.dtype, shape))
        }
        Prim::Concat { axis } => {
            let first = inputs[0];
            check_axes(&[*axis], first.rank())?;
            let mut total = Dim::constant(0);
            for (i, x) in inputs.iter().enumerate() {
                if x.rank() != first.rank() || x.dtype != first.dtype {
                    return fail(format!("concat input {i} is {x}, input 0 is {first}"));
                }
                for (k, (a, b)) in first.shape.iter().zip(&x.shape).enumerate() {
                    if k != *axis && a != b {
                        return fail(format!(
                            "concat along axis {axis} needs every other axis equal: input 0 is {}, input {i} is {}",
                            shape_text(&first.shape),
                            shape_text(&x.shape)
                        ));
                    }
                }
                total = total.add(&x.shape[*axis]).map_err(overflow)?;
            }
            let mut shape = first.shape.clone();
            shape[*axis] = total;
            Ok(TensorType::new(first.dtype, shape))
        }
        Prim::Gather { axis } => {
            let (x, idx) = (inputs[0], inputs[1]);
            check_axes(&[*axis], x.rank())?;
            expect_dtype(idx, DType::I32, "an index")?;
            let mut shape = x.shape[..*axis].to_vec();
            shape.extend(idx.shape.iter().cloned());
            shape.extend(x.shape[axis + 1..].iter().cloned());
            Ok(TensorType::new(x.dtype, shape))
        }
        Prim::ScatterAdd { axis } => {
            let t = need_declared()?;
            let (idx, src) = (inputs[0], inputs[1]);
            expect_dtype(idx, DType::I32, "an index")?;
            check_axes(&[*axis], t.rank())?;
            let mut expect = t.shape[..*axis].to_vec();
            expect.extend(idx.shape.iter().cloned());
            expect.extend(t.shape[axis + 1..].iter().cloned());
            if expect != src.shape {
                return fail(format!(
                    "scatter_add source is {}, expected {}",
                    shape_text(&src.shape),
                    shape_text(&expect)
                ));
            }
            Ok(TensorType::new(src.dtype, t.shape))
        }
        Prim::MatMul { transpose_a, transpose_b } => matmul(inputs[0], inputs[1], *transpose_a, *transpose_b),
        Prim::Conv2d(g) => {
            let (x, w) = (inputs[0], inputs[1]);
            expect_rank(x, 4, "conv2d input [N, C, H, W]")?;
            expect_rank(w, 4, "conv2d weight [C_out, C_in / groups, kh, kw]")?;
            let cin_g = w.shape[1].mul(&Dim::constant(g.groups as i64)).map_err(overflow)?;
            if cin_g != x.shape[1] {
                return fail(format!(
                    "conv2d weight expects {cin_g} input channels, the input has {}",
                    x.shape[1]
                ));
            }
            let h = conv_out(&x.shape[2], &w.shape[2], g, 0)?;
            let wd = conv_out(&x.shape[3], &w.shape[3], g, 1)?;
            Ok(TensorType::f32(vec![x.shape[0].clone(), w.shape[0].clone(), h, wd]))
        }
        Prim::ConvTranspose2d { geometry: g, output_padding } => {
            let (x, w) = (inputs[0], inputs[1]);
            expect_rank(x, 4, "conv_transpose2d input [N, C, H, W]")?;
            expect_rank(w, 4, "conv_transpose2d weight [C_in, C_out / groups, kh, kw]")?;
            if w.shape[0] != x.shape[1] {
                return fail(format!(
                    "conv_transpose2d weight expects {} input channels, the input has {}",
                    w.shape[0], x.shape[1]
                ));
            }
            let cout = w.shape[1].mul(&Dim::constant(g.groups as i64)).map_err(overflow)?;
            let h = conv_transpose_out(&x.shape[2], &w.shape[2], g, output_padding[0], 0)?;
            let wd = conv_transpose_out(&x.shape[3], &w.shape[3], g, output_padding[1], 1)?;
            Ok(TensorType::f32(vec![x.shape[0].clone(), cout, h, wd]))
        }
        Prim::Conv2dWeightGrad(_) => {
            let t = need_declared()?;
            expect_rank(inputs[0], 4, "the conv input")?;
            expect_rank(inputs[1], 4, "the conv output gradient")?;
            Ok(t)
        }
        Prim::Pool2d { window, .. } => {
            let x = inputs[0];
            expect_rank(x, 4, "pooling input [N, C, H, W]")?;
            let explain = |e: RuleError| RuleError {
                message: format!(
                    "pooling {x} with a {}x{} window: {}",
                    window.kernel[0], window.kernel[1], e.message
                ),
                help: Some("pool fewer times, or use a smaller window".to_string()),
                dtype: false,
            };
            let h = window_out(&x.shape[2], window, 0).map_err(explain)?;
            let w = window_out(&x.shape[3], window, 1).map_err(explain)?;
            Ok(TensorType::new(x.dtype, vec![x.shape[0].clone(), x.shape[1].clone(), h, w]))
        }
        Prim::Pool2dGrad { .. } => Ok(inputs[0].clone()),
        Prim::Upsample { scale, .. } => {
            let x = inputs[0];
            expect_rank(x, 4, "upsample input [N, C, H, W]")?;
            let h = x.shape[2].mul(&Dim::constant(scale[0] as i64)).map_err(overflow)?;
            let w = x.shape[3].mul(&Dim::constant(scale[1] as i64)).map_err(overflow)?;
            Ok(TensorType::new(x.dtype, vec![x.shape[0].clone(), x.shape[1].clone(), h, w]))
        }
        Prim::UpsampleGrad { .. } => need_declared(),
        Prim::LogAbsDet | Prim::Inverse => {
            let x = inputs[0];
            let what = if *prim == Prim::LogAbsDet { "logabsdet" } else { "inverse" };
            if x.dtype != DType::F32 {
                return fail_dtype(
                    format!("{what} needs float matrices, found {}", x.dtype),
                    "convert with to_float(..)",
                );
            }
            let r = x.rank();
            if r < 2 || x.shape[r - 2] != x.shape[r - 1] {
                return Err(RuleError {
                    message: format!(
                        "{what} needs square matrices [.., n, n], found {}",
                        shape_text(&x.shape)
                    ),
                    help: Some("the last two axes are the matrix; they must be equal".into()),
                    dtype: false,
                });
            }
            let shape = if *prim == Prim::LogAbsDet { x.shape[..r - 2].to_vec() } else { x.shape.clone() };
            Ok(TensorType::new(DType::F32, shape))
        }
    }
}

fn expect_dtype(x: &TensorType, dtype: DType, what: &str) -> Result<(), RuleError> {
    if x.dtype == dtype {
        return Ok(());
    }
    let help = match dtype {
        DType::F32 => "convert with to_float(..)",
        DType::I32 => "convert with to_int(..)",
        DType::Bool => "compare to get a mask, e.g. `x > 0.5`",
    };
    fail_dtype(format!("`{what}` needs {dtype} elements, found {}", x.dtype), help)
}

fn expect_numeric(x: &TensorType, what: &str) -> Result<(), RuleError> {
    if x.dtype == DType::Bool {
        fail_dtype(
            format!("`{what}` needs numbers, found a bool tensor"),
            "convert the mask with to_float(..)",
        )
    } else {
        Ok(())
    }
}

fn expect_rank(x: &TensorType, rank: usize, what: &str) -> Result<(), RuleError> {
    if x.rank() == rank {
        Ok(())
    } else {
        fail(format!("{what} must have rank {rank}, found {} of rank {}", shape_text(&x.shape), x.rank()))
    }
}

fn check_axes(axes: &[usize], rank: usize) -> Result<(), RuleError> {
    for w in axes.windows(2) {
        if w[0] >= w[1] {
            return fail("axes must be sorted and distinct");
        }
    }
    match axes.iter().find(|&&a| a >= rank) {
        Some(a) => fail(format!("axis {a} is out of range for a tensor of rank {rank}")),
        None => Ok(()),
    }
}

/// Numpy broadcasting over equal ranks: extents equal, or one of them 1.
pub fn broadcast_shapes(a: &[Dim], b: &[Dim]) -> Result<Vec<Dim>, RuleError> {
    if a.len() != b.len() {
        return fail(format!("cannot broadcast {} with {}: the ranks differ", shape_text(a), shape_text(b)));
    }
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            if x == y || y.as_const() == Some(1) {
                Ok(x.clone())
            } else if x.as_const() == Some(1) {
                Ok(y.clone())
            } else {
                Err(RuleError {
                    message: format!(
                        "cannot broadcast {} with {}: {x} against {y}",
                        shape_text(a),
                        shape_text(b)
                    ),
                    help: Some(
                        "element-wise operands need equal extents on each axis, or 1 to repeat along it"
                            .into(),
                    ),
                    dtype: false,
                })
            }
        })
        .collect()
}

fn matmul(a: &TensorType, b: &TensorType, ta: bool, tb: bool) -> Result<TensorType, RuleError> {
    if a.rank() < 2 || b.rank() < 2 || a.rank() != b.rank() {
        return fail(format!("matmul needs two tensors of equal rank ≥ 2, found {a} and {b}"));
    }
    let r = a.rank();
    if a.shape[..r - 2] != b.shape[..r - 2] {
        return fail(format!("matmul batch axes differ: {a} and {b}"));
    }
    let (m, ka) = if ta { (&a.shape[r - 1], &a.shape[r - 2]) } else { (&a.shape[r - 2], &a.shape[r - 1]) };
    let (kb, n) = if tb { (&b.shape[r - 1], &b.shape[r - 2]) } else { (&b.shape[r - 2], &b.shape[r - 1]) };
    if ka != kb {
        return Err(RuleError {
            message: format!("matmul inner dimensions differ: {a} @ {b} ({ka} against {kb})"),
            help: Some("the last axis of the left side must equal the second-to-last of the right: transpose one side with permute(..)".into()),
            dtype: false,
        });
    }
    let mut shape = a.shape[..r - 2].to_vec();
    shape.push(m.clone());
    shape.push(n.clone());
    Ok(TensorType::new(a.dtype, shape))
}

/// `floor((n + 2p - d(k - 1) - 1) / s) + 1`, which must be at least 1.
pub fn conv_out(n: &Dim, k: &Dim, g: &ConvGeometry, axis: usize) -> Result<Dim, RuleError> {
    let c = |v: usize| Dim::constant(v as i64);
    let span = k.sub(&c(1)).and_then(|x| x.mul(&c(g.dilation[axis]))).map_err(overflow)?;
    let numer =
        n.add(&c(2 * g.pad[axis])).and_then(|x| x.sub(&span)).and_then(|x| x.sub(&c(1))).map_err(overflow)?;
    let out = numer.div(&c(g.stride[axis])).map_err(div_err)?.add(&c(1)).map_err(overflow)?;
    if let Some(v) = out.as_const()
        && v < 1
    {
        return fail(format!(
            "the kernel (extent {}) is larger than the padded input (extent {}): the output would be empty",
            span.add(&c(1)).map_err(overflow)?,
            n.add(&c(2 * g.pad[axis])).map_err(overflow)?
        ));
    }
    Ok(out)
}

/// `(n - 1) s - 2p + d(k - 1) + op + 1`.
pub fn conv_transpose_out(
    n: &Dim,
    k: &Dim,
    g: &ConvGeometry,
    op: usize,
    axis: usize,
) -> Result<Dim, RuleError> {
    let c = |v: usize| Dim::constant(v as i64);
    let out = n
        .sub(&c(1))
        .and_then(|x| x.mul(&c(g.stride[axis])))
        .and_then(|x| x.sub(&c(2 * g.pad[axis])))
        .and_then(|x| x.add(&k.sub(&c(1))?.mul(&c(g.dilation[axis]))?))
        .and_then(|x| x.add(&c(op + 1)))
        .map_err(overflow)?;
    if let Some(v) = out.as_const()
        && v < 1
    {
        return fail(format!("the padding is larger than the output: the output extent would be {v}"));
    }
    Ok(out)
}

/// The output extent of a pooling window along `axis`.
pub fn window_out(n: &Dim, w: &Window, axis: usize) -> Result<Dim, RuleError> {
    let g = ConvGeometry { stride: w.stride, pad: w.pad, dilation: [1, 1], groups: 1 };
    conv_out(n, &Dim::constant(w.kernel[axis] as i64), &g, axis)
}
