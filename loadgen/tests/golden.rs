//! The golden cases (`schema::golden`) end to end: each case's beacons are
//! posted to a collector, travel through the broker and a processor into
//! ClickHouse, and the metric SQL and the api must answer the hand-written
//! numbers (the api for every check that does not depend on when it is
//! asked: it answers as of the real now).

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use qoe_schema::golden;
use qoe_schema::metrics::{self, Overview, Range, Scope};
use qoe_testkit::{unique, wait_until, Stack};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_gives_the_hand_written_numbers() {
    let stack = Stack::from_env();
    let topic = unique("golden");
    stack.create_topic(&topic, 4).await;
    let db = unique("golden");
    let ch = stack.clickhouse(&db);
    qoe_schema::migrate::apply(&ch, qoe_schema::migrations::ALL)
        .await
        .expect("migrate");
    // The cases happen yesterday: whole days in the past, so the
    // collector must accept events up to two days old.
    let today = (qoe_common::clock::now_ms() / 1000 / 86_400 * 86_400) as u32;
    let base = today - 86_400;
    let cases = golden::cases();
    // One property per case, so no case sees another's views.
    let properties: BTreeMap<String, String> = cases
        .iter()
        .map(|c| (format!("key-{}", c.name), unique(c.name)))
        .collect();

    let mut settings = support::Settings::new(stack.kafka(&topic), ch.clone(), properties.clone());
    settings.collector.ingest.max_age = Duration::from_secs(3 * 86_400);
    let ingest = settings.ingest_url();
    let api_url = settings.api_for("").0;
    let pipeline = support::Pipeline::start(settings).await;

    // One beacon per request, in the case's order: reordering and
    // repeats are part of some cases.
    for case in &cases {
        let url = format!("{ingest}/v1/beacon/key-{}", case.name);
        for beacon in case.beacons(base) {
            let reply = qoe_common::httpc::send(
                hyper::Method::POST,
                &url,
                &[],
                beacon.to_string().into(),
                Duration::from_secs(5),
            )
            .await
            .expect("the collector answers");
            assert_eq!(reply.status, 202, "{}: {}", case.name, reply.text());
        }
    }

    let shard = qoe_common::clickhouse::shards(&ch)
        .into_iter()
        .next()
        .expect("a shard");
    let mut failed = Vec::new();
    let mut through_api = 0;
    for case in &cases {
        let property = &properties[&format!("key-{}", case.name)];
        // Every event stored, and the `views` table (written by a
        // materialized view just after) caught up with them.
        let want = case.distinct_events() as u64;
        let everything = Range {
            from: base - 86_400,
            to: (qoe_common::clock::now_ms() / 1000) as u32 + 1,
        };
        wait_until(Duration::from_secs(60), "the case's events stored", || {
            let ch = ch.clone();
            async move {
                qoe_loadgen::truth::stored_in(&ch, property, "", everything)
                    .await
                    .is_ok_and(|s| s.events == want && s.views_caught_up)
            }
        })
        .await;
        for check in &case.checks {
            let scope = Scope {
                database: &db,
                property,
                range: check.range(base),
                now: check.now(base),
                inactivity_timeout_s: metrics::DEFAULT_INACTIVITY_TIMEOUT_S,
                max_view_s: 6 * 3600,
                filters: &[],
                select: metrics::Select::All,
            };
            let got: Overview = metrics::overview_query(&shard.client, &scope)
                .fetch_one()
                .await
                .expect("the overview query runs");
            if let Err(diff) = got.compare(&check.expect) {
                failed.push(format!("{} ({}): {diff}", case.name, case.why));
            }
            // Through the api too, which answers as of the real now: every
            // check whose numbers do not depend on when it is asked.
            let real_now = (qoe_common::clock::now_ms() / 1000) as u32;
            let facts = facts_of(case, base);
            let at = |now| {
                metrics::overview(
                    &facts,
                    scope.range,
                    now,
                    metrics::DEFAULT_INACTIVITY_TIMEOUT_S,
                )
            };
            if at(scope.now) != at(real_now) {
                continue;
            }
            let api = qoe_loadgen::api::ApiClient {
                url: api_url.clone(),
                token: format!("{}{property}", support::READ_TOKEN_PREFIX),
            };
            let got = api.overview(scope.range).await.expect("the api answers");
            if let Err(diff) = got.compare(&check.expect) {
                failed.push(format!(
                    "{} through the api ({}): {diff}",
                    case.name, case.why
                ));
            }
            through_api += 1;
        }
    }
    assert!(
        through_api >= 12,
        "only {through_api} checks went through the api"
    );
    assert!(pipeline.stop().await, "services stopped cleanly");
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

/// The latest facts of each of `case`'s views, as the definitions see them.
fn facts_of(case: &golden::Case, base: u32) -> Vec<metrics::ViewFacts> {
    let body = serde_json::Value::Array(case.beacons(base)).to_string();
    let checks = qoe_schema::validate::Checks {
        now_ms: qoe_common::clock::now_ms(),
        max_age_ms: 3 * 86_400_000,
        max_future_ms: 300_000,
    };
    let decoded = qoe_schema::validate::decode(body.as_bytes(), &checks).expect("a golden body");
    metrics::ViewFacts::latest_per_view(&decoded.accepted)
}
