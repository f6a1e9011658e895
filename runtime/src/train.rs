//! The training loop's core: parameters and buffers on the device, initialised from the
//! parameter table; one `step` runs the declared phases in order (with `repeat`, a fresh
//! batch per run), applies each phase's optimizer, clamps clipped weights and updates EMAs,
//! every update one of the program's planned `updates`.
//!
//! Data comes from a caller-supplied feed, so this module knows nothing of files: the feed is
//! asked for a phase's inputs each time the phase runs.

use genc_compiler::interp;
use genc_compiler::params::{Entry, Init};
use genc_compiler::prim::DType;
use genc_compiler::program::{PhaseProgram, Program};
use genc_compiler::train_spec::{PhaseRun, StepOp, TrainSpec};

use crate::device::{Device, DeviceError, DeviceTensor};
use crate::executor::LoadedPhase;
use crate::kernels::Leaves;
use crate::labels::{ComputedIndexOutOfRange, FeedError, LabelOutOfRange};
use crate::optim::{OptimError, Optimizer};
use crate::profile::Profile;

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum TrainError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Device(#[from] DeviceError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Optim(#[from] OptimError),
    #[error("step {step}, phase `{phase}`: {what} is not finite ({value})")]
    #[diagnostic(
        code(E0940),
        help(
            "{first}; the last checkpoint is kept. Lower the learning rate, clip gradients (`grad_clip:`), or guard the op (log of 0, division by 0, sqrt of a negative)"
        )
    )]
    NonFinite {
        step: u64,
        phase: String,
        /// `the loss \`critic\`` or `a gradient`.
        what: String,
        value: f64,
        /// Where the first NaN or infinity appeared in the phase.
        first: String,
    },
    #[error("cannot initialise `{name}`: {reason}")]
    #[diagnostic(code(E0941))]
    Init { name: String, reason: String },
    #[error("the data feed failed: {0}")]
    #[diagnostic(code(E0942))]
    Feed(String),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Checkpoint(Box<crate::checkpoint::CheckpointError>),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Label(#[from] LabelOutOfRange),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Index(#[from] ComputedIndexOutOfRange),
    #[error("cannot resume from the checkpoint: {reason}")]
    #[diagnostic(
        code(E0943),
        help(
            "the checkpoint was not written by this run's `genc train`; start a new run, or resume from the run folder that wrote it"
        )
    )]
    Restore { reason: String },
}

impl From<FeedError> for TrainError {
    fn from(e: FeedError) -> Self {
        match e {
            FeedError::Data(message) => TrainError::Feed(message),
            FeedError::Label(label) => TrainError::Label(label),
        }
    }
}

/// What one step reports: every loss and logged metric by name, averaged over repeats.
#[derive(Clone, Debug, Default)]
pub struct StepReport {
    pub metrics: Vec<(String, f64)>,
}

/// Supplies a phase's inputs (one fresh batch per call) by the phase's input specs.
pub type Feed<'f> = dyn FnMut(&PhaseProgram) -> Result<Vec<DeviceTensor>, FeedError> + 'f;

pub struct Trainer {
    pub program: Program,
    phases: Vec<LoadedPhase>,
    /// Per phase: its optimizer, direction and metric name.
    phase_runs: Vec<PhaseRun>,
    actions: Vec<Action>,
    /// The planned clips, in the order `update::clips` lists the step's clips.
    clips: Vec<LoadedPhase>,
    /// Per EMA entry, its planned update.
    ema_updates: Vec<LoadedPhase>,
    pub params: Vec<DeviceTensor>,
    pub buffers: Vec<DeviceTensor>,
    pub optimizers: Vec<Optimizer>,
    /// EMA copies: the parameters averaged, the decay, the averages.
    pub ema: Vec<(Vec<usize>, f64, Vec<DeviceTensor>)>,
    pub step: u64,
    pub seed: u64,
    /// Phase runs so far in the current step: each run (each `repeat`) draws fresh randoms.
    runs: u64,
    /// Where the steps' time goes, when profiling ([`Trainer::profile_mut`]).
    profile: Profile,
}

