//! What the loadgen watches while the load runs, beside the driver: the
//! write-latency markers as they appear in the store, the read latency of
//! the overview query the api is to serve, and the components' backlog gauges.
//! Each runs as its own task and reports through a channel (or returns), so
//! a slow store never slows the load.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use clickhouse::sql::Identifier;
use qoe_common::clock::now_ms;
use qoe_common::config::ClickHouseConfig;
use qoe_schema::metrics::Range;

use crate::api::ApiClient;

use crate::config::LoadgenConfig;

/// Polls the store for marker views of `property`; reports `(intended
/// send, latency s)` as each appears. The poll reads only the property's
/// rows received since the oldest pending marker (key prefix and hourly
/// partitions), so it stays light however much history the store holds.
pub async fn watch_markers(
    ch: ClickHouseConfig,
    property: String,
    new: flume::Receiver<(String, i64)>,
    found: flume::Sender<(i64, f64)>,
) {
    let Some(shard) = qoe_common::clickhouse::shards(&ch).into_iter().next() else {
        return;
    };
    let mut pending: HashMap<String, i64> = HashMap::new();
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        while let Ok((view, at)) = new.try_recv() {
            pending.insert(view, at);
        }
        if pending.is_empty() {
            continue;
        }
        let views: Vec<&str> = pending.keys().map(String::as_str).collect();
        let oldest = pending.values().min().copied().unwrap_or_default();
        let query = shard
            .client
            .query(
                "SELECT DISTINCT view_id FROM ?.heartbeats \
                 WHERE property_id = ? AND received_at >= toDateTime(?) AND has(?, view_id)",
            )
            .bind(Identifier(&ch.database))
            .bind(&property)
            .bind((oldest / 1000 - 60).max(0) as u32)
            .bind(views);
        let seen_at = now_ms();
        match query.fetch_all::<String>().await {
            Ok(views) => {
                for view in views {
                    if let Some(at) = pending.remove(&view) {
                        let _ = found.send((at, (seen_at - at) as f64 / 1000.0));
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "marker poll failed"),
        }
    }
}

/// Times a customer's read through the api — a QoE metric's overall
/// value over the run so far — every `every`.
pub async fn time_reads(
    api: ApiClient,
    started_ms: i64,
    every: Duration,
    out: flume::Sender<(i64, f64)>,
) {
    loop {
        tokio::time::sleep(every).await;
        let now = now_ms();
        let range = Range {
            from: (started_ms / 1000) as u32,
            to: (now / 1000) as u32 + 1,
        };
        let t = Instant::now();
        let result = api.overall("rebuffer_percentage", range, None).await;
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        match result {
            // A failed read counts as slow as the SLO allows plus more.
            Ok(_) => {
                let _ = out.send((now, ms));
            }
            Err(e) => {
                tracing::warn!(error = %e, "read probe failed");
                let _ = out.send((now, crate::step::READ_FAILED_MS));
            }
        }
    }
}

/// Current backlog gauges (sum over label sets), by component.
pub async fn backlogs(cfg: &LoadgenConfig) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    for (name, base, metric) in &cfg.target.backlogs {
        let url = format!("{}/metrics", base.trim_end_matches('/'));
        let value = match qoe_common::httpc::get(&url, Duration::from_secs(2)).await {
            Ok(reply) => reply
                .text()
                .lines()
                .filter(|l| {
                    l.starts_with(metric.as_str()) && l[metric.len()..].starts_with([' ', '{'])
                })
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum(),
            Err(_) => f64::NAN,
        };
        out.push((name.clone(), value));
    }
    out
}
