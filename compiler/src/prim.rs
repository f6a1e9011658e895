//! The primitive op set: the one definition of what a graph node can compute.
//!
//! Every layer of the language (`batch_norm`, `linear`, `kl_normal`, …) is expanded into these
//! primitives, so the shape rules, the derivative rules, the reference interpreter and the
//! kernel lowering each handle this enum and nothing else. Each of those facts is an
//! exhaustive `match` without a `_ =>` arm: adding a variant is a compile error at every place
//! that must learn about it.
//!
//! Conventions shared by every consumer:
//! - **Shapes live on nodes, not on ops.** An op whose output shape cannot be derived from its
//!   inputs (`Reshape`, `Broadcast`, `Fill`, `Iota`, `Random`, the backward ops) takes it from
//!   the node's type; evaluators receive it as the `out` shape.
//! - **Layouts** follow PyTorch: images are `[N, C, H, W]`, a convolution weight is
//!   `[C_out, C_in / groups, kh, kw]`, a transposed-convolution weight is
//!   `[C_in, C_out / groups, kh, kw]`.
//! - **Element-wise ops broadcast numpy-style** over equal-rank inputs whose extents are equal
//!   or 1; the graph builder inserts explicit reshapes so ranks always agree.
//! - **Reductions keep the reduced axes with extent 1**, so a reduction's result broadcasts
//!   back against its input without a reshape (autodiff relies on this).

use serde::{Deserialize, Serialize};
use std::fmt;

/// Element types. Floats are f32 on the device; labels are i32; masks are bool.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum DType {
    F32,
    I32,
    Bool,
}

