//! The `train` block: data sources, batch and length, optimizers and their parameter sets,
//! the step schedule (each `minimize` becomes a phase graph) and the cadence entries.
//!
//! Checks: each objective is a scalar; it reaches its optimizer's parameters through a path
//! that `stop_grad` does not cut; no parameter has two optimizers unless each of them has a
//! `schedule` (the spec then coordinates them in time); buffers never enter an optimizer or
//! an EMA; data shapes agree with the definitions they feed.

use std::collections::{BTreeSet, HashMap};

use genc_grammar::{Span, ast};

use super::{Checker, Frame, Unit, UnitKind, Val};
use crate::diag::TypeError;
use crate::dim::Dim;
use crate::graph::{Graph, NodeId};
use crate::prim::{DType, Prim};
use crate::types::TensorType;

/// One `minimize` (or `maximize`) of the step, in execution order.
#[derive(Clone, Debug, PartialEq)]
pub struct Phase {
    pub name: String,
    /// The name its loss is logged under: the loss called (`critic`), else the objective.
    pub label: String,
    pub optimizer: String,
    pub maximize: bool,
    /// How many times it runs per step (`repeat n`).
    pub repeat: u64,
}

/// The checked training schedule.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Schedule {
    pub batch: Option<(String, u64)>,
    pub steps: Option<u64>,
    pub epochs: Option<u64>,
    pub phases: Vec<Phase>,
    /// Optimizer name → indices of the trainable parameters it updates.
    pub optimizers: Vec<(String, Vec<usize>)>,
}

