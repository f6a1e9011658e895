//! Optimizers: SGD (with momentum), Adam, AdamW, RMSprop and Adagrad with PyTorch's update
//! rules and defaults, global-norm gradient clipping and learning-rate schedules.
//!
//! The update itself is the compiler's planned program (`genc_compiler::update`): this
//! module keeps what changes from update to update — the state tensors, the schedule's
//! position, Adam's bias-correction count — and feeds the program its per-update scalars.

use genc_compiler::lr_schedule::LrSchedule;
use genc_compiler::optimizer::OptimizerConfig;
use genc_compiler::prim::DType;
use genc_compiler::program::PhaseProgram;
use genc_compiler::train_spec::OptimizerSpec;
use genc_compiler::update::optimizer::{slot_names, step_scalars};

use crate::device::{Device, DeviceError, DeviceTensor};
use crate::executor::LoadedPhase;
use crate::kernels::Leaves;

/// Why an optimizer cannot be built (its options were checked with the spec).
#[derive(Clone, Debug, PartialEq, thiserror::Error, miette::Diagnostic)]
pub enum OptimError {
    /// The state tensors could not be allocated (a parameter larger than a device buffer).
    #[error("optimizer `{name}`: {reason}")]
    #[diagnostic(code(E0909), help("lower the model's size, or use a GPU"))]
    State { name: String, reason: String },
}

/// One optimizer: its rule, its planned update, parameters and state.
pub struct Optimizer {
    pub name: String,
    config: OptimizerConfig,
    schedule: Option<LrSchedule>,
    /// The updates this optimizer makes in the whole run: the length of `linear` and
    /// `cosine` schedules that give none.
    run_updates: u64,
    /// The planned update: gradients, state and scalars in; `grad_norm2`, then each
    /// parameter's new value and state out.
    update: LoadedPhase,
    /// Indices into the program's parameters.
    pub params: Vec<usize>,
    /// Per parameter, the state tensors (momentum buffer; Adam's m and v; ...).
    pub state: Vec<Vec<DeviceTensor>>,
    /// Updates so far, the ones skipped at a zero rate included: the schedule's position.
    pub steps: u64,
    /// Updates that changed the weights: Adam's bias-correction count (a stage that starts
    /// after a zero-rate stretch starts its moments afresh).
    pub applied: u64,
}

impl Optimizer {
    /// Builds an optimizer with zeroed state for parameters of the given shapes, making
    /// `run_updates` updates in the whole run with the planned `update`.
    pub fn new(
        device: &Device,
        spec: &OptimizerSpec,
        shapes: &[Vec<usize>],
        run_updates: u64,
        update: &PhaseProgram,
    ) -> Result<Optimizer, OptimError> {
        let fail = |e: DeviceError| OptimError::State { name: spec.name.clone(), reason: e.to_string() };
        let slots = slot_names(&spec.config.kind).len();
        let state = shapes
            .iter()
            .map(|s| {
                let n: usize = s.iter().product();
                (0..slots).map(|_| DeviceTensor::from_f32(device, DType::F32, s, &vec![0.0; n])).collect()
            })
            .collect::<Result<_, _>>()
            .map_err(fail)?;
        Ok(Optimizer {
            name: spec.name.clone(),
            config: spec.config.clone(),
            schedule: spec.schedule.clone(),
            run_updates,
            update: LoadedPhase::load(device, update).map_err(fail)?,
            params: spec.params.clone(),
            state,
            steps: 0,
            applied: 0,
        })
    }

    /// The state tensors' names for checkpoints (`m`, `v`, `momentum`, ...).
    pub fn slot_names(&self) -> &'static [&'static str] {
        slot_names(&self.config.kind)
    }

    /// The learning rate at update `t` (0-based) after the schedule.
    pub fn lr_at(&self, t: u64) -> f64 {
        match &self.schedule {
            Some(s) => s.lr(self.config.lr, t, self.run_updates),
            None => self.config.lr,
        }
    }

    /// Whether a schedule changes the rate (then the run logs it as `lr.<name>`).
    pub fn is_scheduled(&self) -> bool {
        self.schedule.is_some()
    }

    /// The base rate and the last update's, when the schedule ends above the base without a
    /// warm-up (a `gamma` above 1 is an easy slip for a decay factor that divides).
    pub fn rising_rate(&self) -> Option<(f64, f64)> {
        let factor = self.schedule.as_ref()?.rises(self.run_updates)?;
        Some((self.config.lr, self.config.lr * factor))
    }

    /// Applies one update. `grads[i]` is the gradient of `self.params[i]`, `params` the
    /// program's parameter tensors (replaced by the updated ones); `maximize` ascends.
    /// Returns the gradients' squared global norm; when it is not finite, nothing is
    /// replaced and nothing counts as done, so the caller can stop with the weights intact.
    pub fn step(
        &mut self,
        device: &Device,
        params: &mut [DeviceTensor],
        grads: &[DeviceTensor],
        maximize: bool,
    ) -> Result<f64, DeviceError> {
        let t = self.applied + 1;
        let scalars: Vec<f64> = step_scalars(&self.config, self.lr_at(self.steps), t, maximize)
            .into_iter()
            .map(|(_, v)| v)
            .collect();
        let mut inputs: Vec<DeviceTensor> = grads.to_vec();
        inputs.extend(self.state.iter().flatten().cloned());
        inputs.extend(scalar_inputs(device, &scalars)?);
        let leaves = Leaves { inputs, params: params.to_vec(), buffers: Vec::new(), seed: 0 };
        let mut outputs = self.update.run(device, &leaves)?.into_iter().map(|(_, t)| t);
        let slots = self.slot_names().len();
        let malformed = || DeviceError::Kernel {
            op: format!("update {}", self.name),
            reason: "the program's outputs are not grad_norm2 and each parameter's value and state".into(),
        };
        let norm2 =
            outputs.next().ok_or_else(malformed)?.to_f64(device)?.first().copied().unwrap_or(f64::NAN);
        if !norm2.is_finite() {
            return Ok(norm2);
        }
        let updated: Vec<DeviceTensor> = outputs.collect();
        if updated.len() != self.params.len() * (1 + slots) {
            return Err(malformed());
        }
        for (k, chunk) in updated.chunks(1 + slots).enumerate() {
            params[self.params[k]] = chunk[0].clone();
            self.state[k] = chunk[1..].to_vec();
        }
        self.steps += 1;
        self.applied = t;
        Ok(norm2)
    }

    /// Whether this update's rate is zero: the phase it would follow changes nothing, so the
    /// trainer skips it ([`Optimizer::skip`]).
    pub fn idle(&self) -> bool {
        self.lr_at(self.steps) == 0.0
    }

    /// An update at a zero rate, not computed: the schedule moves on, the state stays.
    pub fn skip(&mut self) {
        self.steps += 1;
    }
}

/// One-element tensors holding `values`, as views into one uploaded buffer: a program's
/// per-run scalars.
pub fn scalar_inputs(device: &Device, values: &[f64]) -> Result<Vec<DeviceTensor>, DeviceError> {
    let data: Vec<f32> = values.iter().map(|&v| v as f32).collect();
    let buffer = DeviceTensor::from_f32(device, DType::F32, &[values.len().max(1)], &data)?;
    Ok((0..values.len())
        .map(|i| DeviceTensor {
            dtype: DType::F32,
            shape: vec![1],
            strides: vec![1],
            offset: i,
            buffer: buffer.buffer.clone(),
        })
        .collect())
}
