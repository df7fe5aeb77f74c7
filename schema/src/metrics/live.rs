//! **Live numbers** (the api's `/v1/monitoring`): what is happening now,
//! in 5-second buckets.
//!
//! A view is *in* bucket `b` (`[b, b + 5)` seconds, aligned to the epoch)
//! when it sent an event in the 15 s up to the bucket's end,
//! `[b − 10, b + 5)`: one heartbeat interval and a bucket. Over those
//! events, each counted by its own dimension values:
//! - **concurrent viewers**: views with an event whose state is starting,
//!   playing, rebuffering or seeking — not idle, paused or over, and not
//!   rebuffering for more than 5 minutes ([`LONG_REBUFFER_MS`]);
//! - **current rebuffering %**: views with such an event rebuffering ÷
//!   concurrent viewers × 100;
//! - **current average bitrate**: the mean bitrate of the playing views, a
//!   view counted once per rendition it played in the window;
//! - **playback failure %**: views with a fatal error event ÷ views with an
//!   ending event (`viewend` or a fatal error) × 100;
//! - **exits before video start %**: views ending by `viewend` with play
//!   requested, no first frame and no failure ÷ views ending × 100.
//!
//! Written ahead of reads: ClickHouse keeps `uniq` states per bucket
//! (`live_local`, migration 0005: replays change nothing), the
//! processor's live job turns each shard's buckets into counts while they
//! settle ([`settle_query`] into `live_counts_local`), and the api sums
//! the shards' counts ([`series_query`], [`breakdown_query`]).

use std::collections::{BTreeMap, HashSet};

use clickhouse::query::Query;
use clickhouse::sql::Identifier;
use clickhouse::Client;
use serde::{Deserialize, Serialize};

use super::Range;
use crate::beacon::{Event, EventType, PlayerState};

/// Bucket length, seconds.
pub const BUCKET_S: u32 = 5;

/// An event counts in its own bucket and the ones after it up to this
/// window, seconds.
pub const WINDOW_S: u32 = 15;

/// Views rebuffering for longer than this are no longer concurrent.
pub const LONG_REBUFFER_MS: u64 = 300_000;

/// The `views`/event columns the live numbers break down by (the `dim` of
/// the `live` tables; `all` holds every view).
pub const DIMENSIONS: &[&str] = &[
    "country",
    "asn",
    "os",
    "browser",
    "device_type",
    "player_name",
    "cdn",
    "stream_type",
    "video_id",
];

/// The counts of one bucket (for one dimension value, or all views).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LiveCounts {
    /// Concurrent viewers.
    pub concurrent: u64,
    /// Of them, rebuffering.
    pub rebuffering: u64,
    /// Playing views, a view counted once per rendition (bitrate).
    pub playing: u64,
    /// Σ bitrate over `playing`, kbit/s.
    pub bitrate_kbps_sum: u64,
    /// Views with an ending event.
    pub ended: u64,
    /// Views with a fatal error event.
    pub failed: u64,
    /// Views that left before their first frame.
    pub exited: u64,
}

impl LiveCounts {
    /// Current rebuffering percentage.
    pub fn rebuffering_pct(&self) -> f64 {
        pct(self.rebuffering, self.concurrent)
    }

    /// Playback failure percentage.
    pub fn failure_pct(&self) -> f64 {
        pct(self.failed, self.ended)
    }

    /// Exits before video start, percentage.
    pub fn exits_pct(&self) -> f64 {
        pct(self.exited, self.ended)
    }

    /// Current average bitrate, kbit/s.
    pub fn avg_bitrate_kbps(&self) -> f64 {
        if self.playing == 0 {
            0.0
        } else {
            self.bitrate_kbps_sum as f64 / self.playing as f64
        }
    }
}

fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}

/// The bucket holding second `t`.
pub fn bucket_of(t: u32) -> u32 {
    t / BUCKET_S * BUCKET_S
}

/// The buckets event `e` counts in: its own and the next ones up to the
/// window.
pub fn buckets_of(e: &Event) -> impl Iterator<Item = u32> {
    let first = bucket_of((e.ts_ms.max(0) / 1000) as u32);
    (first..first + WINDOW_S).step_by(BUCKET_S as usize)
}

/// Whether event `e` makes its view a concurrent viewer: starting, playing,
/// rebuffering (for at most [`LONG_REBUFFER_MS`]) or seeking.
pub fn is_concurrent(e: &Event) -> bool {
    e.state.is_concurrent() && e.current_rebuffer_ms <= LONG_REBUFFER_MS
}

