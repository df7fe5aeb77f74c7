//! What the processor's integration tests share: a topic and a migrated
//! database of their own, a producer of heartbeat records, a processor
//! binary to start, and the committed-offsets and metrics checks.

#![allow(dead_code)]

use std::time::Duration;

use qoe_common::clickhouse::server_client;
use qoe_processor::sessions::{Fold, Forgetful, Sessions};
use qoe_schema::beacon::Event;
use qoe_schema::metrics::live::{self, LiveCounts};
use qoe_schema::metrics::{self, Overview, Range, ViewFacts};
use qoe_schema::record::{Enrichment, Heartbeat, Record, Source};
use qoe_testkit::{unique, Service, Stack};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;

pub const PROPERTY: &str = "prop-1";

pub struct Setup {
    pub stack: Stack,
    pub topic: String,
    pub dlq: String,
    pub db: String,
}

impl Setup {
    /// A fresh topic (4 partitions), its dead-letter topic and a migrated database.
    pub async fn new(name: &str) -> Setup {
        let stack = Stack::from_env();
        let topic = unique(name);
        let dlq = format!("{topic}.dlq");
        stack.create_topic(&topic, 4).await;
        stack.create_topic(&dlq, 1).await;
        let db = unique(name);
        qoe_schema::migrate::apply(&stack.clickhouse(&db), qoe_schema::migrations::ALL)
            .await
            .expect("migrations");
        Setup {
            stack,
            topic,
            dlq,
            db,
        }
    }

    /// Produces `events` as heartbeat records keyed by view. Every third
    /// is in the version-1 JSON format, as a collector of the previous
    /// release wrote it: a rolling upgrade mixes both in one topic.
    pub async fn produce(&self, events: &[Event]) {
        let records: Vec<(String, Vec<u8>)> = events
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let hb = Heartbeat::new(
                    PROPERTY.into(),
                    e.ts_ms + 100,
                    Enrichment::default(),
                    e.clone(),
                );
                let value = if i % 3 == 0 {
                    hb.encode_json()
                } else {
                    hb.encode()
                };
                (e.view_id.to_string(), value)
            })
            .collect();
        self.produce_raw(&records).await;
    }

    /// Produces raw `(key, value)` records.
    pub async fn produce_raw(&self, records: &[(String, Vec<u8>)]) {
        let producer: FutureProducer =
            qoe_common::kafka::producer_config(&self.stack.kafka(&self.topic))
                .create()
                .unwrap();
        for (key, value) in records {
            producer
                .send(
                    FutureRecord::to(&self.topic).key(key).payload(value),
                    Duration::from_secs(10),
                )
                .await
                .expect("produced");
        }
    }

    /// Starts a processor in `group`, optionally through other shard URLs.
    pub fn processor(
        &self,
        group: &str,
        shards: Option<Vec<String>>,
        extra: &[(&str, String)],
    ) -> Service {
        let shards = shards.unwrap_or_else(|| self.stack.shard_entries());
        let mut env = vec![
            ("QOE_KAFKA__BROKERS", self.stack.brokers.clone()),
            ("QOE_KAFKA__TOPIC", self.topic.clone()),
            ("QOE_KAFKA__DEAD_LETTER_TOPIC", self.dlq.clone()),
            ("QOE_CLICKHOUSE__SHARDS", shards.join(",")),
            ("QOE_CLICKHOUSE__DATABASE", self.db.clone()),
            ("QOE_PROCESSOR__GROUP", group.to_owned()),
            ("QOE_PROCESSOR__BATCH_ROWS", "200".to_owned()),
            ("QOE_PROCESSOR__BATCH_INTERVAL", "200ms".to_owned()),
            ("QOE_PROCESSOR__RETRY_MAX_BACKOFF", "500ms".to_owned()),
        ];
        env.extend(extra.iter().cloned());
        Service::spawn("qoe-processor", env!("CARGO_BIN_EXE_qoe-processor"), &env)
    }

    /// Produces `first`, lets a processor commit them and kills it (`-9`),
    /// then produces `second` for a successor of the same static member
    /// (it takes the partitions at once) and returns it once it committed
    /// everything.
    pub async fn crash_and_take_over(
        &self,
        first: &[(String, Vec<u8>)],
        second: &[(String, Vec<u8>)],
    ) -> Service {
        let group = unique("group");
        let instance = ("QOE_PROCESSOR__INSTANCE_ID", "processor-0".to_owned());
        let wait = Duration::from_secs(60);
        self.produce_raw(first).await;
        let doomed = self.processor(&group, None, std::slice::from_ref(&instance));
        self.wait_committed(&group, first.len() as i64, wait).await;
        drop(doomed);
        self.produce_raw(second).await;
        let successor = self.processor(&group, None, &[instance]);
        self.wait_committed(&group, (first.len() + second.len()) as i64, wait)
            .await;
        successor
    }

    /// Sum of `group`'s committed offsets over the topic's partitions.
    pub fn committed(&self, group: &str) -> i64 {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.stack.brokers)
            .set("group.id", group)
            .create()
            .unwrap();
        let md = consumer
            .fetch_metadata(Some(&self.topic), Duration::from_secs(5))
            .unwrap();
        let mut tpl = rdkafka::TopicPartitionList::new();
        for p in md.topics()[0].partitions() {
            tpl.add_partition(&self.topic, p.id());
        }
        let committed = consumer
            .committed_offsets(tpl, Duration::from_secs(5))
            .unwrap();
        committed
            .elements()
            .iter()
            .map(|e| e.offset().to_raw().unwrap_or(0).max(0))
            .sum()
    }

    /// Waits until `group` has committed `n` records.
    pub async fn wait_committed(&self, group: &str, n: i64, timeout: Duration) {
        let what = format!("group {group} to commit {n} records");
        qoe_testkit::wait_until(timeout, &what, || async { self.committed(group) >= n }).await;
    }

    /// Every metric for `range`, read through the Distributed tables.
    pub async fn overview(&self, range: Range, now: u32) -> Overview {
        let client = server_client(&self.stack.clickhouse(&self.db), &self.stack.shards[0]);
        metrics::overview_query(&client, &scope(&self.db, range, now))
            .fetch_one()
            .await
            .expect("overview")
    }

    /// The live counts of every view per 5-second bucket of `range`,
    /// each shard's buckets settled first (as the processor's live job
    /// does for recent ones; these samples are older).
    pub async fn live(&self, range: Range) -> Vec<(u32, LiveCounts)> {
        let cfg = self.stack.clickhouse(&self.db);
        for url in &self.stack.shards {
            live::settle_query(&server_client(&cfg, url), &self.db, range)
                .execute()
                .await
                .expect("settle");
        }
        let client = server_client(&cfg, &self.stack.shards[0]);
        let rows = live::fetch_live(live::series_query(
            &client, &self.db, PROPERTY, "all", "", range,
        ))
        .await
        .expect("live series");
        rows.into_iter()
            .map(|g| (g.value.parse().expect("a bucket"), g.counts))
            .collect()
    }

    /// Rows of `table_local` on each shard.
    pub async fn per_shard(&self, table: &str) -> Vec<u64> {
        let mut out = Vec::new();
        for url in &self.stack.shards {
            let client = server_client(&self.stack.clickhouse(&self.db), url);
            let n: u64 = client
                .query(&format!("SELECT count() FROM {}.{table}_local", self.db))
                .fetch_one()
                .await
                .unwrap();
            out.push(n);
        }
        out
    }

    pub async fn drop_database(&self) {
        for url in self.stack.replicas.iter().flatten() {
            let _ = server_client(&self.stack.clickhouse(&self.db), url)
                .query(&format!("DROP DATABASE IF EXISTS {}", self.db))
                .execute()
                .await;
        }
    }
}

