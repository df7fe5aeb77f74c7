//! On a replicated stack (two replicas per shard, `deploy/local/stack up
//! --replicated`): a shard's replica in use stops mid-load; the processor
//! writes through the other, reads go on, the stopped replica catches up
//! once started, and every number is exact; a block inserted again on the
//! other replica is stored once. `deploy/local/stack test` runs these with
//! `--ignored`, one at a time, on a replicated stack of its own, since the
//! first stops one of that stack's servers.

mod support;

use std::process::Command;
use std::time::Duration;

use qoe_common::clickhouse::server_client;
use qoe_schema::metrics::{self, Overview};
use qoe_schema::sample;
use qoe_testkit::unique;
use support::{assert_matches, scope, whole, Setup};

/// Runs `deploy/local/stack ARGS` on the stack of `QOE_STACK_DIR` and
/// `QOE_STACK_PORT_OFFSET` (exported by the test command).
fn stack(args: &[&str]) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/local/stack");
    let status = Command::new(script)
        .args(args)
        .status()
        .expect("run deploy/local/stack");
    assert!(status.success(), "deploy/local/stack {args:?} failed");
}

async fn overview_through(setup: &Setup, url: &str) -> Overview {
    let (range, now) = whole();
    let client = server_client(&setup.stack.clickhouse(&setup.db), url);
    metrics::overview_query(&client, &scope(&setup.db, range, now))
        .fetch_one()
        .await
        .expect("overview")
}

/// Rows of `table` (a name, optionally followed by `FINAL`) on one server.
async fn rows(setup: &Setup, url: &str, table: &str) -> u64 {
    server_client(&setup.stack.clickhouse(&setup.db), url)
        .query(&format!("SELECT count() FROM {}.{table}", setup.db))
        .fetch_one()
        .await
        .unwrap_or(u64::MAX)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a replicated stack and stops one of its servers: deploy/local/stack test runs it"]
async fn a_replica_stopped_mid_load_changes_no_number() {
    let setup = Setup::new("replica").await;
    assert!(
        setup.stack.replicated && setup.stack.replicas.iter().all(|r| r.len() == 2),
        "QOE_TEST_SHARDS must list two replicas per shard (url|url) and QOE_TEST_REPLICATED=1"
    );
    let (stopped, peer) = (
        setup.stack.replicas[0][0].clone(),
        setup.stack.replicas[0][1].clone(),
    );
    let events = sample::views(120, sample::NOW_MS);
    let (first, second) = events.split_at(events.len() / 2);
    let group = unique("group");
    let processor = setup.processor(&group, None, &[]);
    setup.produce(first).await;
    setup
        .wait_committed(&group, first.len() as i64, Duration::from_secs(60))
        .await;

    // Shard 1's replica in use goes away; the rest arrives meanwhile.
    stack(&["stop", "clickhouse1"]);
    setup.produce(second).await;
    setup
        .wait_committed(&group, events.len() as i64, Duration::from_secs(120))
        .await;
    assert!(
        processor
            .metrics()
            .await
            .contains("qoe_processor_replica_failovers_total{shard=\"1\"}"),
        "the processor wrote through shard 1's other replica"
    );
    let (range, now) = whole();
    let during = overview_through(&setup, &peer).await;
    assert_matches(&during, &events, range, now);

    // Back, it fetches what its peer took while it was away. Each table
    // replicates on its own queue, and `views_local` collapses rows as it
    // merges, so both are compared as collapsed (FINAL) counts.
    stack(&["start", "clickhouse1"]);
    for table in ["heartbeats_local FINAL", "views_local FINAL"] {
        let want = rows(&setup, &peer, table).await;
        qoe_testkit::wait_until(
            Duration::from_secs(120),
            &format!("the restarted replica's {table} to catch up"),
            || async { rows(&setup, &stopped, table).await == want },
        )
        .await;
    }
    let after = overview_through(&setup, &stopped).await;
    assert_eq!(
        after, during,
        "the restarted replica reads the same numbers"
    );
    setup.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a replicated stack: deploy/local/stack test runs it"]
async fn a_block_retried_on_the_other_replica_is_stored_once() {
    // What the writer's failover relies on: a replica that took a batch
    // and timed out, then the batch sent again to its peer, stores it once.
    let setup = Setup::new("dedup").await;
    assert!(setup.stack.replicated, "QOE_TEST_REPLICATED=1");
    let replicas = &setup.stack.replicas[0];
    let block = format!(
        "INSERT INTO {}.heartbeats_local (property_id, view_id, seq, event, ts, received_at, view_start) \
         VALUES ('p', 'v1', 1, 'viewstart', '2026-12-01 10:00:00', '2026-12-01 10:00:01', '2026-12-01 10:00:00'), \
                ('p', 'v1', 2, 'heartbeat', '2026-12-01 10:00:10', '2026-12-01 10:00:11', '2026-12-01 10:00:00')",
        setup.db
    );
    let cfg = setup.stack.clickhouse(&setup.db);
    for url in [&replicas[0], &replicas[1], &replicas[0]] {
        server_client(&cfg, url)
            .query(&block)
            .execute()
            .await
            .expect("insert");
    }
    for url in replicas {
        qoe_testkit::wait_until(
            Duration::from_secs(30),
            "the block on every replica",
            || async { rows(&setup, url, "heartbeats_local").await == 2 },
        )
        .await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    for url in replicas {
        assert_eq!(
            rows(&setup, url, "heartbeats_local").await,
            2,
            "{url}: stored once"
        );
    }
    setup.drop_database().await;
}
