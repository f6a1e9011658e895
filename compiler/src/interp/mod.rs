//! The reference interpreter: a plain-Rust evaluator of every [`Prim`] on the host.
//!
//! It exists to be obviously right. Every GPU kernel is tested against it, and autodiff's
//! finite-difference checks run through it, so it favours straightforward index loops over
//! speed, validates everything it is given, and never panics: a malformed value, a wrong
//! arity, a shape or dtype that does not fit, an out-of-range index — each is an [`EvalError`].
//!
//! Conventions beyond those of [`crate::prim`]:
//! - **Every dtype is held as `f64`** ([`Value`]): f32 tensors keep full f64 precision (the
//!   interpreter never rounds to f32, so finite differences can run in f64), i32 and bool
//!   tensors hold exact integers (bools are 0 and 1). `Random` is the exception that proves
//!   the rule: it draws f32 values, exactly as a kernel does, and widens them.
//! - **i32 arithmetic wraps** (two's complement, as on a device); `Div` and `Rem` are floor
//!   division and floor modulo, and dividing an i32 by zero is an error.
//! - **The node's type is checked**: whatever an op computes must have exactly the `out`
//!   shape and dtype the caller passes, or the call fails.
//! - **Sizes**: a tensor has at most 2³² elements and every extent and window attribute fits
//!   an i32, the limits of a device kernel's indices.

mod contract;
mod elementwise;
mod graph;
mod linalg;
mod movement;
mod program;
mod reduce;
mod sampler;
mod window;

#[cfg(test)]
mod tests;

use crate::prim::{DType, Distribution, Prim};
use crate::random;
use thiserror::Error;

pub use elementwise::erf;
pub use graph::{eval_graph, eval_outputs};
pub use program::{InstrAt, run_phase, run_phase_observed};
pub use sampler::{eval_host, run_sampler};

/// A host tensor: row-major, contiguous. Every dtype is stored as `f64` (i32 values and bools
/// as exact integers, bools 0 or 1), so finite differences can run in f64.
#[derive(Clone, Debug, PartialEq)]
pub struct Value {
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
}

/// What leaves read: the run seed (for `Random`) and the tables of inputs, parameters and
/// buffers, indexed by the leaf's `index`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Leaves<'a> {
    pub seed: u64,
    pub inputs: &'a [Value],
    pub params: &'a [Value],
    pub buffers: &'a [Value],
}

/// Why an op could not be evaluated: the op (in its stable text form) and what was wrong.
#[derive(Clone, Debug, PartialEq, Error)]
#[error("{op}: {kind}")]
pub struct EvalError {
    pub op: String,
    pub kind: ErrorKind,
}

/// What was wrong with an evaluation.
#[derive(Clone, Debug, PartialEq, Error)]
pub enum ErrorKind {
    #[error("takes {expected} inputs, got {got}")]
    Arity { expected: String, got: usize },
    #[error("shape mismatch: {0}")]
    Shape(String),
    #[error("dtype mismatch: {0}")]
    DType(String),
    #[error("bad attribute: {0}")]
    Attribute(String),
    #[error("index {index} is out of range for an axis of extent {extent}")]
    IndexOutOfRange { index: i64, extent: usize },
    #[error("the {table} table has {len} entries; there is no entry {index}")]
    MissingLeaf { table: &'static str, index: usize, len: usize },
    #[error("malformed value: {0}")]
    Malformed(String),
    #[error("i32 division by zero")]
    DivisionByZero,
    #[error("too large: {0}")]
    TooLarge(String),
}

/// The internal result: errors without the op's name, which [`eval`] adds.
type Res<T> = Result<T, ErrorKind>;

/// The most elements a tensor may have (indices are u32 on a device, and in `Random`).
const MAX_ELEMENTS: usize = 1 << 32;

impl Value {
    /// A checked value: `data` must have one element per index of `shape`, and every element
    /// must be representable in `dtype` (i32: an integer in range; bool: 0 or 1).
    pub fn new(dtype: DType, shape: Vec<usize>, data: Vec<f64>) -> Result<Value, EvalError> {
        let value = Value { dtype, shape, data };
        value.validate().map_err(|kind| EvalError { op: "Value::new".into(), kind })?;
        Ok(value)
    }

    /// An f32 tensor.
    pub fn f32(shape: &[usize], data: &[f64]) -> Result<Value, EvalError> {
        Value::new(DType::F32, shape.to_vec(), data.to_vec())
    }

