//! `qoe-processor`: Kafka consumer group → per-view state and per-minute
//! aggregates → sharded ClickHouse.
//!
//! Today it runs its admin listener and reports readiness: ready only while
//! the broker (with the heartbeat topic) and every ClickHouse shard answer.
//! Consumption and aggregation arrive with the processor issue.

pub mod config;

use std::future::Future;

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
    tracing::info!(group = %cfg.processor.group, topic = %cfg.kafka.topic, "processor started");
    shutdown.await;
    admin.health.set_draining();
    admin.stop().await;
    tracing::info!("processor stopped");
    Ok(())
}
