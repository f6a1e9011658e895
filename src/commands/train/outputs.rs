//! The forward-only work a run does on its cadences: sample grids written as PNG and evals
//! averaged over the whole test set.

use genc_compiler::check::{Checked, UnitKind};
use genc_runtime::device::Device;
use genc_runtime::executor::LoadedPhase;
use genc_runtime::train::{TrainError, Trainer};

use super::feed::{RunData, inputs_for, transforms_of, unit_inputs};

/// The spec's `sample` and `eval` expressions, planned and loaded (`None` where one cannot be
/// planned yet; a warning said so).
pub struct Units {
    pub samples: Vec<Option<LoadedPhase>>,
    pub evals: Vec<Option<LoadedPhase>>,
}

impl Units {
    pub fn load(device: &Device, checked: &Checked, batch: u64, warn: &dyn Fn(&str)) -> Units {
        let load = |kind: UnitKind| -> Vec<Option<LoadedPhase>> {
            let count = checked.units.iter().filter(|u| u.kind == kind).count();
            (0..count)
                .map(|i| {
                    let planned = genc_compiler::plan::plan_forward(checked, kind, i, batch)
                        .map_err(|e| e.to_string())
                        .and_then(|p| LoadedPhase::load(device, &p).map_err(|e| e.to_string()));
                    let later = match kind {
                        UnitKind::Sample => "; after training, `genc sample RUN_DIR` runs it",
                        _ => "",
                    };
                    planned
                        .map_err(|e| warn(&format!("warning: {} #{i} is skipped: {e}{later}", kind.name())))
                        .ok()
                })
                .collect()
        };
        Units { samples: load(UnitKind::Sample), evals: load(UnitKind::Eval) }
    }
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

/// The mean of eval `unit` over the whole test set, batch by batch (NaN without a test set).
pub fn evaluate(
    device: &Device,
    trainer: &Trainer,
    unit: &LoadedPhase,
    data: &RunData,
    batch: usize,
    seed: u64,
) -> Result<f64, TrainError> {
    let Some((d, ds)) = data.test.as_ref() else { return Ok(f64::NAN) };
    let transforms = transforms_of(d);
    let Ok(batches) = genc_runtime::data::in_order(ds, &transforms, batch, seed, false) else {
        return Ok(f64::NAN);
    };
    let (mut total, mut count) = (0.0, 0u32);
    for b in batches {
        let inputs = inputs_for(device, &unit.phase, &d.names, &b)?;
        let outs = trainer.forward(device, unit, inputs, seed)?;
        if let Some((_, t)) = outs.iter().find(|(n, _)| n == "out") {
            if let Some(v) = t.to_f64(device)?.first() {
                total += v;
                count += 1;
            }
        }
    }
    Ok(if count == 0 { f64::NAN } else { total / f64::from(count) })
}
