//! The data a sampler reads: its tensor arguments (`complete(x)`, `compare(a, b)`) or the
//! data names a `sample` entry uses (`x_test`), from the first batch of the run's test data
//! (its training data when it has none), and the value range its images are drawn in.
//!
//! `split_of` and `transforms_of` are copies of the helpers in `train.rs` (kept apart while
//! that file is being changed): deduplicate them into a shared module.

use genc_compiler::check::{DataSpec, OptionValue};
use genc_compiler::sampler::{SamplerProgram, VarKind};
use genc_runtime::data::{Batch, BatcherState, Binarize, Dataset, Pair, Split, Transforms};
use genc_runtime::device::{Device, DeviceTensor};
use genc_runtime::sample::SampleError;

/// How a unit's inputs map onto data names.
pub enum Kind {
    /// A `sampler`'s tensor arguments, in order, take the data source's names in order.
    Arguments,
    /// A `sample` entry's inputs are the data names themselves.
    ByName,
}

/// The unit's inputs (in the order of `program.inputs`); no data is read when it has none.
pub fn inputs(
    device: &Device,
    program: &SamplerProgram,
    kind: &Kind,
    data: &[DataSpec],
    folder: Option<&std::path::Path>,
) -> Result<Vec<DeviceTensor>, SampleError> {
    if program.inputs.is_empty() {
        return Ok(Vec::new());
    }
    let fail = |input: &str, reason: String| SampleError::Inputs {
        name: program.name.clone(),
        input: input.to_string(),
        reason,
    };
    let first = program.vars.get(program.inputs[0]).map_or("?", |v| v.name.as_str());
    let source = data
        .iter()
        .find(|d| split_of(d) == Split::Test)
        .or_else(|| data.first())
        .ok_or_else(|| fail(first, "the spec has no `data`".into()))?;
    let dataset = match source.source.as_str() {
        "fashion_mnist" | "mnist" => Dataset::fashion_mnist(split_of(source), folder),
        other => return Err(fail(first, format!("data source `{other}` is not supported yet"))),
    }
    .map_err(|e| fail(first, e.to_string()))?;
    let mut out = Vec::new();
    for (k, &v) in program.inputs.iter().enumerate() {
        let var = program
            .vars
            .get(v)
            .filter(|x| x.kind == VarKind::Input)
            .ok_or_else(|| fail(first, "a malformed input".into()))?;
        let position = match kind {
            Kind::Arguments => Some(k),
            Kind::ByName => source.names.iter().position(|n| *n == var.name),
        };
        let count = var.shape.first().copied().unwrap_or(1);
        if count > dataset.len() {
            return Err(fail(&var.name, format!("{count} samples, but the data has {}", dataset.len())));
        }
        let batch = genc_runtime::data::make_batch(
            &dataset,
            &transforms_of(source),
            &BatcherState::start(0, count, dataset.len()),
        );
        let values = pick(&batch, position).ok_or_else(|| {
            fail(&var.name, format!("the data `{}` gives nothing for it", source.names.join(", ")))
        })?;
        let numel: usize = var.shape.iter().product();
        if values.len() != numel {
            return Err(fail(
                &var.name,
                format!("it is {:?}, the data gives {} values", var.shape, values.len()),
            ));
        }
        out.push(DeviceTensor::from_f32(device, var.dtype, &var.shape, &values));
    }
    Ok(out)
}

/// The values of data name number `position`: the images, the pair (low-res or edges first),
/// or the labels.
fn pick(b: &Batch, position: Option<usize>) -> Option<Vec<f32>> {
    match (position?, &b.paired, &b.labels) {
        (0, Some(low), _) => Some(low.data.clone()),
        (1, Some(_), _) | (0, None, _) => Some(b.images.data.clone()),
        (1, None, Some(labels)) => Some(labels.iter().map(|&l| l as f32).collect()),
        _ => None,
    }
}

/// The range the training images were scaled to (`range: [-1, 1]`), which the grid maps back
/// to black and white; `[0, 1]` by default.
pub fn range(data: &[DataSpec]) -> (f32, f32) {
    data.iter()
        .find(|d| split_of(d) == Split::Train)
        .and_then(|d| transforms_of(d).range)
        .unwrap_or((0.0, 1.0))
}

fn split_of(d: &DataSpec) -> Split {
    match d.options.get("split") {
        Some(OptionValue::Str(s)) if s == "test" => Split::Test,
        _ => Split::Train,
    }
}

fn transforms_of(d: &DataSpec) -> Transforms {
    let range = d.options.get("range").and_then(|v| v.list()).and_then(|r| match r {
        [lo, hi] => Some((*lo as f32, *hi as f32)),
        _ => None,
    });
    let binarize =
        matches!(d.options.get("binarize"), Some(OptionValue::Bool(true))).then_some(Binarize::Sample);
    let pair = d.paired.as_ref().and_then(|(kind, o)| match kind.as_str() {
        "downsample" => o.get("0").and_then(|v| v.number()).map(|r| Pair::Downsample(r as usize)),
        "edges" => "sobel".parse().ok().map(Pair::Edges),
        _ => None,
    });
    Transforms { flip: false, binarize, pair, range }
}
