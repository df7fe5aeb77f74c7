//! The QoE metrics: each one's exact definition, in one place, twice — as a
//! Rust computation over per-view facts (the loadgen's ground truth and the
//! unit tests) and as the SQL expression the api runs. Tests hold the two to
//! the same numbers.
//!
//! Vocabulary:
//! - A **view** is one attempt to play one video (one `view_id`). Its truth
//!   is its highest-`seq` event (cumulative counters, sticky flags).
//! - A view has **ended** when its latest event is `viewend`, when it hit a
//!   fatal error, or when nothing arrived for the inactivity timeout
//!   ([`DEFAULT_INACTIVITY_TIMEOUT_S`], configurable).
//! - A **CMCD view** (a player's CMCD v2 event-mode reports,
//!   `crate::cmcd`) is one session (`sid`) and content (`cid`); its facts
//!   are derived from the reports in `sn` order by the processor's
//!   sessionizer, by these rules: time between two reports belongs to the
//!   state the first set (starting, seeking, rebuffering and waiting count
//!   as watch time; playing as watch and playing time; paused,
//!   preloading, ended and failed as nothing); startup is the first
//!   `starting` → the first `playing` report (from the first report when
//!   no `starting` came); rebuffering before the first frame is startup;
//!   **rebuffering or waiting right after a seek, before playing resumes,
//!   is seek latency, not a rebuffer** (so is rebuffering reported at most
//!   100 ms before a seek: the seek's own stall, reported first); each change into rebuffering is
//!   one rebuffer; an error report (`e=e`) or `sta=f` is a playback
//!   failure; `sta=e` or `q` ends the view, and so does a content change
//!   (a `viewend` of its own). A report whose `sn` is not above the
//!   session's last changes nothing.
//! - A **mux-embed view** (`crate::mux`) is one `xid`; its facts are the
//!   SDK's own numbers (startup is its time to first frame, watch,
//!   playing and rebuffering times and the rebuffer count its totals) in
//!   the latest state its events in `xsqno` order make (`mux::facts`;
//!   the state each event sets: `processor/src/mux.rs`).
//! - **Engagement** metrics (views, unique viewers, watch and playing time)
//!   count views whose *start* (`view_start`) is in the queried range.
//!   **QoE** metrics (failures, exits, startup, rebuffering, bitrate) count
//!   views whose *end* — their latest event time — is in the range. So late
//!   heartbeats never move a view into another bucket of history it already
//!   left.
//!
//! Here: the vocabulary and the Rust computation ([`overview`]). [`sql`]
//! has the same metrics as ClickHouse queries, over a per-view subquery
//! with every value bound as a query parameter; [`check`] compares two
//! overviews, each metric within its stated tolerance; [`live`] has the
//! live 5-second numbers, in Rust and SQL.

pub mod check;
pub mod live;
pub mod rollup;
pub mod seal;
pub mod source;
pub mod sql;

pub use check::{MetricCheck, Tolerance};
pub use sql::{
    bind_view_source, breakdown_query, errors_query, fetch_breakdown, fetch_overview,
    overview_query, timeseries_query, view_source, ErrorCode, Filter, FilterValue, Group,
    MetricSql, Scope, Select, OVERVIEW_METRICS,
};

use serde::{Deserialize, Serialize};

use crate::beacon::{Event, EventType};

/// Views without events for this long have ended (the reference product
/// uses one hour).
pub const DEFAULT_INACTIVITY_TIMEOUT_S: u64 = 3600;

/// The per-view facts every metric is computed from (a view's latest event).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ViewFacts {
    pub view_id: String,
    pub viewer_id: String,
    /// View start, seconds since the epoch.
    pub view_start: u32,
    /// Time of the latest event, seconds since the epoch.
    pub last_ts: u32,
    pub last_event: EventType,
    pub play_requested: bool,
    /// Startup time, when the first frame was reached.
    pub startup_time_ms: Option<u32>,
    pub error_fatal: bool,
    pub watch_time_ms: u64,
    pub playing_time_ms: u64,
    pub rebuffer_count: u32,
    pub rebuffer_duration_ms: u64,
    pub avg_bitrate_kbps: u32,
}

