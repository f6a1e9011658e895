//! Run configs: a YAML file that names the spec and overrides its `param`s and the `train`
//! block's settings, plus `--set key=value` on the command line, which wins over the file.
//!
//! ```yaml
//! spec: specs/dcgan.gen       # the spec to train
//! params:                     # its `param`s (numbers, bools, strings)
//!   lr: 2.0e-4
//!   z_dim: 100
//! data: /usr/share/datasets/fashion-mnist   # a data folder (IDX pair or PNG images)
//! steps: 5000                 # or `epochs: 10`, not both; replaces the spec's
//! batch: 64                   # the batch size
//! seed: 1
//! out: runs/dcgan-lr2e-4      # the run folder
//! device: auto                # auto | gpu | cpu | vulkan-cpu
//! log_every: 50               # cadences: a number of steps, or "N steps" / "N epochs"
//! sample_every: 500
//! eval_every: 1 epoch
//! checkpoint_every: 1000
//! ```
//!
//! Every key is optional; a key left out keeps the spec's value (or genc's default). Paths are
//! relative to the folder genc runs in, like paths on the command line
//! ([`RunConfig::make_paths_absolute`] pins them before the config is written to a run folder).
//! An unknown key is an error with a "did you mean" and its line and column.
//!
//! `--set` ([`RunConfig::apply_set`]): `steps=100` sets a run setting, `params.lr=1e-3` a spec
//! param, and a bare name that is not a run setting (`lr=1e-3`) a spec param too, unless it is
//! one typo away from a run setting (`stpes=100` is an error that suggests `steps`).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use genc_compiler::grammar::did_you_mean;
use genc_compiler::overrides::Override;
use miette::{Diagnostic, NamedSource, SourceSpan};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

use crate::device::DeviceChoice;

/// The run settings a config may give, in the order they are written.
pub const KEYS: [&str; 13] = [
    "spec",
    "params",
    "data",
    "steps",
    "epochs",
    "batch",
    "seed",
    "out",
    "device",
    "log_every",
    "sample_every",
    "eval_every",
    "checkpoint_every",
];

/// A run config: the YAML file with every `--set` applied.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// The `.gen` file to train.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<PathBuf>,
    /// Overrides of the spec's `param`s, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, ParamValue>,
    /// The data: a folder with an IDX pair (Fashion-MNIST's layout) or PNG images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<PathBuf>,
    /// Optimizer steps to run (replaces the spec's `steps` or `epochs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<u64>,
    /// Epochs to run (replaces the spec's `steps` or `epochs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epochs: Option<u64>,
    /// The batch size (the value of the spec's `batch` dim).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<u64>,
    /// The seed of every random draw and of the data order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// The run folder (samples, metrics, checkpoints, the resolved config).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out: Option<PathBuf>,
    /// `auto`, `gpu` or `cpu`.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "device_choice")]
    pub device: Option<DeviceChoice>,
    /// How often to log the losses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_every: Option<Every>,
    /// How often to write every `sample` of the spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_every: Option<Every>,
    /// How often to run every `eval` of the spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_every: Option<Every>,
    /// How often to write a checkpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_every: Option<Every>,
}

/// The value of a spec `param`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ParamValue {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

impl ParamValue {
    /// A `--set` value: an int (`1_000` too), a float, `true`/`false`, else a string (quotes
    /// trimmed) — the compiler's rule for `--set`.
    pub fn parse(text: &str) -> ParamValue {
        let t = text.trim();
        if let Ok(v) = t.replace('_', "").parse::<i64>() {
            return ParamValue::Int(v);
        }
        if let Ok(v) = t.parse::<f64>() {
            return ParamValue::Float(v);
        }
        match t {
            "true" => ParamValue::Bool(true),
            "false" => ParamValue::Bool(false),
            _ => ParamValue::Str(t.trim_matches('"').to_string()),
        }
    }
}

