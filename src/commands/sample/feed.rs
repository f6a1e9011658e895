//! The data a sampler reads: its tensor arguments (`complete(x)`, `compare(a, b)`) or the
//! data names a `sample` entry uses (`x_test`), from the first batch of the run's test data
//! (its training data when it has none), and the value range its images are drawn in. The
//! sources open as `genc train` opens them (Fashion-MNIST or a PNG folder).

use genc_compiler::check::DataSpec;
use genc_compiler::sampler::{HostStep, SamplerProgram, VarKind};
use genc_runtime::data::{Batch, Dataset, Split};

use genc_runtime::device::{Device, DeviceTensor};
use genc_runtime::run::{DataProblem, open_source, split_of, transforms_of};
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
            let dataset = open_source(source, folder).map_err(|e| match e {
                DataProblem::Spec(message) => fail(&var.name, message),
                DataProblem::Load(e) => fail(&var.name, e.to_string()),
            })?;
            loaded.push((d, dataset));
        }
        let Some((_, dataset)) = loaded.iter().find(|(i, _)| *i == d) else { continue };
        let count = var.shape.first().copied().unwrap_or(1);
        if count > dataset.len() {
            return Err(fail(&var.name, format!("{count} samples, but the data has {}", dataset.len())));
        }
        // The source's first `count` examples, in its own order: `x_test[0:32]` means those.
        let batch = genc_runtime::data::in_order(dataset, &transforms_of(source), count, 0, true)
            .map_err(|e| fail(&var.name, e.to_string()))?
            .next()
            .ok_or_else(|| fail(&var.name, "the data set is empty".into()))?;
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
