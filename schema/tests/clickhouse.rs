//! The migrations on the real two-shard ClickHouse (18.16): applied twice
//! (the second run is a no-op), heartbeats inserted on both shards — twice,
//! as a processor replay would — and every metric read back through the
//! Distributed tables equals the Rust definition.

use clickhouse::Row;
use qoe_common::clickhouse::{server_client, shards};
use qoe_schema::metrics::{self, Overview, Range, ViewFacts};
use qoe_schema::record::{Enrichment, Heartbeat};
use qoe_schema::rows::{shard_for, view_hash, HeartbeatRow};
use qoe_schema::sample;
use qoe_testkit::{unique, Stack};

fn assert_same(got: &Overview, want: &Overview) {
    if let Err(diff) = got.compare(want) {
        panic!("ClickHouse vs definition: {diff}");
    }
}

#[test]
fn overview_row_matches_metric_list() {
    let names: Vec<&str> = metrics::OVERVIEW_METRICS.iter().map(|m| m.name).collect();
    assert_eq!(names, Overview::COLUMN_NAMES);
}

#[tokio::test]
async fn migrate_insert_replay_and_read_every_metric() {
    let stack = Stack::from_env();
    let db = unique("schema");
    let cfg = stack.clickhouse(&db);

    let first = qoe_schema::migrate::apply(&cfg, qoe_schema::migrations::ALL)
        .await
        .unwrap();
    assert!(first
        .iter()
        .all(|r| r.applied.len() == qoe_schema::migrations::ALL.len()));
    let second = qoe_schema::migrate::apply(&cfg, qoe_schema::migrations::ALL)
        .await
        .unwrap();
    assert!(second
        .iter()
        .all(|r| r.applied.is_empty() && r.already == qoe_schema::migrations::ALL.len()));

    // 60 views, events mixed in order, then the whole stream again (a replay).
    // One view switches CDN on its last event: filters and breakdowns must
    // see only that latest value, also before merges (stopped here).
    let mut events = sample::views(60, sample::NOW_MS);
    sample::switch_cdn_of_last_event(&mut events, "view-00000", "cdn-c");
    // One view's latest event carries an earlier time than its others,
    // across the start of a range read below: that range must take the
    // view as of its latest event (ended before it), not an earlier row.
    let rewound = sample::rewind_last_event_across(&mut events, sample::NOW_MS - 1_200_000);
    let property = "prop-1";
    let rows: Vec<HeartbeatRow> = events
        .iter()
        .map(|e| {
            let enrichment = Enrichment {
                country: "SE".into(),
                device_type: "desktop".into(),
                ..Default::default()
            };
            HeartbeatRow::from(&Heartbeat::new(
                property.into(),
                e.ts_ms + 150,
                enrichment,
                e.clone(),
            ))
        })
        .collect();
    let shard_clients = shards(&cfg);
    for shard in &shard_clients {
        shard
            .client
            .query(&format!("SYSTEM STOP MERGES {db}.views_local"))
            .execute()
            .await
            .unwrap();
    }
    for pass in 0..2 {
        for shard in &shard_clients {
            let mut insert = shard
                .client
                .insert::<HeartbeatRow>("heartbeats_local")
                .await
                .unwrap();
            let mut mine: Vec<&HeartbeatRow> = rows
                .iter()
                .filter(|r| shard_for(&r.view_id, 2) == shard.number - 1)
                .collect();
            if pass == 1 {
                mine.reverse(); // a replay need not arrive in the same order
            }
            for row in mine {
                insert.write(row).await.unwrap();
            }
            insert.end().await.unwrap();
        }
    }
    for shard in &shard_clients {
        let local: u64 = shard
            .client
            .query("SELECT uniqExact(view_id) FROM views_local")
            .fetch_one()
            .await
            .unwrap();
        assert!(local > 10, "shard {} holds views ({local})", shard.number);
    }

    let facts = ViewFacts::latest_per_view(&events);
    let now = (sample::NOW_MS / 1000) as u32;
    let rewound_facts = facts.iter().find(|v| v.view_id == rewound).unwrap();
    assert!(i64::from(rewound_facts.last_ts) * 1000 < sample::NOW_MS - 1_200_000);
    let reader = &shard_clients[0].client;
    for range in [
        Range {
            from: now - 3600,
            to: now + 3600,
        },
        Range {
            from: now - 1200,
            to: now - 600,
        },
        Range {
            from: now - 600,
            to: now,
        },
    ] {
        for at in [now, now + 7200] {
            let want = metrics::overview(&facts, range, at, 3600);
            let query = metrics::overview_query(
                reader,
                &metrics::Scope {
                    database: &db,
                    property,
                    range,
                    now: at,
                    inactivity_timeout_s: 3600,
                    max_view_s: 86_400,
                    filters: &[],
                    select: metrics::Select::All,
                },
            );
            let sql = query.sql_display().to_string();
            let got: Overview = query
                .fetch_one()
                .await
                .unwrap_or_else(|e| panic!("{e}: {sql}"));
            assert_same(&got, &want);
        }
    }
    let whole = metrics::overview(
        &facts,
        Range {
            from: now - 3600,
            to: now + 3600,
        },
        now,
        3600,
    );
    assert_eq!(whole.views, 60);
    assert!(
        whole.playback_failure_pct > 0.0
            && whole.exits_before_start_pct > 0.0
            && whole.rebuffer_pct > 0.0
    );

    // A breakdown by CDN: each value's row equals the definition over that
    // value's views.
    let range = Range {
        from: now - 3600,
        to: now + 3600,
    };
    let scope = metrics::Scope {
        database: &db,
        property,
        range,
        now,
        inactivity_timeout_s: 3600,
        max_view_s: 86_400,
        filters: &[],
        select: metrics::Select::All,
    };
    let rows = metrics::fetch_breakdown(metrics::breakdown_query(reader, &scope, "cdn"))
        .await
        .unwrap();
    let cdns: Vec<&str> = rows.iter().map(|g| g.value.as_str()).collect();
    assert_eq!(cdns, ["cdn-a", "cdn-b", "cdn-c"]);
    for metrics::Group {
        value: cdn,
        overview: got,
    } in &rows
    {
        let mine: Vec<ViewFacts> = facts
            .iter()
            .filter(|v| {
                let latest = events
                    .iter()
                    .filter(|e| *e.view_id == v.view_id)
                    .max_by_key(|e| e.seq)
                    .unwrap();
                &*latest.cdn == cdn
            })
            .cloned()
            .collect();
        assert_same(got, &metrics::overview(&mine, range, now, 3600));

        // The same views through a filter, and the others through its negation.
        for negate in [false, true] {
            let filters = [metrics::Filter {
                column: "cdn",
                value: metrics::FilterValue::Text(cdn),
                negate,
            }];
            let filtered = metrics::Scope {
                filters: &filters,
                ..scope
            };
            let got: Overview = metrics::overview_query(reader, &filtered)
                .fetch_one()
                .await
                .unwrap();
            let want = if negate {
                let others: Vec<ViewFacts> = facts
                    .iter()
                    .filter(|v| !mine.iter().any(|m| m.view_id == v.view_id))
                    .cloned()
                    .collect();
                metrics::overview(&others, range, now, 3600)
            } else {
                metrics::overview(&mine, range, now, 3600)
            };
            assert_same(&got, &want);
        }
    }

    // A timeseries by ten minutes: each bucket equals the definition over
    // its part of the range.
    let step = 600;
    let buckets = metrics::fetch_breakdown(metrics::timeseries_query(reader, &scope, step))
        .await
        .unwrap();
    assert!(buckets.len() > 3, "{} buckets", buckets.len());
    let mut views = 0;
    for metrics::Group {
        value: bucket,
        overview: got,
    } in &buckets
    {
        let start: u32 = bucket.parse().unwrap();
        let part = Range {
            from: start.max(range.from),
            to: (start + step).min(range.to),
        };
        assert_same(got, &metrics::overview(&facts, part, now, 3600));
        views += got.views;
    }
    assert_eq!(views, 60, "every view in one start bucket");

    for url in &cfg.shards {
        let _ = server_client(&cfg, url)
            .query(&format!("DROP DATABASE IF EXISTS {db}"))
            .execute()
            .await;
    }
}