impl<'de> Deserialize<'de> for ParamValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = ParamValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number, `true`/`false` or a text")
            }
            fn visit_bool<E: serde::de::Error>(self, b: bool) -> Result<ParamValue, E> {
                Ok(ParamValue::Bool(b))
            }
            fn visit_i64<E: serde::de::Error>(self, i: i64) -> Result<ParamValue, E> {
                Ok(ParamValue::Int(i))
            }
            fn visit_u64<E: serde::de::Error>(self, u: u64) -> Result<ParamValue, E> {
                Ok(i64::try_from(u).map_or(ParamValue::Float(u as f64), ParamValue::Int))
            }
            fn visit_f64<E: serde::de::Error>(self, x: f64) -> Result<ParamValue, E> {
                Ok(ParamValue::Float(x))
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<ParamValue, E> {
                Ok(ParamValue::Str(s.to_string()))
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl fmt::Display for ParamValue {
    /// The text the compiler's `--set` parser reads back as the same value (a float keeps its
    /// point: `2.0`, not `2`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamValue::Bool(b) => write!(f, "{b}"),
            ParamValue::Int(i) => write!(f, "{i}"),
            ParamValue::Float(x) => write!(f, "{x:?}"),
            ParamValue::Str(s) => f.write_str(s),
        }
    }
}

/// A cadence: every `n` optimizer steps or every `n` epochs. In YAML a number is steps;
/// `"500 steps"`, `"1 epoch"` and `"2 epochs"` are written out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Every {
    Steps(u64),
    Epochs(u64),
}

impl From<Every> for genc_compiler::train_spec::Every {
    fn from(e: Every) -> Self {
        match e {
            Every::Steps(n) => genc_compiler::train_spec::Every::Steps(n),
            Every::Epochs(n) => genc_compiler::train_spec::Every::Epochs(n),
        }
    }
}

impl FromStr for Every {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad =
            || format!("`{s}` is not a cadence: write a number of steps (`500`), `500 steps` or `1 epoch`");
        let mut words = s.split_whitespace();
        let n: u64 = words.next().and_then(|w| w.replace('_', "").parse().ok()).ok_or_else(bad)?;
        let every = match words.next() {
            None | Some("step" | "steps") => Every::Steps(n),
            Some("epoch" | "epochs") => Every::Epochs(n),
            Some(_) => return Err(bad()),
        };
        if words.next().is_some() {
            return Err(bad());
        }
        if n == 0 {
            return Err(format!("`{s}`: a cadence must be at least 1"));
        }
        Ok(every)
    }
}

impl fmt::Display for Every {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Every::Steps(n) => write!(f, "{n} steps"),
            Every::Epochs(1) => write!(f, "1 epoch"),
            Every::Epochs(n) => write!(f, "{n} epochs"),
        }
    }
}

impl Serialize for Every {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Every::Steps(n) => s.serialize_u64(*n),
            Every::Epochs(_) => s.collect_str(self),
        }
    }
}

