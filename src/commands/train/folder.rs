//! The run folder: what a run leaves behind and reads back to resume.
//!
//! | file | what |
//! | --- | --- |
//! | `config.yaml` | the resolved run config (`--resume` reads it) |
//! | `metrics.jsonl` | one JSON object per logged step or eval |
//! | `losses.png` | every logged metric against the step |
//! | `last.safetensors` | the latest checkpoint (atomic: always complete) |
//! | `<sample>-<step>.png` | sample grids |
//! | `profile.md` | where a step's time goes (`--profile`) |

use std::io::Write as _;
use std::path::{Path, PathBuf};

use genc_runtime::checkpoint::{self, Checkpoint, CheckpointError};
use genc_runtime::config::{ConfigError, RunConfig};
use genc_runtime::data::BatcherState;
use genc_runtime::device::Device;
use genc_runtime::images::write_atomic;
use genc_runtime::train::{TrainError, Trainer};

/// Every logged value by metric name, in step order.
pub type History = Vec<(String, Vec<(u64, f64)>)>;

pub struct RunFolder {
    pub dir: PathBuf,
}

impl RunFolder {
    pub fn new(dir: PathBuf) -> RunFolder {
        RunFolder { dir }
    }

    pub fn checkpoint_path(&self) -> PathBuf {
        self.dir.join("last.safetensors")
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.join("config.yaml")
    }

    fn metrics_path(&self) -> PathBuf {
        self.dir.join("metrics.jsonl")
    }

    pub fn create(&self) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)
    }

    /// Writes the resolved config (atomically), so that `--resume` continues with it.
    pub fn write_config(&self, config: &RunConfig) -> Result<(), String> {
        let yaml = config.to_yaml().map_err(|e: ConfigError| e.to_string())?;
        write_atomic(&self.config_path(), yaml.as_bytes()).map_err(|e| e.to_string())
    }

    /// Saves the trainer's state with the data loader's position, atomically.
    pub fn save(
        &self,
        device: &Device,
        trainer: &Trainer,
        data: BatcherState,
        spec_hash: &str,
    ) -> Result<(), SaveError> {
        let mut ck = trainer.to_checkpoint(device).map_err(SaveError::Train)?;
        ck.epoch = data.epoch;
        ck.spec_hash = spec_hash.to_string();
        ck.data_state = serde_json::to_string(&data).unwrap_or_default();
        checkpoint::save(&self.checkpoint_path(), &ck).map_err(SaveError::Checkpoint)
    }

    pub fn load_checkpoint(&self) -> Result<Checkpoint, CheckpointError> {
        checkpoint::load(&self.checkpoint_path())
    }

    /// The metrics file for appending, with every line after step `keep_through` removed
    /// first (a resumed run repeats those steps).
    pub fn open_metrics(&self, keep_through: Option<u64>) -> Result<(std::fs::File, History), String> {
        let path = self.metrics_path();
        let mut history = History::new();
        if let Some(last) = keep_through {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let kept: Vec<&str> = text
                .lines()
                .filter(|line| match parse_line(line) {
                    Some((step, values)) if step <= last => {
                        for (name, v) in values {
                            record(&mut history, &name, step, v);
                        }
                        true
                    }
                    _ => false,
                })
                .collect();
            let mut body = kept.join("\n");
            if !body.is_empty() {
                body.push('\n');
            }
            write_atomic(&path, body.as_bytes()).map_err(|e| e.to_string())?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok((file, history))
    }

    /// Appends one JSON line `{"step": N, name: value, ...}`.
    /// One `metrics.jsonl` line: the step, `time` (seconds since this session started),
    /// `steps_per_s` (this session's mean rate) and the values.
    pub fn append_metrics(file: &mut std::fs::File, step: u64, clock: (f64, f64), values: &[(String, f64)]) {
        let (time, rate) = clock;
        let json: Vec<String> = values.iter().map(|(n, v)| format!("{:?}: {}", n, json_number(*v))).collect();
        let _ = writeln!(
            file,
            "{{\"step\": {step}, \"time\": {}, \"steps_per_s\": {}, {}}}",
            json_number((time * 1000.0).round() / 1000.0),
            json_number((rate * 1000.0).round() / 1000.0),
            json.join(", ")
        );
    }

    /// Plots every logged metric but the learning rates (`lr.*`, on another scale).
    pub fn write_loss_plot(&self, history: &History) {
        let losses: History = history.iter().filter(|(n, _)| !n.starts_with("lr.")).cloned().collect();
        let _ = genc_runtime::images::write_loss_plot(&self.dir.join("losses.png"), &losses);
    }

    /// Writes the profile table (atomically); a failure only loses the file.
    pub fn write_profile(&self, text: &str) {
        if let Err(e) = write_atomic(&self.dir.join("profile.md"), text.as_bytes()) {
            eprintln!("warning: cannot write profile.md: {e}");
        }
    }

    pub fn sample_path(&self, name: &str, step: u64) -> PathBuf {
        self.dir.join(format!("{name}-{step:07}.png"))
    }
}

/// Why a checkpoint could not be written.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum SaveError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Train(TrainError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Checkpoint(CheckpointError),
}

/// Adds `value` at `step` to metric `name`'s series.
pub fn record(history: &mut History, name: &str, step: u64, value: f64) {
    match history.iter_mut().find(|(n, _)| n == name) {
        Some((_, series)) => series.push((step, value)),
        None => history.push((name.to_string(), vec![(step, value)])),
    }
}

fn json_number(v: f64) -> String {
    if v.is_finite() { v.to_string() } else { "null".into() }
}

/// A metrics line's step and numeric values.
fn parse_line(line: &str) -> Option<(u64, Vec<(String, f64)>)> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    let object = value.as_object()?;
    let step = object.get("step")?.as_u64()?;
    let values = object
        .iter()
        // The clock and eval counts are not series of the loss plot.
        .filter(|(k, _)| !matches!(k.as_str(), "step" | "time" | "steps_per_s") && !k.ends_with(".examples"))
        .filter_map(|(k, v)| Some((k.clone(), v.as_f64()?)))
        .collect();
    Some((step, values))
}

/// `runs/<spec>-<unix time>`.
pub fn default_run_dir(spec: &Path) -> PathBuf {
    let stem = spec.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "run".into());
    let secs =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    PathBuf::from("runs").join(format!("{stem}-{secs}"))
}