/// One primitive operation. Inputs are positional; the arity of each variant is fixed and
/// given by [`Prim::arity`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Prim {
    // ---- leaves: no inputs --------------------------------------------------------------
    /// A value fed from outside each time a phase runs (a data batch, a sampler argument).
    Input {
        index: usize,
    },
    /// A trainable tensor from the parameter table.
    Param {
        index: usize,
    },
    /// A non-trainable tensor from the buffer table (running statistics, noise schedules,
    /// masks). Never updated by an optimizer, never in an EMA.
    Buffer {
        index: usize,
    },
    /// A tensor of the node's shape and dtype, every element `value`.
    Fill {
        value: F64,
    },
    /// `out[.., i, ..] = i` along `axis` of the node's shape (`arange`, one-hot encodings).
    Iota {
        axis: usize,
    },
    /// Random draws of the node's shape. `stream` makes each random node of a graph draw
    /// an independent sequence from the same run seed (see [`Distribution`]).
    Random {
        dist: Distribution,
        stream: u32,
    },

    // ---- element-wise ------------------------------------------------------------------
    Unary(UnaryOp),
    Binary(BinaryOp),
    /// `select(cond, a, b)`: `a` where `cond` is true, else `b`.
    Select,
    /// Converts to another element type (float → int truncates toward zero; → bool is `!= 0`).
    Cast {
        to: DType,
    },
    /// The identity, which autodiff treats as a constant (`stop_grad`).
    StopGrad,

    // ---- compile time only -------------------------------------------------------------
    /// `grad(f, x)`: inputs `(f, x)` with `f` a scalar; the type is `x`'s. Autodiff replaces
    /// every `Grad` by the gradient graph before anything evaluates the graph, so evaluators
    /// reject it.
    Grad,

    // ---- reductions --------------------------------------------------------------------
    /// Reduces over `axes` (sorted, distinct), keeping them with extent 1. `ArgMax`/`ArgMin`
    /// take exactly one axis, return i32 and break ties toward the lowest index.
    Reduce {
        op: ReduceOp,
        axes: Vec<usize>,
    },
    /// Inclusive running sum or product along `axis` (`cumprod` of a noise schedule).
    Scan {
        op: ScanOp,
        axis: usize,
    },

    // ---- movement ----------------------------------------------------------------------
    /// Same elements in row-major order, new shape (the node's).
    Reshape,
    /// `out.shape[i] = in.shape[perm[i]]`.
    Permute {
        perm: Vec<usize>,
    },
    /// Repeats extent-1 axes up to the node's shape (same rank).
    Broadcast,
    /// `out[.., i, ..] = in[.., start + i * step, ..]` along `axis`; the extent comes from the
    /// node's shape. `step >= 1`.
    Slice {
        axis: usize,
        start: usize,
        step: usize,
    },
    /// Pads every axis with `value`: `pads[i] = (before, after)`.
    Pad {
        pads: Vec<(usize, usize)>,
        value: F64,
    },
    /// Joins the inputs (any number ≥ 1) along `axis`.
    Concat {
        axis: usize,
    },
    /// `take` along `axis`: inputs `(x, idx)` with `idx` i32;
    /// `out.shape = x.shape[..axis] ++ idx.shape ++ x.shape[axis + 1..]`.
    Gather {
        axis: usize,
    },
    /// The adjoint of `Gather`: inputs `(idx, src)`; the output (the node's shape, the
    /// shape of the gathered-from tensor) sums every `src` element into the slot its index
    /// names. Computed without atomics, so it is bit-identical run to run.
    ScatterAdd {
        axis: usize,
    },

    // ---- contractions ------------------------------------------------------------------
    /// Batched matrix product of `(a, b)`, both of rank ≥ 2 with equal leading (batch) axes:
    /// `[.., M, K] @ [.., K, N] -> [.., M, N]`, after transposing the last two axes of `a`
    /// and/or `b` when the flags say so.
    MatMul {
        transpose_a: bool,
        transpose_b: bool,
    },
    /// 2-D cross-correlation of `(x [N, C_in, H, W], w [C_out, C_in / g, kh, kw])`.
    Conv2d(ConvGeometry),
    /// Transposed convolution of `(x [N, C_in, H, W], w [C_in, C_out / g, kh, kw])`; the
    /// gradient of `Conv2d` with respect to its input. The output extent is
    /// `(H - 1) * stride - 2 * pad + dilation * (kh - 1) + output_padding + 1`.
    ConvTranspose2d {
        geometry: ConvGeometry,
        output_padding: [usize; 2],
    },
    /// The gradient of `Conv2d` with respect to its weight: inputs `(x, dy)`, output the
    /// weight's shape (the node's).
    Conv2dWeightGrad(ConvGeometry),

    // ---- windows and resampling ---------------------------------------------------------
    /// Max or average pooling over `[N, C, H, W]`. Average pooling divides by the full window
    /// (padding counts as zeros); max pooling ignores padding.
    Pool2d {
        kind: PoolKind,
        window: Window,
    },
    /// The gradient of `Pool2d`: inputs `(x, dy)`, output `x`'s shape. For max pooling the
    /// gradient goes to the first maximum of each window (row-major), so it is deterministic.
    Pool2dGrad {
        kind: PoolKind,
        window: Window,
    },
    /// Upsamples `[N, C, H, W]` by integer factors (bilinear: half-pixel centres, as PyTorch's
    /// `align_corners=False`).
    Upsample {
        mode: UpsampleMode,
        scale: [usize; 2],
    },
    /// The gradient of `Upsample`: input `dy`, output the small image's shape (the node's).
    UpsampleGrad {
        mode: UpsampleMode,
        scale: [usize; 2],
    },

    // ---- linear algebra on small square matrices ---------------------------------------------
    /// `log |det a|` of each matrix of `[.., n, n]`, by LU with partial pivoting; the output
    /// drops the last two axes. A singular matrix gives `-inf`.
    LogAbsDet,
    /// The inverse of each matrix of `[.., n, n]`, by Gauss-Jordan elimination with partial
    /// pivoting. A singular matrix gives non-finite values (training then stops, E0940).
    Inverse,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum UnaryOp {
    Neg,
    Abs,
    Sign,
    Recip,
    Sqrt,
    Rsqrt,
    Exp,
    Log,
    /// `log(1 + x)`, exact near zero.
    Log1p,
    Tanh,
    Sigmoid,
    Relu,
    Erf,
    Sin,
    Cos,
    Floor,
    Ceil,
    /// Half away from zero.
    Round,
    /// Logical not of a bool tensor.
    Not,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    /// True division for floats; for i32, floor division (Python's `//`).
    Div,
    /// Floor modulo (the sign of the divisor, as Python's `%`).
    Rem,
    Pow,
    Max,
    Min,
    /// Comparisons return bool.
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// Logical, on bool tensors.
    And,
    Or,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ReduceOp {
    Sum,
    Mean,
    Max,
    Min,
    Prod,
    ArgMax,
    ArgMin,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ScanOp {
    Sum,
    Prod,
}

/// The distributions a `Random` node draws from. Draws are a pure function of
/// `(seed, stream, element index)` — a counter-based generator — so a graph gives the same
/// numbers on the host and on any device, in any launch order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Distribution {
    /// Uniform on `[0, 1)`.
    Uniform,
    /// Standard normal.
    Normal,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PoolKind {
    Max,
    Avg,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum UpsampleMode {
    Nearest,
    Bilinear,
}

/// Stride, padding, dilation and groups of a 2-D convolution, as `[height, width]` pairs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ConvGeometry {
    pub stride: [usize; 2],
    pub pad: [usize; 2],
    pub dilation: [usize; 2],
    pub groups: usize,
}

/// A pooling window: kernel size, stride and padding as `[height, width]` pairs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Window {
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub pad: [usize; 2],
}

/// An `f64` attribute that can live in a hashed, compared op (CSE compares ops): equality
/// and hashing are by bit pattern, so `NaN == NaN` and `0.0 != -0.0` here.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct F64(pub f64);

impl PartialEq for F64 {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}
impl Eq for F64 {}
impl std::hash::Hash for F64 {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.to_bits().hash(state);
    }
}

