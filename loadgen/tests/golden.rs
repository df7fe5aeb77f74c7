//! The golden cases (`schema::golden`) end to end: each case's beacons are
//! posted to a collector, travel through the broker and a processor into
//! ClickHouse, and the metric SQL must answer the hand-written numbers.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use qoe_schema::golden;
use qoe_schema::metrics::{self, Overview, Scope};
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
    for case in &cases {
        let property = &properties[&format!("key-{}", case.name)];
        // Stored in both tables: the `views` rows come from a materialized
        // view, written just after the `heartbeats` ones. `views` collapses
        // a view's rows, so it is compared by each view's latest `seq`.
        let want = case.distinct_events() as u64;
        let latest = "SELECT sum(s) FROM (SELECT max(seq) AS s FROM ?.{} WHERE property_id = ? GROUP BY view_id)";
        wait_until(Duration::from_secs(60), "the case's events stored", || {
            let sql = format!(
                "SELECT (SELECT uniqExact(view_id, seq) FROM ?.heartbeats WHERE property_id = ?), ({}), ({})",
                latest.replace("{}", "heartbeats"),
                latest.replace("{}", "views")
            );
            let mut query = shard.client.query(&sql);
            for _ in 0..3 {
                query = query
                    .bind(clickhouse::sql::Identifier(&db))
                    .bind(property.as_str());
            }
            async move {
                query
                    .fetch_one::<(u64, u64, u64)>()
                    .await
                    .is_ok_and(|(events, raw, collapsed)| events == want && raw == collapsed)
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
            };
            let got: Overview = metrics::overview_query(&shard.client, &scope)
                .fetch_one()
                .await
                .expect("the overview query runs");
            if let Err(diff) = got.compare(&check.expect) {
                failed.push(format!("{} ({}): {diff}", case.name, case.why));
            }
        }
    }
    assert!(pipeline.stop().await, "services stopped cleanly");
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}
