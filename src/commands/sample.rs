//! `genc sample RUN_DIR`: runs a sampler of a trained run on its last checkpoint (the EMA
//! weights where the run kept them) and writes the samples as a PNG grid.
//!
//! The run folder gives the spec and its `param` overrides (`config.yaml`) and the weights
//! (`last.safetensors`). The sampler is a `sampler` definition, called for `--n` samples, or
//! a `sample` entry of the `train` block by its name; by default the spec's first sampler.

mod feed;

use std::path::{Path, PathBuf};
use std::time::Instant;

use genc_compiler::check::{self, CadenceKind, Checked, SamplerCall, Unit, UnitKind};
use genc_compiler::sampler::{SamplerProgram, plan_sampler};
use genc_runtime::checkpoint::{self, Checkpoint};
use genc_runtime::config::RunConfig;
use genc_runtime::device::{Device, DeviceChoice, DeviceTensor};
use genc_runtime::sample::{LoadedSampler, SampleError};

use super::{Status, load, parse};
use crate::report::Reporter;

/// What the command line gives.
pub struct Args {
    pub run: PathBuf,
    pub n: usize,
    pub sampler: Option<String>,
    pub out: Option<PathBuf>,
    /// How to write the samples (default: by `out`'s extension, else a grid).
    pub format: Option<OutputFormat>,
    pub seed: Option<u64>,
    /// The spec, when the run's config does not name it.
    pub spec: Option<PathBuf>,
}

pub fn run(args: &Args, reporter: &Reporter) -> Status {
    match sample(args, reporter) {
        Ok(()) => Status::Ok,
        Err(status) => status,
    }
}

fn report<E: miette::Diagnostic>(reporter: &Reporter, e: &E, file: &str) -> Status {
    reporter.emit(e, file, None);
    Status::Diagnostics
}

/// A run folder that cannot be read is a usage error (exit 2), like a missing spec file.
fn report_usage(reporter: &Reporter, e: &SampleError) -> Status {
    reporter.emit(e, "sample", None);
    Status::Usage
}

/// What to run: a `sampler` definition, or the `index`-th `sample` entry.
enum Target {
    Sampler(String),
    Entry { index: usize, name: String },
}

