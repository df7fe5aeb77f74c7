//! Service plumbing that every qoe-pipeline binary shares, written once.
//!
//! A binary's `main` is thin: it calls [`cli::start`] to parse `--config`,
//! load the layered configuration and start logging, then hands the typed
//! config to its crate's `run(config, shutdown)`. Inside `run` it starts an
//! [`admin`] listener (`/healthz`, `/readyz`, `/metrics`) whose readiness comes
//! from the [`health`] probes of its dependencies (the Kafka-API broker, the
//! ClickHouse shards), and stops when [`shutdown::signal`] fires.
//!
//! - [`config`]: typed, layered configuration (defaults → TOML file → `QOE_*`
//!   environment) with errors that name the offending key; shared sections
//!   ([`config::KafkaConfig`], [`config::ClickHouseConfig`], ...).
//! - [`telemetry`]: `tracing` subscriber, human or JSON.
//! - [`admin`]: the admin HTTP listener.
//! - [`health`]: readiness probes, polled in the background and cached.
//! - [`kafka`]: the project's producer and consumer client settings.
//! - [`clickhouse`]: a ClickHouse HTTP client per shard, configured once.
//! - [`httpc`]: a small HTTP client for probes, tools and tests.
//! - [`shutdown`]: SIGTERM / Ctrl-C as a future.
//! - [`clock`]: milliseconds since the Unix epoch.

pub mod admin;
pub mod cli;
pub mod clickhouse;
pub mod clock;
pub mod config;
pub mod health;
pub mod httpc;
pub mod kafka;
pub mod serve;
pub mod shutdown;
pub mod telemetry;
