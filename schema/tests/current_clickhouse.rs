//! The current-release DDL variant and the metric queries on a current
//! ClickHouse engine (chdb-core from PyPI, in process), so the schema stays
//! honest on both 18.16 and today's releases. The cluster `qoe` is declared
//! with the engine's own (local) address, so `Distributed` tables work.

use std::io::Write;
use std::process::{Command, Stdio};

use qoe_schema::metrics::{self, seal, Range, ViewFacts};
use qoe_schema::migrate::Variant;
use qoe_schema::record::{Enrichment, Heartbeat};
use qoe_schema::rows::HeartbeatRow;
use qoe_schema::sample;
use serde_json::{json, Value};

const CONFIG: &str = r#"<clickhouse>
  <tcp_port>29555</tcp_port>
  <remote_servers><qoe><shard><replica><host>127.0.0.1</host><port>29555</port></replica></shard></qoe></remote_servers>
</clickhouse>"#;

fn python() -> String {
    std::env::var("QOE_TEST_CHDB_PYTHON").unwrap_or_else(|_| {
        let home = std::env::var("HOME").unwrap_or_default();
        format!("{home}/.cache/qoe-pipeline/chdb-venv/bin/python")
    })
}

fn run_job(job: &Value) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/chdb_runner.py");
    let mut child = Command::new(python())
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} ({e}); `deploy/local/stack install` creates it with chdb-core",
                python()
            )
        });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(job.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "chdb job failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("runner prints JSON")
}

fn f(v: &Value) -> f64 {
    v.as_f64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or_else(|| panic!("not a number: {v}"))
}

/// Every overview metric of a result row equals the definition's.
fn assert_same_row(got: &Value, want: &metrics::Overview, what: &str) {
    let want = serde_json::to_value(want).unwrap();
    for m in metrics::OVERVIEW_METRICS {
        let (g, w) = (f(&got[m.name]), f(&want[m.name]));
        assert!(
            (g - w).abs() <= 1e-9 * g.abs().max(w.abs()).max(1.0),
            "{what} {}: current ClickHouse {g}, definition {w}",
            m.name
        );
    }
}

