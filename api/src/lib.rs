//! `qoe-api`: the customers' read side — QoE metrics as JSON, read through
//! the `Distributed` ClickHouse tables.
//!
//! How a request moves: [`http`] accepts it on the customers' listener;
//! [`auth`] maps its bearer token to the one property it may read;
//! [`params`] checks the query string against the [`catalog`] of metrics
//! and dimensions (a 400 with a stable [`error`] code otherwise); [`routes`]
//! answer it, [`store`] running `schema::metrics`' query for it, within
//! time and row limits ([`views`] for single views and errors,
//! [`monitoring`] for the live 5-second numbers); the answer goes back in the `{data, total_row_count, timeframe, meta}`
//! envelope. [`metrics`] counts it. The admin listener (`/readyz`: ready
//! only while every shard answers) is separate. [`grafana`] writes the
//! same queries out as a Grafana dashboard.

pub mod auth;
pub mod catalog;
pub mod config;
pub mod error;
pub mod grafana;
pub mod http;
pub mod metrics;
pub mod monitoring;
pub mod params;
pub mod routes;
pub mod store;
pub mod views;

use std::future::Future;
use std::sync::Arc;

pub use config::ApiConfig;

/// Why the api stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The admin listener could not bind.
    #[error(transparent)]
    Admin(#[from] qoe_common::admin::BindError),
    /// The customers' listener could not bind.
    #[error(transparent)]
    Http(#[from] http::BindError),
}

/// Runs the api until `shutdown` resolves.
pub async fn run(cfg: ApiConfig, shutdown: impl Future<Output = ()>) -> Result<(), ApiError> {
    let probes = qoe_common::clickhouse::probes(&cfg.clickhouse);
    // Listening before the admin side can say ready.
    let listener = http::bind(&cfg).await?;
    let admin = qoe_common::admin::start(&cfg.admin, probes).await?;
    let app = Arc::new(http::App::new(&cfg));
    tracing::info!(
        listen = %cfg.http.listen,
        shards = cfg.clickhouse.shards.len(),
        properties = cfg.read_tokens.values().collect::<std::collections::BTreeSet<_>>().len(),
        "api started"
    );
    let health = admin.health.clone();
    let limits = qoe_common::serve::Limits {
        header_timeout: cfg.http.header_timeout,
        max_connections: cfg.http.max_connections,
    };
    http::serve(listener, app, limits, async move {
        shutdown.await;
        health.set_draining();
    })
    .await;
    admin.stop().await;
    tracing::info!("api stopped");
    Ok(())
}