impl<'de> Deserialize<'de> for Every {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Every;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number of steps or a text such as `500 steps` or `1 epoch`")
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Every, E> {
                if n == 0 {
                    return Err(E::custom("a cadence must be at least 1"));
                }
                Ok(Every::Steps(n))
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Every, E> {
                match u64::try_from(n) {
                    Ok(n) => self.visit_u64(n),
                    Err(_) => Err(E::custom("a cadence must be at least 1")),
                }
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Every, E> {
                s.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// `device` as its text (`auto`, `gpu`, `cpu`, `vulkan-cpu`).
mod device_choice {
    use super::*;

    pub fn serialize<S: Serializer>(v: &Option<DeviceChoice>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(d) => s.collect_str(d),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DeviceChoice>, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        text.map(|t| t.parse().map_err(serde::de::Error::custom)).transpose()
    }
}

/// The config text, for the labels of a diagnostic (shared: diagnostics stay small).
pub type Source = Arc<NamedSource<String>>;

/// Why a run config could not be read or applied.
#[derive(Debug, Error, Diagnostic)]
pub enum ConfigError {
    #[error("could not read the run config `{}`: {source}", path.display())]
    #[diagnostic(code(E0930), help("check the path of the config file"))]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("the run config is not valid YAML: {message}")]
    #[diagnostic(
        code(E0931),
        help("YAML needs `key: value` lines; indent nested maps (under `params:`) with spaces")
    )]
    Syntax {
        message: String,
        #[source_code]
        src: Source,
        #[label("here")]
        span: Option<SourceSpan>,
    },

    #[error("unknown key `{key}` in the run config")]
    #[diagnostic(code(E0932), help("{help}"))]
    UnknownKey {
        key: String,
        /// The closest known key.
        suggestion: Option<String>,
        help: String,
        #[source_code]
        src: Source,
        #[label("{}", suggestion.as_ref().map_or_else(|| "not a run setting".to_string(), |s| format!("did you mean `{s}`?")))]
        span: Option<SourceSpan>,
    },

    #[error("invalid value in the run config: {message}")]
    #[diagnostic(code(E0933), help("{help}"))]
    Value {
        message: String,
        help: String,
        #[source_code]
        src: Source,
        #[label("here")]
        span: Option<SourceSpan>,
    },

    #[error("the run config gives both `steps` and `epochs`")]
    #[diagnostic(code(E0934), help("a run is measured in steps or in epochs: keep one of them"))]
    StepsAndEpochs {
        #[source_code]
        src: Source,
        #[label("the second one")]
        span: Option<SourceSpan>,
    },

    #[error("`--set {assignment}`: {message}")]
    #[diagnostic(code(E0935), help("{help}"))]
    Set { assignment: String, message: String, help: String },

    #[error("could not write the run config as YAML: {message}")]
    #[diagnostic(code(E0936), help("this is a bug in genc; please report it"))]
    Write { message: String },
}

impl RunConfig {
    /// Reads and parses the YAML file at `path`.
    pub fn load(path: &Path) -> Result<RunConfig, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        RunConfig::parse(&text, &path.display().to_string())
    }

    /// Parses YAML `text`; `name` (the file name) is for the messages. An empty file is the
    /// empty config.
    pub fn parse(text: &str, name: &str) -> Result<RunConfig, ConfigError> {
        let src = || Arc::new(NamedSource::new(name, text.to_string()));
        let blank = text.lines().all(|l| {
            let l = l.trim();
            l.is_empty() || l.starts_with('#') || l == "---"
        });
        if blank {
            return Ok(RunConfig::default());
        }
        let config: RunConfig = serde_yaml::from_str(text).map_err(|e| from_yaml_error(&e, text, src()))?;
        if config.steps.is_some() && config.epochs.is_some() {
            let second = [key_span(text, "steps"), key_span(text, "epochs")]
                .into_iter()
                .flatten()
                .max_by_key(|s| s.offset());
            return Err(ConfigError::StepsAndEpochs { src: src(), span: second });
        }
        Ok(config)
    }

    /// Applies every `--set`, in order.
    pub fn apply_sets<S: AsRef<str>>(&mut self, assignments: &[S]) -> Result<(), ConfigError> {
        assignments.iter().try_for_each(|a| self.apply_set(a.as_ref()))
    }

    /// Applies one `--set key=value` (see the module doc). Setting `steps` clears `epochs` and
    /// the other way round, so the command line wins over the file.
    pub fn apply_set(&mut self, assignment: &str) -> Result<(), ConfigError> {
        let err = |message: String, help: String| ConfigError::Set {
            assignment: assignment.to_string(),
            message,
            help,
        };
        let Some((key, value)) = assignment.split_once('=') else {
            return Err(err(
                "expected `key=value`".into(),
                "write `--set steps=100`, or `--set lr=1e-3` for a spec param".into(),
            ));
        };
        let (key, value) = (key.trim(), value.trim());
        if key.is_empty() {
            return Err(err("the key is empty".into(), "write `--set steps=100`".into()));
        }
        if let Some(param) = key.strip_prefix("params.") {
            if param.is_empty() {
                return Err(err(
                    "no param name after `params.`".into(),
                    "write `--set params.lr=1e-3`".into(),
                ));
            }
            self.params.insert(param.to_string(), ParamValue::parse(value));
            return Ok(());
        }
        let number = |what: &str| -> Result<u64, ConfigError> {
            value.replace('_', "").parse::<u64>().map_err(|_| {
                err(
                    format!("`{value}` is not a whole number"),
                    format!("`{key}` takes {what}, e.g. `{key}=100`"),
                )
            })
        };
        let every = || -> Result<Every, ConfigError> {
            value.parse().map_err(|m: String| err(m, format!("e.g. `{key}=500` or `{key}=\"1 epoch\"`")))
        };
        let path = || -> Result<PathBuf, ConfigError> {
            if value.is_empty() {
                Err(err("the path is empty".into(), format!("write `{key}=PATH`")))
            } else {
                Ok(PathBuf::from(value))
            }
        };
        match key {
            "spec" => self.spec = Some(path()?),
            "data" => self.data = Some(path()?),
            "out" => self.out = Some(path()?),
            "steps" => {
                self.steps = Some(number("a number of steps")?);
                self.epochs = None;
            }
            "epochs" => {
                self.epochs = Some(number("a number of epochs")?);
                self.steps = None;
            }
            "batch" => self.batch = Some(number("the batch size")?),
            "seed" => self.seed = Some(number("a seed")?),
            "device" => {
                self.device = Some(value.parse().map_err(|m: String| {
                    err(m, "write `device=auto`, `gpu`, `cpu` or `vulkan-cpu`".into())
                })?)
            }
            "log_every" => self.log_every = Some(every()?),
            "sample_every" => self.sample_every = Some(every()?),
            "eval_every" => self.eval_every = Some(every()?),
            "checkpoint_every" => self.checkpoint_every = Some(every()?),
            "params" => {
                return Err(err(
                    "`params` is a map".into(),
                    "set one param with `--set params.NAME=VALUE` (or `--set NAME=VALUE`)".into(),
                ));
            }
            _ if key.contains('.') => {
                let help = match did_you_mean(key.split('.').next().unwrap_or(key), KEYS) {
                    Some("params") => format!(
                        "spec params are set with `params.NAME`: `--set params.{}`",
                        after_dot(assignment)
                    ),
                    _ => format!("the run settings are: {}", KEYS.join(", ")),
                };
                return Err(err(format!("`{key}` is not a run setting"), help));
            }
            _ => match did_you_mean(key, KEYS) {
                Some(s) => {
                    return Err(err(
                        format!("`{key}` is not a run setting"),
                        format!(
                            "did you mean `--set {s}={value}`? (for a spec param named `{key}`, write \
                             `--set params.{key}={value}`)"
                        ),
                    ));
                }
                None => {
                    self.params.insert(key.to_string(), ParamValue::parse(value));
                }
            },
        }
        Ok(())
    }

    /// The spec param overrides, for the checker.
    pub fn param_overrides(&self) -> Vec<Override> {
        self.params.iter().map(|(name, v)| Override { name: name.clone(), value: v.to_string() }).collect()
    }

    /// Joins every relative path (`spec`, `data`, `out`) onto `base` (usually the
    /// current folder), so the config means the same when read from elsewhere.
    pub fn make_paths_absolute(&mut self, base: &Path) {
        for p in [&mut self.spec, &mut self.data, &mut self.out].into_iter().flatten() {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
    }

    /// The config as YAML, keys in [`KEYS`] order, unset keys left out; [`RunConfig::parse`]
    /// reads it back to the same config.
    pub fn to_yaml(&self) -> Result<String, ConfigError> {
        serde_yaml::to_string(self).map_err(|e| ConfigError::Write { message: e.to_string() })
    }
}

fn after_dot(assignment: &str) -> &str {
    assignment.split_once('.').map_or(assignment, |(_, rest)| rest)
}

/// Turns a serde_yaml error into a diagnostic at its line and column.
fn from_yaml_error(e: &serde_yaml::Error, text: &str, src: Source) -> ConfigError {
    let full = e.to_string();
    let message = full.split(" at line ").next().unwrap_or(&full).to_string();
    let at = e.location().and_then(|l| offset_of(text, l.line(), l.column()));
    if let Some(key) = message.split("unknown field `").nth(1).and_then(|r| r.split('`').next()) {
        let span = key_span(text, key).or_else(|| at.map(|o| token_span(text, o)));
        let suggestion = did_you_mean(key, KEYS).map(str::to_string);
        let help = match &suggestion {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!(
                "the run settings are: {}; spec params go under `params:`",
                KEYS.iter().filter(|k| **k != "params").copied().collect::<Vec<_>>().join(", ")
            ),
        };
        return ConfigError::UnknownKey { key: key.to_string(), suggestion, help, src, span };
    }
    let duplicate = message.split("duplicate field `").nth(1).and_then(|r| r.split('`').next());
    let span = duplicate.and_then(|key| key_span(text, key)).or_else(|| at.map(|o| token_span(text, o)));
    let is_value_error =
        ["invalid type", "invalid value", "cadence", "unknown device"].iter().any(|m| message.contains(m));
    if is_value_error {
        let help = value_help(&message);
        return ConfigError::Value { message, help, src, span };
    }
    ConfigError::Syntax { message, src, span }
}

/// A fix hint for a wrong value, from the key serde_yaml names at the start of the message.
fn value_help(message: &str) -> String {
    let key = message.split(':').next().unwrap_or("").trim();
    match key {
        "steps" | "epochs" | "batch" | "seed" => format!("`{key}` takes a whole number, e.g. `{key}: 100`"),
        "device" => "`device` is `auto`, `gpu`, `cpu` or `vulkan-cpu`".into(),
        "spec" | "data" | "out" => format!("`{key}` takes a path, e.g. `{key}: path/to/it`"),
        "params" => {
            "`params` is a map of names to values: `params:` then `  lr: 1e-3` on the next line".into()
        }
        k if k.starts_with("params.") => "a param value is a number, `true`/`false` or a text".into(),
        k if k.ends_with("_every") => {
            format!("`{key}` takes a number of steps (`500`), `500 steps` or `1 epoch`")
        }
        _ => "the config is a map of run settings: `steps: 100`, `params:` ...".into(),
    }
}

/// The byte offset of 1-based `line` and `column` (in characters).
fn offset_of(text: &str, line: usize, column: usize) -> Option<usize> {
    let mut start = 0;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i + 1 == line {
            let col = l.char_indices().nth(column.saturating_sub(1)).map_or(l.len(), |(b, _)| b);
            return Some(start + col);
        }
        start += l.len();
    }
    (line > 0).then_some(text.len())
}

/// The span of the word at byte `offset` (at least one character, within the text).
fn token_span(text: &str, offset: usize) -> SourceSpan {
    let offset = offset.min(text.len());
    let rest = &text[offset..];
    let len =
        rest.find(|c: char| c.is_whitespace() || c == ',' || c == ']' || c == '}').unwrap_or(rest.len());
    let len = if len == 0 { rest.chars().next().map_or(0, char::len_utf8) } else { len };
    (offset, len).into()
}

/// The span of top-level key `key` (a line that starts with `key:`), the last one if repeated.
fn key_span(text: &str, key: &str) -> Option<SourceSpan> {
    let mut found = None;
    let mut start = 0;
    for l in text.split_inclusive('\n') {
        let bare = l.strip_prefix('"').or_else(|| l.strip_prefix('\'')).unwrap_or(l);
        let quoted = bare.len() != l.len();
        if let Some(rest) = bare.strip_prefix(key) {
            let rest = if quoted { rest.get(1..).unwrap_or("") } else { rest };
            if rest.trim_start().starts_with(':') {
                found = Some((start + usize::from(quoted), key.len()).into());
            }
        }
        start += l.len();
    }
    found
}
