//! Learning-rate schedules (`schedule opt = cosine(warmup: 500)`): the typed schedule, the
//! option table that the checker, its "did you mean" help and the docs share, and each
//! schedule's factor, pinned to PyTorch's `torch.optim.lr_scheduler` formulas.
//!
//! A schedule is a function of `t`, the optimizer's update count (0 for its first update),
//! and of the run's length in that optimizer's updates, the default length of `linear` and
//! `cosine`. The rate at update `t` is `lr * factor(t)`.

use std::f64::consts::PI;

use crate::check::{OptionValue, Options};
use crate::option_table::{self, OptionDoc, OptionProblem, ValueKind};

/// A learning-rate schedule with every option resolved.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum LrSchedule {
    /// The base rate, after an optional linear warm-up.
    Constant { warmup: u64 },
    /// Warm-up, then a linear decay to 0 at update `steps` (default: the run's length).
    Linear { steps: Option<u64>, warmup: u64 },
    /// Warm-up, then a half cosine from 1 down to `min` at update `steps` (default: the run's
    /// length), `min` after it.
    Cosine { steps: Option<u64>, min: f64, warmup: u64 },
    /// Multiplied by `gamma` every `every` updates.
    Step { every: u64, gamma: f64 },
    /// Multiplied by `gamma` every update, the rate never below `min_lr`.
    Exponential { gamma: f64, min_lr: f64 },
    /// `values[i]` from update `boundaries[i - 1]` on (`values[0]` before the first boundary).
    Piecewise { boundaries: Vec<u64>, values: Vec<f64> },
}

/// One schedule kind: its name, what it does, the PyTorch formula it follows, its options.
#[derive(Clone, Copy, Debug)]
pub struct ScheduleDoc {
    pub name: &'static str,
    pub doc: &'static str,
    pub pytorch: &'static str,
    pub options: &'static [OptionDoc],
}

const WARMUP: OptionDoc = OptionDoc {
    name: "warmup",
    kind: ValueKind::Steps,
    positional: false,
    required: false,
    default: "0",
    doc: "updates of linear warm-up, the factor (t + 1) / warmup",
};

const LENGTH: OptionDoc = OptionDoc {
    name: "steps",
    kind: ValueKind::Count,
    positional: true,
    required: false,
    default: "the run's length",
    doc: "the update at which the decay ends",
};

/// Every schedule, in the order the docs list them.
pub const SCHEDULES: &[ScheduleDoc] = &[
    ScheduleDoc {
        name: "constant",
        doc: "the base rate, after an optional warm-up",
        pytorch: "LinearLR(start_factor=1/warmup, total_iters=warmup-1), then constant",
        options: &[WARMUP],
    },
    ScheduleDoc {
        name: "linear",
        doc: "warm-up, then a linear decay to 0 at `steps`",
        pytorch: "LinearLR(start_factor=1, end_factor=0, total_iters=steps) after the warm-up",
        options: &[LENGTH, WARMUP],
    },
    ScheduleDoc {
        name: "cosine",
        doc: "warm-up, then a half cosine from 1 to `min` at `steps`",
        pytorch: "CosineAnnealingLR(T_max=steps-warmup, eta_min=min*lr) after the warm-up",
        options: &[
            LENGTH,
            OptionDoc {
                name: "min",
                kind: ValueKind::Fraction,
                positional: false,
                required: false,
                default: "0",
                doc: "the final factor, a fraction of the base rate",
            },
            WARMUP,
        ],
    },
    ScheduleDoc {
        name: "step",
        doc: "multiplied by `gamma` every `every` updates",
        pytorch: "StepLR(step_size=every, gamma=gamma)",
        options: &[
            OptionDoc {
                name: "every",
                kind: ValueKind::Count,
                positional: true,
                required: true,
                default: "",
                doc: "updates between two decays",
            },
            OptionDoc {
                name: "gamma",
                kind: ValueKind::Positive,
                positional: false,
                required: false,
                default: "0.1",
                doc: "the factor of each decay",
            },
        ],
    },
    ScheduleDoc {
        name: "exponential",
        doc: "multiplied by `gamma` every update (gamma < 1 decays), never below `min_lr`",
        pytorch: "ExponentialLR(gamma=gamma), with the rate floored at min_lr",
        options: &[
            OptionDoc {
                name: "gamma",
                kind: ValueKind::Positive,
                positional: true,
                required: true,
                default: "",
                doc: "the factor of each update; a decay factor f that divides (pylearn2's) is gamma: 1 / f",
            },
            OptionDoc {
                name: "min_lr",
                kind: ValueKind::NonNegative,
                positional: false,
                required: false,
                default: "0",
                doc: "the smallest rate, an absolute learning rate",
            },
        ],
    },
    ScheduleDoc {
        name: "piecewise",
        doc: "the factor `values[i]` from update `boundaries[i - 1]` on",
        pytorch: "MultiStepLR with explicit factors (LambdaLR over the boundaries)",
        options: &[
            OptionDoc {
                name: "boundaries",
                kind: ValueKind::StepList,
                positional: false,
                required: true,
                default: "",
                doc: "the updates at which the factor changes",
            },
            OptionDoc {
                name: "values",
                kind: ValueKind::NumberList,
                positional: false,
                required: true,
                default: "",
                doc: "the factors: one more than the boundaries",
            },
        ],
    },
];

/// The table entry of schedule `name`.
pub fn schedule_doc(name: &str) -> Option<&'static ScheduleDoc> {
    SCHEDULES.iter().find(|s| s.name == name)
}

