//! Calls: argument binding, unification of declared types with actual shapes (free dims such
//! as `B` or a block's `c` bind at each call), inlining of nets, blocks, losses and samplers,
//! and the standalone check of every definition.

use genc_grammar::{Span, ast};

use super::expr::Flow;
use super::{Checker, Frame, Unit, UnitKind, Val};
use crate::diag::TypeError;
use crate::dim::Dim;
use crate::graph::{NodeId, Output};
use crate::prim::{DType, Prim};
use crate::types::TensorType;

/// Evaluated call arguments.
#[derive(Clone, Debug, Default)]
pub(super) struct Args {
    pub pos: Vec<(Val, Span)>,
    pub named: Vec<(String, Val, Span)>,
    pub span: Span,
}

impl<'a> Checker<'a> {
    pub(super) fn call_expr(
        &mut self,
        f: &ast::Expr,
        args: &[ast::Arg],
        piped: Option<(Val, Span)>,
        span: Span,
    ) -> Val {
        let ast::ExprKind::Name(name) = &f.kind else {
            return self.error(
                TypeError::new("E0105", f.span, "only named functions can be called")
                    .label("not a function name"),
            );
        };
        // `train_mode(e)` evaluates `e` itself, in training mode: not an ordinary call.
        if name == "train_mode" && !matches!(self.lookup_quiet(name), Some(Val::Def(_))) {
            return self.train_mode(args, piped.is_some(), span);
        }
        let mut a = Args { span, ..Args::default() };
        if let Some(p) = piped {
            a.pos.push(p);
        }
        for arg in args {
            let v = self.eval(&arg.value);
            match &arg.name {
                Some(n) => a.named.push((n.name.clone(), v, arg.value.span)),
                None => a.pos.push((v, arg.value.span)),
            }
        }
        if a.pos.iter().any(|(v, _)| v.is_poison()) || a.named.iter().any(|(_, v, _)| v.is_poison()) {
            return Val::Poison;
        }
        // A local variable holding a definition (rare) or a user definition by name.
        let callee = match self.lookup_quiet(name) {
            Some(Val::Def(d)) => Some(d),
            _ => None,
        };
        if let Some(def) = callee {
            return self.call_def(&def, a, f.span);
        }
        if super::builtins::is_builtin(name) {
            let saved = std::mem::replace(&mut self.origin, name.clone());
            let v = self.builtin(name, a, f.span);
            self.origin = saved;
            return v;
        }
        self.unknown(name, f.span, "function")
    }

    fn lookup_quiet(&self, name: &str) -> Option<Val> {
        if let Some(f) = self.frames.last() {
            for scope in f.vars.iter().rev() {
                if let Some((v, _)) = scope.get(name) {
                    return Some(v.clone());
                }
            }
        }
        self.defs.contains_key(name).then(|| Val::Def(name.to_string()))
    }

    /// Inlines a user definition at a call site.
    /// `train_mode(e)`: `e` with its layers as in training — dropout draws its masks, batch
    /// norm normalises with the batch's own statistics — wherever it is written, as pix2pix
    /// runs its generator at test time. The running statistics it computes are dropped: a
    /// sample or an eval changes no buffer. In a training phase it changes nothing.
    fn train_mode(&mut self, args: &[ast::Arg], piped: bool, span: Span) -> Val {
        let expr = match args {
            [a] if a.name.is_none() && !piped => &a.value,
            _ => {
                return self.error(
                    TypeError::new("E0104", span, "`train_mode` takes one expression: train_mode(G(x))")
                        .label("one positional argument")
                        .help("write train_mode(G(x)), not x |> train_mode"),
                );
            }
        };
        let mode = std::mem::replace(&mut self.mode, super::Mode::Train);
        let running = self.running.clone();
        let v = self.eval(expr);
        self.mode = mode;
        self.running = running;
        v
    }

