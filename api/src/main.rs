//! `qoe-api` binary: see the crate docs.

use clap::Parser;

/// Serves customers their QoE metrics (JSON endpoints and a dashboard page)
/// from the ClickHouse cluster.
///
/// Configuration: defaults, then `--config FILE` (TOML), then `QOE_*`
/// environment variables (e.g. `QOE_CLICKHOUSE__SHARDS`). `--print-config`
/// shows the result. Admin endpoints (`/healthz`, `/readyz`, `/metrics`)
/// listen on `admin.listen` (default 127.0.0.1:9103).
#[derive(Parser)]
#[command(name = "qoe-api", version)]
struct Args {
    #[command(flatten)]
    service: qoe_common::cli::ServiceArgs,
}

fn main() -> std::process::ExitCode {
    qoe_common::cli::serve(&Args::parse().service, qoe_api::run)
}
