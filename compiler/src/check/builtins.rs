//! Built-in functions without weights: activations, reductions over named axes, movement,
//! constructors, random draws and losses, each expanded into primitives.

use genc_grammar::Span;

use super::calls::Args;
use super::{Checker, Val};
use crate::diag::TypeError;
use crate::dim::Dim;
use crate::graph::NodeId;
use crate::prim::{
    BinaryOp, DType, Distribution, PoolKind, Prim, ReduceOp, ScanOp, UnaryOp, UpsampleMode, Window,
};
use crate::types::TensorType;

/// Every built-in function without weights (layers are `layers::LAYERS`).
pub(super) const NAMES: &[&str] = &[
    // activations and element-wise math
    "relu",
    "leaky_relu",
    "tanh",
    "sigmoid",
    "silu",
    "elu",
    "softplus",
    "exp",
    "log",
    "sqrt",
    "abs",
    "sin",
    "cos",
    "floor",
    "ceil",
    "round",
    "erf",
    "logit",
    "clamp",
    "select",
    "to_float",
    "to_int",
    "stop_grad",
    "softmax",
    "log_softmax",
    // reductions
    "sum",
    "mean",
    "max",
    "min",
    "norm",
    "argmax",
    "logsumexp",
    // movement
    "reshape",
    "flatten",
    "squeeze",
    "unsqueeze",
    "permute",
    "concat",
    "split",
    "pixel_shuffle",
    "pixel_unshuffle",
    "upsample",
    "max_pool2d",
    "avg_pool2d",
    "one_hot",
    // constructors
    "zeros",
    "ones",
    "full",
    "arange",
    "linspace",
    "cumprod",
    "cumsum",
    // linear algebra
    "logabsdet",
    "inverse",
    "solve",
    // random
    "normal",
    "uniform",
    "bernoulli",
    "randint",
    "categorical",
    // losses
    "mse",
    "l1",
    "bce",
    "bce_logits",
    "cross_entropy",
    "kl_normal",
    // image quality
    "psnr",
    "ssim",
    // differentiation, output
    "grad",
    "grid",
    // evaluation in training mode (a special form: `calls::train_mode`)
    "train_mode",
    // the next value of a `state(..)`
    "keep",
];

/// Every named option a built-in or layer takes, for "did you mean" suggestions.
pub(super) const OPTION_NAMES: &[&str] = &[
    "out",
    "init",
    "weight",
    "std",
    "gain",
    "bound",
    "kernel",
    "stride",
    "pad",
    "dilation",
    "groups",
    "mask",
    "bias",
    "output_padding",
    "eps",
    "affine",
    "momentum",
    "slope",
    "alpha",
    "axis",
    "over",
    "scale",
    "mode",
    "classes",
    "value",
    "nrow",
    "lo",
    "hi",
    "num",
    "dim",
    "shape",
    "parts",
    "factor",
    "p",
    "range",
];

/// PyTorch's spellings of the options, which edit distance alone would not find.
const OPTION_SYNONYMS: &[(&str, &str)] = &[
    ("padding", "pad"),
    ("kernel_size", "kernel"),
    ("out_channels", "out"),
    ("out_features", "out"),
    ("negative_slope", "slope"),
    ("dim", "axis"),
    ("scale_factor", "scale"),
    ("num_classes", "classes"),
];

/// The option a misspelt or PyTorch-spelt option name means (`padding` -> `pad`).
fn option_suggestion(name: &str) -> Option<&'static str> {
    OPTION_SYNONYMS
        .iter()
        .find(|(from, _)| *from == name)
        .map(|(_, to)| *to)
        .or_else(|| genc_grammar::did_you_mean(name, OPTION_NAMES.iter().copied()))
        // An option that other calls take is no misspelling of itself.
        .filter(|s| *s != name)
}

/// True for a built-in function or layer.
pub(super) fn is_builtin(name: &str) -> bool {
    NAMES.contains(&name) || super::layers::LAYERS.contains(&name)
}

/// Every built-in name, functions then layers (for "did you mean").
pub(super) fn all_names() -> impl Iterator<Item = &'static str> {
    NAMES.iter().chain(super::layers::LAYERS).copied()
}

/// The functions a `let x ~ ..` may draw from.
pub(super) const DISTRIBUTIONS: &[&str] = &["normal", "uniform", "bernoulli", "randint", "categorical"];

impl<'a> Checker<'a> {
    pub(super) fn builtin(&mut self, name: &str, mut a: Args, span: Span) -> Val {
        if super::layers::LAYERS.contains(&name) {
            return self.layer(name, a, span);
        }
        let r = self.builtin_fn(name, &mut a, span);
        // A misspelt option was silently replaced by its default: the result is not what the
        // spec meant, so it poisons instead of cascading into shape errors.
        if r.is_ok() && self.reject_leftover(&a, name) {
            return Val::Poison;
        }
        if r.is_err() {
            self.reject_misspelt(&a, name);
        }
        r.unwrap_or(Val::Poison)
    }

