//! A trainer's whole state as a [`Checkpoint`] and back: parameters, buffers, optimizer state
//! (with each optimizer's update count) and EMA copies. Restoring a snapshot and running on
//! gives the same numbers as never having stopped: random draws depend only on the seed and
//! the step, and the caller restores the data loader from `data_state`.

use genc_compiler::prim::DType;

use crate::checkpoint::{self, Checkpoint, Tensor};
use crate::device::{Device, DeviceTensor};
use crate::train::{TrainError, Trainer};

/// The metadata key of optimizer `name`'s update count.
fn steps_key(optimizer: &str) -> String {
    format!("optim.{optimizer}.steps")
}

fn applied_key(optimizer: &str) -> String {
    format!("optim.{optimizer}.applied")
}

impl Trainer {
    /// Every tensor a checkpoint of this trainer holds, by name, with where it lives.
    fn named_tensors(&self) -> Vec<(String, &DeviceTensor)> {
        let params = &self.program.params;
        let mut out: Vec<(String, &DeviceTensor)> =
            params.iter().zip(&self.params).map(|(s, t)| (s.name.clone(), t)).collect();
        out.extend(self.program.buffers.iter().zip(&self.buffers).map(|(s, t)| (s.name.clone(), t)));
        for opt in &self.optimizers {
            for (k, &p) in opt.params.iter().enumerate() {
                for (slot, t) in opt.slot_names().iter().zip(&opt.state[k]) {
                    out.push((checkpoint::optim_name(&opt.name, slot, &params[p].name), t));
                }
            }
        }
        for (ps, _, avg) in &self.ema {
            out.extend(ps.iter().zip(avg).map(|(&p, t)| (checkpoint::ema_name(&params[p].name), t)));
        }
        out
    }

    /// The trainer's state after `self.step` steps; the caller fills in `epoch`, `spec_hash`
    /// and `data_state`.
    pub fn to_checkpoint(&self, device: &Device) -> Result<Checkpoint, TrainError> {
        let mut ck = Checkpoint { step: self.step, ..Checkpoint::default() };
        for (name, t) in self.named_tensors() {
            let data = t.to_f32(device)?;
            let tensor = Tensor::new(t.shape.clone(), data).ok_or_else(|| TrainError::Restore {
                reason: format!("tensor `{name}` has fewer values than its shape {:?}", t.shape),
            })?;
            ck.insert(name, tensor);
        }
        for opt in &self.optimizers {
            ck.metadata.insert(steps_key(&opt.name), opt.steps.to_string());
            ck.metadata.insert(applied_key(&opt.name), opt.applied.to_string());
        }
        Ok(ck)
    }

    /// Puts `ck`'s tensors and counters in place. The checkpoint must hold exactly the tensors
    /// this trainer has, with their shapes; otherwise nothing changes and the error lists every
    /// difference.
    pub fn restore(&mut self, device: &Device, ck: &Checkpoint) -> Result<(), TrainError> {
        let expected: Vec<(String, Vec<usize>)> =
            self.named_tensors().into_iter().map(|(n, t)| (n, t.shape.clone())).collect();
        ck.validate_against(expected.iter().map(|(n, s)| (n.as_str(), s.as_slice())))
            .map_err(|e| TrainError::Checkpoint(Box::new(e)))?;
        let mut steps = Vec::with_capacity(self.optimizers.len());
        for opt in &self.optimizers {
            let key = steps_key(&opt.name);
            let value = ck.metadata.get(&key).and_then(|v| v.parse::<u64>().ok());
            steps.push(value.ok_or_else(|| TrainError::Restore {
                reason: format!(
                    "the metadata entry `{key}` (the optimizer's update count) is missing or not a number"
                ),
            })?);
        }
        let load = |name: &str| -> Result<DeviceTensor, TrainError> {
            // Validated above: every name is present with the shape of a tensor this trainer
            // already holds on this device, so the upload fits.
            let t = &ck.tensors[name];
            Ok(DeviceTensor::from_f32(device, DType::F32, &t.shape, &t.data)?)
        };
        let params = &self.program.params;
        for (spec, t) in params.iter().zip(self.params.iter_mut()) {
            *t = load(&spec.name)?;
        }
        for (spec, t) in self.program.buffers.iter().zip(self.buffers.iter_mut()) {
            *t = load(&spec.name)?;
        }
        for (opt, count) in self.optimizers.iter_mut().zip(steps) {
            opt.steps = count;
            // Checkpoints from before zero-rate skipping count every update as applied.
            let applied = ck.metadata.get(&applied_key(&opt.name)).and_then(|v| v.parse::<u64>().ok());
            opt.applied = applied.unwrap_or(count);
            for (k, &p) in opt.params.iter().enumerate() {
                for (slot, t) in opt.slot_names().iter().zip(opt.state[k].iter_mut()) {
                    *t = load(&checkpoint::optim_name(&opt.name, slot, &params[p].name))?;
                }
            }
        }
        for (ps, _, avg) in &mut self.ema {
            for (&p, t) in ps.iter().zip(avg.iter_mut()) {
                *t = load(&checkpoint::ema_name(&params[p].name))?;
            }
        }
        self.step = ck.step;
        Ok(())
    }
}
