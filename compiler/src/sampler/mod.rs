//! Sampler programs: a sampler's host loops and branches around planned graph segments, the
//! serialisable hand-over for running samplers (DDPM's reverse loop, PixelCNN's pixel loop).
//!
//! The host holds *variables*: tensors that segments hand each other (a loop-carried `x`, the
//! loop counter `t`, a value one segment computes and a later one reads). A [`Segment`] is an
//! ordinary planned [`PhaseProgram`] whose inputs are read from variables and whose outputs
//! are written to variables; [`HostStep`]s say in which order, how often and under which
//! condition segments run. [`plan`] builds a program from a checked unit, [`walk`] runs one
//! on any evaluator (the reference interpreter, a device).
//!
//! Random draws: a segment's `Random` nodes each have their own stream; the seed a segment
//! runs with is the caller's seed mixed with the iteration number of every enclosing loop
//! ([`crate::random::iteration_seed`]), so each iteration draws afresh and a run is still a
//! pure function of its seed.

pub mod plan;
pub mod walk;

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::prim::DType;
use crate::program::{PhaseProgram, TensorSpec};

pub use plan::plan_sampler;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SamplerProgram {
    pub name: String,
    pub params: Vec<TensorSpec>,
    pub buffers: Vec<TensorSpec>,
    pub vars: Vec<Var>,
    /// The variables the caller feeds, in the order of the unit's inputs.
    pub inputs: Vec<usize>,
    pub segments: Vec<Segment>,
    pub body: Vec<HostStep>,
    /// The unit's results: name and variable.
    pub outputs: Vec<(String, usize)>,
    /// Indices the sampler computes: each output named here counts the values that fell
    /// outside `0..classes` (a loop-free sampler's; see `check/index_guard.rs`).
    #[serde(default)]
    pub index_guards: Vec<crate::program::IndexGuardSpec>,
}

/// A host variable.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Var {
    pub name: String,
    pub kind: VarKind,
    pub dtype: DType,
    pub shape: Vec<usize>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum VarKind {
    /// Fed by the caller (a sampler's tensor argument, a data batch).
    Input,
    /// A loop counter: an i32 scalar the host sets each iteration.
    Loop,
    /// A variable assigned in a loop or a branch: it holds the latest value.
    Carry,
    /// A value one segment computes for later ones.
    Value,
}

impl VarKind {
    fn name(self) -> &'static str {
        match self {
            VarKind::Input => "input",
            VarKind::Loop => "loop",
            VarKind::Carry => "carry",
            VarKind::Value => "value",
        }
    }
}

/// A planned straight-line graph: phase input `k` is variable `reads[k]`, phase output `k`
/// goes to variable `writes[k]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    pub phase: PhaseProgram,
    pub reads: Vec<usize>,
    pub writes: Vec<usize>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum HostStep {
    Run {
        segment: usize,
    },
    /// Variable `to` takes the value of variable `from`.
    Copy {
        from: usize,
        to: usize,
    },
    /// `body` for the counter = `first`, then toward `last` by one (inclusive); `var` holds
    /// the counter when something reads it.
    Loop {
        var: Option<usize>,
        first: i64,
        last: i64,
        body: Vec<HostStep>,
    },
    /// `then` when the scalar variable `cond` is non-zero, else `otherwise`.
    If {
        cond: usize,
        then: Vec<HostStep>,
        otherwise: Vec<HostStep>,
    },
}

impl SamplerProgram {
    /// The stable text form of `--emit sampler`: variables, host steps, then every segment.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let kernels: usize = self.segments.iter().map(|s| s.phase.kernels).sum();
        let _ = writeln!(
            out,
            "sampler {} {{  // {} segments (phases `{} segment k` below), {} kernels",
            self.name,
            self.segments.len(),
            self.name,
            kernels
        );
        for (i, v) in self.vars.iter().enumerate() {
            let _ = writeln!(out, "  var[{i}] {} {} : {}{:?}", v.kind.name(), v.name, v.dtype, v.shape);
        }
        steps_text(&self.body, &self.segments, 1, &mut out);
        for (name, v) in &self.outputs {
            let _ = writeln!(out, "  return {name} = var[{v}]");
        }
        out.push_str("}\n");
        for s in &self.segments {
            out.push_str(&s.phase.to_text());
        }
        out
    }
}

fn vars_text(vars: &[usize]) -> String {
    vars.iter().map(|v| format!("var[{v}]")).collect::<Vec<_>>().join(", ")
}

fn steps_text(steps: &[HostStep], segments: &[Segment], depth: usize, out: &mut String) {
    let pad = "  ".repeat(depth);
    for step in steps {
        match step {
            HostStep::Run { segment } => {
                let (reads, writes) = segments
                    .get(*segment)
                    .map_or((String::new(), String::new()), |s| (vars_text(&s.reads), vars_text(&s.writes)));
                let _ = writeln!(out, "{pad}run segment[{segment}] ({reads}) -> ({writes})");
            }
            HostStep::Copy { from, to } => {
                let _ = writeln!(out, "{pad}var[{to}] = var[{from}]");
            }
            HostStep::Loop { var, first, last, body } => {
                let counter = var.map_or("_".to_string(), |v| format!("var[{v}]"));
                let _ = writeln!(out, "{pad}for {counter} in {first}..={last} {{");
                steps_text(body, segments, depth + 1, out);
                let _ = writeln!(out, "{pad}}}");
            }
            HostStep::If { cond, then, otherwise } => {
                let _ = writeln!(out, "{pad}if var[{cond}] {{");
                steps_text(then, segments, depth + 1, out);
                if !otherwise.is_empty() {
                    let _ = writeln!(out, "{pad}}} else {{");
                    steps_text(otherwise, segments, depth + 1, out);
                }
                let _ = writeln!(out, "{pad}}}");
            }
        }
    }
}
