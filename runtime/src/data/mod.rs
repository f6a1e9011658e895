//! Data sets and batches for training: Fashion-MNIST and any IDX pair, folders of PNG images,
//! per-batch transforms, and a seeded, resumable [`Batcher`] that prepares the next batch on
//! a background thread.
//!
//! - [`Dataset`] holds every image in memory as f32 in N×C×H×W order, values in [0, 1].
//! - [`Transforms`] run per batch in a fixed order (flip, binarise, pair, range); see
//!   [`transform`].
//! - [`Batcher`] shuffles from a seed each epoch (SplitMix64, [`rng`]), yields full batches
//!   only and can be resumed from its serialisable [`BatcherState`].

mod batcher;
mod bicubic;
mod error;
mod folder;
pub mod idx;
pub mod rng;
pub mod transform;

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use batcher::{Batch, Batcher, BatcherState, epoch_order, in_order, make_batch};
pub use bicubic::downsample_bicubic;
pub use error::DataError;
pub use folder::FolderOptions;
pub use transform::{Binarize, EdgeFilter, Images, Pair, Transforms};

/// Where the Debian package `dataset-fashion-mnist` installs its files.
pub const FASHION_MNIST_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// The training or the test part of a data set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Test,
}

impl Split {
    /// `train` or `test`.
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "test",
        }
    }

    /// The IDX file prefix of the split: `train` or `t10k`.
    fn idx_prefix(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "t10k",
        }
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Images in memory: N×C×H×W f32 in [0, 1], with labels when the source has them.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    pub images: Vec<f32>,
    pub labels: Option<Vec<i32>>,
    /// `(channels, height, width)` of every image.
    pub shape: (usize, usize, usize),
    pub split: Split,
}

impl Dataset {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.images.len().checked_div(self.image_size()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Values per image: C·H·W.
    pub fn image_size(&self) -> usize {
        self.shape.0 * self.shape.1 * self.shape.2
    }

    /// Image `i` (C×H×W). Panics if `i >= len()`, like slice indexing.
    pub fn image(&self, i: usize) -> &[f32] {
        let size = self.image_size();
        &self.images[i * size..(i + 1) * size]
    }

    /// Keeps only the first `n` images (all of them when there are fewer).
    pub fn limit(mut self, n: usize) -> Self {
        let n = n.min(self.len());
        self.images.truncate(n * self.image_size());
        if let Some(labels) = &mut self.labels {
            labels.truncate(n);
        }
        self
    }

    /// Fashion-MNIST's `split` from `dir`, or found in the usual places when `dir` is `None`
    /// (see [`find_fashion_mnist`]).
    pub fn fashion_mnist(split: Split, dir: Option<&Path>) -> Result<Dataset, DataError> {
        let dir = match dir {
            Some(dir) => {
                if !idx_pair(dir, split).iter().any(|p| p.is_file()) {
                    return Err(DataError::NotFound { looked: vec![dir.to_path_buf()] });
                }
                dir.to_path_buf()
            }
            None => find_fashion_mnist().map_err(|looked| DataError::NotFound { looked })?,
        };
        let [images, labels] = idx_pair(&dir, split);
        Dataset::from_idx(&images, Some(&labels), split)
    }

    /// An images IDX file (N×H×W, or N×C×H×W) and optionally its labels (N values).
    /// `u8` pixels are divided by 255; other types are taken as they are.
    pub fn from_idx(images: &Path, labels: Option<&Path>, split: Split) -> Result<Dataset, DataError> {
        let idx = idx::read_idx(images)?;
        let shape = match idx.dims[..] {
            [_, h, w] => (1, h, w),
            [_, c, h, w] => (c, h, w),
            _ => {
                return Err(DataError::BadIdx {
                    path: images.to_path_buf(),
                    reason: format!(
                        "an images file has 3 dimensions (N, H, W) or 4 (N, C, H, W), this one {:?}",
                        idx.dims
                    ),
                });
            }
        };
        let n = idx.dims[0];
        let images_f32 = idx.to_f32();
        drop(idx);
        let labels = match labels {
            None => None,
            Some(path) => {
                let lab = idx::read_idx(path)?;
                if lab.dims.len() != 1 {
                    return Err(DataError::BadIdx {
                        path: path.to_path_buf(),
                        reason: format!("a labels file has 1 dimension, this one {:?}", lab.dims),
                    });
                }
                if lab.dims[0] != n {
                    return Err(DataError::LabelCount {
                        path: path.to_path_buf(),
                        images: n,
                        labels: lab.dims[0],
                    });
                }
                let values = lab.to_i32().ok_or_else(|| DataError::BadIdx {
                    path: path.to_path_buf(),
                    reason: "labels must be whole numbers".to_string(),
                })?;
                Some(values)
            }
        };
        Ok(Dataset { images: images_f32, labels, shape, split })
    }

    /// A folder of PNG images (see [`FolderOptions`]).
    pub fn from_folder(dir: &Path, options: &FolderOptions, split: Split) -> Result<Dataset, DataError> {
        folder::load(dir, options, split)
    }
}

/// The images and labels files of `split` under `dir`: the gzipped name, or the raw one when
/// only that exists.
fn idx_pair(dir: &Path, split: Split) -> [PathBuf; 2] {
    let p = split.idx_prefix();
    [format!("{p}-images-idx3-ubyte"), format!("{p}-labels-idx1-ubyte")].map(|base| {
        let gz = dir.join(format!("{base}.gz"));
        let raw = dir.join(&base);
        if !gz.is_file() && raw.is_file() { raw } else { gz }
    })
}

/// The folder holding Fashion-MNIST: `$GENC_FASHION_MNIST` when set, else
/// [`FASHION_MNIST_DIR`], else `/usr/local/share/datasets/fashion-mnist`. A folder counts when
/// it holds the training images. On failure, the folders that were searched.
pub fn find_fashion_mnist() -> Result<PathBuf, Vec<PathBuf>> {
    let mut candidates = Vec::new();
    if let Some(dir) = std::env::var_os("GENC_FASHION_MNIST") {
        candidates.push(PathBuf::from(dir));
    }
    candidates.push(PathBuf::from(FASHION_MNIST_DIR));
    candidates.push(PathBuf::from("/usr/local/share/datasets/fashion-mnist"));
    for dir in &candidates {
        if idx_pair(dir, Split::Train)[0].is_file() {
            return Ok(dir.clone());
        }
    }
    Err(candidates)
}
