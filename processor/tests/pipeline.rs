//! Known heartbeats in → exact metrics out, across both shards; a replay of
//! everything changes nothing; out-of-order and duplicate `seq`s leave each
//! view at its highest `seq`; poison records go to the dead-letter topic
//! with their reason while the stream keeps flowing.

mod support;

use std::time::Duration;

use qoe_schema::metrics::live;
use qoe_schema::metrics::Range;
use qoe_schema::record::DEAD_LETTER_REASON_HEADER;
use qoe_schema::sample;
use qoe_testkit::{consume, unique};
use rdkafka::message::{Headers, Message};
use support::{assert_matches, whole, Setup};

/// The sample views, shuffled deterministically, with every 7th event twice.
fn shuffled_events(n: usize) -> Vec<qoe_schema::beacon::Event> {
    let mut events = sample::views(n, sample::NOW_MS);
    let dups: Vec<_> = events.iter().step_by(7).cloned().collect();
    events.extend(dups);
    // A fixed permutation: reverses seq order within many views.
    let len = events.len();
    let mut order: Vec<usize> = (0..len).collect();
    order.sort_by_key(|i| (i * 7919) % len);
    order.into_iter().map(|i| events[i].clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exact_metrics_then_a_full_replay_changes_nothing() {
    let setup = Setup::new("pipeline").await;
    let events = shuffled_events(90);
    setup.produce(&events).await;
    let (range, now) = whole();

    let group = unique("group");
    let first = setup.processor(&group, None, &[]);
    setup
        .wait_committed(&group, events.len() as i64, Duration::from_secs(60))
        .await;
    let got = setup.overview(range, now).await;
    assert_matches(&got, &events, range, now);
    assert_eq!(got.views, 90);
    let shards = setup.per_shard("views").await;
    assert!(
        shards.iter().all(|&n| n > 0),
        "views on both shards: {shards:?}"
    );
    let live_range = Range {
        from: live::bucket_of(range.from),
        to: live::bucket_of(range.to),
    };
    let want_live: Vec<_> = live::live_counts(&events, live_range).into_iter().collect();
    assert!(want_live.len() > 100);
    assert_eq!(setup.live(live_range).await, want_live);
    // Out of order and duplicated: each view ends at its highest seq.
    let client = qoe_common::clickhouse::server_client(
        &setup.stack.clickhouse(&setup.db),
        &setup.stack.shards[0],
    );
    let max_seq: Vec<(String, u32)> = client
        .query(&format!(
            "SELECT view_id, max(seq) FROM {}.views GROUP BY view_id ORDER BY view_id",
            setup.db
        ))
        .fetch_all()
        .await
        .unwrap();
    let mut want: std::collections::BTreeMap<String, u32> = Default::default();
    for e in &events {
        let s = want.entry(e.view_id.to_string()).or_default();
        *s = (*s).max(e.seq);
    }
    assert_eq!(max_seq, want.into_iter().collect::<Vec<_>>());
    drop(first);

    // A new group starts from the earliest offsets: everything again.
    let replay_group = unique("replay");
    let _replay = setup.processor(&replay_group, None, &[]);
    setup
        .wait_committed(&replay_group, events.len() as i64, Duration::from_secs(60))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let again = setup.overview(range, now).await;
    assert_eq!(again, got, "a replay changes no metric");
    assert_eq!(setup.live(live_range).await, want_live, "nor a live count");
    setup.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_records_go_to_the_dead_letter_topic() {
    let setup = Setup::new("poison").await;
    let good: Vec<_> = sample::views(6, sample::NOW_MS);
    setup.produce(&good[..5]).await;
    let future = br#"{"v": 99, "whatever": true}"#.to_vec();
    let future_binary = b"\x07a later binary layout".to_vec();
    let mut truncated =
        qoe_schema::record::Heartbeat::new("p".into(), 0, Default::default(), good[0].clone())
            .encode();
    truncated.truncate(truncated.len() / 2);
    setup
        .produce_raw(&[
            ("bad-1".into(), b"\x00not json".to_vec()),
            ("bad-2".into(), future),
            ("bad-3".into(), future_binary),
            ("bad-4".into(), truncated),
        ])
        .await;
    setup.produce(&good[5..]).await;

    let group = unique("group");
    let _svc = setup.processor(&group, None, &[]);
    setup
        .wait_committed(&group, good.len() as i64 + 4, Duration::from_secs(60))
        .await;
    let dead = consume(&setup.stack.brokers, &setup.dlq, 4, Duration::from_secs(30)).await;
    let mut reasons: Vec<String> = dead
        .iter()
        .map(|m| {
            let h = m
                .headers()
                .unwrap()
                .iter()
                .find(|h| h.key == DEAD_LETTER_REASON_HEADER)
                .unwrap();
            String::from_utf8(h.value.unwrap().to_vec()).unwrap()
        })
        .collect();
    reasons.sort();
    assert_eq!(
        reasons,
        [
            "malformed",
            "malformed",
            "unsupported_version",
            "unsupported_version"
        ]
    );
    assert_eq!(
        dead.iter()
            .find(|m| m.key() == Some(b"bad-1"))
            .unwrap()
            .payload()
            .unwrap(),
        b"\x00not json"
    );
    let (range, now) = whole();
    assert_matches(&setup.overview(range, now).await, &good, range, now);
    setup.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processors_share_the_work_and_survive_a_rebalance() {
    let setup = Setup::new("scale").await;
    let events = sample::views(80, sample::NOW_MS);
    let (first, second) = events.split_at(events.len() / 2);
    let group = unique("group");
    // Dynamic membership: a leaving member hands its partitions over at once
    // (a static member would keep them until its session expires).
    let a = setup.processor(&group, None, &[]);
    let mut b = setup.processor(&group, None, &[]);
    // Both members join before the data arrives.
    a.wait_ready(true, Duration::from_secs(30)).await;
    b.wait_ready(true, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    setup.produce(first).await;
    setup
        .wait_committed(&group, first.len() as i64, Duration::from_secs(60))
        .await;
    let read = |text: String| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix("qoe_processor_records_total "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    };
    let (ra, rb) = (read(a.metrics().await), read(b.metrics().await));
    assert!(ra > 0.0 && rb > 0.0, "both processors worked: {ra} + {rb}");

    // One leaves (SIGTERM: it flushes, commits and leaves the group); the
    // other takes its partitions and the rest of the stream.
    let status = tokio::task::block_in_place(|| b.process.terminate(Duration::from_secs(30)))
        .expect("b exits");
    assert!(status.success());
    setup.produce(second).await;
    setup
        .wait_committed(&group, events.len() as i64, Duration::from_secs(90))
        .await;
    let (range, now) = whole();
    assert_matches(&setup.overview(range, now).await, &events, range, now);
    setup.drop_database().await;
}
