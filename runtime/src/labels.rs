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

/// Values of an index the graph computes that fell outside the classes of the op that reads
/// them: the device clamped them, so the step is refused (the interpreter raises).
#[derive(Clone, Debug, PartialEq, Error, Diagnostic)]
#[error("{count} values of the index `{op}` reads are outside 0..{classes} (in `{phase}`)")]
#[diagnostic(
    code(E0945),
    help("the index is computed in the spec (no data to check before the step): keep it in 0..={last}, e.g. clamp(.., 0, {last}) before to_int, or scale the data it comes from to the range it assumes", last = classes.saturating_sub(1))
)]
pub struct ComputedIndexOutOfRange {
    pub phase: String,
    pub count: u64,
    pub classes: u64,
    pub op: String,
    #[label("{count} indices out of range here")]
    pub span: miette::SourceSpan,
}

/// The index `guards` of program `phase` against its outputs on `device`: the first guard
/// that counted an out-of-range value.
pub fn check_guards(
    device: &crate::device::Device,
    phase: &str,
    guards: &[genc_compiler::program::IndexGuardSpec],
    outputs: &[(String, crate::device::DeviceTensor)],
) -> Result<Option<ComputedIndexOutOfRange>, crate::device::DeviceError> {
    for guard in guards {
        let Some((_, t)) = outputs.iter().find(|(n, _)| *n == guard.output) else { continue };
        let count = t.to_f64(device)?.first().copied().unwrap_or(0.0);
        if count != 0.0 {
            return Ok(Some(ComputedIndexOutOfRange {
                phase: phase.to_string(),
                count: count as u64,
                classes: guard.classes,
                op: guard.op.clone(),
                span: (guard.span.0, guard.span.1 - guard.span.0).into(),
            }));
        }
    }
    Ok(None)
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
