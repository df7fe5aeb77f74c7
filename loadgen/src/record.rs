//! Run records: a JSON result per run under `<results_dir>/results/` (with
//! its ground truth beside it, for a later `verify`) and a Markdown row
//! appended to `<results_dir>/RESULTS.md`, so runs compare over time.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::step::StepResult;
use crate::truth::Verification;

/// Everything a run wants remembered.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    /// `YYYYmmddTHHMMSSZ-<kind>`.
    pub id: String,
    /// `run` or `capacity`.
    pub kind: String,
    /// When it started (RFC 3339, UTC).
    pub started_at: String,
    /// `git describe --always --dirty` of the checkout, if any.
    pub git_revision: String,
    pub machine: Machine,
    /// The command line's profile and the configuration in force.
    pub config: serde_json::Value,
    pub steps: Vec<StepResult>,
    pub total: StepResult,
    pub verify: Option<Verification>,
    /// Capacity: the largest viewer count whose step passed.
    pub last_passing_viewers: Option<u64>,
    /// Capacity: the first SLO broken, and the component whose backlog grew.
    pub first_breach: Option<String>,
    pub backlog_grew: Option<String>,
    /// `pass` or `fail: <what broke>`.
    pub verdict: String,
}

/// Where it ran (no host names or paths: only what shapes the figures).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    pub cores: usize,
    pub memory_gib: f64,
    pub kernel: String,
    pub arch: String,
}

impl Machine {
    /// This machine.
    pub fn here() -> Machine {
        let memory_kib: f64 = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find(|l| l.starts_with("MemTotal:"))?
                    .split_whitespace()
                    .nth(1)?
                    .parse()
                    .ok()
            })
            .unwrap_or(0.0);
        Machine {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_gib: (memory_kib / 1024.0 / 1024.0 * 10.0).round() / 10.0,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_owned())
                .unwrap_or_default(),
            arch: std::env::consts::ARCH.into(),
        }
    }
}

/// `git describe --always --dirty`, or `unknown`.
pub fn git_revision() -> String {
    std::process::Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".into())
}

/// Paths of one run's files.
pub fn paths(dir: &Path, id: &str) -> (PathBuf, PathBuf) {
    let results = dir.join("results");
    (
        results.join(format!("{id}.json")),
        results.join(format!("{id}.truth.json")),
    )
}

/// The read p90 column (ms): a number, or "failed" when the reads did.
fn read_p90_cell(ms: f64) -> String {
    if ms >= crate::step::READ_FAILED_MS {
        "failed".to_owned()
    } else {
        format!("{ms:.0}")
    }
}

/// Writes the JSON result and appends the RESULTS.md row.
pub fn write(dir: &Path, record: &RunRecord) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir.join("results"))?;
    let (json, _) = paths(dir, &record.id);
    std::fs::write(
        &json,
        serde_json::to_vec_pretty(record).map_err(std::io::Error::other)?,
    )?;
    let table = dir.join("RESULTS.md");
    let fresh = !table.exists();
    let mut md = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&table)?;
    if fresh {
        writeln!(md, "# Load test results\n")?;
        writeln!(md, "One row per `qoe-loadgen run` / `capacity`; the JSON beside each (`results/<id>.json`) has every step.\n")?;
        writeln!(md, "| id | kind | git | cores | viewers | seconds | events/s sent | request p99 ms | write p99 s | read p90 ms | errors/s | missing | verify | verdict |")?;
        writeln!(
            md,
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
        )?;
    }
    let t = &record.total;
    let viewers = record
        .last_passing_viewers
        .map_or(t.viewers.to_string(), |v| {
            format!("{v} (last passing of {})", t.viewers)
        });
    writeln!(
        md,
        "| {} | {} | {} | {} | {} | {:.0} | {:.0} | {:.1} | {:.1} | {} | {:.3} | {} | {} | {} |",
        record.id,
        record.kind,
        record.git_revision,
        record.machine.cores,
        viewers,
        t.seconds,
        t.sent_per_s,
        t.request_p99_ms,
        t.write_latency_p99_s,
        read_p90_cell(t.read_latency_p90_ms),
        t.errors_per_s,
        record
            .verify
            .as_ref()
            .map_or("-".into(), |v| v.missing.to_string()),
        record
            .verify
            .as_ref()
            .map_or("-", |v| if v.ok { "match" } else { "MISMATCH" }),
        record.verdict,
    )?;
    Ok(json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_reads_show_as_failed_in_the_table() {
        assert_eq!(read_p90_cell(412.4), "412");
        assert_eq!(read_p90_cell(crate::step::READ_FAILED_MS), "failed");
    }
}
