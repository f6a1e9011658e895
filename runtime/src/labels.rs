//! Class labels checked before they reach a device. `one_hot(y, 9)` on a label 9 would give
//! a zero row and an embedding would clamp it; PyTorch raises on both. A kernel cannot stop a
//! step, so the feed checks each input the plan marks as indices (`PhaseProgram::index_checks`)
//! on the host, before the upload.

use genc_compiler::program::PhaseProgram;
use miette::Diagnostic;
use thiserror::Error;

/// A label outside the classes of the op that reads it.
#[derive(Clone, Debug, PartialEq, Error, Diagnostic)]
#[error("label {value} in `{input}` is outside the {classes} classes of `{op}`")]
#[diagnostic(
    code(E0944),
    help("labels index classes 0..={last}: give `{op}` the data's number of classes, or fix the labels", last = classes.saturating_sub(1))
)]
pub struct LabelOutOfRange {
    /// The data name the phase reads the labels as.
    pub input: String,
    /// The position of the example in the batch.
    pub example: usize,
    pub value: i64,
    pub classes: u64,
    pub op: String,
    /// The op in the spec.
    #[label("example {example} of the batch has label {value}")]
    pub span: miette::SourceSpan,
}

/// Why a feed could not give a phase its inputs.
#[derive(Clone, Debug, PartialEq, Error)]
pub enum FeedError {
    /// The data could not be read or uploaded.
    #[error("{0}")]
    Data(String),
    #[error(transparent)]
    Label(#[from] LabelOutOfRange),
}

impl From<String> for FeedError {
    fn from(message: String) -> Self {
        FeedError::Data(message)
    }
}

/// Checks the values of input `k` of `phase` against every index range the plan gives it.
pub fn check(phase: &PhaseProgram, k: usize, values: &[f32]) -> Result<(), LabelOutOfRange> {
    for c in phase.index_checks.iter().filter(|c| c.input == k) {
        let bad = values.iter().position(|&v| v < 0.0 || v >= c.classes as f32 || v.fract() != 0.0);
        if let Some(example) = bad {
            return Err(LabelOutOfRange {
                input: phase.inputs.get(k).map(|s| s.name.clone()).unwrap_or_default(),
                example,
                value: values[example] as i64,
                classes: c.classes,
                op: c.op.clone(),
                span: (c.span.0, c.span.1 - c.span.0).into(),
            });
        }
    }
    Ok(())
}