impl<'a> Checker<'a> {
    pub(super) fn check_train(&mut self) {
        let trains: Vec<&ast::Train> = self
            .file
            .items
            .iter()
            .filter_map(|i| match i {
                ast::Item::Train(t) => Some(t),
                _ => None,
            })
            .collect();
        let Some(train) = trains.first() else { return };
        for extra in &trains[1..] {
            self.error(
                TypeError::new("E0117", extra.span, "a spec has one `train` block")
                    .label("second `train` block")
                    .note(train.span, "the first is here"),
            );
        }
        let mut sched = Schedule::default();
        let mut data: Vec<(ast::Ident, TensorType)> = Vec::new();
        let mut optimizers: Vec<(ast::Ident, Vec<usize>, bool)> = Vec::new();
        let mut scheduled: BTreeSet<String> = BTreeSet::new();
        let mut steps_span: Option<Span> = None;
        self.frames.push(Frame::default());
        for entry in &train.entries {
            match &entry.kind {
                ast::TrainEntryKind::Data { pattern, source } => {
                    for (name, ty) in self.data_source(pattern, source) {
                        data.push((name, ty));
                    }
                }
                ast::TrainEntryKind::Batch { dim, size } => {
                    let n = self.positive(size, "batch size");
                    match self.dims.get(&dim.name) {
                        Some(d) if d.value.is_none() => sched.batch = n.map(|n| (dim.name.clone(), n)),
                        Some(d) => {
                            let span = d.span;
                            let free = self
                                .dims
                                .iter()
                                .find(|(_, e)| e.value.is_none() && !e.poisoned)
                                .map(|(n, _)| n.clone());
                            self.error(
                                TypeError::new(
                                    "E0117",
                                    dim.span,
                                    format!(
                                        "`{}` is bound to {}; `batch` needs a free dim",
                                        dim.name,
                                        d.value.map_or_else(|| "a value".to_string(), |v| v.to_string())
                                    ),
                                )
                                .label("not a free dim")
                                .note(span, "bound here")
                                .help(match free {
                                    Some(f) => format!("`batch` sets the batch size: write `batch {f} = ..`"),
                                    None => "declare the batch dim without a value (`dims B, ..`) and name it here".to_string(),
                                }),
                            );
                        }
                        None => {
                            self.unknown(&dim.name, dim.span, "dim");
                        }
                    }
                }
                ast::TrainEntryKind::Steps(e) | ast::TrainEntryKind::Epochs(e) => {
                    let is_steps = matches!(entry.kind, ast::TrainEntryKind::Steps(_));
                    if let Some(first) = steps_span {
                        self.error(
                            TypeError::new("E0117", entry.span, "the run length is given twice")
                                .label("second length")
                                .note(first, "first given here")
                                .help("give either `steps` or `epochs`"),
                        );
                    }
                    steps_span = Some(entry.span);
                    let n = self.positive(e, if is_steps { "steps" } else { "epochs" });
                    if is_steps { sched.steps = n } else { sched.epochs = n }
                }
                ast::TrainEntryKind::Seed(e) => {
                    let _ = self.eval(e);
                }
                ast::TrainEntryKind::Optimizer { name, spec } => match self.optimizer(name, spec) {
                    Some(params) => optimizers.push((name.clone(), params, false)),
                    None => self.failed_optimizers.push(name.name.clone()),
                },
                ast::TrainEntryKind::Schedule { optimizer, spec } => {
                    if !optimizers.iter().any(|(n, _, _)| n.name == optimizer.name) {
                        let declared: Vec<String> =
                            optimizers.iter().map(|(n, _, _)| n.name.clone()).collect();
                        self.unknown_optimizer(optimizer, &declared);
                    }
                    scheduled.insert(optimizer.name.clone());
                    self.schedule_spec(spec);
                }
                ast::TrainEntryKind::Ema { target, args } => {
                    self.net_path(target, "an EMA");
                    for a in args {
                        let _ = self.eval(&a.value);
                    }
                }
                ast::TrainEntryKind::Init { target, args } => self.check_init(target, args),
                ast::TrainEntryKind::InitDefault { target, rule } => {
                    let _ = self.init_default(target, rule);
                }
                ast::TrainEntryKind::Step(stmts) => {
                    let phases = self.step(stmts, 1, &data, &mut optimizers);
                    sched.phases.extend(phases);
                }
                ast::TrainEntryKind::Sample { name, what, every } => {
                    self.cadence(every);
                    if let Some(e) = what {
                        let label =
                            name.as_ref().map_or("sample".to_string(), |n| format!("sample {}", n.name));
                        self.unit_from_expr(UnitKind::Sample, &label, e, &data, None);
                    }
                }
                ast::TrainEntryKind::Eval { name, every, what } => {
                    self.cadence(every);
                    let label = name.as_ref().map_or("eval".to_string(), |n| format!("eval {}", n.name));
                    self.unit_from_expr(UnitKind::Eval, &label, what, &data, None);
                }
                ast::TrainEntryKind::Checkpoint(c) | ast::TrainEntryKind::Log(c) => self.cadence(c),
            }
        }
        self.frames.pop();
        if steps_span.is_none() {
            self.error(
                TypeError::new(
                    "E0117",
                    Span::new(train.span.start, train.span.start + 5),
                    "the `train` block does not say how long to train",
                )
                .label("no `steps` or `epochs`")
                .help("add `steps 10_000` or `epochs 10`"),
            );
        }
        self.check_exclusive(&optimizers, &scheduled);
        sched.optimizers = optimizers.into_iter().map(|(n, p, _)| (n.name, p)).collect();
        self.schedule = Some(sched);
        self.run = Some(self.run_spec(train));
    }

    /// A use of an optimizer name that no `optimizer` entry declares (quiet when its
    /// declaration failed and was reported).
    fn unknown_optimizer(&mut self, name: &ast::Ident, declared: &[String]) {
        if self.failed_optimizers.contains(&name.name) {
            return;
        }
        let mut e = TypeError::new("E0100", name.span, format!("unknown optimizer `{}`", name.name))
            .label("no `optimizer` entry declares it");
        e = match genc_grammar::did_you_mean(&name.name, declared.iter().map(String::as_str)) {
            Some(s) => e.help(format!("did you mean `{s}`?")),
            None if declared.is_empty() => {
                e.help(format!("declare it in `train`: `optimizer {} = adam(G, lr: 2e-4)`", name.name))
            }
            None => e.help(format!("the optimizers are: {}", declared.join(", "))),
        };
        self.error(e);
    }

