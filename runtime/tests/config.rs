//! Run configs: a full file parses, unknown keys get a "did you mean" at their line and column,
//! wrong types are located, `--set` wins over the file, and the YAML written back reads back
//! the same.

use std::path::PathBuf;

use genc_runtime::config::{ConfigError, Every, KEYS, ParamValue, RunConfig};
use genc_runtime::device::DeviceChoice;
use miette::Diagnostic;

const FULL: &str = "\
# a DCGAN run
spec: specs/dcgan.gen
params:
  lr: 2.0e-4
  z_dim: 100
  use_bias: false
  act: leaky
data: /usr/share/datasets/fashion-mnist
steps: 5000
batch: 64
seed: 1
out: runs/dcgan-lr2e-4
device: cpu
log_every: 50
sample_every: 500 steps
eval_every: 1 epoch
checkpoint_every: 1000
";

fn parse(text: &str) -> Result<RunConfig, ConfigError> {
    RunConfig::parse(text, "run.yaml")
}

/// The error, or a panic naming what parsed instead.
fn error(text: &str) -> ConfigError {
    match parse(text) {
        Ok(c) => panic!("expected an error, got {c:?}"),
        Err(e) => e,
    }
}

fn code(e: &ConfigError) -> String {
    e.code().map(|c| c.to_string()).unwrap_or_default()
}

fn help(e: &ConfigError) -> String {
    e.help().map(|h| h.to_string()).unwrap_or_default()
}

/// `(line, column, text)` of the first label, 1-based.
fn label_at(e: &ConfigError, text: &str) -> (usize, usize, String) {
    let label = e.labels().and_then(|mut l| l.next()).unwrap_or_else(|| panic!("no label on {e:?}"));
    let (o, len) = (label.offset(), label.len());
    let line = text[..o].matches('\n').count() + 1;
    let column = o - text[..o].rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column, text[o..o + len].to_string())
}

#[test]
fn a_full_config_parses() {
    let c = parse(FULL).expect("parses");
    assert_eq!(c.spec, Some(PathBuf::from("specs/dcgan.gen")));
    assert_eq!(c.params["lr"], ParamValue::Float(2.0e-4));
    assert_eq!(c.params["z_dim"], ParamValue::Int(100));
    assert_eq!(c.params["use_bias"], ParamValue::Bool(false));
    assert_eq!(c.params["act"], ParamValue::Str("leaky".into()));
    assert_eq!(c.data, Some(PathBuf::from("/usr/share/datasets/fashion-mnist")));
    assert_eq!((c.steps, c.epochs, c.batch, c.seed), (Some(5000), None, Some(64), Some(1)));
    assert_eq!(c.out, Some(PathBuf::from("runs/dcgan-lr2e-4")));
    assert_eq!(c.device, Some(DeviceChoice::Cpu));
    assert_eq!(c.log_every, Some(Every::Steps(50)));
    assert_eq!(c.sample_every, Some(Every::Steps(500)));
    assert_eq!(c.eval_every, Some(Every::Epochs(1)));
    assert_eq!(c.checkpoint_every, Some(Every::Steps(1000)));
    // The compiler's `--set` form keeps floats as floats.
    let overrides: Vec<(String, String)> =
        c.param_overrides().into_iter().map(|o| (o.name, o.value)).collect();
    assert_eq!(
        overrides,
        [("act", "leaky"), ("lr", "0.0002"), ("use_bias", "false"), ("z_dim", "100")]
            .map(|(a, b)| (a.to_string(), b.to_string()))
    );
}

#[test]
fn empty_and_comment_only_files_are_the_empty_config() {
    assert_eq!(parse("").expect("parses"), RunConfig::default());
    assert_eq!(parse("# nothing yet\n\n").expect("parses"), RunConfig::default());
}

#[test]
fn every_key_is_documented_in_the_language_doc() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/language.md"))
        .expect("docs/language.md");
    let section = doc.split("## Run configs (YAML)").nth(1).expect("a `## Run configs (YAML)` section");
    for key in KEYS {
        assert!(section.contains(&format!("`{key}`")), "`{key}` is not in docs/language.md");
    }
}