    pub(super) fn call_def(&mut self, name: &str, args: Args, callee_span: Span) -> Val {
        let Some(def) = self.defs.get(name).copied() else { return Val::Poison };
        if self.frames.iter().any(|f| f.def == name) {
            let chain: Vec<&str> =
                self.frames.iter().map(|f| f.def.as_str()).filter(|d| !d.is_empty()).collect();
            return self.error(
                TypeError::new(
                    "E0108",
                    callee_span,
                    format!("`{name}` calls itself: {} -> {name}", chain.join(" -> ")),
                )
                .label("recursive call")
                .note(def.name.span, format!("`{name}` is defined here"))
                .help("definitions are inlined, so they cannot recurse; use a `for` loop"),
            );
        }
        if self.frames.len() >= super::MAX_CALL_DEPTH || self.fuel == 0 {
            return self.error(
                TypeError::new("E0113", callee_span, "calls nest too deeply or too many times to inline")
                    .label("inlining stops here"),
            );
        }
        self.fuel -= 1;
        let owner = match def.kind {
            ast::DefKind::Net => Some(name.to_string()),
            ast::DefKind::Block => {
                let parent = self.frames.last().and_then(|f| f.owner.clone());
                let k = self.next_count(name);
                parent.map(|p| format!("{p}.{name}{k}"))
            }
            ast::DefKind::Loss | ast::DefKind::Sampler => None,
        };
        let host = def.kind == ast::DefKind::Sampler;
        self.frames.push(Frame { def: name.to_string(), owner, host_control: host, ..Frame::default() });
        self.frame().vars.push(Default::default());
        let ok = self.bind_params(def, args, callee_span);
        let result = if ok { self.run_body(def) } else { Val::Poison };
        self.frames.pop();
        result
    }

    /// Binds arguments to a definition's parameters in the (already pushed) callee frame.
    fn bind_params(&mut self, def: &ast::Def, mut args: Args, callee_span: Span) -> bool {
        let mut ok = true;
        if args.pos.len() > def.params.len() {
            let (_, extra) = args.pos[def.params.len()].clone();
            self.error(
                TypeError::new(
                    "E0104",
                    extra,
                    format!(
                        "`{}` takes {} argument(s), found {}",
                        def.name.name,
                        def.params.len(),
                        args.pos.len()
                    ),
                )
                .label("unexpected argument")
                .note(def.name.span, format!("`{}` is defined here", def.name.name)),
            );
            return false;
        }
        for (name, _, span) in &args.named {
            if !def.params.iter().any(|p| &p.name.name == name) {
                let names: Vec<&str> = def.params.iter().map(|p| p.name.name.as_str()).collect();
                let mut e =
                    TypeError::new("E0104", *span, format!("`{}` has no parameter `{name}`", def.name.name))
                        .label("unknown argument")
                        .note(def.name.span, format!("`{}` is defined here", def.name.name));
                e = match genc_grammar::did_you_mean(name, names.iter().copied()) {
                    Some(s) => e.help(format!("did you mean `{s}`?")),
                    None => {
                        e.help(format!("the parameters of `{}` are: {}", def.name.name, names.join(", ")))
                    }
                };
                self.error(e);
                ok = false;
            }
        }
        // An unknown name was most likely meant for a parameter that now looks missing: one
        // diagnostic is enough.
        if !ok {
            return false;
        }
        let mut pos = std::mem::take(&mut args.pos).into_iter();
        for p in &def.params {
            let named =
                args.named.iter().position(|(n, _, _)| n == &p.name.name).map(|i| args.named.remove(i));
            let (v, span) = match (pos.next(), named) {
                (Some(v), None) => v,
                (None, Some((_, v, s))) => (v, s),
                (Some(_), Some((_, _, s))) => {
                    self.error(
                        TypeError::new("E0104", s, format!("`{}` is given twice", p.name.name))
                            .label("given again by name"),
                    );
                    ok = false;
                    continue;
                }
                (None, None) => match &p.default {
                    Some(d) => {
                        let v = self.eval(d);
                        (v, d.span)
                    }
                    None => {
                        self.error(
                            TypeError::new(
                                "E0104",
                                args.span,
                                format!("missing argument `{}` of `{}`", p.name.name, def.name.name),
                            )
                            .label("in this call")
                            .note(p.span, "this parameter has no default"),
                        );
                        ok = false;
                        continue;
                    }
                },
            };
            ok &= self.bind_param(p, v, span, callee_span);
        }
        ok
    }

