//! Layers with weights: each call makes (or, in a shared net, finds) its parameters in the
//! table under a hierarchical name and expands into primitives.

use genc_grammar::Span;

use super::calls::Args;
use super::{Checker, Mode, Val};
use crate::diag::TypeError;
use crate::dim::Dim;
use crate::graph::{Graph, NodeId};
use crate::params::{Entry, Init, Kind};
use crate::prim::{BinaryOp, ConvGeometry, DType, Distribution, Prim, ReduceOp, UnaryOp};
use crate::shape_rules::{conv_out, conv_transpose_out};
use crate::types::TensorType;

pub(super) const LAYERS: &[&str] = &[
    "linear",
    "conv2d",
    "conv_transpose2d",
    "masked_conv2d",
    "batch_norm",
    "layer_norm",
    "instance_norm",
    "group_norm",
    "embedding",
    "dropout",
    "weight",
    "state",
];

impl<'a> Checker<'a> {
    pub(super) fn layer(&mut self, name: &str, mut a: Args, span: Span) -> Val {
        let r = match name {
            "linear" => self.linear(&mut a, span),
            "conv2d" | "masked_conv2d" => self.conv2d(name, &mut a, span),
            "conv_transpose2d" => self.conv_transpose2d(&mut a, span),
            "batch_norm" | "layer_norm" | "instance_norm" => self.norm_layer(name, &mut a, span),
            "group_norm" => self.group_norm(&mut a, span),
            "embedding" => self.embedding(&mut a, span),
            "dropout" => self.dropout(&mut a, span),
            "weight" => self.free_weight(&mut a, span),
            "state" => self.state(&mut a, span),
            _ => return self.unknown(name, span, "layer"),
        };
        if r.is_ok() && self.reject_leftover(&a, name) {
            return Val::Poison;
        }
        if r.is_err() {
            self.reject_misspelt(&a, name);
        }
        r.map(Val::Tensor).unwrap_or(Val::Poison)
    }

    /// The parameter `local` of the layer being built (`weight`, `bias`), created on first use
    /// under the current owner and found again when a net is called a second time.
    fn param(
        &mut self,
        layer: &str,
        local: &str,
        shape: &[Dim],
        init: Init,
        kind: Kind,
        span: Span,
    ) -> Result<NodeId, ()> {
        let index = self.param_index(layer, local, shape, init, kind, span)?;
        let ty = TensorType::f32(shape.to_vec());
        let prim = match kind {
            Kind::Trainable => Prim::Param { index },
            Kind::Buffer => Prim::Buffer { index },
        };
        Ok(self.push_node(prim, ty, &[], span))
    }

    /// The table index of parameter `local` of the layer being built (see `param`).
    fn param_index(
        &mut self,
        layer: &str,
        local: &str,
        shape: &[Dim],
        init: Init,
        kind: Kind,
        span: Span,
    ) -> Result<usize, ()> {
        let Some(owner) = self.frames.last().and_then(|f| f.owner.clone()) else {
            let inside = self.frames.last().map(|f| f.def.clone()).unwrap_or_default();
            self.error(
                TypeError::new(
                    "E0110",
                    span,
                    format!("layer `{}` has no net to own its weights", self.origin),
                )
                .label(format!("called from `{inside}`, which is not a net"))
                .help("move the layer into a `net` (or a block called from a net) and call that net here"),
            );
            return Err(());
        };
        let concrete: Option<Vec<usize>> =
            shape.iter().map(|d| d.as_const().and_then(|v| usize::try_from(v).ok())).collect();
        let Some(concrete) = concrete else {
            let t = TensorType::f32(shape.to_vec());
            self.error(
                TypeError::new(
                    "E0111",
                    span,
                    format!("the weights of `{}` would have the symbolic shape {t}", self.origin),
                )
                .label("weights need a fixed shape")
                .help(symbolic_help(shape, &self.batch_name())),
            );
            return Err(());
        };
        // A layer's parameter (`G.linear0.weight`), or a free weight (`G.weight0`).
        let full =
            if local.is_empty() { format!("{owner}.{layer}") } else { format!("{owner}.{layer}.{local}") };
        match self.table.find(kind, &full) {
            Some(i) => {
                let have = self.table.list(kind)[i].shape.clone();
                if have != concrete {
                    let first = self.table.list(kind)[i].span;
                    self.error(
                        TypeError::new(
                            "E0111",
                            span,
                            format!("`{full}` is {have:?} from an earlier call but {concrete:?} here"),
                        )
                        .label("a different input size here")
                        .note(first, "the first call made it here")
                        .help("a net shares its weights across calls: call it with the same feature sizes"),
                    );
                    return Err(());
                }
                Ok(i)
            }
            None => {
                let owner_net = owner.split('.').next().map(str::to_string);
                Ok(self.table.push(Entry { name: full, shape: concrete, init, kind, owner: owner_net, span }))
            }
        }
    }

