//! The QoE Grafana dashboard (`deploy/grafana/qoe.json`, ClickHouse data
//! source), written from the very queries and metric catalog the api
//! answers with, so Grafana and the api cannot disagree on a definition.
//! Where the api binds a value, the dashboard has a Grafana variable: the
//! property (`${property}`), the database (`${database}`), the time range
//! (`${__from:date:seconds}`, `${__to:date:seconds}`) and a breakdown's
//! dimension (`${dimension}`). `api/tests/grafana.rs` keeps the file
//! current and runs every panel's SQL against ClickHouse.

use clickhouse::Client;
use serde_json::{json, Value};

use qoe_schema::metrics::sql::{breakdown_query, overview_query, timeseries_query, Scope, Select};
use qoe_schema::metrics::{live, Range, DEFAULT_INACTIVITY_TIMEOUT_S};

use crate::catalog::{metric, DIMENSIONS};

/// The headline metrics, as the dashboard page's tiles show them: metric
/// id and the `Overview` field holding its default measurement.
pub const TILES: &[(&str, &str)] = &[
    ("views", "views"),
    ("unique_viewers", "unique_viewers"),
    ("video_startup_time", "startup_time_ms_p50"),
    ("playback_failure_percentage", "playback_failure_pct"),
    ("exits_before_video_start", "exits_before_start_pct"),
    ("rebuffer_percentage", "rebuffer_pct"),
    ("weighted_average_bitrate", "avg_bitrate_kbps"),
];

// Stand-ins bound where the api binds real values, replaced by Grafana
// variables in the text (10-digit numbers: none is part of another).
const DATABASE: &str = "qoe_grafana_database";
const PROPERTY: &str = "qoe_grafana_property";
const DIMENSION: &str = "qoe_grafana_dimension";
const FROM: u32 = 3_111_111_111;
const TO: u32 = 3_222_222_222;
const NOW: u32 = 3_333_333_333;
const STEP: u32 = 3_444_444_444;
/// The api's default `limits.max_view` (how long a view may last).
const MAX_VIEW_S: u32 = 6 * 3600;

const GRAFANA_FROM: &str = "${__from:date:seconds}";
const GRAFANA_TO: &str = "${__to:date:seconds}";

/// `sql` with Grafana's variables in place of the stand-ins.
fn with_variables(sql: &str) -> String {
    // The api's default granularity for the range (`params::step`).
    let step = format!(
        "multiIf({GRAFANA_TO} - {GRAFANA_FROM} <= 5400, 60, {GRAFANA_TO} - {GRAFANA_FROM} <= 21600, 600, \
         {GRAFANA_TO} - {GRAFANA_FROM} <= 1296000, 3600, 86400)"
    );
    sql.replace(DATABASE, "${database}")
        .replace(PROPERTY, "${property}")
        .replace(DIMENSION, "${dimension}")
        .replace(
            &(FROM - MAX_VIEW_S).to_string(),
            &format!("({GRAFANA_FROM} - {MAX_VIEW_S})"),
        )
        .replace(&FROM.to_string(), GRAFANA_FROM)
        .replace(&TO.to_string(), GRAFANA_TO)
        .replace(&NOW.to_string(), "toUInt32(now())")
        .replace(&STEP.to_string(), &step)
}

fn scope<'a>(fields: &'a [&'a str]) -> Scope<'a> {
    Scope {
        database: DATABASE,
        property: PROPERTY,
        range: Range { from: FROM, to: TO },
        now: NOW,
        inactivity_timeout_s: DEFAULT_INACTIVITY_TIMEOUT_S,
        max_view_s: MAX_VIEW_S,
        filters: &[],
        select: Select::Only(fields),
    }
}

fn unit(api_unit: &str) -> &'static str {
    match api_unit {
        "ms" => "ms",
        "%" => "percent",
        "kbps" => "Kbits",
        _ => "short",
    }
}

fn target(sql: String, timeseries: bool) -> Value {
    json!({
        "refId": "A",
        "datasource": {"type": "grafana-clickhouse-datasource", "uid": "${datasource}"},
        "editorType": "sql",
        "queryType": if timeseries { "timeseries" } else { "table" },
        "format": if timeseries { 0 } else { 1 },
        "rawSql": sql,
    })
}

fn panel(kind: &str, title: &str, unit: &str, grid: [u32; 4], sql: String) -> Value {
    json!({
        "type": kind,
        "title": title,
        "datasource": {"type": "grafana-clickhouse-datasource", "uid": "${datasource}"},
        "gridPos": {"x": grid[0], "y": grid[1], "w": grid[2], "h": grid[3]},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [target(sql, kind == "timeseries")],
    })
}

