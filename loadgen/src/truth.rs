//! Ground truth and `verify`: what the run had acknowledged, kept compactly
//! (each view's latest accepted event and a bitset of its accepted `seq`s),
//! and the comparison of every metric computed from it by `schema`'s
//! definitions with what the store answers.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use clickhouse::sql::Identifier;
use qoe_common::config::ClickHouseConfig;
use qoe_schema::beacon::Event;
use qoe_schema::metrics::live;
use qoe_schema::metrics::{self, MetricCheck, Overview, Range, Tolerance, ViewFacts};

use crate::api::ApiClient;

/// What the collector acknowledged during a run.
#[derive(Default)]
pub struct Truth {
    views: HashMap<Arc<str>, ViewTruth>,
    /// Per live bucket, a bitset of the views (by index) concurrent in it
    /// (`schema::metrics::live`).
    concurrent: std::collections::BTreeMap<u32, Vec<u64>>,
}

struct ViewTruth {
    latest: Event,
    /// Bit `seq` set when that event was acknowledged.
    seqs: Vec<u64>,
    /// The view's number in this run (its bit in `concurrent`).
    index: u32,
}

/// Sets bit `i` of `bits`, growing it as needed.
fn set_bit(bits: &mut Vec<u64>, i: usize) {
    let (word, bit) = (i / 64, i % 64);
    if bits.len() <= word {
        bits.resize(word + 1, 0);
    }
    bits[word] |= 1 << bit;
}

impl Truth {
    /// Records an acknowledged event (idempotent: a retried one counts once).
    pub fn accept(&mut self, e: &Event) {
        let next = self.views.len() as u32;
        let view = self
            .views
            .entry(e.view_id.clone())
            .or_insert_with(|| ViewTruth {
                latest: e.clone(),
                seqs: Vec::new(),
                index: next,
            });
        set_bit(&mut view.seqs, e.seq as usize);
        if e.seq > view.latest.seq {
            view.latest = e.clone();
        }
        if live::is_concurrent(e) {
            for b in live::buckets_of(e) {
                set_bit(self.concurrent.entry(b).or_default(), view.index as usize);
            }
        }
    }

    /// Distinct acknowledged events.
    pub fn events(&self) -> u64 {
        self.views
            .values()
            .flat_map(|v| v.seqs.iter())
            .map(|w| u64::from(w.count_ones()))
            .sum()
    }

    /// Views with an acknowledged event.
    pub fn views(&self) -> usize {
        self.views.len()
    }

    /// The compact record `verify` works from.
    pub fn saved(&self, property: &str, view_prefix: &str, range: Range) -> Saved {
        let mut latest: Vec<&Event> = self.views.values().map(|v| &v.latest).collect();
        latest.sort_by(|a, b| a.view_id.cmp(&b.view_id));
        let views = latest.iter().map(|e| ViewFacts::from_event(e)).collect();
        let dimensions = latest
            .iter()
            .map(|e| BREAKDOWNS.iter().map(|(_, of)| of(e).to_owned()).collect())
            .collect();
        let concurrent = self
            .concurrent
            .iter()
            .filter(|(b, _)| range.contains(**b))
            .map(|(b, bits)| (*b, bits.iter().map(|w| u64::from(w.count_ones())).sum()))
            .collect();
        Saved {
            dimensions,
            concurrent,
            property: property.to_owned(),
            view_prefix: view_prefix.to_owned(),
            from: range.from,
            to: range.to,
            events: self.events(),
            views,
        }
    }
}

/// Ground truth as written next to a run's result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Saved {
    /// Property id the run's events belong to.
    pub property: String,
    /// Every view id of the run starts with this.
    pub view_prefix: String,
    /// The run's time range, seconds since the epoch, `[from, to)`.
    pub from: u32,
    pub to: u32,
    /// Distinct acknowledged events.
    pub events: u64,
    /// Each view's facts from its latest acknowledged event.
    pub views: Vec<ViewFacts>,
    /// Each view's value of every [`BREAKDOWNS`] dimension, in `views`'
    /// order.
    #[serde(default)]
    pub dimensions: Vec<Vec<String>>,
    /// Concurrent viewers per live bucket in the range (with any).
    #[serde(default)]
    pub concurrent: Vec<(u32, u64)>,
}

/// How a dimension's value is read from an event.
pub type DimensionOf = fn(&Event) -> &str;