#[tokio::test]
async fn view_hash_is_clickhouse_siphash64() {
    let stack = Stack::from_env();
    let client = server_client(&stack.clickhouse("default"), &stack.shards[0]);
    for id in [
        "",
        "abc",
        "0b5c2f1e-7d3a-4c41-9e2b-000000000001",
        "view-00042",
    ] {
        let got: u64 = client
            .query("SELECT sipHash64(?)")
            .bind(id)
            .fetch_one()
            .await
            .unwrap();
        assert_eq!(got, view_hash(id), "sipHash64({id:?})");
    }
}

/// `shard_for` must put a view where the `Distributed` table would: rows
/// inserted through it (synchronously) are found in each shard's local
/// table, and each view's shard is the one `shard_for` names.
#[tokio::test]
async fn shard_for_is_where_the_distributed_table_puts_a_view() {
    let stack = Stack::from_env();
    let db = unique("sharding");
    let cfg = stack.clickhouse(&db);
    qoe_schema::migrate::apply(&cfg, qoe_schema::migrations::ALL)
        .await
        .unwrap();
    let clients = shards(&cfg);
    let events = sample::views(40, sample::NOW_MS);
    let mut insert = clients[0]
        .client
        .clone()
        .with_setting("insert_distributed_sync", "1")
        .insert::<HeartbeatRow>("heartbeats")
        .await
        .unwrap();
    for e in &events {
        let hb = Heartbeat::new("p".into(), e.ts_ms, Enrichment::default(), e.clone());
        insert.write(&HeartbeatRow::from(&hb)).await.unwrap();
    }
    insert.end().await.unwrap();
    let mut placed = 0;
    for shard in &clients {
        let views: Vec<String> = shard
            .client
            .query("SELECT DISTINCT view_id FROM heartbeats_local")
            .fetch_all()
            .await
            .unwrap();
        assert!(!views.is_empty(), "shard {} holds views", shard.number);
        for v in &views {
            assert_eq!(shard_for(v, clients.len()), shard.number - 1, "view {v}");
        }
        placed += views.len();
    }
    assert_eq!(placed, 40, "every view on exactly one shard");
    let _ = clients[0]
        .client
        .query(&format!("DROP DATABASE IF EXISTS {db}"))
        .execute()
        .await;
}

