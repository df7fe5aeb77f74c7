//! On a replicated stack (two replicas per shard, `deploy/local/stack up
//! --replicated`): a shard's replica in use stops mid-load; the processor
//! writes through the other, reads go on, the stopped replica catches up
//! once started, and every number is exact. `deploy/local/stack test` runs
//! it with `--ignored` on a replicated stack of its own, since it stops one
//! of that stack's servers.

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

    // Back, it fetches what its peer took while it was away.
    stack(&["start", "clickhouse1"]);
    let want = rows(&setup, &peer, "heartbeats_local").await;
    qoe_testkit::wait_until(
        Duration::from_secs(120),
        "the restarted replica to catch up",
        || async { rows(&setup, &stopped, "heartbeats_local").await == want },
    )
    .await;
    assert_eq!(
        rows(&setup, &stopped, "views_local").await,
        rows(&setup, &peer, "views_local").await,
        "views caught up too"
    );
    let after = overview_through(&setup, &stopped).await;
    assert_eq!(
        after, during,
        "the restarted replica reads the same numbers"
    );
    setup.drop_database().await;
}