    fn bind_param(&mut self, p: &ast::Param, v: Val, span: Span, callee_span: Span) -> bool {
        let Some(ty) = &p.ty else {
            self.bind(&p.name, v);
            return true;
        };
        match (&ty.kind, &v) {
            (_, Val::Poison) => {
                self.bind(&p.name, v);
                false
            }
            (ast::TypeKind::Tensor { .. }, Val::Tensor(n)) => {
                let actual = self.ty(*n).clone();
                if let Err(expected) = self.unify_type(ty, &actual) {
                    let mut e = TypeError::new(
                        "E0107",
                        span,
                        format!("argument `{}` must be {expected}, found {actual}", p.name.name),
                    )
                    .label(format!("this is {actual}"))
                    .note(ty.span, format!("`{}` is declared here", p.name.name))
                    .note(callee_span, "in this call");
                    // Where the value was made, when that is not the argument itself.
                    let made = self.graph.node(*n).span;
                    if !(made.start >= span.start && made.end <= span.end) {
                        e = e.note(made, format!("made {actual} here"));
                    }
                    self.error(e);
                    self.bind(&p.name, Val::Poison);
                    return false;
                }
                self.bind(&p.name, v);
                true
            }
            (ast::TypeKind::Scalar(s), Val::Int(d)) if s == "int" => {
                self.frame().dims.insert(p.name.name.clone(), d.clone());
                self.bind(&p.name, v);
                true
            }
            (ast::TypeKind::Scalar(s), Val::Float(_) | Val::Int(_)) if s == "float" => {
                let v = match v {
                    Val::Int(d) => Val::Float(d.as_const().unwrap_or(0) as f64),
                    other => other,
                };
                self.bind(&p.name, v);
                true
            }
            (ast::TypeKind::Scalar(s), Val::Bool(_)) if s == "bool" => {
                self.bind(&p.name, v);
                true
            }
            (ast::TypeKind::Scalar(s), Val::Str(_)) if s == "str" => {
                self.bind(&p.name, v);
                true
            }
            (ast::TypeKind::Tuple(_), Val::Tuple(_)) => {
                self.bind(&p.name, v);
                true
            }
            (_, other) => {
                let want = genc_grammar::format::ty(ty);
                self.error(
                    TypeError::new(
                        "E0107",
                        span,
                        format!("argument `{}` must be {want}, found {}", p.name.name, other.kind_name()),
                    )
                    .label(format!("this is {}", other.kind_name()))
                    .note(ty.span, "declared here"),
                );
                self.bind(&p.name, Val::Poison);
                false
            }
        }
    }

    /// Matches a declared type against an actual tensor type. A bare name that is a free dim
    /// (module-level free like `B`, or unknown lower-case like `c`) not yet bound in this frame
    /// binds to the actual extent; everything else must be equal. On mismatch, returns the
    /// declared type as far as it could be evaluated.
    pub(super) fn unify_type(&mut self, t: &ast::Type, actual: &TensorType) -> Result<(), String> {
        let ast::TypeKind::Tensor { dtype, dims } = &t.kind else {
            return Err(genc_grammar::format::ty(t));
        };
        let want_dtype = match dtype.as_deref() {
            None | Some("float") | Some("f32") => DType::F32,
            Some("int") | Some("i32") => DType::I32,
            Some("bool") => DType::Bool,
            Some(_) => DType::F32,
        };
        let wildcard = dims.len() == 1 && is_rest(&dims[0]);
        let mut ok = want_dtype == actual.dtype && (wildcard || dims.len() == actual.rank());
        let mut shown = Vec::new();
        if !wildcard {
            for (i, d) in dims.iter().enumerate() {
                let a = actual.shape.get(i);
                match self.unify_dim(d, a) {
                    Ok(text) => shown.push(text),
                    Err(text) => {
                        ok = false;
                        shown.push(text);
                    }
                }
            }
        }
        if ok {
            return Ok(());
        }
        let prefix = if want_dtype == DType::F32 { String::new() } else { want_dtype.to_string() };
        Err(format!("{prefix}[{}]", shown.join(", ")))
    }

