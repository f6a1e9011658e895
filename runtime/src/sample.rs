//! Samplers on the device: a planned [`SamplerProgram`] with its segments loaded once (their
//! constants computed), run by the compiler's host walker, so loops, branches, copies and the
//! per-iteration seeds are exactly the reference interpreter's. Also the errors of
//! `genc sample`, which reads a run folder and writes a grid of samples.

use std::path::PathBuf;

use genc_compiler::prim::DType;
use genc_compiler::sampler::walk::{self, Evaluator};
use genc_compiler::sampler::{SamplerProgram, Segment};
use miette::Diagnostic;
use thiserror::Error;

use crate::device::{Device, DeviceError, DeviceTensor};
use crate::executor::LoadedPhase;
use crate::kernels::Leaves;

/// Why sampling could not run.
#[derive(Debug, Error, Diagnostic)]
pub enum SampleError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Device(#[from] DeviceError),

    #[error("`{}` is not a run folder: {reason}", path.display())]
    #[diagnostic(
        code(E0950),
        help("give the folder `genc train` wrote (its `--out`, or `runs/<spec>-<time>`)")
    )]
    NoRunFolder { path: PathBuf, reason: String },

    #[error("the run folder's `config.yaml` names no spec")]
    #[diagnostic(code(E0951), help("name it: `genc sample RUN_DIR --spec specs/ddpm.gen`"))]
    NoSpec,

    #[error("the spec has no sampler `{name}`")]
    #[diagnostic(code(E0952), help("{help}"))]
    UnknownSampler { name: String, help: String },

    #[error("the spec has nothing to sample: no `sampler` and no `sample every ..` in its `train` block")]
    #[diagnostic(
        code(E0953),
        help("add a `sampler`, e.g. `sampler prior(n: int = 64) -> [n, C, H, W] {{ .. }}`")
    )]
    NothingToSample,

    #[error("sampler `{name}` cannot run: {reason}")]
    #[diagnostic(
        code(E0954),
        help(
            "a sampler's loops and branches run on the host: only tensors may change from one \
             iteration to the next, and `return` must come after them"
        )
    )]
    Unplannable { name: String, reason: String },

    #[error("sampler `{name}` returns {found}, not images [N, C, H, W]")]
    #[diagnostic(code(E0955), help("return the images, e.g. `-> [n, C, H, W]`; `grid(..)` draws them"))]
    NotImages { name: String, found: String },

    #[error("sampler `{name}` needs the input `{input}`, which the run's data cannot give: {reason}")]
    #[diagnostic(
        code(E0956),
        help("the run's test data (or its training data) feeds a sampler's tensor arguments")
    )]
    Inputs { name: String, input: String, reason: String },

    #[error("the sampler program `{name}` does not hold together: {reason}")]
    #[diagnostic(
        code(E0957),
        help("this is a bug in genc's sampler planning; please report it with the spec")
    )]
    Malformed { name: String, reason: String },

    #[error(transparent)]
    #[diagnostic(transparent)]
    Index(#[from] crate::labels::ComputedIndexOutOfRange),

    #[error("cannot write samples to `{}`: genc writes `.png` (a grid) and `.npy` (the array)", path.display())]
    #[diagnostic(code(E0958), help("name the output `samples.png` or `samples.npy`"))]
    OutputFormat { path: PathBuf },
}

/// A sampler ready to run: its program and each segment loaded on the device.
pub struct LoadedSampler {
    pub program: SamplerProgram,
    segments: Vec<LoadedPhase>,
}

impl LoadedSampler {
    pub fn load(device: &Device, program: &SamplerProgram) -> Result<Self, SampleError> {
        let segments =
            program.segments.iter().map(|s| LoadedPhase::load(device, &s.phase)).collect::<Result<_, _>>()?;
        Ok(LoadedSampler { program: program.clone(), segments })
    }

    /// Runs the sampler with the unit's `inputs` (in the order of `program.inputs`) and
    /// returns its outputs by name.
    pub fn run(
        &self,
        device: &Device,
        params: &[DeviceTensor],
        buffers: &[DeviceTensor],
        inputs: Vec<DeviceTensor>,
        seed: u64,
    ) -> Result<Vec<(String, DeviceTensor)>, SampleError> {
        self.run_with_progress(device, params, buffers, inputs, seed, &mut |_| {})
    }

    /// [`LoadedSampler::run`], calling `progress` with the number of segment runs so far
    /// after each one (a PixelCNN sampler runs its net once per pixel).
    pub fn run_with_progress(
        &self,
        device: &Device,
        params: &[DeviceTensor],
        buffers: &[DeviceTensor],
        inputs: Vec<DeviceTensor>,
        seed: u64,
        progress: &mut dyn FnMut(usize),
    ) -> Result<Vec<(String, DeviceTensor)>, SampleError> {
        let leaves = Leaves { inputs: Vec::new(), params: params.to_vec(), buffers: buffers.to_vec(), seed };
        let mut on_device = OnDevice { device, sampler: self, leaves, runs: 0, progress };
        let outputs = walk::run(&self.program, &mut on_device, inputs, seed)?;
        let guards = &self.program.index_guards;
        if let Some(e) = crate::labels::check_guards(device, &self.program.name, guards, &outputs)? {
            return Err(SampleError::Index(e));
        }
        Ok(outputs)
    }

    /// How many segments one run of the sampler runs (loops counted out).
    pub fn segment_runs(&self) -> usize {
        walk::segment_runs(&self.program.body)
    }
}

struct OnDevice<'a> {
    device: &'a Device,
    sampler: &'a LoadedSampler,
    leaves: Leaves,
    runs: usize,
    progress: &'a mut dyn FnMut(usize),
}

impl Evaluator for OnDevice<'_> {
    type Tensor = DeviceTensor;
    type Error = SampleError;

    fn run_segment(
        &mut self,
        index: usize,
        _segment: &Segment,
        inputs: Vec<DeviceTensor>,
        seed: u64,
    ) -> Result<Vec<DeviceTensor>, SampleError> {
        let phase = self
            .sampler
            .segments
            .get(index)
            .ok_or_else(|| self.malformed(format!("there is no loaded segment {index}")))?;
        self.leaves.inputs = inputs;
        self.leaves.seed = seed;
        let outputs = phase.run(self.device, &self.leaves)?;
        self.runs += 1;
        (self.progress)(self.runs);
        Ok(outputs.into_iter().map(|(_, t)| t).collect())
    }

    fn counter(&mut self, value: i64) -> Result<DeviceTensor, SampleError> {
        Ok(DeviceTensor::from_f64(self.device, DType::I32, &[], &[value as f64])?)
    }

    fn is_true(&mut self, cond: &DeviceTensor) -> Result<bool, SampleError> {
        let v = cond.to_f32(self.device)?;
        v.first().map(|&x| x != 0.0).ok_or_else(|| self.malformed("an empty branch condition".into()))
    }

    fn malformed(&self, reason: String) -> SampleError {
        SampleError::Malformed { name: self.sampler.program.name.clone(), reason }
    }
}
