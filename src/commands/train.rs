//! `genc train SPEC`: runs the spec's `train` block on real data and leaves a run folder with
//! metrics (JSONL), a loss plot, sample grids and safetensors checkpoints.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use genc_compiler::check::{CadenceKind, Checked, DataSpec, Every, UnitKind};
use genc_compiler::program::PhaseProgram;
use genc_runtime::checkpoint::{self, Checkpoint, Tensor};
use genc_runtime::config::RunConfig;
use genc_runtime::data::{Batch, Batcher, BatcherState, Binarize, Dataset, Pair, Split, Transforms};
use genc_runtime::device::{Device, DeviceChoice, DeviceError, DeviceTensor};
use genc_runtime::executor::LoadedPhase;
use genc_runtime::train::Trainer;

use super::{Status, load, parse, typecheck};
use crate::report::Reporter;

/// What the command line gives.
pub struct Args {
    pub spec: Option<PathBuf>,
    pub config: Option<PathBuf>,
    pub set: Vec<String>,
    pub out: Option<PathBuf>,
}

fn fail(message: impl std::fmt::Display) -> Status {
    eprintln!("error: {message}");
    Status::Usage
}

pub fn run(args: &Args, reporter: &Reporter) -> Status {
    match train(args, reporter) {
        Ok(()) => Status::Ok,
        Err(status) => status,
    }
}

fn report<E: miette::Diagnostic>(reporter: &Reporter, e: &E, file: &str) -> Status {
    reporter.emit(e, file, None);
    Status::Diagnostics
}

