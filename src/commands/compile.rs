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
    /// Each training phase: forward and backward graph, before simplification.
    Grad,
    /// Each training phase after simplification, partitioned into kernels.
    Fused,
    /// The executable Program: kernels per phase, values, memory slots.
    Program,
    /// Each sampler as a host program: loops and branches around planned segments.
    Sampler,
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
        Stage::Grad | Stage::Fused | Stage::Program => return print_planned(&checked, stage),
        Stage::Sampler => return print_samplers(&checked),
    }
    Status::Ok
}

/// Every `sampler` as a host program, its free dims (`n` of `x: [n, C, H, W]`) at the
/// spec's batch size (or 1).
fn print_samplers(checked: &genc_compiler::check::Checked) -> Status {
    let batch = checked.schedule.as_ref().and_then(|s| s.batch.as_ref()).map_or(1, |b| b.1 as i64);
    let mut status = Status::Ok;
    for unit in checked.units.iter().filter(|u| u.kind == genc_compiler::check::UnitKind::Sampler) {
        match genc_compiler::sampler::plan_sampler(checked, unit, &|_| Some(batch)) {
            Ok(p) => println!("{}", p.to_text()),
            Err(e) => {
                eprintln!("error: {e}");
                status = Status::Diagnostics;
            }
        }
    }
    status
}

/// The planned stages, and on stderr one line per phase: primitive ops, kernels, peak memory.
fn print_planned(checked: &genc_compiler::check::Checked, stage: Stage) -> Status {
    let (program, stages) = match genc_compiler::plan::plan(checked, None) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return Status::Diagnostics;
        }
    };
    match stage {
        Stage::Grad => {
            for s in &stages {
                print!("phase {} {{\n{}}}\n\n", s.name, s.grad.to_text(true));
            }
        }
        Stage::Fused => {
            for s in &stages {
                print!("phase {} {{\n{}}}\n\n", s.name, s.partition.to_text(&s.simplified));
            }
        }
        _ => print!("{}", program.to_text()),
    }
    for p in &program.phases {
        eprintln!(
            "phase {}: {} primitive ops, {} kernels after fusion, peak {:.1} MiB",
            p.name,
            p.primitive_ops,
            p.kernels,
            p.peak_bytes as f64 / (1 << 20) as f64
        );
    }
    Status::Ok
}
