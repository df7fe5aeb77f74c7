//! `qoe-migrate`: applies pending ClickHouse migrations to every shard.

use clap::Parser;
use serde::{Deserialize, Serialize};

use qoe_common::cli::{HasLog, ServiceArgs, Start};
use qoe_common::config::{ClickHouseConfig, ConfigError, LogConfig, Validate};

/// Applies the pipeline's pending ClickHouse migrations to every shard and
/// records them in `<database>.schema_migrations`. Safe to run any number of
/// times: the second run reports nothing to do.
///
/// The DDL variant is picked per shard from `SELECT version()` (18.x/19.x or
/// 20+). Configuration: `[clickhouse]` from defaults, `--config FILE`, then
/// `QOE_CLICKHOUSE__SHARDS` etc.
#[derive(Parser)]
#[command(name = "qoe-migrate", version)]
struct Args {
    #[command(flatten)]
    service: ServiceArgs,
}

/// `qoe-migrate` configuration: `[log]` and `[clickhouse]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct MigrateConfig {
    /// Logging.
    log: LogConfig,
    /// The shards to migrate.
    clickhouse: ClickHouseConfig,
}

impl Default for MigrateConfig {
    fn default() -> Self {
        MigrateConfig {
            // The summary goes to stdout; per-migration logs only on request.
            log: LogConfig {
                level: "warn".into(),
                ..LogConfig::default()
            },
            clickhouse: ClickHouseConfig::default(),
        }
    }
}

impl Validate for MigrateConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.clickhouse.validate()
    }
}

impl HasLog for MigrateConfig {
    fn log(&self) -> &LogConfig {
        &self.log
    }
}

fn main() -> std::process::ExitCode {
    qoe_common::cli::exit_code(run(Args::parse()))
}

fn run(args: Args) -> anyhow::Result<()> {
    let Start::Run(cfg) = qoe_common::cli::start::<MigrateConfig>(&args.service)? else {
        return Ok(());
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let reports = runtime.block_on(qoe_schema::migrate::apply(
        &cfg.clickhouse,
        qoe_schema::migrations::ALL,
    ))?;
    for r in &reports {
        if r.applied.is_empty() {
            println!(
                "shard {} ({}, ClickHouse {}, {} DDL): nothing to do, {} migrations already applied",
                r.shard, r.url, r.server_version, r.variant, r.already
            );
        } else {
            println!(
                "shard {} ({}, ClickHouse {}, {} DDL): applied {}",
                r.shard,
                r.url,
                r.server_version,
                r.variant,
                r.applied.join(", ")
            );
        }
    }
    Ok(())
}