    /// Unifies one declared dim: `Ok(its value)` when it matches, else `Err(its value as far
    /// as it evaluates)`, so a mismatch shows `[B, 64, 28, 28]` rather than `[B, 64, H, W]`.
    fn unify_dim(&mut self, d: &ast::Expr, actual: Option<&Dim>) -> Result<String, String> {
        if let ast::ExprKind::Name(n) = &d.kind {
            let bound_here = self.frames.last().is_some_and(|f| f.dims.contains_key(n));
            let module_free = self.dims.get(n).is_some_and(|e| e.value.is_none());
            let unknown = !self.dims.contains_key(n)
                && !self.hparams.contains_key(n)
                && !self.consts.contains_key(n)
                && self.frames.last().is_none_or(|f| f.vars.iter().all(|s| !s.contains_key(n)));
            if !bound_here && (module_free || unknown) {
                let Some(a) = actual.cloned() else { return Err(n.clone()) };
                self.frame().dims.insert(n.clone(), a.clone());
                return Ok(a.to_string());
            }
        }
        let errors_before = self.errors.len();
        let v = self.eval(d);
        match v {
            Val::Int(want) => {
                let text = want.to_string();
                if Some(&want) == actual { Ok(text) } else { Err(text) }
            }
            _ => {
                self.errors.truncate(errors_before);
                Err(genc_grammar::format::expr(d))
            }
        }
    }

    fn run_body(&mut self, def: &ast::Def) -> Val {
        let (v, span) = match &def.body {
            ast::Body::Expr(e) => (self.eval(e), e.span),
            ast::Body::Block(b) => match self.exec_block(b) {
                Flow::Return(v, s) => (v, s),
                Flow::Next => {
                    if def.kind == ast::DefKind::Loss || def.output.is_some() {
                        return self.error(
                            TypeError::new(
                                "E0112",
                                def.name.span,
                                format!("`{}` does not return a value", def.name.name),
                            )
                            .label("no `return` reached")
                            .help("end the body with `return ..`"),
                        );
                    }
                    return Val::Tuple(Vec::new());
                }
            },
        };
        self.check_output(def, v, span)
    }

    fn check_output(&mut self, def: &ast::Def, v: Val, span: Span) -> Val {
        if def.kind == ast::DefKind::Loss {
            return match v {
                Val::Tensor(n) if self.ty(n).rank() == 0 => v,
                Val::Tensor(n) => {
                    let t = self.ty(n).clone();
                    self.error(
                        TypeError::new(
                            "E0114",
                            span,
                            format!("loss `{}` returns {t}, not a scalar", def.name.name),
                        )
                        .label(format!("this is {t}"))
                        .help("reduce it, e.g. `mean(..)` over the batch"),
                    )
                }
                Val::Float(_) | Val::Int(_) | Val::Poison => v,
                other => self.error(
                    TypeError::new(
                        "E0105",
                        span,
                        format!("loss `{}` returns {}", def.name.name, other.kind_name()),
                    )
                    .label("not a scalar tensor"),
                ),
            };
        }
        let Some(out) = &def.output else { return v };
        self.check_value_type(v, out, span, &format!("`{}` returns", def.name.name))
    }

    fn check_value_type(&mut self, v: Val, t: &ast::Type, span: Span, what: &str) -> Val {
        match (&t.kind, &v) {
            (_, Val::Poison) => v,
            (ast::TypeKind::Tuple(ts), Val::Tuple(vs)) if ts.len() == vs.len() => {
                let out =
                    ts.iter().zip(vs.clone()).map(|(t, v)| self.check_value_type(v, t, span, what)).collect();
                Val::Tuple(out)
            }
            (ast::TypeKind::Tensor { .. }, Val::Tensor(n)) => {
                let actual = self.ty(*n).clone();
                match self.unify_type(t, &actual) {
                    Ok(()) => v,
                    Err(expected) => {
                        let mut e = TypeError::new(
                            "E0107",
                            span,
                            format!("{what} {actual}, but declares {expected}"),
                        )
                        .label(format!("this is {actual}"))
                        .note(t.span, format!("declared as {expected}"));
                        if let Some((span, label, help)) = self.wrong_size_cause(*n, t, &expected) {
                            e = e.note(span, label).help(help);
                        } else if let Some(h) = self.shape_hint(*n, &expected) {
                            e = e.help(h);
                        }
                        self.error(e)
                    }
                }
            }
            (_, other) => {
                let want = genc_grammar::format::ty(t);
                self.error(
                    TypeError::new(
                        "E0107",
                        span,
                        format!("{what} {}, but declares {want}", other.kind_name()),
                    )
                    .label(format!("this is {}", other.kind_name()))
                    .note(t.span, "declared here"),
                )
            }
        }
    }

