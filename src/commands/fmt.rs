//! `genc fmt [--check | --write] FILE...`: the canonical layout.

use std::path::{Path, PathBuf};

use super::{Status, load};
use crate::report::Reporter;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Print the formatted text.
    Print,
    /// Exit 1 if a file is not formatted; change nothing.
    Check,
    /// Rewrite files in place (atomically).
    Write,
}

pub fn run(files: &[PathBuf], mode: Mode, reporter: &Reporter) -> Status {
    let mut status = Status::Ok;
    for path in files {
        let file = match load(path, reporter) {
            Ok(file) => file,
            Err(s) => {
                status = status.worst(s);
                continue;
            }
        };
        let formatted = match genc_grammar::format::format_source(&file.text) {
            Ok(text) => text,
            Err(errors) => {
                for error in &errors {
                    reporter.emit(error, &file.name(), Some(&file.text));
                }
                status = status.worst(Status::Diagnostics);
                continue;
            }
        };
        match mode {
            Mode::Print => print!("{formatted}"),
            Mode::Check if formatted != file.text => {
                let line = first_difference(&file.text, &formatted);
                println!(
                    "{}: not formatted (first difference at line {line}); run `genc fmt --write {}`",
                    file.name(),
                    file.name()
                );
                status = status.worst(Status::Diagnostics);
            }
            Mode::Check => {}
            Mode::Write if formatted != file.text => {
                if let Err(e) = write_atomically(path, &formatted) {
                    eprintln!("error: cannot write `{}`: {e}", file.name());
                    status = status.worst(Status::Usage);
                }
            }
            Mode::Write => {}
        }
    }
    status
}

fn first_difference(a: &str, b: &str) -> usize {
    a.lines()
        .zip(b.lines())
        .position(|(x, y)| x != y)
        .unwrap_or_else(|| a.lines().count().min(b.lines().count()))
        + 1
}

/// Writes to a temporary file beside `path`, then renames it over: a crash leaves either
/// the old file or the new one, never half of each.
fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let mut temp = path.as_os_str().to_owned();
    temp.push(".genc-fmt.tmp");
    let temp = PathBuf::from(temp);
    std::fs::write(&temp, text)?;
    std::fs::rename(&temp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&temp);
    })
}