    fn positive(&mut self, e: &ast::Expr, what: &str) -> Option<u64> {
        match self.eval(e) {
            Val::Int(d) => match d.as_const() {
                Some(v) if v >= 1 => Some(v as u64),
                _ => {
                    self.error(
                        TypeError::new("E0117", e.span, format!("{what} must be a positive int, found {d}"))
                            .label("not positive"),
                    );
                    None
                }
            },
            Val::Poison => None,
            other => {
                self.error(
                    TypeError::new(
                        "E0117",
                        e.span,
                        format!("{what} must be a positive int, found {}", other.kind_name()),
                    )
                    .label("not an int"),
                );
                None
            }
        }
    }

    fn cadence(&mut self, c: &ast::Cadence) {
        let _ = self.positive(&c.count, "a cadence");
    }

    /// The names and types a `data` entry binds: images `[B, C, H, W]`, labels `int[B]`.
    fn data_source(&mut self, pattern: &ast::Pattern, source: &ast::Expr) -> Vec<(ast::Ident, TensorType)> {
        let (base, paired) = match &source.kind {
            ast::ExprKind::Binary(ast::BinaryOp::Pipe, lhs, rhs) => (lhs.as_ref(), Some(rhs.as_ref())),
            _ => (source, None),
        };
        let ast::ExprKind::Call(f, args) = &base.kind else {
            self.error(
                TypeError::new(
                    "E0105",
                    source.span,
                    "a data source must be a call such as fashion_mnist(..)",
                )
                .label("not a data source"),
            );
            return Vec::new();
        };
        let name = match &f.kind {
            ast::ExprKind::Name(n) => n.as_str(),
            _ => "",
        };
        // Its options, checked against the source's table (`data_source.rs`).
        let mut options = crate::train_spec::Options::new();
        let mut spans = Vec::new();
        for (i, a) in args.iter().enumerate() {
            let key = a.name.as_ref().map_or_else(|| i.to_string(), |n| n.name.clone());
            let value = self.eval(&a.value);
            match super::run::option_of(&value) {
                Some(v) => {
                    options.insert(key.clone(), v);
                }
                None if value.is_poison() => return Vec::new(),
                None => {
                    self.error(
                        TypeError::new(
                            "E0105",
                            a.value.span,
                            "a data source option is a number, a pair, a string or true/false",
                        )
                        .label("not an option value"),
                    );
                    return Vec::new();
                }
            }
            spans.push((key, a.span));
        }
        // Each bad option is reported, then left out, so the names are still bound (with the
        // shapes the rest gives) and nothing downstream cascades from it.
        let mut reported = false;
        let spec = loop {
            match crate::data_source::DataSpec::from_options(Vec::new(), name, &options, None) {
                Ok(spec) => break spec,
                Err(p) => {
                    let at = if p.code == "E0100" { f.span } else { base.span };
                    let bad = p.option.clone();
                    self.option_problem(p, &spans, at);
                    reported = true;
                    match bad.and_then(|key| options.remove(&key)) {
                        Some(_) => continue,
                        None => return Vec::new(),
                    }
                }
            }
        };
        let batch = self.batch_dim();
        let (channels, side) = spec.image_size();
        let side = Dim::constant(i64::from(side));
        let images =
            TensorType::f32(vec![batch.clone(), Dim::constant(i64::from(channels)), side.clone(), side]);
        let labels = spec.labels;
        let mut types = vec![images.clone()];
        if labels {
            types.push(TensorType::new(DType::I32, vec![batch.clone()]));
        }
        if let Some(p) = paired {
            types = self.paired(p, &images).into_iter().collect();
        }
        let names: Vec<ast::Ident> = match pattern {
            ast::Pattern::Name(n) => vec![n.clone()],
            ast::Pattern::Tuple(ns, _) => ns.clone(),
        };
        // After a reported option problem (`lables: true`), a pair binds images and labels as
        // written rather than add a second error for the count.
        if names.len() != types.len() && reported && names.len() == 2 && paired.is_none() {
            types.push(TensorType::new(DType::I32, vec![self.batch_dim()]));
        }
        if names.len() != types.len() {
            self.error(
                TypeError::new(
                    "E0105",
                    source.span,
                    format!("this source gives {} value(s), the pattern names {}", types.len(), names.len()),
                )
                .label("count differs"),
            );
            return Vec::new();
        }
        // The IDX label files of both data sets hold the classes 0..=9.
        if labels && paired.is_none() {
            self.label_classes.insert(names[1].name.clone(), (10, source.span));
        }
        names.into_iter().zip(types).collect()
    }