    /// Names the layer being built (`conv2d0`) and records its full path (`G.conv2d0`) as
    /// the origin of the nodes it makes, for the summary.
    fn layer_name(&mut self, kind: &str) -> String {
        let k = self.next_count(kind);
        let local = format!("{kind}{k}");
        if let Some(owner) = self.frames.last().and_then(|f| f.owner.clone()) {
            self.origin = format!("{owner}.{local}");
        }
        local
    }

    fn input(&mut self, a: &Args, what: &str) -> Result<NodeId, ()> {
        let (v, s) = self.pos_arg(a, 0, "x")?;
        self.expect_tensor(&v, s, &format!("`{what}`'s input"))
    }

    fn linear(&mut self, a: &mut Args, span: Span) -> Result<NodeId, ()> {
        let x = self.input(a, "linear")?;
        let out = self.dim_arg(a, 1, "out")?;
        let bias = self.bool_arg(a, 2, "bias", true)?;
        let given = self.opt_arg(a, usize::MAX, "weight");
        let t = self.ty(x).clone();
        if t.rank() < 2 || t.dtype != DType::F32 {
            let e = TypeError::new("E0106", span, format!("linear needs features [B, F], found {t}"))
                .label("not a feature matrix")
                .note(self.graph.node(x).span, format!("this is {t}"))
                .help("flatten images first: `x |> flatten |> linear(..)`");
            self.error(e);
            return Err(());
        }
        let name = self.layer_name("linear");
        let fan_in = t.shape[t.rank() - 1].clone();
        let bound = fan_in.as_const().map_or(0.0, |f| 1.0 / (f.max(1) as f64).sqrt());
        let wshape = [out.clone(), fan_in.clone()];
        let w = self.layer_weight(a, given, "linear", &name, &wshape, bound, span)?;
        // Rows of any leading shape: [.., F] -> [rows, F] @ W^T -> [.., out].
        let lead: Vec<Dim> = t.shape[..t.rank() - 1].to_vec();
        let rows = lead.iter().try_fold(Dim::constant(1), |acc, d| acc.mul(d)).map_err(|_| ())?;
        let x2 = self.reshape(x, vec![rows.clone(), fan_in], span)?;
        let y = self.node(Prim::MatMul { transpose_a: false, transpose_b: true }, &[x2, w], None, span)?;
        let y = if bias {
            let b = self.param(
                &name,
                "bias",
                std::slice::from_ref(&out),
                Init::Uniform { bound },
                Kind::Trainable,
                span,
            )?;
            let b = self.reshape(b, vec![Dim::constant(1), out.clone()], span)?;
            self.binary(BinaryOp::Add, y, b, span)?
        } else {
            y
        };
        let mut shape = lead;
        shape.push(out);
        self.reshape(y, shape, span)
    }

    fn conv2d(&mut self, name: &str, a: &mut Args, span: Span) -> Result<NodeId, ()> {
        let x = self.input(a, name)?;
        let out = self.dim_arg(a, 1, "out")?;
        let kernel = self.pair_arg(a, 2, "kernel", None)?;
        let stride = self.pair_arg(a, 3, "stride", Some([1, 1]))?;
        let pad = self.pair_arg(a, 4, "pad", Some([0, 0]))?;
        let dilation = self.pair_arg(a, 5, "dilation", Some([1, 1]))?;
        let groups = self.int_arg(a, 6, "groups", Some(1))?.max(1) as usize;
        let mask = if name == "masked_conv2d" { Some(self.str_arg(a, 7, "mask", None)?) } else { None };
        let bias = self.bool_arg(a, 8, "bias", true)?;
        let given = self.opt_arg(a, usize::MAX, "weight");
        let t = self.ty(x).clone();
        if t.rank() != 4 {
            let e = TypeError::new("E0106", span, format!("{name} needs images [N, C, H, W], found {t}"))
                .label("not an image batch")
                .note(self.graph.node(x).span, format!("this is {t}"))
                .help("reshape to [B, C, H, W] first");
            self.error(e);
            return Err(());
        }
        if stride.contains(&0) || dilation.contains(&0) || kernel.contains(&0) {
            return self.fail(span, "kernel, stride and dilation must be at least 1");
        }
        let cin = t.shape[1].clone();
        let g = Dim::constant(groups as i64);
        if cin.rem(&g).map_err(|_| ())?.as_const() != Some(0)
            || out.rem(&g).map_err(|_| ())?.as_const() != Some(0)
        {
            let t = self.ty(x).clone();
            self.error(
                TypeError::new(
                    "E0106",
                    span,
                    format!("groups = {groups} must divide the {cin} input and {out} output channels"),
                )
                .label("channels do not split into equal groups")
                .note(self.graph.node(x).span, format!("this is {t}"))
                .help("use a number of groups that divides both channel counts"),
            );
            return Err(());
        }
        let geometry = ConvGeometry { stride, pad, dilation, groups };
        // Check the output extent first, to explain a bad geometry with a fix.
        for axis in 0..2 {
            if let Err(e) = conv_out(&t.shape[2 + axis], &Dim::constant(kernel[axis] as i64), &geometry, axis)
            {
                let err = TypeError::new("E0106", span, format!("{name} on {t}: {}", e.message))
                    .label(format!(
                        "kernel {}x{}, stride {}, pad {}",
                        kernel[0], kernel[1], stride[0], pad[0]
                    ))
                    .note(self.graph.node(x).span, format!("this is {t}"))
                    .help("use a smaller kernel or more padding");
                self.error(err);
                return Err(());
            }
        }
        let lname = self.layer_name(name);
        let cin_g = cin.div(&g).map_err(|_| ())?;
        let wshape =
            [out.clone(), cin_g.clone(), Dim::constant(kernel[0] as i64), Dim::constant(kernel[1] as i64)];
        let fan_in = cin_g.as_const().unwrap_or(1) * (kernel[0] * kernel[1]) as i64;
        let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
        let mut w = self.layer_weight(a, given, name, &lname, &wshape, bound, span)?;
        if let Some(m) = mask {
            let kind = match m.as_str() {
                "A" => 'A',
                "B" => 'B',
                other => {
                    self.error(
                        TypeError::new("E0104", span, format!("unknown mask \"{other}\""))
                            .label("not a PixelCNN mask")
                            .help("use mask: \"A\" (first layer: hides the centre pixel) or \"B\" (later layers)"),
                    );
                    return Err(());
                }
            };
            if kernel[0] % 2 == 0 || kernel[1] % 2 == 0 {
                return self.fail(span, "a masked convolution needs an odd kernel, so it has a centre pixel");
            }
            let m = self.param(&lname, "mask", &wshape, Init::CausalMask { kind }, Kind::Buffer, span)?;
            w = self.binary(BinaryOp::Mul, w, m, span)?;
        }
        let y = self.node(Prim::Conv2d(geometry), &[x, w], None, span)?;
        if !bias {
            return Ok(y);
        }
        self.channel_bias(&lname, y, out, bound, span)
    }