fn train(args: &Args, reporter: &Reporter) -> Result<(), Status> {
    let mut config = match &args.config {
        Some(path) => RunConfig::load(path).map_err(|e| report(reporter, &e, &path.display().to_string()))?,
        None => RunConfig::default(),
    };
    config.apply_sets(&args.set).map_err(|e| report(reporter, &e, "--set"))?;
    if let Some(out) = &args.out {
        config.out = Some(out.clone());
    }
    let spec = args
        .spec
        .clone()
        .or_else(|| config.spec.clone())
        .ok_or_else(|| fail("name a spec: `genc train specs/vae.gen`"))?;
    let file = load(&spec, reporter)?;
    let ast = parse(&file, reporter).ok_or(Status::Diagnostics)?;
    let sets: Vec<String> =
        config.param_overrides().iter().map(|o| format!("{}={}", o.name, o.value)).collect();
    let checked = typecheck(&file, &ast, &sets, reporter)?;
    let schedule = checked.schedule.clone().ok_or_else(|| fail("the spec has no `train` block"))?;
    let run = checked.run.clone().ok_or_else(|| fail("the spec has no `train` block"))?;
    let batch = config.batch.or(schedule.batch.as_ref().map(|b| b.1)).ok_or_else(|| fail("no batch size"))?;
    let seed = config.seed.or(run.seed).unwrap_or(0);
    let (program, _) = genc_compiler::plan::plan(&checked, Some(batch)).map_err(fail)?;

    // Data: the training source and, if the spec has one, the test source.
    let train_spec =
        run.data.iter().find(|d| split_of(d) == Split::Train).ok_or_else(|| fail("no training data"))?;
    let test_spec = run.data.iter().find(|d| split_of(d) == Split::Test);
    let dataset = |d: &DataSpec| -> Result<Arc<Dataset>, Status> {
        let ds = match d.source.as_str() {
            "fashion_mnist" | "mnist" => Dataset::fashion_mnist(split_of(d), config.data.as_deref()),
            other => return Err(fail(format!("data source `{other}` is not supported by `genc train` yet"))),
        };
        ds.map(Arc::new).map_err(|e| report(reporter, &e, "data"))
    };
    let train_data = dataset(train_spec)?;
    let test_data = match test_spec {
        Some(d) => Some((d, dataset(d)?)),
        None => None,
    };
    let transforms = transforms_of(train_spec);
    let state = BatcherState::start(seed, batch as usize, train_data.len());
    let mut batcher = Batcher::new(train_data.clone(), transforms.clone(), state)
        .map_err(|e| report(reporter, &e, "data"))?;
    let per_epoch = batcher.batches_per_epoch().max(1);
    let steps = config
        .steps
        .or(config.epochs.map(|e| e * per_epoch))
        .or(schedule.steps)
        .or(schedule.epochs.map(|e| e * per_epoch))
        .unwrap_or(1);

    let device = Device::open(config.device.unwrap_or(DeviceChoice::Auto))
        .map_err(|e| report(reporter, &e, "device"))?;
    let info = device.info();
    eprintln!("device: {} ({})", info.adapter.name, info.adapter.backend);
    let out = config.out.clone().unwrap_or_else(|| default_run_dir(&spec));
    std::fs::create_dir_all(&out).map_err(|e| fail(format!("cannot create {}: {e}", out.display())))?;
    if let Ok(yaml) = config.to_yaml() {
        let _ = genc_runtime::images::write_atomic(&out.join("config.yaml"), yaml.as_bytes());
    }
    let mut trainer =
        Trainer::new(&device, &checked, program, seed).map_err(|e| report(reporter, &e, "train"))?;
    let samples = load_units(&device, &checked, UnitKind::Sample, batch)?;
    let evals = load_units(&device, &checked, UnitKind::Eval, batch)?;
    let range = transforms.range.unwrap_or((0.0, 1.0));
    let names = &train_spec.names;

    let mut metrics_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(out.join("metrics.jsonl"))
        .map_err(|e| fail(format!("cannot write metrics: {e}")))?;
    let mut history: Vec<(String, Vec<(u64, f64)>)> = Vec::new();
    let started = Instant::now();
    eprintln!(
        "training {} for {steps} steps at batch {batch} ({per_epoch} steps per epoch) into {}",
        spec.display(),
        out.display()
    );
    for step in 1..=steps {
        let mut feed = |phase: &PhaseProgram| -> Result<Vec<DeviceTensor>, String> {
            let b = batcher.next_batch().map_err(|e| e.to_string())?;
            inputs_for(&device, phase, names, &b).map_err(|e| e.to_string())
        };
        let result = trainer.train_step(&device, &mut feed);
        let reported = match result {
            Ok(r) => r,
            Err(e) => {
                let path = out.join("last.safetensors");
                eprintln!(
                    "training stopped at step {step}; the last checkpoint (if any) is {}",
                    path.display()
                );
                return Err(report(reporter, &e, "train"));
            }
        };
        for (name, value) in &reported.metrics {
            match history.iter_mut().find(|(n, _)| n == name) {
                Some((_, s)) => s.push((step, *value)),
                None => history.push((name.clone(), vec![(step, *value)])),
            }
        }
        let epoch_end = step % per_epoch == 0;
        let due = |every: &Every| match every {
            Every::Steps(n) => step % n == 0,
            Every::Epochs(n) => epoch_end && (step / per_epoch) % n == 0,
        } || step == steps;
        for cadence in &run.cadences {
            if !due(&cadence.every) {
                continue;
            }
            match &cadence.kind {
                CadenceKind::Log => {
                    let rate = step as f64 / started.elapsed().as_secs_f64().max(1e-9);
                    let parts: Vec<String> =
                        reported.metrics.iter().map(|(n, v)| format!("{n} {v:.4}")).collect();
                    eprintln!(
                        "step {step}/{steps}  {}  {rate:.2} steps/s  eta {:.0}s",
                        parts.join("  "),
                        (steps - step) as f64 / rate
                    );
                    let json: Vec<String> = reported
                        .metrics
                        .iter()
                        .map(|(n, v)| format!("{:?}: {}", n, json_number(*v)))
                        .collect();
                    let _ = writeln!(metrics_file, "{{\"step\": {step}, {}}}", json.join(", "));
                }
                CadenceKind::Sample { index, name } => {
                    if let Some(Some(unit)) = samples.get(*index) {
                        let test_batch = test_data.as_ref().map(|(d, ds)| first_batch(ds, d, batch as usize));
                        let inputs = match unit_inputs(
                            &device,
                            &unit.phase,
                            test_data.as_ref().map(|t| &t.0.names),
                            test_batch.as_ref(),
                        ) {
                            Ok(inputs) => inputs,
                            Err(e) => {
                                reporter.emit(&e, "sample", None);
                                continue;
                            }
                        };
                        match trainer.forward(&device, unit, inputs, seed ^ 0x5A4D_504C) {
                            Ok(outs) => {
                                if let Some((_, t)) = outs.iter().find(|(n, _)| n == "out") {
                                    let path = out.join(format!("{name}-{step:07}.png"));
                                    let data: Vec<f32> = t.to_f32(&device).unwrap_or_default();
                                    let shape = [t.shape[0], t.shape[1], t.shape[2], t.shape[3]];
                                    let nrow = (shape[0] as f64).sqrt().ceil() as usize;
                                    if let Err(e) =
                                        genc_runtime::images::write_grid(&path, &data, shape, nrow, range)
                                    {
                                        reporter.emit(&e, "samples", None);
                                    }
                                }
                            }
                            Err(e) => reporter.emit(&e, "sample", None),
                        }
                    }
                }
                CadenceKind::Eval { index, name } => {
                    if let (Some(Some(unit)), Some((d, ds))) = (evals.get(*index), test_data.as_ref()) {
                        let value = evaluate(&device, &trainer, unit, d, ds, batch as usize, seed);
                        eprintln!("step {step}: eval {name} {value:.4} (test set)");
                        let _ = writeln!(
                            metrics_file,
                            "{{\"step\": {step}, \"eval.{name}\": {}}}",
                            json_number(value)
                        );
                        match history.iter_mut().find(|(n, _)| *n == format!("eval.{name}")) {
                            Some((_, s)) => s.push((step, value)),
                            None => history.push((format!("eval.{name}"), vec![(step, value)])),
                        }
                    }
                }
                CadenceKind::Checkpoint => {
                    if let Err(e) =
                        save(&device, &trainer, &out.join("last.safetensors"), step, batcher.state())
                    {
                        reporter.emit(&e, "checkpoint", None);
                    }
                }
            }
        }
    }
    let _ = genc_runtime::images::write_loss_plot(&out.join("losses.png"), &history);
    save(&device, &trainer, &out.join("last.safetensors"), steps, batcher.state())
        .map_err(|e| report(reporter, &e, "checkpoint"))?;
    eprintln!("done: {steps} steps in {:.1}s; run folder {}", started.elapsed().as_secs_f64(), out.display());
    Ok(())
}

