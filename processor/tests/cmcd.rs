//! CMCD sessions through the real broker and ClickHouse: a processor killed
//! in the middle of its sessions, and another taking them over (reading
//! them back from ClickHouse), write the numbers one processor that never
//! stopped would; so do sessions that rebalances move between two
//! processors and back.
//!
//! The sessions are timed just before the wall clock: a processor forgets
//! sessions idle for an hour by it, and these must stay in memory until a
//! crash or rebalance takes them.

mod support;

use std::time::Duration;

use qoe_processor::sessions::Session;
use qoe_schema::beacon::Event;
use qoe_schema::cmcd;
use qoe_schema::metrics::Range;
use qoe_schema::record::Source;
use qoe_schema::validate::Checks;
use support::{assert_matches, records_of, whole_run, Setup};

/// One session's reports: `(ms after its start, content, keys)`, varied by
/// `i` so sessions stall, seek, fail, change content or quit early; the
/// sessions start 7 s apart from `base_ms`.
fn session(i: usize, base_ms: i64) -> Vec<Event> {
    let sid = format!("sess-{i}");
    let start = base_ms + i as i64 * 7_000;
    let mut plan: Vec<(i64, &str, &str)> = vec![
        (0, "a", "e=ps,sta=d"),
        (400 + i as i64 * 10, "a", "e=ps,sta=s"),
        (1200 + i as i64 * 37, "a", "e=ps,sta=p,br=(2500)"),
        (11_000, "a", "e=t,sta=p"),
        (14_000, "a", "e=ps,sta=r"),
        (15_500 + i as i64 * 3, "a", "e=ps,sta=p"),
        (21_000, "a", "e=bc,sta=p,br=(4500)"),
        (25_000, "a", "e=ps,sta=k"),
        (25_100, "a", "e=ps,sta=r"),
        (26_000, "a", "e=ps,sta=p"),
        (31_000, "a", "e=t,sta=p"),
    ];
    match i % 4 {
        0 => plan.push((35_000, "a", "e=ps,sta=e")),
        1 => plan.extend([
            (33_000, "b", "e=c,sta=s"),
            (33_700, "b", "e=ps,sta=p"),
            (41_000, "b", "e=ps,sta=q"),
        ]),
        2 => plan.push((36_000, "a", "e=ps,sta=f,ec=(\"MEDIA_ERR_DECODE\")")),
        _ => plan.extend([
            (33_000, "a", "e=ps,sta=a"),
            (40_000, "a", "e=ps,sta=p"),
            (46_000, "a", "e=t,sta=p"),
        ]),
    }
    plan.into_iter()
        .enumerate()
        .map(|(sn, (ms, cid, keys))| {
            let ts = start + ms;
            let line = format!("sid=\"{sid}\",cid=\"{cid}\",sn={sn},ts={ts},st=v,{keys}");
            let d = cmcd::decode(line.as_bytes(), &Checks::at(ts)).expect("CMCD");
            d.accepted.into_iter().next().expect("valid report")
        })
        .collect()
}

/// Each report as the collector writes it: a CMCD record keyed by session.
fn records(reports: &[&Event]) -> Vec<(String, Vec<u8>)> {
    records_of(Source::Cmcd, reports)
}

/// 24 sessions that ended by now, and the range and "now" that cover them.
fn sessions() -> (Vec<Vec<Event>>, Range, u32) {
    let now_ms = qoe_common::clock::now_ms();
    let sessions = (0..24).map(|i| session(i, now_ms - 600_000)).collect();
    let now = (now_ms / 1000) as u32;
    let range = Range {
        from: now - 7200,
        to: now + 7200,
    };
    (sessions, range, now)
}

/// Sessions a processor read back from ClickHouse.
async fn resumed(p: &qoe_testkit::Service) -> u64 {
    p.metrics()
        .await
        .lines()
        .find_map(|l| l.strip_prefix("qoe_processor_sessions_resumed_total{outcome=\"found\"} "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_processor_taking_over_sessions_writes_the_same_numbers() {
    let setup = Setup::new("cmcd").await;
    let (sessions, range, now) = sessions();
    let expected = whole_run::<Session>(&sessions);
    // The first half of every session, then the processor dies (kill -9).
    let (mut first, mut second): (Vec<&Event>, Vec<&Event>) = (Vec::new(), Vec::new());
    for s in &sessions {
        let (early, late) = s.split_at(s.len() / 2);
        first.extend(early);
        second.extend(late);
    }
    let successor = setup
        .crash_and_take_over(&records(&first), &records(&second))
        .await;
    let metrics = successor.metrics().await;
    assert!(
        metrics.contains("qoe_processor_sessions_resumed_total{outcome=\"found\"} 24"),
        "every session was read back: {metrics}"
    );
    assert_matches(&setup.overview(range, now).await, &expected, range, now);
    setup.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_moved_by_rebalances_keep_their_numbers() {
    let setup = Setup::new("cmcdmove").await;
    let (sessions, range, now) = sessions();
    let expected = whole_run::<Session>(&sessions);
    // Every session's reports in thirds: one third before each rebalance.
    let mut thirds: [Vec<&Event>; 3] = Default::default();
    for s in &sessions {
        let n = s.len();
        thirds[0].extend(&s[..n / 3]);
        thirds[1].extend(&s[n / 3..2 * n / 3]);
        thirds[2].extend(&s[2 * n / 3..]);
    }
    let group = qoe_testkit::unique("group");
    // The topic has 4 partitions.
    let owns = |n: usize| format!("qoe_processor_assigned_partitions {n}\n");
    let wait = Duration::from_secs(60);
    let a = setup.processor(&group, None, &[]);
    a.wait_ready(true, wait).await;
    a.wait_metric(&owns(4), wait).await;
    setup.produce_raw(&records(&thirds[0])).await;
    setup
        .wait_committed(&group, thirds[0].len() as i64, wait)
        .await;
    assert_eq!(resumed(&a).await, 0, "A holds its sessions");

    // B joins: A hands partitions over mid-session and forgets what it
    // held; each reads the sessions it now owns back from ClickHouse.
    let mut b = setup.processor(&group, None, &[]);
    b.wait_ready(true, wait).await;
    qoe_testkit::wait_until(wait, "A and B to share the partitions", || async {
        let (ma, mb) = (a.metrics().await, b.metrics().await);
        (1..4).any(|n| ma.contains(&owns(n)) && mb.contains(&owns(4 - n)))
    })
    .await;
    setup.produce_raw(&records(&thirds[1])).await;
    let two_thirds = (thirds[0].len() + thirds[1].len()) as i64;
    setup.wait_committed(&group, two_thirds, wait).await;
    let (by_a, by_b) = (resumed(&a).await, resumed(&b).await);
    assert!(
        by_a > 0 && by_b > 0,
        "both read sessions back: {by_a} + {by_b}"
    );

    // B leaves: its sessions come back to A, which must read them back
    // rather than go on from what it held before B joined.
    let status = tokio::task::block_in_place(|| b.process.terminate(Duration::from_secs(30)))
        .expect("B exits");
    assert!(status.success());
    a.wait_metric(&owns(4), wait).await;
    setup.produce_raw(&records(&thirds[2])).await;
    let all = sessions.iter().map(Vec::len).sum::<usize>() as i64;
    setup.wait_committed(&group, all, wait).await;
    assert_matches(&setup.overview(range, now).await, &expected, range, now);
    setup.drop_database().await;
}