impl Trainer {
    /// Loads the program's phases and initialises parameters from `seed`, for a run of `steps`
    /// steps (the length of the learning-rate schedules that give none).
    pub fn new(
        device: &Device,
        spec: &TrainSpec,
        program: Program,
        seed: u64,
        steps: u64,
    ) -> Result<Trainer, TrainError> {
        let run = spec.run.clone();
        let params: Vec<DeviceTensor> = spec
            .params
            .iter()
            .enumerate()
            .map(|(i, e)| init(device, e, &spec.consts, seed, i as u64))
            .collect::<Result<_, _>>()?;
        let buffers: Vec<DeviceTensor> = spec
            .buffers
            .iter()
            .enumerate()
            .map(|(i, e)| init(device, e, &spec.consts, seed, 1 << 20 | i as u64))
            .collect::<Result<_, _>>()?;
        let phase_runs = spec.phases.clone();
        let mut per_step = vec![0u64; run.optimizers.len()];
        count_updates(&run.step, &phase_runs, 1, &mut per_step);
        let updates = &program.updates;
        let planned = |what: &str, have: usize, want: usize| {
            if have == want {
                return Ok(());
            }
            Err(TrainError::Init {
                name: "the step's updates".into(),
                reason: format!(
                    "the program plans {have} {what} for the spec's {want}; plan it from this spec"
                ),
            })
        };
        planned("optimizer updates", updates.optimizers.len(), run.optimizers.len())?;
        planned("EMA updates", updates.ema.len(), run.ema.len())?;
        planned("clips", updates.clips.len(), genc_compiler::update::clips(&run.step).len())?;
        let mut optimizers = Vec::new();
        for ((optimizer, &count), update) in run.optimizers.iter().zip(&per_step).zip(&updates.optimizers) {
            let shapes: Vec<Vec<usize>> =
                optimizer.params.iter().map(|&p| spec.params[p].shape.clone()).collect();
            optimizers.push(Optimizer::new(device, optimizer, &shapes, steps.saturating_mul(count), update)?);
        }
        let load = |p: &PhaseProgram| LoadedPhase::load(device, p);
        let clips = updates.clips.iter().map(load).collect::<Result<Vec<_>, _>>()?;
        let ema_updates = updates.ema.iter().map(load).collect::<Result<Vec<_>, _>>()?;
        let phases =
            program.phases.iter().map(|p| LoadedPhase::load(device, p)).collect::<Result<Vec<_>, _>>()?;
        let ema = run
            .ema
            .iter()
            .map(|(ps, decay)| (ps.clone(), *decay, ps.iter().map(|&p| params[p].clone()).collect()))
            .collect();
        Ok(Trainer {
            program,
            phases,
            phase_runs,
            actions: actions(&run.step, &mut 0),
            clips,
            ema_updates,
            params,
            buffers,
            optimizers,
            ema,
            step: 0,
            seed,
            runs: 0,
            profile: Profile::off(),
        })
    }

    /// The profile of the steps run so far (off unless switched on with
    /// [`Trainer::profile_mut`]).
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// The profile, to switch on (`*trainer.profile_mut() = Profile::on()`) or reset.
    pub fn profile_mut(&mut self) -> &mut Profile {
        &mut self.profile
    }

    /// One training step: every phase of the `step` block, in order.
    pub fn train_step(&mut self, device: &Device, feed: &mut Feed<'_>) -> Result<StepReport, TrainError> {
        let actions = std::mem::take(&mut self.actions);
        let mut sums: Vec<(String, f64, u32)> = Vec::new();
        self.runs = 0;
        let done = self.run_actions(device, &actions, feed, &mut sums);
        self.actions = actions;
        done?;
        for o in self.optimizers.iter().filter(|o| o.is_scheduled() && o.steps > 0) {
            sums.push((format!("lr.{}", o.name), o.lr_at(o.steps - 1), 1));
        }
        let started = self.profile.start();
        self.update_ema(device)?;
        self.profile.stop(device, "EMA update", started)?;
        self.step += 1;
        Ok(StepReport { metrics: sums.into_iter().map(|(n, s, c)| (n, s / f64::from(c))).collect() })
    }

