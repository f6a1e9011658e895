//! The subcommands. Each returns an exit status: 0 clean, 1 diagnostics, 2 usage or I/O.

pub mod check;
pub mod compile;
pub mod devices;
pub mod fmt;

use std::path::Path;

use crate::report::Reporter;
use crate::source::{SourceFile, read_source};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Ok = 0,
    Diagnostics = 1,
    Usage = 2,
}

impl Status {
    pub fn worst(self, other: Status) -> Status {
        self.max(other)
    }
}

/// Reads a file, reporting a failure as a diagnostic.
pub fn load(path: &Path, reporter: &Reporter) -> Result<SourceFile, Status> {
    read_source(path).map_err(|error| {
        reporter.emit(&error, &path.display().to_string(), None);
        Status::Usage
    })
}

/// Parses a loaded file, reporting its syntax errors; `None` if there were any.
pub fn parse(file: &SourceFile, reporter: &Reporter) -> Option<genc_grammar::ast::File> {
    let (ast, errors) = genc_grammar::parse(&file.text);
    for error in &errors {
        reporter.emit(error, &file.name(), Some(&file.text));
    }
    errors.is_empty().then_some(ast)
}