    /// A layer's `weight:` given as a value (a normalised or standardised `weight(..)`, another
    /// layer's weight) in place of its own: it must have the shape the layer's would have.
    fn given_weight(&mut self, w: (Val, Span), shape: &[Dim], layer: &str, span: Span) -> Result<NodeId, ()> {
        let (v, at) = w;
        let w = self.expect_tensor(&v, at, &format!("`{layer}`'s weight"))?;
        let t = self.ty(w).clone();
        if t.shape != shape || t.dtype != DType::F32 {
            let want = TensorType::f32(shape.to_vec());
            self.error(
                TypeError::new("E0106", at, format!("`{layer}` needs a weight {want}, found {t}"))
                    .label(format!("this is {t}"))
                    .note(
                        span,
                        match (layer, shape.len()) {
                            ("conv_transpose2d", _) => "this layer's weight is [in, out, kh, kw]",
                            (_, 4) => "this layer's weight is [out, in, kh, kw]",
                            _ => "this layer's weight is [out, in]",
                        },
                    )
                    .help(format!("make the weight {want}")),
            );
            return Err(());
        }
        Ok(w)
    }

    /// `y + bias`, one bias per channel (axis 1 of an N×C×H×W image), initialised U(±bound).
    fn channel_bias(
        &mut self,
        lname: &str,
        y: NodeId,
        out: Dim,
        bound: f64,
        span: Span,
    ) -> Result<NodeId, ()> {
        let b = self.param(
            lname,
            "bias",
            std::slice::from_ref(&out),
            Init::Uniform { bound },
            Kind::Trainable,
            span,
        )?;
        let b = self.reshape(b, vec![Dim::constant(1), out, Dim::constant(1), Dim::constant(1)], span)?;
        self.binary(BinaryOp::Add, y, b, span)
    }