/// How many inputs an op takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arity {
    Exactly(usize),
    AtLeast(usize),
}

impl Prim {
    pub fn arity(&self) -> Arity {
        use Arity::*;
        match self {
            Prim::Input { .. }
            | Prim::Param { .. }
            | Prim::Buffer { .. }
            | Prim::Fill { .. }
            | Prim::Iota { .. }
            | Prim::Random { .. } => Exactly(0),
            Prim::Unary(_)
            | Prim::Cast { .. }
            | Prim::StopGrad
            | Prim::Reduce { .. }
            | Prim::Scan { .. }
            | Prim::Reshape
            | Prim::Permute { .. }
            | Prim::Broadcast
            | Prim::Slice { .. }
            | Prim::Pad { .. }
            | Prim::Pool2d { .. }
            | Prim::Upsample { .. }
            | Prim::UpsampleGrad { .. }
            | Prim::LogAbsDet
            | Prim::Inverse => Exactly(1),
            Prim::Binary(_)
            | Prim::Grad
            | Prim::Gather { .. }
            | Prim::ScatterAdd { .. }
            | Prim::MatMul { .. }
            | Prim::Conv2d(_)
            | Prim::ConvTranspose2d { .. }
            | Prim::Conv2dWeightGrad(_)
            | Prim::Pool2dGrad { .. } => Exactly(2),
            Prim::Select => Exactly(3),
            Prim::Concat { .. } => AtLeast(1),
        }
    }

