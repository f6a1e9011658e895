//! The training run handed from the compiler to the runtime, beside `Program`: what a
//! `train` block declares with every option evaluated and typed (data sources, optimizers,
//! learning-rate schedules, the step with its repeats and clips, EMA, cadences, seed), the
//! parameter and buffer tables, and the constant buffers' values, evaluated when the spec is
//! planned. The runtime trains from a `TrainSpec` and a `Program` and needs nothing of the
//! checker.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::check::Checked;
pub use crate::data_source::DataSpec;
use crate::interp::{self, Value};
use crate::params::{Entry, Init};

/// A number, pair, list, string or bool given as an option.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum OptionValue {
    Number(f64),
    List(Vec<f64>),
    Str(String),
    Bool(bool),
}

impl OptionValue {
    pub fn number(&self) -> Option<f64> {
        match self {
            OptionValue::Number(x) => Some(*x),
            _ => None,
        }
    }

    pub fn list(&self) -> Option<&[f64]> {
        match self {
            OptionValue::List(x) => Some(x),
            _ => None,
        }
    }
}

pub type Options = BTreeMap<String, OptionValue>;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OptimizerSpec {
    pub name: String,
    /// The update rule with its options resolved.
    pub config: crate::optimizer::OptimizerConfig,
    /// Indices of the trainable parameters it updates.
    pub params: Vec<usize>,
    /// The learning-rate schedule.
    pub schedule: Option<crate::lr_schedule::LrSchedule>,
}

/// One thing the step does, in order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum StepOp {
    /// Run training phase `phase` (an index into the plan's phases) and apply its optimizer.
    Phase {
        phase: usize,
    },
    /// Clamp these parameters into `[lo, hi]`.
    Clip {
        params: Vec<usize>,
        lo: f64,
        hi: f64,
    },
    /// Rescale each output unit's weights (a row of a `linear` weight, a filter of a
    /// convolution's) to a norm of at most `max` (pylearn2's `max_col_norm`); tensors of rank
    /// 1 (biases, norm scales) are left alone.
    ClipNorm {
        params: Vec<usize>,
        max: f64,
    },
    Repeat {
        count: u64,
        body: Vec<StepOp>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Every {
    Steps(u64),
    Epochs(u64),
}

/// What happens at a cadence.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum CadenceKind {
    Log,
    Checkpoint,
    /// The `index`-th sample unit, with its name.
    Sample {
        index: usize,
        name: String,
    },
    Eval {
        index: usize,
        name: String,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cadence {
    pub kind: CadenceKind,
    pub every: Every,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunSpec {
    pub seed: Option<u64>,
    pub data: Vec<DataSpec>,
    pub optimizers: Vec<OptimizerSpec>,
    pub step: Vec<StepOp>,
    /// Parameters averaged by an EMA, with the decay.
    pub ema: Vec<(Vec<usize>, f64)>,
    pub cadences: Vec<Cadence>,
}

/// How a training phase runs: which optimizer follows it, and what its loss is logged as.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PhaseRun {
    /// The optimizer's index in `RunSpec::optimizers`.
    pub optimizer: usize,
    pub maximize: bool,
    /// The metric its loss is logged under (`critic` for `minimize critic(x, ..)`).
    pub label: String,
}

/// Everything the runtime trains from, besides the planned phases.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TrainSpec {
    pub run: RunSpec,
    /// Per training phase (in plan order): its optimizer, direction and metric name.
    pub phases: Vec<PhaseRun>,
    pub params: Vec<Entry>,
    pub buffers: Vec<Entry>,
    /// Values of the constant graph's nodes (noise schedules), by node index; empty when no
    /// buffer is computed.
    pub consts: Vec<Value>,
}

impl TrainSpec {
    /// The training run of a checked spec (without errors), with its constants evaluated.
    pub fn from_checked(checked: &Checked) -> Result<TrainSpec, String> {
        let run = checked.run.clone().unwrap_or_default();
        let schedule = checked.schedule.clone().unwrap_or_default();
        let phases = schedule
            .phases
            .iter()
            .map(|p| PhaseRun {
                optimizer: run.optimizers.iter().position(|o| o.name == p.optimizer).unwrap_or(0),
                maximize: p.maximize,
                label: p.label.clone(),
            })
            .collect();
        let consts = if checked.table.buffers.iter().any(|b| matches!(b.init, Init::Computed { .. })) {
            interp::eval_graph(&checked.consts, &interp::Leaves::default())
                .map_err(|e| format!("the constants cannot be computed: {e}"))?
        } else {
            Vec::new()
        };
        Ok(TrainSpec {
            run,
            phases,
            params: checked.table.params.clone(),
            buffers: checked.table.buffers.clone(),
            consts,
        })
    }
}
