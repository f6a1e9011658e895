//! Whole `genc train` runs as a user has them: resumed runs continue exactly, Ctrl-C saves
//! and stops, a killed run keeps its last checkpoint whole, a NaN stops the run naming the
//! op that made it. They use a small autoencoder (Adam state, an EMA, a random draw per step)
//! on the real Fashion-MNIST files.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use genc_runtime::checkpoint::{self, Checkpoint};

const TINY: &str = r#"// A small denoising autoencoder for tests of whole runs.
dims B, C = 1, H = 28, W = 28, N = 32

net AE(x: [B, C, H, W]) -> [B, C, H, W] {
    let h = x |> flatten |> linear(N) |> tanh
    return reshape(h |> linear(C * H * W) |> sigmoid, [B, C, H, W])
}

loss rec(x: [B, C, H, W]) {
    let noise ~ normal([B, C, H, W])
    return bce(AE(x + 0.1 * noise), x)
}

train {
    data x = fashion_mnist(split: "train", range: [0, 1])
    batch B = 8
    steps 6
    optimizer opt = adam(AE, lr: 1e-3)
    ema AE(decay: 0.9)
    step {
        minimize rec(x) with opt
    }
    log every 1 steps
    checkpoint every 1 steps
}
"#;

/// A fresh folder for one test, holding `spec.gen` with `text`.
fn workspace(test: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("genc-runs-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir.join("spec.gen"), text).unwrap_or_else(|e| panic!("{e}"));
    dir
}

fn genc_command(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_genc"));
    c.args(args).current_dir(common::root());
    c
}

fn genc(args: &[&str]) -> Output {
    genc_command(args).output().unwrap_or_else(|e| panic!("cannot run genc: {e}"))
}

fn ok(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    stderr
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn load(dir: &Path) -> Checkpoint {
    checkpoint::load(&dir.join("last.safetensors")).unwrap_or_else(|e| panic!("{e}"))
}

/// The metrics file without its clock (`time`, `steps_per_s`): a resumed file must equal an
/// uninterrupted one line for line. Every line must carry the clock.
fn metrics(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap_or_else(|e| panic!("{e}"));
    let mut out = String::new();
    for line in text.lines() {
        let mut value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let object = value.as_object_mut().unwrap_or_else(|| panic!("not an object: {line}"));
        for key in ["time", "steps_per_s"] {
            let clock = object.remove(key).and_then(|v| v.as_f64());
            assert!(clock.is_some_and(|t| t >= 0.0), "no `{key}` in {line}");
        }
        out += &format!("{value}\n");
    }
    out
}

/// The `eval.*` entries of a run's metrics: (step, value, examples scored).
fn evals(dir: &Path) -> Vec<(u64, f64, f64)> {
    let text = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap_or_else(|e| panic!("{e}"));
    text.lines()
        .filter_map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).ok()?;
            let o = v.as_object()?;
            let (name, value) =
                o.iter().find(|(k, _)| k.starts_with("eval.") && !k.ends_with(".examples"))?;
            let examples = o.get(&format!("{name}.examples"))?.as_f64()?;
            Some((o.get("step")?.as_u64()?, value.as_f64()?, examples))
        })
        .collect()
}

/// The tiny autoencoder with a frozen rate, the test set, an eval whose loss draws noise and a
/// sample entry of the first four test images.
fn with_test_set(batch: u64) -> String {
    TINY.replace("batch B = 8", &format!("batch B = {batch}")).replace("lr: 1e-3", "lr: 0.0").replace(
        "    log every 1 steps",
        "    data x_test = fashion_mnist(split: \"test\", range: [0, 1])\n    log every 1 steps\n    \
             eval every 2 steps: rec(x_test)\n    sample first every 100 steps: grid(x_test[0:4])",
    )
}

#[test]
fn an_eval_scores_every_test_example_once_with_fresh_noise_per_step() {
    // 10,000 test images in batches of 64: 156 full batches and one of 16.
    let ws = workspace("eval", &with_test_set(64));
    let (a, b) = (ws.join("a"), ws.join("b"));
    for run in [&a, &b] {
        ok(&genc(&["train", &s(&ws.join("spec.gen")), "--set", "steps=4", "--out", &s(run)]));
    }
    let (first, second) = (evals(&a), evals(&b));
    assert_eq!(first.len(), 2, "{first:?}");
    for (step, value, examples) in &first {
        assert_eq!(*examples, 10_000.0, "step {step} scored {examples} examples");
        assert!(value.is_finite());
    }
    // The same run gives the same evals; the weights are frozen (lr 0), so evals at steps 2
    // and 4 differ only by their noise: it is fresh per step.
    assert_eq!(first, second);
    assert_ne!(first[0].1, first[1].1, "evals at steps 2 and 4 drew the same noise");
    let _ = std::fs::remove_dir_all(&ws);
}

