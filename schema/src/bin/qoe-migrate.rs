//! `qoe-migrate`: applies pending ClickHouse migrations to every shard.

use clap::Parser;
use serde::{Deserialize, Serialize};

use qoe_common::cli::{HasLog, ServiceArgs, Start};
use qoe_common::config::{ClickHouseConfig, ConfigError, LogConfig, Validate};

/// Applies the pipeline's pending ClickHouse migrations to every shard and
/// records them in `<database>.schema_migrations`. Safe to run any number of
/// times: the second run reports nothing to do.
///
/// The DDL variant is picked per server from `SELECT version()` (18.x/19.x or
/// 20+); `clickhouse.replicated = true` creates `Replicated*MergeTree`
/// tables, on every replica listed (`shards = ["url|url", …]`).
/// Configuration: `[clickhouse]` from defaults, `--config FILE`, then
/// `QOE_CLICKHOUSE__SHARDS` etc.
#[derive(Parser)]
#[command(name = "qoe-migrate", version)]
struct Args {
    #[command(flatten)]
    service: ServiceArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Drop the partitions whose rows are all older than `[retention]`
    /// (raw heartbeats 3 days, views 400, live rollups 2 by default), on
    /// every shard. ClickHouse 18.x has no TTL: run it hourly (cron, or the
    /// Kubernetes CronJob `qoe-retain`).
    Retain {
        /// List what would be dropped; drop nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// `qoe-migrate` configuration: `[log]`, `[clickhouse]` and `[retention]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct MigrateConfig {
    /// Logging.
    log: LogConfig,
    /// The shards to migrate.
    clickhouse: ClickHouseConfig,
    /// How long `qoe-migrate retain` keeps each kind of data.
    retention: qoe_schema::retain::RetentionConfig,
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
            retention: Default::default(),
        }
    }
}

impl Validate for MigrateConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.clickhouse.validate()?;
        self.retention.validate()
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
    if let Some(Command::Retain { dry_run }) = args.command {
        let shards = runtime.block_on(qoe_schema::retain::retain(
            &cfg.clickhouse,
            &cfg.retention,
            dry_run,
        ))?;
        let verb = if dry_run { "would drop" } else { "dropped" };
        for d in &shards {
            if d.partitions.is_empty() {
                println!("shard {} ({}): nothing expired", d.shard, d.url);
            }
            for (table, partition) in &d.partitions {
                println!(
                    "shard {} ({}): {verb} {table} partition {partition}",
                    d.shard, d.url
                );
            }
        }
        return Ok(());
    }
    let reports = runtime.block_on(qoe_schema::migrate::apply(
        &cfg.clickhouse,
        qoe_schema::migrations::ALL,
    ))?;
    let replicated = cfg.clickhouse.replicated;
    for r in &reports {
        let server = if replicated || r.replica > 1 {
            format!("shard {} replica {}", r.shard, r.replica)
        } else {
            format!("shard {}", r.shard)
        };
        let ddl = if replicated { "replicated " } else { "" };
        if r.applied.is_empty() {
            println!(
                "{server} ({}, ClickHouse {}, {ddl}{} DDL): nothing to do, {} migrations already applied",
                r.url, r.server_version, r.variant, r.already
            );
        } else {
            println!(
                "{server} ({}, ClickHouse {}, {ddl}{} DDL): applied {}",
                r.url,
                r.server_version,
                r.variant,
                r.applied.join(", ")
            );
        }
    }
    Ok(())
}