    fn builtin_fn(&mut self, name: &str, a: &mut Args, span: Span) -> Result<Val, ()> {
        match name {
            "relu" => self.unary_fn(a, UnaryOp::Relu),
            "tanh" => self.unary_fn(a, UnaryOp::Tanh),
            "sigmoid" => self.unary_fn(a, UnaryOp::Sigmoid),
            "exp" => self.unary_fn(a, UnaryOp::Exp),
            "log" => self.float_or_unary(a, UnaryOp::Log, f64::ln),
            "sqrt" => self.float_or_unary(a, UnaryOp::Sqrt, f64::sqrt),
            "abs" => self.unary_fn(a, UnaryOp::Abs),
            "sin" => self.unary_fn(a, UnaryOp::Sin),
            "cos" => self.unary_fn(a, UnaryOp::Cos),
            "floor" => self.unary_fn(a, UnaryOp::Floor),
            "ceil" => self.unary_fn(a, UnaryOp::Ceil),
            "round" => self.unary_fn(a, UnaryOp::Round),
            "erf" => self.unary_fn(a, UnaryOp::Erf),
            "silu" => self.one_tensor(a, "silu").and_then(|(x, s)| {
                let g = self.unary(UnaryOp::Sigmoid, x, s)?;
                self.binary(BinaryOp::Mul, x, g, s).map(Val::Tensor)
            }),
            "softplus" => {
                self.one_tensor(a, "softplus").and_then(|(x, s)| self.softplus(x, s).map(Val::Tensor))
            }
            "elu" => self.one_tensor(a, "elu").and_then(|(x, s)| {
                let alpha = self.float_arg(a, 1, "alpha", Some(1.0))?;
                let zero = self.splat(0.0, DType::F32, self.ty(x).rank(), s);
                let pos = self.binary(BinaryOp::Gt, x, zero, s)?;
                let e = self.unary(UnaryOp::Exp, x, s)?;
                let em1 = self.binary_const(BinaryOp::Sub, e, 1.0, s)?;
                let neg = self.binary_const(BinaryOp::Mul, em1, alpha, s)?;
                self.node(Prim::Select, &[pos, x, neg], None, s).map(Val::Tensor)
            }),
            "leaky_relu" => self.one_tensor(a, "leaky_relu").and_then(|(x, s)| {
                let slope = self.float_arg(a, 1, "slope", Some(0.01))?;
                let scaled = self.binary_const(BinaryOp::Mul, x, slope, s)?;
                let zero = self.splat(0.0, DType::F32, self.ty(x).rank(), s);
                let pos = self.binary(BinaryOp::Gt, x, zero, s)?;
                self.node(Prim::Select, &[pos, x, scaled], None, s).map(Val::Tensor)
            }),
            "logit" => self.one_tensor(a, "logit").and_then(|(x, s)| {
                let one = self.splat(1.0, DType::F32, self.ty(x).rank(), s);
                let q = self.binary(BinaryOp::Sub, one, x, s)?;
                let r = self.binary(BinaryOp::Div, x, q, s)?;
                self.unary(UnaryOp::Log, r, s).map(Val::Tensor)
            }),
            "clamp" => self.one_tensor(a, "clamp").and_then(|(x, s)| {
                let lo = self.float_arg(a, 1, "lo", None)?;
                let hi = self.float_arg(a, 2, "hi", None)?;
                let y = self.binary_const(BinaryOp::Max, x, lo, s)?;
                self.binary_const(BinaryOp::Min, y, hi, s).map(Val::Tensor)
            }),
            "select" => {
                let (c, cs) = self.pos_arg(a, 0, "cond")?;
                let (x, xs) = self.pos_arg(a, 1, "a")?;
                let (y, _) = self.pos_arg(a, 2, "b")?;
                let c = self.expect_tensor(&c, cs, "select's condition")?;
                let x = self.expect_tensor(&x, xs, "select's first branch")?;
                let y = self.expect_tensor(&y, xs, "select's second branch")?;
                let rank = self.ty(c).rank().max(self.ty(x).rank()).max(self.ty(y).rank());
                let c = self.lift_rank(c, rank, span)?;
                let x = self.lift_rank(x, rank, span)?;
                let y = self.lift_rank(y, rank, span)?;
                self.node(Prim::Select, &[c, x, y], None, span).map(Val::Tensor)
            }
            "to_float" => {
                self.one_tensor(a, name).and_then(|(x, s)| self.cast(x, DType::F32, s).map(Val::Tensor))
            }
            "to_int" => {
                self.one_tensor(a, name).and_then(|(x, s)| self.cast(x, DType::I32, s).map(Val::Tensor))
            }
            "stop_grad" => self
                .one_tensor(a, name)
                .and_then(|(x, s)| self.node(Prim::StopGrad, &[x], None, s).map(Val::Tensor)),
            "softmax" | "log_softmax" => self.one_tensor(a, name).and_then(|(x, s)| {
                let axis = self.axis_arg(a, x, 1, "axis", Some(1))?;
                let lse = self.logsumexp(x, axis, s)?;
                let ls = self.binary(BinaryOp::Sub, x, lse, s)?;
                if name == "softmax" {
                    self.unary(UnaryOp::Exp, ls, s).map(Val::Tensor)
                } else {
                    Ok(Val::Tensor(ls))
                }
            }),
            "sum" | "mean" | "max" | "min" | "norm" | "logsumexp" => self.reduction(name, a, span),
            "argmax" => self.one_tensor(a, name).and_then(|(x, s)| {
                let axis = self.axis_arg(a, x, 1, "axis", Some(1))?;
                self.reduce(ReduceOp::ArgMax, x, &[axis], false, s).map(Val::Tensor)
            }),
            "reshape" => self.reshape_fn(a, span),
            "flatten" => self.one_tensor(a, name).and_then(|(x, s)| {
                let t = self.ty(x).clone();
                if t.rank() < 2 {
                    return Ok(Val::Tensor(x));
                }
                let rest =
                    t.shape[1..].iter().try_fold(Dim::constant(1), |acc, d| acc.mul(d)).map_err(|_| ())?;
                self.reshape(x, vec![t.shape[0].clone(), rest], s).map(Val::Tensor)
            }),
            "squeeze" | "unsqueeze" => self.squeeze_fn(name, a, span),
            "permute" => self.one_tensor(a, name).and_then(|(x, s)| {
                let perm = self.int_list_arg(a, 1, "axes")?;
                let perm: Vec<usize> = perm.into_iter().map(|p| p as usize).collect();
                self.node(Prim::Permute { perm }, &[x], None, s).map(Val::Tensor)
            }),
            "concat" => self.concat_fn(a, span),
            "split" => self.split_fn(a, span),
            "pixel_shuffle" | "pixel_unshuffle" => self.pixel_shuffle_fn(name, a, span),
            "upsample" => self.one_tensor(a, name).and_then(|(x, s)| {
                let scale = self.int_arg(a, 1, "scale", Some(2))?;
                let mode = match self.str_arg(a, 2, "mode", Some("nearest"))?.as_str() {
                    "nearest" => UpsampleMode::Nearest,
                    "bilinear" => UpsampleMode::Bilinear,
                    "bicubic" => return self.bicubic(x, scale.max(1) as usize, s).map(Val::Tensor),
                    other => {
                        return self.bad_option(span, "mode", other, &["nearest", "bilinear", "bicubic"]);
                    }
                };
                let scale = scale as usize;
                self.node(Prim::Upsample { mode, scale: [scale, scale] }, &[x], None, s).map(Val::Tensor)
            }),
            "max_pool2d" | "avg_pool2d" => self.one_tensor(a, name).and_then(|(x, s)| {
                let k = self.pair_arg(a, 1, "kernel", None)?;
                let stride = self.pair_arg(a, 2, "stride", Some(k))?;
                let pad = self.pair_arg(a, 3, "pad", Some([0, 0]))?;
                let kind = if name == "max_pool2d" { PoolKind::Max } else { PoolKind::Avg };
                let window = Window { kernel: k, stride, pad };
                self.node(Prim::Pool2d { kind, window }, &[x], None, s).map(Val::Tensor)
            }),
            "one_hot" => self.one_tensor(a, name).and_then(|(x, s)| {
                let k = self.dim_arg(a, 1, "classes")?;
                self.one_hot(x, k, s).map(Val::Tensor)
            }),
            "zeros" | "ones" | "full" => {
                let shape = self.shape_arg(a, 0, "shape")?;
                let value = match name {
                    "zeros" => 0.0,
                    "ones" => 1.0,
                    _ => self.float_arg(a, 1, "value", None)?,
                };
                Ok(Val::Tensor(self.fill(value, TensorType::f32(shape), span)))
            }
            "arange" => {
                let n = self.dim_arg(a, 0, "n")?;
                Ok(Val::Tensor(self.push_node(
                    Prim::Iota { axis: 0 },
                    TensorType::new(DType::I32, vec![n]),
                    &[],
                    span,
                )))
            }
            "linspace" => {
                let lo = self.float_arg(a, 0, "start", None)?;
                let hi = self.float_arg(a, 1, "stop", None)?;
                let n = self.dim_arg(a, 2, "n")?;
                let count = n.as_const().unwrap_or(1);
                let step = if count > 1 { (hi - lo) / (count - 1) as f64 } else { 0.0 };
                let i = self.push_node(Prim::Iota { axis: 0 }, TensorType::f32(vec![n]), &[], span);
                let scaled = self.binary_const(BinaryOp::Mul, i, step, span)?;
                self.binary_const(BinaryOp::Add, scaled, lo, span).map(Val::Tensor)
            }
            "cumprod" | "cumsum" => self.one_tensor(a, name).and_then(|(x, s)| {
                let axis = self.axis_arg(a, x, 1, "axis", Some(0))?;
                let op = if name == "cumprod" { ScanOp::Prod } else { ScanOp::Sum };
                self.node(Prim::Scan { op, axis }, &[x], None, s).map(Val::Tensor)
            }),
            "logabsdet" | "inverse" => self.one_tensor(a, name).and_then(|(x, s)| {
                let prim = if name == "logabsdet" { Prim::LogAbsDet } else { Prim::Inverse };
                self.node(prim, &[x], None, s).map(Val::Tensor)
            }),
            // solve(a, b) = a^-1 @ b, through the inverse (small systems, as the inverse's
            // gradient already is); b is [.., n, k] or a vector [.., n].
            "solve" => {
                let (a_, b) = (self.pos_arg(a, 0, "a")?, self.pos_arg(a, 1, "b")?);
                let m = self.expect_tensor(&a_.0, a_.1, "solve's matrix")?;
                let v = self.expect_tensor(&b.0, b.1, "solve's right-hand side")?;
                let inv = self.node(Prim::Inverse, &[m], None, span)?;
                let vector = self.ty(v).rank() + 1 == self.ty(m).rank();
                let rhs = if vector {
                    let mut shape = self.ty(v).shape.clone();
                    shape.push(Dim::constant(1));
                    self.reshape(v, shape, span)?
                } else {
                    v
                };
                let x = match self.matmul_val(&Val::Tensor(inv), &Val::Tensor(rhs), span) {
                    Val::Tensor(x) => x,
                    _ => return Err(()),
                };
                if vector {
                    let shape = self.ty(v).shape.clone();
                    return self.reshape(x, shape, span).map(Val::Tensor);
                }
                Ok(Val::Tensor(x))
            }
            "normal" | "uniform" => {
                let shape = self.shape_arg(a, 0, "shape")?;
                let dist = if name == "normal" { Distribution::Normal } else { Distribution::Uniform };
                Ok(Val::Tensor(self.random(dist, shape, span)))
            }
            "bernoulli" => self.one_tensor(a, name).and_then(|(p, s)| {
                let shape = self.ty(p).shape.clone();
                let u = self.random(Distribution::Uniform, shape, s);
                let lt = self.binary(BinaryOp::Lt, u, p, s)?;
                self.cast(lt, DType::F32, s).map(Val::Tensor)
            }),
            "randint" => {
                let shape = self.shape_arg(a, 0, "shape")?;
                let lo = self.float_arg(a, 1, "low", None)?;
                let hi = self.float_arg(a, 2, "high", None)?;
                let u = self.random(Distribution::Uniform, shape, span);
                let scaled = self.binary_const(BinaryOp::Mul, u, hi - lo, span)?;
                let shifted = self.binary_const(BinaryOp::Add, scaled, lo, span)?;
                let f = self.unary(UnaryOp::Floor, shifted, span)?;
                // f32 rounding of u * (hi - lo) + lo can reach hi (u just below 1, a large
                // lo): the draw is held below it, so its range is exactly lo..hi.
                let f = self.binary_const(BinaryOp::Min, f, (hi - 1.0).max(lo), span)?;
                let drawn = self.cast(f, DType::I32, span)?;
                if lo.fract() == 0.0 && hi.fract() == 0.0 && lo < hi {
                    self.int_ranges.insert(drawn, (lo as i64, hi as i64));
                }
                Ok(Val::Tensor(drawn))
            }
            "categorical" => self.one_tensor(a, name).and_then(|(logits, s)| {
                // Gumbel-max: argmax over the class axis (1) of logits - log(-log(u)).
                if self.ty(logits).rank() < 2 {
                    return self.fail(s, "categorical needs logits [N, K, ..] with the classes on axis 1");
                }
                let shape = self.ty(logits).shape.clone();
                let u = self.random(Distribution::Uniform, shape, s);
                let u = self.binary_const(BinaryOp::Max, u, 1e-20, s)?;
                let l1 = self.unary(UnaryOp::Log, u, s)?;
                let n1 = self.unary(UnaryOp::Neg, l1, s)?;
                let l2 = self.unary(UnaryOp::Log, n1, s)?;
                let g = self.binary(BinaryOp::Sub, logits, l2, s)?;
                self.reduce(ReduceOp::ArgMax, g, &[1], false, s).map(Val::Tensor)
            }),
            "mse" | "l1" => self.two_tensors(a, name).and_then(|(x, y, s)| {
                let d = self.binary(BinaryOp::Sub, x, y, s)?;
                let e = if name == "mse" {
                    self.binary(BinaryOp::Mul, d, d, s)?
                } else {
                    self.unary(UnaryOp::Abs, d, s)?
                };
                self.mean_all(e, s).map(Val::Tensor)
            }),
            "bce" => self.two_tensors(a, name).and_then(|(p, y, s)| {
                self.warn_on_logits(p, s);
                self.bce(p, y, s).map(Val::Tensor)
            }),
            "bce_logits" => {
                self.two_tensors(a, name).and_then(|(z, y, s)| self.bce_logits(z, y, s).map(Val::Tensor))
            }
            "cross_entropy" => self.cross_entropy(a, span),
            "kl_normal" => self.two_tensors(a, name).and_then(|(mu, logvar, s)| {
                // KL(N(mu, exp(logvar)) || N(0, I)) = 0.5 * sum(exp(lv) + mu^2 - 1 - lv), per sample.
                let e = self.unary(UnaryOp::Exp, logvar, s)?;
                let m2 = self.binary(BinaryOp::Mul, mu, mu, s)?;
                let t = self.binary(BinaryOp::Add, e, m2, s)?;
                let t = self.binary_const(BinaryOp::Sub, t, 1.0, s)?;
                let t = self.binary(BinaryOp::Sub, t, logvar, s)?;
                let axes: Vec<usize> = (1..self.ty(t).rank()).collect();
                let k = self.reduce(ReduceOp::Sum, t, &axes, false, s)?;
                self.binary_const(BinaryOp::Mul, k, 0.5, s).map(Val::Tensor)
            }),
            "psnr" => self.psnr(a),
            "ssim" => self.ssim(a),
            "grad" => self.grad_fn(a, span),
            "keep" => self.keep(a, span).map(Val::Tensor),
            "grid" => self.one_tensor(a, name).and_then(|(x, s)| {
                if self.ty(x).rank() != 4 {
                    let t = self.ty(x).clone();
                    return self.fail(s, &format!("grid needs images [N, C, H, W], found {t}"));
                }
                let _ = a.named.iter().position(|(n, _, _)| n == "nrow").map(|i| a.named.remove(i));
                Ok(Val::Tensor(x))
            }),
            _ => Ok(self.unknown(name, span, "function")),
        }
    }

