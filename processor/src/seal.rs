//! The seal job: every `seal.interval`, on each shard, seals the days
//! whose views have all ended (`seal.after` past the day's end) and whose
//! data changed since their last seal (`schema::metrics::seal`). Sealing a
//! day copies each view's latest row once and rolls the day up by
//! dimension, so 30-day reads merge a few rows per day instead of
//! collapsing every view each time. Idempotent: a day sealed
//! twice, or by several processors, gives the same rows, and readers take
//! one generation; so every processor runs it and none coordinates.

use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, Instant};

use qoe_common::clickhouse::Shard;
use qoe_schema::metrics::seal;

use crate::config::SealSettings;
use crate::metrics::metrics;

/// Most days one shard seals per run, so a first run over a long history
/// does not hold the job for long.
const MAX_DAYS_PER_RUN: usize = 8;

/// Longest one shard's run may take (up to [`MAX_DAYS_PER_RUN`] days).
const TIMEOUT: Duration = Duration::from_secs(300);

/// Runs until the task is dropped.
pub async fn run(shards: Vec<Shard>, database: String, settings: SealSettings) {
    let mut tick = tokio::time::interval(settings.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let after_s = settings.after.as_secs().min(u64::from(u32::MAX)) as u32;
    loop {
        tick.tick().await;
        for shard in &shards {
            let (replica, server) = shard.replica();
            // A shard that does not answer must not hold the others' seals.
            let sealing = seal_shard(shard.number, &server.client, &database, after_s);
            let err = match tokio::time::timeout(TIMEOUT, sealing).await {
                Ok(Ok(())) => continue,
                Ok(Err(err)) => err.to_string(),
                Err(_) => format!("no answer within {TIMEOUT:?}"),
            };
            metrics().seal_failures.inc();
            // The next run tries the shard's next replica, if it has one.
            shard.failed(replica);
            tracing::warn!(shard = shard.number, replica = %server.url, error = %err, "days not sealed; retried next interval");
        }
    }
}

/// Seals the shard's days that are due.
async fn seal_shard(
    shard: usize,
    client: &clickhouse::Client,
    database: &str,
    after_s: u32,
) -> Result<(), clickhouse::error::Error> {
    let changes: Vec<(u32, u32)> = seal::changes_query(client, database).fetch_all().await?;
    let seals: Vec<(u32, u32)> = seal::seals_query(client, database).fetch_all().await?;
    let now: u32 = seal::now_query(client).fetch_one().await?;
    let sealed_before: Vec<u32> = seals.iter().map(|(day, _)| *day).collect();
    for day in seal::days_to_seal(&changes, &seals, now, after_s)
        .into_iter()
        .take(MAX_DAYS_PER_RUN)
    {
        let started = Instant::now();
        let began: u32 = seal::now_query(client).fetch_one().await?;
        let generation = generation();
        seal::copy_query(client, database, day, generation)
            .execute()
            .await?;
        seal::rollup_query(client, database, day, generation)
            .execute()
            .await?;
        seal::record_query(client, database, day, generation, began)
            .execute()
            .await?;
        if sealed_before.contains(&day) {
            for prune in seal::prune_queries(client, database, day, generation) {
                prune.execute().await?;
            }
        }
        metrics()
            .seal_seconds
            .observe(started.elapsed().as_secs_f64());
        tracing::info!(shard, day, generation, "day sealed");
    }
    Ok(())
}

/// A new generation: the time in ms and ten random bits, so two
/// processors sealing the same day in the same millisecond still differ
/// (readers take the highest).
fn generation() -> u64 {
    let ms = qoe_common::clock::now_ms().max(0) as u64;
    let mut random = std::collections::hash_map::RandomState::new().build_hasher();
    random.write_u64(ms);
    (ms << 10) | (random.finish() & 0x3ff)
}