    fn conv_transpose2d(&mut self, a: &mut Args, span: Span) -> Result<NodeId, ()> {
        let x = self.input(a, "conv_transpose2d")?;
        let out = self.dim_arg(a, 1, "out")?;
        let kernel = self.pair_arg(a, 2, "kernel", None)?;
        let stride = self.pair_arg(a, 3, "stride", Some([1, 1]))?;
        let pad = self.pair_arg(a, 4, "pad", Some([0, 0]))?;
        let output_padding = self.pair_arg(a, 5, "output_padding", Some([0, 0]))?;
        let bias = self.bool_arg(a, 6, "bias", true)?;
        let given = self.opt_arg(a, usize::MAX, "weight");
        let t = self.ty(x).clone();
        if t.rank() != 4 {
            let e = TypeError::new(
                "E0106",
                span,
                format!("conv_transpose2d needs images [N, C, H, W], found {t}"),
            )
            .label("not an image batch")
            .note(self.graph.node(x).span, format!("this is {t}"))
            .help("reshape to [B, C, H, W] first");
            self.error(e);
            return Err(());
        }
        if stride.contains(&0) || kernel.contains(&0) {
            return self.fail(span, "kernel and stride must be at least 1");
        }
        let geometry = ConvGeometry { stride, pad, dilation: [1, 1], groups: 1 };
        for axis in 0..2 {
            if let Err(e) = conv_transpose_out(
                &t.shape[2 + axis],
                &Dim::constant(kernel[axis] as i64),
                &geometry,
                output_padding[axis],
                axis,
            ) {
                let err = TypeError::new("E0106", span, format!("conv_transpose2d on {t}: {}", e.message))
                    .label(format!(
                        "kernel {}x{}, stride {}, pad {}",
                        kernel[0], kernel[1], stride[0], pad[0]
                    ))
                    .note(self.graph.node(x).span, format!("this is {t}"))
                    .help("the output extent is (n - 1) * stride - 2 * pad + kernel: use less padding");
                self.error(err);
                return Err(());
            }
        }
        let lname = self.layer_name("conv_transpose2d");
        let cin = t.shape[1].clone();
        let wshape = [cin, out.clone(), Dim::constant(kernel[0] as i64), Dim::constant(kernel[1] as i64)];
        let fan_in = out.as_const().unwrap_or(1) * (kernel[0] * kernel[1]) as i64;
        let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
        let w = self.layer_weight(a, given, "conv_transpose2d", &lname, &wshape, bound, span)?;
        let y = self.node(Prim::ConvTranspose2d { geometry, output_padding }, &[x, w], None, span)?;
        if !bias {
            return Ok(y);
        }
        self.channel_bias(&lname, y, out, bound, span)
    }

    /// Batch norm (statistics over every axis but channels, with running-statistics buffers),
    /// layer norm (over every axis but the batch, affine over those axes) and instance norm
    /// (over the spatial axes per sample and channel).
    fn norm_layer(&mut self, name: &str, a: &mut Args, span: Span) -> Result<NodeId, ()> {
        let x = self.input(a, name)?;
        let eps = self.float_arg(a, 1, "eps", Some(1e-5))?;
        let affine_default = name != "instance_norm";
        let affine = self.bool_arg(a, 2, "affine", affine_default)?;
        let momentum = if name == "batch_norm" { Some(self.momentum_arg(a, span)?) } else { None };
        let t = self.ty(x).clone();
        let min_rank = if name == "instance_norm" { 3 } else { 2 };
        if t.rank() < min_rank || t.dtype != DType::F32 {
            return self.fail(span, &format!("{name} needs at least rank {min_rank}, found {t}"));
        }
        let rank = t.rank();
        let (axes, affine_shape): (Vec<usize>, Vec<Dim>) = match name {
            "batch_norm" => {
                let axes = (0..rank).filter(|&i| i != 1).collect();
                let mut s = vec![Dim::constant(1); rank];
                s[1] = t.shape[1].clone();
                (axes, s)
            }
            "layer_norm" => {
                let mut s = t.shape.clone();
                s[0] = Dim::constant(1);
                ((1..rank).collect(), s)
            }
            _ => {
                let mut s = vec![Dim::constant(1); rank];
                s[1] = t.shape[1].clone();
                ((2..rank).collect(), s)
            }
        };
        let lname = self.layer_name(name);
        let stat_shape: Vec<Dim> = affine_shape.iter().filter(|d| d.as_const() != Some(1)).cloned().collect();
        let stat_shape = if stat_shape.is_empty() { vec![Dim::constant(1)] } else { stat_shape };
        let (centred, var) = match momentum {
            Some(m) => {
                let stats =
                    BatchNormStats { layer: &lname, axes: &axes, keep: &affine_shape, stat: &stat_shape };
                self.batch_norm_moments(x, &stats, m, span)?
            }
            None => {
                let (_, centred, var) = self.batch_moments(x, &axes, span)?;
                (centred, var)
            }
        };
        let var_eps = self.binary_const(BinaryOp::Add, var, eps, span)?;
        let inv = self.unary(UnaryOp::Rsqrt, var_eps, span)?;
        let y = self.binary(BinaryOp::Mul, centred, inv, span)?;
        if !affine {
            return Ok(y);
        }
        self.norm_affine(&lname, y, &stat_shape, affine_shape, span)
    }

    /// A norm layer's learned scale (from 1) and shift (from 0), of shape `stat`, applied to
    /// `y` through the broadcastable shape `shape`.
    fn norm_affine(
        &mut self,
        lname: &str,
        y: NodeId,
        stat: &[Dim],
        shape: Vec<Dim>,
        span: Span,
    ) -> Result<NodeId, ()> {
        let g = self.param(lname, "weight", stat, Init::Ones, Kind::Trainable, span)?;
        let b = self.param(lname, "bias", stat, Init::Zeros, Kind::Trainable, span)?;
        let g = self.reshape(g, shape.clone(), span)?;
        let b = self.reshape(b, shape, span)?;
        let y = self.binary(BinaryOp::Mul, y, g, span)?;
        self.binary(BinaryOp::Add, y, b, span)
    }

