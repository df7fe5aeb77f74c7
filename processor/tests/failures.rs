//! Crashes and outages: a processor killed between its insert and its commit
//! loses and doubles nothing once restarted; a shard going away pauses the
//! processor (no commit, bounded memory) and it catches up by itself; told
//! to stop while a shard is away, it exits by its deadline without
//! committing.

mod support;

use std::time::Duration;

use qoe_schema::sample;
use qoe_testkit::{socket_of, unique, TcpProxy};
use support::{assert_matches, whole, Setup};

/// A TCP proxy in front of each shard, and the shard URLs through them.
async fn proxied_shards(setup: &Setup) -> (Vec<TcpProxy>, Vec<String>) {
    let mut proxies = Vec::new();
    for url in &setup.stack.shards {
        proxies.push(TcpProxy::start(socket_of(url)).await);
    }
    let urls = proxies
        .iter()
        .map(|p| format!("http://{}", p.addr))
        .collect();
    (proxies, urls)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_between_insert_and_commit() {
    let setup = Setup::new("crash").await;
    let events = sample::views(40, sample::NOW_MS);
    setup.produce(&events).await;
    let group = unique("group");

    // Inserts its first batch, then aborts before committing (kill -9 timing).
    // Static membership: the restarted process takes the dead one's place.
    let instance = ("QOE_PROCESSOR__INSTANCE_ID", "processor-0".to_owned());
    let mut doomed = setup.processor(
        &group,
        None,
        &[
            ("QOE_PROCESSOR__CRASH_AFTER_INSERT", "true".into()),
            instance.clone(),
        ],
    );
    qoe_testkit::wait_until(Duration::from_secs(60), "the processor to crash", || {
        let running = doomed.process.running();
        async move { !running }
    })
    .await;
    assert_eq!(setup.committed(&group), 0, "nothing was committed");
    let written: u64 = setup.per_shard("heartbeats").await.iter().sum();
    assert!(written > 0, "the batch was inserted before the crash");

    // Restarted, it reads everything again; the duplicates change nothing.
    let _restarted = setup.processor(&group, None, &[instance]);
    setup
        .wait_committed(&group, events.len() as i64, Duration::from_secs(60))
        .await;
    let (range, now) = whole();
    assert_matches(&setup.overview(range, now).await, &events, range, now);
    setup.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shard_outage_pauses_then_catches_up() {
    let setup = Setup::new("outage").await;
    let (proxies, shards) = proxied_shards(&setup).await;
    let events = sample::views(60, sample::NOW_MS);
    let (first, second) = events.split_at(events.len() / 2);
    let group = unique("group");
    let svc = setup.processor(&group, Some(shards), &[]);
    setup.produce(first).await;
    setup
        .wait_committed(&group, first.len() as i64, Duration::from_secs(60))
        .await;

    proxies[1].set_enabled(false);
    setup.produce(second).await;
    let paused = || async { svc.metrics().await.contains("qoe_processor_paused 1") };
    qoe_testkit::wait_until(Duration::from_secs(30), "the processor to pause", paused).await;
    let rss = |text: String| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix("process_resident_memory_bytes "))
            .and_then(|v| v.trim().parse().ok())
            .expect("process metrics")
    };
    let before = rss(svc.metrics().await);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        setup.committed(&group),
        first.len() as i64,
        "no commit while a shard is down"
    );
    let after = rss(svc.metrics().await);
    assert!(
        after - before < 32.0 * 1024.0 * 1024.0,
        "memory grew {} MiB while paused",
        (after - before) / 1048576.0
    );
    assert!(svc
        .metrics()
        .await
        .contains("qoe_processor_insert_retries_total"));

    proxies[1].set_enabled(true);
    setup
        .wait_committed(&group, events.len() as i64, Duration::from_secs(60))
        .await;
    assert!(svc.metrics().await.contains("qoe_processor_paused 0"));
    let (range, now) = whole();
    assert_matches(&setup.overview(range, now).await, &events, range, now);
    setup.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_during_an_outage_exits_by_its_deadline_without_committing() {
    let setup = Setup::new("deadline").await;
    let (proxies, shards) = proxied_shards(&setup).await;
    let events = sample::views(40, sample::NOW_MS);
    let (first, second) = events.split_at(events.len() / 2);
    let group = unique("group");
    let mut svc = setup.processor(
        &group,
        Some(shards),
        &[("QOE_PROCESSOR__SHUTDOWN_FLUSH_TIMEOUT", "2s".into())],
    );
    setup.produce(first).await;
    setup
        .wait_committed(&group, first.len() as i64, Duration::from_secs(60))
        .await;
    // Both shards down: a batch whose rows all belong to one shard that is
    // up would be written and committed.
    proxies.iter().for_each(|p| p.set_enabled(false));
    setup.produce(second).await;
    let paused = || async { svc.metrics().await.contains("qoe_processor_paused 1") };
    qoe_testkit::wait_until(Duration::from_secs(30), "the processor to pause", paused).await;

    let asked = std::time::Instant::now();
    let status = svc
        .process
        .terminate(Duration::from_secs(15))
        .expect("the processor exits by its flush deadline, not when the shard is back");
    assert!(status.success(), "{status}");
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "stopped after {:?} with a 2 s deadline",
        asked.elapsed()
    );
    assert_eq!(
        setup.committed(&group),
        first.len() as i64,
        "the unwritten batch is not committed: its records are read again"
    );

    // The next owner reads them again once the shards are back.
    proxies.iter().for_each(|p| p.set_enabled(true));
    let _next = setup.processor(&group, None, &[]);
    setup
        .wait_committed(&group, events.len() as i64, Duration::from_secs(60))
        .await;
    let (range, now) = whole();
    assert_matches(&setup.overview(range, now).await, &events, range, now);
    setup.drop_database().await;
}