    /// W0101 when `bce`'s probabilities come straight from a linear or convolution layer
    /// (through reshapes and a bias): unbounded logits, which `bce` clamps into nonsense (a
    /// discriminator's loss trains to negative values) where PyTorch would raise.
    fn warn_on_logits(&mut self, p: NodeId, span: Span) {
        let producer = |s: &Self, mut n: NodeId| {
            while matches!(
                s.graph.node(n).prim,
                Prim::Reshape | Prim::Broadcast | Prim::Permute { .. } | Prim::Slice { .. } | Prim::StopGrad
            ) {
                n = s.graph.inputs(n)[0];
            }
            n
        };
        let layer = |prim: &Prim| {
            matches!(prim, Prim::MatMul { .. } | Prim::Conv2d(_) | Prim::ConvTranspose2d { .. })
        };
        let n = producer(self, p);
        let logits = match &self.graph.node(n).prim {
            prim if layer(prim) => true,
            Prim::Binary(BinaryOp::Add) => {
                self.graph.inputs(n).iter().any(|&i| layer(&self.graph.node(producer(self, i)).prim))
            }
            _ => false,
        };
        if logits {
            self.error(
                TypeError::new(
                    "W0101",
                    span,
                    "`bce` is given the output of a layer: logits, not probabilities",
                )
                .label("values outside [0, 1]")
                .help("use `bce_logits` on logits, or apply `sigmoid` first"),
            );
        }
    }

    /// `keep(s, value)`: `value` is the next value of state `s` (a `state(..)`), written when
    /// a training phase ends and read by the next step; `value` is also the result. In a
    /// sample or an eval nothing is kept, as with batch norm's running statistics.
    fn keep(&mut self, a: &mut Args, span: Span) -> Result<NodeId, ()> {
        let at = a.pos.first().map_or(span, |p| p.1);
        let (s, value, _) = self.two_tensors(a, "keep")?;
        let Some(&index) = self.states.get(&s) else {
            let from = self.graph.node(s).span;
            self.error(
                TypeError::new("E0105", at, "`keep` keeps the next value of a `state(..)`")
                    .label("not a state")
                    .note(from, "made here")
                    .help("make the state in the net: `let u = state([1, n], init: \"normal\")`, then `keep(u, next)`"),
            );
            return Err(());
        };
        let (want, have) = (self.ty(s).clone(), self.ty(value).clone());
        if want != have {
            return self.fail(span, &format!("the next value {have} of a state {want} must have its type"));
        }
        if self.mode == super::Mode::Train {
            let next = self.node(Prim::StopGrad, &[value], None, span)?;
            match self.running.iter_mut().find(|(i, _)| *i == index) {
                Some(entry) => entry.1 = next,
                None => self.running.push((index, next)),
            }
            self.states.insert(next, index);
        }
        Ok(value)
    }

