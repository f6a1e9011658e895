//! `genc train SPEC` runs the spec's `train` block on real data and leaves a run folder with
//! metrics (JSONL), a loss plot, sample grids and safetensors checkpoints; `genc train
//! --resume RUN_DIR` continues such a run exactly where its checkpoint left it.

mod folder;
mod interrupt;
pub(crate) mod outputs;
mod progress;

use std::path::PathBuf;

use genc_compiler::check::{Cadence, CadenceKind, Every, RunSpec};
use genc_compiler::train_spec::TrainSpec;
use genc_runtime::checkpoint;
use genc_runtime::config::RunConfig;
use genc_runtime::data::{Batcher, BatcherState};
use genc_runtime::device::{Device, DeviceChoice};
use genc_runtime::run::{DataProblem, Event, Run, RunData, RunLength, transforms_of};
use genc_runtime::train::Trainer;

use folder::{RunFolder, record};
use interrupt::Interrupt;
use progress::Progress;

use super::{Status, fail, load, parse, typecheck};
use crate::report::Reporter;

/// What the command line gives.
pub struct Args {
    pub spec: Option<PathBuf>,
    pub config: Option<PathBuf>,
    pub set: Vec<String>,
    pub out: Option<PathBuf>,
    /// A run folder to continue.
    pub resume: Option<PathBuf>,
    /// Profile the steps (`--profile`).
    pub profile: bool,
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

/// The run config: a new run's `--config` file, or a resumed run's saved one; `--set` and
/// `--out` on top.
fn resolve_config(args: &Args, reporter: &Reporter) -> Result<RunConfig, Status> {
    let file = match (&args.resume, &args.config) {
        (Some(_), Some(_)) => {
            return Err(fail(
                "`--resume` continues with the run folder's own config.yaml: drop `--config` (change settings with `--set`)",
            ));
        }
        (Some(dir), None) => Some(RunFolder::new(dir.clone()).config_path()),
        (None, config) => config.clone(),
    };
    let mut config = match &file {
        Some(path) if args.resume.is_some() && !path.is_file() => {
            return Err(fail(format!(
                "`{}` is not a run folder: it has no config.yaml (give the folder `genc train --out` wrote)",
                path.parent().unwrap_or(path).display()
            )));
        }
        Some(path) => RunConfig::load(path).map_err(|e| report(reporter, &e, &path.display().to_string()))?,
        None => RunConfig::default(),
    };
    config.apply_sets(&args.set).map_err(|e| report(reporter, &e, "--set"))?;
    if let Some(out) = args.resume.as_ref().or(args.out.as_ref()) {
        config.out = Some(out.clone());
    }
    if let Some(spec) = &args.spec {
        config.spec = Some(spec.clone());
    }
    let cwd = std::env::current_dir().map_err(|e| fail(format!("cannot read the current folder: {e}")))?;
    config.make_paths_absolute(&cwd);
    Ok(config)
}

/// The spec's cadences with the run config's `*_every` settings in their place; a checkpoint
/// cadence the spec lacks is added when the config names one.
fn cadences(run: &RunSpec, config: &RunConfig) -> Vec<Cadence> {
    let every_for = |kind: &CadenceKind| {
        match kind {
            CadenceKind::Log => config.log_every,
            CadenceKind::Sample { .. } => config.sample_every,
            CadenceKind::Eval { .. } => config.eval_every,
            CadenceKind::Checkpoint => config.checkpoint_every,
        }
        .map(Every::from)
    };
    let mut out: Vec<Cadence> = run
        .cadences
        .iter()
        .map(|c| Cadence { every: every_for(&c.kind).unwrap_or(c.every), ..c.clone() })
        .collect();
    for (kind, every) in
        [(CadenceKind::Log, config.log_every), (CadenceKind::Checkpoint, config.checkpoint_every)]
    {
        let present = out.iter().any(|c| std::mem::discriminant(&c.kind) == std::mem::discriminant(&kind));
        if let (Some(every), false) = (every, present) {
            out.push(Cadence { kind, every: Every::from(every) });
        }
    }
    out
}

fn train(args: &Args, reporter: &Reporter) -> Result<(), Status> {
    let config = resolve_config(args, reporter)?;
    let spec = config.spec.clone().ok_or_else(|| fail("name a spec: `genc train specs/vae.gen`"))?;
    let file = load(&spec, reporter)?;
    let ast = parse(&file, reporter).ok_or(Status::Diagnostics)?;
    let sets: Vec<String> =
        config.param_overrides().iter().map(|o| format!("{}={}", o.name, o.value)).collect();
    let checked = typecheck(&file, &ast, &sets, reporter)?;
    let spec_hash = checkpoint::spec_hash(&file.text, &sets);
    let no_train = || fail(format!("`{}` has no `train` block", spec.display()));
    let schedule = checked.schedule.clone().ok_or_else(no_train)?;
    let run = checked.run.clone().ok_or_else(no_train)?;
    let batch = config.batch.or(schedule.batch.as_ref().map(|b| b.1)).ok_or_else(|| fail("no batch size"))?;
    let seed = config.seed.or(run.seed).unwrap_or(0);
    let (program, _) = genc_compiler::plan::plan(&checked, Some(batch)).map_err(fail)?;

    let data = match RunData::open(&run, config.data.as_deref()) {
        Ok(d) => d,
        Err(DataProblem::Spec(message)) => return Err(fail(message)),
        Err(DataProblem::Load(e)) => return Err(report(reporter, &e, "data")),
    };
    let transforms = transforms_of(&data.train_spec);
    let per_epoch = BatcherState::start(seed, batch as usize, data.train.len()).batches_per_epoch().max(1);
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
    let out = config.out.clone().unwrap_or_else(|| folder::default_run_dir(&spec));
    let folder = RunFolder::new(out.clone());
    folder.create().map_err(|e| fail(format!("cannot create {}: {e}", out.display())))?;
    let spec_run = TrainSpec::from_checked(&checked).map_err(fail)?;
    let mut trainer =
        Trainer::new(&device, &spec_run, program, seed, steps).map_err(|e| report(reporter, &e, "train"))?;
    for o in &trainer.optimizers {
        if let Some((base, last)) = o.rising_rate() {
            eprintln!(
                "warning: the schedule of `{}` raises its learning rate from {base} to {last:.4e} by the run's last \
                 update; a decay factor f that divides the rate is `gamma: 1 / f`",
                o.name
            );
        }
    }

    // A resumed run takes its weights, optimizer state, step and data position from the
    // checkpoint; everything random depends on the seed and the step alone.
    let (data_state, done) = match &args.resume {
        None => (BatcherState::start(seed, batch as usize, data.train.len()), None),
        Some(_) => {
            let path = folder.checkpoint_path();
            let ck =
                folder.load_checkpoint().map_err(|e| report(reporter, &e, &path.display().to_string()))?;
            if !ck.spec_hash.is_empty() && ck.spec_hash != spec_hash {
                return Err(fail(format!(
                    "`{}` or its param overrides changed since the checkpoint was written (spec hash {} there, {} now): \
                     resuming would mix two models; start a new run, or restore the spec",
                    spec.display(),
                    ck.spec_hash,
                    spec_hash
                )));
            }
            trainer.restore(&device, &ck).map_err(|e| report(reporter, &e, &path.display().to_string()))?;
            let state: BatcherState = serde_json::from_str(&ck.data_state).map_err(|e| {
                fail(format!("the checkpoint's data position cannot be read ({e}); start a new run"))
            })?;
            (state, Some(ck.step))
        }
    };
    let first = done.unwrap_or(0);
    if first >= steps {
        eprintln!(
            "the run is already at step {first} of {steps}: nothing to do (raise it with `--set steps=N`)"
        );
        return Ok(());
    }
    folder.write_config(&config).map_err(|e| fail(format!("cannot write the run config: {e}")))?;
    let batcher = Batcher::new(data.train.clone(), transforms.clone(), data_state)
        .map_err(|e| report(reporter, &e, "data"))?;
    let warn = |line: &str| eprintln!("{line}");
    let test_len = data.test.as_ref().map_or(0, |(_, ds)| ds.len() as u64);
    let units = outputs::plan_units(&device, &checked, batch, test_len, &warn);
    let range = transforms.range.unwrap_or((0.0, 1.0));
    let (mut metrics_file, mut history) = folder.open_metrics(done).map_err(fail)?;
    let cadences = cadences(&run, &config);
    let interrupt = Interrupt::install().map_err(|e| fail(format!("cannot catch Ctrl-C: {e}")))?;

    let what = match done {
        Some(_) => format!("resuming {} at step {first} of {steps}", spec.display()),
        None => format!("training {} for {steps} steps", spec.display()),
    };
    eprintln!("{what}, batch {batch} ({per_epoch} steps per epoch), into {}", out.display());
    let length = RunLength { steps, per_epoch, batch: batch as usize, seed };
    let mut run = Run::new(trainer, data, batcher, units, cadences, length, first);
    let progress = Progress::new(first, steps);
    while !run.finished() {
        let outcome = match run.step(&device) {
            Ok(o) => o,
            Err(e) => {
                let step = run.done() + 1;
                progress.finish();
                folder.write_loss_plot(&history);
                let path = folder.checkpoint_path();
                if path.is_file() {
                    eprintln!(
                        "training stopped at step {step}; the last good checkpoint is {}",
                        path.display()
                    );
                } else {
                    eprintln!("training stopped at step {step}, before the first checkpoint");
                }
                // A label or index error points into the spec: show it there.
                match &e {
                    genc_runtime::train::TrainError::Label(label) => {
                        reporter.emit(label, &file.name(), Some(&file.text));
                        return Err(Status::Diagnostics);
                    }
                    genc_runtime::train::TrainError::Index(index) => {
                        reporter.emit(index, &file.name(), Some(&file.text));
                        return Err(Status::Diagnostics);
                    }
                    _ => {}
                }
                return Err(report(reporter, &e, "train"));
            }
        };
        let step = outcome.step;
        if args.profile && step == first + 1 {
            // The first step compiles kernels and fills the buffer pool: not a typical step.
            *run.trainer.profile_mut() = genc_runtime::profile::Profile::on();
        }
        for (name, value) in &outcome.metrics {
            record(&mut history, name, step, *value);
        }
        progress.step(step, &outcome.metrics);
        let mut saved = false;
        for event in outcome.events {
            match event {
                Event::Log => {
                    progress.log(step, &outcome.metrics);
                    let clock = (progress.seconds(), progress.rate(step));
                    RunFolder::append_metrics(&mut metrics_file, step, clock, &outcome.metrics);
                }
                Event::Sample { name, images } => match images {
                    Ok(Some((values, shape))) => {
                        let nrow = (shape[0] as f64).sqrt().ceil() as usize;
                        let path = folder.sample_path(&name, step);
                        if let Err(e) = genc_runtime::images::write_grid(&path, &values, shape, nrow, range) {
                            reporter.emit(&e, "samples", None);
                        }
                    }
                    Ok(None) => {}
                    Err(e) => reporter.emit(&e, "sample", None),
                },
                Event::Eval { name, scored } => match scored {
                    Ok(genc_runtime::run::Scored { value, examples }) => {
                        progress.println(&format!(
                            "step {step}: eval {name} {value:.4} ({examples} test examples)"
                        ));
                        let metric = format!("eval.{name}");
                        let clock = (progress.seconds(), progress.rate(step));
                        let entry =
                            [(metric.clone(), value), (format!("{metric}.examples"), examples as f64)];
                        RunFolder::append_metrics(&mut metrics_file, step, clock, &entry);
                        record(&mut history, &metric, step, value);
                    }
                    Err(e) => reporter.emit(&e, "eval", None),
                },
                Event::Checkpoint => {
                    save(&folder, &device, &run, &spec_hash, reporter)?;
                    saved = true;
                }
            }
        }
        if interrupt.requested() {
            if !saved {
                save(&folder, &device, &run, &spec_hash, reporter)?;
            }
            progress.finish();
            folder.write_loss_plot(&history);
            eprintln!(
                "stopped at step {step}; checkpoint {}; continue with `genc train --resume {}`",
                folder.checkpoint_path().display(),
                out.display()
            );
            return Err(Status::Interrupted);
        }
        if step == steps && !saved {
            save(&folder, &device, &run, &spec_hash, reporter)?;
        }
    }
    progress.finish();
    folder.write_loss_plot(&history);
    if args.profile {
        let timed = steps - first - 1;
        let table = run.trainer.profile().table(timed);
        let text = format!(
            "# where a step's time goes\n\n{}, {timed} steps (the first step is not timed)\n\n{table}",
            info.adapter.name
        );
        eprintln!("{text}");
        folder.write_profile(&text);
    }
    eprintln!(
        "done: steps {}..={steps} in {:.1}s ({:.2} steps/s); run folder {}",
        first + 1,
        progress.seconds(),
        progress.rate(steps),
        out.display()
    );
    Ok(())
}

/// Writes the checkpoint, reporting a failure as a diagnostic that stops the run.
fn save(
    folder: &RunFolder,
    device: &Device,
    run: &Run,
    spec_hash: &str,
    reporter: &Reporter,
) -> Result<(), Status> {
    folder
        .save(device, &run.trainer, run.batcher_state(), spec_hash)
        .map_err(|e| report(reporter, &e, "checkpoint"))
}