fn sample(args: &Args, reporter: &Reporter) -> Result<(), Status> {
    let run_dir = &args.run;
    // `--format`, else the output's extension; one genc cannot write stops before any work.
    let out = args.out.clone();
    let format = match (args.format, out.as_deref().map(OutputFormat::of)) {
        (Some(format), _) => format,
        (None, None) => OutputFormat::Grid,
        (None, Some(Some(format))) => format,
        (None, Some(None)) => {
            let path = out.clone().unwrap_or_default();
            return Err(report_usage(reporter, &SampleError::OutputFormat { path }));
        }
    };
    let prepared = prepare(args, reporter)?;
    let started = Instant::now();
    // The first run of a sampler on a Vulkan device compiles its kernels: say what is going on.
    eprintln!(
        "sampling `{}` from step {} on {}, into {}",
        prepared.label,
        prepared.step,
        prepared.device.info().adapter.name,
        out.as_ref().map_or_else(|| "the run folder".to_string(), |p| p.display().to_string())
    );
    let seed = prepared.seed;
    let (pixels, shape) = prepared.draw(seed, reporter)?;
    let label = &prepared.label;
    let out = out.unwrap_or_else(|| run_dir.join(format.default_name(&file_label(label))));
    match format {
        OutputFormat::Grid => {
            let nrow = (shape[0] as f64).sqrt().ceil() as usize;
            genc_runtime::images::write_grid(&out, &pixels, shape, nrow, prepared.range)
        }
        OutputFormat::Npy => genc_runtime::npy::write_f32(&out, &pixels, &shape),
        OutputFormat::PngDir => genc_runtime::images::write_png_dir(&out, &pixels, shape, prepared.range),
    }
    .map_err(|e| report(reporter, &e, "sample"))?;
    eprintln!(
        "wrote {}: {} samples of `{label}` (step {}) in {:.1}s",
        out.display(),
        shape[0],
        prepared.step,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// A run's sampler loaded on a device with its weights and inputs, ready to draw.
pub(crate) struct Prepared {
    pub device: Device,
    sampler: LoadedSampler,
    params: Vec<DeviceTensor>,
    buffers: Vec<DeviceTensor>,
    inputs: Vec<DeviceTensor>,
    /// The sampler's (or `sample` entry's) name.
    pub label: String,
    /// The checkpoint's step.
    pub step: u64,
    /// The value range of the run's images.
    pub range: (f32, f32),
    /// The seed `--seed`, the run config or the spec gives (0 by default).
    pub seed: u64,
}

impl Prepared {
    /// One run of the sampler from `seed`: `args.n` images `[n, C, H, W]` as f32 values.
    pub fn draw(&self, seed: u64, reporter: &Reporter) -> Result<(Vec<f32>, [usize; 4]), Status> {
        let started = Instant::now();
        let total = self.sampler.segment_runs();
        let mut last_report = Instant::now();
        let mut progress = |runs: usize| {
            // A line every ~10 s for long samplers (PixelCNN runs its net once per pixel).
            if last_report.elapsed().as_secs() >= 10 {
                last_report = Instant::now();
                let per = started.elapsed().as_secs_f64() / runs as f64;
                let left = per * total.saturating_sub(runs) as f64;
                eprintln!("  {runs}/{total} segment runs, {per:.2}s each, about {left:.0}s left");
            }
        };
        let outputs = self
            .sampler
            .run_with_progress(
                &self.device,
                &self.params,
                &self.buffers,
                self.inputs.clone(),
                seed,
                &mut progress,
            )
            .map_err(|e| report(reporter, &e, "sample"))?;
        let images = outputs.iter().find(|(name, _)| name == "out").or(outputs.first()).map(|(_, t)| t);
        let shape: Option<[usize; 4]> = images.and_then(|t| t.shape.clone().try_into().ok());
        let (Some(images), Some(shape)) = (images, shape) else {
            let found = images.map_or("nothing".to_string(), |t| format!("a tensor of shape {:?}", t.shape));
            return Err(report(
                reporter,
                &SampleError::NotImages { name: self.label.clone(), found },
                "sample",
            ));
        };
        let pixels = images.to_f32(&self.device).map_err(|e| report(reporter, &e, "sample"))?;
        Ok((pixels, shape))
    }
}

/// Loads the run's sampler (`args.sampler`, for `args.n` samples) with its last checkpoint.
pub(crate) fn prepare(args: &Args, reporter: &Reporter) -> Result<Prepared, Status> {
    let run_dir = &args.run;
    let not_run = |reason: &str| SampleError::NoRunFolder { path: run_dir.clone(), reason: reason.into() };
    if !run_dir.is_dir() {
        return Err(report_usage(reporter, &not_run("there is no such folder")));
    }
    let config_path = run_dir.join("config.yaml");
    if !config_path.is_file() {
        return Err(report_usage(reporter, &not_run("it has no `config.yaml`")));
    }
    let config = RunConfig::load(&config_path)
        .map_err(|e| report(reporter, &e, &config_path.display().to_string()))?;
    let spec = args
        .spec
        .clone()
        .or_else(|| config.spec.clone())
        .ok_or_else(|| report_usage(reporter, &SampleError::NoSpec))?;
    let spec = resolve(&spec, run_dir);
    let file = load(&spec, reporter)?;
    let ast = parse(&file, reporter).ok_or(Status::Diagnostics)?;
    let overrides = config.param_overrides();
    let checked_or_report = |checked: Checked| -> Result<Checked, Status> {
        for e in &checked.errors {
            reporter.emit(e, &file.name(), Some(&file.text));
        }
        if checked.errors.is_empty() { Ok(checked) } else { Err(Status::Diagnostics) }
    };
    let plain = checked_or_report(check::check(&ast, &overrides))?;
    let target = choose(&plain, args.sampler.as_deref()).map_err(|e| report(reporter, &e, "sample"))?;

    // Plan the unit: a sampler called for `n` samples, or a `sample` entry at the run's batch.
    let n = args.n.max(1) as i64;
    let (checked, unit_index, binding) = match &target {
        Target::Sampler(name) => {
            let call = SamplerCall { name: name.clone(), n };
            let c = checked_or_report(check::check_call(&ast, &overrides, &call))?;
            let i = c.units.iter().position(|u| u.kind == UnitKind::Sampler && &u.name == name);
            (c, i, Binding::Every(n))
        }
        Target::Entry { index, .. } => {
            // The entry's data (`x_test[0:32]`) comes in batches of `--n`.
            let batch_name = genc_compiler::plan::batch_dim(&plain);
            let i = plain
                .units
                .iter()
                .enumerate()
                .filter(|(_, u)| u.kind == UnitKind::Sample)
                .nth(*index)
                .map(|(i, _)| i);
            (plain, i, Binding::Batch(batch_name, n))
        }
    };
    let label = match &target {
        Target::Sampler(name) => name.clone(),
        Target::Entry { name, .. } => name.clone(),
    };
    let unit: &Unit = unit_index.and_then(|i| checked.units.get(i)).ok_or_else(|| {
        report(
            reporter,
            &SampleError::Malformed { name: label.clone(), reason: "the checker made no unit for it".into() },
            "sample",
        )
    })?;
    let program = plan_sampler(&checked, unit, &|dim| binding.of(dim)).map_err(|e| {
        report(reporter, &SampleError::Unplannable { name: label.clone(), reason: e.to_string() }, "sample")
    })?;

    let device = Device::open(config.device.unwrap_or(DeviceChoice::Auto))
        .map_err(|e| report(reporter, &e, "device"))?;
    let ck_path = run_dir.join("last.safetensors");
    let ck = checkpoint::load(&ck_path).map_err(|e| report(reporter, &e, "checkpoint"))?;
    check_weights(&program, &ck).map_err(|e| report(reporter, &e.in_file(&ck_path), "checkpoint"))?;
    let (params, buffers) =
        upload_weights(&device, &program, &ck).map_err(|e| report(reporter, &e, "device"))?;
    let data = checked.run.as_ref().map(|r| r.data.as_slice()).unwrap_or_default();
    let inputs = feed::inputs(&device, &program, &target_kind(&target), data, config.data.as_deref())
        .map_err(|e| report(reporter, &e, "sample"))?;

    let seed = args.seed.or(config.seed).or(checked.run.as_ref().and_then(|r| r.seed)).unwrap_or(0);
    let sampler = LoadedSampler::load(&device, &program).map_err(|e| report(reporter, &e, "sample"))?;
    Ok(Prepared {
        device,
        sampler,
        params,
        buffers,
        inputs,
        label,
        step: ck.step,
        range: feed::range(data),
        seed,
    })
}

/// How the samples leave genc: `--format`, or else `--out`'s extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    /// `grid` (`.png`): the samples tiled into one image.
    Grid,
    /// `npy` (`.npy`): the samples as a float32 array `[N, C, H, W]`.
    Npy,
    /// `png-dir`: a folder with one PNG per sample.
    PngDir,
}

impl OutputFormat {
    fn of(path: &Path) -> Option<OutputFormat> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "png" => Some(OutputFormat::Grid),
            "npy" => Some(OutputFormat::Npy),
            _ => None,
        }
    }

    /// The default output in the run folder.
    fn default_name(self, label: &str) -> String {
        match self {
            OutputFormat::Grid => format!("sample-{label}.png"),
            OutputFormat::Npy => format!("sample-{label}.npy"),
            OutputFormat::PngDir => format!("sample-{label}"),
        }
    }
}

