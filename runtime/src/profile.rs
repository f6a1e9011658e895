//! Where a training step's time goes (`genc train --profile`): wall time summed by the kind
//! of work — each `Program` step kind (a library op by its primitive, fused element-wise
//! groups, fused reductions) and the trainer's own work around the phases (the data feed,
//! optimizer updates, reading losses back, EMA, clipping).
//!
//! A profile that is off costs one branch per step. One that is on waits for the device after
//! each timed piece of work (a no-op on the host device, a sync on Vulkan), so on a Vulkan
//! device it measures kernels one at a time, not the overlapped pipeline.

use std::time::{Duration, Instant};

use crate::device::{Device, DeviceError};

/// Wall time and call counts by kind of work.
#[derive(Debug, Default)]
pub struct Profile {
    enabled: bool,
    /// (kind, total time, calls), in first-seen order.
    entries: Vec<(String, Duration, u64)>,
}

impl Profile {
    /// A profile that records nothing.
    pub fn off() -> Profile {
        Profile::default()
    }

    /// A profile that records.
    pub fn on() -> Profile {
        Profile { enabled: true, entries: Vec::new() }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The start of a timed piece of work: `None` when the profile is off.
    pub fn start(&self) -> Option<Instant> {
        self.enabled.then(Instant::now)
    }

    /// Ends a piece of work begun at `started` ([`Profile::start`]): waits for `device` and
    /// charges the time to `kind`. Nothing when the profile is off.
    pub fn stop(&mut self, device: &Device, kind: &str, started: Option<Instant>) -> Result<(), DeviceError> {
        if let Some(start) = started {
            device.sync()?;
            self.add(kind, start.elapsed());
        }
        Ok(())
    }

    /// Charges `elapsed` to `kind`.
    pub fn add(&mut self, kind: &str, elapsed: Duration) {
        if !self.enabled {
            return;
        }
        match self.entries.iter_mut().find(|(k, _, _)| k == kind) {
            Some(entry) => {
                entry.1 += elapsed;
                entry.2 += 1;
            }
            None => self.entries.push((kind.to_string(), elapsed, 1)),
        }
    }

    /// The total time recorded.
    pub fn total(&self) -> Duration {
        self.entries.iter().map(|(_, t, _)| *t).sum()
    }

    /// A Markdown table over `steps` steps: per kind, calls and milliseconds per step and the
    /// share of the recorded time, slowest first.
    pub fn table(&self, steps: u64) -> String {
        let steps = steps.max(1) as f64;
        let total = self.total().as_secs_f64().max(f64::MIN_POSITIVE);
        let mut rows: Vec<&(String, Duration, u64)> = self.entries.iter().collect();
        rows.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let mut out = String::from("| work | calls/step | ms/step | share |\n| --- | ---: | ---: | ---: |\n");
        for (kind, time, calls) in rows {
            let secs = time.as_secs_f64();
            out += &format!(
                "| {kind} | {:.1} | {:.3} | {:.1} % |\n",
                *calls as f64 / steps,
                secs * 1e3 / steps,
                100.0 * secs / total
            );
        }
        out += &format!("| **total** | | {:.3} | 100 % |\n", total * 1e3 / steps);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_off_profile_records_nothing() {
        let mut p = Profile::off();
        p.add("matmul", Duration::from_millis(3));
        assert_eq!(p.total(), Duration::ZERO);
    }

    #[test]
    fn the_table_sums_by_kind_slowest_first_per_step() {
        let mut p = Profile::on();
        p.add("fused", Duration::from_millis(1));
        p.add("matmul", Duration::from_millis(4));
        p.add("fused", Duration::from_millis(3));
        let table = p.table(2);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[2], "| fused | 1.0 | 2.000 | 50.0 % |");
        assert_eq!(lines[3], "| matmul | 0.5 | 2.000 | 50.0 % |");
        assert_eq!(lines[4], "| **total** | | 4.000 | 100 % |");
    }
}