/// The processor inserts `HeartbeatRow::COLUMN_NAMES` (naming them, so the
/// order does not matter); the migrated tables must have exactly those
/// columns (a column the row lacks would silently take its default), and
/// each integer field of `schema::fields` must have its column type. This
/// is the test that fails when a field is added without its migration.
#[tokio::test]
async fn the_row_has_every_column_of_the_table() {
    #[derive(Row, serde::Deserialize)]
    struct Column {
        name: String,
        #[serde(rename = "type")]
        kind: String,
    }
    let stack = Stack::from_env();
    let db = unique("columns");
    let cfg = stack.clickhouse(&db);
    qoe_schema::migrate::apply(&cfg, qoe_schema::migrations::ALL)
        .await
        .unwrap();
    let client = &shards(&cfg)[0].client;
    let mut want: Vec<&str> = HeartbeatRow::COLUMN_NAMES.to_vec();
    want.sort_unstable();
    for table in ["heartbeats_local", "heartbeats"] {
        let columns: Vec<Column> = client
            .query("SELECT name, type FROM system.columns WHERE database = ? AND table = ?")
            .bind(&db)
            .bind(table)
            .fetch_all()
            .await
            .unwrap();
        let mut names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
        names.sort_unstable();
        let missing: Vec<_> = want.iter().filter(|n| !names.contains(n)).collect();
        let extra: Vec<_> = names.iter().filter(|n| !want.contains(n)).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{table}: columns the row writes but the table lacks (add a migration): {missing:?}; \
             columns the row does not write: {extra:?}"
        );
        for (name, kind) in qoe_schema::fields::INTEGER_COLUMNS {
            let column = columns.iter().find(|c| c.name == *name).unwrap();
            assert_eq!(column.kind, *kind, "{table}.{name}");
        }
    }
    let _ = client
        .query(&format!("DROP DATABASE IF EXISTS {db}"))
        .execute()
        .await;
}