    pub(super) fn fail<T>(&mut self, span: Span, message: &str) -> Result<T, ()> {
        let origin = self.origin.clone();
        self.error(TypeError::new("E0106", span, message.to_string()).label(format!("in `{origin}`")));
        Err(())
    }

    fn bad_option<T>(&mut self, span: Span, what: &str, found: &str, options: &[&str]) -> Result<T, ()> {
        self.error(
            TypeError::new("E0104", span, format!("unknown {what} \"{found}\""))
                .label(format!("not a {what}"))
                .help(format!("use one of: {}", options.join(", "))),
        );
        Err(())
    }

    /// Named arguments a builtin did not consume are mistakes.
    /// Reports each one; true if there were any.
    pub(super) fn reject_leftover(&mut self, a: &Args, name: &str) -> bool {
        for (n, _, span) in &a.named {
            let mut e = TypeError::new("E0104", *span, format!("`{name}` has no argument `{n}`"))
                .label("unknown argument");
            if let Some(s) = option_suggestion(n) {
                e = e.help(format!("did you mean `{s}`?"));
            }
            self.error(e);
        }
        !a.named.is_empty()
    }

    /// After a call failed part-way (its later options never read): the named arguments no
    /// built-in takes but one is spelt like (`padding:` for `pad:`), so every misspelling
    /// shows at once instead of one per run.
    pub(super) fn reject_misspelt(&mut self, a: &Args, name: &str) {
        for (n, _, span) in &a.named {
            if OPTION_NAMES.contains(&n.as_str()) {
                continue;
            }
            if let Some(s) = option_suggestion(n) {
                self.error(
                    TypeError::new("E0104", *span, format!("`{name}` has no argument `{n}`"))
                        .label("unknown argument")
                        .help(format!("did you mean `{s}`?")),
                );
            }
        }
    }

    // ---- argument access -----------------------------------------------------------------

    pub(super) fn pos_arg(&mut self, a: &Args, i: usize, what: &str) -> Result<(Val, Span), ()> {
        match a.pos.get(i) {
            Some(v) => Ok(v.clone()),
            None => {
                let origin = self.origin.clone();
                self.error(
                    TypeError::new("E0104", a.span, format!("`{origin}` is missing its argument `{what}`"))
                        .label("in this call"),
                );
                Err(())
            }
        }
    }

    /// Positional argument `i` or named `name`, removing the named one; `None` if absent.
    pub(super) fn opt_arg(&mut self, a: &mut Args, i: usize, name: &str) -> Option<(Val, Span)> {
        if let Some(k) = a.named.iter().position(|(n, _, _)| n == name) {
            let (_, v, s) = a.named.remove(k);
            return Some((v, s));
        }
        a.pos.get(i).cloned()
    }

    fn one_tensor(&mut self, a: &mut Args, what: &str) -> Result<(NodeId, Span), ()> {
        let (v, s) = self.pos_arg(a, 0, "x")?;
        let n = self.expect_tensor(&v, s, &format!("`{what}`'s input"))?;
        Ok((n, a.span))
    }

    pub(super) fn two_tensors(&mut self, a: &mut Args, what: &str) -> Result<(NodeId, NodeId, Span), ()> {
        let (x, xs) = self.pos_arg(a, 0, "input")?;
        let (y, ys) = self.pos_arg(a, 1, "target")?;
        let x = self.expect_tensor(&x, xs, &format!("`{what}`'s first argument"))?;
        let y = self.expect_tensor(&y, ys, &format!("`{what}`'s second argument"))?;
        let (tx, ty) = (self.ty(x).clone(), self.ty(y).clone());
        if tx.shape != ty.shape {
            self.error(
                TypeError::new("E0106", a.span, format!("`{what}` compares {tx} with {ty}"))
                    .label("the shapes differ")
                    .note(xs, format!("this is {tx}"))
                    .note(ys, format!("this is {ty}"))
                    .help("both arguments must have the same shape"),
            );
            return Err(());
        }
        Ok((x, y, a.span))
    }

    fn unary_fn(&mut self, a: &mut Args, op: UnaryOp) -> Result<Val, ()> {
        let (x, s) = self.one_tensor(a, op.name())?;
        self.unary(op, x, s).map(Val::Tensor)
    }

    /// `log(2.0)` on a number folds; on a tensor it is the primitive.
    fn float_or_unary(&mut self, a: &mut Args, op: UnaryOp, f: fn(f64) -> f64) -> Result<Val, ()> {
        match a.pos.first() {
            Some((Val::Float(x), _)) => Ok(Val::Float(f(*x))),
            Some((Val::Int(d), _)) if d.as_const().is_some() => {
                Ok(Val::Float(f(d.as_const().unwrap_or(0) as f64)))
            }
            _ => self.unary_fn(a, op),
        }
    }

    pub(super) fn float_arg(
        &mut self,
        a: &mut Args,
        i: usize,
        name: &str,
        default: Option<f64>,
    ) -> Result<f64, ()> {
        match (self.opt_arg(a, i, name), default) {
            (Some((Val::Float(f), _)), _) => Ok(f),
            (Some((Val::Int(d), s)), _) => match d.as_const() {
                Some(v) => Ok(v as f64),
                None => self.wrong_kind(s, name, "a number", "a symbolic dim"),
            },
            (Some((v, s)), _) => self.wrong_kind(s, name, "a number", v.kind_name()),
            (None, Some(d)) => Ok(d),
            (None, None) => self.missing(a, name),
        }
    }

    pub(super) fn dim_arg(&mut self, a: &mut Args, i: usize, name: &str) -> Result<Dim, ()> {
        match self.opt_arg(a, i, name) {
            Some((Val::Int(d), s)) => {
                if d.as_const().is_some_and(|v| v < 1) {
                    self.error(
                        TypeError::new("E0103", s, format!("`{name}` must be at least 1, found {d}"))
                            .label("not a size"),
                    );
                    return Err(());
                }
                Ok(d)
            }
            Some((v, s)) => self.wrong_kind(s, name, "an int", v.kind_name()),
            None => self.missing(a, name),
        }
    }

    pub(super) fn int_arg(
        &mut self,
        a: &mut Args,
        i: usize,
        name: &str,
        default: Option<i64>,
    ) -> Result<i64, ()> {
        match (self.opt_arg(a, i, name), default) {
            (Some((Val::Int(d), s)), _) => match d.as_const() {
                Some(v) if v >= 0 => Ok(v),
                _ => self.wrong_kind(s, name, "a non-negative int", &format!("`{d}`")),
            },
            (Some((v, s)), _) => self.wrong_kind(s, name, "an int", v.kind_name()),
            (None, Some(d)) => Ok(d),
            (None, None) => self.missing(a, name),
        }
    }

    /// An int or an `(h, w)` pair.
    pub(super) fn pair_arg(
        &mut self,
        a: &mut Args,
        i: usize,
        name: &str,
        default: Option<[usize; 2]>,
    ) -> Result<[usize; 2], ()> {
        let as_usize = |v: &Val| match v {
            Val::Int(d) => d.as_const().and_then(|x| usize::try_from(x).ok()),
            _ => None,
        };
        match (self.opt_arg(a, i, name), default) {
            (Some((v, s)), _) => {
                let pair = match &v {
                    Val::Tuple(xs) | Val::List(xs) if xs.len() == 2 => {
                        as_usize(&xs[0]).zip(as_usize(&xs[1])).map(|(h, w)| [h, w])
                    }
                    other => as_usize(other).map(|x| [x, x]),
                };
                match pair {
                    Some(p) => Ok(p),
                    None => self.wrong_kind(s, name, "a non-negative int or an (h, w) pair", v.kind_name()),
                }
            }
            (None, Some(d)) => Ok(d),
            (None, None) => self.missing(a, name),
        }
    }