    /// `group_norm(groups, eps:, affine:)` (Wu & He 2018, PyTorch's `GroupNorm`): the
    /// channels split into `groups` groups, each normalised over its channels and positions
    /// per sample (biased variance), then a per-channel scale and shift.
    fn group_norm(&mut self, a: &mut Args, span: Span) -> Result<NodeId, ()> {
        let x = self.input(a, "group_norm")?;
        let groups = self.int_arg(a, 1, "groups", None)?;
        let eps = self.float_arg(a, 2, "eps", Some(1e-5))?;
        let affine = self.bool_arg(a, 3, "affine", true)?;
        let t = self.ty(x).clone();
        if t.rank() < 2 || t.dtype != DType::F32 {
            return self.fail(span, &format!("group_norm needs [N, C, ..] of rank 2 or more, found {t}"));
        }
        let channels = t.shape[1].as_const();
        let Some(c) = channels.filter(|&c| groups >= 1 && c % groups == 0) else {
            let found = channels.map_or_else(|| t.shape[1].to_string(), |c| c.to_string());
            return self.fail(
                span,
                &format!("group_norm splits the channels into groups: {groups} groups do not divide {found} channels"),
            );
        };
        // Named first: every node of the layer carries its name.
        let lname = self.layer_name("group_norm");
        // [N, C, ..] -> [N, G, C / G, ..], normalised over every axis after G.
        let mut grouped = vec![t.shape[0].clone(), Dim::constant(groups), Dim::constant(c / groups)];
        grouped.extend(t.shape[2..].iter().cloned());
        let axes: Vec<usize> = (2..grouped.len()).collect();
        let xg = self.reshape(x, grouped, span)?;
        let (_, centred, var) = self.batch_moments(xg, &axes, span)?;
        let var_eps = self.binary_const(BinaryOp::Add, var, eps, span)?;
        let inv = self.unary(UnaryOp::Rsqrt, var_eps, span)?;
        let normed = self.binary(BinaryOp::Mul, centred, inv, span)?;
        let y = self.reshape(normed, t.shape.clone(), span)?;
        if !affine {
            return Ok(y);
        }
        let mut per_channel = vec![Dim::constant(1); t.rank()];
        per_channel[1] = Dim::constant(c);
        self.norm_affine(&lname, y, &[Dim::constant(c)], per_channel, span)
    }

    /// Batch norm's `momentum`: the weight of the batch statistics in the running ones.
    fn momentum_arg(&mut self, a: &mut Args, span: Span) -> Result<f64, ()> {
        let at = a.named.iter().find(|(n, _, _)| n == "momentum").map(|(_, _, s)| *s);
        let at = at.or_else(|| a.pos.get(3).map(|(_, s)| *s)).unwrap_or(span);
        let m = self.float_arg(a, 3, "momentum", Some(0.1))?;
        if !(0.0..=1.0).contains(&m) {
            self.error(
                TypeError::new("E0104", at, format!("`batch_norm`'s `momentum` must be in [0, 1], found {m}"))
                    .label("not a fraction")
                    .help("momentum is the weight of each batch in the running statistics: PyTorch's default is 0.1"),
            );
            return Err(());
        }
        Ok(m)
    }

    /// The mean of `x` over `axes`, `x` centred on it and the (biased) variance, with the
    /// reduced axes kept.
    fn batch_moments(
        &mut self,
        x: NodeId,
        axes: &[usize],
        span: Span,
    ) -> Result<(NodeId, NodeId, NodeId), ()> {
        let mean = self.reduce(ReduceOp::Mean, x, axes, true, span)?;
        let centred = self.binary(BinaryOp::Sub, x, mean, span)?;
        let sq = self.binary(BinaryOp::Mul, centred, centred, span)?;
        let var = self.reduce(ReduceOp::Mean, sq, axes, true, span)?;
        Ok((mean, centred, var))
    }

    /// Batch norm's centred input and variance. Training normalises with the batch statistics
    /// and moves the running statistics towards them; evaluation normalises with the running
    /// statistics.
    fn batch_norm_moments(
        &mut self,
        x: NodeId,
        s: &BatchNormStats,
        momentum: f64,
        span: Span,
    ) -> Result<(NodeId, NodeId), ()> {
        let (mean_index, running_mean) =
            self.running_stat(s.layer, "running_mean", s.stat, Init::Zeros, span)?;
        let (var_index, running_var) = self.running_stat(s.layer, "running_var", s.stat, Init::Ones, span)?;
        match self.mode {
            Mode::Eval => {
                let mean = self.reshape(running_mean, s.keep.to_vec(), span)?;
                let var = self.reshape(running_var, s.keep.to_vec(), span)?;
                let centred = self.binary(BinaryOp::Sub, x, mean, span)?;
                Ok((centred, var))
            }
            Mode::Train => {
                // Made first: a fused kernel only reads values that exist before it starts,
                // so each update below then fuses into one kernel.
                let rate = self.splat(momentum, DType::F32, 1, span);
                let (mean, centred, var) = self.batch_moments(x, s.axes, span)?;
                let batch_mean = self.detached(mean, s.stat, span)?;
                let batch_var = self.detached(var, s.stat, span)?;
                let factor = self.unbiased_factor(x, s.axes, span)?;
                let batch_var = self.binary(BinaryOp::Mul, batch_var, factor, span)?;
                self.update_running(mean_index, running_mean, batch_mean, rate, span)?;
                self.update_running(var_index, running_var, batch_var, rate, span)?;
                Ok((centred, var))
            }
        }
    }