#[test]
fn an_unknown_key_gets_did_you_mean_and_its_location() {
    let text = "spec: a.gen\nstpes: 100\nbatch: 8\n";
    let e = error(text);
    assert_eq!(code(&e), "E0932");
    assert_eq!(e.to_string(), "unknown key `stpes` in the run config");
    assert_eq!(help(&e), "did you mean `steps`?");
    assert_eq!(label_at(&e, text), (2, 1, "stpes".into()));
    match &e {
        ConfigError::UnknownKey { suggestion, .. } => assert_eq!(suggestion.as_deref(), Some("steps")),
        other => panic!("{other:?}"),
    }

    // Far from every key: the list of keys instead, and a pointer to `params:`.
    let text = "steps: 10\nlearning_rate: 0.1\n";
    let e = error(text);
    assert_eq!(code(&e), "E0932");
    assert!(help(&e).contains("spec params go under `params:`"), "{}", help(&e));
    assert!(help(&e).contains("checkpoint_every"), "{}", help(&e));
    assert_eq!(label_at(&e, text), (2, 1, "learning_rate".into()));
}

#[test]
fn wrong_types_are_located() {
    let text = "spec: a.gen\nsteps: ten\n";
    let e = error(text);
    assert_eq!(code(&e), "E0933");
    assert!(e.to_string().contains("steps: invalid type: string \"ten\""), "{e}");
    assert!(help(&e).contains("whole number"), "{}", help(&e));
    assert_eq!(label_at(&e, text), (2, 8, "ten".into()));

    let text = "steps: -3\n";
    assert_eq!(code(&error(text)), "E0933");

    let text = "device: tpu\n";
    let e = error(text);
    assert_eq!(code(&e), "E0933");
    assert!(e.to_string().contains("unknown device `tpu`"), "{e}");
    assert_eq!(label_at(&e, text).0, 1);

    let text = "batch: 4\nsample_every: 3 weeks\n";
    let e = error(text);
    assert_eq!(code(&e), "E0933");
    assert!(e.to_string().contains("is not a cadence"), "{e}");
    assert_eq!(label_at(&e, text).0, 2);

    let text = "log_every: 0\n";
    assert!(error(text).to_string().contains("at least 1"));

    let text = "params: 3\n";
    let e = error(text);
    assert_eq!(code(&e), "E0933");
    assert!(help(&e).contains("map"), "{}", help(&e));

    let text = "params:\n  lr: [1, 2]\n";
    let e = error(text);
    assert_eq!(code(&e), "E0933", "{e}");
    assert_eq!(label_at(&e, text).0, 2);
}

#[test]
fn yaml_syntax_errors_are_located() {
    let text = "spec: x\nparams:\n  lr: 1\n bad: 2\n";
    let e = error(text);
    assert_eq!(code(&e), "E0931");
    assert_eq!(e.to_string(), "the run config is not valid YAML: did not find expected key");
    assert_eq!(label_at(&e, text), (4, 2, "bad:".into()));

    let text = "steps: 10\n\tbatch: 3\n";
    let e = error(text);
    assert_eq!(code(&e), "E0931");
    assert!(e.to_string().contains("tab"), "{e}");
    assert_eq!(label_at(&e, text).0, 2);

    let text = "steps: 10\nsteps: 20\n";
    let e = error(text);
    assert_eq!(code(&e), "E0931");
    assert!(e.to_string().contains("duplicate field `steps`"), "{e}");
    assert_eq!(label_at(&e, text), (2, 1, "steps".into()));

    // A list instead of a map.
    let e = error("- steps\n- batch\n");
    assert!(["E0931", "E0933"].contains(&code(&e).as_str()), "{e:?}");
}

#[test]
fn steps_and_epochs_together_are_refused() {
    let text = "steps: 10\nepochs: 2\n";
    let e = error(text);
    assert_eq!(code(&e), "E0934");
    assert_eq!(label_at(&e, text), (2, 1, "epochs".into()));
}

