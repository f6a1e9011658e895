//! Errors of data loading, batching and image output: each a diagnostic with a stable code
//! (`E0910`–`E0919`, listed in `docs/errors.md`).

use std::path::PathBuf;

use miette::Diagnostic;
use thiserror::Error;

/// Why a data set could not be loaded or batched, or an image could not be written.
#[derive(Debug, Error, Diagnostic)]
pub enum DataError {
    #[error("the Fashion-MNIST data set was not found (looked in {})", list(.looked))]
    #[diagnostic(
        code(E0910),
        help(
            "install it with `apt-get install dataset-fashion-mnist` (Debian or Ubuntu), or give \
             the folder holding `train-images-idx3-ubyte.gz` and the other three files"
        )
    )]
    NotFound {
        /// The folders that were searched.
        looked: Vec<PathBuf>,
    },

    #[error("could not read `{}`: {reason}", .path.display())]
    #[diagnostic(code(E0911), help("check that the file exists and can be read"))]
    Read { path: PathBuf, reason: String },

    #[error("`{}` is not a valid IDX file: {reason}", .path.display())]
    #[diagnostic(
        code(E0912),
        help("IDX files start with two zero bytes, a type code and the number of dimensions")
    )]
    BadIdx { path: PathBuf, reason: String },

    #[error("`{}` is truncated: its header promises {expected} bytes of data, it has {found}", .path.display())]
    #[diagnostic(code(E0913), help("the download or the package is damaged; fetch the file again"))]
    Truncated { path: PathBuf, expected: u64, found: u64 },

    #[error("{images} images but {labels} labels (`{}`)", .path.display())]
    #[diagnostic(code(E0914), help("an images file and a labels file must come from the same split"))]
    LabelCount { path: PathBuf, images: usize, labels: usize },

    #[error("cannot use the image folder `{}`: {reason}", .path.display())]
    #[diagnostic(
        code(E0915),
        help(
            "a folder data set holds PNG files, or one sub-folder of PNG files per class; every \
             image is resized to the requested size"
        )
    )]
    ImageFolder { path: PathBuf, reason: String },

    #[error("invalid data setting: {reason}")]
    #[diagnostic(code(E0916))]
    Setting { reason: String },

    #[error("the background batch loader stopped: {reason}")]
    #[diagnostic(code(E0917), help("this is a bug in genc's data loader; please report it"))]
    Loader { reason: String },

    #[error("could not write `{}`: {reason}", .path.display())]
    #[diagnostic(code(E0918), help("check that the folder exists, is writable and has space left"))]
    Write { path: PathBuf, reason: String },

    #[error("cannot draw the images: {reason}")]
    #[diagnostic(code(E0919))]
    Grid { reason: String },
}

fn list(paths: &[PathBuf]) -> String {
    if paths.is_empty() {
        return "no folder".to_string();
    }
    paths.iter().map(|p| format!("`{}`", p.display())).collect::<Vec<_>>().join(", ")
}