    /// Running-statistics buffer `local` of the layer being built, as the current graph last
    /// left it: the buffer itself, or the update an earlier call of the layer made here.
    fn running_stat(
        &mut self,
        layer: &str,
        local: &str,
        shape: &[Dim],
        init: Init,
        span: Span,
    ) -> Result<(usize, NodeId), ()> {
        let index = self.param_index(layer, local, shape, init, Kind::Buffer, span)?;
        if let Some(&(_, latest)) = self.running.iter().find(|(i, _)| *i == index) {
            return Ok((index, latest));
        }
        let ty = TensorType::f32(shape.to_vec());
        Ok((index, self.push_node(Prim::Buffer { index }, ty, &[], span)))
    }

    /// A batch statistic in its buffer's shape, outside autodiff: running statistics never
    /// change the gradients.
    fn detached(&mut self, stat: NodeId, shape: &[Dim], span: Span) -> Result<NodeId, ()> {
        let stat = self.node(Prim::StopGrad, &[stat], None, span)?;
        self.reshape(stat, shape.to_vec(), span)
    }

    /// `n / max(n - 1, 1)` for `n` elements per statistic, as a scalar: running variances are
    /// unbiased, as in PyTorch (one element keeps its zero variance rather than divide by
    /// zero). `n` involves the batch dim, so it is a sum of ones, which constant folding
    /// evaluates once planning binds the batch.
    fn unbiased_factor(&mut self, x: NodeId, axes: &[usize], span: Span) -> Result<NodeId, ()> {
        let shape = self.ty(x).shape.iter().enumerate();
        let shape =
            shape.map(|(i, d)| if axes.contains(&i) { d.clone() } else { Dim::constant(1) }).collect();
        let ones = self.fill(1.0, TensorType::f32(shape), span);
        let n = self.reduce(ReduceOp::Sum, ones, axes, false, span)?;
        let n_less_one = self.binary_const(BinaryOp::Sub, n, 1.0, span)?;
        let n_less_one = self.binary_const(BinaryOp::Max, n_less_one, 1.0, span)?;
        self.binary(BinaryOp::Div, n, n_less_one, span)
    }

    /// `running + rate * (stat - running)` for buffer `index` (PyTorch's `(1 - m) * running +
    /// m * stat`, in a form that fuses into one kernel); the graph outputs the last value as
    /// `buffer.<name>`. A layer called again in the same graph (a discriminator on real, then
    /// on fake images) starts from the previous call's update, so the updates chain in call
    /// order as PyTorch's do, and each call moves the statistics once.
    fn update_running(
        &mut self,
        index: usize,
        running: NodeId,
        stat: NodeId,
        rate: NodeId,
        span: Span,
    ) -> Result<(), ()> {
        let step = self.binary(BinaryOp::Sub, stat, running, span)?;
        let step = self.binary(BinaryOp::Mul, step, rate, span)?;
        let new = self.binary(BinaryOp::Add, running, step, span)?;
        match self.running.iter_mut().find(|(i, _)| *i == index) {
            Some(entry) => entry.1 = new,
            None => self.running.push((index, new)),
        }
        Ok(())
    }

    /// The weight initialisation a layer or `weight(..)` is given (`init: "normal", std: 0.02`),
    /// or `default` (PyTorch's for the layer). `init` is positional argument `i` for
    /// `weight(..)` and named-only for layers (`usize::MAX`).
    fn init_option(
        &mut self,
        a: &mut Args,
        i: usize,
        rank: usize,
        default: Init,
        span: Span,
    ) -> Result<(Init, bool), ()> {
        let Some(name) = self.opt_arg(a, i, "init") else {
            return Ok((default, false));
        };
        let name = match name {
            (Val::Str(s), _) => s,
            (v, s) => return self.wrong_kind(s, "init", "a string", v.kind_name()),
        };
        let fallback = match default {
            Init::Uniform { bound } => bound,
            _ => 1.0,
        };
        let init = match name.as_str() {
            "uniform" => Init::Uniform { bound: self.float_arg(a, usize::MAX, "bound", Some(fallback))? },
            "normal" => Init::Normal { mean: 0.0, std: self.float_arg(a, usize::MAX, "std", Some(1.0))? },
            "orthogonal" if rank >= 2 => {
                Init::Orthogonal { gain: self.float_arg(a, usize::MAX, "gain", Some(1.0))? }
            }
            "zeros" => Init::Zeros,
            "ones" => Init::Ones,
            other => {
                let why = if other == "orthogonal" { "needs at least two axes" } else { "is not an init" };
                self.error(
                    TypeError::new("E0104", span, format!("init `{other}` {why}"))
                        .label("unknown init")
                        .help("init: \"uniform\" (bound:), \"normal\" (std:), \"orthogonal\" (gain:), \"zeros\" or \"ones\""),
                );
                return Err(());
            }
        };
        Ok((init, true))
    }