    /// `|> paired(downsample(R))` gives (low-res, high-res); `paired(edges(..))` gives
    /// (edges, image), both the image's shape.
    fn paired(&mut self, p: &ast::Expr, images: &TensorType) -> Vec<TensorType> {
        let inner = match &p.kind {
            ast::ExprKind::Call(f, args)
                if matches!(&f.kind, ast::ExprKind::Name(n) if n == "paired") && args.len() == 1 =>
            {
                &args[0].value
            }
            _ => {
                self.error(
                    TypeError::new("E0105", p.span, "a data transform must be paired(..)")
                        .label("unknown transform"),
                );
                return Vec::new();
            }
        };
        match &inner.kind {
            ast::ExprKind::Call(f, args) if matches!(&f.kind, ast::ExprKind::Name(n) if n == "downsample") => {
                for a in args.iter().skip(1) {
                    let key = a.name.as_ref().map_or("", |n| n.name.as_str());
                    let value = self.eval(&a.value);
                    let problem = match (key, &value) {
                        ("mode", Val::Str(m)) if m == "box" || m == "bicubic" => continue,
                        (_, Val::Poison) => continue,
                        ("mode", _) => TypeError::new(
                            "E0105",
                            a.value.span,
                            "`mode` is \"box\" (r x r averages) or \"bicubic\" (anti-aliased, as PyTorch's antialias=True)",
                        )
                        .label("not a mode"),
                        _ => TypeError::new("E0104", a.span, "`downsample` takes the factor and `mode:`")
                            .label("unknown option")
                            .help("write downsample(4, mode: \"bicubic\")"),
                    };
                    self.error(problem);
                }
                let Some(a) = args.first() else { return Vec::new() };
                let r = match self.eval(&a.value) {
                    Val::Int(d) => d,
                    _ => return Vec::new(),
                };
                let mut low = images.clone();
                for axis in 2..4 {
                    match images.shape[axis].rem(&r) {
                        Ok(z) if z.as_const() == Some(0) => {
                            low.shape[axis] = images.shape[axis].div(&r).unwrap_or_default()
                        }
                        _ => {
                            self.error(
                                TypeError::new(
                                    "E0106",
                                    a.value.span,
                                    format!("images {images} cannot be downsampled by {r}"),
                                )
                                .label("the image size is not divisible"),
                            );
                            return Vec::new();
                        }
                    }
                }
                vec![low, images.clone()]
            }
            ast::ExprKind::Call(f, _) if matches!(&f.kind, ast::ExprKind::Name(n) if n == "edges") => {
                vec![images.clone(), images.clone()]
            }
            _ => {
                self.error(
                    TypeError::new("E0105", inner.span, "paired(..) takes downsample(r) or edges(\"sobel\")")
                        .label("unknown pairing"),
                );
                Vec::new()
            }
        }
    }

    /// The name of the batch dim (`B`).
    pub(super) fn batch_name(&self) -> String {
        self.batch_dim().to_string()
    }

    fn batch_dim(&self) -> Dim {
        // The first free dim is the batch unless `batch X = ..` names another.
        let named = self.file.items.iter().find_map(|i| match i {
            ast::Item::Train(t) => t.entries.iter().find_map(|e| match &e.kind {
                ast::TrainEntryKind::Batch { dim, .. } => Some(dim.name.clone()),
                _ => None,
            }),
            _ => None,
        });
        let name =
            named.or_else(|| self.dims.iter().find(|(_, d)| d.value.is_none()).map(|(k, _)| k.clone()));
        Dim::sym(&name.unwrap_or_else(|| "B".to_string()))
    }

