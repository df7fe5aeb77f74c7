//! `qoe-collector` binary: see the crate docs.

use clap::Parser;

/// Edge ingest for player SDK beacons: validates and enriches heartbeats and
/// produces them to the Kafka heartbeat topic.
///
/// Configuration: defaults, then `--config FILE` (TOML), then `QOE_*`
/// environment variables (e.g. `QOE_KAFKA__BROKERS`). `--print-config` shows
/// the result. Admin endpoints (`/healthz`, `/readyz`, `/metrics`) listen on
/// `admin.listen` (default 127.0.0.1:9101).
#[derive(Parser)]
#[command(name = "qoe-collector", version)]
struct Args {
    #[command(flatten)]
    service: qoe_common::cli::ServiceArgs,
}

fn main() -> std::process::ExitCode {
    qoe_common::cli::serve(&Args::parse().service, qoe_collector::run)
}