/// The definition: each bucket of `range` with views, from `events` (one
/// property's, already narrowed to the dimension value wanted; duplicates
/// are harmless).
pub fn live_counts<'a>(
    events: impl IntoIterator<Item = &'a Event>,
    range: Range,
) -> BTreeMap<u32, LiveCounts> {
    #[derive(Default)]
    struct Sets<'a> {
        concurrent: HashSet<&'a str>,
        rebuffering: HashSet<&'a str>,
        playing: HashSet<(&'a str, u32)>,
        ended: HashSet<&'a str>,
        failed: HashSet<&'a str>,
        exited: HashSet<&'a str>,
    }
    let mut buckets: BTreeMap<u32, Sets<'a>> = BTreeMap::new();
    for e in events {
        let view = &*e.view_id;
        let stalled_long = e.current_rebuffer_ms > LONG_REBUFFER_MS;
        let fatal = e.event == EventType::Error && e.error_fatal;
        let exits = e.event == EventType::Viewend
            && e.play_requested
            && e.startup_time_ms.is_none()
            && !e.error_fatal;
        for b in buckets_of(e).filter(|b| range.contains(*b)) {
            let s = buckets.entry(b).or_default();
            if is_concurrent(e) {
                s.concurrent.insert(view);
            }
            if e.state == PlayerState::Rebuffering && !stalled_long {
                s.rebuffering.insert(view);
            }
            if e.state == PlayerState::Playing {
                s.playing.insert((view, e.bitrate_kbps));
            }
            if e.event == EventType::Viewend || fatal {
                s.ended.insert(view);
            }
            if fatal {
                s.failed.insert(view);
            }
            if exits {
                s.exited.insert(view);
            }
        }
    }
    buckets
        .into_iter()
        .map(|(b, s)| {
            let counts = LiveCounts {
                concurrent: s.concurrent.len() as u64,
                rebuffering: s.rebuffering.len() as u64,
                playing: s.playing.len() as u64,
                bitrate_kbps_sum: s.playing.iter().map(|(_, r)| u64::from(*r)).sum(),
                ended: s.ended.len() as u64,
                failed: s.failed.len() as u64,
                exited: s.exited.len() as u64,
            };
            (b, counts)
        })
        .collect()
}

/// Run on one shard: (re)computes the counts of buckets `buckets` (their
/// windows ending by now) from that shard's `live_local` states into its
/// `live_counts_local`. Idempotent: the latest computation replaces the
/// earlier ones.
pub fn settle_query(client: &Client, database: &str, buckets: Range) -> Query {
    let window_before = WINDOW_S - BUCKET_S;
    // The buckets each state row counts in: its own and the next ones.
    let counted_in: Vec<String> = (0..WINDOW_S)
        .step_by(BUCKET_S as usize)
        .map(|d| format!("toUInt32(bucket) + {d}"))
        .collect();
    let counted_in = counted_in.join(", ");
    client
        .query(&format!(
            "INSERT INTO ?.live_counts_local \
             SELECT property_id, dim, value, toDateTime(b), \
                    uniqMerge(c), uniqMerge(r), sum(p), sum(rung * p), \
                    uniqMerge(e), uniqMerge(f), uniqMerge(x), now() \
             FROM ( \
               SELECT property_id, dim, value, b, rung, \
                      uniqMergeState(concurrent) AS c, uniqMergeState(rebuffering) AS r, \
                      uniqMerge(playing) AS p, uniqMergeState(ended) AS e, \
                      uniqMergeState(failed) AS f, uniqMergeState(exited) AS x \
               FROM ( \
                 SELECT property_id, dim, value, rung, concurrent, rebuffering, playing, \
                        ended, failed, exited, \
                        arrayJoin([{counted_in}]) AS b \
                 FROM ?.live_local \
                 WHERE bucket >= toDateTime(?) AND bucket < toDateTime(?)) \
               WHERE b >= ? AND b < ? \
               GROUP BY property_id, dim, value, b, rung) \
             GROUP BY property_id, dim, value, b"
        ))
        .bind(Identifier(database))
        .bind(Identifier(database))
        .bind(buckets.from.saturating_sub(window_before))
        .bind(buckets.to)
        .bind(buckets.from)
        .bind(buckets.to)
}

/// One row of a live query: a bucket's start (as text) or a dimension
/// value, and its counts summed over the shards.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct LiveGroup {
    /// (Not named `value` in SQL: an alias would hide that column.)
    #[serde(rename = "live_key")]
    pub value: String,
    #[serde(flatten)]
    pub counts: LiveCounts,
}

/// The summed counts, `FINAL` per shard (the latest computation of each
/// bucket), of `live_counts` rows matching `condition`, grouped by `key`.
fn counts_query(key: &str, condition: &str) -> String {
    format!(
        "SELECT toString({key}) AS live_key, sum(concurrent) AS concurrent, \
                sum(rebuffering) AS rebuffering, sum(playing) AS playing, \
                sum(bitrate_kbps_sum) AS bitrate_kbps_sum, sum(ended) AS ended, \
                sum(failed) AS failed, sum(exited) AS exited \
         FROM ?.live_counts FINAL WHERE property_id = ? AND {condition} \
         GROUP BY {key} ORDER BY {key}"
    )
}