    /// The weight of a `linear` or convolution `layer` named `lname`: the `weight:` it was
    /// given, or its own parameter, initialised by its `init:` or PyTorch's U(±bound). A
    /// weight with an explicit `init:` keeps it: `init NET(std:)` only replaces defaults.
    #[allow(clippy::too_many_arguments)]
    fn layer_weight(
        &mut self,
        a: &mut Args,
        given: Option<(Val, Span)>,
        layer: &str,
        lname: &str,
        shape: &[Dim],
        bound: f64,
        span: Span,
    ) -> Result<NodeId, ()> {
        if let Some(w) = given {
            return self.given_weight(w, shape, layer, span);
        }
        let (init, explicit) = self.init_option(a, usize::MAX, shape.len(), Init::Uniform { bound }, span)?;
        let w = self.param(lname, "weight", shape, init, Kind::Trainable, span)?;
        if let (true, Prim::Param { index }) = (explicit, &self.graph.node(w).prim) {
            self.explicit_init.insert(*index);
        }
        Ok(w)
    }

    /// `weight(shape, init:, std:, bound:, gain:)`: a free trainable tensor of the net that
    /// makes it (Glow's invertible 1x1 convolution, a weight shared by two layers), named
    /// `<net>.weight<k>` as layers are named, so `Net.weight0` reads it from elsewhere.
    fn free_weight(&mut self, a: &mut Args, span: Span) -> Result<NodeId, ()> {
        let shape = self.shape_arg(a, 0, "shape")?;
        // PyTorch's layers' default: U(±1/sqrt(fan_in)), fan_in the extents after the first.
        let fan_in: i64 = shape.iter().skip(1).map(|d| d.as_const().unwrap_or(1)).product();
        let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
        let (init, _) = self.init_option(a, 1, shape.len(), Init::Uniform { bound }, span)?;
        let name = self.layer_name("weight");
        self.param(&name, "", &shape, init, Kind::Trainable, span)
    }

    /// `state(shape, init:)`: a tensor the net keeps from step to step without training it
    /// (spectral normalisation's power-iteration vector), a buffer named `<net>.state<k>`;
    /// it reads as its latest value in this graph, and `keep(s, value)` gives its next.
    fn state(&mut self, a: &mut Args, span: Span) -> Result<NodeId, ()> {
        let shape = self.shape_arg(a, 0, "shape")?;
        let (init, _) = self.init_option(a, 1, shape.len(), Init::Zeros, span)?;
        let name = self.layer_name("state");
        let (index, value) = self.running_stat(&name, "", &shape, init, span)?;
        self.states.insert(value, index);
        Ok(value)
    }

    fn embedding(&mut self, a: &mut Args, span: Span) -> Result<NodeId, ()> {
        let idx = self.input(a, "embedding")?;
        let n = self.dim_arg(a, 1, "num")?;
        let d = self.dim_arg(a, 2, "dim")?;
        if self.ty(idx).dtype != DType::I32 {
            let t = self.ty(idx).clone();
            let from = self.graph.node(idx).span;
            self.error(
                TypeError::new("E0122", span, format!("embedding needs int indices, found {} {t}", t.dtype))
                    .label("indices must be class numbers")
                    .note(from, format!("this is {} {t}", t.dtype))
                    .help("declare the labels as `int[..]`, or convert them with to_int(..)"),
            );
            return Err(());
        }
        self.index_use(idx, &n, "embedding", span);
        let lname = self.layer_name("embedding");
        let table = self.param(
            &lname,
            "weight",
            &[n, d],
            Init::Normal { mean: 0.0, std: 1.0 },
            Kind::Trainable,
            span,
        )?;
        self.node(Prim::Gather { axis: 0 }, &[table, idx], None, span)
    }