    /// An i32 tensor.
    pub fn i32(shape: &[usize], data: &[i32]) -> Result<Value, EvalError> {
        Value::new(DType::I32, shape.to_vec(), data.iter().map(|&x| f64::from(x)).collect())
    }

    /// A bool tensor.
    pub fn bool(shape: &[usize], data: &[bool]) -> Result<Value, EvalError> {
        Value::new(DType::Bool, shape.to_vec(), data.iter().map(|&b| f64::from(u8::from(b))).collect())
    }

    /// A rank-0 f32 tensor.
    pub fn scalar(x: f64) -> Value {
        Value { dtype: DType::F32, shape: Vec::new(), data: vec![x] }
    }

    /// A tensor of zeros (false for bool). Like `vec!`, it panics if the shape's element
    /// count overflows `usize`; [`eval`] never does (a `Fill` of 0 is the checked form).
    pub fn zeros(dtype: DType, shape: &[usize]) -> Value {
        let n = shape.iter().product();
        Value { dtype, shape: shape.to_vec(), data: vec![0.0; n] }
    }

    /// The number of elements.
    pub fn numel(&self) -> usize {
        self.data.len()
    }

    /// The element at a multi-index, if it is in range.
    pub fn get(&self, index: &[usize]) -> Option<f64> {
        if index.len() != self.shape.len() {
            return None;
        }
        let mut offset = 0;
        for (&i, &n) in index.iter().zip(&self.shape) {
            if i >= n {
                return None;
            }
            offset = offset * n + i;
        }
        self.data.get(offset).copied()
    }