#[test]
fn samples_leave_as_npy_arrays_of_the_first_test_images_in_order() {
    let ws = workspace("npy", &with_test_set(8));
    let run = ws.join("run");
    ok(&genc(&["train", &s(&ws.join("spec.gen")), "--set", "steps=1", "--out", &s(&run)]));
    let npy = ws.join("first.npy");
    ok(&genc(&["sample", &s(&run), "--sampler", "first", "--n", "4", "--out", &s(&npy)]));
    let bytes = std::fs::read(&npy).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = String::from_utf8_lossy(&bytes[10..10 + header_len]).into_owned();
    assert!(header.contains("'descr': '<f4'") && header.contains("'shape': (4, 1, 28, 28)"), "{header}");
    let values: Vec<f32> = bytes[10 + header_len..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let test = genc_runtime::data::Dataset::fashion_mnist(genc_runtime::data::Split::Test, None)
        .unwrap_or_else(|e| panic!("{e}"));
    for i in 0..4 {
        let got = &values[i * 784..(i + 1) * 784];
        let want = test.image(i);
        assert!(got.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-6), "sample {i} is not test image {i}");
    }
    // An output genc cannot write is a usage error that writes nothing.
    let jpg = ws.join("first.jpg");
    let refused = genc(&["sample", &s(&run), "--sampler", "first", "--n", "4", "--out", &s(&jpg)]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("E0958"));
    assert!(!jpg.exists());
    let _ = std::fs::remove_dir_all(&ws);
}

#[test]
fn a_resumed_run_continues_exactly() {
    let ws = workspace("resume", TINY);
    let spec = s(&ws.join("spec.gen"));
    let (whole, split) = (ws.join("whole"), ws.join("split"));
    ok(&genc(&["train", &spec, "--out", &s(&whole)]));
    ok(&genc(&["train", &spec, "--set", "steps=3", "--out", &s(&split)]));
    assert_eq!(load(&split).step, 3);
    let resumed = ok(&genc(&["train", "--resume", &s(&split), "--set", "steps=6"]));
    assert!(resumed.contains("resuming") && resumed.contains("at step 3 of 6"), "{resumed}");

    let (a, b) = (load(&whole), load(&split));
    assert_eq!((a.step, b.step), (6, 6));
    assert_eq!(a.data_state, b.data_state);
    assert!(a.get("ema.AE.linear0.weight").is_some() && a.get("optim.opt.v.AE.linear1.bias").is_some());
    assert_eq!(a.tensors.keys().collect::<Vec<_>>(), b.tensors.keys().collect::<Vec<_>>());
    for (name, t) in &a.tensors {
        // Bit for bit: same weights, Adam moments, EMA; the same batches and noise.
        assert!(t.data == b.tensors[name].data, "`{name}` differs after resuming");
    }
    assert_eq!(a.metadata, b.metadata);
    assert_eq!(metrics(&whole), metrics(&split));
    assert!(split.join("losses.png").is_file());

    // Nothing left to do is not an error; a changed spec is refused.
    let again = ok(&genc(&["train", "--resume", &s(&split)]));
    assert!(again.contains("already at step 6"), "{again}");
    std::fs::write(ws.join("spec.gen"), TINY.replace("lr: 1e-3", "lr: 2e-3"))
        .unwrap_or_else(|e| panic!("{e}"));
    let changed = genc(&["train", "--resume", &s(&split), "--set", "steps=8"]);
    assert_eq!(changed.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&changed.stderr).contains("changed since the checkpoint"));
    let _ = std::fs::remove_dir_all(&ws);
}

#[test]
fn resume_errors_say_what_is_wrong() {
    let ws = workspace("resume-errors", TINY);
    let missing = genc(&["train", "--resume", &s(&ws.join("nope"))]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("not a run folder"));
    // A run folder whose checkpoint is damaged is refused with the checkpoint's own error.
    let run = ws.join("run");
    ok(&genc(&["train", &s(&ws.join("spec.gen")), "--set", "steps=2", "--out", &s(&run)]));
    let path = run.join("last.safetensors");
    let mut bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{e}"));
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("{e}"));
    let corrupt = genc(&["train", "--resume", &s(&run), "--set", "steps=4"]);
    assert_eq!(corrupt.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&corrupt.stderr).contains("E0922"));
    let _ = std::fs::remove_dir_all(&ws);
}

/// Starts a long run of the tiny spec in the background.
fn long_run(spec: &Path, out: &Path) -> std::process::Child {
    genc_command(&["train", &s(spec), "--set", "steps=100000", "--out", &s(out)])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run genc: {e}"))
}

