//! Live numbers (`/v1/monitoring`): what is happening now, in 5-second
//! buckets, from the counts the processor's live job settles
//! (`schema::metrics::live` defines them). A timeseries covers the last
//! hour unless a timeframe is given; a breakdown is one bucket, the latest
//! settled unless `timestamp` names another.

use serde::Serialize;
use serde_json::{json, Value};

use qoe_schema::metrics::live::{self, LiveCounts, LiveGroup};
use qoe_schema::metrics::Range;

use crate::error::RequestError;
use crate::params::{self, Common, OrderBy};
use crate::routes::number;
use crate::store::Store;

/// One live metric.
#[derive(Debug, Serialize)]
pub struct LiveMetric {
    pub id: &'static str,
    pub name: &'static str,
    pub unit: &'static str,
    pub definition: &'static str,
    pub higher_is_worse: bool,
    #[serde(skip)]
    value: fn(&LiveCounts) -> f64,
    /// The views its value is over.
    #[serde(skip)]
    views: fn(&LiveCounts) -> u64,
}

/// Every live metric, in the order `/v1/monitoring/metrics` lists them.
pub const LIVE_METRICS: &[LiveMetric] = &[
    LiveMetric {
        id: "current-concurrent-viewers",
        name: "Current concurrent viewers",
        unit: "viewers",
        definition: "Views with an event in the 15 s up to the bucket's end whose state was starting, playing, rebuffering or seeking — not paused, and not rebuffering for over 5 minutes.",
        higher_is_worse: false,
        value: |c| c.concurrent as f64,
        views: |c| c.concurrent,
    },
    LiveMetric {
        id: "current-rebuffering-percentage",
        name: "Current rebuffering percentage",
        unit: "%",
        definition: "Concurrent viewers rebuffering, of all concurrent viewers.",
        higher_is_worse: true,
        value: LiveCounts::rebuffering_pct,
        views: |c| c.concurrent,
    },
    LiveMetric {
        id: "playback-failure-percentage",
        name: "Playback failure percentage",
        unit: "%",
        definition: "Views with a fatal error in the 15 s up to the bucket's end, of the views that ended (viewend or fatal error) in them.",
        higher_is_worse: true,
        value: LiveCounts::failure_pct,
        views: |c| c.ended,
    },
    LiveMetric {
        id: "exits-before-video-start",
        name: "Exits before video start",
        unit: "%",
        definition: "Views that ended in the 15 s up to the bucket's end after requesting play but before a first frame, failures excluded, of the views that ended in them.",
        higher_is_worse: true,
        value: LiveCounts::exits_pct,
        views: |c| c.ended,
    },
    LiveMetric {
        id: "current-average-bitrate",
        name: "Current average bitrate",
        unit: "kbps",
        definition: "Mean bitrate of the views playing in the 15 s up to the bucket's end, a view counted once per rendition it played.",
        higher_is_worse: false,
        value: LiveCounts::avg_bitrate_kbps,
        views: |c| c.playing,
    },
];

/// Span of a timeseries without a timeframe, seconds.
const DEFAULT_SPAN_S: u32 = 3600;
/// Longest span one timeseries may cover (17 280 points), seconds.
const MAX_SPAN_S: u32 = 86_400;

fn metric(id: &str) -> Result<&'static LiveMetric, RequestError> {
    LIVE_METRICS.iter().find(|m| m.id == id).ok_or_else(|| {
        RequestError::new(
            404,
            "unknown_metric",
            format!("no live metric `{id}`: GET /v1/monitoring/metrics lists them"),
        )
    })
}

/// The `(dim, value)` of the live rows `c`'s filters select: every view,
/// or one value of one dimension (the live counts are kept per dimension,
/// not per combination).
fn scope(c: &Common) -> Result<(&'static str, &str), RequestError> {
    if c.measurement.is_some() {
        return Err(RequestError::bad(
            "invalid_measurement",
            "measurement",
            "live metrics have one measurement each",
        ));
    }
    match c.filters.as_slice() {
        [] => Ok(("all", "")),
        [f] if !f.negate && live::DIMENSIONS.contains(&f.column) => Ok((f.column, &f.value)),
        _ => Err(RequestError::bad(
            "unsupported_filter",
            "filters[]",
            format!(
                "live metrics take at most one filter, `dimension:value`, on one of {:?}",
                live::DIMENSIONS
            ),
        )),
    }
}

