//! The QoE Grafana dashboard (`deploy/grafana/qoe.json`): the committed
//! file is what `qoe_api::grafana` writes, and each panel's SQL, with the
//! variables filled in as Grafana fills them, runs on the test stack's
//! ClickHouse and shows the api's numbers.

mod support;

use qoe_schema::metrics::sql::fetch_json_rows;
use serde_json::Value;
use support::{events, setup, TOKEN_A};

const FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/grafana/qoe.json");

#[test]
fn the_committed_dashboard_is_current() {
    let want = serde_json::to_string_pretty(&qoe_api::grafana::dashboard()).unwrap() + "\n";
    if std::env::var_os("QOE_BLESS").is_some() {
        std::fs::write(FILE, &want).unwrap();
    }
    let got = std::fs::read_to_string(FILE).unwrap_or_default();
    assert!(
        got == want,
        "deploy/grafana/qoe.json is not what api/src/grafana.rs writes: \
         run `QOE_BLESS=1 cargo test -p qoe-api --test grafana` and commit it"
    );
}

/// Each panel's rows, its SQL run with `vars` in place of Grafana's.
async fn run(api: &support::Api, sql: &str, vars: &[(&str, String)]) -> Vec<Value> {
    let mut sql = sql.to_owned();
    for (name, value) in vars {
        sql = sql.replace(name, value);
    }
    assert!(!sql.contains('$'), "a variable is left: {sql}");
    fetch_json_rows(api.shards[0].client.query(&sql))
        .await
        .unwrap_or_else(|e| panic!("{e}: {sql}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_panel_runs_and_shows_the_apis_numbers() {
    let events = events();
    let api = setup(&events).await;
    let to = qoe_common::clock::now_ms() / 1000;
    let from = to - 24 * 3600;
    let vars = [
        ("${database}", api.db.clone()),
        ("${property}", "prop-a".to_owned()),
        ("${__from:date:seconds}", from.to_string()),
        ("${__to:date:seconds}", to.to_string()),
        ("${dimension}", "cdn".to_owned()),
    ];
    let timeframe = format!("timeframe[]={from}&timeframe[]={to}");
    let panels = qoe_api::grafana::panels();
    let sql_of = |p: &Value| p["targets"][0]["rawSql"].as_str().unwrap().to_owned();
    let mut checked = 0;

    // The stat panels are the page's tiles: the api's default measurement.
    for (p, (id, _)) in panels
        .iter()
        .filter(|p| p["type"] == "stat")
        .zip(qoe_api::grafana::TILES)
    {
        let rows = run(&api, &sql_of(p), &vars).await;
        let shown = rows[0]["value"].as_f64().unwrap();
        let (status, body) = api
            .get(
                &format!("/v1/metrics/{id}/overall?{timeframe}"),
                Some(TOKEN_A),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let want = body["data"]["value"].as_f64().unwrap();
        assert!(
            (shown - want).abs() <= 1e-9 * want.abs().max(1.0),
            "{id}: grafana {shown}, api {want}"
        );
        checked += 1;
    }
    assert_eq!(checked, qoe_api::grafana::TILES.len());

    // Over time: the views per bucket add up to every view.
    let views = panels
        .iter()
        .find(|p| p["type"] == "timeseries" && p["title"] == "Views")
        .unwrap();
    let rows = run(&api, &sql_of(views), &vars).await;
    let total: f64 = rows.iter().map(|r| r["Views"].as_f64().unwrap()).sum();
    assert_eq!(total, 60.0);
    for p in panels.iter().filter(|p| p["type"] == "timeseries") {
        run(&api, &sql_of(p), &vars).await;
    }

    // The breakdown: one row per CDN, as the api's.
    let table = panels.iter().find(|p| p["type"] == "table").unwrap();
    let rows = run(&api, &sql_of(table), &vars).await;
    let (status, body) = api
        .get(
            &format!("/v1/metrics/rebuffer_percentage/breakdown?group_by=cdn&{timeframe}"),
            Some(TOKEN_A),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(rows.len() as u64, body["total_row_count"].as_u64().unwrap());
    for row in &rows {
        let cdn = row["cdn"].as_str().unwrap();
        let want = body["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["value"] == cdn)
            .unwrap_or_else(|| panic!("no api row for {cdn}"));
        assert_eq!(row["Views ended"], want["views"], "{cdn}");
        let shown = row["Rebuffering %"].as_f64().unwrap();
        let api_value = want["metric_value"].as_f64().unwrap();
        assert!(
            (shown - api_value).abs() <= 1e-9 * api_value.max(1.0),
            "{cdn}"
        );
    }
}