    fn run_actions(
        &mut self,
        device: &Device,
        actions: &[Action],
        feed: &mut Feed<'_>,
        sums: &mut Vec<(String, f64, u32)>,
    ) -> Result<(), TrainError> {
        for action in actions {
            match action {
                Action::Repeat { count, body } => {
                    for _ in 0..*count {
                        self.run_actions(device, body, feed, sums)?;
                    }
                }
                Action::Phase(phase) => self.run_phase(device, *phase, feed, sums)?,
                Action::Clip(k) => {
                    let started = self.profile.start();
                    let leaves = Leaves { params: self.params.clone(), ..Leaves::default() };
                    for (name, t) in self.clips[*k].run(device, &leaves)? {
                        self.replace_param(&name, t);
                    }
                    self.profile.stop(device, "weight clip", started)?;
                }
            }
        }
        Ok(())
    }

    fn run_phase(
        &mut self,
        device: &Device,
        k: usize,
        feed: &mut Feed<'_>,
        sums: &mut Vec<(String, f64, u32)>,
    ) -> Result<(), TrainError> {
        let Some(loaded) = self.phases.get(k) else { return Ok(()) };
        // A phase whose optimizer has a zero rate at this update changes nothing: skipped,
        // forward and backward (a pretraining stage runs alone, 2-3x faster for SRGAN).
        let (opt, maximize, label) = match self.phase_runs.get(k) {
            Some(run) => (run.optimizer, run.maximize, run.label.clone()),
            None => (0, false, loaded.phase.name.clone()),
        };
        if let Some(o) = self.optimizers.get_mut(opt).filter(|o| o.idle()) {
            o.skip();
            return Ok(());
        }
        let started = self.profile.start();
        let inputs = feed(&loaded.phase)?;
        self.profile.stop(device, "data feed", started)?;
        // A distinct stream of random draws per step, phase and run of the phase (`repeat`).
        self.runs += 1;
        let run_seed = mix(mix(self.seed, self.step), (k as u64) << 32 | self.runs);
        let leaves =
            Leaves { inputs, params: self.params.clone(), buffers: self.buffers.clone(), seed: run_seed };
        let outputs = loaded.run_profiled(device, &leaves, &mut self.profile)?;
        let read_back = self.profile.start();
        let phase_name = loaded.phase.name.clone();
        check_guards(device, &loaded.phase, &outputs)?;
        let mut grads: Vec<Option<DeviceTensor>> = vec![None; self.program.params.len()];
        for (name, t) in &outputs {
            if name.starts_with("check.") {
                continue;
            }
            if let Some(param) = name.strip_prefix("grad.") {
                if let Some(i) = self.program.params.iter().position(|p| p.name == param) {
                    grads[i] = Some(t.clone());
                }
                continue;
            }
            if let Some(buffer) = name.strip_prefix("buffer.") {
                self.replace_buffer(buffer, t);
                continue;
            }
            let value = t.to_f64(device)?.first().copied().unwrap_or(f64::NAN);
            let metric =
                if name == "loss" { label.clone() } else { name.trim_start_matches("log.").to_string() };
            if name == "loss" && !value.is_finite() {
                let first = self.diagnose(device, k, &leaves);
                let what = format!("the loss `{metric}`");
                return Err(TrainError::NonFinite {
                    step: self.step + 1,
                    phase: phase_name,
                    what,
                    value,
                    first,
                });
            }
            match sums.iter_mut().find(|(n, _, _)| *n == metric) {
                Some(entry) => {
                    entry.1 += value;
                    entry.2 += 1;
                }
                None => sums.push((metric, value, 1)),
            }
        }
        self.profile.stop(device, "read back losses", read_back)?;
        let Some(optimizer) = self.optimizers.get_mut(opt) else { return Ok(()) };
        let g: Vec<DeviceTensor> = optimizer
            .params
            .iter()
            .map(|&p| match &grads[p] {
                Some(g) => Ok(g.clone()),
                None => {
                    let shape = &self.program.params[p].shape;
                    DeviceTensor::from_f32(device, DType::F32, shape, &vec![0.0; shape.iter().product()])
                }
            })
            .collect::<Result<_, _>>()?;
        let started = self.profile.start();
        let norm2 = optimizer.step(device, &mut self.params, &g, maximize)?;
        self.profile.stop(device, "optimizer update", started)?;
        if !norm2.is_finite() {
            let first = self.diagnose(device, k, &leaves);
            let what = "a parameter gradient".to_string();
            return Err(TrainError::NonFinite {
                step: self.step + 1,
                phase: phase_name,
                what,
                value: norm2,
                first,
            });
        }
        Ok(())
    }

