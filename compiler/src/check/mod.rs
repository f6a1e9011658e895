//! The checker: resolves names, instantiates nets and blocks, elaborates every definition into
//! a typed graph of primitives and reports every independent mistake.
//!
//! Elaboration is abstract interpretation of the AST: compile-time values (ints, dims,
//! floats, tuples) are computed, tensors become graph nodes whose types are checked by the
//! shape rules as they are added. Nets, blocks and losses are inlined at each call; a net's
//! weights are named by the net (`G.linear0.weight`), so every call of `G` shares them.

mod builtins;
mod calls;
mod causal;
mod cause;
mod expr;
mod host;
mod image_metrics;
mod index_guard;
mod init;
mod layers;
mod module;
mod ops;
mod resample;
mod run;
mod train;
mod value;

use std::collections::HashMap;

use genc_grammar::{Span, ast};
use indexmap::IndexMap;

use crate::diag::TypeError;
use crate::dim::Dim;
use crate::graph::{Graph, NodeId, Output};
use crate::params::ParamTable;

pub use crate::train_spec::{
    Cadence, CadenceKind, DataSpec, Every, OptimizerSpec, OptionValue, Options, RunSpec, StepOp,
};
pub use train::{Phase, Schedule};
pub use value::Val;

pub use crate::overrides::Override;

/// What a graph computes, for the stage dumps and the planner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnitKind {
    Net,
    Loss,
    Sampler,
    Phase,
    Sample,
    Eval,
}

impl UnitKind {
    /// How layers behave in this kind of unit: training steps (and the nets and losses they
    /// inline, checked on their own) train; samples, evals and samplers evaluate.
    pub fn mode(self) -> Mode {
        match self {
            UnitKind::Net | UnitKind::Loss | UnitKind::Phase => Mode::Train,
            UnitKind::Sampler | UnitKind::Sample | UnitKind::Eval => Mode::Eval,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            UnitKind::Net => "net",
            UnitKind::Loss => "loss",
            UnitKind::Sampler => "sampler",
            UnitKind::Phase => "phase",
            UnitKind::Sample => "sample",
            UnitKind::Eval => "eval",
        }
    }
}

/// How layers behave in the graph being built, like PyTorch's `train()` and `eval()`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// Batch norm normalises with the batch statistics and outputs its updated running
    /// statistics (`buffer.<name>`); dropout drops.
    #[default]
    Train,
    /// Batch norm normalises with the running statistics; dropout is the identity.
    Eval,
}

/// One elaborated graph.
#[derive(Clone, Debug)]
pub struct Unit {
    pub kind: UnitKind,
    pub name: String,
    pub graph: Graph,
    /// The host loops and branches around the graph's segments, when a sampler has any.
    pub host: Option<crate::host::HostBody>,
}

/// Everything the checker learned about a spec.
#[derive(Debug, Default)]
pub struct Checked {
    pub units: Vec<Unit>,
    pub table: ParamTable,
    /// Computes the module's constant buffers (`const betas = linspace(..)`).
    pub consts: Graph,
    /// The bound dims, in declaration order (`H = 28`); free dims (`B`) are absent.
    pub dims: IndexMap<String, i64>,
    pub schedule: Option<Schedule>,
    /// The training run with its options evaluated (when the spec has a `train` block).
    pub run: Option<RunSpec>,
    pub errors: Vec<TypeError>,
    /// Mistakes that do not stop the spec from checking (`W` codes).
    pub warnings: Vec<TypeError>,
}

/// Every built-in function and layer name, for editors' completion and hover.
pub fn builtin_names() -> impl Iterator<Item = &'static str> {
    builtins::all_names()
}

/// True for a layer (a built-in with weights).
pub fn is_layer(name: &str) -> bool {
    layers::LAYERS.contains(&name)
}

/// Every named option a built-in or layer takes (`kernel`, `stride`, ..).
pub fn option_names() -> &'static [&'static str] {
    builtins::OPTION_NAMES
}