impl ViewFacts {
    /// Facts from a view's latest event.
    pub fn from_event(e: &Event) -> ViewFacts {
        ViewFacts {
            view_id: e.view_id.to_string(),
            viewer_id: e.viewer_id.to_string(),
            view_start: (e.view_start_ms / 1000) as u32,
            last_ts: (e.ts_ms / 1000) as u32,
            last_event: e.event,
            play_requested: e.play_requested,
            startup_time_ms: e.startup_time_ms,
            error_fatal: e.error_fatal,
            watch_time_ms: e.watch_time_ms,
            playing_time_ms: e.playing_time_ms,
            rebuffer_count: e.rebuffer_count,
            rebuffer_duration_ms: e.rebuffer_duration_ms,
            avg_bitrate_kbps: e.avg_bitrate_kbps,
        }
    }

    /// One [`ViewFacts`] per view: the highest `seq` wins, duplicates and
    /// reordering are harmless. Sorted by `view_id`.
    pub fn latest_per_view<'a>(events: impl IntoIterator<Item = &'a Event>) -> Vec<ViewFacts> {
        let mut latest: std::collections::BTreeMap<&str, &Event> = Default::default();
        for e in events {
            let slot = latest.entry(&*e.view_id).or_insert(e);
            if e.seq > slot.seq {
                *slot = e;
            }
        }
        latest.values().map(|e| ViewFacts::from_event(e)).collect()
    }

    /// Whether the view has ended at `now` (seconds).
    pub fn ended(&self, now: u32, inactivity_timeout_s: u64) -> bool {
        self.last_event == EventType::Viewend
            || self.error_fatal
            || u64::from(now.saturating_sub(self.last_ts)) >= inactivity_timeout_s
    }
}

/// A half-open time range `[from, to)` in seconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub from: u32,
    pub to: u32,
}

impl Range {
    /// Whether second `t` is in `[from, to)`.
    pub fn contains(&self, t: u32) -> bool {
        self.from <= t && t < self.to
    }
}

/// Every headline metric for one property and time range. Fields are in
/// [`OVERVIEW_METRICS`] order, so the row [`overview_query`] returns
/// deserializes straight into it. A query that [`Select`]s only some reads
/// 0 for the others (through [`fetch_overview`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, clickhouse::Row)]
#[serde(default)]
pub struct Overview {
    /// **Views**: views that started in the range.
    pub views: u64,
    /// **Unique viewers**: distinct `viewer_id` among those views. SQL uses
    /// `uniq` (exact below ~65 k distinct values, within ~2 % above).
    pub unique_viewers: u64,
    /// **Watch time**: Σ `watch_time_ms` of views that started in the range
    /// (time the video was requested, including startup and rebuffering).
    pub watch_time_ms: u64,
    /// **Playing time**: Σ `playing_time_ms` of views that started in the range.
    pub playing_time_ms: u64,
    /// Views whose latest event is in the range (the QoE denominator).
    pub ended_in_range: u64,
    /// **Playback failure %**: views that ended in a fatal error ÷ all views
    /// (of the end range) × 100.
    pub playback_failure_pct: f64,
    /// **Exits before video start %**: ended views where play was requested
    /// but no startup time was ever recorded, failures excluded, ÷ all views
    /// (of the end range) × 100.
    pub exits_before_start_pct: f64,
    /// **Video startup time** p50/p90/p95 in ms over views (of the end range)
    /// that started playing. Exact: the element at index ⌊q·n⌋ of the sorted
    /// startup times (ClickHouse `quantilesExact`).
    pub startup_time_ms_p50: u32,
    /// See `startup_time_ms_p50`.
    pub startup_time_ms_p90: u32,
    /// See `startup_time_ms_p50`.
    pub startup_time_ms_p95: u32,
    /// **Rebuffer percentage**: Σ rebuffering time ÷ Σ watch time × 100 (end range).
    pub rebuffer_pct: f64,
    /// **Rebuffer frequency**: rebuffer events per minute of watch time (end range).
    pub rebuffer_frequency_per_min: f64,
    /// **Rebuffer duration**: Σ rebuffering time ÷ views, ms per view (end range).
    pub rebuffer_duration_ms_per_view: f64,
    /// **Average bitrate**: playing-time-weighted mean of each view's average
    /// bitrate, kbit/s (end range).
    pub avg_bitrate_kbps: f64,
}
fn ratio(num: f64, den: f64) -> f64 {
    if den == 0.0 {
        0.0
    } else {
        num / den
    }
}

