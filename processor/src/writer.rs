//! Writes a batch to the shards: each shard's rows in one insert into its
//! `heartbeats_local` (ClickHouse's materialized views derive `views_local`
//! and `live_local` from the same block). The rows arrive already
//! RowBinary-encoded by the workers; the insert streams their chunks as one
//! body. A shard already written is not written again when another shard's
//! failure makes the batch retry. Shards are written concurrently. A shard
//! with replicas is written through the replica in use, or, when that one
//! fails, the next that takes the rows; a block a failed replica took
//! after all is stored once, since replicated tables drop an identical
//! block inserted again.

use std::time::{Duration, Instant};

use qoe_common::clickhouse::Shard;

use crate::batch::{Batch, ShardRows};
use crate::metrics::metrics;

/// The table every row goes to.
pub const TABLE: &str = "heartbeats_local";

/// Why a shard did not take its rows.
#[derive(Debug, thiserror::Error)]
#[error("shard {shard} ({url}): {reason}")]
pub struct WriteError {
    /// 1-based shard number.
    pub shard: usize,
    /// Its URL.
    pub url: String,
    /// What went wrong.
    pub reason: String,
}

/// Inserts batches into every shard.
pub struct Writer {
    shards: Vec<Shard>,
    timeout: Duration,
    sql: String,
}

impl Writer {
    /// A writer over `shards`, each insert bounded by `timeout`.
    pub fn new(shards: Vec<Shard>, timeout: Duration) -> Self {
        Writer {
            shards,
            timeout,
            sql: qoe_schema::rows::insert_sql(TABLE),
        }
    }

    /// How many shards.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// Writes every not-yet-written shard of `batch`, all shards at once;
    /// returns the first failure (the caller retries the failed ones).
    pub async fn write(&self, batch: &mut Batch) -> Result<(), WriteError> {
        let pending = self
            .shards
            .iter()
            .enumerate()
            .filter(|(i, _)| !batch.written[*i] && !batch.rows[*i].is_empty())
            .map(|(i, shard)| {
                let rows = &batch.rows[i];
                async move {
                    let started = Instant::now();
                    (
                        i,
                        self.insert_somewhere(shard, rows)
                            .await
                            .map(|()| started.elapsed()),
                    )
                }
            });
        let results = futures::future::join_all(pending).await;
        let m = metrics();
        let mut first_error = None;
        for (i, outcome) in results {
            match outcome {
                Ok(took) => {
                    m.insert_seconds
                        .with_label_values(&[TABLE])
                        .observe(took.as_secs_f64());
                    m.rows_written
                        .with_label_values(&[TABLE])
                        .inc_by(batch.rows[i].count as u64);
                    batch.written[i] = true;
                }
                Err(reason) => {
                    m.insert_retries.with_label_values(&[TABLE]).inc();
                    first_error.get_or_insert(WriteError {
                        shard: self.shards[i].number,
                        url: self.shards[i].url.clone(),
                        reason,
                    });
                }
            }
        }
        for (i, rows) in batch.rows.iter().enumerate() {
            if rows.is_empty() {
                batch.written[i] = true;
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Inserts through the replica in use, then each other replica in turn
    /// until one takes the rows; the errors of all, if none does.
    async fn insert_somewhere(&self, shard: &Shard, rows: &ShardRows) -> Result<(), String> {
        let mut errors = Vec::new();
        for _ in 0..shard.replicas.len() {
            let (index, replica) = shard.replica();
            let result =
                tokio::time::timeout(self.timeout, self.insert(&replica.client, rows)).await;
            let reason = match result {
                Ok(Ok(())) => {
                    shard.answered(index);
                    return Ok(());
                }
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("no answer within {:?}", self.timeout),
            };
            if shard.replicas.len() > 1 {
                metrics()
                    .replica_failovers
                    .with_label_values(&[&shard.number.to_string()])
                    .inc();
                tracing::warn!(shard = shard.number, replica = %replica.url, error = %reason, "replica did not take the rows; trying the next");
            }
            errors.push(if shard.replicas.len() > 1 {
                format!("{}: {reason}", replica.url)
            } else {
                reason
            });
            shard.failed(index);
        }
        Err(errors.join("; "))
    }

    async fn insert(
        &self,
        client: &clickhouse::Client,
        rows: &ShardRows,
    ) -> Result<(), clickhouse::error::Error> {
        let mut insert = client.insert_formatted_with(self.sql.as_str());
        for chunk in &rows.chunks {
            insert.send(chunk.clone()).await?;
        }
        insert.end().await
    }
}
