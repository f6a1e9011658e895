//! `genc snap SPEC...`: snapshot tests of a user's own specs. Each chosen stage's stable text
//! is kept in `snapshots/<spec>.<stage>.snap` beside the spec, in insta's file format (a YAML
//! header between `---` lines, then the text), so `cargo insta` users read them as their own.
//!
//! - plain: new snapshots are written; a changed stage keeps its snapshot, gets its new text in
//!   `<name>.snap.new` and its unified diff printed; exit 1 if any stage changed.
//! - `--check` (for CI): writes nothing; prints each change's diff, exit 1 if any stage changed
//!   or has no snapshot.
//! - `--accept`: writes every snapshot and removes the `.snap.new` files.
//! - `--review`: shows each change and asks on stdin whether to accept it.
//!
//! The texts hold no addresses, timestamps or hash-ordered output, and the header names the
//! spec by its file name alone, so a snapshot is the same on every machine and in every folder.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use super::compile::{Stage, stage_text};
use super::{Status, fail, load, parse, typecheck};
use crate::report::Reporter;

/// What `genc snap` can keep a snapshot of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SnapStage {
    /// The syntax tree (`--emit ast`).
    Ast,
    /// Per net: layers, output shapes, parameter counts (`genc summary`).
    Summary,
    /// The parameter table and every graph, typed (`--emit typed`).
    Typed,
    /// Each training phase's forward and backward graph (`--emit grad`).
    Grad,
    /// Each phase simplified and partitioned into kernels (`--emit fused`).
    Fused,
    /// The executable Program (`--emit program`).
    Program,
    /// Every sampler as a host program (`--emit sampler`).
    Sampler,
}