/// Checks a parsed spec. Never panics; every mistake is a diagnostic in `Checked::errors`.
///
/// A sampler with `int` parameters (`n: int = 64`) is checked at its defaults and again
/// called for [`PROBE_SAMPLES`]: a size written as a number where `n` belongs passes at the
/// default and fails there. Only mistakes the first check did not report are added.
pub fn check(file: &ast::File, overrides: &[Override]) -> Checked {
    let mut checked = check_with(file, overrides, None);
    if !checked.errors.is_empty() {
        return checked;
    }
    for def in file.items.iter().filter_map(|i| match i {
        ast::Item::Def(d) if d.kind == ast::DefKind::Sampler && d.params.iter().any(is_int_param) => Some(d),
        _ => None,
    }) {
        let call = SamplerCall { name: def.name.name.clone(), n: PROBE_SAMPLES };
        for mut e in check_with(file, overrides, Some(&call)).errors {
            if !checked.errors.iter().any(|x| x.code == e.code && x.span == e.span) {
                e.message = format!("{} (`{}` called for {PROBE_SAMPLES} samples)", e.message, def.name.name);
                e.help = Some(match e.help.take() {
                    Some(h) => format!("{h}; a size that changes with the call is written with the sampler's `int` parameter"),
                    None => "a size that changes with the call is written with the sampler's `int` parameter, not a number".into(),
                });
                checked.errors.push(e);
            }
        }
    }
    checked
}

/// The sample count a sampler with `int` parameters is checked at besides its defaults.
pub const PROBE_SAMPLES: i64 = 3;

fn is_int_param(p: &ast::Param) -> bool {
    matches!(&p.ty, Some(ast::Type { kind: ast::TypeKind::Scalar(s), .. }) if s == "int")
}

/// Which parameter of a sampler is its sample count: the `int` one named `n`, else its first
/// `int` one. Other `int` parameters (a DDIM sampler's `steps: int = 50`) keep their defaults.
pub fn count_param(def: &ast::Def) -> Option<usize> {
    let ints = || def.params.iter().enumerate().filter(|(_, p)| is_int_param(p));
    ints().find(|(_, p)| p.name.name == "n").or_else(|| ints().next()).map(|(i, _)| i)
}

/// A sampler elaborated for a given number of samples (`genc sample --n`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SamplerCall {
    pub name: String,
    /// The value of the sample count (`n: int = 64`, see [`count_param`]), in place of its
    /// default.
    pub n: i64,
}

/// Like [`check`], with the unit of sampler `call.name` elaborated at `call.n`. Its tensor
/// parameters keep their free dims (`x: [n, C, H, W]`) for the planner to bind.
pub fn check_call(file: &ast::File, overrides: &[Override], call: &SamplerCall) -> Checked {
    check_with(file, overrides, Some(call))
}

fn check_with(file: &ast::File, overrides: &[Override], call: Option<&SamplerCall>) -> Checked {
    let mut checker = Checker::new(file);
    checker.call = call.cloned();
    checker.declare(overrides);
    checker.check_definitions();
    checker.check_train();
    checker.finish()
}

/// The per-graph state of the checker, put aside while another unit is built.
struct SavedGraph {
    graph: Graph,
    streams: u32,
    logs: Vec<(String, NodeId)>,
    mode: Mode,
    running: Vec<(usize, NodeId)>,
    states: HashMap<NodeId, usize>,
    int_ranges: HashMap<NodeId, (i64, i64)>,
    guards: Vec<index_guard::PendingGuard>,
    host: crate::host::Recorder,
}

/// A dim declared at module level.
#[derive(Clone, Debug)]
struct DimEntry {
    value: Option<i64>,
    span: Span,
    poisoned: bool,
    /// The value came from `--set` (a `where` that breaks says so).
    set: bool,
}

/// A `const`: a plain value, or a buffer computed by node `node` of the constant graph.
#[derive(Clone, Debug)]
enum ConstVal {
    Value(Val),
    Buffer { index: usize, node: NodeId },
}