    /// A fix for a wrong output shape when the last op was a convolution whose padding or
    /// stride could produce the declared shape.
    /// Where an output of the wrong image size went wrong, when that is a layer before the
    /// last: its span, "H and W become 8 here, expected 14", and the change that fixes it.
    fn wrong_size_cause(
        &mut self,
        n: NodeId,
        t: &ast::Type,
        expected: &str,
    ) -> Option<(Span, String, String)> {
        let ast::TypeKind::Tensor { dims, .. } = &t.kind else { return None };
        let declared = self.declared_tensor(t)?;
        let r = declared.rank().checked_sub(2)?;
        let want = [declared.shape[r].as_const()?, declared.shape[r + 1].as_const()?];
        let cause = super::cause::trace(&self.graph, n, want)?;
        let name = |axis: usize| genc_grammar::format::expr(&dims[r + axis]);
        let wrong: Vec<usize> = (0..2).filter(|&a| cause.actual[a] != cause.expected[a]).collect();
        let label = match wrong.as_slice() {
            [a] => format!("{} becomes {} here, expected {}", name(*a), cause.actual[*a], cause.expected[*a]),
            _ if cause.actual[0] == cause.actual[1] && cause.expected[0] == cause.expected[1] => {
                format!(
                    "{} and {} become {} here, expected {}",
                    name(0),
                    name(1),
                    cause.actual[0],
                    cause.expected[0]
                )
            }
            _ => format!(
                "{} x {} becomes {} x {} here, expected {} x {}",
                name(0),
                name(1),
                cause.actual[0],
                cause.actual[1],
                cause.expected[0],
                cause.expected[1]
            ),
        };
        let help = format!("with {} at this layer the output would be {expected}, as declared", cause.change);
        Some((self.graph.node(cause.node).span, label, help))
    }

    fn shape_hint(&self, n: NodeId, expected: &str) -> Option<String> {
        let mut node = n;
        // Look through element-wise tails (activations, bias adds).
        loop {
            let nd = self.graph.node(node);
            match &nd.prim {
                Prim::Conv2d(_) | Prim::ConvTranspose2d { .. } | Prim::Pool2d { .. } => break,
                Prim::Unary(_) | Prim::Binary(_) | Prim::Reduce { .. } | Prim::Reshape | Prim::Broadcast => {
                    node = *self.graph.inputs(node).first()?;
                }
                _ => return None,
            }
        }
        super::layers::conv_fix(&self.graph, node, expected)
    }

    /// Elaborates every net, loss and sampler on its own, with its declared input types; nets
    /// first, so their weights are named and numbered in declaration order.
    pub(super) fn check_definitions(&mut self) {
        let defs: Vec<&ast::Def> = self.defs.values().copied().collect();
        for kind in [ast::DefKind::Net, ast::DefKind::Loss, ast::DefKind::Sampler] {
            for def in defs.iter().filter(|d| d.kind == kind) {
                self.check_standalone(def);
            }
        }
    }

