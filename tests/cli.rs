//! The `genc` program end to end: exit statuses, file errors as diagnostics, JSON output.

mod common;

use std::process::{Command, Output};

fn genc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_genc"))
        .args(args)
        .current_dir(common::root())
        .output()
        .unwrap_or_else(|e| panic!("cannot run genc: {e}"))
}

fn code(output: &Output) -> i32 {
    output.status.code().unwrap_or(-1)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn temp_file(name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("genc-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("{e}"));
    path
}

#[test]
fn every_spec_checks_and_is_formatted() {
    let specs: Vec<String> = common::gen_files("specs").iter().map(|p| p.display().to_string()).collect();
    let mut args = vec!["check"];
    args.extend(specs.iter().map(String::as_str));
    let out = genc(&args);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).lines().filter(|l| l.starts_with("ok: ")).count(), 20);
    assert!(!text(&out.stderr).contains("W0"), "a shipped spec has a warning: {}", text(&out.stderr));
    args[0] = "fmt";
    args.insert(1, "--check");
    let out = genc(&args);
    assert_eq!(code(&out), 0, "{}{}", text(&out.stdout), text(&out.stderr));
}

#[test]
fn syntax_errors_exit_1_with_coded_diagnostics() {
    let out = genc(&["check", "--color", "never", "tests/diagnostics/syntax/unclosed_call.gen"]);
    assert_eq!(code(&out), 1);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("E0002") && stderr.contains("expected `)` to close the call opened here"),
        "{stderr}"
    );
}

#[test]
fn file_problems_are_diagnostics_with_exit_2() {
    let missing = genc(&["check", "specs/no_such_spec.gen"]);
    assert_eq!(code(&missing), 2);
    assert!(text(&missing.stderr).contains("E0019"), "{}", text(&missing.stderr));

    let directory = genc(&["check", "specs"]);
    assert_eq!(code(&directory), 2);
    assert!(text(&directory.stderr).contains("it is a directory"));

    let binary = temp_file("binary.gen", &[0xff, 0xfe, 0x00, 0x81]);
    let out = genc(&["check", &binary.display().to_string()]);
    assert_eq!(code(&out), 2);
    assert!(text(&out.stderr).contains("E0020"));

    let huge = temp_file("huge.gen", &vec![b' '; 10 << 20]);
    let out = genc(&["check", &huge.display().to_string()]);
    assert_eq!(code(&out), 2);
    assert!(text(&out.stderr).contains("E0021"));

    let empty = temp_file("empty.gen", b"");
    let out = genc(&["check", &empty.display().to_string()]);
    assert_eq!(code(&out), 1);
    assert!(text(&out.stderr).contains("E0016"));
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(code(&genc(&["check"])), 2);
    assert_eq!(code(&genc(&["frobnicate"])), 2);
    assert_eq!(code(&genc(&["--version"])), 0);
    let help = genc(&["--help"]);
    assert_eq!(code(&help), 0);
    assert!(text(&help.stdout).contains("Exit status"));
}

#[test]
fn json_diagnostics_are_one_object_per_line() {
    let out =
        genc(&["check", "--message-format", "json", "tests/diagnostics/syntax/several_broken_items.gen"]);
    assert_eq!(code(&out), 1);
    let stdout = text(&out.stdout);
    let objects: Vec<serde_json::Value> =
        stdout.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect();
    assert_eq!(objects.len(), 3);
    let first = &objects[0];
    assert_eq!(first["code"], "E0001");
    assert_eq!(first["severity"], "error");
    assert_eq!(first["labels"][0]["line"], 3);
    assert_eq!(first["labels"][0]["primary"], true);
    assert!(first["rendered"].as_str().is_some_and(|r| r.contains("expected an expression")));
    assert_eq!(objects[1]["code"], "E0002");
    assert_eq!(objects[1]["labels"].as_array().map(Vec::len), Some(2));
}

#[test]
fn fmt_check_reports_unformatted_files_and_write_fixes_them() {
    let messy = temp_file("messy.gen", b"dims B,Z=64\nnet G(z:[B,Z])->[B,Z]{return z|>linear(Z)}\n");
    let path = messy.display().to_string();
    let out = genc(&["fmt", "--check", &path]);
    assert_eq!(code(&out), 1);
    assert!(text(&out.stdout).contains("not formatted"));
    assert_eq!(code(&genc(&["fmt", "--write", &path])), 0);
    assert_eq!(code(&genc(&["fmt", "--check", &path])), 0);
    let formatted = std::fs::read_to_string(&messy).unwrap_or_default();
    assert_eq!(formatted, "dims B, Z = 64\n\nnet G(z: [B, Z]) -> [B, Z] {\n    return z |> linear(Z)\n}\n");
}