    /// Inverted dropout in training: `x * (u >= p) / (1 - p)`; the identity in evaluation.
    fn dropout(&mut self, a: &mut Args, span: Span) -> Result<NodeId, ()> {
        let x = self.input(a, "dropout")?;
        let p = self.float_arg(a, 1, "p", Some(0.5))?;
        if !(0.0..1.0).contains(&p) {
            return self.fail(span, &format!("dropout probability must be in [0, 1), found {p}"));
        }
        if self.mode == Mode::Eval {
            return Ok(x);
        }
        let shape = self.ty(x).shape.clone();
        let u = self.random(Distribution::Uniform, shape, span);
        let keep = self.binary_const(BinaryOp::Ge, u, p, span)?;
        let keep = self.cast(keep, DType::F32, span)?;
        let y = self.binary(BinaryOp::Mul, x, keep, span)?;
        self.binary_const(BinaryOp::Mul, y, 1.0 / (1.0 - p), span)
    }
}

/// Where batch norm's statistics live: the layer's name, the reduced axes, the shape of a
/// statistic with those axes kept (`[1, C, 1, 1]`) and the shape of its buffer (`[C]`).
struct BatchNormStats<'s> {
    layer: &'s str,
    axes: &'s [usize],
    keep: &'s [Dim],
    stat: &'s [Dim],
}

/// For a convolution or pooling whose output shape is wrong: a padding or stride that would
/// give the declared shape, e.g. "with `pad: 1` the output would be [B, 64, 14, 14]".
pub(super) fn conv_fix(g: &Graph, conv: NodeId, expected: &str) -> Option<String> {
    let inputs = g.inputs(conv);
    let x = g.ty(*inputs.first()?);
    let out = &g.node(conv).ty;
    let n = x.shape.get(2)?;
    let k = match &g.node(conv).prim {
        Prim::Pool2d { window, .. } => Dim::constant(window.kernel[0] as i64),
        _ => g.ty(*inputs.get(1)?).shape.get(2)?.clone(),
    };
    let k = &k;
    let base: Vec<String> = out.shape.iter().map(Dim::to_string).collect();
    let (stride, pad) = match &g.node(conv).prim {
        Prim::Conv2d(geo) => (geo.stride[0], geo.pad[0]),
        Prim::ConvTranspose2d { geometry, .. } => (geometry.stride[0], geometry.pad[0]),
        Prim::Pool2d { window, .. } => (window.stride[0], window.pad[0]),
        _ => return None,
    };
    // Sensible paddings only: below the kernel extent (half of it for pooling).
    let kc = usize::try_from(k.as_const()?).ok()?;
    let max_pad =
        if matches!(g.node(conv).prim, Prim::Pool2d { .. }) { kc / 2 } else { kc.saturating_sub(1) };
    // The smallest change first: the padding alone, then the stride alone, then both.
    let mut tries: Vec<(usize, usize)> = (0..=max_pad).filter(|&p| p != pad).map(|p| (stride, p)).collect();
    tries.extend((1..=4).filter(|&s| s != stride).map(|s| (s, pad)));
    for s in 1..=4 {
        tries.extend((0..=max_pad).filter(|&p| s != stride && p != pad).map(|p| (s, p)));
    }
    for (s, p) in tries {
        let h = match &g.node(conv).prim {
            Prim::Conv2d(geo) => {
                let mut geo2 = *geo;
                geo2.pad = [p, p];
                geo2.stride = [s, s];
                conv_out(n, k, &geo2, 0).ok()?
            }
            Prim::ConvTranspose2d { geometry, output_padding } => {
                let mut geo2 = *geometry;
                geo2.pad = [p, p];
                geo2.stride = [s, s];
                match conv_transpose_out(n, k, &geo2, output_padding[0], 0) {
                    Ok(h) => h,
                    Err(_) => continue,
                }
            }
            Prim::Pool2d { window, .. } => {
                let w2 = crate::prim::Window { kernel: window.kernel, stride: [s, s], pad: [p, p] };
                match crate::shape_rules::window_out(n, &w2, 0) {
                    Ok(h) => h,
                    Err(_) => continue,
                }
            }
            _ => return None,
        };
        let mut shape = base.clone();
        if shape.len() == 4 {
            shape[2] = h.to_string();
            shape[3] = h.to_string();
        }
        let candidate = format!("[{}]", shape.join(", "));
        if candidate == expected && shape != base {
            let change = match (s != stride, p != pad) {
                (true, true) => format!("`stride: {s}, pad: {p}`"),
                (true, false) => format!("`stride: {s}`"),
                _ => format!("`pad: {p}`"),
            };
            return Some(format!("with {change} the output would be {candidate}, as declared"));
        }
    }
    None
}

/// Why a weight shape is symbolic and what to do: the batch dim leaked into the features, or
/// a size is only known per call.
fn symbolic_help(shape: &[Dim], batch: &str) -> String {
    let text = TensorType::f32(shape.to_vec()).to_string();
    let mentions_batch = text.split(|c: char| !(c.is_alphanumeric() || c == '_')).any(|w| w == batch);
    if mentions_batch {
        format!(
            "weights may not depend on the batch size `{batch}`: keep `{batch}` as axis 0 and flatten only the others"
        )
    } else {
        "declare the net's inputs with bound dims (`x: [B, 784]`), so each layer's size is fixed".to_string()
    }
}
