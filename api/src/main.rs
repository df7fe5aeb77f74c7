//! `qoe-api` binary: see the crate docs.

use clap::Parser;

/// Serves customers their QoE metrics as JSON from the ClickHouse cluster,
/// on `http.listen` (default 127.0.0.1:8090), to bearers of a read token
/// (`[read_tokens] "<token>" = "<property id>"`, at least one required).
///
/// Configuration: defaults, then `--config FILE` (TOML), then `QOE_*`
/// environment variables (e.g. `QOE_CLICKHOUSE__SHARDS`,
/// `QOE_READ_TOKENS__<token>=<property>`). `--print-config` shows the
/// result. Admin endpoints (`/healthz`, `/readyz`, `/metrics`) listen on
/// `admin.listen` (default 127.0.0.1:9103). Endpoints: api/README.md.
#[derive(Parser)]
#[command(name = "qoe-api", version)]
struct Args {
    #[command(flatten)]
    service: qoe_common::cli::ServiceArgs,
}

fn main() -> std::process::ExitCode {
    qoe_common::cli::serve(&Args::parse().service, qoe_api::run)
}