/// Every panel's SQL, by title, with the Grafana variables in it.
pub fn panels() -> Vec<Value> {
    let client = Client::default();
    let mut panels = Vec::new();
    let width = 24 / TILES.len() as u32;
    for (i, (id, field)) in TILES.iter().enumerate() {
        let m = metric(id).expect("a tile names a catalog metric");
        let fields = [*field];
        let sql = overview_query(&client, &scope(&fields))
            .sql_display()
            .to_string();
        let sql = format!("SELECT {field} AS value FROM ({sql})");
        let grid = [i as u32 * width, 0, width, 4];
        panels.push(panel(
            "stat",
            m.name,
            unit(m.unit),
            grid,
            with_variables(&sql),
        ));
    }

    let live_sql = live::series_query(
        &client,
        DATABASE,
        PROPERTY,
        "all",
        "",
        Range { from: FROM, to: TO },
    )
    .sql_display()
    .to_string();
    let live_sql = format!(
        "SELECT toDateTime(toUInt32(live_key)) AS time, concurrent AS `Concurrent viewers` \
         FROM ({live_sql}) ORDER BY time"
    );
    panels.push(panel(
        "timeseries",
        "Concurrent viewers (5 s)",
        "short",
        [0, 4, 24, 8],
        with_variables(&live_sql),
    ));

    for (i, (id, field)) in TILES.iter().enumerate() {
        let m = metric(id).expect("a tile names a catalog metric");
        let fields = [*field];
        let sql = timeseries_query(&client, &scope(&fields), STEP)
            .sql_display()
            .to_string();
        let sql = format!(
            "SELECT toDateTime(toUInt32(value)) AS time, {field} AS `{}` FROM ({sql}) ORDER BY time",
            m.name
        );
        let grid = [(i as u32 % 4) * 6, 12 + (i as u32 / 4) * 8, 6, 8];
        panels.push(panel(
            "timeseries",
            m.name,
            unit(m.unit),
            grid,
            with_variables(&sql),
        ));
    }

    let fields = [
        "playback_failure_pct",
        "rebuffer_pct",
        "startup_time_ms_p50",
        "ended_in_range",
    ];
    let sql = breakdown_query(&client, &scope(&fields), DIMENSION)
        .sql_display()
        .to_string();
    let sql = format!(
        "SELECT value AS `${{dimension}}`, ended_in_range AS `Views ended`, \
                playback_failure_pct AS `Playback failure %`, rebuffer_pct AS `Rebuffering %`, \
                startup_time_ms_p50 AS `Startup time p50 (ms)`, \
                ended_in_range * rebuffer_pct AS `Rebuffering impact` \
         FROM ({sql}) ORDER BY `Rebuffering impact` DESC LIMIT 50"
    );
    panels.push(panel(
        "table",
        "Where it hurts: by ${dimension}",
        "short",
        [0, 28, 24, 10],
        with_variables(&sql),
    ));
    for (i, p) in panels.iter_mut().enumerate() {
        p["id"] = json!(i + 1);
    }
    panels
}

/// The whole dashboard.
pub fn dashboard() -> Value {
    let dimensions: Vec<Value> = DIMENSIONS
        .iter()
        .map(|d| json!({"text": d.id, "value": d.column, "selected": d.id == "country"}))
        .collect();
    json!({
        "title": "qoe-pipeline: viewers' QoE",
        "uid": "qoe-pipeline-qoe",
        "description": "The api's headline metrics, live concurrent viewers, metrics over time and a breakdown, from the same SQL the api runs (generated by api/src/grafana.rs; do not edit by hand).",
        "tags": ["qoe"],
        "schemaVersion": 39,
        "version": 1,
        "editable": true,
        "refresh": "30s",
        "timezone": "utc",
        "time": {"from": "now-24h", "to": "now"},
        "annotations": {"list": []},
        "templating": {"list": [
            {"name": "datasource", "label": "ClickHouse", "type": "datasource",
             "query": "grafana-clickhouse-datasource", "current": {}, "hide": 0},
            {"name": "database", "label": "Database", "type": "constant", "query": "qoe", "hide": 2},
            {"name": "property", "label": "Property", "type": "textbox", "query": "dev-property",
             "current": {"text": "dev-property", "value": "dev-property"}, "hide": 0},
            {"name": "dimension", "label": "Breakdown by", "type": "custom",
             "query": DIMENSIONS.iter().map(|d| format!("{} : {}", d.id, d.column)).collect::<Vec<_>>().join(","),
             "options": dimensions,
             "current": {"text": "country", "value": "country"}, "hide": 0},
        ]},
        "panels": panels(),
    })
}