/// The dimensions `verify` checks breakdowns of: those the SDK sends (the
/// ground truth has no enrichment: country, ASN, OS, browser and device
/// come from the collector), with how to read each from an event.
pub const BREAKDOWNS: &[(&str, DimensionOf)] = &[
    ("cdn", |e| &e.cdn),
    ("player_name", |e| &e.player_name),
    ("stream_type", |e| e.stream_type.as_str()),
    ("player_version", |e| &e.player_version),
    ("video_id", |e| &e.video_id),
    ("video_title", |e| &e.video_title),
    ("error_code", |e| &e.error_code),
];

/// The metrics whose breakdowns `verify` checks, and the overview field
/// each is.
const BREAKDOWN_METRICS: &[(&str, &str)] = &[
    ("views", "views"),
    ("playback_failure_percentage", "playback_failure_pct"),
    ("rebuffer_percentage", "rebuffer_pct"),
];

impl Saved {
    /// Writes it as JSON.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let file = std::io::BufWriter::new(std::fs::File::create(path)?);
        serde_json::to_writer(file, self).map_err(std::io::Error::other)
    }

    /// Reads what [`Saved::write`] wrote.
    pub fn read(path: &Path) -> std::io::Result<Saved> {
        let file = std::io::BufReader::new(std::fs::File::open(path)?);
        serde_json::from_reader(file).map_err(std::io::Error::other)
    }
}

/// The outcome of `verify`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Verification {
    pub lines: Vec<MetricCheck>,
    /// Acknowledged events absent from the store.
    pub missing: u64,
    /// Whether every line matched and nothing is missing.
    pub ok: bool,
}

impl Verification {
    /// The expected-vs-got table, for the terminal and RESULTS.md.
    pub fn table(&self) -> String {
        let mut out = String::from(
            "| metric | expected | got | tolerance | ok |\n| --- | --- | --- | --- | --- |\n",
        );
        for l in &self.lines {
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} |\n",
                l.metric,
                fmt_num(l.expected),
                fmt_num(l.got),
                l.tolerance,
                if l.ok { "yes" } else { "NO" }
            ));
        }
        out
    }
}

fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.6}")
    }
}

/// Why verify could not run.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("query failed on {url}: {source}")]
    Query {
        url: String,
        source: clickhouse::error::Error,
    },
    #[error("no ClickHouse shard configured (clickhouse.shards)")]
    NoShard,
    #[error("reading through the api failed: {0}")]
    Api(String),
}

/// What the store holds of a run.
pub struct Stored {
    /// Events in `heartbeats` (distinct `(view_id, seq)`).
    pub events: u64,
    /// Whether `views` has each view's latest `seq` too: its rows come from
    /// a materialized view written just after the heartbeats (compared as
    /// the sums of each view's latest `seq`, which agree only when all do).
    pub views_caught_up: bool,
}

/// What the store holds of the run `saved` describes.
pub async fn stored(ch: &ClickHouseConfig, saved: &Saved) -> Result<Stored, VerifyError> {
    let range = Range {
        from: saved.from,
        to: saved.to,
    };
    stored_in(ch, &saved.property, &saved.view_prefix, range).await
}

/// What the store holds of `property`'s views whose id starts with
/// `view_prefix`, with events in `range`.
pub async fn stored_in(
    ch: &ClickHouseConfig,
    property: &str,
    view_prefix: &str,
    range: Range,
) -> Result<Stored, VerifyError> {
    let filter = "property_id = ? AND view_id LIKE ? AND view_start >= toDateTime(?) - 86400";
    let sql = format!(
        "SELECT (SELECT uniqExact(view_id, seq) FROM ?.heartbeats WHERE {filter} \
                 AND ts >= toDateTime(?) AND ts < toDateTime(?)), \
                (SELECT sum(s) FROM (SELECT max(seq) AS s FROM ?.heartbeats WHERE {filter} GROUP BY view_id)), \
                (SELECT sum(s) FROM (SELECT max(seq) AS s FROM ?.views WHERE {filter} GROUP BY view_id))"
    );
    let prefix = format!("{view_prefix}%");
    let (events, heartbeats_seqs, views_seqs) = query_one::<(u64, u64, u64)>(ch, |client| {
        client
            .query(&sql)
            .bind(Identifier(&ch.database))
            .bind(property)
            .bind(&prefix)
            .bind(range.from)
            .bind(range.from)
            .bind(range.to)
            .bind(Identifier(&ch.database))
            .bind(property)
            .bind(&prefix)
            .bind(range.from)
            .bind(Identifier(&ch.database))
            .bind(property)
            .bind(&prefix)
            .bind(range.from)
    })
    .await?;
    Ok(Stored {
        events,
        views_caught_up: views_seqs == heartbeats_seqs,
    })
}

