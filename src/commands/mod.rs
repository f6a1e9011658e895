//! The subcommands. Each returns an exit status: 0 clean, 1 diagnostics, 2 usage or I/O.

pub mod check;
pub mod compile;
pub mod devices;
pub mod eval;
pub mod fmt;
pub mod lsp;
pub mod sample;
pub mod snap;
pub mod summary;
pub mod train;
pub mod weights;

use std::path::Path;

use crate::report::Reporter;
use crate::source::{SourceFile, read_source};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Ok = 0,
    Diagnostics = 1,
    Usage = 2,
    /// Stopped by Ctrl-C after saving its state (128 + SIGINT, as shells report it).
    Interrupted = 130,
}

impl Status {
    pub fn worst(self, other: Status) -> Status {
        self.max(other)
    }
}

/// A usage or I/O error without a code of its own: one `error:` line, exit status 2.
pub fn fail(message: impl std::fmt::Display) -> Status {
    eprintln!("error: {message}");
    Status::Usage
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

/// Parses `--set name=value` arguments.
pub fn overrides(sets: &[String]) -> Result<Vec<genc_compiler::check::Override>, String> {
    sets.iter()
        .map(|s| match s.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                Ok(genc_compiler::check::Override { name: k.trim().to_string(), value: v.to_string() })
            }
            _ => Err(format!("`--set {s}`: expected NAME=VALUE, e.g. `--set lambda=5`")),
        })
        .collect()
}

/// Type-checks a parsed file, reporting every semantic diagnostic; `None` if there were any.
pub fn typecheck(
    file: &SourceFile,
    ast: &genc_grammar::ast::File,
    sets: &[String],
    reporter: &Reporter,
) -> Result<genc_compiler::check::Checked, Status> {
    let overrides = overrides(sets).map_err(|message| {
        eprintln!("error: {message}");
        Status::Usage
    })?;
    let checked = genc_compiler::check::check(ast, &overrides);
    // Warnings do not stop anything; errors do.
    for diagnostic in checked.warnings.iter().chain(&checked.errors) {
        reporter.emit(diagnostic, &file.name(), Some(&file.text));
    }
    if checked.errors.is_empty() { Ok(checked) } else { Err(Status::Diagnostics) }
}

/// Loads, parses and type-checks one file.
pub fn load_checked(
    path: &Path,
    sets: &[String],
    reporter: &Reporter,
) -> Result<genc_compiler::check::Checked, Status> {
    let file = load(path, reporter)?;
    let ast = parse(&file, reporter).ok_or(Status::Diagnostics)?;
    typecheck(&file, &ast, sets, reporter)
}
