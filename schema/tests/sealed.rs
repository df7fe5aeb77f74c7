//! Sealed days on the real two-shard ClickHouse (18.16): a settled day's
//! views copied once and rolled up, read instead of collapsing them, and
//! every metric still equal to the definition — over hours (single views)
//! and over whole days (their roll-ups), after sealing, after a late
//! heartbeat (the seal goes stale and `views` answers until the day is
//! sealed again), and after a replay.

use qoe_common::clickhouse::{shards, Shard};
use qoe_schema::beacon::Event;
use qoe_schema::metrics::{self, seal, Overview, Range, ViewFacts};
use qoe_schema::record::{Enrichment, Heartbeat};
use qoe_schema::rows::{shard_for, HeartbeatRow};
use qoe_schema::sample;
use qoe_testkit::{unique, Stack};

async fn insert(shards: &[Shard], events: &[Event]) {
    for shard in shards {
        let mut insert = shard
            .client
            .insert::<HeartbeatRow>("heartbeats_local")
            .await
            .unwrap();
        for e in events
            .iter()
            .filter(|e| shard_for(&e.view_id, shards.len()) == shard.number - 1)
        {
            let hb = Heartbeat::new("prop".into(), e.ts_ms, Enrichment::default(), e.clone());
            insert.write(&HeartbeatRow::from(&hb)).await.unwrap();
        }
        insert.end().await.unwrap();
    }
}

/// Seals every settled day due on every shard, as the processor's job
/// does; returns how many.
async fn seal_due(shards: &[Shard], db: &str) -> usize {
    // A seal begun in the second its day last changed is stale at once
    // (part times have one-second resolution): begin in the next one.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let mut sealed = 0;
    for (i, shard) in shards.iter().enumerate() {
        let c = &shard.client;
        let changes: Vec<(u32, u32)> = seal::changes_query(c, db).fetch_all().await.unwrap();
        let seals: Vec<(u32, u32)> = seal::seals_query(c, db).fetch_all().await.unwrap();
        let now: u32 = seal::now_query(c).fetch_one().await.unwrap();
        for day in seal::days_to_seal(&changes, &seals, now, 8 * 3600) {
            let began: u32 = seal::now_query(c).fetch_one().await.unwrap();
            let generation = (u64::from(began) << 10) | i as u64;
            seal::copy_query(c, db, day, generation)
                .execute()
                .await
                .unwrap();
            seal::rollup_query(c, db, day, generation)
                .execute()
                .await
                .unwrap();
            seal::record_query(c, db, day, generation, began)
                .execute()
                .await
                .unwrap();
            sealed += 1;
        }
    }
    sealed
}

async fn fresh(shards: &[Shard], db: &str) -> usize {
    let mut n = 0;
    for shard in shards {
        let days: Vec<(u32, u64)> = metrics::sql::fresh_seals_query(&shard.client, db)
            .fetch_all()
            .await
            .unwrap();
        n += days.len();
    }
    n
}

/// Every metric, and a breakdown by CDN, against the definition: over the
/// sample's hours, and over whole days around them (which read the
/// roll-ups of the days sealed).
async fn assert_metrics(shards: &[Shard], db: &str, events: &[Event]) {
    let now = (sample::NOW_MS / 1000) as u32;
    let day = 86_400;
    let hours = Range {
        from: now - 7200,
        to: now + 7200,
    };
    let days = Range {
        from: (now / day - 2) * day + 7,
        to: (now / day + 3) * day + 7,
    };
    for (range, at) in [(hours, now + 7200), (days, days.to)] {
        let scope = metrics::Scope {
            database: db,
            property: "prop",
            range,
            now: at,
            inactivity_timeout_s: 3600,
            max_view_s: 86_400,
            filters: &[],
            select: metrics::Select::All,
        };
        let overview = metrics::overview_query(&shards[0].client, &scope);
        assert_eq!(
            overview.sql_display().to_string().contains("view_days"),
            range == days,
            "roll-ups read over whole days only"
        );
        let facts = ViewFacts::latest_per_view(events);
        let got: Overview = overview.fetch_one().await.unwrap();
        let want = metrics::overview(&facts, range, at, 3600);
        assert_eq!(want.views, 60);
        if let Err(diff) = got.compare(&want) {
            panic!("{range:?}: {diff}");
        }
        let groups =
            metrics::fetch_breakdown(metrics::breakdown_query(&shards[0].client, &scope, "cdn"))
                .await
                .unwrap();
        assert_eq!(groups.len(), 2);
        for group in groups {
            let of_cdn: Vec<Event> = events
                .iter()
                .filter(|e| latest_cdn(events, &e.view_id) == group.value)
                .cloned()
                .collect();
            let want = metrics::overview(&ViewFacts::latest_per_view(&of_cdn), range, at, 3600);
            if let Err(diff) = group.overview.compare(&want) {
                panic!("{range:?}, cdn {}: {diff}", group.value);
            }
        }
    }
}

/// The CDN of `view`'s latest event.
fn latest_cdn(events: &[Event], view: &str) -> String {
    let latest = events
        .iter()
        .filter(|e| &*e.view_id == view)
        .max_by_key(|e| e.seq);
    latest.map(|e| e.cdn.to_string()).unwrap_or_default()
}

#[tokio::test]
async fn sealed_days_read_as_their_views_do() {
    let stack = Stack::from_env();
    let db = unique("sealed");
    let cfg = stack.clickhouse(&db);
    qoe_schema::migrate::apply(&cfg, qoe_schema::migrations::ALL)
        .await
        .unwrap();
    let shards = shards(&cfg);
    // A merge would make a seal stale (its partition changed): none here.
    for shard in &shards {
        shard
            .client
            .query(&format!("SYSTEM STOP MERGES {db}.views_local"))
            .execute()
            .await
            .unwrap();
    }
    // The sample spans midnight: two days, on both shards.
    let mut events = sample::views(60, sample::NOW_MS);
    insert(&shards, &events).await;
    assert_metrics(&shards, &db, &events).await;

    assert_eq!(seal_due(&shards, &db).await, 4, "two days on two shards");
    assert_eq!(fresh(&shards, &db).await, 4);
    assert_eq!(seal_due(&shards, &db).await, 0, "nothing changed");
    assert_metrics(&shards, &db, &events).await;

    // A late heartbeat for a sealed view: its day's seal goes stale (the
    // view is read from `views` again, with it) until sealed again.
    let mut late = events
        .iter()
        .filter(|e| &*e.view_id == "view-00003")
        .max_by_key(|e| e.seq)
        .unwrap()
        .clone();
    late.seq += 1;
    late.ts_ms += 1_000;
    late.watch_time_ms += 1_000;
    late.playing_time_ms += 1_000;
    insert(&shards, std::slice::from_ref(&late)).await;
    events.push(late);
    assert_eq!(fresh(&shards, &db).await, 3);
    assert_metrics(&shards, &db, &events).await;
    assert_eq!(seal_due(&shards, &db).await, 1);
    assert_eq!(fresh(&shards, &db).await, 4);
    assert_metrics(&shards, &db, &events).await;

    // A replay: stale, sealed again, the same numbers throughout.
    insert(&shards, &events).await;
    assert_metrics(&shards, &db, &events).await;
    assert_eq!(seal_due(&shards, &db).await, 4);
    assert_metrics(&shards, &db, &events).await;
}
