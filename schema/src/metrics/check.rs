//! Comparing two overviews: each metric within its own tolerance, stated
//! once here for the tests, the golden cases and `verify`.

use serde::{Deserialize, Serialize};

use super::{Overview, OVERVIEW_METRICS};

/// How close a metric from the store must be to its expected value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Tolerance {
    Exact,
    /// `|got − want| ≤ r · max(|got|, |want|, 1)`.
    Relative(f64),
}

impl Tolerance {
    /// Each metric's tolerance, stated once for every comparison (tests,
    /// golden cases and `verify`):
    /// - `unique_viewers`: 2 %. SQL `uniq` keeps an adaptive sample of
    ///   hashes: exact for small sets, within ~2 % at millions. With the
    ///   `max(…, 1)` scale any count below 50 must still match exactly.
    /// - ratios and averages: 1e-9. SQL and Rust divide the same sums, but
    ///   float evaluation order may differ in the last bits.
    /// - everything else (counts, sums, exact quantiles): exact.
    pub fn of(metric: &str) -> Tolerance {
        match metric {
            "unique_viewers" => Tolerance::Relative(0.02),
            "playback_failure_pct"
            | "exits_before_start_pct"
            | "rebuffer_pct"
            | "rebuffer_frequency_per_min"
            | "rebuffer_duration_ms_per_view"
            | "avg_bitrate_kbps" => Tolerance::Relative(1e-9),
            _ => Tolerance::Exact,
        }
    }

    /// Whether `got` is close enough to `want`.
    pub fn allows(self, got: f64, want: f64) -> bool {
        match self {
            Tolerance::Exact => got == want,
            Tolerance::Relative(r) => (got - want).abs() <= r * got.abs().max(want.abs()).max(1.0),
        }
    }
}

impl std::fmt::Display for Tolerance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Tolerance::Exact => f.write_str("exact"),
            Tolerance::Relative(r) if *r >= 0.001 => write!(f, "{} %", r * 100.0),
            Tolerance::Relative(r) => write!(f, "{r:e}"),
        }
    }
}

/// One metric compared: what was expected, what came, and whether that is
/// within the metric's [`Tolerance`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricCheck {
    pub metric: String,
    pub expected: f64,
    pub got: f64,
    /// The tolerance as text (`exact`, `2 %`, `1e-9`).
    pub tolerance: String,
    pub ok: bool,
}

impl Overview {
    /// Every metric of `self` (what came) against `want`, in
    /// [`OVERVIEW_METRICS`] order.
    pub fn check(&self, want: &Overview) -> Vec<MetricCheck> {
        let (got, want) = (self.values(), want.values());
        OVERVIEW_METRICS
            .iter()
            .zip(got.iter().zip(want.iter()))
            .map(|(m, (&got, &expected))| {
                let tolerance = Tolerance::of(m.name);
                MetricCheck {
                    metric: m.name.to_owned(),
                    expected,
                    got,
                    tolerance: tolerance.to_string(),
                    ok: tolerance.allows(got, expected),
                }
            })
            .collect()
    }

    /// [`Overview::check`] as a verdict: `Err` lists every metric out of
    /// tolerance, `name: got vs want`.
    pub fn compare(&self, want: &Overview) -> Result<(), String> {
        let diffs: Vec<String> = self
            .check(want)
            .into_iter()
            .filter(|c| !c.ok)
            .map(|c| format!("{}: {} vs {}", c.metric, c.got, c.expected))
            .collect();
        if diffs.is_empty() {
            Ok(())
        } else {
            Err(diffs.join("; "))
        }
    }

    /// The values in [`OVERVIEW_METRICS`] order (integers are exact in f64
    /// up to 2^53, far above any count here).
    fn values(&self) -> [f64; 14] {
        [
            self.views as f64,
            self.unique_viewers as f64,
            self.watch_time_ms as f64,
            self.playing_time_ms as f64,
            self.ended_in_range as f64,
            self.playback_failure_pct,
            self.exits_before_start_pct,
            self.startup_time_ms_p50.into(),
            self.startup_time_ms_p90.into(),
            self.startup_time_ms_p95.into(),
            self.rebuffer_pct,
            self.rebuffer_frequency_per_min,
            self.rebuffer_duration_ms_per_view,
            self.avg_bitrate_kbps,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::tests::view;
    use crate::metrics::{overview, Range};

    #[test]
    fn compare_names_what_differs() {
        let a = overview(
            &[view("a", 10, 100)],
            Range { from: 0, to: 1000 },
            5000,
            3600,
        );
        assert_eq!(a.compare(&a.clone()), Ok(()));
        let mut b = a.clone();
        b.views += 1;
        b.rebuffer_pct += 1e-3;
        let err = a.compare(&b).unwrap_err();
        assert!(
            err.contains("views: 1 vs 2") && err.contains("rebuffer_pct"),
            "{err}"
        );
        let mut c = a.clone();
        c.avg_bitrate_kbps *= 1.0 + 1e-12; // float noise is not a difference
        assert_eq!(a.compare(&c), Ok(()));
    }

    #[test]
    fn each_metric_has_its_tolerance() {
        let mut want = overview(
            &[view("a", 10, 100)],
            Range { from: 0, to: 1000 },
            5000,
            3600,
        );
        want.unique_viewers = 100_000;
        let mut got = want.clone();
        got.unique_viewers = 101_000; // 1 %: within uniq's error
        assert_eq!(got.compare(&want), Ok(()));
        got.unique_viewers = 103_000;
        assert!(got.compare(&want).is_err(), "3 % is not");
        // Small counts must match exactly, even under the 2 % rule.
        want.unique_viewers = 3;
        got.unique_viewers = 2;
        assert!(got.compare(&want).is_err());
        let checks = want.check(&want);
        assert_eq!(checks.len(), OVERVIEW_METRICS.len());
        let tolerance = |m: &str| {
            checks
                .iter()
                .find(|c| c.metric == m)
                .unwrap()
                .tolerance
                .clone()
        };
        assert_eq!(tolerance("views"), "exact");
        assert_eq!(tolerance("unique_viewers"), "2 %");
        assert_eq!(tolerance("rebuffer_pct"), "1e-9");
    }

    #[test]
    fn checks_read_each_metric_from_its_own_field() {
        let o = Overview {
            views: 1,
            unique_viewers: 2,
            watch_time_ms: 3,
            playing_time_ms: 4,
            ended_in_range: 5,
            playback_failure_pct: 6.5,
            exits_before_start_pct: 7.5,
            startup_time_ms_p50: 8,
            startup_time_ms_p90: 9,
            startup_time_ms_p95: 10,
            rebuffer_pct: 11.5,
            rebuffer_frequency_per_min: 12.5,
            rebuffer_duration_ms_per_view: 13.5,
            avg_bitrate_kbps: 14.5,
        };
        let fields = serde_json::to_value(&o).unwrap();
        for c in o.check(&o) {
            assert_eq!(Some(c.got), fields[&c.metric].as_f64(), "{}", c.metric);
        }
    }
}
