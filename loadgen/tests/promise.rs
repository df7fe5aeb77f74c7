//! A 202 is a promise, end to end: with a durable broker killed mid-load and
//! the collector stopped while the broker is down (its undelivered records
//! spilled) and started again, every event the collector acknowledged ends
//! up in ClickHouse exactly once after the broker is back.
#![allow(clippy::field_reassign_with_default)] // settings read better one per line

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use qoe_testkit::{create_topic, unique, wait_until, Broker, Stack};
use serde_json::json;
use tokio::sync::watch;

mod support;

type Ids = Arc<Mutex<BTreeSet<(String, u32)>>>;

/// Posts one new view's five events every 20 ms to `url` until `stop`,
/// recording the (view, seq) of every event answered 202.
async fn send_until(url: String, prefix: String, accepted: Ids, stop: Arc<AtomicBool>) {
    let mut n = 0u32;
    while !stop.load(Ordering::Relaxed) {
        let view = format!("{prefix}-{n}");
        n += 1;
        let now = qoe_common::clock::now_ms();
        let events: Vec<_> = (0..5)
            .map(|seq| {
                let mut e = qoe_schema::sample::wire(&qoe_schema::sample::event(&view, seq));
                e["ts"] = json!(now);
                e["view_start"] = json!(now - 60_000);
                e
            })
            .collect();
        let body = json!({ "events": events }).to_string();
        let reply = qoe_common::httpc::send(
            hyper::Method::POST,
            &url,
            &[],
            body.into(),
            Duration::from_secs(5),
        )
        .await;
        if reply.is_ok_and(|r| r.status == 202) {
            accepted
                .lock()
                .unwrap()
                .extend((0..5).map(|seq| (view.clone(), seq)));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `(view_id, seq) -> rows` of `property` on every shard, duplicates
/// collapsed as the readers see them (`FINAL`).
async fn stored(stack: &Stack, db: &str, property: &str) -> BTreeMap<(String, u32), u64> {
    let mut out = BTreeMap::new();
    for shard in &stack.shards {
        let sql = format!(
            "SELECT view_id, seq, count() FROM {db}.heartbeats_local FINAL \
             WHERE property_id = '{property}' GROUP BY view_id, seq FORMAT TabSeparated"
        );
        let reply = qoe_common::httpc::send(
            hyper::Method::POST,
            shard,
            &[],
            sql.into(),
            Duration::from_secs(10),
        )
        .await
        .expect("ClickHouse answers");
        assert_eq!(reply.status, 200, "{}", reply.text());
        for line in reply.text().lines() {
            let mut cols = line.split('\t');
            let view = cols.next().unwrap().to_owned();
            let seq: u32 = cols.next().unwrap().parse().unwrap();
            let rows: u64 = cols.next().unwrap().parse().unwrap();
            *out.entry((view, seq)).or_default() += rows;
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_events_survive_a_broker_kill_and_a_collector_restart() {
    let stack = Stack::from_env();
    let mut broker = Broker::stopped_durable();
    broker.start().await;
    let topic = unique("promise");
    create_topic(&broker.addr, &topic, 4).await;
    let db = unique("promise");
    let ch = stack.clickhouse(&db);
    qoe_schema::migrate::apply(&ch, qoe_schema::migrations::ALL)
        .await
        .expect("migrate");
    let property = unique("prop");
    let spill_dir = std::env::temp_dir().join(unique("promise-spill"));

    let mut kafka = stack.kafka(&topic);
    kafka.brokers = broker.addr.clone();
    kafka.idempotent_producer = false;
    let settings = support::Settings::new(
        kafka.clone(),
        ch.clone(),
        BTreeMap::from([("pr-key".to_owned(), property.clone())]),
    );
    let ingest_url = settings.ingest_url();
    let [collector_admin, _] = settings.admin_urls();
    let (mut collector, processor) = (settings.collector, settings.processor);
    collector.producer.spill_dir = spill_dir.clone();
    collector.producer.shutdown_deadline = Duration::from_secs(2);
    // Deliveries time out while the broker is dead: they go round the retry
    // queue instead of being dropped.
    collector.producer.delivery_timeout = Duration::from_secs(2);

    let until = support::until;
    let (stop_processor, processor_rx) = watch::channel(false);
    let processor_task = tokio::spawn(qoe_processor::run(processor, until(processor_rx)));
    let start_collector = |cfg: qoe_collector::CollectorConfig| {
        let (tx, rx) = watch::channel(false);
        (tx, tokio::spawn(qoe_collector::run(cfg, until(rx))))
    };
    let (stop_first, first) = start_collector(collector.clone());
    let ready = format!("{collector_admin}/readyz");
    let is_ready = || {
        let url = ready.clone();
        async move {
            qoe_common::httpc::get(&url, Duration::from_secs(1))
                .await
                .is_ok_and(|r| r.status == 200)
        }
    };
    wait_until(Duration::from_secs(30), "the collector ready", is_ready).await;

    let accepted: Ids = Arc::default();
    let stop_sending = Arc::new(AtomicBool::new(false));
    let sender = tokio::spawn(send_until(
        format!("{ingest_url}/v1/beacon/pr-key"),
        unique("v"),
        accepted.clone(),
        stop_sending.clone(),
    ));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before_kill = accepted.lock().unwrap().len();
    broker.stop(); // SIGKILL, mid-load
    tokio::time::sleep(Duration::from_secs(3)).await;
    // The collector is stopped while the broker is dead: what it holds is
    // spilled at its 2 s deadline.
    let _ = stop_first.send(true);
    first
        .await
        .expect("collector task")
        .expect("first collector ran");
    let spilled: Vec<_> = std::fs::read_dir(&spill_dir)
        .expect("a spill directory")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "spill"))
        .collect();
    assert_eq!(spilled.len(), 1, "{spilled:?}");
    let during_outage = accepted.lock().unwrap().len() - before_kill;
    assert!(
        during_outage > 0,
        "events were acknowledged while the broker was dead"
    );

    broker.start().await;
    let (stop_second, second) = start_collector(collector);
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop_sending.store(true, Ordering::Relaxed);
    sender.await.unwrap();
    let accepted = accepted.lock().unwrap().clone();

    let mut got = BTreeMap::new();
    for _ in 0..120 {
        got = stored(&stack, &db, &property).await;
        if accepted.iter().all(|id| got.contains_key(id)) {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let missing: Vec<_> = accepted
        .iter()
        .filter(|id| !got.contains_key(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged events never reached ClickHouse, e.g. {:?}",
        missing.len(),
        accepted.len(),
        &missing[..missing.len().min(5)]
    );
    let twice: Vec<_> = got.iter().filter(|(_, rows)| **rows != 1).collect();
    assert!(twice.is_empty(), "stored more than once: {twice:?}");
    wait_until(
        Duration::from_secs(20),
        "the replayed spill file removed",
        || {
            let gone = !spilled[0].exists();
            async move { gone }
        },
    )
    .await;

    let _ = stop_second.send(true);
    second
        .await
        .expect("collector task")
        .expect("second collector ran");
    let _ = stop_processor.send(true);
    processor_task
        .await
        .expect("processor task")
        .expect("processor ran");
    let _ = std::fs::remove_dir_all(&spill_dir);
}