    /// Re-runs phase `k` on the same leaves, reading every value back, to name the first
    /// kernel that wrote a NaN or infinity.
    fn diagnose(&self, device: &Device, k: usize, leaves: &Leaves) -> String {
        match self.phases[k].first_non_finite(device, leaves) {
            Ok(Some(v)) => format!("the first non-finite value: {v}"),
            Ok(None) => "no kernel wrote a non-finite value when the step was re-run".into(),
            Err(e) => format!("the step could not be re-run to find the first non-finite value ({e})"),
        }
    }

    /// A phase's updated running statistics (its `buffer.<name>` outputs) replace the
    /// buffer: its next read, in this phase's next run or any other, sees them.
    fn replace_buffer(&mut self, name: &str, value: &DeviceTensor) {
        if let Some(i) = self.program.buffers.iter().position(|b| b.name == name) {
            self.buffers[i] = value.clone();
        }
    }

    /// A planned update's `param.<name>` output replaces that parameter.
    fn replace_param(&mut self, output: &str, value: DeviceTensor) {
        let name = output.strip_prefix("param.").unwrap_or(output);
        if let Some(i) = self.program.params.iter().position(|p| p.name == name) {
            self.params[i] = value;
        }
    }

    fn update_ema(&mut self, device: &Device) -> Result<(), TrainError> {
        for ((_, _, averages), update) in self.ema.iter_mut().zip(&self.ema_updates) {
            let leaves =
                Leaves { inputs: averages.clone(), params: self.params.clone(), ..Leaves::default() };
            *averages = update.run(device, &leaves)?.into_iter().map(|(_, t)| t).collect();
        }
        Ok(())
    }

    /// The parameters a model is evaluated with: the EMA averages where the spec keeps them
    /// (as the papers sample and evaluate with them), the trained values elsewhere.
    pub fn averaged_params(&self) -> Vec<DeviceTensor> {
        let mut params = self.params.clone();
        for (indices, _, averages) in &self.ema {
            for (&p, average) in indices.iter().zip(averages) {
                params[p] = average.clone();
            }
        }
        params
    }

    /// Runs a forward-only program (a sample or eval) with the averaged weights
    /// ([`Trainer::averaged_params`]).
    pub fn forward(
        &self,
        device: &Device,
        program: &LoadedPhase,
        inputs: Vec<DeviceTensor>,
        seed: u64,
    ) -> Result<Vec<(String, DeviceTensor)>, TrainError> {
        let leaves = Leaves { inputs, params: self.averaged_params(), buffers: self.buffers.clone(), seed };
        let outputs = program.run(device, &leaves)?;
        check_guards(device, &program.phase, &outputs)?;
        Ok(outputs)
    }
}

/// Refuses a run of `phase` whose computed indices fell out of range (E0945).
fn check_guards(
    device: &Device,
    phase: &PhaseProgram,
    outputs: &[(String, DeviceTensor)],
) -> Result<(), TrainError> {
    match crate::labels::check_guards(device, &phase.name, &phase.index_guards, outputs)? {
        Some(e) => Err(TrainError::Index(e)),
        None => Ok(()),
    }
}

/// Adds to `per_step[o]` the updates optimizer `o` makes in one run of `ops`, each counted
/// `times` times.
fn count_updates(ops: &[StepOp], phases: &[PhaseRun], times: u64, per_step: &mut [u64]) {
    for op in ops {
        match op {
            StepOp::Phase { phase } => {
                if let Some(n) = phases.get(*phase).and_then(|p| per_step.get_mut(p.optimizer)) {
                    *n += times;
                }
            }
            StepOp::Repeat { count, body } => {
                count_updates(body, phases, times.saturating_mul(*count), per_step)
            }
            StepOp::Clip { .. } | StepOp::ClipNorm { .. } => {}
        }
    }
}