/// The overview scope the tests use: 1 h inactivity, views up to a day.
pub fn scope(db: &str, range: Range, now: u32) -> metrics::Scope<'_> {
    metrics::Scope {
        database: db,
        property: PROPERTY,
        range,
        now,
        inactivity_timeout_s: 3600,
        max_view_s: 86_400,
        filters: &[],
        select: metrics::Select::All,
    }
}

/// The range covering `sample::views` and "now" for it.
pub fn whole() -> (Range, u32) {
    let now = (qoe_schema::sample::NOW_MS / 1000) as u32;
    (
        Range {
            from: now - 7200,
            to: now + 7200,
        },
        now,
    )
}

/// Each event as a collector of `source` writes it: a record of its own,
/// keyed as the collector keys it.
pub fn records_of(source: Source, events: &[&Event]) -> Vec<(String, Vec<u8>)> {
    events
        .iter()
        .map(|e| {
            let record = Record {
                property_id: PROPERTY.into(),
                received_at_ms: e.ts_ms + 100,
                enrichment: Enrichment {
                    source,
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

/// The rows one worker that never stopped makes of every sparse event
/// (`F` folds the format), group by group.
pub fn whole_run<F: Fold>(groups: &[Vec<Event>]) -> Vec<Event> {
    let mut one = Sessions::<F>::new(1000, 3_600_000, std::sync::Arc::new(Forgetful));
    let mut rows = Vec::new();
    for g in groups {
        for e in g {
            one.apply(PROPERTY, e, &mut rows);
        }
    }
    rows
}

/// Asserts ClickHouse's overview equals the definition over `events`.
pub fn assert_matches(got: &Overview, events: &[Event], range: Range, now: u32) {
    let want = metrics::overview(&ViewFacts::latest_per_view(events), range, now, 3600);
    if let Err(diff) = got.compare(&want) {
        panic!("ClickHouse vs definition: {diff}");
    }
}