    /// The trainable parameters an optimizer spec names: nets, lists of nets, `group(..)`.
    fn optimizer(&mut self, name: &ast::Ident, spec: &ast::Expr) -> Option<Vec<usize>> {
        let ast::ExprKind::Call(f, args) = &spec.kind else {
            self.error(
                TypeError::new("E0105", spec.span, "an optimizer is a call such as adam(G, lr: 1e-4)")
                    .label("not an optimizer"),
            );
            return None;
        };
        let kind = match &f.kind {
            ast::ExprKind::Name(n) => n.clone(),
            _ => String::new(),
        };
        if crate::optimizer::optimizer_doc(&kind).is_none() {
            let names: Vec<&'static str> = crate::optimizer::OPTIMIZERS.iter().map(|o| o.name).collect();
            self.option_problem(crate::option_table::unknown_kind("optimizer", &kind, &names), &[], f.span);
            return None;
        }
        let Some(target) = args.first().filter(|a| a.name.is_none()) else {
            self.error(
                TypeError::new(
                    "E0104",
                    spec.span,
                    format!("optimizer `{}` needs the nets it trains first", name.name),
                )
                .label("no nets"),
            );
            return None;
        };
        let mut params = Vec::new();
        self.collect_targets(&target.value, &mut params);
        // Its options, checked against the kind's own table (`optimizer.rs`).
        let mut options = crate::train_spec::Options::new();
        let mut spans = Vec::new();
        for a in &args[1..] {
            let key = a.name.as_ref().map_or_else(|| "0".to_string(), |n| n.name.clone());
            let value = self.eval(&a.value);
            match super::run::option_of(&value) {
                Some(v) => {
                    options.insert(key.clone(), v);
                }
                None if value.is_poison() => {}
                None => {
                    self.error(
                        TypeError::new(
                            "E0105",
                            a.value.span,
                            "an optimizer option is a number, a pair or true/false",
                        )
                        .label("not a number"),
                    );
                }
            }
            spans.push((key, a.span));
        }
        if let Err(p) = crate::optimizer::OptimizerConfig::from_options(&kind, &options) {
            self.option_problem(p, &spans, spec.span);
        }
        params.sort_unstable();
        params.dedup();
        Some(params)
    }

    fn collect_targets(&mut self, e: &ast::Expr, out: &mut Vec<usize>) {
        match &e.kind {
            ast::ExprKind::List(xs) => xs.iter().for_each(|x| self.collect_targets(x, out)),
            ast::ExprKind::Call(f, args) if matches!(&f.kind, ast::ExprKind::Name(n) if n == "group") => {
                if let Some(first) = args.first() {
                    self.collect_targets(&first.value, out);
                }
                for a in &args[1..] {
                    let _ = self.eval(&a.value);
                }
            }
            ast::ExprKind::Name(n) => {
                let path =
                    ast::Path { segments: vec![ast::Ident { name: n.clone(), span: e.span }], span: e.span };
                if let Some(p) = self.net_path(&path, "an optimizer") {
                    out.extend(p);
                }
            }
            _ => {
                self.error(
                    TypeError::new("E0105", e.span, "an optimizer trains nets: name them").label("not a net"),
                );
            }
        }
    }

