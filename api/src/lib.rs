//! `qoe-api`: the customers' read side, to serve QoE metrics as JSON and a
//! dashboard, read through the `Distributed` ClickHouse tables.
//!
//! Today it runs its admin listener and reports readiness: ready only while
//! every ClickHouse shard answers (a `Distributed` read needs all of them).

pub mod config;

use std::future::Future;

pub use config::ApiConfig;

/// Why the api stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The admin listener could not bind.
    #[error(transparent)]
    Admin(#[from] qoe_common::admin::BindError),
}

/// Runs the api until `shutdown` resolves.
pub async fn run(cfg: ApiConfig, shutdown: impl Future<Output = ()>) -> Result<(), ApiError> {
    let probes = qoe_common::clickhouse::probes(&cfg.clickhouse);
    let admin = qoe_common::admin::start(&cfg.admin, probes).await?;
    tracing::info!(shards = cfg.clickhouse.shards.len(), "api started");
    shutdown.await;
    admin.health.set_draining();
    admin.stop().await;
    tracing::info!("api stopped");
    Ok(())
}