/// The element at index ⌊q·n⌋ of the sorted values (0 when empty).
pub fn quantile_exact(sorted: &[u32], q: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((q * sorted.len() as f64) as usize).min(sorted.len() - 1);
    sorted[i]
}

/// Computes the [`Overview`] of `views` for `range`, as of `now`.
pub fn overview(
    views: &[ViewFacts],
    range: Range,
    now: u32,
    inactivity_timeout_s: u64,
) -> Overview {
    let started: Vec<&ViewFacts> = views
        .iter()
        .filter(|v| range.contains(v.view_start))
        .collect();
    let ended: Vec<&ViewFacts> = views.iter().filter(|v| range.contains(v.last_ts)).collect();
    // Same operation order as the SQL, so both give bit-identical floats.
    let n_end = ended.len() as f64;
    let failures = ended.iter().filter(|v| v.error_fatal).count() as f64;
    let exits = ended
        .iter()
        .filter(|v| {
            v.ended(now, inactivity_timeout_s)
                && v.play_requested
                && v.startup_time_ms.is_none()
                && !v.error_fatal
        })
        .count() as f64;
    let mut startups: Vec<u32> = ended.iter().filter_map(|v| v.startup_time_ms).collect();
    startups.sort_unstable();
    let watch_end: u64 = ended.iter().map(|v| v.watch_time_ms).sum();
    let rebuf_ms: u64 = ended.iter().map(|v| v.rebuffer_duration_ms).sum();
    let rebuf_n: u64 = ended.iter().map(|v| u64::from(v.rebuffer_count)).sum();
    let playing_end: u64 = ended.iter().map(|v| v.playing_time_ms).sum();
    let bitrate_weighted: u64 = ended
        .iter()
        .map(|v| u64::from(v.avg_bitrate_kbps) * v.playing_time_ms)
        .sum();
    let viewers: std::collections::BTreeSet<&str> =
        started.iter().map(|v| v.viewer_id.as_str()).collect();
    Overview {
        views: started.len() as u64,
        unique_viewers: viewers.len() as u64,
        watch_time_ms: started.iter().map(|v| v.watch_time_ms).sum(),
        playing_time_ms: started.iter().map(|v| v.playing_time_ms).sum(),
        ended_in_range: ended.len() as u64,
        playback_failure_pct: ratio(100.0 * failures, n_end),
        exits_before_start_pct: ratio(100.0 * exits, n_end),
        startup_time_ms_p50: quantile_exact(&startups, 0.5),
        startup_time_ms_p90: quantile_exact(&startups, 0.9),
        startup_time_ms_p95: quantile_exact(&startups, 0.95),
        rebuffer_pct: ratio(100.0 * rebuf_ms as f64, watch_end as f64),
        rebuffer_frequency_per_min: ratio(rebuf_n as f64, watch_end as f64 / 60_000.0),
        rebuffer_duration_ms_per_view: ratio(rebuf_ms as f64, n_end),
        avg_bitrate_kbps: ratio(bitrate_weighted as f64, playing_end as f64),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn view(id: &str, start: u32, last: u32) -> ViewFacts {
        ViewFacts {
            view_id: id.into(),
            viewer_id: format!("viewer-{id}"),
            view_start: start,
            last_ts: last,
            last_event: EventType::Viewend,
            play_requested: true,
            startup_time_ms: Some(1000),
            error_fatal: false,
            watch_time_ms: 60_000,
            playing_time_ms: 50_000,
            rebuffer_count: 0,
            rebuffer_duration_ms: 0,
            avg_bitrate_kbps: 3000,
        }
    }

    #[test]
    fn hand_computed_overview() {
        // Four views, all starting and ending inside [0, 1000).
        let mut a = view("a", 10, 100);
        a.startup_time_ms = Some(500);
        a.rebuffer_count = 2;
        a.rebuffer_duration_ms = 6_000;
        let mut b = view("b", 20, 200);
        b.startup_time_ms = Some(1500);
        b.viewer_id = a.viewer_id.clone(); // same viewer twice
        b.avg_bitrate_kbps = 1000;
        b.playing_time_ms = 150_000;
        let mut c = view("c", 30, 40); // exit before start
        c.startup_time_ms = None;
        c.watch_time_ms = 4_000;
        c.playing_time_ms = 0;
        let mut d = view("d", 40, 90); // fatal failure, never started
        d.startup_time_ms = None;
        d.error_fatal = true;
        d.last_event = EventType::Error;
        d.watch_time_ms = 16_000;
        d.playing_time_ms = 0;
        let o = overview(&[a, b, c, d], Range { from: 0, to: 1000 }, 5000, 3600);
        assert_eq!(o.views, 4);
        assert_eq!(o.unique_viewers, 3);
        assert_eq!(o.watch_time_ms, 60_000 + 60_000 + 4_000 + 16_000);
        assert_eq!(o.playing_time_ms, 200_000);
        assert_eq!(o.playback_failure_pct, 25.0);
        assert_eq!(o.exits_before_start_pct, 25.0);
        // Startup times sorted [500, 1500]: p50 = index 1, p90 = index 1.
        assert_eq!((o.startup_time_ms_p50, o.startup_time_ms_p90), (1500, 1500));
        // 6 s rebuffering over 140 s watched.
        assert!((o.rebuffer_pct - 100.0 * 6.0 / 140.0).abs() < 1e-12);
        // 2 rebuffers over 140/60 minutes.
        assert!((o.rebuffer_frequency_per_min - 2.0 / (140.0 / 60.0)).abs() < 1e-12);
        assert_eq!(o.rebuffer_duration_ms_per_view, 1500.0);
        // (3000·50 000 + 1000·150 000) / 200 000
        assert_eq!(o.avg_bitrate_kbps, 1500.0);
    }

    #[test]
    fn engagement_by_start_and_qoe_by_end() {
        let mut late = view("late", 50, 150); // started in [0,100), ended in [100,200)
        late.error_fatal = true;
        let views = [late];
        let first = overview(&views, Range { from: 0, to: 100 }, 1000, 3600);
        assert_eq!((first.views, first.ended_in_range), (1, 0));
        assert_eq!(first.playback_failure_pct, 0.0);
        let second = overview(&views, Range { from: 100, to: 200 }, 1000, 3600);
        assert_eq!((second.views, second.ended_in_range), (0, 1));
        assert_eq!(second.playback_failure_pct, 100.0);
    }

    #[test]
    fn an_unended_view_is_not_an_exit_yet() {
        let mut waiting = view("w", 10, 20);
        waiting.startup_time_ms = None;
        waiting.last_event = EventType::Heartbeat;
        let r = Range { from: 0, to: 100 };
        assert_eq!(
            overview(&[waiting.clone()], r, 30, 3600).exits_before_start_pct,
            0.0
        );
        // After the inactivity timeout it has ended, never having started.
        assert_eq!(
            overview(&[waiting], r, 20 + 3600, 3600).exits_before_start_pct,
            100.0
        );
    }

    #[test]
    fn quantiles_match_clickhouse_quantile_exact() {
        // Values checked against ClickHouse 18.16: quantilesExact(0.5,0.9,0.95)
        // of [10,20,30,40] = [30,40,40].
        let s = [10, 20, 30, 40];
        assert_eq!(
            [
                quantile_exact(&s, 0.5),
                quantile_exact(&s, 0.9),
                quantile_exact(&s, 0.95)
            ],
            [30, 40, 40]
        );
        assert_eq!(quantile_exact(&[], 0.5), 0);
    }

    #[test]
    fn empty_input_gives_zeros_not_nan() {
        let o = overview(&[], Range { from: 0, to: 10 }, 10, 3600);
        assert_eq!(o.views, 0);
        assert_eq!(o.rebuffer_pct, 0.0);
        assert_eq!(o.avg_bitrate_kbps, 0.0);
    }

    #[test]
    fn latest_seq_wins() {
        let base = crate::sample::event("v1", 1);
        let mut later = base.clone();
        later.seq = 5;
        later.watch_time_ms = 99_000;
        let facts = ViewFacts::latest_per_view([&later, &base, &base]);
        assert_eq!(facts.len(), 1);
        assert_eq!(facts[0].watch_time_ms, 99_000);
    }
}