/// Waits until the run has logged `steps` steps.
fn wait_for_steps(out: &Path, steps: usize) {
    let start = Instant::now();
    while std::fs::read_to_string(out.join("metrics.jsonl")).map_or(0, |m| m.lines().count()) < steps {
        assert!(start.elapsed() < Duration::from_secs(120), "the run did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn signal(child: &std::process::Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap_or_else(|e| panic!("cannot run kill: {e}"));
    assert!(status.success());
}

#[test]
fn ctrl_c_saves_a_checkpoint_and_the_run_resumes() {
    let ws = workspace("interrupt", &TINY.replace("checkpoint every 1 steps", "checkpoint every 1000 steps"));
    let out = ws.join("run");
    let child = long_run(&ws.join("spec.gen"), &out);
    wait_for_steps(&out, 3);
    signal(&child, "INT");
    let output = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("genc train --resume"), "{stderr}");
    let stopped = load(&out).step;
    assert!(stopped >= 3, "stopped at {stopped}");
    let resumed = ok(&genc(&["train", "--resume", &s(&out), "--set", &format!("steps={}", stopped + 2)]));
    assert!(resumed.contains(&format!("at step {stopped} of")), "{resumed}");
    assert_eq!(load(&out).step, stopped + 2);
    let _ = std::fs::remove_dir_all(&ws);
}

#[test]
fn a_killed_run_keeps_its_last_checkpoint_whole() {
    let ws = workspace("kill", TINY);
    let out = ws.join("run");
    // Killed at different moments, a checkpoint written every step is always either the old
    // or the new one, never a torn file; the next run resumes from it.
    for (round, wait_ms) in [0u64, 37, 113].into_iter().enumerate() {
        let mut child = if round == 0 {
            long_run(&ws.join("spec.gen"), &out)
        } else {
            genc_command(&["train", "--resume", &s(&out), "--set", "steps=100000"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("{e}"))
        };
        wait_for_steps(&out, 3 * (round + 1));
        std::thread::sleep(Duration::from_millis(wait_ms));
        signal(&child, "KILL");
        let _ = child.wait();
        let ck = load(&out);
        assert!(ck.step >= 2, "round {round}: step {}", ck.step);
        assert!(ck.get("AE.linear0.weight").is_some());
    }
    let _ = std::fs::remove_dir_all(&ws);
}

#[test]
fn a_nan_stops_the_run_naming_the_op_and_keeps_the_checkpoint() {
    // log of a negative number from step 1 on: the loss is NaN.
    let bad = TINY.replace("return bce(AE(x + 0.1 * noise), x)", "return mean(log(AE(x + 0.1 * noise) - 2))");
    let ws = workspace("nan", &bad);
    let out = ws.join("run");
    let run = genc(&["train", &s(&ws.join("spec.gen")), "--out", &s(&out), "--color", "never"]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("E0940") && stderr.contains("the loss `rec` is not finite"), "{stderr}");
    assert!(stderr.contains("the first non-finite value") && stderr.contains("log"), "{stderr}");
    assert!(stderr.contains("before the first checkpoint"), "{stderr}");
    assert!(!out.join("last.safetensors").exists());
    let _ = std::fs::remove_dir_all(&ws);
}

#[test]
fn a_folder_of_png_images_trains() {
    let spec = TINY.replace(
        r#"data x = fashion_mnist(split: "train", range: [0, 1])"#,
        r#"data x = folder(path: "images", size: 28, channels: 1, range: [0, 1], flip: true)"#,
    );
    let ws = workspace("folder", &spec);
    let images = ws.join("images");
    std::fs::create_dir_all(&images).unwrap_or_else(|e| panic!("{e}"));
    for k in 0..12 {
        // 32×32 gradients, resized to 28×28 on load.
        let pixels: Vec<f32> = (0..32 * 32).map(|i| ((i + 37 * k) % 97) as f32 / 96.0).collect();
        let path = images.join(format!("img{k:02}.png"));
        genc_runtime::images::write_grid(&path, &pixels, [1, 1, 32, 32], 1, (0.0, 1.0))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    // The run config's `data` names the folder (the spec's `path` is relative to where genc runs).
    let out = ws.join("run");
    let run = ok(&genc(&[
        "train",
        &s(&ws.join("spec.gen")),
        "--set",
        "steps=3",
        "--set",
        &format!("data={}", s(&images)),
        "--out",
        &s(&out),
    ]));
    assert!(run.contains("done: steps 1..=3"), "{run}");
    assert_eq!(load(&out).step, 3);
    let _ = std::fs::remove_dir_all(&ws);
}

/// An IDX file: the magic number (unsigned bytes, `dims.len()` axes), the extents, the values.
fn idx_file(path: &Path, dims: &[u32], values: &[u8]) {
    let mut bytes = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        bytes.extend(d.to_be_bytes());
    }
    bytes.extend(values);
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn a_label_beyond_the_classes_stops_the_run_at_the_op_that_reads_it() {
    // Ten classes by the spec, which checks clean against Fashion-MNIST; this data set has a
    // label 12, which one_hot would turn into a zero row.
    let spec = r#"dims B, C = 1, H = 28, W = 28, K = 10

net Cls(x: [B, C, H, W]) -> [B, K] = x |> flatten |> linear(K)

loss ce(x: [B, C, H, W], y: int[B]) = -mean(sum(one_hot(y, K) * log_softmax(Cls(x), 1), over: [K]))

train {
    data (x, y) = fashion_mnist(split: "train", labels: true)
    batch B = 4
    steps 4
    optimizer opt = adam([Cls], lr: 1e-3)
    step {
        minimize ce(x, y) with opt
    }
}
"#;
    let ws = workspace("labels", spec);
    let data = ws.join("data");
    std::fs::create_dir_all(&data).unwrap_or_else(|e| panic!("{e}"));
    idx_file(&data.join("train-images-idx3-ubyte"), &[8, 28, 28], &[128; 8 * 28 * 28]);
    idx_file(&data.join("train-labels-idx1-ubyte"), &[8], &[12; 8]);
    let run = genc(&[
        "train",
        &s(&ws.join("spec.gen")),
        "--set",
        &format!("data={}", s(&data)),
        "--out",
        &s(&ws.join("run")),
    ]);
    let err = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{err}");
    for part in
        ["E0944", "label 12 in `y` is outside the 10 classes of `one_hot`", "one_hot(y, K)", "give `one_hot`"]
    {
        assert!(err.contains(part), "`{part}` missing from:\n{err}");
    }
    let _ = std::fs::remove_dir_all(&ws);
}

#[test]
fn a_profiled_run_says_where_a_step_goes() {
    let ws = workspace("profile", TINY);
    let run = ws.join("run");
    let stderr =
        ok(&genc(&["train", &s(&ws.join("spec.gen")), "--set", "steps=3", "--profile", "--out", &s(&run)]));
    let profile = std::fs::read_to_string(run.join("profile.md")).unwrap_or_else(|e| panic!("{e}"));
    assert!(stderr.contains(profile.trim()), "the table is printed too:\n{stderr}");
    assert!(profile.contains("2 steps (the first step is not timed)"), "{profile}");
    // A matmul per linear layer and its gradients, fused element-wise kernels, the optimizer.
    for work in
        ["| matmul", "| fused element-wise |", "| optimizer update |", "| data feed |", "| **total** |"]
    {
        assert!(profile.contains(work), "no `{work}` row in\n{profile}");
    }
    let _ = std::fs::remove_dir_all(&ws);
}

#[test]
fn a_run_without_a_terminal_prints_progress_between_log_lines() {
    let ws = workspace("heartbeat", TINY);
    let run = ws.join("run");
    let out =
        genc_command(&["train", &s(&ws.join("spec.gen")), "--set", "log_every=1000", "--out", &s(&run)])
            .env("GENC_PROGRESS_SECS", "0")
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
    let stderr = ok(&out);
    // No log line is due before the last step; the heartbeat reports every step.
    for step in 1..=6 {
        assert!(stderr.contains(&format!("step {step}/6 ")), "no progress line for step {step}:\n{stderr}");
    }
    let _ = std::fs::remove_dir_all(&ws);
}

#[test]
fn weights_leave_a_run_without_its_training_state() {
    let ws = workspace("weights", TINY);
    let run = ws.join("run");
    ok(&genc(&["train", &s(&ws.join("spec.gen")), "--set", "steps=2", "--out", &s(&run)]));
    let file = ws.join("weights.safetensors");
    ok(&genc(&["weights", &s(&run), "--out", &s(&file)]));
    let (ck, weights) = (load(&run), checkpoint::load(&file).unwrap_or_else(|e| panic!("{e}")));
    assert!(weights.tensors.keys().all(|k| !k.starts_with("optim.") && !k.starts_with("ema.")));
    // The run keeps an EMA of AE: its averages take the raw weights' place.
    for name in ["AE.linear0.weight", "AE.linear1.bias"] {
        let ema = ck.get(&format!("ema.{name}")).unwrap_or_else(|| panic!("no ema.{name}"));
        assert!(weights.get(name).is_some_and(|w| w.data == ema.data), "{name} is not the EMA copy");
    }
    assert_eq!(weights.step, 2);
    let missing = genc(&["weights", &s(&ws.join("nope")), "--out", &s(&file)]);
    assert_eq!(missing.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(&ws);
}
