//! `qoe-migrate retain` on the real two-shard ClickHouse (18.16, no TTL):
//! partitions whose rows are older than their table's retention go, on
//! every shard; recent ones stay, row for row.

use std::time::Duration;

use qoe_common::clickhouse::server_client;
use qoe_schema::retain::{retain, RetentionConfig};
use qoe_testkit::{unique, Stack};

const DAY: u64 = 86_400;

async fn rows(stack: &Stack, db: &str, table: &str) -> u64 {
    let cfg = stack.clickhouse(db);
    let mut n = 0;
    for url in &stack.shards {
        n += server_client(&cfg, url)
            .query(&format!("SELECT count() FROM {db}.{table}"))
            .fetch_one::<u64>()
            .await
            .unwrap();
    }
    n
}

#[tokio::test]
async fn expired_partitions_go_and_recent_ones_stay() {
    let stack = Stack::from_env();
    let db = unique("retain");
    let cfg = stack.clickhouse(&db);
    qoe_schema::migrate::apply(&cfg, qoe_schema::migrations::ALL)
        .await
        .expect("migrations");
    // One view 10 days old, one 4 days old, one now, on every shard; the
    // materialized views derive views_local and live_local from them.
    for url in &stack.shards {
        server_client(&cfg, url)
            .query(&format!(
                "INSERT INTO {db}.heartbeats_local \
                 (property_id, view_id, seq, event, ts, received_at, view_start, state) \
                 SELECT 'p', concat('v', toString(age)), 1, 'heartbeat', t, t, t, 'playing' \
                 FROM (SELECT arrayJoin([10, 4, 0]) AS age, now() - age * 86400 AS t)"
            ))
            .execute()
            .await
            .unwrap();
    }
    let shards = stack.shards.len() as u64;
    assert_eq!(rows(&stack, &db, "heartbeats_local").await, 3 * shards);
    assert_eq!(rows(&stack, &db, "views_local").await, 3 * shards);
    let live_before = rows(&stack, &db, "live_local").await;
    assert!(live_before > 0);

    let retention = RetentionConfig {
        heartbeats: Duration::from_secs(3 * DAY),
        views: Duration::from_secs(7 * DAY),
        live: Duration::from_secs(2 * DAY),
    };
    let planned = retain(&cfg, &retention, true).await.expect("dry run");
    assert_eq!(planned.len(), stack.shards.len());
    assert_eq!(
        rows(&stack, &db, "heartbeats_local").await,
        3 * shards,
        "a dry run drops nothing"
    );
    let dropped = retain(&cfg, &retention, false).await.expect("retain");
    for (plan, done) in planned.iter().zip(&dropped) {
        assert_eq!(plan.partitions, done.partitions);
        // Raw: the 10- and 4-day hours; views: the 10-day day; live: both.
        let count = |table: &str| done.partitions.iter().filter(|(t, _)| t == table).count();
        assert_eq!(count("heartbeats_local"), 2, "{:?}", done.partitions);
        assert_eq!(count("views_local"), 1, "{:?}", done.partitions);
        assert_eq!(count("live_local"), 2, "{:?}", done.partitions);
    }
    assert_eq!(
        rows(&stack, &db, "heartbeats_local").await,
        shards,
        "raw: only today's"
    );
    assert_eq!(
        rows(&stack, &db, "views_local").await,
        2 * shards,
        "views: 4 days and today"
    );
    let live_after = rows(&stack, &db, "live_local").await;
    assert!(
        live_after > 0 && live_after < live_before,
        "{live_before} -> {live_after}"
    );

    // Nothing left to drop: a second run is a no-op.
    let again = retain(&cfg, &retention, false).await.expect("retain again");
    assert!(again.iter().all(|d| d.partitions.is_empty()));
    for url in &stack.shards {
        let _ = server_client(&cfg, url)
            .query(&format!("DROP DATABASE IF EXISTS {db}"))
            .execute()
            .await;
    }
}