#[test]
fn compile_emits_the_syntax_tree() {
    let out = genc(&["compile", "specs/vae.gen", "--emit", "ast"]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("(dims"));
}

#[test]
fn type_errors_exit_1_with_coded_diagnostics() {
    let path = temp_file(
        "bad_conv.gen",
        b"dims B, C = 1, H = 28, W = 28\nnet D(x: [B, C, H, W]) -> [B, 64, 14, 14] {\n    return x |> conv2d(64, kernel: 4, stride: 2)\n}\n",
    );
    let out = genc(&["check", "--color", "never", &path.display().to_string()]);
    assert_eq!(code(&out), 1);
    let err = text(&out.stderr);
    assert!(err.contains("E0107"), "{err}");
    assert!(err.contains("with `pad: 1` the output would be [B, 64, 14, 14]"), "{err}");
}

#[test]
fn set_overrides_a_bound_dim_and_says_so_when_it_breaks_a_constraint() {
    // Every dim derived from H follows it.
    let path = temp_file(
        "sized.gen",
        b"dims B, C = 1, H = 28, H2 = H / 2\nnet D(x: [B, C, H, H]) -> [B, 8, H2, H2] {\n    return x |> conv2d(8, kernel: 4, stride: 2, pad: 1)\n}\n",
    );
    let out = genc(&["summary", &path.display().to_string(), "--set", "H=32"]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("[B, 8, 16, 16]"), "{}", text(&out.stdout));
    let out = genc(&["check", "--color", "never", "specs/dcgan.gen", "--set", "H=30"]);
    assert_eq!(code(&out), 1);
    let err = text(&out.stderr);
    assert!(err.contains("H = 30 here (`--set`)") && err.contains("E0102"), "{err}");
    let free = genc(&["check", "--color", "never", "specs/dcgan.gen", "--set", "B=30"]);
    let err = text(&free.stderr);
    assert!(err.contains("`B` is a free dim") && err.contains("--set batch=30"), "{err}");
}

#[test]
fn a_warning_is_shown_and_the_spec_still_checks() {
    let path = temp_file(
        "bce_on_logits.gen",
        b"dims B, C = 1, H = 28, W = 28\nnet D(x: [B, C, H, W]) -> [B] = x |> flatten |> linear(1) |> reshape([B])\nloss d(x: [B, C, H, W]) = bce(D(x), ones([B]))\n",
    );
    let out = genc(&["check", "--color", "never", &path.display().to_string()]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("W0101") && err.contains("bce_logits"), "{err}");
    assert!(text(&out.stdout).starts_with("ok: "));
    // With a sigmoid, nothing to say.
    let fixed = temp_file(
        "bce_on_probabilities.gen",
        b"dims B, C = 1, H = 28, W = 28\nnet D(x: [B, C, H, W]) -> [B] = x |> flatten |> linear(1) |> sigmoid |> reshape([B])\nloss d(x: [B, C, H, W]) = bce(D(x), ones([B]))\n",
    );
    let out = genc(&["check", "--color", "never", &fixed.display().to_string()]);
    assert_eq!((code(&out), text(&out.stderr)), (0, String::new()));
}