fn json_number(v: f64) -> String {
    if v.is_finite() { v.to_string() } else { "null".into() }
}

fn split_of(d: &DataSpec) -> Split {
    match d.options.get("split") {
        Some(genc_compiler::check::OptionValue::Str(s)) if s == "test" => Split::Test,
        _ => Split::Train,
    }
}

fn transforms_of(d: &DataSpec) -> Transforms {
    let range = d.options.get("range").and_then(|v| v.list()).and_then(|r| match r {
        [lo, hi] => Some((*lo as f32, *hi as f32)),
        _ => None,
    });
    let binarize = matches!(d.options.get("binarize"), Some(genc_compiler::check::OptionValue::Bool(true)))
        .then_some(Binarize::Sample);
    let pair = d.paired.as_ref().and_then(|(kind, o)| match kind.as_str() {
        "downsample" => o.get("0").and_then(|v| v.number()).map(|r| Pair::Downsample(r as usize)),
        "edges" => "sobel".parse().ok().map(Pair::Edges),
        _ => None,
    });
    Transforms { flip: false, binarize, pair, range }
}

/// A phase's inputs from a batch: each data name maps to the images, the pair or the labels.
fn inputs_for(
    device: &Device,
    phase: &PhaseProgram,
    names: &[String],
    b: &Batch,
) -> Result<Vec<DeviceTensor>, DeviceError> {
    phase
        .inputs
        .iter()
        .map(|spec| {
            let k = names.iter().position(|n| *n == spec.name);
            let data: Vec<f32> = match (k, &b.paired, &b.labels) {
                (Some(0), Some(low), _) => low.data.clone(),
                (Some(1), Some(_), _) | (Some(0), None, _) => b.images.data.clone(),
                (Some(1), None, Some(labels)) => labels.iter().map(|&l| l as f32).collect(),
                _ => vec![0.0; spec.shape.iter().product()],
            };
            let n: usize = spec.shape.iter().product();
            let mut data = data;
            data.resize(n, 0.0);
            DeviceTensor::from_f32(device, spec.dtype, &spec.shape, &data)
        })
        .collect()
}