    pub(super) fn str_arg(
        &mut self,
        a: &mut Args,
        i: usize,
        name: &str,
        default: Option<&str>,
    ) -> Result<String, ()> {
        match (self.opt_arg(a, i, name), default) {
            (Some((Val::Str(s), _)), _) => Ok(s),
            (Some((v, s)), _) => self.wrong_kind(s, name, "a string", v.kind_name()),
            (None, Some(d)) => Ok(d.to_string()),
            (None, None) => self.missing(a, name),
        }
    }

    pub(super) fn bool_arg(&mut self, a: &mut Args, i: usize, name: &str, default: bool) -> Result<bool, ()> {
        match self.opt_arg(a, i, name) {
            Some((Val::Bool(b), _)) => Ok(b),
            Some((v, s)) => self.wrong_kind(s, name, "a bool", v.kind_name()),
            None => Ok(default),
        }
    }

    fn int_list_arg(&mut self, a: &mut Args, i: usize, name: &str) -> Result<Vec<i64>, ()> {
        match self.opt_arg(a, i, name) {
            Some((Val::List(xs) | Val::Tuple(xs), s)) => xs
                .iter()
                .map(|x| match x {
                    Val::Int(d) => d.as_const().ok_or(()),
                    _ => Err(()),
                })
                .collect::<Result<Vec<_>, ()>>()
                .or_else(|()| self.wrong_kind(s, name, "a list of ints", "something else")),
            Some((v, s)) => self.wrong_kind(s, name, "a list of ints", v.kind_name()),
            None => self.missing(a, name),
        }
    }

    /// A shape: a list of dims.
    pub(super) fn shape_arg(&mut self, a: &mut Args, i: usize, name: &str) -> Result<Vec<Dim>, ()> {
        match self.opt_arg(a, i, name) {
            Some((Val::List(xs) | Val::Tuple(xs), s)) => {
                let mut out = Vec::new();
                for x in xs {
                    match x {
                        Val::Int(d) if d.as_const().is_none_or(|v| v >= 0) => out.push(d),
                        Val::Poison => return Err(()),
                        other => return self.wrong_kind(s, name, "a list of dims", other.kind_name()),
                    }
                }
                Ok(out)
            }
            Some((v, s)) => self.wrong_kind(s, name, "a list of dims like [B, 64]", v.kind_name()),
            None => self.missing(a, name),
        }
    }

    pub(super) fn wrong_kind<T>(&mut self, span: Span, name: &str, want: &str, found: &str) -> Result<T, ()> {
        let origin = self.origin.clone();
        self.error(
            TypeError::new("E0104", span, format!("`{origin}`'s `{name}` must be {want}, found {found}"))
                .label(format!("this is {found}")),
        );
        Err(())
    }

    fn missing<T>(&mut self, a: &Args, name: &str) -> Result<T, ()> {
        let origin = self.origin.clone();
        // `kernel_size: 4` where `kernel` is missing: one mistake, said where it was made.
        if let Some((n, span)) = a
            .named
            .iter()
            .find(|(n, _, _)| option_suggestion(n) == Some(name))
            .map(|(n, _, s)| (n.clone(), *s))
        {
            self.error(
                TypeError::new("E0104", span, format!("`{origin}` has no argument `{n}`"))
                    .label(format!("this is `{name}`"))
                    .help(format!("did you mean `{name}`?")),
            );
            return Err(());
        }
        self.error(
            TypeError::new("E0104", a.span, format!("`{origin}` is missing its argument `{name}`"))
                .label("in this call")
                .help(format!("pass `{name}: ..`")),
        );
        Err(())
    }

    /// An axis argument: an int (negative counts from the end).
    fn axis_arg(
        &mut self,
        a: &mut Args,
        x: NodeId,
        i: usize,
        name: &str,
        default: Option<i64>,
    ) -> Result<usize, ()> {
        let rank = self.ty(x).rank() as i64;
        let (v, s) = match (self.opt_arg(a, i, name), default) {
            (Some((Val::Int(d), s)), _) => (d.as_const(), s),
            (Some((v, s)), _) => return self.wrong_kind(s, name, "an axis number", v.kind_name()),
            (None, Some(d)) => (Some(d), a.span),
            (None, None) => return self.missing(a, name),
        };
        match v.map(|v| if v < 0 { v + rank } else { v }) {
            Some(v) if (0..rank).contains(&v) => Ok(v as usize),
            _ => {
                let t = self.ty(x).clone();
                let shown = v.map_or_else(|| "a symbolic axis".to_string(), |v| format!("axis {v}"));
                self.error(
                    TypeError::new("E0109", s, format!("{shown} is not an axis of {t}"))
                        .label("no such axis")
                        .help(format!(
                            "a tensor of rank {rank} has axes 0 to {} (or -1 to -{rank} from the end)",
                            rank - 1
                        )),
                );
                Err(())
            }
        }
    }

    // ---- reductions over named axes -----------------------------------------------------

