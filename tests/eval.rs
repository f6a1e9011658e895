//! `genc eval`: the metric's self-test — real images score far closer to the test set than
//! blurred ones, and blurred ones than noise — its refusals, and a run's own evals.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use genc_runtime::data::{Dataset, Split};

fn genc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_genc"))
        .args(args)
        .current_dir(common::root())
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .output()
        .unwrap_or_else(|e| panic!("cannot run genc: {e}"))
}

fn write(dir: &Path, name: &str, images: &[f32]) -> PathBuf {
    let path = dir.join(name);
    genc_runtime::npy::write_f32(&path, images, &[images.len() / 784, 1, 28, 28])
        .unwrap_or_else(|e| panic!("{e}"));
    path
}

/// The metrics of `file` (values in [0, 1], or the `--range` in `extra`) against the first
/// 600 test images, as JSON.
fn eval(file: &Path, extra: &[&str]) -> serde_json::Value {
    let path = file.display().to_string();
    let args =
        ["eval", "--images", &path, "--device", "cpu", "--reference", "600", "--kid-size", "200", "--json"];
    let out = genc(&[&args[..], extra].concat());
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// A 5-pixel box blur along rows and columns.
fn blur(images: &[f32]) -> Vec<f32> {
    let mut out = images.to_vec();
    for image in out.chunks_exact_mut(784) {
        for pass in 0..2 {
            let src = image.to_vec();
            for y in 0..28usize {
                for x in 0..28usize {
                    let mut sum = 0.0;
                    for d in -2i32..=2 {
                        let (yy, xx) =
                            if pass == 0 { (y as i32, x as i32 + d) } else { (y as i32 + d, x as i32) };
                        if (0..28).contains(&yy) && (0..28).contains(&xx) {
                            sum += src[yy as usize * 28 + xx as usize];
                        }
                    }
                    image[y * 28 + x] = sum / 5.0;
                }
            }
        }
    }
    out
}

#[test]
fn real_images_score_closer_than_blurred_ones_and_blurred_than_noise() {
    let dir = std::env::temp_dir().join(format!("genc-eval-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let train = Dataset::fashion_mnist(Split::Train, None).unwrap_or_else(|e| panic!("{e}")).limit(600);
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let noise: Vec<f32> = (0..train.images.len())
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32
        })
        .collect();
    let real = eval(&write(&dir, "real.npy", &train.images), &[]);
    let blurred = eval(&write(&dir, "blurred.npy", &blur(&train.images)), &[]);
    let noisy = eval(&write(&dir, "noise.npy", &noise), &[]);
    // The same images in [-1, 1], said so with `--range -1,1` (a leading minus is a value).
    let signed: Vec<f32> = train.images.iter().map(|v| 2.0 * v - 1.0).collect();
    let signed = eval(&write(&dir, "signed.npy", &signed), &["--range", "-1,1"]);
    let fd = |v: &serde_json::Value| v["frechet_distance"].as_f64().unwrap_or(f64::NAN);
    let score = |v: &serde_json::Value| v["classifier_score"].as_f64().unwrap_or(f64::NAN);
    assert!(fd(&real) * 10.0 < fd(&blurred) && fd(&blurred) < fd(&noisy), "{real}\n{blurred}\n{noisy}");
    assert!(score(&real) > score(&blurred) && score(&blurred) > score(&noisy));
    assert!((fd(&signed) - fd(&real)).abs() < 1e-3 * fd(&real), "{signed}\n{real}");
    assert_eq!(real["modes_covered"], 10);
    assert_eq!(real["images"], 600);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn eval_refuses_what_it_cannot_score() {
    let dir = std::env::temp_dir().join(format!("genc-eval-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let rgb = dir.join("rgb.npy");
    genc_runtime::npy::write_f32(&rgb, &[0.0; 2 * 3 * 8 * 8], &[2, 3, 8, 8])
        .unwrap_or_else(|e| panic!("{e}"));
    let out = genc(&["eval", "--images", &rgb.display().to_string()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("28x28 grayscale"));
    let missing = genc(&["eval", "--images", &dir.join("nope.npy").display().to_string()]);
    assert_eq!(missing.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(&dir);
}

const TINY_GENERATOR: &str = r#"// A tiny generator for tests of `genc eval RUN`.
dims B, C = 1, H = 28, W = 28, Z = 8

net G(z: [B, Z]) -> [B, C, H, W] {
    return reshape(z |> linear(C * H * W) |> sigmoid, [B, C, H, W])
}

loss rec(x: [B, C, H, W], z: [B, Z]) = mse(G(z), x)

sampler prior(n: int = 16) -> [n, C, H, W] {
    return G(normal([n, Z]))
}

train {
    data x = fashion_mnist(split: "train", range: [0, 1])
    data x_test = fashion_mnist(split: "test", range: [0, 1])
    batch B = 400
    steps 2
    optimizer opt = adam(G, lr: 1e-3)
    step {
        minimize rec(x, normal([B, Z])) with opt
    }
    eval mse every 2 steps: rec(x_test, normal([B, Z]))
    eval psnr every 2 steps: psnr(G(zeros([B, Z])), x_test)
}
"#;

#[test]
fn eval_draws_the_samples_of_a_run_itself() {
    let dir = std::env::temp_dir().join(format!("genc-eval-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let spec = dir.join("tiny.gen");
    std::fs::write(&spec, TINY_GENERATOR).unwrap_or_else(|e| panic!("{e}"));
    let run = dir.join("run");
    let trained = genc(&[
        "train",
        &spec.display().to_string(),
        "--set",
        "device=cpu",
        "--out",
        &run.display().to_string(),
    ]);
    assert_eq!(trained.status.code(), Some(0), "{}", String::from_utf8_lossy(&trained.stderr));
    let args = ["--n", "30", "--device", "cpu", "--reference", "100", "--kid-size", "20", "--json"];
    let out = genc(&[&["eval", &run.display().to_string()][..], &args[..]].concat());
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report["images"], 30);
    assert!(report["frechet_distance"].as_f64().is_some_and(|d| d > 0.0), "{report}");
    assert_eq!(report["class_histogram"].as_array().map(|h| h.len()), Some(10));
    // The spec's evals on the last checkpoint: the values `genc train` logged at that step.
    assert_eq!(report["step"], 2);
    let logged = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap_or_else(|e| panic!("{e}"));
    let last = |key: &str| {
        logged
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| v.get(key).cloned())
            .next_back()
            .unwrap_or_else(|| panic!("no {key} in {logged}"))
    };
    let evals = report["evals"].as_array().unwrap_or_else(|| panic!("no evals in {report}"));
    let names: Vec<_> = evals.iter().map(|e| e["name"].as_str().unwrap_or("")).collect();
    assert_eq!(names, ["mse", "psnr"]);
    for e in evals {
        assert_eq!(e["examples"], 10_000, "{e}");
        let name = e["name"].as_str().unwrap_or("");
        assert_eq!(e["value"], last(&format!("eval.{name}")), "{name}: genc eval against genc train");
    }
    let psnr = evals[1]["value"].as_f64().unwrap_or(f64::NAN);
    assert!((3.0..30.0).contains(&psnr), "psnr {psnr} dB of an untrained generator");
    // `--n 0`: the evals alone.
    let only = genc(&["eval", &run.display().to_string(), "--n", "0", "--device", "cpu", "--json"]);
    assert_eq!(only.status.code(), Some(0), "{}", String::from_utf8_lossy(&only.stderr));
    let only: serde_json::Value = serde_json::from_slice(&only.stdout).unwrap_or_else(|e| panic!("{e}"));
    assert!(only.get("images").is_none() && only["evals"].as_array().is_some(), "{only}");
    let both = genc(&["eval", &run.display().to_string(), "--images", "x.npy"]);
    assert_eq!(both.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(&dir);
}
