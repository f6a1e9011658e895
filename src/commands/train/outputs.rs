//! The spec's `sample` and `eval` expressions planned for a run (the runtime's `run::units`
//! runs them): planning needs the checked spec, which only the CLI holds.

use genc_compiler::check::{Checked, UnitKind};
use genc_runtime::device::Device;
use genc_runtime::executor::LoadedPhase;
use genc_runtime::run::{Eval, Units};

/// Plans the units at `batch`, and the evals also at `test_len % batch`; a unit that cannot
/// be planned is skipped with a warning.
pub fn plan_units(
    device: &Device,
    checked: &Checked,
    batch: u64,
    test_len: u64,
    warn: &dyn Fn(&str),
) -> Units {
    let load = |kind: UnitKind, batch: u64| -> Vec<Option<LoadedPhase>> {
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
    let full = load(UnitKind::Eval, batch);
    let tail = test_len % batch;
    let mut tails = if tail > 0 { load(UnitKind::Eval, tail) } else { Vec::new() }.into_iter();
    let evals = full
        .into_iter()
        .map(|full| {
            // Taken first, so a full unit that failed does not shift the tails.
            let tail = tails.next().flatten();
            Some(Eval { full: full?, tail })
        })
        .collect();
    Units { samples: load(UnitKind::Sample, batch), evals }
}
