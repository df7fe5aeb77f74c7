//! One step of a run: the raw samples it collects ([`Window`]), the figures
//! they make ([`StepResult`]), and the verdicts on them (SLOs broken, the
//! component whose backlog grew).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::config::LoadgenConfig;

/// Figures of one step (its ramp and hold).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StepResult {
    pub viewers: u64,
    pub seconds: f64,
    pub requests: u64,
    pub events_sent: u64,
    pub events_accepted: u64,
    pub events_rejected: u64,
    pub shed: u64,
    pub refused: u64,
    pub failed: u64,
    /// Batches given up after `run.max_attempts` sends.
    pub dropped: u64,
    /// Batches still queued (or waiting to retry) when the load stopped.
    pub unsent: u64,
    pub errors_per_s: f64,
    pub sent_per_s: f64,
    pub request_p50_ms: f64,
    pub request_p99_ms: f64,
    pub write_latency_p50_s: f64,
    pub write_latency_p99_s: f64,
    pub markers: u64,
    pub read_latency_p90_ms: f64,
    pub reads: u64,
    /// Backlog gauges at the step's start and end, by component.
    pub backlog_start: Vec<(String, f64)>,
    pub backlog_end: Vec<(String, f64)>,
    /// SLOs this step broke (empty: passed).
    pub broken: Vec<String>,
}

/// Raw samples of one step (or the whole run).
#[derive(Default)]
pub(crate) struct Window {
    pub(crate) start_ms: i64,
    pub(crate) requests: u64,
    pub(crate) events_sent: u64,
    pub(crate) events_accepted: u64,
    pub(crate) events_rejected: u64,
    pub(crate) shed: u64,
    pub(crate) refused: u64,
    pub(crate) failed: u64,
    pub(crate) dropped: u64,
    pub(crate) unsent: u64,
    /// Latency of accepted requests only: a shed answer is fast by design
    /// and would hide how long the accepted ones took.
    pub(crate) request_ms: Vec<f32>,
    pub(crate) answered: u64,
    pub(crate) last_answered: u64,
    pub(crate) write_s: Vec<f32>,
    pub(crate) read_ms: Vec<f32>,
    pub(crate) last_requests: u64,
    pub(crate) last_latency: usize,
}

impl Window {
    pub(crate) fn new(start_ms: i64) -> Window {
        Window {
            start_ms,
            ..Window::default()
        }
    }

    pub(crate) fn markers_open(&self, pending: &HashMap<String, i64>) -> bool {
        pending.values().any(|&at| at >= self.start_ms)
    }

    pub(crate) fn result(
        &mut self,
        viewers: u64,
        now: i64,
        pending: &HashMap<String, i64>,
    ) -> StepResult {
        let seconds = ((now - self.start_ms) as f64 / 1000.0).max(0.001);
        // Markers of this window still unseen count with their age so far:
        // a store that never shows them cannot pass.
        let mut write_s = self.write_s.clone();
        write_s.extend(
            pending
                .values()
                .filter(|&&at| at >= self.start_ms)
                .map(|&at| ((now - at) as f64 / 1000.0) as f32),
        );
        for v in [&mut self.request_ms, &mut write_s, &mut self.read_ms] {
            v.sort_by(f32::total_cmp);
        }
        let errors = self.shed + self.refused + self.failed;
        StepResult {
            viewers,
            seconds,
            requests: self.requests,
            events_sent: self.events_sent,
            events_accepted: self.events_accepted,
            events_rejected: self.events_rejected,
            shed: self.shed,
            refused: self.refused,
            failed: self.failed,
            dropped: self.dropped,
            unsent: self.unsent,
            errors_per_s: errors as f64 / seconds,
            sent_per_s: self.events_sent as f64 / seconds,
            request_p50_ms: pick(&self.request_ms, 0.5),
            request_p99_ms: pick(&self.request_ms, 0.99),
            write_latency_p50_s: pick(&write_s, 0.5),
            write_latency_p99_s: pick(&write_s, 0.99),
            markers: write_s.len() as u64,
            read_latency_p90_ms: pick(&self.read_ms, 0.9),
            reads: self.read_ms.len() as u64,
            ..StepResult::default()
        }
    }
}

/// What a failed read probe counts as (milliseconds): slower than any
/// SLO, so a p90 at it means the reads failed.
pub const READ_FAILED_MS: f64 = u32::MAX as f64;

/// A read p90 for people: milliseconds, or "failed" when the reads did.
pub fn read_p90_text(ms: f64) -> String {
    if ms >= READ_FAILED_MS {
        "failed".to_owned()
    } else {
        format!("{ms:.0}ms")
    }
}

/// The element at ⌊q·n⌋ of sorted samples (0 when there are none).
pub fn pick(sorted: &[f32], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    f64::from(sorted[((q * sorted.len() as f64) as usize).min(sorted.len() - 1)])
}

/// The SLOs `r` broke, by name.
pub fn breaches(cfg: &LoadgenConfig, r: &StepResult) -> Vec<String> {
    let slo = &cfg.run.slo;
    let mut broken = Vec::new();
    if r.write_latency_p99_s >= slo.write_latency_p99_s || r.markers == 0 {
        broken.push(format!("write_latency_p99 {:.1}s", r.write_latency_p99_s));
    }
    if r.errors_per_s >= slo.errors_per_s {
        broken.push(format!("error_rate {:.3}/s", r.errors_per_s));
    }
    if r.read_latency_p90_ms >= slo.read_latency_p90_ms || r.reads == 0 {
        broken.push(format!(
            "read_latency_p90 {}",
            read_p90_text(r.read_latency_p90_ms)
        ));
    }
    broken
}

/// The component whose backlog grew the most during `r` (relative to the
/// larger of its start and 1000), if any grew.
pub fn backlog_grew(r: &StepResult) -> Option<String> {
    r.backlog_end
        .iter()
        .filter_map(|(name, end)| {
            let start = r.backlog_start.iter().find(|(n, _)| n == name)?.1;
            let growth = (end - start) / start.max(1000.0);
            (growth.is_finite() && growth > 0.1).then(|| (name.clone(), growth, *end))
        })
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(name, _, end)| format!("{name} (backlog {end:.0})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_reads_read_as_failed_not_as_a_number() {
        assert_eq!(read_p90_text(412.4), "412ms");
        let samples = [12.0, READ_FAILED_MS as f32];
        assert_eq!(read_p90_text(pick(&samples, 0.9)), "failed");
    }
}
