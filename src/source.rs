//! Reading spec files: every way a read can fail is a coded diagnostic, never a panic.

use std::path::{Path, PathBuf};

use miette::Diagnostic;
use thiserror::Error;

/// Specs are small; anything past this is almost surely the wrong file.
pub const MAX_SOURCE_BYTES: u64 = 1 << 20;

/// A spec file's path (as the user wrote it) and its text.
pub struct SourceFile {
    pub path: PathBuf,
    pub text: String,
}

impl SourceFile {
    pub fn name(&self) -> String {
        self.path.display().to_string()
    }
}

#[derive(Debug, Error, Diagnostic)]
pub enum SourceError {
    #[error("cannot read `{path}`: {reason}")]
    #[diagnostic(code(E0019))]
    Unreadable {
        path: String,
        reason: String,
        #[help]
        help: Option<String>,
    },

    #[error("`{path}` is not valid UTF-8 (first bad byte at line {line}, byte {offset})")]
    #[diagnostic(code(E0020), help("save the spec as UTF-8 text; is this the right file?"))]
    NotUtf8 { path: String, offset: usize, line: usize },

    #[error("`{path}` is {size} bytes, more than the limit of {limit} bytes for a spec")]
    #[diagnostic(code(E0021), help("a spec is a short text file; is this the right file?"))]
    TooLarge { path: String, size: u64, limit: u64 },
}

pub fn read_source(path: &Path) -> Result<SourceFile, SourceError> {
    let shown = path.display().to_string();
    let unreadable = |reason: String, help: Option<&str>| SourceError::Unreadable {
        path: shown.clone(),
        reason,
        help: help.map(str::to_string),
    };
    let metadata = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            unreadable("no such file".into(), Some("check the path; specs live in `specs/`"))
        }
        std::io::ErrorKind::PermissionDenied => unreadable("permission denied".into(), None),
        _ => unreadable(e.to_string(), None),
    })?;
    if metadata.is_dir() {
        return Err(unreadable(
            "it is a directory".into(),
            Some("pass the `.gen` files in it, e.g. `specs/*.gen`"),
        ));
    }
    if metadata.len() > MAX_SOURCE_BYTES {
        return Err(SourceError::TooLarge { path: shown, size: metadata.len(), limit: MAX_SOURCE_BYTES });
    }
    let bytes = std::fs::read(path).map_err(|e| unreadable(e.to_string(), None))?;
    if bytes.len() as u64 > MAX_SOURCE_BYTES {
        return Err(SourceError::TooLarge { path: shown, size: bytes.len() as u64, limit: MAX_SOURCE_BYTES });
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        let offset = e.utf8_error().valid_up_to();
        let line = e.as_bytes().get(..offset).map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count()) + 1;
        SourceError::NotUtf8 { path: shown.clone(), offset, line }
    })?;
    Ok(SourceFile { path: path.to_path_buf(), text })
}
