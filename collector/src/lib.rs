//! `qoe-collector`: the edge. SDK beacons arrive over HTTP, are validated and
//! enriched, wait in a bounded channel and are produced to Kafka by K drain
//! workers.
//!
//! Today it runs its admin listener and reports readiness: ready only while
//! the broker answers and the heartbeat topic exists. The ingest path arrives
//! with the collector issue.

pub mod config;

use std::future::Future;

pub use config::CollectorConfig;

/// Why the collector stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum CollectorError {
    /// The admin listener could not bind.
    #[error(transparent)]
    Admin(#[from] qoe_common::admin::BindError),
    /// The Kafka client could not be created from the configuration.
    #[error("kafka client: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
}

/// Runs the collector until `shutdown` resolves.
pub async fn run(
    cfg: CollectorConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), CollectorError> {
    let probes = vec![qoe_common::kafka::probe(
        &cfg.kafka,
        vec![cfg.kafka.topic.clone()],
    )?];
    let admin = qoe_common::admin::start(&cfg.admin, probes).await?;
    tracing::info!(topic = %cfg.kafka.topic, "collector started");
    shutdown.await;
    admin.health.set_draining();
    admin.stop().await;
    tracing::info!("collector stopped");
    Ok(())
}