/// The series of `property` in `range` for the views whose `dim` is
/// `value` (`dim` `all`, value empty: every view), one [`LiveGroup`] per
/// bucket with views (its start in `value`), in time order. Run it with
/// [`fetch_live`].
pub fn series_query(
    client: &Client,
    database: &str,
    property: &str,
    dim: &str,
    value: &str,
    range: Range,
) -> Query {
    let sql = counts_query(
        "toUInt32(bucket)",
        "dim = ? AND value = ? AND bucket >= toDateTime(?) AND bucket < toDateTime(?)",
    );
    client
        .query(&sql)
        .bind(Identifier(database))
        .bind(property)
        .bind(dim)
        .bind(value)
        .bind(range.from)
        .bind(range.to)
}

/// The values of `dim` in bucket `bucket` of `property`, one
/// [`LiveGroup`] each, ordered by value.
pub fn breakdown_query(
    client: &Client,
    database: &str,
    property: &str,
    dim: &str,
    bucket: u32,
) -> Query {
    let sql = counts_query("value", "dim = ? AND bucket = toDateTime(?)");
    client
        .query(&sql)
        .bind(Identifier(database))
        .bind(property)
        .bind(dim)
        .bind(bucket)
}

/// Runs [`series_query`] or [`breakdown_query`].
pub async fn fetch_live(query: Query) -> Result<Vec<LiveGroup>, clickhouse::error::Error> {
    super::sql::fetch_json_rows(query).await
}

/// How far behind now the live counts are settled: a bucket's window
/// ends `BUCKET_S` after its start and the processor's live job settles it
/// within one interval (5 s) after that, plus the time the query takes.
pub const SETTLED_LAG_S: u32 = 15;

/// The latest bucket settled by `now`: where a live series ends, and the
/// bucket a live breakdown shows by default. Later buckets read as empty,
/// so a property whose views stopped reads 0, not its last busy bucket.
pub fn last_settled(now: u32) -> u32 {
    bucket_of(now.saturating_sub(SETTLED_LAG_S))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample;

    #[test]
    fn an_event_counts_in_its_bucket_and_the_two_after() {
        let mut e = sample::event("v1", 3);
        e.ts_ms = 1_000_007_000; // second 1_000_007, bucket 1_000_005
        let range = Range {
            from: 1_000_000,
            to: 1_000_100,
        };
        let got = live_counts([&e], range);
        let buckets: Vec<u32> = got.keys().copied().collect();
        assert_eq!(buckets, [1_000_005, 1_000_010, 1_000_015]);
        let c = got[&1_000_005];
        assert_eq!((c.concurrent, c.playing, c.bitrate_kbps_sum), (1, 1, 4_500));
    }

    #[test]
    fn paused_and_long_stalled_views_are_not_concurrent() {
        let mut paused = sample::event("paused", 5);
        paused.state = PlayerState::Paused;
        let mut stalled = sample::event("stalled", 5);
        stalled.state = PlayerState::Rebuffering;
        stalled.current_rebuffer_ms = LONG_REBUFFER_MS + 1;
        let mut short = sample::event("short", 5);
        short.state = PlayerState::Rebuffering;
        short.current_rebuffer_ms = 4_000;
        let playing = sample::event("playing", 5);
        let range = Range {
            from: 0,
            to: u32::MAX,
        };
        let events = [&paused, &stalled, &short, &playing, &playing];
        let got = live_counts(events, range);
        let c = got.values().next().unwrap();
        assert_eq!(c.concurrent, 2, "short stall and playing, once each");
        assert_eq!(c.rebuffering, 1);
        assert_eq!(c.rebuffering_pct(), 50.0);
    }

    #[test]
    fn endings_failures_and_exits() {
        let mut failed = sample::event("failed", 4);
        failed.event = EventType::Error;
        failed.error_fatal = true;
        failed.state = PlayerState::Errored;
        let mut exited = sample::event("exited", 3);
        exited.event = EventType::Viewend;
        exited.state = PlayerState::Ended;
        exited.startup_time_ms = None;
        let mut finished = sample::event("finished", 9);
        finished.event = EventType::Viewend;
        finished.state = PlayerState::Ended;
        let range = Range {
            from: 0,
            to: u32::MAX,
        };
        let got = live_counts([&failed, &exited, &finished], range);
        let c = got.values().next().unwrap();
        assert_eq!((c.ended, c.failed, c.exited, c.concurrent), (3, 1, 1, 0));
        assert!((c.failure_pct() - 100.0 / 3.0).abs() < 1e-9);
    }
}
