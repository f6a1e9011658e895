//! What a user watches during a run: on a terminal, a progress bar with the step, the latest
//! losses, steps/s and the ETA, with log lines printed above it; elsewhere (CI, a pipe, a
//! file), the log lines, and a progress line whenever [`HEARTBEAT`] (or `GENC_PROGRESS_SECS`)
//! has passed without one, so a run under `nohup` or CI is never silent for long.

use std::cell::Cell;
use std::io::IsTerminal as _;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Progress {
    bar: Option<ProgressBar>,
    /// The step this session started after (a resumed run starts at its checkpoint).
    first: u64,
    last: u64,
    started: Instant,
    /// When the last line went to stderr (without a bar).
    last_line: Cell<Instant>,
    /// The longest a run without a terminal stays silent.
    heartbeat: Duration,
}

/// The longest a run without a terminal stays silent, unless `GENC_PROGRESS_SECS` says
/// otherwise.
pub const HEARTBEAT: Duration = Duration::from_secs(20);

fn heartbeat() -> Duration {
    std::env::var("GENC_PROGRESS_SECS")
        .ok()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map_or(HEARTBEAT, Duration::from_secs_f64)
}

impl Progress {
    /// Steps `first + 1 ..= last` are to run.
    pub fn new(first: u64, last: u64) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(Some(last), ProgressDrawTarget::stderr());
            let style =
                ProgressStyle::with_template("{bar:30.cyan/blue} {pos}/{len}  {msg}  {per_sec}  eta {eta}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.set_position(first);
            bar.reset_eta();
            bar
        });
        let now = Instant::now();
        Progress { bar, first, last, started: now, last_line: Cell::new(now), heartbeat: heartbeat() }
    }

    /// Step `step` finished with these metrics.
    pub fn step(&self, step: u64, metrics: &[(String, f64)]) {
        match &self.bar {
            Some(bar) => {
                bar.set_position(step);
                bar.set_message(format_metrics(metrics));
            }
            None if self.last_line.get().elapsed() >= self.heartbeat => self.log(step, metrics),
            None => {}
        }
    }

    /// The log line for step `step`: step, metrics, steps/s and ETA.
    pub fn log(&self, step: u64, metrics: &[(String, f64)]) {
        let rate = self.rate(step);
        let eta = if rate > 0.0 { (self.last - step) as f64 / rate } else { f64::NAN };
        self.println(&format!(
            "step {step}/{}  {}  {rate:.2} steps/s  eta {eta:.0}s",
            self.last,
            format_metrics(metrics)
        ));
    }

    /// Steps per second in this session up to `step`.
    pub fn rate(&self, step: u64) -> f64 {
        step.saturating_sub(self.first) as f64 / self.started.elapsed().as_secs_f64().max(1e-9)
    }

    pub fn seconds(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// A line above the bar (or on stderr).
    pub fn println(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => {
                eprintln!("{line}");
                self.last_line.set(Instant::now());
            }
        }
    }

    /// Removes the bar before the closing lines.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn format_metrics(metrics: &[(String, f64)]) -> String {
    // Learning rates (`lr.opt_d`) span decades: scientific notation keeps their digits.
    let text = |n: &String, v: &f64| {
        if n.starts_with("lr.") { format!("{n} {v:.3e}") } else { format!("{n} {v:.4}") }
    };
    metrics.iter().map(|(n, v)| text(n, v)).collect::<Vec<_>>().join("  ")
}