    /// Checks the invariants [`Value::new`] promises.
    fn validate(&self) -> Res<()> {
        let n = numel(&self.shape)?;
        if n != self.data.len() {
            return Err(ErrorKind::Malformed(format!(
                "shape {:?} has {n} elements but the data has {}",
                self.shape,
                self.data.len()
            )));
        }
        let bad = match self.dtype {
            DType::F32 => None,
            DType::I32 => self.data.iter().find(|&&x| !is_i32(x)),
            DType::Bool => self.data.iter().find(|&&x| x != 0.0 && x != 1.0),
        };
        match bad {
            Some(x) => Err(ErrorKind::Malformed(format!("{x} is not a valid {}", self.dtype))),
            None => Ok(()),
        }
    }
}

/// True when `x` is an integer in i32's range.
fn is_i32(x: f64) -> bool {
    x.fract() == 0.0 && x >= f64::from(i32::MIN) && x <= f64::from(i32::MAX)
}

/// Evaluates one op on host values. `out_shape` and `out_dtype` are the node's type: ops that
/// cannot derive their output shape from their inputs take it from there, and every other
/// op's result is checked against it.
pub fn eval(
    prim: &Prim,
    inputs: &[&Value],
    out_shape: &[usize],
    out_dtype: DType,
    leaves: &Leaves,
) -> Result<Value, EvalError> {
    eval_inner(prim, inputs, out_shape, out_dtype, leaves)
        .map_err(|kind| EvalError { op: prim.to_string(), kind })
}

fn eval_inner(
    prim: &Prim,
    inputs: &[&Value],
    out_shape: &[usize],
    out_dtype: DType,
    leaves: &Leaves,
) -> Res<Value> {
    check_arity(prim, inputs.len())?;
    for input in inputs {
        input.validate()?;
    }
    let out_len = numel(out_shape)?;
    let x = |i: usize| inputs[i];
    let result = match prim {
        Prim::Input { index } => leaf("input", leaves.inputs, *index)?,
        Prim::Param { index } => leaf("param", leaves.params, *index)?,
        Prim::Buffer { index } => leaf("buffer", leaves.buffers, *index)?,
        Prim::Fill { value } => {
            representable(value.0, out_dtype)?;
            Value { dtype: out_dtype, shape: out_shape.to_vec(), data: alloc(out_len, value.0)? }
        }
        Prim::Iota { axis } => iota(*axis, out_shape, out_dtype)?,
        Prim::Random { dist, stream } => random_draws(*dist, *stream, leaves.seed, out_shape, out_dtype)?,
        Prim::Unary(op) => elementwise::unary(*op, x(0))?,
        Prim::Binary(op) => elementwise::binary(*op, x(0), x(1))?,
        Prim::Select => elementwise::select(x(0), x(1), x(2))?,
        Prim::Cast { to } => elementwise::cast(x(0), *to),
        // The identity: stop_grad only matters to autodiff.
        Prim::StopGrad => x(0).clone(),
        Prim::Grad => {
            return Err(ErrorKind::Malformed(
                "`grad` must be expanded by autodiff before a graph is evaluated".into(),
            ));
        }
        Prim::Reduce { op, axes } => reduce::reduce(*op, axes, x(0))?,
        Prim::Scan { op, axis } => reduce::scan(*op, *axis, x(0))?,
        Prim::Reshape => movement::reshape(x(0), out_shape)?,
        Prim::Permute { perm } => movement::permute(x(0), perm)?,
        Prim::Broadcast => movement::broadcast(x(0), out_shape)?,
        Prim::Slice { axis, start, step } => movement::slice(x(0), *axis, *start, *step, out_shape)?,
        Prim::Pad { pads, value } => movement::pad(x(0), pads, value.0)?,
        Prim::Concat { axis } => movement::concat(inputs, *axis)?,
        Prim::Gather { axis } => movement::gather(x(0), x(1), *axis)?,
        Prim::ScatterAdd { axis } => movement::scatter_add(x(0), x(1), *axis, out_shape)?,
        Prim::MatMul { transpose_a, transpose_b } => {
            contract::matmul(x(0), x(1), *transpose_a, *transpose_b)?
        }
        Prim::Conv2d(g) => contract::conv2d(x(0), x(1), g)?,
        Prim::ConvTranspose2d { geometry, output_padding } => {
            contract::conv_transpose2d(x(0), x(1), geometry, *output_padding)?
        }
        Prim::Conv2dWeightGrad(g) => contract::conv2d_weight_grad(x(0), x(1), g, out_shape)?,
        Prim::Pool2d { kind, window } => window::pool2d(*kind, window, x(0))?,
        Prim::Pool2dGrad { kind, window } => window::pool2d_grad(*kind, window, x(0), x(1))?,
        Prim::Upsample { mode, scale } => window::upsample(*mode, *scale, x(0))?,
        Prim::UpsampleGrad { mode, scale } => window::upsample_grad(*mode, *scale, x(0), out_shape)?,
        Prim::LogAbsDet => linalg::logabsdet(x(0))?,
        Prim::Inverse => linalg::inverse(x(0))?,
    };
    if result.shape != out_shape {
        return Err(ErrorKind::Shape(format!(
            "the op computes shape {:?} but the node's shape is {out_shape:?}",
            result.shape
        )));
    }
    if result.dtype != out_dtype {
        return Err(ErrorKind::DType(format!(
            "the op computes {} but the node's dtype is {out_dtype}",
            result.dtype
        )));
    }
    Ok(result)
}

fn check_arity(prim: &Prim, got: usize) -> Res<()> {
    use crate::prim::Arity;
    let (ok, expected) = match prim.arity() {
        Arity::Exactly(n) => (got == n, n.to_string()),
        Arity::AtLeast(n) => (got >= n, format!("at least {n}")),
    };
    if ok { Ok(()) } else { Err(ErrorKind::Arity { expected, got }) }
}

fn leaf(table: &'static str, values: &[Value], index: usize) -> Res<Value> {
    match values.get(index) {
        Some(v) => {
            v.validate()?;
            Ok(v.clone())
        }
        None => Err(ErrorKind::MissingLeaf { table, index, len: values.len() }),
    }
}

fn iota(axis: usize, shape: &[usize], dtype: DType) -> Res<Value> {
    if axis >= shape.len() {
        return Err(ErrorKind::Attribute(format!("axis {axis} of a rank-{} shape", shape.len())));
    }
    if dtype == DType::Bool {
        return Err(ErrorKind::DType("iota makes f32 or i32, not bool".into()));
    }
    let n = numel(shape)?;
    if dtype == DType::I32 && shape[axis] > 1 << 31 {
        return Err(ErrorKind::TooLarge(format!("iota of extent {} overflows i32", shape[axis])));
    }
    let mut data = alloc(n, 0.0)?;
    let inner: usize = shape[axis + 1..].iter().product();
    let extent = shape[axis];
    for (i, d) in data.iter_mut().enumerate() {
        *d = ((i / inner) % extent) as f64;
    }
    Ok(Value { dtype, shape: shape.to_vec(), data })
}

/// Element `i` (row-major) of stream `s` is `uniform`/`normal(stream_key(seed, s), i)`:
/// exactly the functions of [`crate::random`], so a device kernel produces the same bits.
fn random_draws(dist: Distribution, stream: u32, seed: u64, shape: &[usize], dtype: DType) -> Res<Value> {
    if dtype != DType::F32 {
        return Err(ErrorKind::DType(format!("random draws are f32, not {dtype}")));
    }
    let n = numel(shape)?;
    let key = random::stream_key(seed, stream);
    let mut data = alloc(n, 0.0)?;
    for (i, d) in data.iter_mut().enumerate() {
        // `numel` caps the count at 2^32, so every index fits a u32.
        let index = u32::try_from(i).map_err(|_| ErrorKind::TooLarge(format!("{n} random draws")))?;
        *d = f64::from(match dist {
            Distribution::Uniform => random::uniform(key, index),
            Distribution::Normal => random::normal(key, index),
        });
    }
    Ok(Value { dtype, shape: shape.to_vec(), data })
}

// ---- helpers shared by the op modules ---------------------------------------------------

/// The element count of a shape, checked against [`MAX_ELEMENTS`].
fn numel(shape: &[usize]) -> Res<usize> {
    let mut n: usize = 1;
    for &e in shape {
        n = n.checked_mul(e).ok_or_else(|| ErrorKind::TooLarge(format!("shape {shape:?}")))?;
    }
    // A zero extent makes the count 0 whatever the others are; they must still be sane.
    if n > MAX_ELEMENTS || shape.iter().any(|&e| e > MAX_ELEMENTS) {
        return Err(ErrorKind::TooLarge(format!("shape {shape:?} has more than 2^32 elements")));
    }
    Ok(n)
}

/// A buffer of `n` copies of `value`, failing instead of aborting when memory runs out.
fn alloc(n: usize, value: f64) -> Res<Vec<f64>> {
    let mut data = Vec::new();
    data.try_reserve_exact(n).map_err(|_| ErrorKind::TooLarge(format!("cannot allocate {n} elements")))?;
    data.resize(n, value);
    Ok(data)
}

/// Row-major strides of a shape.
fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// The offset in a tensor with `strides` of the element at row-major position `flat` of
/// `shape` (strides may be 0 for broadcast axes, or permuted).
fn offset_of(mut flat: usize, shape: &[usize], strides: &[usize]) -> usize {
    let mut offset = 0;
    for (&extent, &stride) in shape.iter().zip(strides).rev() {
        offset += (flat % extent) * stride;
        flat /= extent;
    }
    offset
}

/// Checks that a fill value is representable in a dtype.
fn representable(x: f64, dtype: DType) -> Res<()> {
    let ok = match dtype {
        DType::F32 => true,
        DType::I32 => is_i32(x),
        DType::Bool => x == 0.0 || x == 1.0,
    };
    if ok { Ok(()) } else { Err(ErrorKind::Attribute(format!("{x} is not a valid {dtype}"))) }
}

/// Requires a dtype of an operand.
fn want_dtype(v: &Value, allowed: &[DType], what: &str) -> Res<()> {
    if allowed.contains(&v.dtype) {
        Ok(())
    } else {
        let names: Vec<String> = allowed.iter().map(DType::to_string).collect();
        Err(ErrorKind::DType(format!("{what} must be {}, not {}", names.join(" or "), v.dtype)))
    }
}

/// Requires a rank of an operand.
fn want_rank(v: &Value, rank: usize, what: &str) -> Res<()> {
    if v.shape.len() == rank {
        Ok(())
    } else {
        Err(ErrorKind::Shape(format!("{what} must have rank {rank}, not shape {:?}", v.shape)))
    }
}

/// An attribute or extent as an i64 for index arithmetic, bounded by i32's range (as a
/// device kernel's indices are), so no sum of products of two of them can overflow.
fn small(x: usize, what: &str) -> Res<i64> {
    if x > i32::MAX as usize {
        return Err(ErrorKind::TooLarge(format!("{what} = {x} exceeds i32's range")));
    }
    Ok(x as i64)
}

/// Wraps an integer to i32 (two's complement), as device arithmetic does.
fn wrap_i32(x: i64) -> f64 {
    f64::from(x as i32)
}