    /// True for the ops a fused element-wise kernel can hold.
    pub fn is_elementwise(&self) -> bool {
        match self {
            Prim::Unary(_) | Prim::Binary(_) | Prim::Select | Prim::Cast { .. } => true,
            Prim::Input { .. }
            | Prim::Param { .. }
            | Prim::Buffer { .. }
            | Prim::Fill { .. }
            | Prim::Iota { .. }
            | Prim::Random { .. }
            | Prim::StopGrad
            | Prim::Grad
            | Prim::Reduce { .. }
            | Prim::Scan { .. }
            | Prim::Reshape
            | Prim::Permute { .. }
            | Prim::Broadcast
            | Prim::Slice { .. }
            | Prim::Pad { .. }
            | Prim::Concat { .. }
            | Prim::Gather { .. }
            | Prim::ScatterAdd { .. }
            | Prim::MatMul { .. }
            | Prim::Conv2d(_)
            | Prim::ConvTranspose2d { .. }
            | Prim::Conv2dWeightGrad(_)
            | Prim::Pool2d { .. }
            | Prim::Pool2dGrad { .. }
            | Prim::Upsample { .. }
            | Prim::UpsampleGrad { .. }
            | Prim::LogAbsDet
            | Prim::Inverse => false,
        }
    }
}

impl UnaryOp {
    pub fn name(self) -> &'static str {
        match self {
            UnaryOp::Neg => "neg",
            UnaryOp::Abs => "abs",
            UnaryOp::Sign => "sign",
            UnaryOp::Recip => "recip",
            UnaryOp::Sqrt => "sqrt",
            UnaryOp::Rsqrt => "rsqrt",
            UnaryOp::Exp => "exp",
            UnaryOp::Log => "log",
            UnaryOp::Log1p => "log1p",
            UnaryOp::Tanh => "tanh",
            UnaryOp::Sigmoid => "sigmoid",
            UnaryOp::Relu => "relu",
            UnaryOp::Erf => "erf",
            UnaryOp::Sin => "sin",
            UnaryOp::Cos => "cos",
            UnaryOp::Floor => "floor",
            UnaryOp::Ceil => "ceil",
            UnaryOp::Round => "round",
            UnaryOp::Not => "not",
        }
    }
}

impl BinaryOp {
    pub fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
            BinaryOp::Div => "div",
            BinaryOp::Rem => "rem",
            BinaryOp::Pow => "pow",
            BinaryOp::Max => "max",
            BinaryOp::Min => "min",
            BinaryOp::Eq => "eq",
            BinaryOp::Ne => "ne",
            BinaryOp::Lt => "lt",
            BinaryOp::Le => "le",
            BinaryOp::Gt => "gt",
            BinaryOp::Ge => "ge",
            BinaryOp::And => "and",
            BinaryOp::Or => "or",
        }
    }

    /// True for comparisons, whose result is bool whatever the operands.
    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinaryOp::Eq | BinaryOp::Ne | BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge
        )
    }
}

impl ReduceOp {
    pub fn name(self) -> &'static str {
        match self {
            ReduceOp::Sum => "sum",
            ReduceOp::Mean => "mean",
            ReduceOp::Max => "max",
            ReduceOp::Min => "min",
            ReduceOp::Prod => "prod",
            ReduceOp::ArgMax => "argmax",
            ReduceOp::ArgMin => "argmin",
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DType::F32 => "f32",
            DType::I32 => "i32",
            DType::Bool => "bool",
        })
    }
}

