//! `genc compile FILE --emit STAGE`: print a compiler stage in its stable text form.

use std::path::Path;

use super::{Status, load, parse};
use crate::report::Reporter;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Stage {
    /// The syntax tree, as S-expressions without spans.
    Ast,
}

pub fn run(path: &Path, stage: Stage, reporter: &Reporter) -> Status {
    let file = match load(path, reporter) {
        Ok(file) => file,
        Err(status) => return status,
    };
    let Some(ast) = parse(&file, reporter) else {
        return Status::Diagnostics;
    };
    match stage {
        Stage::Ast => print!("{}", genc_grammar::dump::dump(&ast)),
    }
    Status::Ok
}