    /// The trainable parameters a path (`G`, `D.conv2d0`) names; buffers are refused.
    pub(super) fn net_path(&mut self, path: &ast::Path, what: &str) -> Option<Vec<usize>> {
        let first = path.segments.first()?;
        if let Some((_, span)) = self.consts.get(&first.name) {
            let span = *span;
            self.error(
                TypeError::new(
                    "E0121",
                    path.span,
                    format!("`{}` is a constant buffer; it cannot be given to {what}", first.name),
                )
                .label("a buffer, not a parameter")
                .note(span, "declared as a `const` here")
                .help("buffers are never trained or averaged: name the nets instead"),
            );
            return None;
        }
        match self.defs.get(&first.name) {
            Some(d) if d.kind == ast::DefKind::Net => {}
            Some(d) => {
                let kind = d.kind.keyword();
                self.error(
                    TypeError::new("E0105", path.span, format!("`{}` is a {kind}, not a net", first.name))
                        .label("only nets own weights")
                        .note(d.name.span, format!("the {kind} is defined here")),
                );
                return None;
            }
            None => {
                self.unknown(&first.name, first.span, "net");
                return None;
            }
        }
        let prefix: String = path.segments.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(".");
        let prefix_dot = format!("{prefix}.");
        // A path names one tensor (`D.fc.weight`) or every tensor under it (`D.fc`).
        let under = |name: &str| name == prefix || name.starts_with(&prefix_dot);
        if path.segments.len() > 1
            && self.table.buffers.iter().any(|b| under(&b.name))
            && !self.table.params.iter().any(|p| under(&p.name))
        {
            self.error(
                TypeError::new(
                    "E0121",
                    path.span,
                    if self.table.buffers.iter().any(|b| b.name == prefix) {
                        format!("`{prefix}` is a buffer; it cannot be given to {what}")
                    } else {
                        format!("`{prefix}` holds only buffers; it cannot be given to {what}")
                    },
                )
                .label("buffers, not parameters")
                .help("buffers (running statistics, masks) are never trained or averaged: name the layer's parameters or the whole net"),
            );
            return None;
        }
        let found: Vec<usize> =
            self.table.params.iter().enumerate().filter(|(_, p)| under(&p.name)).map(|(i, _)| i).collect();
        if found.is_empty() && path.segments.len() > 1 {
            self.error(
                TypeError::new("E0100", path.span, format!("net `{}` has no layer `{prefix}`", first.name))
                    .label("no such layer"),
            );
        }
        Some(found)
    }

    /// Checks a learning-rate schedule against the schedules' option table
    /// ([`crate::lr_schedule`]), pointing at the option at fault.
    fn schedule_spec(&mut self, spec: &ast::Expr) {
        let ast::ExprKind::Call(f, args) = &spec.kind else {
            self.error(
                TypeError::new("E0105", spec.span, "a schedule is a call such as cosine(warmup: 500)")
                    .label("not a schedule"),
            );
            return;
        };
        let name = match &f.kind {
            ast::ExprKind::Name(n) => n.as_str(),
            _ => "",
        };
        let mut options = super::Options::new();
        let mut spans = Vec::new();
        for (i, a) in args.iter().enumerate() {
            let key = a.name.as_ref().map_or_else(|| i.to_string(), |n| n.name.clone());
            let value = self.eval(&a.value);
            if matches!(value, Val::Poison) {
                return; // already reported
            }
            match super::run::option_of(&value) {
                Some(v) => {
                    options.insert(key.clone(), v);
                }
                None => {
                    self.error(
                        TypeError::new(
                            "E0105",
                            a.value.span,
                            "a schedule option is a number or a list of numbers",
                        )
                        .label("not a number"),
                    );
                    return;
                }
            }
            spans.push((key, a.span));
        }
        if let Err(p) = crate::lr_schedule::LrSchedule::from_options(name, &options) {
            let at = if p.code == "E0100" { f.span } else { spec.span };
            self.option_problem(p, &spans, at);
        }
    }

    /// An option table's problem as a diagnostic: at the option it names (`spans`: each
    /// given option's key and span), else at `at`.
    fn option_problem(&mut self, p: crate::option_table::OptionProblem, spans: &[(String, Span)], at: Span) {
        let span = p.option.as_ref().and_then(|o| spans.iter().find(|(k, _)| k == o)).map_or(at, |(_, s)| *s);
        let mut e = TypeError::new(p.code, span, p.message).label(p.label);
        if let Some(help) = p.help {
            e = e.help(help);
        }
        self.error(e);
    }