#[test]
fn current_ddl_and_metric_queries() {
    let mut statements = Vec::new();
    statements.push("CREATE DATABASE IF NOT EXISTS qoe".to_owned());
    // Twice: every statement must be re-runnable.
    for _ in 0..2 {
        for m in qoe_schema::migrations::ALL {
            statements.extend(m.statements(Variant::Current, "qoe", "qoe"));
        }
    }
    // Unmerged, a view's rows are all there: `FINAL` must pick its latest
    // for the filter and the breakdown on the CDN it switched to.
    statements.push("SYSTEM STOP MERGES qoe.views_local".to_owned());
    // Around the real now: a current engine applies the tables' TTLs (a
    // few days) as it writes, so older samples would vanish.
    let now_ms = qoe_common::clock::now_ms() / 60_000 * 60_000;
    let mut events = sample::views(48, now_ms);
    sample::switch_cdn_of_last_event(&mut events, "view-00000", "cdn-c");
    let rows: Vec<Value> = events
        .iter()
        .map(|e| {
            let hb = Heartbeat::new(
                "prop-1".into(),
                e.ts_ms + 150,
                Enrichment::default(),
                e.clone(),
            );
            serde_json::to_value(HeartbeatRow::from(&hb)).unwrap()
        })
        .collect();
    let now = (now_ms / 1000) as u32;
    let range = Range {
        from: now - 3600,
        to: now + 3600,
    };
    // Only to render the queries' text for chDB; it connects nowhere.
    let client = clickhouse::Client::default();
    let scope = metrics::Scope {
        database: "qoe",
        property: "prop-1",
        range,
        now,
        inactivity_timeout_s: 3600,
        max_view_s: 86_400,
        filters: &[],
        select: metrics::Select::All,
    };
    // Whole days around the sample: read from the sealed days' roll-ups.
    let day = seal::DAY_S;
    let whole_days = Range {
        from: (now / day - 2) * day + 7,
        to: (now / day + 3) * day + 7,
    };
    let days_scope = metrics::Scope {
        range: whole_days,
        now: whole_days.to,
        ..scope
    };
    let not_cdn_c = [metrics::Filter {
        column: "cdn",
        value: metrics::FilterValue::Text("cdn-c"),
        negate: true,
    }];
    // Live buckets, settled twice (the second replaces the first).
    let live_range = Range {
        from: metrics::live::bucket_of(now - 3600),
        to: metrics::live::bucket_of(now + 3600),
    };
    let settle = metrics::live::settle_query(&client, "qoe", live_range)
        .sql_display()
        .to_string();
    // Every day of the sample sealed (as of an hour from now, so no part
    // is newer: fresh), so the metric queries read `views_sealed`.
    let mut after = vec![settle.clone(), settle];
    let mut days: Vec<u32> = events
        .iter()
        .map(|e| (e.view_start_ms / 1000) as u32 / seal::DAY_S * seal::DAY_S)
        .collect();
    days.dedup();
    for day in days {
        after.push(
            seal::copy_query(&client, "qoe", day, 7)
                .sql_display()
                .to_string(),
        );
        after.push(
            seal::rollup_query(&client, "qoe", day, 7)
                .sql_display()
                .to_string(),
        );
        after.push(
            seal::record_query(&client, "qoe", day, 7, now + 3600)
                .sql_display()
                .to_string(),
        );
    }
    after.push(
        "SELECT throwIf(count() = 0, 'nothing sealed') FROM qoe.views_sealed_local".to_owned(),
    );
    let job = json!({
        "after": after,
        "config": CONFIG,
        "statements": statements,
        // The same rows twice: a replay must not change any metric.
        "inserts": [
            {"table": "qoe.heartbeats_local", "rows": rows},
            {"table": "qoe.heartbeats_local", "rows": rows},
        ],
        "queries": {
            "overview": metrics::overview_query(&client, &metrics::Scope { database: "qoe", property: "prop-1", range, now, inactivity_timeout_s: 3600, max_view_s: 86_400, filters: &[], select: metrics::Select::All }).sql_display().to_string(),
            "timeseries": metrics::timeseries_query(&client, &scope, 600).sql_display().to_string(),
            "fresh": metrics::sql::fresh_seals_query(&client, "qoe").sql_display().to_string(),
            "by_cdn": metrics::breakdown_query(&client, &scope, "cdn").sql_display().to_string(),
            "live": metrics::live::series_query(&client, "qoe", "prop-1", "all", "", live_range).sql_display().to_string(),
            "not_cdn_c": metrics::overview_query(&client, &metrics::Scope { filters: &not_cdn_c, ..scope }).sql_display().to_string(),
            "days": metrics::overview_query(&client, &days_scope).sql_display().to_string(),
        },
    });
    let out = run_job(&job);
    let version = out["version"].as_str().unwrap();
    assert_eq!(
        Variant::for_version(version).unwrap(),
        Variant::Current,
        "engine {version}"
    );

    assert!(
        !out["results"]["fresh"].as_array().unwrap().is_empty(),
        "the metric queries read sealed days"
    );
    let facts = ViewFacts::latest_per_view(&events);
    let want = metrics::overview(&facts, range, now, 3600);
    assert_same_row(&out["results"]["overview"][0], &want, "overview");
    assert_eq!(want.views, 48);

    // Each CDN's row, and all but cdn-c, by each view's latest CDN.
    let latest_cdn = |view: &str| {
        let e = events
            .iter()
            .filter(|e| &*e.view_id == view)
            .max_by_key(|e| e.seq);
        e.map(|e| e.cdn.to_string()).unwrap_or_default()
    };
    let of = |keep: &dyn Fn(&str) -> bool| -> Vec<ViewFacts> {
        facts
            .iter()
            .filter(|v| keep(&latest_cdn(&v.view_id)))
            .cloned()
            .collect()
    };
    let groups = out["results"]["by_cdn"].as_array().unwrap();
    let cdns: Vec<&str> = groups
        .iter()
        .map(|g| g["value"].as_str().unwrap())
        .collect();
    assert_eq!(cdns, ["cdn-a", "cdn-b", "cdn-c"]);
    for g in groups {
        let cdn = g["value"].as_str().unwrap();
        let want = metrics::overview(&of(&|c| c == cdn), range, now, 3600);
        assert_same_row(g, &want, cdn);
    }
    let want = metrics::overview(&of(&|c| c != "cdn-c"), range, now, 3600);
    assert_same_row(&out["results"]["not_cdn_c"][0], &want, "!cdn:cdn-c");
    assert_eq!(want.views, 47);
    let want = metrics::overview(&facts, whole_days, whole_days.to, 3600);
    assert_same_row(&out["results"]["days"][0], &want, "whole days");
    assert_eq!(want.views, 48);

    // The live series equals its definition, bucket by bucket.
    let got: Vec<(u32, metrics::live::LiveCounts)> = out["results"]["live"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let counts = serde_json::from_value(json!({
                "concurrent": f(&r["concurrent"]) as u64,
                "rebuffering": f(&r["rebuffering"]) as u64,
                "playing": f(&r["playing"]) as u64,
                "bitrate_kbps_sum": f(&r["bitrate_kbps_sum"]) as u64,
                "ended": f(&r["ended"]) as u64,
                "failed": f(&r["failed"]) as u64,
                "exited": f(&r["exited"]) as u64,
            }))
            .unwrap();
            (r["live_key"].as_str().unwrap().parse().unwrap(), counts)
        })
        .collect();
    let want: Vec<_> = metrics::live::live_counts(&events, live_range)
        .into_iter()
        .collect();
    assert!(want.len() > 100);
    assert_eq!(got, want);

    // Ten-minute buckets: each equals the definition over its part of the range.
    let buckets = out["results"]["timeseries"].as_array().unwrap();
    let views: f64 = buckets.iter().map(|b| f(&b["views"])).sum();
    assert_eq!(views, 48.0, "every view in one start bucket");
    for b in buckets {
        let start: u32 = b["value"].as_str().unwrap().parse().unwrap();
        let part = Range {
            from: start.max(range.from),
            to: (start + 600).min(range.to),
        };
        let want = metrics::overview(&facts, part, now, 3600);
        assert_same_row(b, &want, &format!("bucket {start}"));
    }
}
