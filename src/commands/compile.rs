//! `genc compile FILE --emit STAGE`: print a compiler stage in its stable text form.

use std::path::Path;

use genc_compiler::check::Checked;

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
    match stage_text(&checked, stage) {
        Ok(StageText { text, notes }) => {
            print!("{text}");
            notes.iter().for_each(|n| eprintln!("{n}"));
            Status::Ok
        }
        Err(message) => {
            eprintln!("error: {message}");
            Status::Diagnostics
        }
    }
}

/// A stage's stable text, and notes about it for stderr (each phase's size).
pub struct StageText {
    pub text: String,
    pub notes: Vec<String>,
}

/// A checked spec's `stage` in its stable text form (the AST stage needs the syntax tree:
/// `genc_grammar::dump::dump`). Planned stages plan the spec at its batch size.
pub fn stage_text(checked: &Checked, stage: Stage) -> Result<StageText, String> {
    use genc_compiler::stages;
    let text = match stage {
        Stage::Ast => {
            return Err("the syntax tree is dumped from the parsed file, not the checked one".into());
        }
        Stage::Graph => stages::graph_text(checked, false),
        Stage::Typed => stages::graph_text(checked, true),
        Stage::Dot => stages::dot_text(checked),
        Stage::Grad | Stage::Fused | Stage::Program => return planned_text(checked, stage),
        Stage::Sampler => sampler_text(checked)?,
    };
    Ok(StageText { text, notes: Vec::new() })
}

/// Every `sampler` as a host program, its free dims (`n` of `x: [n, C, H, W]`) at the
/// spec's batch size (or 1).
fn sampler_text(checked: &Checked) -> Result<String, String> {
    let batch = checked.schedule.as_ref().and_then(|s| s.batch.as_ref()).map_or(1, |b| b.1 as i64);
    let mut out = String::new();
    for unit in checked.units.iter().filter(|u| u.kind == genc_compiler::check::UnitKind::Sampler) {
        let program = genc_compiler::sampler::plan_sampler(checked, unit, &|_| Some(batch))
            .map_err(|e| e.to_string())?;
        out.push_str(&program.to_text());
        out.push('\n');
    }
    Ok(out)
}

/// The gradient graphs, the fused partitions or the Program of every training phase; each
/// phase's primitive ops, kernels and peak memory as notes.
fn planned_text(checked: &Checked, stage: Stage) -> Result<StageText, String> {
    let (program, stages) = genc_compiler::plan::plan(checked, None).map_err(|e| e.to_string())?;
    let notes = program
        .phases
        .iter()
        .map(|p| {
            format!(
                "phase {}: {} primitive ops, {} kernels after fusion, peak {:.1} MiB",
                p.name,
                p.primitive_ops,
                p.kernels,
                p.peak_bytes as f64 / (1 << 20) as f64
            )
        })
        .collect();
    let text = match stage {
        Stage::Grad => {
            stages.iter().map(|s| format!("phase {} {{\n{}}}\n\n", s.name, s.grad.to_text(true))).collect()
        }
        Stage::Fused => stages
            .iter()
            .map(|s| format!("phase {} {{\n{}}}\n\n", s.name, s.partition.to_text(&s.simplified)))
            .collect(),
        _ => program.to_text(),
    };
    Ok(StageText { text, notes })
}
