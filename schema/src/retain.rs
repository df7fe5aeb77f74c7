//! Retention: drops the partitions of the pipeline's tables whose newest
//! row is older than the configured age (`qoe-migrate retain`). ClickHouse
//! 20+ also expires raw heartbeats and live buckets by `TTL` (migrations
//! 0001 and 0005); 18.x has no `TTL`, so there this is the only expiry.
//! Whole partitions go (hours of raw heartbeats, days of the rest), so a
//! retention is honoured to within one partition.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use qoe_common::clickhouse::{replica_urls, server_client};
use qoe_common::config::{ClickHouseConfig, ConfigError};

/// How long each kind of data is kept (`[retention]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Raw heartbeats (`heartbeats_local`, hourly partitions by arrival).
    #[serde(with = "humantime_serde")]
    pub heartbeats: Duration,
    /// Views, sealed views and their roll-ups (`views_local`,
    /// `views_sealed_local`, `view_days_local`, daily partitions by view
    /// start). The api reads up to `query.retention`
    /// back, so keep at least that.
    #[serde(with = "humantime_serde")]
    pub views: Duration,
    /// Live 5-second rollups (`live_local`, `live_counts_local`, daily
    /// partitions by bucket).
    #[serde(with = "humantime_serde")]
    pub live: Duration,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        const DAY: u64 = 86_400;
        RetentionConfig {
            heartbeats: Duration::from_secs(3 * DAY),
            views: Duration::from_secs(400 * DAY),
            live: Duration::from_secs(2 * DAY),
        }
    }
}

impl RetentionConfig {
    /// Every retention must be at least a day: shorter would drop data
    /// the processor is still folding into views.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (key, age) in [
            ("retention.heartbeats", self.heartbeats),
            ("retention.views", self.views),
            ("retention.live", self.live),
        ] {
            if age < Duration::from_secs(86_400) {
                return Err(ConfigError::invalid(
                    key,
                    "must be at least 1 day (e.g. \"3days\")",
                ));
            }
        }
        Ok(())
    }

    /// Each partitioned table and how long it keeps rows.
    pub fn tables(&self) -> [(&'static str, Duration); 6] {
        [
            ("heartbeats_local", self.heartbeats),
            ("views_local", self.views),
            ("views_sealed_local", self.views),
            ("view_days_local", self.views),
            ("live_local", self.live),
            ("live_counts_local", self.live),
        ]
    }
}

/// Partitions dropped (or, on a dry run, to drop) on one shard.
#[derive(Debug, Clone, Default)]
pub struct Dropped {
    /// 1-based shard number.
    pub shard: usize,
    /// The server that answered.
    pub url: String,
    /// `(table, partition)` in table order.
    pub partitions: Vec<(String, String)>,
}

/// Why retention could not run on a shard.
#[derive(Debug, thiserror::Error)]
#[error("shard {shard}: {reason}")]
pub struct RetainError {
    pub shard: usize,
    pub reason: String,
}

/// Drops every expired partition on every shard (through its first replica
/// that answers: a replicated table passes the drop to the others). With
/// `dry_run`, only lists them.
pub async fn retain(
    cfg: &ClickHouseConfig,
    retention: &RetentionConfig,
    dry_run: bool,
) -> Result<Vec<Dropped>, RetainError> {
    let mut out = Vec::new();
    for (i, entry) in cfg.shards.iter().enumerate() {
        let mut errors = Vec::new();
        let mut done = None;
        for url in replica_urls(entry) {
            match retain_on(cfg, url, retention, dry_run).await {
                Ok(partitions) => {
                    done = Some(Dropped {
                        shard: i + 1,
                        url: url.to_owned(),
                        partitions,
                    });
                    break;
                }
                Err(e) => errors.push(format!("{url}: {e}")),
            }
        }
        out.push(done.ok_or_else(|| RetainError {
            shard: i + 1,
            reason: errors.join("; "),
        })?);
    }
    Ok(out)
}

async fn retain_on(
    cfg: &ClickHouseConfig,
    url: &str,
    retention: &RetentionConfig,
    dry_run: bool,
) -> Result<Vec<(String, String)>, clickhouse::error::Error> {
    let client = server_client(cfg, url);
    let mut dropped = Vec::new();
    for (table, age) in retention.tables() {
        // A partition goes when its newest row is older than the cutoff
        // (the server's clock decides).
        let expired: Vec<String> = client
            .query(
                "SELECT partition FROM system.parts \
                 WHERE database = ? AND table = ? AND active \
                 GROUP BY partition HAVING max(max_time) < now() - ? \
                 ORDER BY partition",
            )
            .bind(cfg.database.as_str())
            .bind(table)
            .bind(age.as_secs())
            .fetch_all()
            .await?;
        for partition in expired {
            if !dry_run {
                client
                    .query(&format!(
                        "ALTER TABLE {}.{table} DROP PARTITION {}",
                        cfg.database,
                        partition_literal(&partition)
                    ))
                    .execute()
                    .await?;
                tracing::info!(table, %partition, url, "partition dropped");
            }
            dropped.push((table.to_owned(), partition));
        }
    }
    Ok(dropped)
}

/// `system.parts.partition` as a literal for `DROP PARTITION`: a number
/// (`toYYYYMMDD`) as is, a time (`toStartOfHour`) quoted.
fn partition_literal(partition: &str) -> String {
    if !partition.is_empty() && partition.chars().all(|c| c.is_ascii_digit()) {
        partition.to_owned()
    } else {
        format!("'{}'", partition.replace(['\\', '\''], ""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_become_literals() {
        assert_eq!(partition_literal("20261207"), "20261207");
        assert_eq!(
            partition_literal("2026-12-07 06:00:00"),
            "'2026-12-07 06:00:00'"
        );
        assert_eq!(partition_literal("a'b"), "'ab'");
    }

    #[test]
    fn retentions_shorter_than_a_day_are_refused() {
        let mut r = RetentionConfig::default();
        assert!(r.validate().is_ok());
        r.live = Duration::from_secs(3600);
        let err = r.validate().unwrap_err().to_string();
        assert!(err.contains("retention.live"), "{err}");
    }
}
