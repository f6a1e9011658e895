//! Checkpoints: round trip, atomic saves (a leftover `.tmp`, a failed save and a writer killed
//! mid-write all leave the previous checkpoint intact), damaged files refused without a panic
//! (random truncations and bit flips), foreign files, and the spec-mismatch report.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use genc_runtime::checkpoint::{
    self, Checkpoint, CheckpointError, FORMAT_VERSION, Tensor, ema_name, optim_name, temp_path,
};
use miette::Diagnostic;
use safetensors::{Dtype, tensor::TensorView};

/// A fresh empty folder under the system temp dir, unique to this test and process.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("genc-checkpoint-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch folder");
    dir
}

fn tensor(shape: &[usize], f: impl Fn(usize) -> f32) -> Tensor {
    let n = shape.iter().product();
    Tensor::new(shape.to_vec(), (0..n).map(f).collect()).expect("lengths agree")
}

/// A small checkpoint of a DCGAN-like run: parameters, a buffer, Adam state, EMA copies.
fn sample(step: u64) -> Checkpoint {
    let mut c = Checkpoint {
        step,
        epoch: step / 10,
        spec_hash: "9f2c01d4".into(),
        data_state: format!(r#"{{"epoch":{},"position":{},"seed":7}}"#, step / 10, step * 64 % 60000),
        ..Checkpoint::default()
    };
    let s = step as f32;
    c.insert("G.linear0.weight", tensor(&[12, 5], |i| i as f32 * 0.25 - s));
    c.insert("G.linear0.bias", tensor(&[12], |i| -(i as f32) + s));
    c.insert("G.batch_norm0.running_mean", tensor(&[3], |_| 0.5));
    c.insert("D.conv2d0.weight", tensor(&[2, 1, 3, 3], |i| (i as f32).sin()));
    c.insert(optim_name("opt_d", "m", "D.conv2d0.weight"), tensor(&[2, 1, 3, 3], |i| i as f32 * 1e-3));
    c.insert(optim_name("opt_d", "v", "D.conv2d0.weight"), tensor(&[2, 1, 3, 3], |i| i as f32 * 1e-6));
    c.insert(ema_name("G.linear0.weight"), tensor(&[12, 5], |i| i as f32 * 0.2));
    c.insert("scalar", tensor(&[], |_| 3.5));
    c.insert("empty", tensor(&[0, 4], |_| 0.0));
    c.insert(
        "specials",
        Tensor { shape: vec![4], data: vec![f32::INFINITY, -0.0, f32::MIN_POSITIVE, f32::MAX] },
    );
    c.metadata.insert("spec".into(), "specs/dcgan.gen".into());
    c
}

fn code(e: &CheckpointError) -> String {
    e.code().map(|c| c.to_string()).unwrap_or_default()
}

fn load_err(path: &Path) -> CheckpointError {
    match checkpoint::load(path) {
        Ok(c) => panic!("expected an error, loaded step {}", c.step),
        Err(e) => e,
    }
}

#[test]
fn round_trip() {
    let dir = scratch("round-trip");
    let path = dir.join("checkpoint.safetensors");
    let c = sample(42);
    checkpoint::save(&path, &c).expect("saves");
    let back = checkpoint::load(&path).expect("loads");
    assert_eq!(back, c);
    assert_eq!(back.get("optim.opt_d.m.D.conv2d0.weight").map(|t| t.shape.clone()), Some(vec![2, 1, 3, 3]));
    assert!(back.get("ema.G.linear0.weight").is_some());
    assert!(!temp_path(&path).exists(), "the .tmp is renamed away");

    // NaN survives bit for bit (PartialEq cannot say so).
    let mut nan = Checkpoint::default();
    nan.insert("x", Tensor { shape: vec![2], data: vec![f32::NAN, -f32::NAN] });
    checkpoint::save(&path, &nan).expect("saves");
    let back = checkpoint::load(&path).expect("loads");
    let bits: Vec<u32> = back.tensors["x"].data.iter().map(|x| x.to_bits()).collect();
    assert_eq!(bits, [f32::NAN.to_bits(), (-f32::NAN).to_bits()]);

    // A relative path in the current folder (its parent is "").
    let bytes = checkpoint::to_bytes(&c).expect("serialises");
    assert_eq!(checkpoint::from_bytes(Path::new("x"), &bytes).expect("parses"), c);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_file_is_plain_safetensors_with_genc_metadata() {
    let bytes = checkpoint::to_bytes(&sample(3)).expect("serialises");
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).expect("safetensors reads it");
    let meta = header.metadata().clone().expect("metadata");
    assert_eq!(meta["format"], "genc-checkpoint");
    assert_eq!(meta["format_version"], FORMAT_VERSION.to_string());
    assert_eq!((meta["step"].as_str(), meta["epoch"].as_str()), ("3", "0"));
    assert_eq!(meta["spec_hash"], "9f2c01d4");
    assert!(meta["data_state"].starts_with("{\"epoch\":0"));
    assert_eq!(meta["spec"], "specs/dcgan.gen");
    assert_eq!(meta["checksum"].len(), 16);
    let file = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors reads it");
    let w = file.tensor("G.linear0.weight").expect("by its table name");
    assert_eq!((w.dtype(), w.shape()), (Dtype::F32, &[12usize, 5][..]));
}

#[test]
fn a_leftover_tmp_does_not_matter() {
    let dir = scratch("leftover");
    let path = dir.join("checkpoint.safetensors");
    checkpoint::save(&path, &sample(1)).expect("saves");
    // A crash while writing step 2 left half a file behind.
    let half = checkpoint::to_bytes(&sample(2)).expect("serialises");
    std::fs::write(temp_path(&path), &half[..half.len() / 2]).expect("writes");
    assert_eq!(checkpoint::load(&path).expect("the old one").step, 1);
    // The next save replaces the leftover.
    checkpoint::save(&path, &sample(3)).expect("saves");
    assert_eq!(checkpoint::load(&path).expect("the new one"), sample(3));
    assert!(!temp_path(&path).exists());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_failed_save_keeps_the_previous_checkpoint() {
    let dir = scratch("failed-save");
    let path = dir.join("checkpoint.safetensors");
    checkpoint::save(&path, &sample(1)).expect("saves");
    // The temp file cannot be created: a folder is in its way.
    std::fs::create_dir(temp_path(&path)).expect("mkdir");
    let e = checkpoint::save(&path, &sample(2)).expect_err("an error");
    assert_eq!(code(&e), "E0921", "{e}");
    assert!(e.to_string().contains("checkpoint.safetensors.tmp"), "{e}");
    assert_eq!(checkpoint::load(&path).expect("intact"), sample(1));
    std::fs::remove_dir(temp_path(&path)).expect("rmdir");

    // A folder that does not exist.
    let e = checkpoint::save(&dir.join("no/such/folder/c.safetensors"), &sample(1)).expect_err("an error");
    assert_eq!(code(&e), "E0921");
    let _ = std::fs::remove_dir_all(dir);
}

const CHILD_ENV: &str = "GENC_CHECKPOINT_WRITER";

/// Every tensor of [`big`] holds its step, so a torn file would show mixed values.
fn big(step: u64) -> Checkpoint {
    let mut c = Checkpoint { step, epoch: step, ..Checkpoint::default() };
    for i in 0..2 {
        c.insert(format!("G.layer{i}.weight"), tensor(&[1024, 1024], |_| step as f32));
    }
    c
}

/// Not a test on its own: with `GENC_CHECKPOINT_WRITER=PATH` it saves 8 MB checkpoints to
/// PATH in a loop until killed (the child of `a_writer_killed_mid_write_leaves_a_whole_checkpoint`).
#[test]
fn writer_child() {
    let Some(path) = std::env::var_os(CHILD_ENV) else { return };
    let path = PathBuf::from(path);
    for step in 1.. {
        checkpoint::save(&path, &big(step)).expect("saves");
    }
}

#[test]
fn a_writer_killed_mid_write_leaves_a_whole_checkpoint() {
    let dir = scratch("killed");
    let path = dir.join("checkpoint.safetensors");
    let exe = std::env::current_exe().expect("the test binary");
    let mut torn = 0;
    for round in 0..6u64 {
        let _ = std::fs::remove_file(&path);
        let mut child = std::process::Command::new(&exe)
            .args(["--exact", "writer_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn the writer");
        let start = Instant::now();
        let tmp = temp_path(&path);
        // Even rounds: kill as soon as the writer is inside a save of step 2 or later (its
        // `.tmp` exists), plus a few ms: mid-write or mid-fsync. Odd rounds: at some moment.
        let wait_for = |p: &Path| {
            while !p.exists() {
                assert!(start.elapsed() < Duration::from_secs(60), "the writer never saved");
                std::thread::sleep(Duration::from_micros(200));
            }
        };
        wait_for(&path);
        if round % 2 == 0 {
            wait_for(&tmp);
            std::thread::sleep(Duration::from_millis(round));
        } else {
            std::thread::sleep(Duration::from_millis(7 * round));
        }
        child.kill().expect("kill");
        child.wait().expect("reap");
        torn += usize::from(temp_path(&path).exists());
        let c = checkpoint::load(&path).expect("the last complete checkpoint loads");
        assert!(c.step >= 1);
        for (name, t) in &c.tensors {
            assert!(t.data.iter().all(|&x| x == c.step as f32), "{name} mixes steps");
        }
    }
    eprintln!("{torn} of 6 kills left a partial .tmp behind");
    assert!(torn >= 1, "no kill landed inside a save; the test did not test anything");
    let _ = std::fs::remove_dir_all(dir);
}

/// xorshift64*: the fuzz cases are the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn damaged_bytes_are_refused_without_a_panic() {
    let c = sample(5);
    let good = checkpoint::to_bytes(&c).expect("serialises");
    let path = Path::new("fuzz.safetensors");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);

    // Every cut is refused (including the empty file and a cut inside the length prefix).
    let mut cuts: Vec<usize> = (0..300).map(|_| rng.below(good.len())).collect();
    cuts.extend([0, 1, 7, 8, 9, good.len() - 1]);
    for cut in cuts {
        let e =
            checkpoint::from_bytes(path, &good[..cut]).err().unwrap_or_else(|| panic!("cut at {cut} loaded"));
        assert_eq!(code(&e), "E0922", "cut at {cut}: {e}");
    }

    // A flipped bit anywhere is refused, or changes nothing that is read back (the one case:
    // the name of the `checksum` entry itself).
    let mut refused = 0;
    for _ in 0..600 {
        let mut bad = good.clone();
        let at = rng.below(bad.len());
        bad[at] ^= 1 << rng.below(8);
        match checkpoint::from_bytes(path, &bad) {
            Err(_) => refused += 1,
            Ok(back) => {
                assert_eq!(
                    (&back.tensors, back.step, back.epoch, &back.spec_hash, &back.data_state),
                    (&c.tensors, c.step, c.epoch, &c.spec_hash, &c.data_state),
                    "a flip at byte {at} loaded different contents"
                );
            }
        }
    }
    assert!(refused > 550, "only {refused} of 600 flips refused");

    // Random garbage and a huge header length.
    for len in [1, 8, 16, 100, 5000] {
        let junk: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        assert!(checkpoint::from_bytes(path, &junk).is_err());
    }
    let mut huge = u64::MAX.to_le_bytes().to_vec();
    huge.extend(b"{}");
    assert_eq!(code(&checkpoint::from_bytes(path, &huge).expect_err("an error")), "E0922");
}

/// A safetensors file written the way Python would, with `metadata` and one tensor.
fn foreign(dir: &Path, name: &str, dtype: Dtype, metadata: &[(&str, &str)]) -> PathBuf {
    let data = vec![0u8; 4 * dtype.bitsize() / 8];
    let view = TensorView::new(dtype, vec![2, 2], &data).expect("view");
    let meta: std::collections::HashMap<String, String> =
        metadata.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let bytes = safetensors::serialize([("G.linear0.weight", view)], (!meta.is_empty()).then_some(meta))
        .expect("serialises");
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("writes");
    path
}

#[test]
fn missing_foreign_and_newer_files_are_refused_with_their_reason() {
    let dir = scratch("foreign");
    let genc = [("format", "genc-checkpoint"), ("format_version", "1"), ("step", "0"), ("epoch", "0")];

    let e = load_err(&dir.join("nothing.safetensors"));
    assert_eq!(code(&e), "E0920");
    assert!(e.to_string().contains("nothing.safetensors"), "{e}");

    std::fs::write(dir.join("empty.safetensors"), b"").expect("writes");
    let e = load_err(&dir.join("empty.safetensors"));
    assert_eq!((code(&e), e.to_string().contains("is empty")), ("E0922".into(), true), "{e}");

    let e = load_err(&foreign(&dir, "half.safetensors", Dtype::F16, &genc));
    assert_eq!(code(&e), "E0923");
    assert_eq!(
        e.to_string(),
        format!(
            "tensor `G.linear0.weight` in the checkpoint `{}` is F16, not f32",
            dir.join("half.safetensors").display()
        )
    );

    let e = load_err(&foreign(&dir, "torch.safetensors", Dtype::F32, &[]));
    assert_eq!(code(&e), "E0924");
    assert!(e.to_string().ends_with("is not a genc checkpoint: it has no `format` metadata"), "{e}");
    assert!(e.help().map(|h| h.to_string()).unwrap_or_default().contains("format_version"));

    let e = load_err(&foreign(&dir, "noversion.safetensors", Dtype::F32, &[("format", "genc-checkpoint")]));
    assert_eq!(code(&e), "E0924");
    assert!(e.to_string().ends_with("it has no `format_version` metadata"), "{e}");

    let newer = [("format", "genc-checkpoint"), ("format_version", "2"), ("step", "0"), ("epoch", "0")];
    let e = load_err(&foreign(&dir, "newer.safetensors", Dtype::F32, &newer));
    assert_eq!(code(&e), "E0925");
    assert!(e.to_string().contains("format version 2; this genc reads version 1"), "{e}");

    let bad_step = [("format", "genc-checkpoint"), ("format_version", "1"), ("step", "ten"), ("epoch", "0")];
    let e = load_err(&foreign(&dir, "badstep.safetensors", Dtype::F32, &bad_step));
    assert_eq!(code(&e), "E0922");
    assert!(e.to_string().contains("`step` metadata `ten` is not a whole number"), "{e}");

    // Made in Python with the metadata the E0924 help gives (no checksum): accepted.
    let c = checkpoint::load(&foreign(&dir, "imported.safetensors", Dtype::F32, &genc)).expect("loads");
    assert_eq!(c.tensors["G.linear0.weight"].data, [0.0; 4]);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn invalid_tensors_and_reserved_keys_are_not_saved() {
    let mut c = Checkpoint::default();
    c.tensors.insert("x".into(), Tensor { shape: vec![2, 3], data: vec![0.0; 5] });
    let e = checkpoint::to_bytes(&c).expect_err("an error");
    assert_eq!(code(&e), "E0927");
    assert_eq!(e.to_string(), "cannot save tensor `x`: shape [2, 3] needs 6 values, it has 5");
    assert!(Tensor::new(vec![2, 3], vec![0.0; 5]).is_none());

    let mut c = Checkpoint::default();
    c.metadata.insert("step".into(), "9".into());
    assert_eq!(code(&checkpoint::to_bytes(&c).expect_err("an error")), "E0927");
}

#[test]
fn validate_against_names_every_difference() {
    let c = sample(1);
    let expected: Vec<(String, Vec<usize>)> =
        c.tensors.iter().map(|(n, t)| (n.clone(), t.shape.clone())).collect();
    c.validate_against(expected.iter().map(|(n, s)| (n, s.as_slice()))).expect("matches itself");

    // The spec changed: a wider layer, a new bias, a dropped buffer.
    let mut spec: BTreeMap<String, Vec<usize>> = expected.into_iter().collect();
    spec.insert("G.linear0.weight".into(), vec![12, 8]);
    spec.insert("G.linear1.bias".into(), vec![4]);
    spec.remove("G.batch_norm0.running_mean");
    let e = checkpoint::validate_against(&c, spec.iter().map(|(n, s)| (n.as_str(), s.as_slice())))
        .expect_err("a mismatch");
    let e = e.in_file(Path::new("runs/x/checkpoint.safetensors"));
    assert_eq!(code(&e), "E0926");
    assert_eq!(
        e.to_string(),
        "the checkpoint does not match the spec (`runs/x/checkpoint.safetensors`): 1 missing, 1 extra, 1 with \
         another shape"
    );
    let help = e.help().map(|h| h.to_string()).unwrap_or_default();
    for line in [
        "the spec changed since the checkpoint was written (its spec hash: `9f2c01d4`)",
        "missing from the checkpoint: `G.linear1.bias`",
        "not in the spec: `G.batch_norm0.running_mean`",
        "`G.linear0.weight` is [12, 5] in the checkpoint, [12, 8] in the spec",
    ] {
        assert!(help.contains(line), "{line:?} not in:\n{help}");
    }
    let CheckpointError::Mismatch { names, .. } = e else { panic!("not a mismatch") };
    assert_eq!(names.missing, ["G.linear1.bias"]);
    assert_eq!(names.extra, ["G.batch_norm0.running_mean"]);
    assert_eq!(names.mis_shaped, [("G.linear0.weight".to_string(), vec![12, 5], vec![12, 8])]);
}