#[test]
fn summary_prints_layers_shapes_and_counts() {
    let out = genc(&["summary", "specs/dcgan64.gen"]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(s.contains("trainable params: 3,576,704"), "{s}");
    assert!(s.contains("trainable params: 2,765,568"), "{s}");
    assert!(s.contains("G.up0.conv_transpose2d0"), "{s}");
}

#[test]
fn compile_emits_graph_typed_and_dot() {
    for (stage, needle) in [("graph", "matmul[tb]"), ("typed", ": [B, 500]"), ("dot", "digraph")] {
        let out = genc(&["compile", "specs/vae.gen", "--emit", stage]);
        assert_eq!(code(&out), 0, "{stage}: {}", text(&out.stderr));
        assert!(text(&out.stdout).contains(needle), "{stage} lacks {needle}");
    }
}

#[test]
fn set_overrides_params_and_rejects_unknown_names() {
    let ok = genc(&["check", "specs/wgan_gp.gen", "--set", "lambda=5"]);
    assert_eq!(code(&ok), 0, "{}", text(&ok.stderr));
    let typo = genc(&["check", "--color", "never", "specs/wgan_gp.gen", "--set", "lamda=5"]);
    assert_eq!(code(&typo), 1);
    let err = text(&typo.stderr);
    assert!(err.contains("E0120") && err.contains("did you mean `--set lambda=5`?"), "{err}");
    let wrong_kind = genc(&["check", "--color", "never", "specs/wgan_gp.gen", "--set", "n_critic=fast"]);
    assert_eq!(code(&wrong_kind), 1);
    assert!(text(&wrong_kind.stderr).contains("E0120"));
    let malformed = genc(&["check", "specs/wgan_gp.gen", "--set", "lambda"]);
    assert_eq!(code(&malformed), 2);
}

#[test]
fn train_writes_a_run_folder_on_real_data() {
    let out = std::env::temp_dir().join(format!("genc-train-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let run = genc(&[
        "train",
        "specs/vae.gen",
        "--set",
        "steps=8",
        "--set",
        // The spec's recon sample slices x_test[0:32] from a test batch of `batch` rows.
        "batch=32",
        "--out",
        &out.display().to_string(),
    ]);
    assert_eq!(code(&run), 0, "{}", text(&run.stderr));
    for file in ["config.yaml", "metrics.jsonl", "losses.png", "last.safetensors", "prior-0000008.png"] {
        assert!(out.join(file).is_file(), "{file} is missing: {}", text(&run.stderr));
    }
    let checkpoint =
        genc_runtime::checkpoint::load(&out.join("last.safetensors")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(checkpoint.step, 8);
    assert!(checkpoint.get("Enc.linear0.weight").is_some());
    let _ = std::fs::remove_dir_all(&out);
}

/// The width and height of a PNG, from its header.
fn png_size(path: &std::path::Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(bytes.len() > 24 && bytes[1..4] == *b"PNG", "{} is not a PNG", path.display());
    let word = |at: usize| u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    (word(16), word(20))
}

#[test]
fn sample_draws_a_grid_from_a_trained_run() {
    // DDPM with 4 diffusion steps and a narrow U-Net, trained for 2 steps.
    let dir = std::env::temp_dir().join(format!("genc-sample-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let spec = common::read(&common::root().join("specs/ddpm.gen"));
    let tiny = spec.replace("T = 1000, F = 64, E = 64", "T = 4, F = 4, E = 8");
    assert_ne!(spec, tiny, "the DDPM dims changed: update this test");
    let spec_path = dir.join("ddpm_tiny.gen");
    std::fs::write(&spec_path, tiny).unwrap_or_else(|e| panic!("{e}"));
    let config = dir.join("run.yaml");
    std::fs::write(&config, format!("spec: {}\nsteps: 2\nbatch: 4\n", spec_path.display()))
        .unwrap_or_else(|e| panic!("{e}"));
    let run_dir = dir.join("run");
    let run = run_dir.display().to_string();
    let train = genc(&["train", "--config", &config.display().to_string(), "--out", &run]);
    assert_eq!(code(&train), 0, "{}", text(&train.stderr));

    let sample = genc(&["sample", &run, "--n", "4"]);
    assert_eq!(code(&sample), 0, "{}", text(&sample.stderr));
    // 4 images of 28x28 in a 2x2 grid with 2-pixel padding.
    assert_eq!(png_size(&run_dir.join("sample-reverse.png")), (62, 62), "{}", text(&sample.stderr));
    let out = dir.join("nine.png");
    let args = ["sample", &run, "--sampler", "reverse", "--n", "9", "--seed", "3", "--out"];
    let sample = genc(&[&args[..], &[out.display().to_string().as_str()]].concat());
    assert_eq!(code(&sample), 0, "{}", text(&sample.stderr));
    assert_eq!(png_size(&out), (92, 92));
    // One PNG per sample, unpadded, whatever the folder's name.
    let folder = dir.join("pngs.d");
    let args = ["sample", &run, "--n", "3", "--format", "png-dir", "--out"];
    let sample = genc(&[&args[..], &[folder.display().to_string().as_str()]].concat());
    assert_eq!(code(&sample), 0, "{}", text(&sample.stderr));
    for k in 0..3 {
        assert_eq!(png_size(&folder.join(format!("00000{k}.png"))), (28, 28));
    }
    assert!(!folder.join("000003.png").exists());
    let bad = genc(&["sample", &run, "--format", "jpeg"]);
    assert_eq!(code(&bad), 2);
    assert!(text(&bad.stderr).contains("png-dir"), "{}", text(&bad.stderr));

    let unknown = genc(&["sample", "--color", "never", &run, "--sampler", "revers"]);
    assert_eq!(code(&unknown), 1);
    let err = text(&unknown.stderr);
    assert!(err.contains("E0952") && err.contains("did you mean `reverse`?"), "{err}");
    let missing = genc(&["sample", "--color", "never", &dir.join("no-such-run").display().to_string()]);
    assert_eq!(code(&missing), 2);
    assert!(text(&missing.stderr).contains("E0950"), "{}", text(&missing.stderr));
    let _ = std::fs::remove_dir_all(&dir);
}