    fn step(
        &mut self,
        stmts: &[ast::StepStmt],
        repeat: u64,
        data: &[(ast::Ident, TensorType)],
        opts: &mut [(ast::Ident, Vec<usize>, bool)],
    ) -> Vec<Phase> {
        let mut phases = Vec::new();
        for s in stmts {
            match &s.kind {
                ast::StepStmtKind::Repeat { count, body } => {
                    let n = self.positive(count, "a repeat count").unwrap_or(1);
                    phases.extend(self.step(body, repeat * n, data, opts));
                }
                ast::StepStmtKind::Minimize { maximize, objective, optimizer } => {
                    let Some(k) = opts.iter().position(|(n, _, _)| n.name == optimizer.name) else {
                        let declared: Vec<String> = opts.iter().map(|(n, _, _)| n.name.clone()).collect();
                        self.unknown_optimizer(optimizer, &declared);
                        continue;
                    };
                    let name = format!(
                        "{} {}",
                        if *maximize { "maximize" } else { "minimize" },
                        genc_grammar::format::expr(objective)
                    );
                    let params = opts[k].1.clone();
                    self.unit_from_expr(UnitKind::Phase, &name, objective, data, Some((optimizer, params)));
                    opts[k].2 = true;
                    let label = match &objective.kind {
                        ast::ExprKind::Call(f, _) => match &f.kind {
                            ast::ExprKind::Name(n) => n.clone(),
                            _ => genc_grammar::format::expr(objective),
                        },
                        _ => genc_grammar::format::expr(objective),
                    };
                    phases.push(Phase {
                        name,
                        label,
                        optimizer: optimizer.name.clone(),
                        maximize: *maximize,
                        repeat,
                    });
                }
                ast::StepStmtKind::Clip { target, range } => {
                    self.net_path(target, "a weight clip");
                    if let Some(bound) = super::run::norm_bound(range) {
                        match self.eval(bound) {
                            Val::Float(c) if c > 0.0 && c.is_finite() => {}
                            Val::Int(d) if d.as_const().is_some_and(|c| c > 0) => {}
                            Val::Poison => {}
                            _ => {
                                self.error(
                                    TypeError::new(
                                        "E0105",
                                        bound.span,
                                        "`clip .. to norm(c)` needs a positive number c",
                                    )
                                    .label("not a positive norm"),
                                );
                            }
                        }
                        continue;
                    }
                    match self.eval(range) {
                        Val::List(xs)
                            if xs.len() == 2
                                && xs.iter().all(|x| matches!(x, Val::Float(_) | Val::Int(_))) => {}
                        Val::Poison => {}
                        _ => {
                            self.error(
                                TypeError::new("E0105", range.span, "clip needs a range [lo, hi] of numbers")
                                    .label("not a range")
                                    .help("`clip D to [-0.01, 0.01]` clamps each weight; `clip D to norm(1.9)` bounds each unit's weight norm"),
                            );
                        }
                    }
                }
            }
        }
        phases
    }

    /// E0123: labels of a data set with more classes than the op that reads them allows
    /// (`one_hot(y, 9)` on Fashion-MNIST's ten classes turns every label 9 into a zero row).
    fn check_label_ranges(&mut self, graph: &Graph) {
        for u in &graph.index_uses {
            let Some(name) = graph.input_names.get(u.input) else { continue };
            let Some(&(classes, source)) = self.label_classes.get(name) else { continue };
            if classes <= u.classes {
                continue;
            }
            self.error(
                TypeError::new(
                    "E0123",
                    u.span,
                    format!(
                        "`{}` takes {} classes, but `{name}` holds labels 0..={}",
                        u.op,
                        u.classes,
                        classes - 1
                    ),
                )
                .label(if u.classes + 1 == classes {
                    format!("label {} falls outside", u.classes)
                } else {
                    format!("labels {}..={} fall outside", u.classes, classes - 1)
                })
                .note(source, format!("`{name}` has {classes} classes"))
                .help(format!("give `{}` {classes} classes", u.op)),
            );
        }
    }