/// One call's worth of scope: variables, dims bound by unification, the owner of the weights
/// that layers create here and the per-kind layer counters that name them.
#[derive(Debug, Default)]
struct Frame {
    def: String,
    vars: Vec<HashMap<String, (Val, Span)>>,
    dims: HashMap<String, Dim>,
    /// `G` or `G.res0`: the prefix of parameter names made in this frame.
    owner: Option<String>,
    counters: HashMap<String, usize>,
    /// Host loops and branches of a sampler body run on the host: tensors may steer them.
    host_control: bool,
}

struct Checker<'a> {
    file: &'a ast::File,
    dims: IndexMap<String, DimEntry>,
    hparams: IndexMap<String, (Val, Span)>,
    consts: IndexMap<String, (ConstVal, Span)>,
    defs: IndexMap<String, &'a ast::Def>,
    table: ParamTable,
    const_graph: Graph,
    errors: Vec<TypeError>,
    /// The graph being built; swapped out per unit.
    graph: Graph,
    frames: Vec<Frame>,
    /// Next `Random` stream number within the current graph.
    streams: u32,
    /// Named scalars that `log name = ..` recorded in the current graph.
    logs: Vec<(String, NodeId)>,
    /// How layers behave in the current graph.
    mode: Mode,
    /// Per buffer index, the latest value of a running statistic the current graph updated
    /// (training mode): the next call of the same layer starts from it.
    running: Vec<(usize, NodeId)>,
    /// The nodes of the current graph that read a `state(..)` (or a value `keep` gave it),
    /// with its buffer index: what `keep` may name.
    states: HashMap<NodeId, usize>,
    /// Int tensors of the current graph whose values are known to lie in `lo..hi` (a
    /// `randint`): an index among them needs no run-time guard.
    int_ranges: HashMap<NodeId, (i64, i64)>,
    /// Indices the current graph computes that need a run-time guard.
    guards: Vec<index_guard::PendingGuard>,
    units: Vec<Unit>,
    schedule: Option<Schedule>,
    run: Option<RunSpec>,
    /// Budget of unrolled loop iterations and inlined calls, so no spec can hang the checker.
    fuel: usize,
    /// True while elaborating module-level constants (their tensors go to `const_graph`).
    in_consts: bool,
    /// The built-in or layer being expanded, recorded on each node it makes.
    origin: String,
    /// Optimizers whose declaration was already reported: their uses stay quiet.
    failed_optimizers: Vec<String>,
    /// The host program of the current graph (cuts at sampler loops and branches).
    host: crate::host::Recorder,
    /// A sampler to elaborate at a given size instead of its defaults.
    call: Option<SamplerCall>,
    /// Data names bound to class labels, with the number of classes and the source's span.
    label_classes: HashMap<String, (i64, Span)>,
    /// Parameters whose layer was given an `init:`, which `init NET(std:)` leaves alone.
    explicit_init: std::collections::HashSet<usize>,
}

/// Unrolled iterations plus inlined calls allowed per spec.
const FUEL: usize = 200_000;
/// The deepest chain of nested calls.
const MAX_CALL_DEPTH: usize = 64;

impl<'a> Checker<'a> {
    fn new(file: &'a ast::File) -> Self {
        Checker {
            file,
            dims: IndexMap::new(),
            hparams: IndexMap::new(),
            consts: IndexMap::new(),
            defs: IndexMap::new(),
            table: ParamTable::default(),
            const_graph: Graph::default(),
            errors: Vec::new(),
            graph: Graph::default(),
            frames: Vec::new(),
            streams: 0,
            logs: Vec::new(),
            mode: Mode::Train,
            running: Vec::new(),
            states: HashMap::new(),
            int_ranges: HashMap::new(),
            guards: Vec::new(),
            units: Vec::new(),
            label_classes: HashMap::new(),
            explicit_init: Default::default(),
            schedule: None,
            run: None,
            fuel: FUEL,
            in_consts: false,
            origin: String::new(),
            failed_optimizers: Vec::new(),
            host: crate::host::Recorder::default(),
            call: None,
        }
    }