impl LrSchedule {
    /// The schedule `kind(options)`, with every option checked against the table. Positional
    /// arguments have keys `"0"`, `"1"`, ...
    pub fn from_options(kind: &str, options: &Options) -> Result<LrSchedule, OptionProblem> {
        let doc = schedule_doc(kind).ok_or_else(|| {
            let names: Vec<&'static str> = SCHEDULES.iter().map(|s| s.name).collect();
            option_table::unknown_kind("schedule", kind, &names)
        })?;
        let values =
            option_table::resolve(kind, doc.options, options).map_err(|p| match p.option.as_deref() {
                Some(key) if p.code == "E0104" && p.label == "unknown option" => unknown_option(doc, key),
                _ => p,
            })?;
        let get = |name: &str| values.iter().find(|(o, _)| o.name == name).map(|(_, v)| *v);
        let number = |name: &str, default: f64| get(name).and_then(OptionValue::number).unwrap_or(default);
        let whole = |name: &str| get(name).and_then(OptionValue::number).map(|x| x as u64);
        let warmup = whole("warmup").unwrap_or(0);
        Ok(match doc.name {
            "constant" => LrSchedule::Constant { warmup },
            "linear" => LrSchedule::Linear { steps: whole("steps"), warmup },
            "cosine" => LrSchedule::Cosine { steps: whole("steps"), min: number("min", 0.0), warmup },
            "step" => LrSchedule::Step { every: whole("every").unwrap_or(1), gamma: number("gamma", 0.1) },
            "exponential" => {
                LrSchedule::Exponential { gamma: number("gamma", 1.0), min_lr: number("min_lr", 0.0) }
            }
            _ => {
                let list = |name: &str| get(name).and_then(OptionValue::list).unwrap_or(&[]).to_vec();
                let boundaries: Vec<u64> = list("boundaries").iter().map(|&b| b as u64).collect();
                let values = list("values");
                if values.len() != boundaries.len() + 1 {
                    return Err(OptionProblem::bad_value(
                        "values",
                        format!(
                            "{} boundaries need {} values, found {}",
                            boundaries.len(),
                            boundaries.len() + 1,
                            values.len()
                        ),
                    )
                    .help("one value before the first boundary and one after each"));
                }
                LrSchedule::Piecewise { boundaries, values }
            }
        })
    }

    /// The multiplier of the base rate at update `t` (0-based) of a run of `run_updates`
    /// updates.
    pub fn factor(&self, t: u64, run_updates: u64) -> f64 {
        let warm = |warmup: u64| ((t + 1) as f64 / warmup as f64).min(1.0);
        // The progress in [0, 1] of a decay that starts after the warm-up and ends at `steps`.
        let progress = |steps: Option<u64>, warmup: u64| {
            let end = steps.unwrap_or(run_updates).max(1);
            let span = end.saturating_sub(warmup).max(1);
            (t.saturating_sub(warmup) as f64 / span as f64).min(1.0)
        };
        match self {
            LrSchedule::Constant { warmup } if t < *warmup => warm(*warmup),
            LrSchedule::Constant { .. } => 1.0,
            LrSchedule::Linear { warmup, .. } | LrSchedule::Cosine { warmup, .. } if t < *warmup => {
                warm(*warmup)
            }
            LrSchedule::Linear { steps, warmup } => 1.0 - progress(*steps, *warmup),
            LrSchedule::Cosine { steps, min, warmup } => {
                min + (1.0 - min) * 0.5 * (1.0 + (PI * progress(*steps, *warmup)).cos())
            }
            LrSchedule::Step { every, gamma } => gamma.powf((t / (*every).max(1)) as f64),
            LrSchedule::Exponential { gamma, .. } => gamma.powf(t as f64),
            LrSchedule::Piecewise { boundaries, values } => {
                let i = boundaries.iter().filter(|&&b| t >= b).count();
                values.get(i).copied().unwrap_or(1.0)
            }
        }
    }

    /// The learning rate at update `t` for base rate `lr`.
    pub fn lr(&self, lr: f64, t: u64, run_updates: u64) -> f64 {
        let scheduled = lr * self.factor(t, run_updates);
        match self {
            // The floor never lifts the rate above the base.
            LrSchedule::Exponential { min_lr, .. } => scheduled.max(min_lr.min(lr)),
            _ => scheduled,
        }
    }

    /// When the rate would end above its base without a warm-up to explain it (a `gamma`
    /// above 1: an easy slip for a decay factor that divides), the last update's factor.
    pub fn rises(&self, run_updates: u64) -> Option<f64> {
        let last = self.factor(run_updates.saturating_sub(1), run_updates);
        (last > 1.0 + 1e-9).then_some(last)
    }
}

/// The schedules as a Markdown table, the section of docs/language.md that a test keeps in
/// step with this table.
pub fn docs_table() -> String {
    let mut out = String::from(
        "| schedule | what it does | options (default) | PyTorch |\n| --- | --- | --- | --- |\n",
    );
    for s in SCHEDULES {
        out += &format!(
            "| `{}` | {} | {} | `{}` |\n",
            s.name,
            s.doc,
            option_table::docs_cell(s.options),
            s.pytorch
        );
    }
    out
}

/// An unknown option of schedule `doc`, with the hint for pylearn2's `factor`.
fn unknown_option(doc: &ScheduleDoc, key: &str) -> OptionProblem {
    let problem = option_table::unknown_option(doc.name, doc.options, key);
    if doc.name == "exponential" && key == "factor" {
        return problem.help(
            "write `gamma:`, the factor each update multiplies the rate by (PyTorch's ExponentialLR); \
             a decay factor f that divides the rate each update, as in pylearn2, is `gamma: 1 / f`",
        );
    }
    problem
}

#[cfg(test)]
mod tests;