/// `/v1/monitoring/metrics/{id}/timeseries`: `[time, value, views]` per
/// bucket up to the latest settled one ([`live::last_settled`]; empty
/// buckets as `[t, 0, 0]`), and the range it covers.
pub async fn timeseries(
    store: &Store,
    property: &str,
    id: &str,
    c: &Common,
    pairs: &[(String, String)],
    now: u32,
) -> Result<(Vec<Value>, Range), RequestError> {
    let m = metric(id)?;
    let (dim, value) = scope(c)?;
    let mut range = if pairs.iter().any(|(k, _)| k == "timeframe[]") {
        c.range
    } else {
        Range {
            from: now.saturating_sub(DEFAULT_SPAN_S),
            to: now,
        }
    };
    if range.to - range.from > MAX_SPAN_S {
        return Err(RequestError::bad(
            "invalid_timeframe",
            "timeframe[]",
            "live metrics cover at most 24 hours",
        ));
    }
    range.from = live::bucket_of(range.from);
    range.to = range.to.min(live::last_settled(now) + live::BUCKET_S);
    let rows = store.live_series(property, dim, value, range).await?;
    let by_time: std::collections::BTreeMap<u32, LiveCounts> = rows
        .into_iter()
        .filter_map(|g| Some((g.value.parse().ok()?, g.counts)))
        .collect();
    let points = (range.from..range.to)
        .step_by(live::BUCKET_S as usize)
        .map(|t| match by_time.get(&t) {
            Some(counts) => json!([t, number((m.value)(counts)), (m.views)(counts)]),
            None => json!([t, 0, 0]),
        })
        .collect();
    Ok((points, range))
}

/// `/v1/monitoring/metrics/{id}/breakdown`: one row per value of
/// `group_by` in one bucket, `{value, metric_value, views,
/// negative_impact}`, ordered and paged like a metric breakdown; the row
/// count and the bucket.
pub async fn breakdown(
    store: &Store,
    property: &str,
    id: &str,
    c: &Common,
    pairs: &[(String, String)],
    now: u32,
) -> Result<(Value, usize, u32), RequestError> {
    let m = metric(id)?;
    let listing = params::listing(pairs)?;
    if !live::DIMENSIONS.contains(&listing.group_by) {
        return Err(RequestError::bad(
            "unsupported_dimension",
            "group_by",
            format!("live breakdowns are by one of {:?}", live::DIMENSIONS),
        ));
    }
    if !c.filters.is_empty() {
        return Err(RequestError::bad(
            "unsupported_filter",
            "filters[]",
            "a live breakdown takes no filters",
        ));
    }
    scope(c)?;
    let bucket = match params::single(pairs, "timestamp")? {
        Some(t) => t
            .parse::<u32>()
            .ok()
            .filter(|t| *t <= now && now - *t <= MAX_SPAN_S)
            .map(live::bucket_of)
            .ok_or_else(|| {
                RequestError::bad(
                    "invalid_timestamp",
                    "timestamp",
                    "`timestamp` is epoch seconds within the last 24 hours",
                )
            })?,
        None => live::last_settled(now),
    };
    let (groups, all) = tokio::try_join!(
        store.live_breakdown(property, listing.group_by, bucket),
        store.live_series(
            property,
            "all",
            "",
            Range {
                from: bucket,
                to: bucket + 1
            }
        ),
    )?;
    let overall = all.first().map_or(0.0, |g| (m.value)(&g.counts));
    let all_views = all.first().map_or(0, |g| (m.views)(&g.counts)).max(1) as f64;
    let sign = if m.higher_is_worse { 1.0 } else { -1.0 };
    let mut rows: Vec<(LiveGroup, f64, u64, f64)> = groups
        .into_iter()
        .map(|g| {
            let value = (m.value)(&g.counts);
            let views = (m.views)(&g.counts);
            let impact = sign * (value - overall) * views as f64 / all_views;
            (g, value, views, impact)
        })
        .collect();
    rows.sort_by(|a, b| {
        let order = match listing.order_by {
            OrderBy::Value => a.1.total_cmp(&b.1),
            OrderBy::Views => a.2.cmp(&b.2),
            OrderBy::NegativeImpact => a.3.total_cmp(&b.3),
        };
        let order = if listing.descending {
            order.reverse()
        } else {
            order
        };
        order.then_with(|| a.0.value.cmp(&b.0.value))
    });
    let count = rows.len();
    let page: Vec<Value> = rows
        .into_iter()
        .skip((listing.page - 1) * listing.limit)
        .take(listing.limit)
        .map(|(g, value, views, impact)| {
            json!({
                "value": g.value,
                "metric_value": number(value),
                "views": views,
                "negative_impact": impact,
            })
        })
        .collect();
    Ok((json!(page), count, bucket))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_live_metric_reads_its_counts() {
        let c = LiveCounts {
            concurrent: 200,
            rebuffering: 10,
            playing: 150,
            bitrate_kbps_sum: 150 * 3000,
            ended: 40,
            failed: 2,
            exited: 4,
        };
        let got: Vec<(f64, u64)> = LIVE_METRICS
            .iter()
            .map(|m| ((m.value)(&c), (m.views)(&c)))
            .collect();
        assert_eq!(
            got,
            [
                (200.0, 200),
                (5.0, 200),
                (5.0, 40),
                (10.0, 40),
                (3000.0, 150)
            ]
        );
    }
}
