//! The training run a `train` block declares, with every option evaluated: what the runtime
//! needs beyond the graphs (data sources, optimizers and their hyper-parameters, learning-rate
//! schedules, the step with its repeats and clips, EMA, cadences, seed).
//!
//! Built after `train.rs` has checked the block, so it only evaluates; a value it cannot use
//! here was already reported.

use genc_grammar::ast;

use super::{Checker, Val};
use crate::train_spec::{
    Cadence, CadenceKind, DataSpec, Every, OptimizerSpec, OptionValue, Options, RunSpec, StepOp,
};

impl<'a> Checker<'a> {
    /// Evaluates the `train` block's settings (it has been checked already).
    pub(super) fn run_spec(&mut self, train: &ast::Train) -> RunSpec {
        let mut run = RunSpec::default();
        let (mut phases, mut samples, mut evals) = (0usize, 0usize, 0usize);
        // Layer-kind defaults first, wherever they are written: a net's or a layer's own
        // `init` is more specific and wins.
        for entry in &train.entries {
            if let ast::TrainEntryKind::InitDefault { target, rule } = &entry.kind {
                self.apply_init_default(target, rule);
            }
        }
        for entry in &train.entries {
            match &entry.kind {
                ast::TrainEntryKind::Data { pattern, source } => {
                    let names = match pattern {
                        ast::Pattern::Name(n) => vec![n.name.clone()],
                        ast::Pattern::Tuple(ns, _) => ns.iter().map(|n| n.name.clone()).collect(),
                    };
                    let (base, paired) = match &source.kind {
                        ast::ExprKind::Binary(ast::BinaryOp::Pipe, l, r) => (l.as_ref(), Some(r.as_ref())),
                        _ => (source, None),
                    };
                    let (src, options) = self.call_options(base);
                    let paired = paired.and_then(|p| match &p.kind {
                        ast::ExprKind::Call(_, args) => args.first().map(|a| self.call_options(&a.value)),
                        _ => None,
                    });
                    let pairing = paired.as_ref().map(|(kind, o)| (kind.as_str(), o));
                    // A source the check refused (it said why) reads nothing.
                    if let Ok(spec) = DataSpec::from_options(names, &src, &options, pairing) {
                        run.data.push(spec);
                    }
                }
                ast::TrainEntryKind::Seed(e) => {
                    if let Val::Int(d) = self.eval(e) {
                        run.seed = d.as_const().map(|v| v as u64);
                    }
                }
                ast::TrainEntryKind::Optimizer { name, spec } => {
                    let (kind, mut options) = self.call_options(spec);
                    // The nets it trains come first; the rest are options. A call the check
                    // refused (it said why) makes no optimizer.
                    options.retain(|k, _| k.parse::<usize>().is_err());
                    let Ok(config) = crate::optimizer::OptimizerConfig::from_options(&kind, &options) else {
                        continue;
                    };
                    let params = self
                        .schedule
                        .as_ref()
                        .and_then(|s| s.optimizers.iter().find(|(n, _)| *n == name.name))
                        .map(|(_, p)| p.clone())
                        .unwrap_or_default();
                    run.optimizers.push(OptimizerSpec {
                        name: name.name.clone(),
                        config,
                        params,
                        schedule: None,
                    });
                }
                ast::TrainEntryKind::Schedule { optimizer, spec } => {
                    // A schedule that does not parse was reported by the check.
                    let (kind, options) = self.call_options(spec);
                    let schedule = crate::lr_schedule::LrSchedule::from_options(&kind, &options).ok();
                    if let Some(o) = run.optimizers.iter_mut().find(|o| o.name == optimizer.name) {
                        o.schedule = schedule;
                    }
                }
                ast::TrainEntryKind::Ema { target, args } => {
                    let prefix = path_text(target);
                    let params = self.params_under(&prefix);
                    let mut decay = 0.999;
                    for a in args {
                        if let Some(x) = self.number(&a.value) {
                            decay = x;
                        }
                    }
                    run.ema.push((params, decay));
                }
                ast::TrainEntryKind::Init { target, args } => self.apply_init(target, args),
                ast::TrainEntryKind::InitDefault { .. } => {}
                ast::TrainEntryKind::Step(stmts) => run.step = self.step_ops(stmts, &mut phases),
                ast::TrainEntryKind::Sample { name, every, .. } => {
                    let name = name.as_ref().map_or("sample".to_string(), |n| n.name.clone());
                    let every = self.every(every);
                    run.cadences.push(Cadence { kind: CadenceKind::Sample { index: samples, name }, every });
                    samples += 1;
                }
                ast::TrainEntryKind::Eval { name, every, what } => {
                    // Unnamed, an eval is called after what it calls: `eval: nll(x_test)` is `nll`.
                    let callee = match &what.kind {
                        ast::ExprKind::Call(f, _) => match &f.kind {
                            ast::ExprKind::Name(n) => Some(n.clone()),
                            _ => None,
                        },
                        _ => None,
                    };
                    let name =
                        name.as_ref().map(|n| n.name.clone()).or(callee).unwrap_or_else(|| "eval".into());
                    let every = self.every(every);
                    run.cadences.push(Cadence { kind: CadenceKind::Eval { index: evals, name }, every });
                    evals += 1;
                }
                ast::TrainEntryKind::Checkpoint(c) => {
                    let every = self.every(c);
                    run.cadences.push(Cadence { kind: CadenceKind::Checkpoint, every });
                }
                ast::TrainEntryKind::Log(c) => {
                    let every = self.every(c);
                    run.cadences.push(Cadence { kind: CadenceKind::Log, every });
                }
                ast::TrainEntryKind::Batch { .. }
                | ast::TrainEntryKind::Steps(_)
                | ast::TrainEntryKind::Epochs(_) => {}
            }
        }
        run
    }

