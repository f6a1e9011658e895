//! `genc snap`: every shipped spec snapped in two folders gives the same files, the same texts
//! as genc's own insta snapshots, and a clean `--check`; a changed spec fails `--check` with a
//! unified diff, leaves its new text in `.snap.new`, and `--review` / `--accept` take it.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn genc(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_genc"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run genc: {e}"))
}

fn genc_with_input(dir: &Path, args: &[&str], input: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_genc"))
        .args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run genc: {e}"));
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    }
    child.wait_with_output().unwrap_or_else(|e| panic!("{e}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A fresh folder holding a copy of every shipped spec.
fn copy_of_specs(name: &str) -> (PathBuf, Vec<String>) {
    let dir = std::env::temp_dir().join(format!("genc-snap-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let mut names = Vec::new();
    for spec in common::gen_files("specs") {
        let file = spec.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        std::fs::copy(&spec, dir.join(&file)).unwrap_or_else(|e| panic!("{e}"));
        names.push(file);
    }
    (dir, names)
}

fn snapshot_files(dir: &Path) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = std::fs::read_dir(dir.join("snapshots"))
        .unwrap_or_else(|e| panic!("{e}"))
        .filter_map(Result::ok)
        .map(|e| (e.file_name().to_string_lossy().into_owned(), common::read(&e.path())))
        .collect();
    files.sort();
    files
}

/// The text after an insta-format header.
fn body(file: &str) -> String {
    file.splitn(3, "---\n").nth(2).unwrap_or("").trim_end().to_string()
}

#[test]
fn every_spec_snaps_the_same_in_any_folder() {
    let (a, names) = copy_of_specs("a");
    let (b, _) = copy_of_specs("b");
    let stages = "ast,summary,typed,sampler";
    let mut args = vec!["snap", "--stage", stages];
    args.extend(names.iter().map(String::as_str));
    let first = genc(&a, &args);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first.stderr));
    assert_eq!(text(&first.stdout).lines().filter(|l| l.starts_with("new: ")).count(), 4 * names.len());
    // Absolute paths from another working directory.
    let absolute: Vec<String> = names.iter().map(|n| b.join(n).display().to_string()).collect();
    let mut args_b = vec!["snap", "--stage", stages];
    args_b.extend(absolute.iter().map(String::as_str));
    let second = genc(&std::env::temp_dir(), &args_b);
    assert_eq!(second.status.code(), Some(0), "{}", text(&second.stderr));
    let (files_a, files_b) = (snapshot_files(&a), snapshot_files(&b));
    assert_eq!(files_a.len(), 4 * names.len());
    assert!(files_a == files_b, "the snapshots depend on the folder or the run");
    // Snapping again changes nothing.
    args[0] = "snap";
    args.insert(1, "--check");
    let check = genc(&a, &args);
    assert_eq!(check.status.code(), Some(0), "{}{}", text(&check.stdout), text(&check.stderr));
    // The same texts genc's own test suite keeps (tests/snapshots, reviewed there).
    for stage in ["typed", "summary"] {
        for name in ["vae", "dcgan", "pixelcnn"] {
            let ours = common::read(&a.join(format!("snapshots/{name}.{stage}.snap")));
            let insta = common::read(&common::root().join(format!("tests/snapshots/{stage}@{name}.snap")));
            assert_eq!(body(&ours), body(&insta), "{name}.{stage}");
        }
    }
    let _ = std::fs::remove_dir_all(&a);
    let _ = std::fs::remove_dir_all(&b);
}

#[test]
fn a_changed_spec_fails_the_check_and_can_be_reviewed() {
    let dir = std::env::temp_dir().join(format!("genc-snap-change-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let spec = common::read(&common::root().join("specs/vae.gen"));
    std::fs::write(dir.join("vae.gen"), &spec).unwrap_or_else(|e| panic!("{e}"));
    let args = ["snap", "vae.gen", "--stage", "summary,program"];
    assert_eq!(genc(&dir, &args).status.code(), Some(0));
    let snapshot = dir.join("snapshots/vae.summary.snap");
    let before = common::read(&snapshot);
    assert!(
        before.starts_with("---\nsource: vae.gen\nexpression: \"genc summary vae.gen\"\n---\n"),
        "{before}"
    );

    let wider = spec.replace("N = 500", "N = 600");
    assert_ne!(wider, spec, "specs/vae.gen changed: update this test");
    std::fs::write(dir.join("vae.gen"), &wider).unwrap_or_else(|e| panic!("{e}"));
    let check = genc(&dir, &["snap", "--check", "vae.gen", "--stage", "summary,program"]);
    assert_eq!(check.status.code(), Some(1));
    let out = text(&check.stdout);
    assert!(
        out.contains("@@")
            && out.contains("-  Enc.linear0  [B, 500]")
            && out.contains("+  Enc.linear0  [B, 600]"),
        "{out}"
    );
    assert!(!dir.join("snapshots/vae.summary.snap.new").exists(), "--check writes nothing");

    let plain = genc(&dir, &args);
    assert_eq!(plain.status.code(), Some(1));
    assert!(dir.join("snapshots/vae.summary.snap.new").exists());
    assert_eq!(common::read(&snapshot), before, "a changed snapshot is kept until accepted");
    // Review: accept the summary, refuse the program.
    let review =
        genc_with_input(&dir, &["snap", "--review", "vae.gen", "--stage", "summary,program"], "y\nn\n");
    assert_eq!(review.status.code(), Some(1), "{}", text(&review.stdout));
    assert!(common::read(&snapshot).contains("[B, 600]"));
    assert!(!dir.join("snapshots/vae.summary.snap.new").exists());
    assert!(dir.join("snapshots/vae.program.snap.new").exists());
    let accept = genc(&dir, &["snap", "--accept", "vae.gen", "--stage", "summary,program"]);
    assert_eq!(accept.status.code(), Some(0));
    assert!(!dir.join("snapshots/vae.program.snap.new").exists());
    assert_eq!(
        genc(&dir, &["snap", "--check", "vae.gen", "--stage", "summary,program"]).status.code(),
        Some(0)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
