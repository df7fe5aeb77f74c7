//! Golden cases: hand-written beacon sequences, each with the metric values
//! a person worked out from the definitions in `schema/README.md` and
//! [`crate::metrics`], written as literals next to it. They check the
//! definitions from outside: the Rust computation (unit test below) and the
//! whole pipeline — collector, broker, processor, ClickHouse, the metric SQL
//! and the api (`loadgen/tests/golden.rs`) — must give exactly these numbers.
//!
//! Times are relative to a midnight (`base`, seconds since the epoch), so a
//! test can place the cases on any day: in the past for the end-to-end run,
//! which the collector must accept as recent enough.
//!
//! Each view is written the way an SDK keeps it: every beacon carries the
//! view's state so far, and `ViewWriter::at` names only what changed.

use serde_json::{json, Map, Value};

use crate::metrics::{Overview, Range};

mod cases;
pub use cases::cases;

/// One golden case.
pub struct Case {
    /// A short name (a test names the failing case with it).
    pub name: &'static str,
    /// Why the expected numbers are what they are, in one line.
    pub why: &'static str,
    /// The beacons in the order they are posted, times relative to `base`.
    beacons: Vec<Value>,
    /// What the metrics must be.
    pub checks: Vec<Check>,
}

/// The expected [`Overview`] for one range, evaluated at one time.
pub struct Check {
    /// `[from, to)` in seconds relative to `base`.
    pub range: (i64, i64),
    /// "Now" for the inactivity timeout, seconds relative to `base`.
    pub now: i64,
    pub expect: Overview,
}

impl Case {
    /// The beacons as posted, with absolute `ts` and `view_start` (ms).
    pub fn beacons(&self, base: u32) -> Vec<Value> {
        let base_ms = i64::from(base) * 1000;
        self.beacons
            .iter()
            .map(|b| {
                let mut b = b.clone();
                for key in ["ts", "view_start"] {
                    let t = b[key].as_i64().unwrap_or_default();
                    b[key] = json!(base_ms + t);
                }
                b
            })
            .collect()
    }

    /// Distinct `(view_id, seq)` among the beacons: what the store must hold.
    pub fn distinct_events(&self) -> usize {
        let ids: std::collections::BTreeSet<(String, u64)> = self
            .beacons
            .iter()
            .map(|b| (b["view_id"].to_string(), b["seq"].as_u64().unwrap_or(0)))
            .collect();
        ids.len()
    }
}

impl Check {
    /// The range in absolute seconds.
    pub fn range(&self, base: u32) -> Range {
        let at = |t: i64| (i64::from(base) + t) as u32;
        Range {
            from: at(self.range.0),
            to: at(self.range.1),
        }
    }

    /// "Now" in absolute seconds.
    pub fn now(&self, base: u32) -> u32 {
        (i64::from(base) + self.now) as u32
    }
}

/// Writes one view's beacons, carrying its state from one to the next.
pub(crate) struct ViewWriter {
    /// `view_start`, ms relative to the base.
    start_ms: i64,
    state: Map<String, Value>,
    beacons: Vec<Value>,
}

impl ViewWriter {
    /// A view `id` of `viewer` starting `start_s` seconds after the base.
    pub(crate) fn new(id: &str, viewer: &str, start_s: i64) -> ViewWriter {
        let mut state = Map::new();
        state.insert("view_id".into(), json!(id));
        state.insert("viewer_id".into(), json!(viewer));
        state.insert("video_id".into(), json!("golden-video"));
        ViewWriter {
            start_ms: start_s * 1000,
            state,
            beacons: Vec::new(),
        }
    }

    /// Fields every beacon of the view carries (dimensions).
    pub(crate) fn with(mut self, fields: Value) -> ViewWriter {
        self.merge(fields);
        self
    }

    /// Beacon `seq`, `event`, `ms` after the view's start; `changes` are
    /// the fields that changed since the previous beacon.
    pub(crate) fn at(mut self, seq: u32, event: &str, ms: i64, changes: Value) -> ViewWriter {
        self.merge(changes);
        let mut b = self.state.clone();
        b.insert("seq".into(), json!(seq));
        b.insert("event".into(), json!(event));
        b.insert("ts".into(), json!(self.start_ms + ms));
        b.insert("view_start".into(), json!(self.start_ms));
        self.beacons.push(Value::Object(b));
        self
    }

    fn merge(&mut self, fields: Value) {
        if let Value::Object(fields) = fields {
            self.state.extend(fields);
        }
    }

    pub(crate) fn done(self) -> Vec<Value> {
        self.beacons
    }
}

#[cfg(test)]
mod tests {
    use super::cases::DAY;
    use super::*;
    use crate::metrics::{overview, ViewFacts, DEFAULT_INACTIVITY_TIMEOUT_S};
    use crate::validate::{decode, Checks};

    /// A midnight (2026-11-28 00:00 UTC).
    const BASE: u32 = 1_795_824_000;

    #[test]
    fn the_rust_definitions_give_the_hand_written_numbers() {
        let mut failed = Vec::new();
        for case in cases() {
            let body = Value::Array(case.beacons(BASE)).to_string();
            let checks = Checks {
                now_ms: (i64::from(BASE) + 2 * DAY) * 1000,
                max_age_ms: 3 * DAY * 1000,
                max_future_ms: 0,
            };
            let decoded = decode(body.as_bytes(), &checks).expect("a golden body decodes");
            assert!(
                decoded.rejected.is_empty(),
                "{}: {:?}",
                case.name,
                decoded.rejected
            );
            let views = ViewFacts::latest_per_view(&decoded.accepted);
            for check in &case.checks {
                let got = overview(
                    &views,
                    check.range(BASE),
                    check.now(BASE),
                    DEFAULT_INACTIVITY_TIMEOUT_S,
                );
                if let Err(diff) = got.compare(&check.expect) {
                    failed.push(format!("{} ({}): {diff}", case.name, case.why));
                }
            }
        }
        assert!(failed.is_empty(), "{}", failed.join("\n"));
    }

    #[test]
    fn there_are_the_readme_example_and_at_least_ten_more() {
        let cases = cases();
        assert!(cases.len() >= 11);
        let names: std::collections::BTreeSet<_> = cases.iter().map(|c| c.name).collect();
        assert_eq!(names.len(), cases.len(), "names are unique");
    }
}