    fn reduction(&mut self, name: &str, a: &mut Args, span: Span) -> Result<Val, ()> {
        // `max(a, b)` / `min(a, b)` with two operands is element-wise.
        if (name == "max" || name == "min") && a.pos.len() == 2 {
            let (x, y) = (a.pos[0].0.clone(), a.pos[1].0.clone());
            let op = if name == "max" { BinaryOp::Max } else { BinaryOp::Min };
            return Ok(self.tensor_binary(op, &x, &y, span));
        }
        let (x, _) = self.one_tensor(a, name)?;
        let over = match self.opt_arg(a, 1, "over") {
            Some((v, s)) => Some(self.named_axes(x, &v, s)?),
            None => None,
        };
        let axes = over.clone().unwrap_or_else(|| (0..self.ty(x).rank()).collect());
        let r = match name {
            "sum" => self.reduce(ReduceOp::Sum, x, &axes, false, span)?,
            "mean" => self.reduce(ReduceOp::Mean, x, &axes, false, span)?,
            "max" => self.reduce(ReduceOp::Max, x, &axes, false, span)?,
            "min" => self.reduce(ReduceOp::Min, x, &axes, false, span)?,
            "logsumexp" => {
                let l = self.logsumexp_axes(x, &axes, span)?;
                let shape: Vec<Dim> = self
                    .ty(l)
                    .shape
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| !axes.contains(i))
                    .map(|(_, d)| d.clone())
                    .collect();
                self.reshape(l, shape, span)?
            }
            _ => {
                self.check_penalty_norm(x, &axes, span);
                let sq = self.binary(BinaryOp::Mul, x, x, span)?;
                let s = self.reduce(ReduceOp::Sum, sq, &axes, false, span)?;
                self.unary(UnaryOp::Sqrt, s, span)?
            }
        };
        Ok(Val::Tensor(r))
    }

    /// Resolves `over: [C, H, W]` to axis numbers. Names are matched by extent as an ordered
    /// subsequence of the tensor's shape; an ambiguous match is an error, never a guess.
    /// Plain axis numbers are accepted too.
    fn named_axes(&mut self, x: NodeId, v: &Val, span: Span) -> Result<Vec<usize>, ()> {
        let shape = self.ty(x).shape.clone();
        let items = match v {
            Val::List(xs) | Val::Tuple(xs) => xs.clone(),
            other => vec![other.clone()],
        };
        let mut want = Vec::new();
        for it in &items {
            match it {
                Val::Int(d) => want.push(d.clone()),
                _ => return self.wrong_kind(span, "over", "a list of dims", it.kind_name()),
            }
        }
        let matches = subsequence_matches(&shape, &want, 4);
        match matches.as_slice() {
            [one] => Ok(one.clone()),
            [] => {
                let t = self.ty(x).clone();
                let names: Vec<String> = want.iter().map(Dim::to_string).collect();
                let axes = self.dim_names(&t.shape);
                self.error(
                    TypeError::new(
                        "E0109",
                        span,
                        format!("{t} has no axes of extents [{}] in this order", names.join(", ")),
                    )
                    .label("not axes of this tensor")
                    .note(self.graph.node(x).span, format!("this is {t}"))
                    .help(format!(
                        "`over` names axes by their extents, in order; this tensor's axes are [{}]: reduce before reshaping or flattening, or give axis numbers",
                        axes.join(", ")
                    )),
                );
                Err(())
            }
            _ => {
                let t = self.ty(x).clone();
                self.error(
                    TypeError::new(
                        "E0109",
                        span,
                        format!("`over` is ambiguous for {t}: several axes have these extents"),
                    )
                    .label(format!("{} ways to match these extents in {t}", matches.len()))
                    .note(self.graph.node(x).span, format!("this is {t}"))
                    .help("the checker never guesses: name every axis you reduce (e.g. `over: [C, H, W]`), or give axis numbers (`over: [2]`)"),
                );
                Err(())
            }
        }
    }

    /// WGAN-GP's penalty needs one norm per sample: a norm of a gradient must reduce every
    /// axis but the batch axis.
    fn check_penalty_norm(&mut self, x: NodeId, axes: &[usize], span: Span) {
        if !matches!(self.graph.node(x).prim, Prim::Grad) {
            return;
        }
        let rank = self.ty(x).rank();
        let per_sample: Vec<usize> = (1..rank).collect();
        if axes != per_sample.as_slice() {
            let t = self.ty(x).clone();
            let reduced = self.dim_names(&axes.iter().map(|&a| t.shape[a].clone()).collect::<Vec<_>>());
            let all = self.dim_names(&per_sample.iter().map(|&a| t.shape[a].clone()).collect::<Vec<_>>());
            let what = if axes.contains(&0) {
                "one norm mixes every sample of the batch".to_string()
            } else {
                format!(
                    "reduces over [{}] only: one norm per sample and per remaining position",
                    reduced.join(", ")
                )
            };
            self.error(
                TypeError::new("E0119", span, "this gradient-penalty norm is not one norm per sample")
                    .label(what)
                    .note(self.graph.node(x).span, format!("the gradient is {t}"))
                    .help(format!(
                        "the penalty needs ‖∇D(x̂)‖ of each sample, over every axis but the batch: `norm(.., over: [{}])`",
                        all.join(", ")
                    )),
            );
        }
    }

    /// Names for extents as the user declared them: module dims matched in declaration order
    /// (so `[1, 28, 28]` reads `[C, H, W]`), the extent itself when no dim matches.
    pub(super) fn dim_names(&self, extents: &[Dim]) -> Vec<String> {
        let mut names = Vec::new();
        let mut from = 0;
        for d in extents {
            let found = d.as_const().and_then(|v| {
                self.dims
                    .iter()
                    .enumerate()
                    .skip(from)
                    .find(|(_, (_, e))| e.value == Some(v))
                    .map(|(i, (n, _))| (i, n))
            });
            match found {
                Some((i, n)) => {
                    names.push(n.clone());
                    from = i + 1;
                }
                None => names.push(d.to_string()),
            }
        }
        names
    }

    pub(super) fn logsumexp(&mut self, x: NodeId, axis: usize, span: Span) -> Result<NodeId, ()> {
        self.logsumexp_axes(x, &[axis], span)
    }

    /// `m + log(sum(exp(x - m)))` with `m` the (gradient-stopped) max, keeping the axes.
    fn logsumexp_axes(&mut self, x: NodeId, axes: &[usize], span: Span) -> Result<NodeId, ()> {
        let m = self.reduce(ReduceOp::Max, x, axes, true, span)?;
        let m = self.node(Prim::StopGrad, &[m], None, span)?;
        let d = self.binary(BinaryOp::Sub, x, m, span)?;
        let e = self.unary(UnaryOp::Exp, d, span)?;
        let s = self.reduce(ReduceOp::Sum, e, axes, true, span)?;
        let l = self.unary(UnaryOp::Log, s, span)?;
        self.binary(BinaryOp::Add, l, m, span)
    }

    fn softplus(&mut self, x: NodeId, span: Span) -> Result<NodeId, ()> {
        // max(x, 0) + log1p(exp(-|x|)), stable for large |x|.
        let r = self.unary(UnaryOp::Relu, x, span)?;
        let a = self.unary(UnaryOp::Abs, x, span)?;
        let n = self.unary(UnaryOp::Neg, a, span)?;
        let e = self.unary(UnaryOp::Exp, n, span)?;
        let l = self.unary(UnaryOp::Log1p, e, span)?;
        self.binary(BinaryOp::Add, r, l, span)
    }

    fn bce(&mut self, p: NodeId, y: NodeId, span: Span) -> Result<NodeId, ()> {
        // -(y log p + (1 - y) log(1 - p)), with p and 1 - p kept ≥ 1e-12 inside the logs
        // (PyTorch clamps the logs at -100 instead, which would need a subnormal in f32).
        // Clamping the argument, not the log, keeps the gradient finite when p saturates.
        const TINY: f64 = 1e-12;
        let pc = self.binary_const(BinaryOp::Max, p, TINY, span)?;
        let lp = self.unary(UnaryOp::Log, pc, span)?;
        let one = self.splat(1.0, DType::F32, self.ty(p).rank(), span);
        let q = self.binary(BinaryOp::Sub, one, p, span)?;
        let qc = self.binary_const(BinaryOp::Max, q, TINY, span)?;
        let lq = self.unary(UnaryOp::Log, qc, span)?;
        let ny = self.binary(BinaryOp::Sub, one, y, span)?;
        let a = self.binary(BinaryOp::Mul, y, lp, span)?;
        let b = self.binary(BinaryOp::Mul, ny, lq, span)?;
        let s = self.binary(BinaryOp::Add, a, b, span)?;
        let m = self.mean_all(s, span)?;
        self.unary(UnaryOp::Neg, m, span)
    }

    fn bce_logits(&mut self, z: NodeId, y: NodeId, span: Span) -> Result<NodeId, ()> {
        // softplus(z) - z y: stable binary cross-entropy on logits.
        let sp = self.softplus(z, span)?;
        let zy = self.binary(BinaryOp::Mul, z, y, span)?;
        let l = self.binary(BinaryOp::Sub, sp, zy, span)?;
        self.mean_all(l, span)
    }

    fn one_hot(&mut self, labels: NodeId, k: Dim, span: Span) -> Result<NodeId, ()> {
        let t = self.ty(labels).clone();
        if t.dtype != DType::I32 {
            let from = self.graph.node(labels).span;
            self.error(
                TypeError::new("E0122", span, format!("one_hot needs int labels, found {} {t}", t.dtype))
                    .label("labels must be class indices")
                    .note(from, format!("this is {} {t}", t.dtype))
                    .help("declare the labels as `int[..]`, or convert them with to_int(..)"),
            );
            return Err(());
        }
        self.index_use(labels, &k, "one_hot", span);
        let mut shape = t.shape.clone();
        shape.push(Dim::constant(1));
        let l = self.reshape(labels, shape, span)?;
        let mut ishape = vec![Dim::constant(1); t.rank()];
        ishape.push(k);
        let axis = t.rank();
        let iota = self.push_node(Prim::Iota { axis }, TensorType::new(DType::I32, ishape), &[], span);
        let eq = self.binary(BinaryOp::Eq, l, iota, span)?;
        self.cast(eq, DType::F32, span)
    }

    /// `cross_entropy(logits [N, K, ..], target int[N, ..])`: mean of `logsumexp - logit[target]`.
    fn cross_entropy(&mut self, a: &mut Args, span: Span) -> Result<Val, ()> {
        let (l, ls) = self.pos_arg(a, 0, "logits")?;
        let (t, ts) = self.pos_arg(a, 1, "target")?;
        let logits = self.expect_tensor(&l, ls, "cross_entropy's logits")?;
        let target = self.expect_tensor(&t, ts, "cross_entropy's target")?;
        let (lt, tt) = (self.ty(logits).clone(), self.ty(target).clone());
        let mut expect: Vec<Dim> = lt.shape.clone();
        if lt.rank() >= 2 {
            expect.remove(1);
        }
        if lt.rank() >= 2 && tt.shape == expect && tt.dtype != DType::I32 {
            self.error(
                TypeError::new(
                    "E0122",
                    ts,
                    format!("cross_entropy needs int class targets, found {} {tt}", tt.dtype),
                )
                .label("targets are class indices, not values")
                .note(ls, format!("logits {lt}"))
                .help("convert them to class indices, e.g. `to_int(round(x * (K - 1)))`"),
            );
            return Err(());
        }
        if lt.rank() < 2 || tt.shape != expect || tt.dtype != DType::I32 {
            let want = TensorType::new(DType::I32, expect);
            self.error(
                TypeError::new(
                    "E0106",
                    span,
                    format!("cross_entropy of logits {lt} needs int targets {want}, found {tt}"),
                )
                .label("logits [N, K, ..] and targets [N, ..]")
                .note(ls, format!("logits {lt}"))
                .note(ts, format!("targets {tt}"))
                .help("the classes are axis 1 of the logits; targets are class indices (to_int(..))"),
            );
            return Err(());
        }
        let lse = self.logsumexp(logits, 1, span)?;
        self.index_use(target, &lt.shape[1], "cross_entropy", span);
        // One-hot of the target along axis 1.
        let mut tshape = tt.shape.clone();
        tshape.insert(1, Dim::constant(1));
        let t1 = self.reshape(target, tshape, span)?;
        let mut ishape = vec![Dim::constant(1); lt.rank()];
        ishape[1] = lt.shape[1].clone();
        let iota = self.push_node(Prim::Iota { axis: 1 }, TensorType::new(DType::I32, ishape), &[], span);
        let eq = self.binary(BinaryOp::Eq, t1, iota, span)?;
        let oh = self.cast(eq, DType::F32, span)?;
        let picked = self.binary(BinaryOp::Mul, logits, oh, span)?;
        let picked = self.reduce(ReduceOp::Sum, picked, &[1], true, span)?;
        let nll = self.binary(BinaryOp::Sub, lse, picked, span)?;
        self.mean_all(nll, span).map(Val::Tensor)
    }

    fn reshape_fn(&mut self, a: &mut Args, span: Span) -> Result<Val, ()> {
        let (x, _) = self.one_tensor(a, "reshape")?;
        let shape = self.shape_arg(a, 1, "shape")?;
        let from = self.ty(x).clone();
        let to = TensorType::new(from.dtype, shape.clone());
        let (n_from, n_to) = (from.numel().map_err(|_| ())?, to.numel().map_err(|_| ())?);
        if n_from != n_to {
            let mut e = TypeError::new("E0106", span, format!("cannot reshape {from} to {to}"))
                .label(format!("{n_to} elements, but the input has {n_from}"))
                .note(self.graph.node(x).span, format!("this is {from}"));
            if let Some(fix) = reshape_fix(&from, &shape) {
                e = e.help(fix);
            }
            self.error(e);
            return Err(());
        }
        self.reshape(x, shape, span).map(Val::Tensor)
    }

    fn squeeze_fn(&mut self, name: &str, a: &mut Args, span: Span) -> Result<Val, ()> {
        let (x, _) = self.one_tensor(a, name)?;
        let mut shape = self.ty(x).shape.clone();
        let rank = shape.len() as i64;
        let (axis, s) = match self.opt_arg(a, 1, "axis") {
            Some((Val::Int(d), s)) => (d.as_const().unwrap_or(i64::MAX), s),
            Some((v, s)) => return self.wrong_kind(s, "axis", "an int", v.kind_name()),
            None => return self.missing(a, "axis"),
        };
        let limit = if name == "squeeze" { rank } else { rank + 1 };
        let ax = if axis < 0 { axis + limit } else { axis };
        if !(0..limit).contains(&ax) {
            self.error(
                TypeError::new("E0109", s, format!("axis {axis} is out of range for rank {rank}"))
                    .label("no such axis"),
            );
            return Err(());
        }
        let ax = ax as usize;
        if name == "squeeze" {
            if shape[ax].as_const() != Some(1) {
                let t = self.ty(x).clone();
                self.error(
                    TypeError::new(
                        "E0106",
                        s,
                        format!("cannot squeeze axis {axis} of {t}: its extent is {}", t.shape[ax]),
                    )
                    .label("only extent-1 axes can be squeezed"),
                );
                return Err(());
            }
            shape.remove(ax);
        } else {
            shape.insert(ax, Dim::constant(1));
        }
        self.reshape(x, shape, span).map(Val::Tensor)
    }

    fn concat_fn(&mut self, a: &mut Args, span: Span) -> Result<Val, ()> {
        let (list, ls) = self.pos_arg(a, 0, "tensors")?;
        let Val::List(items) = list else {
            return self.wrong_kind(ls, "tensors", "a list of tensors", list.kind_name());
        };
        let mut nodes = Vec::new();
        for it in &items {
            nodes.push(self.expect_tensor(it, ls, "each concatenated value")?);
        }
        if nodes.is_empty() {
            return self.wrong_kind(ls, "tensors", "a non-empty list", "an empty list");
        }
        let first = nodes[0];
        let axis = self.axis_arg(a, first, 1, "axis", None)?;
        // Explain a mismatch with both shapes and where each came from.
        let t0 = self.ty(first).clone();
        for &n in &nodes[1..] {
            let t = self.ty(n).clone();
            let bad = t.rank() != t0.rank()
                || t.shape.iter().zip(&t0.shape).enumerate().any(|(k, (x, y))| k != axis && x != y);
            if bad {
                self.error(
                    TypeError::new("E0106", span, format!("cannot concat {t0} and {t} along axis {axis}"))
                        .label("every axis but the joined one must agree")
                        .note(self.graph.node(first).span, format!("this is {t0}"))
                        .note(self.graph.node(n).span, format!("this is {t}"))
                        .help("join tensors of the same resolution: check the skip connection's source"),
                );
                return Err(());
            }
        }
        self.node(Prim::Concat { axis }, &nodes, None, span).map(Val::Tensor)
    }

    /// `split(x, n, axis)`: `n` equal parts along `axis`, as a tuple.
    fn split_fn(&mut self, a: &mut Args, span: Span) -> Result<Val, ()> {
        let (x, _) = self.one_tensor(a, "split")?;
        let n = self.int_arg(a, 1, "parts", None)?;
        let axis = self.axis_arg(a, x, 2, "axis", None)?;
        let t = self.ty(x).clone();
        let extent = t.shape[axis].clone();
        let part = match extent.rem(&Dim::constant(n.max(1))) {
            Ok(r) if r.as_const() == Some(0) && n >= 1 => extent.div(&Dim::constant(n)).map_err(|_| ())?,
            _ => {
                self.error(
                    TypeError::new(
                        "E0106",
                        span,
                        format!("cannot split axis {axis} of {t} ({extent}) into {n} equal parts"),
                    )
                    .label("not divisible")
                    .note(self.graph.node(x).span, format!("this is {t}"))
                    .help(match extent.as_const() {
                        Some(v) if n >= 1 => format!(
                            "make axis {axis} a multiple of {n} (e.g. {}), so each part has the same size",
                            (v / n).max(1) * n
                        ),
                        _ => format!("make axis {axis} a multiple of {n}"),
                    }),
                );
                return Err(());
            }
        };
        let Some(len) = part.as_const() else {
            return self.fail(span, "split needs an axis of known extent");
        };
        let mut parts = Vec::new();
        for k in 0..n {
            let mut shape = t.shape.clone();
            shape[axis] = part.clone();
            let ty = TensorType::new(t.dtype, shape);
            let s =
                self.node(Prim::Slice { axis, start: (k * len) as usize, step: 1 }, &[x], Some(ty), span)?;
            parts.push(Val::Tensor(s));
        }
        Ok(Val::Tuple(parts))
    }

    /// Pixel shuffle as movement: reshape, permute, reshape.
    fn pixel_shuffle_fn(&mut self, name: &str, a: &mut Args, span: Span) -> Result<Val, ()> {
        let (x, _) = self.one_tensor(a, name)?;
        let r = self.int_arg(a, 1, "factor", None)?;
        let t = self.ty(x).clone();
        if t.rank() != 4 || r < 1 {
            return self.fail(span, &format!("{name} needs images [N, C, H, W] and a factor ≥ 1, found {t}"));
        }
        let rd = Dim::constant(r);
        let [n, c, h, w] = [t.shape[0].clone(), t.shape[1].clone(), t.shape[2].clone(), t.shape[3].clone()];
        let ov = |_| ();
        if name == "pixel_shuffle" {
            let rr = rd.mul(&rd).map_err(ov)?;
            if c.rem(&rr).map_err(|_| ())?.as_const() != Some(0) {
                let mut e = TypeError::new(
                    "E0106",
                    span,
                    format!("pixel_shuffle by {r} needs channels divisible by {}, found {c}", r * r),
                )
                .label(format!("{c} channels cannot fold into {r}x{r} blocks"))
                .note(self.graph.node(x).span, format!("this is {t}"));
                if let Some(cv) = c.as_const() {
                    let (lo, hi) = (cv / (r * r) * (r * r), (cv / (r * r) + 1) * (r * r));
                    e = e.help(format!(
                        "produce a multiple of {} channels before it (e.g. {} or {hi}): each output channel takes {} inputs",
                        r * r,
                        lo.max(r * r),
                        r * r
                    ));
                }
                self.error(e);
                return Err(());
            }
            let co = c.div(&rr).map_err(|_| ())?;
            let y = self.reshape(
                x,
                vec![n.clone(), co.clone(), rd.clone(), rd.clone(), h.clone(), w.clone()],
                span,
            )?;
            let y = self.node(Prim::Permute { perm: vec![0, 1, 4, 2, 5, 3] }, &[y], None, span)?;
            let out = vec![n, co, h.mul(&rd).map_err(ov)?, w.mul(&rd).map_err(ov)?];
            self.reshape(y, out, span).map(Val::Tensor)
        } else {
            let (hr, wr) = (h.rem(&rd).map_err(|_| ())?, w.rem(&rd).map_err(|_| ())?);
            if hr.as_const() != Some(0) || wr.as_const() != Some(0) {
                self.error(
                    TypeError::new(
                        "E0106",
                        span,
                        format!("pixel_unshuffle by {r} needs H and W divisible by {r}, found {t}"),
                    )
                    .label(format!("{h}x{w} does not cut into {r}x{r} blocks"))
                    .note(self.graph.node(x).span, format!("this is {t}"))
                    .help("use a factor that divides the image size, or resize the features first"),
                );
                return Err(());
            }
            let (ho, wo) = (h.div(&rd).map_err(|_| ())?, w.div(&rd).map_err(|_| ())?);
            let y = self.reshape(
                x,
                vec![n.clone(), c.clone(), ho.clone(), rd.clone(), wo.clone(), rd.clone()],
                span,
            )?;
            let y = self.node(Prim::Permute { perm: vec![0, 1, 3, 5, 2, 4] }, &[y], None, span)?;
            let co = c.mul(&rd).and_then(|x| x.mul(&rd)).map_err(ov)?;
            self.reshape(y, vec![n, co, ho, wo], span).map(Val::Tensor)
        }
    }

    pub(super) fn random(&mut self, dist: Distribution, shape: Vec<Dim>, span: Span) -> NodeId {
        let stream = self.streams;
        self.streams += 1;
        self.push_node(Prim::Random { dist, stream }, TensorType::f32(shape), &[], span)
    }

    /// `grad(f, x)`: `f` a scalar built from `x`, `x` a float tensor in scope.
    fn grad_fn(&mut self, a: &mut Args, span: Span) -> Result<Val, ()> {
        let (f, fs) = self.pos_arg(a, 0, "f")?;
        let (x, xs) = self.pos_arg(a, 1, "x")?;
        let f = self.expect_tensor(&f, fs, "grad's function value")?;
        let x = self.expect_tensor(&x, xs, "grad's variable")?;
        let ft = self.ty(f).clone();
        if ft.rank() != 0 {
            self.error(
                TypeError::new("E0114", fs, format!("grad needs a scalar function, found {ft}"))
                    .label(format!("this is {ft}"))
                    .help("reduce it first: `grad(sum(..), x)`"),
            );
            return Err(());
        }
        if !depends_on(&self.graph, f, x) {
            self.error(
                TypeError::new(
                    "E0115",
                    span,
                    "the function does not depend on the variable: its gradient is zero",
                )
                .label("grad of a constant")
                .note(xs, "this variable")
                .help("differentiate with respect to a value the function is computed from"),
            );
            return Err(());
        }
        self.node(Prim::Grad, &[f, x], None, span).map(Val::Tensor)
    }
}