/// What a step does, with each clip's planned program: the `step` block's ops.
#[derive(Clone, Debug)]
enum Action {
    Phase(usize),
    Clip(usize),
    Repeat { count: u64, body: Vec<Action> },
}

/// The actions of `ops`, clips numbered from `next` in the order `update::clips` lists them.
fn actions(ops: &[StepOp], next: &mut usize) -> Vec<Action> {
    ops.iter()
        .map(|op| match op {
            StepOp::Phase { phase } => Action::Phase(*phase),
            StepOp::Clip { .. } | StepOp::ClipNorm { .. } => {
                *next += 1;
                Action::Clip(*next - 1)
            }
            StepOp::Repeat { count, body } => Action::Repeat { count: *count, body: actions(body, next) },
        })
        .collect()
}

/// SplitMix64-style mixing of two words: the seeds of a step's, a phase's or an eval batch's
/// random draws.
pub fn mix(a: u64, b: u64) -> u64 {
    let mut z = a ^ b.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The first value of table entry `e` (parameter or buffer `index`), from `seed`; `consts` holds
/// the constant graph's values.
fn init(
    device: &Device,
    e: &Entry,
    consts: &[interp::Value],
    seed: u64,
    index: u64,
) -> Result<DeviceTensor, TrainError> {
    let n = e.numel();
    let mut state = mix(seed, index);
    let mut uniform = move || {
        state = mix(state, 0x2545_F491_4F6C_DD1D);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut normal = move || {
        let (u1, u2) = (1.0 - uniform(), uniform());
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    };
    let data: Vec<f64> = match &e.init {
        Init::Zeros => vec![0.0; n],
        Init::Ones => vec![1.0; n],
        Init::Uniform { bound } => (0..n).map(|_| (2.0 * uniform() - 1.0) * bound).collect(),
        Init::UniformRange { lo, hi } => (0..n).map(|_| lo + uniform() * (hi - lo)).collect(),
        Init::Normal { mean, std } => (0..n).map(|_| mean + normal() * std).collect(),
        Init::Orthogonal { gain } => {
            let rows = e.shape.first().copied().unwrap_or(1);
            orthogonal(rows, n / rows.max(1), (0..n).map(|_| normal()).collect(), *gain)
        }
        Init::CausalMask { kind } => causal_mask(&e.shape, *kind),
        Init::Computed { node } => consts.get(node.index()).map(|v| v.data.clone()).ok_or_else(|| {
            TrainError::Init { name: e.name.clone(), reason: "the constant graph has no such node".into() }
        })?,
    };
    Ok(DeviceTensor::from_f64(device, DType::F32, &e.shape, &data)?)
}

/// `gain` times an orthogonal `rows x cols` matrix (row-major) from Gaussian `draws`, as
/// PyTorch's `orthogonal_`: the Q of the QR of the tall orientation, with R's diagonal made
/// positive, which is what Gram-Schmidt on its columns gives. Orthonormal rows when
/// `rows <= cols`, orthonormal columns otherwise.
pub fn orthogonal(rows: usize, cols: usize, draws: Vec<f64>, gain: f64) -> Vec<f64> {
    let tall = rows >= cols;
    let (m, n) = if tall { (rows, cols) } else { (cols, rows) };
    // Columns of the tall m x n matrix, each a vector of m.
    let mut q: Vec<Vec<f64>> = (0..n)
        .map(|j| (0..m).map(|i| if tall { draws[i * n + j] } else { draws[j * m + i] }).collect())
        .collect();
    for j in 0..n {
        let (done, rest) = q.split_at_mut(j);
        let column = &mut rest[0];
        for earlier in done.iter() {
            let dot: f64 = column.iter().zip(earlier).map(|(a, b)| a * b).sum();
            column.iter_mut().zip(earlier).for_each(|(a, b)| *a -= dot * b);
        }
        let norm = column.iter().map(|v| v * v).sum::<f64>().sqrt().max(f64::MIN_POSITIVE);
        column.iter_mut().for_each(|v| *v /= norm);
    }
    let mut out = vec![0.0; rows * cols];
    for (j, column) in q.iter().enumerate() {
        for (i, v) in column.iter().enumerate() {
            let (r, c) = if tall { (i, j) } else { (j, i) };
            out[r * cols + c] = gain * v;
        }
    }
    out
}

/// PixelCNN's mask over `[out, in, kh, kw]`: rows above the centre, the centre row left of the
/// centre, and the centre itself for type `B`.
fn causal_mask(shape: &[usize], kind: char) -> Vec<f64> {
    let (kh, kw) = (shape.get(2).copied().unwrap_or(1), shape.get(3).copied().unwrap_or(1));
    let (ch, cw) = (kh / 2, kw / 2);
    let per: usize = shape.iter().take(2).product();
    let window: Vec<f64> = (0..kh * kw)
        .map(|i| {
            let (y, x) = (i / kw, i % kw);
            f64::from(u8::from(y < ch || (y == ch && (x < cw || (x == cw && kind == 'B')))))
        })
        .collect();
    (0..per).flat_map(|_| window.iter().copied()).collect()
}

#[cfg(test)]
mod tests {
    use super::{init, orthogonal};
    use crate::device::{Device, DeviceChoice};
    use genc_compiler::params::{Entry, Init, Kind};

    /// Mean and standard deviation of a million draws of `init`.
    fn moments(init_kind: Init) -> (f64, f64) {
        let device = Device::open(DeviceChoice::Cpu).unwrap_or_else(|e| panic!("{e}"));
        let e = Entry {
            name: "G.linear0.weight".into(),
            shape: vec![1000, 1000],
            init: init_kind,
            kind: Kind::Trainable,
            owner: Some("G".into()),
            span: Default::default(),
        };
        let t = init(&device, &e, &[], 7, 3).unwrap_or_else(|e| panic!("{e}"));
        let v = t.to_f32(&device).unwrap_or_else(|e| panic!("{e}"));
        let n = v.len() as f64;
        let mean = v.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
        let var = v.iter().map(|&x| (f64::from(x) - mean).powi(2)).sum::<f64>() / n;
        (mean, var.sqrt())
    }

    #[test]
    fn a_million_draws_have_the_moments_asked_for() {
        // N(0, 0.02): DCGAN's init.
        let (mean, std) = moments(Init::Normal { mean: 0.0, std: 0.02 });
        assert!(
            mean.abs() < 0.01 * 0.02 && (std / 0.02 - 1.0).abs() < 0.01,
            "normal: mean {mean}, std {std}"
        );
        // U(±b) has standard deviation b / sqrt(3).
        let (mean, std) = moments(Init::Uniform { bound: 0.05 });
        let want = 0.05 / 3f64.sqrt();
        assert!(
            mean.abs() < 0.01 * want && (std / want - 1.0).abs() < 0.01,
            "uniform: mean {mean}, std {std}"
        );
    }

    /// `a @ b^T` entries of rows `i`, `j` of a row-major `cols`-wide matrix.
    fn dot(m: &[f64], cols: usize, i: usize, j: usize) -> f64 {
        (0..cols).map(|k| m[i * cols + k] * m[j * cols + k]).sum()
    }

    fn draws(n: usize) -> Vec<f64> {
        (0..n).map(|i| ((i * 37 + 11) % 23) as f64 / 11.0 - 1.0).collect()
    }

    #[test]
    fn orthogonal_rows_of_a_wide_matrix_and_columns_of_a_tall_one() {
        // Wide [3, 5]: orthonormal rows, scaled by the gain.
        let m = orthogonal(3, 5, draws(15), 2.0);
        for i in 0..3 {
            for j in 0..3 {
                let want = if i == j { 4.0 } else { 0.0 };
                assert!((dot(&m, 5, i, j) - want).abs() < 1e-9, "rows {i}, {j}");
            }
        }
        // Tall [5, 3]: orthonormal columns, i.e. rows of its transpose.
        let m = orthogonal(5, 3, draws(15), 1.0);
        let t: Vec<f64> =
            (0..3).flat_map(|c| (0..5).map(move |r| (r, c))).map(|(r, c)| m[r * 3 + c]).collect();
        for i in 0..3 {
            for j in 0..3 {
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((dot(&t, 5, i, j) - want).abs() < 1e-9, "columns {i}, {j}");
            }
        }
    }
}
