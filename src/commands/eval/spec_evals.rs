//! The spec's own `eval` entries (a test NLL, a reconstruction error, PSNR and SSIM) on a
//! run's last checkpoint, each over the whole test set exactly as `genc train` runs them: in
//! the test set's order, batches of the run's size and a partial last batch, the EMA weights
//! where the spec keeps them.

use std::path::Path;

use genc_compiler::check::CadenceKind;
use genc_runtime::checkpoint;
use genc_runtime::config::RunConfig;
use genc_runtime::device::Device;
use genc_runtime::train::Trainer;

use genc_runtime::run::{DataProblem, RunData};

use crate::commands::train::outputs;
use crate::commands::{Status, fail, load_checked};
use crate::report::Reporter;

/// One eval entry's value on the test set.
#[derive(Debug, serde::Serialize)]
pub struct SpecEval {
    pub name: String,
    pub value: f64,
    /// Test examples scored (every one, unless a partial batch could not be planned).
    pub examples: usize,
}

/// The run's eval entries at its last checkpoint, and that checkpoint's step; no entries
/// when the spec has none.
pub fn run(run_dir: &Path, device: &Device, reporter: &Reporter) -> Result<(Vec<SpecEval>, u64), Status> {
    let config_path = run_dir.join("config.yaml");
    let config = RunConfig::load(&config_path).map_err(|e| {
        reporter.emit(&e, &config_path.display().to_string(), None);
        Status::Usage
    })?;
    let spec = config.spec.clone().ok_or_else(|| fail("the run's config.yaml names no spec"))?;
    let spec = crate::commands::sample::resolve(&spec, run_dir);
    let sets: Vec<String> =
        config.param_overrides().iter().map(|o| format!("{}={}", o.name, o.value)).collect();
    let checked = load_checked(&spec, &sets, reporter)?;
    let (Some(run), Some(schedule)) = (checked.run.clone(), checked.schedule.clone()) else {
        return Ok((Vec::new(), 0));
    };
    let entries: Vec<(usize, String)> = run
        .cadences
        .iter()
        .filter_map(|c| match &c.kind {
            CadenceKind::Eval { index, name } => Some((*index, name.clone())),
            _ => None,
        })
        .collect();
    let ck_path = run_dir.join("last.safetensors");
    let ck = checkpoint::load(&ck_path).map_err(|e| {
        reporter.emit(&e, &ck_path.display().to_string(), None);
        Status::Usage
    })?;
    if entries.is_empty() {
        return Ok((Vec::new(), ck.step));
    }
    let batch = config.batch.or(schedule.batch.as_ref().map(|b| b.1)).ok_or_else(|| fail("no batch size"))?;
    let seed = config.seed.or(run.seed).unwrap_or(0);
    let (program, _) = genc_compiler::plan::plan(&checked, Some(batch)).map_err(fail)?;
    let emit = |e: &dyn miette::Diagnostic, file: &str| {
        reporter.emit(e, file, None);
        Status::Diagnostics
    };
    let spec = genc_compiler::train_spec::TrainSpec::from_checked(&checked).map_err(fail)?;
    let mut trainer = Trainer::new(device, &spec, program, seed, 1).map_err(|e| emit(&e, "eval"))?;
    trainer.restore(device, &ck).map_err(|e| emit(&e, &ck_path.display().to_string()))?;
    let data = match RunData::open(&run, config.data.as_deref()) {
        Ok(d) => d,
        Err(DataProblem::Spec(message)) => return Err(fail(message)),
        Err(DataProblem::Load(e)) => return Err(emit(&e, "data")),
    };
    let test_len = data.test.as_ref().map_or(0, |(_, ds)| ds.len() as u64);
    let warn = |line: &str| eprintln!("{line}");
    let units = outputs::plan_units(device, &checked, batch, test_len, &warn);
    let mut scored = Vec::new();
    for (index, name) in entries {
        let Some(Some(unit)) = units.evals.get(index) else { continue };
        eprintln!("evaluating `{name}` on the test set ({test_len} examples)");
        let s = genc_runtime::run::evaluate(device, &trainer, unit, &data, batch as usize, seed, ck.step)
            .map_err(|e| emit(&e, "eval"))?;
        scored.push(SpecEval { name, value: s.value, examples: s.examples });
    }
    Ok((scored, ck.step))
}