    fn step_ops(&mut self, stmts: &[ast::StepStmt], phases: &mut usize) -> Vec<StepOp> {
        let mut out = Vec::new();
        for s in stmts {
            match &s.kind {
                ast::StepStmtKind::Repeat { count, body } => {
                    let count = self.number(count).map_or(1, |c| c.max(1.0) as u64);
                    let body = self.step_ops(body, phases);
                    out.push(StepOp::Repeat { count, body });
                }
                ast::StepStmtKind::Minimize { .. } => {
                    out.push(StepOp::Phase { phase: *phases });
                    *phases += 1;
                }
                ast::StepStmtKind::Clip { target, range } => {
                    let params = self.params_under(&path_text(target));
                    if let Some(max) = norm_bound(range).and_then(|e| self.number(e)) {
                        let weights =
                            params.into_iter().filter(|&p| self.table.params[p].shape.len() >= 2).collect();
                        out.push(StepOp::ClipNorm { params: weights, max });
                        continue;
                    }
                    let (lo, hi) = match self.eval(range) {
                        Val::List(xs) if xs.len() == 2 => (number_of(&xs[0]), number_of(&xs[1])),
                        _ => (None, None),
                    };
                    if let (Some(lo), Some(hi)) = (lo, hi) {
                        out.push(StepOp::Clip { params, lo, hi });
                    }
                }
            }
        }
        out
    }

    fn every(&mut self, c: &ast::Cadence) -> Every {
        let n = self.number(&c.count).map_or(1, |x| x.max(1.0) as u64);
        match c.unit {
            ast::CadenceUnit::Steps => Every::Steps(n),
            ast::CadenceUnit::Epochs => Every::Epochs(n),
        }
    }

    fn number(&mut self, e: &ast::Expr) -> Option<f64> {
        let v = self.eval(e);
        number_of(&v)
    }

    /// `f(a, k: v)` as its name and options (positional ones under `0`, `1`, ..; a net name
    /// or list of nets as positional arguments is skipped).
    fn call_options(&mut self, e: &ast::Expr) -> (String, Options) {
        let ast::ExprKind::Call(f, args) = &e.kind else {
            return (String::new(), Options::new());
        };
        let name = match &f.kind {
            ast::ExprKind::Name(n) => n.clone(),
            _ => String::new(),
        };
        let mut options = Options::new();
        for (i, a) in args.iter().enumerate() {
            let key = a.name.as_ref().map_or_else(|| i.to_string(), |n| n.name.clone());
            let errors = self.errors.len();
            let v = self.eval(&a.value);
            self.errors.truncate(errors);
            if let Some(o) = option_of(&v) {
                options.insert(key, o);
            }
        }
        (name, options)
    }

    fn params_under(&self, prefix: &str) -> Vec<usize> {
        let dotted = format!("{prefix}.");
        self.table
            .params
            .iter()
            .enumerate()
            .filter(|(_, p)| p.name == prefix || p.name.starts_with(&dotted))
            .map(|(i, _)| i)
            .collect()
    }
}

/// `norm(c)` in `clip D to norm(c)`: the bound's expression.
pub(super) fn norm_bound(e: &ast::Expr) -> Option<&ast::Expr> {
    match &e.kind {
        ast::ExprKind::Call(f, args)
            if matches!(&f.kind, ast::ExprKind::Name(n) if n == "norm") && args.len() == 1 =>
        {
            Some(&args[0].value)
        }
        _ => None,
    }
}

fn path_text(p: &ast::Path) -> String {
    p.segments.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(".")
}

fn number_of(v: &Val) -> Option<f64> {
    match v {
        Val::Float(x) => Some(*x),
        Val::Int(d) => d.as_const().map(|x| x as f64),
        _ => None,
    }
}

pub(super) fn option_of(v: &Val) -> Option<OptionValue> {
    match v {
        Val::Float(_) | Val::Int(_) => number_of(v).map(OptionValue::Number),
        Val::Tuple(xs) | Val::List(xs) => {
            xs.iter().map(number_of).collect::<Option<Vec<_>>>().map(OptionValue::List)
        }
        Val::Str(s) => Some(OptionValue::Str(s.clone())),
        Val::Bool(b) => Some(OptionValue::Bool(*b)),
        _ => None,
    }
}
