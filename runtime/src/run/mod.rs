//! A training run as a library: [`Run::new`] takes a trainer, its data and the spec's
//! cadences; [`Run::step`] trains one step and does the compute of the cadences that fall due
//! on it (sample grids, evals over the test set), handing back what happened as [`Event`]s.
//! Files, terminals and signals are the caller's: `genc train` writes the events to a run
//! folder, and saves a checkpoint when one is due.

mod feed;
mod units;

use genc_compiler::train_spec::{Cadence, CadenceKind, Every};

use crate::data::{Batcher, BatcherState};
use crate::device::{Device, DeviceTensor};
use crate::labels::FeedError;
use crate::train::{TrainError, Trainer};

pub use feed::{DataProblem, RunData, inputs_for, open_source, split_of, transforms_of, unit_inputs};
pub use units::{Eval, Images, Scored, Units, evaluate, sample};

/// How long a run is and how its batches are counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunLength {
    /// The step the run ends at.
    pub steps: u64,
    /// Steps per pass over the training data (`every N epochs` cadences count these).
    pub per_epoch: u64,
    pub batch: usize,
    /// The run's seed: samples and evals draw their noise from it.
    pub seed: u64,
}

/// What a step's cadences did.
pub enum Event {
    /// A `log` cadence is due: the step's metrics belong in the log.
    Log,
    /// A sample grid, named as its file should be (`_ema` when it read EMA weights).
    Sample { name: String, images: Result<Option<Images>, TrainError> },
    /// An eval over the test set, named as its metric should be (`_ema` likewise).
    Eval { name: String, scored: Result<Scored, TrainError> },
    /// A checkpoint is due: the caller saves [`Run::trainer`] with [`Run::batcher_state`].
    Checkpoint,
}

/// One step's metrics (losses and logged values by name) and cadence events.
pub struct StepOutcome {
    pub step: u64,
    pub metrics: Vec<(String, f64)>,
    pub events: Vec<Event>,
}

pub struct Run {
    pub trainer: Trainer,
    pub data: RunData,
    batcher: Batcher,
    units: Units,
    cadences: Vec<Cadence>,
    length: RunLength,
    /// The last step done.
    done: u64,
}

impl Run {
    /// A run that has done `done` steps (0, or a resumed checkpoint's step) of `length`.
    pub fn new(
        trainer: Trainer,
        data: RunData,
        batcher: Batcher,
        units: Units,
        cadences: Vec<Cadence>,
        length: RunLength,
        done: u64,
    ) -> Run {
        Run { trainer, data, batcher, units, cadences, length, done }
    }

    /// The last step done.
    pub fn done(&self) -> u64 {
        self.done
    }

    pub fn finished(&self) -> bool {
        self.done >= self.length.steps
    }

    /// Where the data loader stands (saved with a checkpoint, so a resumed run continues with
    /// the same batches).
    pub fn batcher_state(&self) -> BatcherState {
        self.batcher.state()
    }

    /// Trains the next step, then runs the samples and evals due on it.
    pub fn step(&mut self, device: &Device) -> Result<StepOutcome, TrainError> {
        let step = self.done + 1;
        let (batcher, names) = (&mut self.batcher, &self.data.train_spec.names);
        let mut feed =
            |phase: &genc_compiler::program::PhaseProgram| -> Result<Vec<DeviceTensor>, FeedError> {
                let b = batcher.next_batch().map_err(|e| FeedError::Data(e.to_string()))?;
                inputs_for(device, phase, names, &b)
            };
        let report = self.trainer.train_step(device, &mut feed)?;
        self.done = step;
        let averaged = if self.trainer.ema.is_empty() { "" } else { "_ema" };
        let RunLength { steps, per_epoch, batch, seed } = self.length;
        let per_epoch = per_epoch.max(1);
        let due = |every: &Every| {
            step == steps
                || match every {
                    Every::Steps(n) => step % n == 0,
                    Every::Epochs(n) => step % per_epoch == 0 && (step / per_epoch) % n == 0,
                }
        };
        let mut events = Vec::new();
        for cadence in self.cadences.iter().filter(|c| due(&c.every)) {
            match &cadence.kind {
                CadenceKind::Log => events.push(Event::Log),
                CadenceKind::Checkpoint => events.push(Event::Checkpoint),
                CadenceKind::Sample { index, name } => {
                    let Some(Some(unit)) = self.units.samples.get(*index) else { continue };
                    let images = sample(device, &self.trainer, unit, &self.data, batch, seed ^ 0x5A4D_504C);
                    events.push(Event::Sample { name: format!("{name}{averaged}"), images });
                }
                CadenceKind::Eval { index, name } => {
                    let Some(Some(unit)) = self.units.evals.get(*index) else { continue };
                    let scored = evaluate(device, &self.trainer, unit, &self.data, batch, seed, step);
                    events.push(Event::Eval { name: format!("{name}{averaged}"), scored });
                }
            }
        }
        Ok(StepOutcome { step, metrics: report.metrics, events })
    }
}
