//! The live numbers on the real two-shard ClickHouse (18.16): heartbeats
//! inserted twice (a replay), each shard's buckets settled twice, and the
//! series and breakdowns the api reads equal `metrics::live`'s definition.

use qoe_common::clickhouse::shards;
use qoe_schema::beacon::{Event, PlayerState};
use qoe_schema::metrics::live::{self, LiveCounts, LONG_REBUFFER_MS};
use qoe_schema::metrics::Range;
use qoe_schema::record::{Enrichment, Heartbeat};
use qoe_schema::rows::{shard_for, HeartbeatRow};
use qoe_schema::sample;
use qoe_testkit::{unique, Stack};

/// Sample views with two stalls: one short, one past the 5-minute mark.
fn events() -> Vec<Event> {
    let mut events = sample::views(60, sample::NOW_MS);
    let mut stalls = events
        .iter_mut()
        .filter(|e| e.state == PlayerState::Playing && e.seq > 4);
    for (e, stalled_for) in [
        (stalls.next(), 3_000),
        (stalls.nth(7), LONG_REBUFFER_MS + 1),
    ] {
        let e = e.expect("sample views play");
        e.state = PlayerState::Rebuffering;
        e.current_rebuffer_ms = stalled_for;
    }
    events
}

fn series(events: &[&Event], range: Range) -> Vec<(u32, LiveCounts)> {
    live::live_counts(events.iter().copied(), range)
        .into_iter()
        .collect()
}

fn rows(groups: Vec<live::LiveGroup>) -> Vec<(u32, LiveCounts)> {
    groups
        .into_iter()
        .map(|g| (g.value.parse().unwrap(), g.counts))
        .collect()
}

#[tokio::test]
async fn settled_buckets_equal_the_definition() {
    let stack = Stack::from_env();
    let db = unique("live");
    let cfg = stack.clickhouse(&db);
    qoe_schema::migrate::apply(&cfg, qoe_schema::migrations::ALL)
        .await
        .unwrap();
    let events = events();
    let property = "prop-live";
    let clients = shards(&cfg);
    for _pass in 0..2 {
        for shard in &clients {
            let mut insert = shard
                .client
                .insert::<HeartbeatRow>("heartbeats_local")
                .await
                .unwrap();
            for e in events
                .iter()
                .filter(|e| shard_for(&e.view_id, clients.len()) == shard.number - 1)
            {
                let hb = Heartbeat::new(property.into(), e.ts_ms, Enrichment::default(), e.clone());
                insert.write(&HeartbeatRow::from(&hb)).await.unwrap();
            }
            insert.end().await.unwrap();
        }
    }
    let first = (events.iter().map(|e| e.ts_ms).min().unwrap() / 1000) as u32;
    let last = (events.iter().map(|e| e.ts_ms).max().unwrap() / 1000) as u32;
    let range = Range {
        from: live::bucket_of(first),
        to: live::bucket_of(last) + live::WINDOW_S,
    };
    // Settled twice, the second time over a part: counts are replaced, not added.
    for buckets in [
        range,
        Range {
            from: range.from + 60,
            to: range.from + 300,
        },
    ] {
        for shard in &clients {
            live::settle_query(&shard.client, &db, buckets)
                .execute()
                .await
                .unwrap();
        }
    }
    let reader = &clients[0].client;
    let all: Vec<&Event> = events.iter().collect();

    let got = rows(
        live::fetch_live(live::series_query(reader, &db, property, "all", "", range))
            .await
            .unwrap(),
    );
    let want = series(&all, range);
    assert!(want.len() > 100, "{} buckets", want.len());
    assert!(want.iter().any(|(_, c)| c.rebuffering > 0));
    assert!(want.iter().any(|(_, c)| c.failed > 0));
    assert!(want.iter().any(|(_, c)| c.exited > 0));
    assert_eq!(got, want);

    // One CDN's series, and the breakdown by CDN at the busiest bucket.
    let cdn_a: Vec<&Event> = events.iter().filter(|e| &*e.cdn == "cdn-a").collect();
    let got = rows(
        live::fetch_live(live::series_query(
            reader, &db, property, "cdn", "cdn-a", range,
        ))
        .await
        .unwrap(),
    );
    assert_eq!(got, series(&cdn_a, range));
    let (busiest, _) = want.iter().max_by_key(|(_, c)| c.concurrent).unwrap();
    let got = live::fetch_live(live::breakdown_query(
        reader, &db, property, "cdn", *busiest,
    ))
    .await
    .unwrap();
    let values: Vec<&str> = got.iter().map(|g| g.value.as_str()).collect();
    assert_eq!(values, ["cdn-a", "cdn-b"]);
    let one = Range {
        from: *busiest,
        to: busiest + 1,
    };
    assert_eq!(got[0].counts, series(&cdn_a, one)[0].1);
}