fn first_batch(ds: &Dataset, d: &DataSpec, batch: usize) -> Batch {
    let state = BatcherState::start(0, batch, ds.len());
    genc_runtime::data::make_batch(ds, &transforms_of(d), &state)
}

/// Inputs for a sample or eval unit: the test batch by name, zeros for what it does not read.
fn unit_inputs(
    device: &Device,
    phase: &PhaseProgram,
    names: Option<&Vec<String>>,
    b: Option<&Batch>,
) -> Result<Vec<DeviceTensor>, DeviceError> {
    match (names, b) {
        (Some(names), Some(b)) => inputs_for(device, phase, names, b),
        _ => phase
            .inputs
            .iter()
            .map(|s| DeviceTensor::from_f32(device, s.dtype, &s.shape, &vec![0.0; s.shape.iter().product()]))
            .collect(),
    }
}

fn load_units(
    device: &Device,
    checked: &Checked,
    kind: UnitKind,
    batch: u64,
) -> Result<Vec<Option<LoadedPhase>>, Status> {
    let count = checked.units.iter().filter(|u| u.kind == kind).count();
    Ok((0..count)
        .map(|i| match genc_compiler::plan::plan_forward(checked, kind, i, batch) {
            Ok(p) => LoadedPhase::load(device, &p).ok(),
            Err(e) => {
                eprintln!("warning: {} #{i} is skipped: {e}", kind.name());
                None
            }
        })
        .collect())
}

/// The mean of an eval unit over the whole test set, batch by batch.
fn evaluate(
    device: &Device,
    trainer: &Trainer,
    unit: &LoadedPhase,
    d: &DataSpec,
    ds: &Dataset,
    batch: usize,
    seed: u64,
) -> f64 {
    let transforms = transforms_of(d);
    let Ok(batches) = genc_runtime::data::in_order(ds, &transforms, batch, seed, false) else {
        return f64::NAN;
    };
    let (mut total, mut count) = (0.0, 0u32);
    for b in batches {
        let Ok(inputs) = inputs_for(device, &unit.phase, &d.names, &b) else {
            return f64::NAN;
        };
        if let Ok(outs) = trainer.forward(device, unit, inputs, seed) {
            if let Some(v) = outs
                .iter()
                .find(|(n, _)| n == "out")
                .and_then(|(_, t)| t.to_f64(device).ok())
                .and_then(|v| v.first().copied())
            {
                total += v;
                count += 1;
            }
        }
    }
    if count == 0 { f64::NAN } else { total / f64::from(count) }
}

fn save(
    device: &Device,
    trainer: &Trainer,
    path: &Path,
    step: u64,
    state: BatcherState,
) -> Result<(), checkpoint::CheckpointError> {
    let mut ck = Checkpoint {
        step,
        data_state: serde_json::to_string(&state).unwrap_or_default(),
        ..Checkpoint::default()
    };
    let mut put = |name: String, t: &DeviceTensor| {
        if let Some(tensor) = t.to_f32(device).ok().and_then(|data| Tensor::new(t.shape.clone(), data)) {
            ck.insert(name, tensor);
        }
    };
    for (spec, t) in trainer.program.params.iter().zip(&trainer.params) {
        put(spec.name.clone(), t);
    }
    for (spec, t) in trainer.program.buffers.iter().zip(&trainer.buffers) {
        put(spec.name.clone(), t);
    }
    for opt in &trainer.optimizers {
        for (k, &p) in opt.params.iter().enumerate() {
            for (slot, t) in opt.slot_names().iter().zip(&opt.state[k]) {
                put(checkpoint::optim_name(&opt.name, slot, &trainer.program.params[p].name), t);
            }
        }
    }
    for (params, _, avg) in &trainer.ema {
        for (&p, t) in params.iter().zip(avg) {
            put(checkpoint::ema_name(&trainer.program.params[p].name), t);
        }
    }
    checkpoint::save(path, &ck)
}

fn default_run_dir(spec: &Path) -> PathBuf {
    let stem = spec.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "run".into());
    let secs =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    PathBuf::from("runs").join(format!("{stem}-{secs}"))
}
