//! The live job: every `live.interval`, on each shard, (re)computes the
//! counts of the 5-second buckets still settling — those whose window ended
//! within `live.settle` — from the shard's `live_local` states into its
//! `live_counts_local` (`schema::metrics::live`), which the api reads.
//! Idempotent: a bucket recomputed, or computed by several processors,
//! gets the same counts (the latest computation wins), so every processor
//! runs it and none coordinates. Events arriving after their bucket
//! settled stay out of its live counts (never out of the stored history).

use std::time::{Duration, Instant};

use qoe_common::clickhouse::Shard;
use qoe_schema::metrics::live;
use qoe_schema::metrics::Range;

use crate::config::LiveSettings;
use crate::metrics::metrics;

/// Longest one shard's settle may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Runs until the task is dropped.
pub async fn run(shards: Vec<Shard>, database: String, settings: LiveSettings) {
    let mut tick = tokio::time::interval(settings.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = (qoe_common::clock::now_ms() / 1000) as u32;
        let buckets = settling(now, settings.settle);
        for shard in &shards {
            settle(shard, &database, buckets).await;
        }
    }
}

/// The buckets whose window has ended (by `now`) within `settle`.
pub fn settling(now: u32, settle: Duration) -> Range {
    // Bucket b counts events of [b + BUCKET_S − WINDOW_S, b + BUCKET_S).
    let to = live::bucket_of(now);
    let settle = settle.as_secs().min(u64::from(u32::MAX)) as u32;
    Range {
        from: live::bucket_of(to.saturating_sub(settle)),
        to,
    }
}

async fn settle(shard: &Shard, database: &str, buckets: Range) {
    let started = Instant::now();
    let (replica, server) = shard.replica();
    // A shard that does not answer must not hold the others' buckets.
    let result = tokio::time::timeout(
        TIMEOUT,
        live::settle_query(&server.client, database, buckets).execute(),
    )
    .await;
    let m = metrics();
    m.live_settle_seconds
        .observe(started.elapsed().as_secs_f64());
    let err = match result {
        Ok(Ok(())) => return,
        Ok(Err(err)) => err.to_string(),
        Err(_) => format!("no answer within {TIMEOUT:?}"),
    };
    m.live_settle_failures.inc();
    // The next interval tries the shard's next replica, if it has one.
    shard.failed(replica);
    tracing::warn!(shard = shard.number, replica = %server.url, error = %err, "live buckets not settled; retried next interval");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_buckets_whose_window_ended_settle() {
        let now = 1_000_012;
        let r = settling(now, Duration::from_secs(30));
        // Bucket b's window is [b − 10, b + 5): 1_000_005's ended at
        // 1_000_010, 1_000_010's has not.
        assert_eq!(r.to, 1_000_010);
        assert_eq!(r.to - r.from, 30);
    }
}
