//! `genc weights RUN_DIR --out FILE`: a run's trained weights without its training state — the
//! parameters and buffers of its last checkpoint (batch-norm statistics included), with the
//! EMA copies in place of the raw weights when the run keeps them, and no optimizer state or
//! data position. What a run hands to other tools (`safetensors.numpy.load_file` reads it) or
//! ships with the project (the metrics' classifier).

use std::path::{Path, PathBuf};

use genc_runtime::checkpoint::{self, Checkpoint, CheckpointError};

use super::Status;
use crate::report::Reporter;

/// The tensors of `ck` a model needs: no `optim.*`; an `ema.<name>` replaces `<name>`.
pub fn weights_of(ck: &Checkpoint) -> Checkpoint {
    let mut out = Checkpoint {
        step: ck.step,
        epoch: ck.epoch,
        spec_hash: ck.spec_hash.clone(),
        ..Checkpoint::default()
    };
    for (name, t) in &ck.tensors {
        if name.starts_with("optim.") || name.starts_with("ema.") {
            continue;
        }
        let averaged = ck.get(&format!("ema.{name}"));
        out.insert(name.clone(), averaged.unwrap_or(t).clone());
    }
    out
}

pub fn run(run_dir: &Path, out: &Path, reporter: &Reporter) -> Status {
    let path: PathBuf = run_dir.join("last.safetensors");
    let result = checkpoint::load(&path).and_then(|ck| {
        let weights = weights_of(&ck);
        checkpoint::save(out, &weights).map(|()| weights)
    });
    match result {
        Ok(weights) => {
            let count: usize = weights.tensors.values().map(|t| t.data.len()).sum();
            eprintln!(
                "wrote {}: {} tensors, {count} values, from step {} of {}",
                out.display(),
                weights.tensors.len(),
                weights.step,
                run_dir.display()
            );
            Status::Ok
        }
        Err(e @ CheckpointError::NotFound { .. }) => {
            reporter.emit(&e, &path.display().to_string(), None);
            Status::Usage
        }
        Err(e) => {
            reporter.emit(&e, &path.display().to_string(), None);
            Status::Diagnostics
        }
    }
}
