//! The variants a researcher writes next (`specs/variants/`), one per language gap closed for
//! them: each checks clean, is in canonical layout, names its paper, and trains for 20 steps
//! on the real data with a finite loss that falls.

mod common;

use std::path::Path;
use std::process::Command;

/// Each variant, the logged loss that must fall, and the `--set`s that shrink it to a
/// debug-build test's budget (the same layers, fewer channels), with the gap it exercises.
const VARIANTS: [(&str, &str, &[&str]); 6] = [
    // labels checked against the classes that read them (E0123/E0944 stay quiet when right)
    ("cvae", "neg_elbo", &[]),
    // a sampler with a second `int` parameter (`steps`) that `--n` and the checker's probe
    // leave at its default; a host loop on a strided schedule
    ("ddim", "simple", &["F=16"]),
    // free weights and linear algebra: Glow's invertible 1x1 convolution (`weight(.., init:
    // "orthogonal")`, `logabsdet`), inverted in its sampler (`inverse`, `Flow.mix0.weight2`)
    ("glow", "nll", &["F=16"]),
    // layers given their weight (`conv2d(.., weight: sn(w))`): spectral normalisation
    ("sngan", "discriminator", &["F=16", "batch=32"]),
    // parameters as values: the decoder reads the encoder's weight (tied weights), the
    // penalty its squares; a free `weight(..)` for the decoder's bias
    ("tied_cae", "contractive", &[]),
    // the batch size as a value: the MMD U-statistic's 1 / (B * (B - 1))
    ("wae_mmd", "wae", &[]),
];

#[test]
fn every_variant_is_listed() {
    let files: Vec<String> = common::gen_files("specs/variants").iter().map(|p| common::stem(p)).collect();
    let listed: Vec<String> = VARIANTS.iter().map(|(name, ..)| name.to_string()).collect();
    assert_eq!(files, listed, "specs/variants/ and VARIANTS list the same variants, in order");
}

#[test]
fn variants_check_clean_in_canonical_layout() {
    for (name, ..) in VARIANTS {
        let path = common::root().join(format!("specs/variants/{name}.gen"));
        let source = common::read(&path);
        assert!(source.contains("// Source: "), "{name}: the header names its paper");
        let (ast, errors) = genc_grammar::parse(&source);
        assert!(errors.is_empty(), "{name}: {errors:?}");
        let checked = genc_compiler::check::check(&ast, &[]);
        assert!(checked.errors.is_empty(), "{name}: {:?}", checked.errors);
        assert!(checked.warnings.is_empty(), "{name}: {:?}", checked.warnings);
        let formatted = common::assert_format_properties(name, &source);
        assert!(
            formatted == source,
            "specs/variants/{name}.gen is not in canonical layout; run `genc fmt --write`"
        );
    }
}

/// The values of `metric` in a run's metrics file, step by step.
fn logged(dir: &Path, metric: &str) -> Vec<f64> {
    let text = common::read(&dir.join("metrics.jsonl"));
    let values = text.lines().filter_map(|line| {
        let value: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        value.get("step")?;
        value.get(metric)?.as_f64()
    });
    values.collect()
}

#[test]
fn variants_train_with_a_falling_loss() {
    for (name, metric, sets) in VARIANTS {
        let out = std::env::temp_dir().join(format!("genc-variant-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&out);
        let run = Command::new(env!("CARGO_BIN_EXE_genc"))
            .current_dir(common::root())
            .args(["train", &format!("specs/variants/{name}.gen"), "--out"])
            .arg(&out)
            .args(["--set", "steps=20", "--set", "log_every=1", "--set", "device=cpu", "--set", "seed=1"])
            .args(sets.iter().flat_map(|s| ["--set", s]))
            .output()
            .unwrap_or_else(|e| panic!("cannot run genc: {e}"));
        assert!(run.status.success(), "{name}: {}", String::from_utf8_lossy(&run.stderr));
        let losses = logged(&out, metric);
        assert_eq!(losses.len(), 20, "{name}: `{metric}` logged at each step");
        assert!(losses.iter().all(|l| l.is_finite()), "{name}: {losses:?}");
        let mean = |part: &[f64]| part.iter().sum::<f64>() / part.len() as f64;
        let (first, last) = (mean(&losses[..5]), mean(&losses[15..]));
        assert!(last < first, "{name}: `{metric}` went from {first} (steps 1-5) to {last} (steps 16-20)");
        let _ = std::fs::remove_dir_all(&out);
    }
}
