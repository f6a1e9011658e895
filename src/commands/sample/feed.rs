//! The data a sampler reads: its tensor arguments (`complete(x)`, `compare(a, b)`) or the
//! data names a `sample` entry uses (`x_test`), from the first batch of the run's test data
//! (its training data when it has none), and the value range its images are drawn in.
//!
//! `split_of` and `transforms_of` are copies of the helpers in `train.rs` (kept apart while
//! that file is being changed): deduplicate them into a shared module.

use genc_compiler::check::{DataSpec, OptionValue};
use genc_compiler::sampler::{HostStep, SamplerProgram, VarKind};
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

/// The unit's inputs (in the order of `program.inputs`). An input nothing reads (a `sample`
/// entry sees every data name) is zeros; data is loaded only for the others.
pub fn inputs(
    device: &Device,
    program: &SamplerProgram,
    kind: &Kind,
    data: &[DataSpec],
    folder: Option<&std::path::Path>,
) -> Result<Vec<DeviceTensor>, SampleError> {
    let read = read_vars(program);
    let fail = |input: &str, reason: String| SampleError::Inputs {
        name: program.name.clone(),
        input: input.to_string(),
        reason,
    };
    let mut loaded: Vec<(usize, Dataset)> = Vec::new();
    let mut out = Vec::new();
    for (k, &v) in program.inputs.iter().enumerate() {
        let var = program
            .vars
            .get(v)
            .filter(|x| x.kind == VarKind::Input)
            .ok_or_else(|| fail("?", "a malformed input".into()))?;
        let numel: usize = var.shape.iter().product();
        if !read.contains(&v) {
            out.push(DeviceTensor::from_f32(device, var.dtype, &var.shape, &vec![0.0; numel])?);
            continue;
        }
        // The data source and the position of this input among its names.
        let found = match kind {
            Kind::Arguments => {
                let source =
                    data.iter().position(|d| split_of(d) == Split::Test).or((!data.is_empty()).then_some(0));
                source.map(|d| (d, k))
            }
            Kind::ByName => data
                .iter()
                .enumerate()
                .find_map(|(d, spec)| spec.names.iter().position(|n| *n == var.name).map(|p| (d, p))),
        };
        let (d, position) = found.ok_or_else(|| fail(&var.name, "no `data` of the spec gives it".into()))?;
        let source = &data[d];
        if !loaded.iter().any(|(i, _)| *i == d) {
            let dataset = match source.source.as_str() {
                "fashion_mnist" | "mnist" => Dataset::fashion_mnist(split_of(source), folder),
                other => return Err(fail(&var.name, format!("data source `{other}` is not supported yet"))),
            }
            .map_err(|e| fail(&var.name, e.to_string()))?;
            loaded.push((d, dataset));
        }
        let Some((_, dataset)) = loaded.iter().find(|(i, _)| *i == d) else { continue };
        let count = var.shape.first().copied().unwrap_or(1);
        if count > dataset.len() {
            return Err(fail(&var.name, format!("{count} samples, but the data has {}", dataset.len())));
        }
        let state = BatcherState::start(0, count, dataset.len());
        let batch = genc_runtime::data::make_batch(dataset, &transforms_of(source), &state);
        let values = pick(&batch, Some(position)).ok_or_else(|| {
            fail(&var.name, format!("the data `{}` gives nothing for it", source.names.join(", ")))
        })?;
        if values.len() != numel {
            let reason = format!("it is {:?}, the data gives {} values", var.shape, values.len());
            return Err(fail(&var.name, reason));
        }
        out.push(DeviceTensor::from_f32(device, var.dtype, &var.shape, &values)?);
    }
    Ok(out)
}

/// The variables something reads: a segment, a copy, a branch or the outputs.
fn read_vars(program: &SamplerProgram) -> Vec<usize> {
    fn walk(steps: &[HostStep], program: &SamplerProgram, out: &mut Vec<usize>) {
        for s in steps {
            match s {
                HostStep::Run { segment } => {
                    out.extend(program.segments.get(*segment).map(|g| g.reads.clone()).unwrap_or_default())
                }
                HostStep::Copy { from, .. } => out.push(*from),
                HostStep::Loop { body, .. } => walk(body, program, out),
                HostStep::If { cond, then, otherwise } => {
                    out.push(*cond);
                    walk(then, program, out);
                    walk(otherwise, program, out);
                }
            }
        }
    }
    let mut out: Vec<usize> = program.outputs.iter().map(|(_, v)| *v).collect();
    walk(&program.body, program, &mut out);
    out
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
