//! Ctrl-C during a run: the first press asks the loop to checkpoint after the current step
//! and stop; a second press quits at once (checkpoints are written atomically, so the last one
//! stays whole either way).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once Ctrl-C was pressed.
#[derive(Clone)]
pub struct Interrupt(Arc<AtomicBool>);

impl Interrupt {
    /// Installs the handler. Fails only if one is installed already (genc runs one training
    /// per process) or the OS refuses; then Ctrl-C keeps its default meaning.
    pub fn install() -> Result<Interrupt, String> {
        let flag = Arc::new(AtomicBool::new(false));
        let seen = flag.clone();
        ctrlc::set_handler(move || {
            if seen.swap(true, Ordering::SeqCst) {
                eprintln!("\nstopping now; the last checkpoint is intact");
                std::process::exit(crate::commands::Status::Interrupted as i32);
            }
            eprintln!(
                "\ninterrupted: saving a checkpoint after this step (press Ctrl-C again to quit at once)"
            );
        })
        .map_err(|e| e.to_string())?;
        Ok(Interrupt(flag))
    }

    pub fn requested(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}
