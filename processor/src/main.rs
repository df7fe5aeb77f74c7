//! `qoe-processor` binary: see the crate docs.

use clap::Parser;

/// Consumes enriched heartbeats from Kafka and writes per-view and
/// per-minute QoE tables to the ClickHouse shards.
///
/// Configuration: defaults, then `--config FILE` (TOML), then `QOE_*`
/// environment variables (e.g. `QOE_KAFKA__BROKERS`, `QOE_CLICKHOUSE__SHARDS`).
/// `--print-config` shows the result. Admin endpoints (`/healthz`, `/readyz`,
/// `/metrics`) listen on `admin.listen` (default 127.0.0.1:9102).
#[derive(Parser)]
#[command(name = "qoe-processor", version)]
struct Args {
    #[command(flatten)]
    service: qoe_common::cli::ServiceArgs,
}

fn main() -> std::process::ExitCode {
    qoe_common::cli::serve(&Args::parse().service, qoe_processor::run)
}