    /// Records a mistake once: the same code at the same place is one cause, whatever size
    /// it was met at (a net checked with `B` and again at the batch size says it once).
    fn error(&mut self, e: TypeError) -> Val {
        if !self.errors.iter().any(|x| x.code == e.code && x.span == e.span) {
            self.errors.push(e);
        }
        Val::Poison
    }

    fn frame(&mut self) -> &mut Frame {
        if self.frames.is_empty() {
            self.frames.push(Frame::default());
        }
        let last = self.frames.len() - 1;
        &mut self.frames[last]
    }

    /// Starts a fresh graph for one unit whose layers behave as `mode`, returning the state
    /// of the graph being built before.
    fn begin_graph(&mut self, mode: Mode) -> SavedGraph {
        SavedGraph {
            graph: std::mem::take(&mut self.graph),
            streams: std::mem::replace(&mut self.streams, 0),
            logs: std::mem::take(&mut self.logs),
            mode: std::mem::replace(&mut self.mode, mode),
            running: std::mem::take(&mut self.running),
            states: std::mem::take(&mut self.states),
            int_ranges: std::mem::take(&mut self.int_ranges),
            guards: std::mem::take(&mut self.guards),
            host: std::mem::take(&mut self.host),
        }
    }

    /// Finishes the current unit and brings back the graph `saved` from `begin_graph`. The
    /// unit's outputs: its logged metrics (`log.<name>`), its `result` (named `name`, see
    /// `collect_outputs`), then the running statistics it updated (`buffer.<name>`); with
    /// it, its host program when it has loops or branches.
    fn end_graph(
        &mut self,
        saved: SavedGraph,
        result: &Val,
        name: &str,
    ) -> (Graph, Option<crate::host::HostBody>) {
        let logs = std::mem::replace(&mut self.logs, saved.logs);
        let running = std::mem::replace(&mut self.running, saved.running);
        self.states = saved.states;
        self.int_ranges = saved.int_ranges;
        let guards = std::mem::replace(&mut self.guards, saved.guards);
        let mut g = std::mem::replace(&mut self.graph, saved.graph);
        let host = std::mem::replace(&mut self.host, saved.host).finish(&g);
        self.streams = saved.streams;
        self.mode = saved.mode;
        for (name, node) in logs {
            g.outputs.push(Output { name: format!("log.{name}"), node });
        }
        calls::collect_outputs(&mut g, result, name);
        for (index, node) in running {
            let buffer = &self.table.buffers[index].name;
            g.outputs.push(Output { name: format!("buffer.{buffer}"), node });
        }
        // A sampler with host loops runs segment by segment: its computed indices stay
        // unguarded on devices (the interpreter still raises).
        if !host.has_control() {
            index_guard::add_guards(&mut g, guards);
        }
        (g, host.has_control().then_some(host))
    }

    fn finish(self) -> Checked {
        let dims = self.dims.iter().filter_map(|(k, v)| v.value.map(|x| (k.clone(), x))).collect();
        let (mut warnings, mut errors): (Vec<TypeError>, Vec<TypeError>) =
            self.errors.into_iter().partition(|e| e.warning);
        errors.sort_by_key(|e| (e.span.start, e.span.end));
        warnings.sort_by_key(|e| (e.span.start, e.span.end));
        Checked {
            units: self.units,
            table: self.table,
            consts: self.const_graph,
            dims,
            schedule: self.schedule,
            run: self.run,
            errors,
            warnings,
        }
    }

    /// Names visible from here, for "did you mean" suggestions.
    fn visible_names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        if let Some(f) = self.frames.last() {
            for scope in &f.vars {
                names.extend(scope.keys().cloned());
            }
            names.extend(f.dims.keys().cloned());
        }
        names.extend(self.dims.keys().cloned());
        names.extend(self.hparams.keys().cloned());
        names.extend(self.consts.keys().cloned());
        names.extend(self.defs.keys().cloned());
        names.extend(builtins::all_names().map(str::to_string));
        names
    }
}