impl std::str::FromStr for OutputFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "grid" => Ok(OutputFormat::Grid),
            "npy" => Ok(OutputFormat::Npy),
            "png-dir" => Ok(OutputFormat::PngDir),
            _ => Err(format!("`{s}` is not an output format: use `grid`, `npy` or `png-dir`")),
        }
    }
}

/// The values of a unit's free dims.
enum Binding {
    /// A sampler called for `n` samples: every free dim (`n` of `x: [n, C, H, W]`) is `n`.
    Every(i64),
    /// A `sample` entry: the batch dim at `--n`.
    Batch(String, i64),
}

impl Binding {
    fn of(&self, dim: &str) -> Option<i64> {
        match self {
            Binding::Every(n) => Some(*n),
            Binding::Batch(name, b) => (dim == name).then_some(*b),
        }
    }
}

/// A relative spec path as written in the config (relative to where `genc train` ran), or
/// else relative to the run folder.
pub(crate) fn resolve(spec: &Path, run_dir: &Path) -> PathBuf {
    if spec.is_relative() && !spec.exists() && run_dir.join(spec).exists() {
        return run_dir.join(spec);
    }
    spec.to_path_buf()
}

fn target_kind(target: &Target) -> feed::Kind {
    match target {
        Target::Sampler(_) => feed::Kind::Arguments,
        Target::Entry { .. } => feed::Kind::ByName,
    }
}