    fn check_standalone(&mut self, def: &ast::Def) {
        let kind = match def.kind {
            ast::DefKind::Net => UnitKind::Net,
            ast::DefKind::Loss => UnitKind::Loss,
            ast::DefKind::Sampler | ast::DefKind::Block => UnitKind::Sampler,
        };
        let saved = self.begin_graph(kind.mode());
        let mut args = Args { span: def.name.span, ..Args::default() };
        self.frames.push(Frame { def: String::new(), ..Frame::default() });
        let mut ok = true;
        // `genc sample --n`: the called sampler's sample count (see `super::count_param`).
        let call_n = self
            .call
            .as_ref()
            .filter(|c| def.kind == ast::DefKind::Sampler && c.name == def.name.name)
            .map(|c| c.n);
        let count = super::count_param(def);
        for (i, p) in def.params.iter().enumerate() {
            if let Some(n) = call_n
                && count == Some(i)
            {
                args.named.push((p.name.name.clone(), Val::Int(Dim::constant(n)), p.name.span));
                continue;
            }
            if p.default.is_some() {
                continue;
            }
            match &p.ty {
                Some(t @ ast::Type { kind: ast::TypeKind::Tensor { .. }, .. }) => {
                    match self.declared_tensor(t) {
                        Some(ty) => {
                            let index = self.graph.input_names.len();
                            self.graph.input_names.push(p.name.name.clone());
                            let n = self.push_node(Prim::Input { index }, ty, &[], p.name.span);
                            args.pos.push((Val::Tensor(n), p.name.span));
                        }
                        None => ok = false,
                    }
                }
                Some(ast::Type { kind: ast::TypeKind::Scalar(s), .. }) if s == "int" => {
                    args.pos.push((Val::Int(Dim::sym(&p.name.name)), p.name.span));
                }
                Some(ast::Type { kind: ast::TypeKind::Scalar(s), .. }) if s == "float" => {
                    args.pos.push((Val::Float(1.0), p.name.span));
                }
                // Checked on its own with the flag off; each call checks the value it passes.
                Some(ast::Type { kind: ast::TypeKind::Scalar(s), .. }) if s == "bool" => {
                    args.pos.push((Val::Bool(false), p.name.span));
                }
                Some(ast::Type { kind: ast::TypeKind::Scalar(s), .. }) => {
                    self.error(
                        TypeError::new(
                            "E0107",
                            p.span,
                            format!("parameter `{}: {s}` needs a default", p.name.name),
                        )
                        .label(format!(
                            "`{}` is checked on its own, where no call gives this a value",
                            def.name.name
                        ))
                        .help(format!(
                            "give it one, e.g. `{}: {s} = \"..\"`; calls may still pass another",
                            p.name.name
                        )),
                    );
                    ok = false;
                }
                _ => {
                    self.error(
                        TypeError::new("E0107", p.span, format!("parameter `{}` needs a type", p.name.name))
                            .label("add a type, e.g. `x: [B, C, H, W]`"),
                    );
                    ok = false;
                }
            }
        }
        self.frames.pop();
        let result = if ok { self.call_def(&def.name.name, args, def.name.span) } else { Val::Poison };
        let (graph, host) = self.end_graph(saved, &result, "out");
        if def.kind == ast::DefKind::Net && self.errors.iter().all(|e| e.warning) {
            self.check_causal(def, &graph);
        }
        self.units.push(Unit { kind, name: def.name.name.clone(), graph, host });
    }

    /// The type a standalone check feeds for a declared tensor parameter: free dims stay
    /// symbolic (a block's lower-case `c` becomes the symbol `c`).
    fn declared_tensor(&mut self, t: &ast::Type) -> Option<TensorType> {
        let ast::TypeKind::Tensor { dtype, dims } = &t.kind else { return None };
        let dtype = match dtype.as_deref() {
            Some("int") | Some("i32") => DType::I32,
            Some("bool") => DType::Bool,
            _ => DType::F32,
        };
        let mut shape = Vec::new();
        for d in dims {
            if let ast::ExprKind::Name(n) = &d.kind
                && !self.dims.contains_key(n)
                && !self.hparams.contains_key(n)
            {
                shape.push(Dim::sym(n));
                continue;
            }
            match self.eval(d) {
                Val::Int(x) => shape.push(x),
                Val::Poison => return None,
                other => {
                    self.error(
                        TypeError::new(
                            "E0103",
                            d.span,
                            format!("a dim must be an int, found {}", other.kind_name()),
                        )
                        .label("not a dim"),
                    );
                    return None;
                }
            }
        }
        Some(TensorType::new(dtype, shape))
    }

    /// The next number for a layer or block of kind `what` in the current frame.
    pub(super) fn next_count(&mut self, what: &str) -> usize {
        let f = self.frame();
        let c = f.counters.entry(what.to_string()).or_insert(0);
        *c += 1;
        *c - 1
    }
}

/// Records a unit's result as graph outputs: `out`, or `out.0`, `out.1` for tuples.
pub(super) fn collect_outputs(graph: &mut crate::graph::Graph, v: &Val, name: &str) {
    match v {
        Val::Tensor(n) => graph.outputs.push(Output { name: name.to_string(), node: *n }),
        Val::Tuple(xs) => {
            for (i, x) in xs.iter().enumerate() {
                collect_outputs(graph, x, &format!("{name}.{i}"));
            }
        }
        _ => {}
    }
}

fn is_rest(e: &ast::Expr) -> bool {
    matches!(&e.kind, ast::ExprKind::Name(n) if n == "..")
}
