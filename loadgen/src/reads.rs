//! The read benchmark: `history` writes weeks of views straight into the
//! shards (no broker or processor: only the stored result matters to
//! readers), and `reads` times every kind of api request over it.

use std::time::{Duration, Instant};

use qoe_common::config::ClickHouseConfig;
use qoe_schema::metrics::Range;
use qoe_schema::record::{Enrichment, Heartbeat};
use qoe_schema::rows::{shard_for, HeartbeatRow};

use crate::api::ApiClient;

/// Views written per insert.
const CHUNK: usize = 20_000;

/// What `history` wrote.
pub struct History {
    pub views: u64,
    pub rows: u64,
    pub elapsed: Duration,
}

/// Writes `views` views of `property` starting evenly over the `days`
/// before now (each with the events `schema::sample` gives a view: a mix
/// of endings, rebuffering and failures), across countries, devices and
/// CDNs, into each shard's `heartbeats_local` by its `shard_for`.
pub async fn history(
    ch: &ClickHouseConfig,
    property: &str,
    views: u64,
    days: u32,
) -> Result<History, clickhouse::error::Error> {
    let shards = qoe_common::clickhouse::shards(ch);
    let now = qoe_common::clock::now_ms();
    let span = i64::from(days) * 86_400_000 - 3_600_000;
    let started = Instant::now();
    let countries = ["US", "BR", "DE", "IN", "JP", "GB", "FR", "MX"];
    let devices = ["desktop", "mobile", "tv", "tablet"];
    let mut rows = 0u64;
    let mut first = 0u64;
    while first < views {
        let last = (first + CHUNK as u64).min(views);
        let mut by_shard: Vec<Vec<HeartbeatRow>> = vec![Vec::new(); shards.len()];
        let mut events = Vec::new();
        for i in first..last {
            events.clear();
            let start = now - span + (span as f64 * i as f64 / views as f64) as i64;
            qoe_schema::sample::view_into(i as usize, views as usize, start, &mut events);
            let enrichment = Enrichment {
                country: countries[i as usize % countries.len()].into(),
                device_type: devices[i as usize / 3 % devices.len()].into(),
                ..Enrichment::default()
            };
            for e in &mut events {
                e.view_id = format!("hist-{i}").into();
                // A catalogue of 5000 titles, as a video breakdown meets.
                e.video_id = format!("video-{}", i % 5000).into();
                let hb = Heartbeat::new(property.into(), e.ts_ms, enrichment.clone(), e.clone());
                by_shard[shard_for(&e.view_id, shards.len())].push(HeartbeatRow::from(&hb));
            }
        }
        for (shard, rows_of) in shards.iter().zip(&by_shard) {
            let mut insert = shard
                .client
                .insert::<HeartbeatRow>("heartbeats_local")
                .await?;
            for row in rows_of {
                insert.write(row).await?;
            }
            insert.end().await?;
            rows += rows_of.len() as u64;
        }
        first = last;
        eprintln!(
            "history: {first}/{views} views, {rows} rows, {:.0} s",
            started.elapsed().as_secs_f64()
        );
    }
    Ok(History {
        views,
        rows,
        elapsed: started.elapsed(),
    })
}

/// One kind of request's timings, ms.
pub struct Timing {
    pub name: &'static str,
    /// The first request (caches cold, as far as this process can tell).
    pub first_ms: f64,
    /// The following requests, sorted.
    pub warm_ms: Vec<f32>,
    pub failures: u64,
}

impl Timing {
    /// The warm quantile `q` (as a step's, [`crate::step::pick`]).
    pub fn warm(&self, q: f64) -> f64 {
        crate::step::pick(&self.warm_ms, q)
    }
}

/// Requests every kind of api answer over the last `days` days (the live
/// ones over their last hour and latest bucket) `rounds` times each, one at a time; with `drop_caches`, the OS page cache is
/// dropped before each kind's first request.
pub async fn reads(
    api: &ApiClient,
    days: u32,
    rounds: usize,
    drop_caches: bool,
) -> Result<Vec<Timing>, std::io::Error> {
    let now = (qoe_common::clock::now_ms() / 1000) as u32;
    let r = Range {
        from: now - days * 86_400 + 60,
        to: now,
    };
    let tf = format!("timeframe[]={}&timeframe[]={}", r.from, r.to);
    let kinds: [(&'static str, String); 10] = [
        (
            "overall (2 queries)",
            format!("/v1/metrics/rebuffer_percentage/overall?{tf}"),
        ),
        (
            "overall, filtered",
            format!("/v1/metrics/video_startup_time/overall?{tf}&filters[]=country:US"),
        ),
        (
            "breakdown by country",
            format!("/v1/metrics/playback_failure_percentage/breakdown?{tf}&group_by=country"),
        ),
        (
            "breakdown by video_id",
            format!("/v1/metrics/views/breakdown?{tf}&group_by=video_id"),
        ),
        (
            "timeseries by day",
            format!("/v1/metrics/rebuffer_percentage/timeseries?{tf}&group_by=day"),
        ),
        (
            "dimension values",
            format!("/v1/dimensions/device_type?{tf}"),
        ),
        ("video views, page 1", format!("/v1/video-views?{tf}")),
        ("errors", format!("/v1/errors?{tf}")),
        (
            "live: concurrent viewers, last hour",
            "/v1/monitoring/metrics/current-concurrent-viewers/timeseries".into(),
        ),
        (
            "live: rebuffering by country, now",
            "/v1/monitoring/metrics/current-rebuffering-percentage/breakdown?group_by=country"
                .into(),
        ),
    ];
    let mut out = Vec::new();
    for (name, path) in kinds {
        let mut times = Vec::new();
        let mut failures = 0;
        if drop_caches {
            drop_page_cache()?;
        }
        for _ in 0..rounds.max(2) {
            let t = Instant::now();
            if let Err(e) = api.get(&path).await {
                eprintln!("reads: {name}: {e}");
                failures += 1;
            }
            times.push((t.elapsed().as_secs_f64() * 1000.0) as f32);
        }
        let first_ms = times.remove(0);
        times.sort_by(f32::total_cmp);
        eprintln!(
            "reads: {name}: first {first_ms:.0} ms, warm p50 {:.0} ms",
            times[times.len() / 2]
        );
        out.push(Timing {
            name,
            first_ms: f64::from(first_ms),
            warm_ms: times,
            failures,
        });
    }
    Ok(out)
}

/// Writes dirty pages out and drops the clean ones, so the next read of
/// the shards' files comes from disk.
fn drop_page_cache() -> Result<(), std::io::Error> {
    std::process::Command::new("sync").status()?;
    std::fs::write("/proc/sys/vm/drop_caches", "3").map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("--drop-caches: cannot write /proc/sys/vm/drop_caches ({e}); it needs root on Linux"),
        )
    })
}