/// `--sampler NAME`: a `sampler` definition or a `sample` entry's name; by default the first
/// sampler, else the first `sample` entry.
fn choose(checked: &Checked, wanted: Option<&str>) -> Result<Target, SampleError> {
    let samplers: Vec<&str> =
        checked.units.iter().filter(|u| u.kind == UnitKind::Sampler).map(|u| u.name.as_str()).collect();
    let entries: Vec<(usize, &str)> = checked
        .run
        .iter()
        .flat_map(|r| &r.cadences)
        .filter_map(|c| match &c.kind {
            CadenceKind::Sample { index, name } => Some((*index, name.as_str())),
            CadenceKind::Log | CadenceKind::Checkpoint | CadenceKind::Eval { .. } => None,
        })
        .collect();
    let entry = |(index, name): (usize, &str)| Target::Entry { index, name: name.to_string() };
    let Some(wanted) = wanted else {
        return match (samplers.first(), entries.first()) {
            (Some(s), _) => Ok(Target::Sampler(s.to_string())),
            (None, Some(&e)) => Ok(entry(e)),
            (None, None) => Err(SampleError::NothingToSample),
        };
    };
    if samplers.contains(&wanted) {
        return Ok(Target::Sampler(wanted.to_string()));
    }
    if let Some(&e) = entries.iter().find(|(_, name)| *name == wanted) {
        return Ok(entry(e));
    }
    let known: Vec<&str> = samplers.iter().copied().chain(entries.iter().map(|(_, n)| *n)).collect();
    let help = match genc_compiler::grammar::did_you_mean(wanted, known.iter().copied()) {
        Some(s) => format!("did you mean `{s}`?"),
        None if known.is_empty() => "the spec has no sampler and no `sample` entry".to_string(),
        None => format!("the spec's samplers: {}", known.join(", ")),
    };
    Err(SampleError::UnknownSampler { name: wanted.to_string(), help })
}

/// Checks that the checkpoint holds the program's parameters and buffers with their shapes
/// (EMA copies and optimizer state may be there too).
pub(crate) fn check_weights(
    program: &SamplerProgram,
    ck: &Checkpoint,
) -> Result<(), checkpoint::CheckpointError> {
    let mut expected: Vec<(String, &[usize])> = Vec::new();
    for spec in program.params.iter().chain(&program.buffers) {
        expected.push((spec.name.clone(), &spec.shape));
    }
    for spec in &program.params {
        let ema = checkpoint::ema_name(&spec.name);
        if ck.get(&ema).is_some() {
            expected.push((ema, &spec.shape));
        }
    }
    // Optimizer state is not used here; it is the trainer's to check.
    for (name, t) in &ck.tensors {
        if name.starts_with("optim.") {
            expected.push((name.clone(), &t.shape));
        }
    }
    ck.validate_against(expected.iter().map(|(n, s)| (n.as_str(), *s)))
}

/// The parameters (their EMA copies where the checkpoint has them, as DDPM samples with) and
/// buffers of the program, from a checked checkpoint, on the device.
pub(crate) fn upload_weights(
    device: &Device,
    program: &SamplerProgram,
    ck: &Checkpoint,
) -> Result<(Vec<DeviceTensor>, Vec<DeviceTensor>), genc_runtime::device::DeviceError> {
    let upload = |name: &str| {
        ck.get(name)
            .map(|t| DeviceTensor::from_f32(device, genc_compiler::prim::DType::F32, &t.shape, &t.data))
    };
    let params = program
        .params
        .iter()
        .filter_map(|p| upload(&checkpoint::ema_name(&p.name)).or_else(|| upload(&p.name)))
        .collect::<Result<_, _>>()?;
    let buffers = program.buffers.iter().filter_map(|b| upload(&b.name)).collect::<Result<_, _>>()?;
    Ok((params, buffers))
}

/// `sample recon` → `recon`, safe in a file name.
fn file_label(label: &str) -> String {
    label.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' }).collect()
}
