//! CMCD sessions through the real broker and ClickHouse: a processor killed
//! in the middle of its sessions, and another taking them over (reading
//! them back from ClickHouse), write the numbers one processor that never
//! stopped would.

mod support;

use std::time::Duration;

use qoe_processor::sessions::{Forgetful, Sessions};
use qoe_schema::beacon::Event;
use qoe_schema::cmcd;
use qoe_schema::record::{Enrichment, Record, Source};
use qoe_schema::sample::NOW_MS;
use qoe_schema::validate::Checks;
use support::{assert_matches, whole, Setup, PROPERTY};

/// One session's reports: `(ms after its start, content, keys)`, varied by
/// `i` so sessions stall, seek, fail, change content or quit early.
fn session(i: usize) -> Vec<Event> {
    let sid = format!("sess-{i}");
    let start = NOW_MS - 1_800_000 + i as i64 * 7_000;
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
    reports
        .iter()
        .map(|e| {
            let record = Record {
                property_id: PROPERTY.into(),
                received_at_ms: e.ts_ms + 100,
                enrichment: Enrichment {
                    source: Source::Cmcd,
                    ..Enrichment::default()
                },
                events: vec![(*e).clone()],
            };
            let mut value = Vec::new();
            record.encode_into(&mut value);
            (record.key().to_owned(), value)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_processor_taking_over_sessions_writes_the_same_numbers() {
    let setup = Setup::new("cmcd").await;
    let sessions: Vec<Vec<Event>> = (0..24).map(session).collect();
    // What one worker that never stopped makes of every report.
    let mut whole_run = Sessions::new(1000, 3_600_000, std::sync::Arc::new(Forgetful));
    let mut expected = Vec::new();
    for s in &sessions {
        for r in s {
            whole_run.apply(PROPERTY, r, &mut expected);
        }
    }
    // The first half of every session, then the processor dies (kill -9).
    let (mut first, mut second): (Vec<&Event>, Vec<&Event>) = (Vec::new(), Vec::new());
    for s in &sessions {
        let (early, late) = s.split_at(s.len() / 2);
        first.extend(early);
        second.extend(late);
    }
    let group = qoe_testkit::unique("group");
    let instance = ("QOE_PROCESSOR__INSTANCE_ID", "processor-0".to_owned());
    setup.produce_raw(&records(&first)).await;
    let doomed = setup.processor(&group, None, std::slice::from_ref(&instance));
    setup
        .wait_committed(&group, first.len() as i64, Duration::from_secs(60))
        .await;
    drop(doomed);

    // The rest, read by a new processor that knows none of the sessions.
    setup.produce_raw(&records(&second)).await;
    let successor = setup.processor(&group, None, &[instance]);
    setup
        .wait_committed(
            &group,
            (first.len() + second.len()) as i64,
            Duration::from_secs(60),
        )
        .await;
    let metrics = successor.metrics().await;
    assert!(
        metrics.contains("qoe_processor_sessions_resumed_total{outcome=\"found\"} 24"),
        "every session was read back: {metrics}"
    );
    let (range, now) = whole();
    assert_matches(&setup.overview(range, now).await, &expected, range, now);
    setup.drop_database().await;
}
