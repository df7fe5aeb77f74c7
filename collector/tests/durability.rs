//! What a 2xx promises: with the broker down the collector holds what fits,
//! then sheds with 503 + Retry-After, and delivers everything it accepted
//! once the broker is back; on SIGTERM under load, every event answered 2xx
//! is in Kafka afterwards.

mod support;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use qoe_schema::record::Heartbeat;
use qoe_testkit::{create_topic, unique, Broker, Stack};
use serde_json::json;
use support::{consume_events, event, json_of, Collector};

fn batch(view: &str, seqs: std::ops::Range<u32>) -> (String, Vec<(String, u32)>) {
    let events: Vec<_> = seqs.clone().map(|s| event(view, s)).collect();
    let ids = seqs.map(|s| (view.to_owned(), s)).collect();
    (json!({ "events": events }).to_string(), ids)
}

fn ids_in(records: &[(rdkafka::message::OwnedMessage, Vec<Heartbeat>)]) -> BTreeSet<(String, u32)> {
    records
        .iter()
        .flat_map(|(_, heartbeats)| heartbeats)
        .map(|hb| (hb.event.view_id.to_string(), hb.event.seq))
        .collect()
}

/// The files in `dir` with extension `ext`.
fn files_in(dir: &std::path::Path, ext: &str) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("the spill directory exists")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    files.sort();
    files
}