/// True if `from` is reachable backwards from `node` (the value depends on it).
pub(super) fn depends_on(g: &crate::graph::Graph, node: NodeId, from: NodeId) -> bool {
    let mut seen = vec![false; g.len()];
    let mut stack = vec![node];
    while let Some(n) = stack.pop() {
        if n == from {
            return true;
        }
        if !std::mem::replace(&mut seen[n.index()], true) {
            stack.extend(g.inputs(n));
        }
    }
    false
}

/// All ways `want` matches an ordered subsequence of `shape`, up to `limit`.
fn subsequence_matches(shape: &[Dim], want: &[Dim], limit: usize) -> Vec<Vec<usize>> {
    fn go(
        shape: &[Dim],
        want: &[Dim],
        from: usize,
        acc: &mut Vec<usize>,
        out: &mut Vec<Vec<usize>>,
        limit: usize,
    ) {
        if out.len() >= limit {
            return;
        }
        let Some((first, rest)) = want.split_first() else {
            out.push(acc.clone());
            return;
        };
        for i in from..shape.len() {
            if &shape[i] == first {
                acc.push(i);
                go(shape, rest, i + 1, acc, out, limit);
                acc.pop();
            }
        }
    }
    let mut out = Vec::new();
    go(shape, want, 0, &mut Vec::new(), &mut out, limit);
    out
}

/// For a reshape whose element count is off: the extent that would make it fit, when exactly
/// one target dim is a constant that could change.
fn reshape_fix(from: &TensorType, to: &[Dim]) -> Option<String> {
    let total = from.numel().ok()?;
    for (i, d) in to.iter().enumerate() {
        if d.as_const().is_none() {
            continue;
        }
        let mut rest = Dim::constant(1);
        for (k, e) in to.iter().enumerate() {
            if k != i {
                rest = rest.mul(e).ok()?;
            }
        }
        let q = total.div(&rest).ok()?;
        if q.as_const().is_some_and(|v| v > 0) && q.mul(&rest).ok()? == total {
            let mut fixed: Vec<String> = to.iter().map(Dim::to_string).collect();
            fixed[i] = q.to_string();
            return Some(format!("the input has {total} elements: reshape to [{}]", fixed.join(", ")));
        }
    }
    None
}