/// The stable text form of an op, as the stage dumps print it: `conv2d[s=2,2 p=1,1]`.
impl fmt::Display for Prim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Prim::Input { index } => write!(f, "input[{index}]"),
            Prim::Param { index } => write!(f, "param[{index}]"),
            Prim::Buffer { index } => write!(f, "buffer[{index}]"),
            Prim::Fill { value } => write!(f, "fill[{}]", value.0),
            Prim::Iota { axis } => write!(f, "iota[axis={axis}]"),
            Prim::Random { dist, stream } => {
                let d = match dist {
                    Distribution::Uniform => "uniform",
                    Distribution::Normal => "normal",
                };
                write!(f, "random_{d}[stream={stream}]")
            }
            Prim::Unary(op) => f.write_str(op.name()),
            Prim::Binary(op) => f.write_str(op.name()),
            Prim::Select => f.write_str("select"),
            Prim::Cast { to } => write!(f, "cast[{to}]"),
            Prim::StopGrad => f.write_str("stop_grad"),
            Prim::Grad => f.write_str("grad"),
            Prim::Reduce { op, axes } => write!(f, "{}[axes={}]", op.name(), list(axes)),
            Prim::Scan { op, axis } => {
                let name = match op {
                    ScanOp::Sum => "cumsum",
                    ScanOp::Prod => "cumprod",
                };
                write!(f, "{name}[axis={axis}]")
            }
            Prim::Reshape => f.write_str("reshape"),
            Prim::Permute { perm } => write!(f, "permute[{}]", list(perm)),
            Prim::Broadcast => f.write_str("broadcast"),
            Prim::Slice { axis, start, step } => write!(f, "slice[axis={axis} start={start} step={step}]"),
            Prim::Pad { pads, value } => {
                let pads: Vec<String> = pads.iter().map(|(a, b)| format!("{a}:{b}")).collect();
                write!(f, "pad[{} value={}]", pads.join(","), value.0)
            }
            Prim::Concat { axis } => write!(f, "concat[axis={axis}]"),
            Prim::Gather { axis } => write!(f, "gather[axis={axis}]"),
            Prim::ScatterAdd { axis } => write!(f, "scatter_add[axis={axis}]"),
            Prim::MatMul { transpose_a, transpose_b } => {
                f.write_str("matmul")?;
                match (transpose_a, transpose_b) {
                    (false, false) => Ok(()),
                    (true, false) => f.write_str("[ta]"),
                    (false, true) => f.write_str("[tb]"),
                    (true, true) => f.write_str("[ta,tb]"),
                }
            }
            Prim::Conv2d(g) => write!(f, "conv2d[{g}]"),
            Prim::ConvTranspose2d { geometry, output_padding } => {
                write!(f, "conv_transpose2d[{geometry} op={}]", pair(output_padding))
            }
            Prim::Conv2dWeightGrad(g) => write!(f, "conv2d_weight_grad[{g}]"),
            Prim::Pool2d { kind, window } => write!(f, "{}[{window}]", pool_name(*kind)),
            Prim::Pool2dGrad { kind, window } => write!(f, "{}_grad[{window}]", pool_name(*kind)),
            Prim::Upsample { mode, scale } => write!(f, "upsample[{} x{}]", mode_name(*mode), pair(scale)),
            Prim::UpsampleGrad { mode, scale } => {
                write!(f, "upsample_grad[{} x{}]", mode_name(*mode), pair(scale))
            }
            Prim::LogAbsDet => f.write_str("logabsdet"),
            Prim::Inverse => f.write_str("inverse"),
        }
    }
}

impl fmt::Display for ConvGeometry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s={} p={} d={}", pair(&self.stride), pair(&self.pad), pair(&self.dilation))?;
        if self.groups != 1 {
            write!(f, " g={}", self.groups)?;
        }
        Ok(())
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "k={} s={} p={}", pair(&self.kernel), pair(&self.stride), pair(&self.pad))
    }
}

fn pool_name(kind: PoolKind) -> &'static str {
    match kind {
        PoolKind::Max => "max_pool2d",
        PoolKind::Avg => "avg_pool2d",
    }
}

fn mode_name(mode: UpsampleMode) -> &'static str {
    match mode {
        UpsampleMode::Nearest => "nearest",
        UpsampleMode::Bilinear => "bilinear",
    }
}

fn pair(p: &[usize; 2]) -> String {
    format!("{},{}", p[0], p[1])
}

fn list(items: &[usize]) -> String {
    items.iter().map(usize::to_string).collect::<Vec<_>>().join(",")
}
