//! `qoe-processor`: Kafka consumer group → per-view state → batches →
//! sharded ClickHouse, replay-idempotent.
//!
//! How data moves (see [`consume::Loop`]):
//! 1. The consumer (manual commits) hands each record to [`consume`], which
//!    routes it by `hash(view_id)` (the Kafka key) to one of
//!    `processor.workers` threads ([`workers`]); the worker decodes it
//!    (`schema::record`: one view's events from one request) or keeps it
//!    for the dead-letter topic.
//! 2. Each worker's [`views`] keep its open views' latest `seq`: exact
//!    duplicates are skipped; views close on `viewend` or inactivity;
//!    memory is capped. CMCD reports (sparse state changes) first go
//!    through the worker's [`sessions`], which derive each view's totals
//!    from them, and mux-embed events (only the keys that changed) through
//!    its [`mux`] views, which fold them into the view's full state; both
//!    read a session or view they do not know back from ClickHouse
//!    ([`resume`]) and make the rows a beacon would.
//! 3. Each worker encodes every event that is not a duplicate as a
//!    RowBinary row of its view's shard (`schema::rows`); [`batch`] gathers
//!    the workers' rows by shard and tracks the offsets they cover; it is
//!    flushed every `processor.batch_interval` or `processor.batch_rows`
//!    events.
//! 4. [`writer`] inserts each shard's rows into its `heartbeats_local` (the
//!    database's materialized views derive the per-view and live 5-second
//!    tables); only when every shard acknowledged are the offsets committed.
//!    While ClickHouse fails, consumption is paused and the insert retried.
//! 5. Beside the loop, [`live`] turns ClickHouse's live 5-second states
//!    into the counts the api's `/v1/monitoring` reads, and [`seal`] copies
//!    each settled day's views, collapsed, and rolls them up by dimension,
//!    for long-range reads.
//! 6. On SIGTERM the last batch is written and committed within
//!    `processor.shutdown_flush_timeout`; past it the process exits without
//!    committing, and the partitions' next owner reads those records again.

pub mod batch;
pub mod config;
pub mod consume;
pub mod live;
pub mod metrics;
pub mod mux;
pub mod resume;
pub mod seal;
pub mod sessions;
pub mod views;
pub mod workers;
pub mod writer;

use std::future::Future;
use std::time::Duration;

pub use config::ProcessorConfig;

/// Why the processor stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ProcessorError {
    /// The admin listener could not bind.
    #[error(transparent)]
    Admin(#[from] qoe_common::admin::BindError),
    /// The Kafka client could not be created from the configuration.
    #[error("kafka client: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
}

/// Runs the processor until `shutdown` resolves.
pub async fn run(
    cfg: ProcessorConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ProcessorError> {
    let mut probes = vec![qoe_common::kafka::probe(
        &cfg.kafka,
        vec![cfg.kafka.topic.clone()],
    )?];
    probes.extend(qoe_common::clickhouse::probes(&cfg.clickhouse));
    let admin = qoe_common::admin::start(&cfg.admin, probes).await?;
    let (consumer, dead_letters) = consume::clients(&cfg.kafka, &cfg.processor)?;
    let writer = writer::Writer::new(writing_shards(&cfg), Duration::from_secs(30));
    tracing::info!(
        group = %cfg.processor.group,
        topic = %cfg.kafka.topic,
        shards = writer.shard_count(),
        batch_rows = cfg.processor.batch_rows,
        batch_interval = ?cfg.processor.batch_interval,
        "processor started"
    );
    let live = cfg.live.enabled.then(|| {
        tokio::spawn(live::run(
            writing_shards(&cfg),
            cfg.clickhouse.database.clone(),
            cfg.live.clone(),
        ))
    });
    let seal = cfg.seal.enabled.then(|| {
        tokio::spawn(seal::run(
            writing_shards(&cfg),
            cfg.clickhouse.database.clone(),
            cfg.seal.clone(),
        ))
    });
    let health = admin.health.clone();
    let on_signal = async move {
        shutdown.await;
        health.set_draining();
    };
    let resume = resume::ClickHouseResume::new(
        writing_shards(&cfg),
        tokio::runtime::Handle::current(),
        Duration::from_secs(10),
    );
    consume::Loop {
        consumer,
        dead_letters,
        dead_letter_topic: cfg.kafka.dead_letter_topic.clone(),
        topic: cfg.kafka.topic.clone(),
        writer,
        resume: std::sync::Arc::new(resume),
        settings: cfg.processor.clone(),
    }
    .run(on_signal)
    .await;
    for job in [live, seal].into_iter().flatten() {
        job.abort();
    }
    admin.stop().await;
    tracing::info!("processor stopped");
    Ok(())
}

/// The shards, their clients' queries yielding to customers' reads
/// (`qoe_common::clickhouse::WRITE_PRIORITY`).
fn writing_shards(cfg: &ProcessorConfig) -> Vec<qoe_common::clickhouse::Shard> {
    qoe_common::clickhouse::shards(&cfg.clickhouse)
        .into_iter()
        .map(|shard| shard.with_setting("priority", qoe_common::clickhouse::WRITE_PRIORITY))
        .collect()
}