/// Waits (up to `timeout`) until every acknowledged event is stored, then
/// compares every metric. `now` is the evaluation time for both sides.
pub async fn verify(
    ch: &ClickHouseConfig,
    api: &ApiClient,
    saved: &Saved,
    timeout: std::time::Duration,
) -> Result<Verification, VerifyError> {
    let started = std::time::Instant::now();
    let mut now_stored = stored(ch, saved).await?;
    while (now_stored.events < saved.events || !now_stored.views_caught_up)
        && started.elapsed() < timeout
    {
        eprintln!(
            "verify: {}/{} acknowledged events stored{}; waiting for the pipeline",
            now_stored.events,
            saved.events,
            if now_stored.views_caught_up {
                ""
            } else {
                ", views table behind"
            }
        );
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        now_stored = stored(ch, saved).await?;
    }
    let stored = now_stored.events;
    let range = Range {
        from: saved.from,
        to: saved.to,
    };
    // The api evaluates "now" as it answers: the definition's side takes
    // the time it answered by.
    let got: Overview = api.overview(range).await.map_err(VerifyError::Api)?;
    let now = ((qoe_common::clock::now_ms() / 1000) as u32).max(saved.to);
    let want = metrics::overview(
        &saved.views,
        range,
        now,
        metrics::DEFAULT_INACTIVITY_TIMEOUT_S,
    );
    let missing = saved.events.saturating_sub(stored);
    let mut lines = vec![MetricCheck {
        metric: "heartbeats stored".into(),
        expected: saved.events as f64,
        got: stored as f64,
        tolerance: "exact".into(),
        ok: stored == saved.events,
    }];
    lines.extend(got.check(&want));
    // A truth recorded before dimensions were kept has none to check.
    if saved.dimensions.len() == saved.views.len() && !saved.views.is_empty() {
        // A truth recorded with fewer dimensions checks those it has.
        let recorded = saved.dimensions[0].len();
        for (i, (dimension, _)) in BREAKDOWNS.iter().enumerate().take(recorded) {
            lines.push(check_breakdown(api, saved, i, dimension, range, now).await?);
        }
    }
    if !saved.concurrent.is_empty() {
        lines.push(check_concurrent(api, saved).await?);
    }
    let ok = missing == 0 && lines.iter().all(|l| l.ok);
    Ok(Verification { lines, missing, ok })
}

/// The live concurrent-viewers series against the truth: one line, how
/// many of the run's buckets with viewers match (each within
/// `unique_viewers`' tolerance: both count distinct views with `uniq`).
async fn check_concurrent(api: &ApiClient, saved: &Saved) -> Result<MetricCheck, VerifyError> {
    let path = format!(
        "/v1/monitoring/metrics/current-concurrent-viewers/timeseries?timeframe[]={}&timeframe[]={}",
        saved.from, saved.to
    );
    // The processor's live job settles a bucket a few seconds after its
    // window ends and recomputes it at each interval while it settles: read
    // once the run's last bucket is settled and two intervals have passed
    // since every event was stored (up to 40 s).
    let last = saved.concurrent.last().map_or(0, |(b, _)| u64::from(*b));
    let started = std::time::Instant::now();
    let recomputed = started + std::time::Duration::from_secs(10);
    let answer = loop {
        let answer = api.get(&path).await.map_err(VerifyError::Api)?;
        let settled = answer["data"]
            .as_array()
            .and_then(|points| points.last())
            .and_then(|p| p[0].as_u64())
            .unwrap_or(0);
        let now = std::time::Instant::now();
        if (settled >= last && now >= recomputed)
            || now - started > std::time::Duration::from_secs(40)
        {
            break answer;
        }
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    };
    let got: HashMap<u64, f64> = answer["data"]
        .as_array()
        .map(|points| {
            points
                .iter()
                .filter_map(|p| Some((p[0].as_u64()?, p[1].as_f64()?)))
                .collect()
        })
        .unwrap_or_default();
    let tolerance = Tolerance::of("unique_viewers");
    let mut matched = 0;
    for (bucket, want) in &saved.concurrent {
        let got = got.get(&u64::from(*bucket)).copied().unwrap_or(0.0);
        if tolerance.allows(got, *want as f64) {
            matched += 1;
        } else {
            eprintln!("verify: live concurrent viewers at {bucket}: api {got}, definition {want}");
        }
    }
    Ok(MetricCheck {
        metric: "live concurrent viewers (5 s buckets)".into(),
        expected: saved.concurrent.len() as f64,
        got: f64::from(matched),
        tolerance: format!("each bucket, {tolerance}"),
        ok: matched as usize == saved.concurrent.len(),
    })
}

