//! The forward-only work a run does on its cadences: sample grids from the test set's first
//! batch, and evals averaged over the whole test set. Both read the EMA weights where the
//! spec keeps them ([`Trainer::forward`]).

use crate::device::Device;
use crate::executor::LoadedPhase;
use crate::train::{TrainError, Trainer, mix};

use super::feed::{RunData, inputs_for, transforms_of, unit_inputs};

/// The spec's `sample` and `eval` expressions, planned and loaded (`None` where one could not
/// be planned; the caller said why).
#[derive(Default)]
pub struct Units {
    pub samples: Vec<Option<LoadedPhase>>,
    pub evals: Vec<Option<Eval>>,
}

/// An eval planned at the batch size, and at the size of the test set's last, partial batch
/// when the batch does not divide it: every test example is scored once.
pub struct Eval {
    pub full: LoadedPhase,
    pub tail: Option<LoadedPhase>,
}

/// Images as f32 values with their N×C×H×W shape.
pub type Images = (Vec<f32>, [usize; 4]);

/// Runs sample `unit` on the test set's first batch; its `out` as images.
pub fn sample(
    device: &Device,
    trainer: &Trainer,
    unit: &LoadedPhase,
    data: &RunData,
    batch: usize,
    seed: u64,
) -> Result<Option<Images>, TrainError> {
    let test = data.first_test_batch(batch);
    let test = data.test.as_ref().map(|(d, _)| d).zip(test.as_ref());
    let inputs = unit_inputs(device, &unit.phase, test)?;
    let outs = trainer.forward(device, unit, inputs, seed)?;
    let Some((_, t)) = outs.iter().find(|(n, _)| n == "out") else { return Ok(None) };
    let shape = match t.shape[..] {
        [n, c, h, w] => [n, c, h, w],
        [n, h, w] => [n, 1, h, w],
        _ => return Ok(None),
    };
    Ok(Some((t.to_f32(device)?, shape)))
}

/// An eval's value over the whole test set and the number of examples it scored.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scored {
    pub value: f64,
    pub examples: usize,
}

/// The mean of eval `unit` over every test example, in the test set's order: each batch's
/// value weighted by its size (exact for a per-example mean; the last batch may be partial).
/// Every batch draws fresh noise from the run's seed, the step and the batch's position, so
/// two evals at one step agree and evals at different steps are independent. NaN without a
/// test set.
pub fn evaluate(
    device: &Device,
    trainer: &Trainer,
    unit: &Eval,
    data: &RunData,
    batch: usize,
    seed: u64,
    step: u64,
) -> Result<Scored, TrainError> {
    let none = Scored { value: f64::NAN, examples: 0 };
    let Some((d, ds)) = data.test.as_ref() else { return Ok(none) };
    let transforms = transforms_of(d);
    let Ok(batches) = crate::data::in_order(ds, &transforms, batch, seed, true) else {
        return Ok(none);
    };
    let (mut total, mut examples) = (0.0, 0usize);
    for (k, b) in batches.enumerate() {
        let size = b.indices.len();
        let program = if size == batch { Some(&unit.full) } else { unit.tail.as_ref() };
        let Some(program) = program else {
            // A partial batch that could not be planned: say so in the count, not silently.
            continue;
        };
        let inputs = inputs_for(device, &program.phase, &d.names, &b)?;
        let noise = mix(mix(seed ^ 0x4556_414C, step), k as u64);
        let outs = trainer.forward(device, program, inputs, noise)?;
        if let Some((_, t)) = outs.iter().find(|(n, _)| n == "out") {
            if let Some(v) = t.to_f64(device)?.first() {
                total += v * size as f64;
                examples += size;
            }
        }
    }
    let value = if examples == 0 { f64::NAN } else { total / examples as f64 };
    Ok(Scored { value, examples })
}