/// Reads `topic` until every id of `accepted` arrived (panics naming the
/// missing ones after 90 s).
async fn assert_all_in_topic(brokers: &str, topic: &str, accepted: &BTreeSet<(String, u32)>) {
    let records = consume_events(brokers, topic, accepted.len(), Duration::from_secs(90)).await;
    let got = ids_in(&records);
    assert!(
        accepted.is_subset(&got),
        "lost: {:?}",
        accepted.difference(&got).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn broker_outage_sheds_then_recovers_without_loss() {
    let mut broker = Broker::stopped_durable();
    broker.start().await;
    let topic = unique("outage");
    create_topic(&broker.addr, &topic, 2).await;
    let collector = Collector::start(
        &broker.addr,
        &topic,
        &[
            ("QOE_PRODUCER__CHANNEL_CAPACITY", "50".into()),
            ("QOE_PRODUCER__DELIVERY_TIMEOUT", "5m".into()),
        ],
    );
    collector
        .svc
        .wait_ready(true, Duration::from_secs(30))
        .await;

    let mut accepted = BTreeSet::new();
    let (body, ids) = batch("before", 0..10);
    assert_eq!(collector.post(body, &[]).await.status, 202);
    accepted.extend(ids);

    broker.stop();
    collector
        .svc
        .wait_ready(false, Duration::from_secs(30))
        .await;
    // Hold what fits, then shed.
    let mut shed = 0;
    for i in 0..20 {
        let (body, ids) = batch(&format!("during-{i}"), 0..10);
        let r = collector.post(body, &[]).await;
        match r.status.as_u16() {
            202 => accepted.extend(ids),
            503 => {
                shed += 1;
                assert_eq!(r.headers.get("retry-after").unwrap(), "1");
                assert_eq!(json_of(&r)["error"]["code"], "overloaded");
            }
            other => panic!("unexpected {other}: {}", r.text()),
        }
    }
    assert!(shed > 0, "a 50-record backlog must shed 200 records");
    assert!(
        accepted.len() >= 40,
        "it held what fitted ({})",
        accepted.len()
    );
    let metrics = collector.svc.metrics().await;
    assert!(
        metrics.contains("qoe_collector_drops_total{reason=\"channel_full\"}"),
        "{metrics}"
    );

    broker.start().await;
    collector
        .svc
        .wait_ready(true, Duration::from_secs(60))
        .await;
    assert_all_in_topic(&broker.addr, &topic, &accepted).await;
    // And it takes traffic again without a restart.
    let (body, _) = batch("after", 0..5);
    assert_eq!(collector.post(body, &[]).await.status, 202);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_delivers_every_acknowledged_event() {
    let stack = Stack::from_env();
    let topic = unique("sigterm");
    stack.create_topic(&topic, 4).await;
    let mut collector = Collector::start(&stack.brokers, &topic, &[]);
    collector
        .svc
        .wait_ready(true, Duration::from_secs(30))
        .await;

    let accepted = Arc::new(Mutex::new(BTreeSet::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut senders = Vec::new();
    for client in 0..2 {
        let url = collector.url.clone();
        let accepted = accepted.clone();
        let stop = stop.clone();
        senders.push(tokio::spawn(async move {
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let (body, ids) = batch(&format!("load-{client}-{n}"), 0..10);
                n += 1;
                let reply = qoe_testkit::httpc::send(
                    hyper::Method::POST,
                    &format!("{url}/v1/beacon/{}", support::KEY),
                    &[],
                    body.into(),
                    Duration::from_secs(10),
                )
                .await;
                match reply {
                    Ok(r) if r.status == 202 => {
                        accepted.lock().unwrap().extend(ids);
                        // Steady load, not a flood: the test reads it all back.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    Ok(r) => assert_eq!(r.status, 503, "{}", r.text()),
                    Err(_) => tokio::time::sleep(Duration::from_millis(5)).await, // closed
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let status =
        tokio::task::block_in_place(|| collector.svc.process.terminate(Duration::from_secs(40)))
            .expect("the collector exits after SIGTERM");
    stop.store(true, Ordering::Relaxed);
    for s in senders {
        s.await.unwrap();
    }
    assert!(status.success(), "exit status {status}");
    let accepted = accepted.lock().unwrap().clone();
    assert!(
        accepted.len() > 100,
        "load was running ({} accepted)",
        accepted.len()
    );
    let records = consume_events(
        &stack.brokers,
        &topic,
        accepted.len(),
        Duration::from_secs(60),
    )
    .await;
    let got = ids_in(&records);
    assert!(
        accepted.is_subset(&got),
        "lost {} acknowledged events",
        accepted.difference(&got).count()
    );
}

/// The broker is down when SIGTERM comes: what the collector acknowledged
/// is written to the spill directory at the deadline, and the next start
/// produces it and deletes the file, with nothing counted as lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undelivered_at_the_deadline_is_spilled_and_replayed_after_restart() {
    let mut broker = Broker::stopped_durable();
    broker.start().await;
    let topic = unique("spill");
    create_topic(&broker.addr, &topic, 2).await;
    let spill_dir = std::env::temp_dir().join(unique("spill-restart"));
    let settings = [
        ("QOE_PRODUCER__SPILL_DIR", spill_dir.display().to_string()),
        ("QOE_PRODUCER__SHUTDOWN_DEADLINE", "2s".to_owned()),
        // Deliveries time out while the broker is down: they are retried.
        ("QOE_PRODUCER__DELIVERY_TIMEOUT", "1s".to_owned()),
        // An idempotent producer does not time out records already sent.
        ("QOE_KAFKA__IDEMPOTENT_PRODUCER", "false".to_owned()),
    ];
    let mut first = Collector::start(&broker.addr, &topic, &settings);
    first.svc.wait_ready(true, Duration::from_secs(30)).await;
    let mut accepted = BTreeSet::new();
    let (body, ids) = batch("spill-before", 0..5);
    assert_eq!(first.post(body, &[]).await.status, 202);
    accepted.extend(ids);
    first
        .svc
        .wait_metric("qoe_collector_delivered_total 5", Duration::from_secs(20))
        .await;

    broker.stop();
    first.svc.wait_ready(false, Duration::from_secs(30)).await;
    for i in 0..4 {
        let (body, ids) = batch(&format!("spill-during-{i}"), 0..10);
        assert_eq!(first.post(body, &[]).await.status, 202);
        accepted.extend(ids);
    }
    // Deliveries time out and go round the retry queue instead of away.
    first
        .svc
        .wait_metric(
            "qoe_collector_delivery_errors_total{reason=\"timed_out\"}",
            Duration::from_secs(15),
        )
        .await;
    let status =
        tokio::task::block_in_place(|| first.svc.process.terminate(Duration::from_secs(20)))
            .expect("the collector exits after SIGTERM");
    assert!(status.success(), "exit status {status}");
    let spilled = files_in(&spill_dir, "spill");
    assert_eq!(spilled.len(), 1, "one spill file: {spilled:?}");
    assert_eq!(
        files_in(&spill_dir, "journal"),
        Vec::<std::path::PathBuf>::new(),
        "a clean stop removes the journal"
    );

    broker.start().await;
    let second = Collector::start(&broker.addr, &topic, &settings);
    second.svc.wait_ready(true, Duration::from_secs(60)).await;
    assert_all_in_topic(&broker.addr, &topic, &accepted).await;
    qoe_testkit::wait_until(
        Duration::from_secs(20),
        "the replayed spill file to be removed",
        || {
            let gone = !spilled[0].exists();
            async move { gone }
        },
    )
    .await;
    let metrics = second.svc.metrics().await;
    assert!(
        metrics.contains("qoe_collector_replayed_total 40"),
        "{metrics}"
    );
    assert!(!metrics.contains("qoe_collector_lost_total{"), "{metrics}");
    let _ = std::fs::remove_dir_all(&spill_dir);
}

/// A collector killed with `-9` while every event it acknowledged is still
/// in its Kafka client's queue (a 10 s linger holds them there): the next
/// start finds them in the journal and produces them, then deletes the
/// dead run's segments.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_nothing_acknowledged() {
    let stack = Stack::from_env();
    let topic = unique("kill9");
    create_topic(&stack.brokers, &topic, 2).await;
    let spill_dir = std::env::temp_dir().join(unique("kill9"));
    let dir = ("QOE_PRODUCER__SPILL_DIR", spill_dir.display().to_string());
    let holding = [dir.clone(), ("QOE_PRODUCER__LINGER", "10s".to_owned())];
    let first = Collector::start(&stack.brokers, &topic, &holding);
    first.svc.wait_ready(true, Duration::from_secs(30)).await;
    let mut accepted = BTreeSet::new();
    for i in 0..20 {
        let (body, ids) = batch(&format!("kill9-{i}"), 0..5);
        assert_eq!(first.post(body, &[]).await.status, 202);
        accepted.extend(ids);
    }
    let metrics = first.svc.metrics().await;
    assert!(
        metrics.contains("qoe_collector_delivered_total 0"),
        "nothing delivered before the kill: {metrics}"
    );
    let dead_run = files_in(&spill_dir, "journal");
    assert!(!dead_run.is_empty());
    drop(first); // SIGKILL

    let second = Collector::start(&stack.brokers, &topic, &[dir]);
    second.svc.wait_ready(true, Duration::from_secs(30)).await;
    assert_all_in_topic(&stack.brokers, &topic, &accepted).await;
    second
        .svc
        .wait_metric("qoe_collector_replayed_total 100", Duration::from_secs(20))
        .await;
    qoe_testkit::wait_until(
        Duration::from_secs(20),
        "the dead run's journal to be removed",
        || {
            let gone = dead_run.iter().all(|p| !p.exists());
            async move { gone }
        },
    )
    .await;
    drop(second);
    let _ = std::fs::remove_dir_all(&spill_dir);
}

/// Two collectors on one spill directory would replay each other's live
/// journal: the second refuses to start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spill_directory_serves_one_collector() {
    let stack = Stack::from_env();
    let topic = unique("locked");
    create_topic(&stack.brokers, &topic, 1).await;
    let spill_dir = std::env::temp_dir().join(unique("locked"));
    let dir = [("QOE_PRODUCER__SPILL_DIR", spill_dir.display().to_string())];
    let first = Collector::start(&stack.brokers, &topic, &dir);
    first.svc.wait_ready(true, Duration::from_secs(30)).await;
    let mut second = Collector::start(&stack.brokers, &topic, &dir);
    let still_running = tokio::task::block_in_place(|| {
        let start = std::time::Instant::now();
        while second.svc.process.running() && start.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(50));
        }
        second.svc.process.running()
    });
    assert!(!still_running, "the second collector exits");
    first.svc.wait_ready(true, Duration::from_secs(5)).await;
    drop(first);
    let _ = std::fs::remove_dir_all(&spill_dir);
}
