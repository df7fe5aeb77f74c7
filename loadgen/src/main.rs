//! `qoe-loadgen` binary: see the crate docs.

use std::time::Duration;

use clap::{Parser, Subcommand};
use qoe_common::cli::{ServiceArgs, Start};

/// Load generator for qoe-pipeline: simulates viewers, verifies the numbers
/// end to end and records SLO results.
///
/// Configuration: defaults, then `--config FILE` (TOML), then `QOE_*`
/// environment variables (e.g. `QOE_TARGET__READY_URLS`). While a command
/// runs, admin endpoints listen on `admin.listen` (default 127.0.0.1:9104).
#[derive(Parser)]
#[command(name = "qoe-loadgen", version)]
struct Args {
    #[command(flatten)]
    service: ServiceArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Wait until every target service reports ready (`/readyz` = 200);
    /// exit 1 naming the ones that are not.
    Check {
        /// Give up after this long (e.g. `30s`).
        #[arg(long, default_value = "30s", value_parser = humantime_duration)]
        timeout: Duration,
    },
    /// Write realistic heartbeat history straight into the topic of
    /// `[kafka]` (no collector), as fast as the broker takes it.
    Generate {
        /// How many heartbeats.
        #[arg(long)]
        heartbeats: u64,
        /// Property id of the records.
        #[arg(long, default_value = "bench-property")]
        property: String,
    },
}

fn humantime_duration(s: &str) -> Result<Duration, String> {
    humantime_serde::re::humantime::parse_duration(s).map_err(|e| e.to_string())
}

fn main() -> std::process::ExitCode {
    qoe_common::cli::exit_code(run(Args::parse()))
}

fn run(args: Args) -> anyhow::Result<()> {
    let Start::Run(cfg) = qoe_common::cli::start::<qoe_loadgen::LoadgenConfig>(&args.service)?
    else {
        return Ok(());
    };
    let Some(command) = args.command else {
        anyhow::bail!("no command given: see `qoe-loadgen --help`");
    };
    let runtime = tokio::runtime::Runtime::new()?;
    match command {
        Command::Check { timeout } => runtime.block_on(qoe_loadgen::check(&cfg, timeout))?,
        Command::Generate {
            heartbeats,
            property,
        } => {
            let g = qoe_loadgen::generate::generate(&cfg.kafka, &property, heartbeats)?;
            println!(
                "generated {} heartbeats of {} views into {} in {:.1}s ({:.0}/s)",
                g.heartbeats,
                g.views,
                cfg.kafka.topic,
                g.elapsed.as_secs_f64(),
                g.heartbeats as f64 / g.elapsed.as_secs_f64()
            );
        }
    }
    Ok(())
}
