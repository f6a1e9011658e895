//! `genc compile FILE --emit STAGE`: print a compiler stage in its stable text form.

use std::path::Path;

use super::{Status, load, parse, typecheck};
use crate::report::Reporter;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Stage {
    /// The syntax tree, as S-expressions without spans.
    Ast,
    /// The parameter table and every graph of primitives, without types.
    Graph,
    /// The same graphs with the type of every node.
    Typed,
    /// The graphs as Graphviz source.
    Dot,
}

pub fn run(path: &Path, stage: Stage, sets: &[String], reporter: &Reporter) -> Status {
    let file = match load(path, reporter) {
        Ok(file) => file,
        Err(status) => return status,
    };
    let Some(ast) = parse(&file, reporter) else {
        return Status::Diagnostics;
    };
    if stage == Stage::Ast {
        print!("{}", genc_grammar::dump::dump(&ast));
        return Status::Ok;
    }
    let checked = match typecheck(&file, &ast, sets, reporter) {
        Ok(c) => c,
        Err(status) => return status,
    };
    match stage {
        Stage::Ast => {}
        Stage::Graph => print!("{}", genc_compiler::stages::graph_text(&checked, false)),
        Stage::Typed => print!("{}", genc_compiler::stages::graph_text(&checked, true)),
        Stage::Dot => print!("{}", genc_compiler::stages::dot_text(&checked)),
    }
    Status::Ok
}
