//! From the spec's `data` declarations to a phase's input tensors: which data set and split,
//! which transforms, and which part of a batch (images, the low-resolution pair, labels)
//! feeds which input.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use genc_compiler::data_source::{DataSource, DataSpec, DataSplit, Pairing};
use genc_compiler::program::PhaseProgram;
use genc_compiler::train_spec::RunSpec;

use crate::data::{Batch, Binarize, DataError, Dataset, EdgeFilter, FolderOptions, Pair, Split, Transforms};
use crate::device::{Device, DeviceTensor};
use crate::labels::{self, FeedError};

/// The data a run reads: the training source and, if the spec declares one, the test source.
pub struct RunData {
    pub train_spec: DataSpec,
    pub train: Arc<Dataset>,
    pub test: Option<(DataSpec, Arc<Dataset>)>,
}

/// Why the spec's data cannot be opened.
#[derive(Debug)]
pub enum DataProblem {
    /// The spec declares no training data or a source `genc train` cannot read.
    Spec(String),
    Load(DataError),
}

impl RunData {
    /// Opens the spec's sources; `folder` (the run config's `data`) replaces the default
    /// location of Fashion-MNIST.
    pub fn open(run: &RunSpec, folder: Option<&Path>) -> Result<RunData, DataProblem> {
        let train_spec = run
            .data
            .iter()
            .find(|d| split_of(d) == Split::Train)
            .ok_or_else(|| DataProblem::Spec("the `train` block declares no training data".into()))?
            .clone();
        let open = |d: &DataSpec| open_source(d, folder).map(Arc::new);
        let train = open(&train_spec)?;
        let test = match run.data.iter().find(|d| split_of(d) == Split::Test) {
            Some(d) => Some((d.clone(), open(d)?)),
            None => None,
        };
        Ok(RunData { train_spec, train, test })
    }

    /// The test set's first `batch` examples in the source's own order: `x_test[0:4]` in a
    /// sample entry is the first four test images (shuffling is for training batches only).
    pub fn first_test_batch(&self, batch: usize) -> Option<Batch> {
        let (d, ds) = self.test.as_ref()?;
        crate::data::in_order(ds, &transforms_of(d), batch, 0, true).ok()?.next()
    }
}

/// Opens one `data` source: Fashion-MNIST's IDX files (in `folder` when the run config names
/// one), an MNIST IDX pair in `folder`, or a folder of PNG images.
pub fn open_source(d: &DataSpec, folder: Option<&Path>) -> Result<Dataset, DataProblem> {
    let loaded = match &d.source {
        DataSource::FashionMnist => Dataset::fashion_mnist(split_of(d), folder),
        DataSource::Mnist => match folder {
            Some(folder) => Dataset::fashion_mnist(split_of(d), Some(folder)),
            None => {
                return Err(DataProblem::Spec(
                    "`mnist(..)` reads the MNIST IDX pair in the folder the run config's `data:` names, and this run names none (only Fashion-MNIST ships with the system: `fashion_mnist(..)`)".into(),
                ));
            }
        },
        DataSource::Folder { path, size, channels } => {
            // The run config's `data` wins over the spec's `path`.
            let path = folder.map(Path::to_path_buf).or_else(|| path.as_ref().map(PathBuf::from));
            let path = path.ok_or_else(|| {
                DataProblem::Spec("a `folder(..)` source needs `path:` (or `data:` in the run config)".into())
            })?;
            let options = FolderOptions { size: *size, channels: Some(*channels as usize) };
            Dataset::from_folder(&path, &options, split_of(d))
        }
    };
    loaded.map_err(DataProblem::Load)
}

pub fn split_of(d: &DataSpec) -> Split {
    match d.split {
        DataSplit::Train => Split::Train,
        DataSplit::Test => Split::Test,
    }
}

/// The transforms a `data` declaration asks for.
pub fn transforms_of(d: &DataSpec) -> Transforms {
    Transforms {
        flip: d.flip,
        binarize: d.binarize.then_some(Binarize::Sample),
        pair: d.paired.map(|p| match p {
            Pairing::Downsample(r) => Pair::Downsample(r as usize),
            Pairing::Bicubic(r) => Pair::Bicubic(r as usize),
            Pairing::Edges => Pair::Edges(EdgeFilter::Sobel),
        }),
        range: d.range.map(|(lo, hi)| (lo as f32, hi as f32)),
    }
}

/// A phase's inputs from a batch: each data name maps to the images, the pair or the labels;
/// an input the data does not name is zeros.
pub fn inputs_for(
    device: &Device,
    phase: &PhaseProgram,
    names: &[String],
    b: &Batch,
) -> Result<Vec<DeviceTensor>, FeedError> {
    phase
        .inputs
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            let k = names.iter().position(|n| *n == spec.name);
            let mut data: Vec<f32> = match (k, &b.paired, &b.labels) {
                (Some(0), Some(low), _) => low.data.clone(),
                (Some(1), Some(_), _) | (Some(0), None, _) => b.images.data.clone(),
                (Some(1), None, Some(labels)) => labels.iter().map(|&l| l as f32).collect(),
                _ => Vec::new(),
            };
            labels::check(phase, i, &data)?;
            data.resize(spec.shape.iter().product(), 0.0);
            DeviceTensor::from_f32(device, spec.dtype, &spec.shape, &data)
                .map_err(|e| FeedError::Data(e.to_string()))
        })
        .collect()
}

/// Inputs for a sample or eval unit: the test batch by name, zeros for what it does not read.
pub fn unit_inputs(
    device: &Device,
    phase: &PhaseProgram,
    test: Option<(&DataSpec, &Batch)>,
) -> Result<Vec<DeviceTensor>, FeedError> {
    match test {
        Some((d, b)) => inputs_for(device, phase, &d.names, b),
        None => phase
            .inputs
            .iter()
            .map(|s| DeviceTensor::from_f32(device, s.dtype, &s.shape, &vec![0.0; s.shape.iter().product()]))
            .collect::<Result<_, _>>()
            .map_err(|e| FeedError::Data(e.to_string())),
    }
}