impl SnapStage {
    fn name(self) -> &'static str {
        match self {
            SnapStage::Ast => "ast",
            SnapStage::Summary => "summary",
            SnapStage::Typed => "typed",
            SnapStage::Grad => "grad",
            SnapStage::Fused => "fused",
            SnapStage::Program => "program",
            SnapStage::Sampler => "sampler",
        }
    }

    /// The command that prints the same text, for the snapshot's header.
    fn command(self, spec: &str) -> String {
        match self {
            SnapStage::Summary => format!("genc summary {spec}"),
            _ => format!("genc compile {spec} --emit {}", self.name()),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Write,
    Check,
    Accept,
    Review,
}

pub struct Args {
    pub specs: Vec<PathBuf>,
    pub stages: Vec<SnapStage>,
    pub mode: Mode,
    pub sets: Vec<String>,
}

/// One stage of one spec: where its snapshot lives and what it holds now.
struct Snapshot {
    path: PathBuf,
    header: String,
    text: String,
}

impl Snapshot {
    fn file(&self) -> String {
        format!("{}{}\n", self.header, self.text.trim_end())
    }

    fn pending(&self) -> PathBuf {
        let mut name = self.path.clone().into_os_string();
        name.push(".new");
        PathBuf::from(name)
    }
}

pub fn run(args: &Args, reporter: &Reporter) -> Status {
    let mut status = Status::Ok;
    let mut answers = std::io::stdin().lock();
    for spec in &args.specs {
        let snapshots = match render(spec, args, reporter) {
            Ok(s) => s,
            Err(s) => {
                status = status.worst(s);
                continue;
            }
        };
        for snap in snapshots {
            match settle(&snap, args.mode, &mut answers) {
                Ok(true) => {}
                Ok(false) => status = status.worst(Status::Diagnostics),
                Err(message) => status = status.worst(fail(message)),
            }
        }
    }
    status
}

/// Every chosen stage of `spec`, rendered.
fn render(spec: &Path, args: &Args, reporter: &Reporter) -> Result<Vec<Snapshot>, Status> {
    let file = load(spec, reporter)?;
    let ast = parse(&file, reporter).ok_or(Status::Diagnostics)?;
    let checked = typecheck(&file, &ast, &args.sets, reporter)?;
    let name = spec.file_name().map_or_else(|| "spec".into(), |n| n.to_string_lossy().into_owned());
    let stem = spec.file_stem().map_or_else(|| "spec".into(), |n| n.to_string_lossy().into_owned());
    let dir = spec.parent().unwrap_or(Path::new("")).join("snapshots");
    let sets: String = args.sets.iter().map(|s| format!(" --set {s}")).collect();
    let mut out = Vec::new();
    for &stage in &args.stages {
        let text = match stage {
            SnapStage::Ast => genc_grammar::dump::dump(&ast),
            SnapStage::Summary => genc_compiler::stages::summary(&checked),
            SnapStage::Typed => stage_text(&checked, Stage::Typed).map_err(fail)?.text,
            SnapStage::Grad => stage_text(&checked, Stage::Grad).map_err(fail)?.text,
            SnapStage::Fused => stage_text(&checked, Stage::Fused).map_err(fail)?.text,
            SnapStage::Program => stage_text(&checked, Stage::Program).map_err(fail)?.text,
            SnapStage::Sampler => stage_text(&checked, Stage::Sampler).map_err(fail)?.text,
        };
        let header = format!(
            "---\nsource: {name}\nexpression: {}\n---\n",
            serde_json::to_string(&format!("{}{sets}", stage.command(&name))).unwrap_or_default()
        );
        out.push(Snapshot { path: dir.join(format!("{stem}.{}.snap", stage.name())), header, text });
    }
    Ok(out)
}

/// The text of a snapshot file: what follows its header.
fn body(file: &str) -> &str {
    let mut rest = file.strip_prefix("---\n").unwrap_or(file);
    if let Some(end) = rest.find("\n---\n") {
        rest = &rest[end + 5..];
    }
    rest.trim_end()
}

/// Brings one snapshot in line with `mode`; false if it differs and stays different.
fn settle(snap: &Snapshot, mode: Mode, answers: &mut impl BufRead) -> Result<bool, String> {
    let shown = snap.path.display();
    let old = match std::fs::read_to_string(&snap.path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(format!("cannot read `{shown}`: {e}")),
    };
    let new = snap.text.trim_end();
    let same = old.as_deref().is_some_and(|o| body(o) == new);
    let write = |path: &Path, text: &str| -> Result<(), String> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("cannot create `{}`: {e}", dir.display()))?;
        }
        genc_runtime::images::write_atomic(path, text.as_bytes()).map_err(|e| e.to_string())
    };
    let drop_pending = || match std::fs::remove_file(snap.pending()) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(format!("cannot remove `{}`: {e}", snap.pending().display()))
        }
        _ => Ok(()),
    };
    if same {
        if mode != Mode::Check {
            drop_pending()?;
        }
        return Ok(true);
    }
    let Some(old) = old else {
        return match mode {
            Mode::Check => {
                println!("missing: {shown} (write it with `genc snap` without `--check`)");
                Ok(false)
            }
            _ => {
                write(&snap.path, &snap.file())?;
                drop_pending()?;
                println!("new: {shown}");
                Ok(true)
            }
        };
    };
    print!("{}", diff(body(&old), new, &shown.to_string()));
    match mode {
        Mode::Check => Ok(false),
        Mode::Write => {
            write(&snap.pending(), &snap.file())?;
            println!(
                "changed: {shown} (the new text is in {}; `--accept` or `--review`)",
                snap.pending().display()
            );
            Ok(false)
        }
        Mode::Accept => {
            write(&snap.path, &snap.file())?;
            drop_pending()?;
            println!("accepted: {shown}");
            Ok(true)
        }
        Mode::Review => {
            print!("accept the change to {shown}? [y/N] ");
            let _ = std::io::stdout().flush();
            let mut line = String::new();
            answers.read_line(&mut line).map_err(|e| format!("cannot read the answer: {e}"))?;
            if matches!(line.trim(), "y" | "Y" | "yes") {
                write(&snap.path, &snap.file())?;
                drop_pending()?;
                println!("accepted: {shown}");
                Ok(true)
            } else {
                write(&snap.pending(), &snap.file())?;
                println!("kept: {shown} (the new text stays in {})", snap.pending().display());
                Ok(false)
            }
        }
    }
}

/// A unified diff of a snapshot's old and new text, three lines of context.
fn diff(old: &str, new: &str, name: &str) -> String {
    let (old, new) = (format!("{old}\n"), format!("{new}\n"));
    similar::TextDiff::from_lines(&old, &new)
        .unified_diff()
        .context_radius(3)
        .header(&format!("{name} (snapshot)"), &format!("{name} (now)"))
        .to_string()
}