#[test]
fn set_wins_over_the_file() {
    let mut c = parse(FULL).expect("parses");
    c.apply_sets(&[
        "steps=100",
        "batch=16",
        "lr=1e-3",
        "params.z_dim=64",
        "params.steps_d=3",
        "device=gpu",
        "sample_every=2 epochs",
        "out=runs/x",
        "new_flag=true",
        "seed=1_000",
    ])
    .expect("applies");
    assert_eq!((c.steps, c.batch, c.seed), (Some(100), Some(16), Some(1000)));
    assert_eq!(c.params["lr"], ParamValue::Float(1e-3));
    assert_eq!(c.params["z_dim"], ParamValue::Int(64));
    assert_eq!(c.params["steps_d"], ParamValue::Int(3));
    assert_eq!(c.params["new_flag"], ParamValue::Bool(true));
    assert_eq!(c.device, Some(DeviceChoice::Gpu));
    assert_eq!(c.sample_every, Some(Every::Epochs(2)));
    assert_eq!(c.out, Some(PathBuf::from("runs/x")));

    // Epochs on the command line replace the file's steps (and the other way round).
    c.apply_set("epochs=3").expect("applies");
    assert_eq!((c.steps, c.epochs), (None, Some(3)));
    c.apply_set("steps = 7").expect("applies");
    assert_eq!((c.steps, c.epochs), (Some(7), None));
    // The last `--set` of a key wins.
    c.apply_sets(&["lr=0.5", "lr=0.25"]).expect("applies");
    assert_eq!(c.params["lr"], ParamValue::Float(0.25));
}

#[test]
fn bad_sets_are_errors_with_help() {
    let set = |a: &str| {
        let mut c = RunConfig::default();
        match c.apply_set(a) {
            Ok(()) => panic!("`{a}` applied: {c:?}"),
            Err(e) => e,
        }
    };
    let e = set("stpes=100");
    assert_eq!(code(&e), "E0935");
    assert_eq!(e.to_string(), "`--set stpes=100`: `stpes` is not a run setting");
    assert!(help(&e).starts_with("did you mean `--set steps=100`?"), "{}", help(&e));
    assert!(help(&e).contains("params.stpes=100"), "{}", help(&e));

    let e = set("steps");
    assert!(e.to_string().contains("expected `key=value`"), "{e}");
    let e = set("steps=many");
    assert!(e.to_string().contains("`many` is not a whole number"), "{e}");
    let e = set("device=tpu");
    assert!(e.to_string().contains("unknown device `tpu`"), "{e}");
    let e = set("log_every=0");
    assert!(e.to_string().contains("at least 1"), "{e}");
    let e = set("param.lr=1");
    assert!(help(&e).contains("`--set params.lr=1`"), "{}", help(&e));
    let e = set("params.=1");
    assert!(e.to_string().contains("no param name"), "{e}");
    let e = set("params=1");
    assert!(help(&e).contains("params.NAME"), "{}", help(&e));
    let e = set("=1");
    assert!(e.to_string().contains("empty"), "{e}");
    for e in [set("steps"), set("stpes=1"), set("out=")] {
        assert_eq!(code(&e), "E0935");
    }
}

#[test]
fn the_yaml_written_reads_back_the_same() {
    let mut c = parse(FULL).expect("parses");
    c.apply_sets(&["epochs=2", "lr=1e-10", "scale=2.0", "name=\"dcgan 28\"", "checkpoint_every=1 epoch"])
        .expect("applies");
    let yaml = c.to_yaml().expect("writes");
    assert_eq!(parse(&yaml).expect("reads back"), c, "{yaml}");
    // Keys in the documented order, floats as floats, cadences as written.
    assert!(yaml.starts_with("spec: specs/dcgan.gen\nparams:\n"), "{yaml}");
    assert!(yaml.contains("  scale: 2.0\n"), "{yaml}");
    assert!(yaml.contains("checkpoint_every: 1 epoch\n"), "{yaml}");
    assert!(yaml.contains("log_every: 50\n"), "{yaml}");
    assert!(yaml.contains("device: cpu\n"), "{yaml}");
    assert_eq!(c.params["scale"].to_string(), "2.0");

    assert_eq!(RunConfig::default().to_yaml().expect("writes").trim(), "{}");
    assert_eq!(parse("{}\n").expect("reads back"), RunConfig::default());
}

#[test]
fn relative_paths_are_pinned_to_a_base() {
    let mut c = parse("spec: specs/a.gen\ndata: /data\nout: runs/x\n").expect("parses");
    c.make_paths_absolute(std::path::Path::new("/home/me/genc"));
    assert_eq!(c.spec, Some(PathBuf::from("/home/me/genc/specs/a.gen")));
    assert_eq!(c.data, Some(PathBuf::from("/data")));
    assert_eq!(c.out, Some(PathBuf::from("/home/me/genc/runs/x")));
}

#[test]
fn a_missing_file_is_a_read_error() {
    let e = RunConfig::load(std::path::Path::new("/nonexistent/run.yaml")).expect_err("an error");
    assert_eq!(code(&e), "E0930");
    assert!(e.to_string().contains("/nonexistent/run.yaml"), "{e}");
}
