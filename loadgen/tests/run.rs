//! A short `run` against a real collector and processor (in process) on the
//! test stack's broker and both ClickHouse shards: the verdict passes, the
//! verify table matches the ground truth exactly, write and read latency
//! are measured, and the run is recorded.
#![allow(clippy::field_reassign_with_default)] // settings read better one per line

mod support;

use std::time::Duration;

use qoe_loadgen::run::Step;
use qoe_loadgen::LoadgenConfig;
use qoe_testkit::unique;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_run_verifies_and_records() {
    let (settings, property) = support::Settings::on_test_stack("loadgen", "lg-key").await;
    let ch = settings.processor.clickhouse.clone();
    let ingest = settings.ingest_url();
    let (api_url, read_token) = settings.api_for(&property);
    let [collector_admin, processor_admin] = settings.admin_urls();
    let pipeline = support::Pipeline::start(settings).await;

    let results = std::env::temp_dir().join(unique("loadtests"));
    let mut cfg = LoadgenConfig::default();
    cfg.clickhouse = ch.clone();
    cfg.target.collector_url = ingest;
    cfg.target.property_key = "lg-key".into();
    cfg.target.property_id = property.clone();
    cfg.target.api_url = api_url;
    cfg.target.read_token = read_token;
    cfg.target.backlogs = vec![
        (
            "collector".into(),
            collector_admin,
            "qoe_collector_backlog".into(),
        ),
        (
            "processor".into(),
            processor_admin,
            "qoe_processor_consumer_lag".into(),
        ),
    ];
    cfg.run.results_dir = results.display().to_string();
    cfg.run.marker_interval = Duration::from_millis(500);
    cfg.run.read_interval = Duration::from_millis(500);
    cfg.run.settle_timeout = Duration::from_secs(60);
    // A fast audience: a report a second, views of a few seconds, so views
    // start, rebuffer, fail and end within the run.
    cfg.model.heartbeat_interval_ms = 1_000;
    cfg.model.view_median_s = 4.0;
    cfg.model.rebuffers_per_min = 6.0;
    cfg.model.exit_before_start = 0.1;
    cfg.model.startup_failure = 0.1;
    let steps = [Step {
        viewers: 40,
        ramp: Duration::from_secs(2),
        hold: Duration::from_secs(8),
    }];
    let done = qoe_loadgen::load(&cfg, "run", &steps, serde_json::json!({}))
        .await
        .expect("run");
    assert!(pipeline.stop().await, "services stopped cleanly");

    let r = &done.record;
    let verify = r.verify.as_ref().expect("verify ran");
    assert!(verify.ok, "{}", verify.table());
    assert_eq!(verify.missing, 0);
    let stored = &verify.lines[0];
    assert!(
        stored.expected > 200.0,
        "a real amount of events: {}",
        stored.expected
    );
    // Breakdowns by the SDK's dimensions were checked, row by row.
    for dimension in [
        "cdn",
        "player_name",
        "stream_type",
        "player_version",
        "video_id",
        "video_title",
        "error_code",
    ] {
        let line = verify
            .lines
            .iter()
            .find(|l| l.metric == format!("breakdown rows by {dimension}"))
            .unwrap_or_else(|| panic!("no breakdown line for {dimension}"));
        assert!(line.ok && line.expected >= 3.0, "{dimension}: {line:?}");
    }
    // The live concurrent viewers, bucket by bucket, as the processor's
    // live job settled them.
    let live = verify
        .lines
        .iter()
        .find(|l| l.metric.starts_with("live concurrent viewers"))
        .expect("a live line");
    assert!(live.ok && live.expected >= 2.0, "{live:?}");
    assert_eq!(r.verdict, "pass", "{:?}", r.steps);
    let step = &r.steps[0];
    assert_eq!(step.viewers, 40);
    assert!(step.markers >= 5, "write latency measured: {step:?}");
    assert!(step.reads >= 5, "read latency measured: {step:?}");
    assert!(step.write_latency_p99_s > 0.0 && step.write_latency_p99_s < 30.0);
    assert_eq!(
        step.shed + step.refused + step.failed + step.events_rejected,
        0
    );
    let views = verify
        .lines
        .iter()
        .find(|l| l.metric == "views")
        .expect("views line");
    assert!(
        views.expected > 40.0,
        "views ended and were replaced: {}",
        views.expected
    );
    // Recorded: the JSON, the truth beside it, and a RESULTS.md row.
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&done.result_path).expect("result")).expect("json");
    assert_eq!(json["verdict"], "pass");
    let table = std::fs::read_to_string(results.join("RESULTS.md")).expect("RESULTS.md");
    assert!(table.contains(&r.id), "{table}");
    assert!(results
        .join("results")
        .join(format!("{}.truth.json", r.id))
        .exists());
    let _ = std::fs::remove_dir_all(&results);
}