    /// Elaborates a train-block expression into its own graph, with the data bound as inputs.
    /// For a phase, also checks the objective is a scalar that reaches the optimizer.
    fn unit_from_expr(
        &mut self,
        kind: UnitKind,
        name: &str,
        e: &ast::Expr,
        data: &[(ast::Ident, TensorType)],
        opt: Option<(&ast::Ident, Vec<usize>)>,
    ) {
        let saved = self.begin_graph(kind.mode());
        self.frame().vars.push(HashMap::new());
        for (ident, ty) in data {
            let index = self.graph.input_names.len();
            self.graph.input_names.push(ident.name.clone());
            let n = self.push_node(Prim::Input { index }, ty.clone(), &[], ident.span);
            self.bind(ident, Val::Tensor(n));
        }
        let v = self.eval(e);
        self.frame().vars.pop();
        let (graph, host) = self.end_graph(saved, &v, if kind == UnitKind::Phase { "loss" } else { "out" });
        self.check_label_ranges(&graph);
        if let Some((optimizer, params)) = opt {
            match &v {
                Val::Tensor(n) if graph.ty(*n).rank() == 0 => {
                    self.reaches(&graph, *n, e.span, optimizer, &params)
                }
                Val::Tensor(n) => {
                    let t = graph.ty(*n).clone();
                    self.error(
                        TypeError::new("E0114", e.span, format!("the objective is {t}, not a scalar"))
                            .label(format!("this is {t}"))
                            .help("an optimizer minimizes one number: reduce it, e.g. `mean(..)`"),
                    );
                }
                Val::Poison => {}
                other => {
                    self.error(
                        TypeError::new(
                            "E0114",
                            e.span,
                            format!("the objective is {}, not a scalar tensor", other.kind_name()),
                        )
                        .label("nothing to differentiate"),
                    );
                }
            }
        }
        self.units.push(Unit { kind, name: name.to_string(), graph, host });
    }

    /// E0115 when no parameter of the optimizer gets a gradient from the objective.
    fn reaches(&mut self, g: &Graph, out: NodeId, span: Span, optimizer: &ast::Ident, params: &[usize]) {
        let reached = differentiable_params(g, out);
        if params.iter().any(|p| reached.contains(p)) {
            return;
        }
        let owners: BTreeSet<String> =
            params.iter().filter_map(|&p| self.table.params[p].owner.clone()).collect();
        let nets: Vec<String> = owners.into_iter().collect();
        self.error(
            TypeError::new(
                "E0115",
                span,
                format!(
                    "this objective never reaches the parameters of `{}`: the optimizer would never move",
                    optimizer.name
                ),
            )
            .label("no gradient flows to its nets from here")
            .note(
                optimizer.span,
                format!(
                    "`{}` trains {}",
                    optimizer.name,
                    if nets.is_empty() { "no parameters".into() } else { nets.join(", ") }
                ),
            )
            .help("call those nets in the objective, outside `stop_grad(..)`, or use another optimizer"),
        );
    }

    fn check_exclusive(&mut self, opts: &[(ast::Ident, Vec<usize>, bool)], scheduled: &BTreeSet<String>) {
        let mut owner: HashMap<usize, &ast::Ident> = HashMap::new();
        for (name, params, _) in opts {
            for p in params {
                if let Some(first) = owner.get(p) {
                    if scheduled.contains(&first.name) && scheduled.contains(&name.name) {
                        continue;
                    }
                    let pname = self.table.params[*p].name.clone();
                    let first_span = first.span;
                    let first_name = first.name.clone();
                    self.error(
                        TypeError::new(
                            "E0116",
                            name.span,
                            format!("`{pname}` is updated by both `{first_name}` and `{}`", name.name),
                        )
                        .label("second optimizer of the same parameters")
                        .note(first_span, "first optimizer here")
                        .help(
                            "give each net one optimizer, or give both a `schedule` that says when each runs",
                        ),
                    );
                    break;
                }
                owner.insert(*p, name);
            }
        }
    }
}

/// Trainable parameters with a gradient path to `out` that no `stop_grad` cuts.
pub fn differentiable_params(g: &Graph, out: NodeId) -> BTreeSet<usize> {
    let mut found = BTreeSet::new();
    let mut seen = vec![false; g.len()];
    let mut stack = vec![out];
    while let Some(n) = stack.pop() {
        if std::mem::replace(&mut seen[n.index()], true) {
            continue;
        }
        match &g.node(n).prim {
            Prim::Param { index } => {
                found.insert(*index);
            }
            Prim::StopGrad | Prim::Cast { to: DType::I32 | DType::Bool } => {}
            _ => stack.extend(g.inputs(n)),
        }
    }
    found
}