/// Every value of one dimension, for each of [`BREAKDOWN_METRICS`]: the
/// api's breakdown row against the definition over that value's views
/// (metric value within its tolerance, views exact). One line: how many
/// (value, metric) rows were expected and how many matched.
async fn check_breakdown(
    api: &ApiClient,
    saved: &Saved,
    index: usize,
    dimension: &str,
    range: Range,
    now: u32,
) -> Result<MetricCheck, VerifyError> {
    let mut groups: std::collections::BTreeMap<&str, Vec<ViewFacts>> = Default::default();
    for (v, dims) in saved.views.iter().zip(&saved.dimensions) {
        groups.entry(&dims[index]).or_default().push(v.clone());
    }
    let (mut expected, mut matched) = (0u64, 0u64);
    for (metric, field) in BREAKDOWN_METRICS {
        let path = format!(
            "/v1/metrics/{metric}/breakdown?timeframe[]={}&timeframe[]={}&group_by={dimension}&limit=1000",
            range.from, range.to
        );
        let answer = api.get(&path).await.map_err(VerifyError::Api)?;
        let rows = answer["data"].as_array().cloned().unwrap_or_default();
        for (value, views) in &groups {
            let want = metrics::overview(views, range, now, metrics::DEFAULT_INACTIVITY_TIMEOUT_S);
            let want_json = serde_json::to_value(&want).unwrap_or_default();
            let want_value = want_json[field].as_f64().unwrap_or(f64::NAN);
            let want_views = if *metric == "views" {
                want.views
            } else {
                want.ended_in_range
            };
            if want_views == 0 {
                continue; // a value with no view counted is not listed
            }
            expected += 1;
            let row = rows.iter().find(|r| r["value"] == *value);
            let ok = row.is_some_and(|r| {
                let got = r["metric_value"].as_f64().unwrap_or(f64::NAN);
                metrics::Tolerance::of(field).allows(got, want_value) && r["views"] == want_views
            });
            if ok {
                matched += 1;
            } else {
                eprintln!("verify: breakdown by {dimension}, {value}, {metric}: api {row:?}, definition {want_value} over {want_views} views");
            }
        }
    }
    Ok(MetricCheck {
        metric: format!("breakdown rows by {dimension}"),
        expected: expected as f64,
        got: matched as f64,
        tolerance: "each row".into(),
        ok: expected == matched,
    })
}

async fn query_one<T>(
    ch: &ClickHouseConfig,
    query: impl FnOnce(&clickhouse::Client) -> clickhouse::query::Query,
) -> Result<T, VerifyError>
where
    T: clickhouse::RowOwned + clickhouse::RowRead,
{
    let shard = qoe_common::clickhouse::shards(ch)
        .into_iter()
        .next()
        .ok_or(VerifyError::NoShard)?;
    query(&shard.client)
        .fetch_one::<T>()
        .await
        .map_err(|source| VerifyError::Query {
            url: shard.url.clone(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acknowledged_events_count_once_and_the_latest_wins() {
        let mut t = Truth::default();
        let a = qoe_schema::sample::event("v1", 1);
        let mut b = qoe_schema::sample::event("v1", 70);
        b.watch_time_ms = 99;
        t.accept(&b);
        t.accept(&a);
        t.accept(&b); // a retry acknowledged twice
        assert_eq!(t.events(), 2);
        assert_eq!(t.views(), 1);
        let saved = t.saved(
            "p",
            "v",
            Range {
                from: 0,
                to: u32::MAX,
            },
        );
        assert_eq!(saved.views[0].watch_time_ms, 99);
        // Both events are at the same second: one view in each of the
        // three buckets that counts them.
        let counts: Vec<u64> = saved.concurrent.iter().map(|(_, n)| *n).collect();
        assert_eq!(counts, [1, 1, 1]);
    }
}
