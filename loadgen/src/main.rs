//! `qoe-loadgen` binary: see the crate docs.

use std::time::Duration;

use clap::{Parser, Subcommand};
use qoe_common::cli::{ServiceArgs, Start};
use qoe_loadgen::run::Step;

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
    /// Simulate `--viewers` concurrent viewers against the collector (open
    /// loop, `--ramp` then hold for `--duration`), measure write and read
    /// latency, verify every metric against the ground truth, judge the
    /// SLOs (`[run.slo]`) and record the result (`[run] results_dir`).
    /// Exit 1 when the verdict is a failure.
    Run {
        /// Concurrent viewers.
        #[arg(long, default_value_t = 1000)]
        viewers: u64,
        /// Time to reach `--viewers` (viewers join along it).
        #[arg(long, default_value = "30s", value_parser = humantime_duration)]
        ramp: Duration,
        /// Time to hold `--viewers` after the ramp.
        #[arg(long, default_value = "1m", value_parser = humantime_duration)]
        duration: Duration,
        /// A scenario TOML instead of the flags: `[[steps]]` tables of
        /// `viewers`, `ramp` and `hold` (a step or ramp profile).
        #[arg(long, conflicts_with_all = ["viewers", "ramp", "duration"])]
        scenario: Option<std::path::PathBuf>,
    },
    /// Step load: start at `--start` viewers, hold, judge the SLOs, add
    /// `--step`, repeat until a step fails or `--max`. Reports the last
    /// passing viewer count, the first SLO broken and which component's
    /// backlog grew; records the result like `run`.
    Capacity {
        /// Viewers of the first step.
        #[arg(long, default_value_t = 10_000)]
        start: u64,
        /// Viewers added per step.
        #[arg(long, default_value_t = 10_000)]
        step: u64,
        /// Stop after the step reaching this many viewers.
        #[arg(long, default_value_t = 1_000_000)]
        max: u64,
        /// Ramp into each step.
        #[arg(long, default_value = "15s", value_parser = humantime_duration)]
        ramp: Duration,
        /// Hold of each step (its SLOs are judged over ramp + hold).
        #[arg(long, default_value = "45s", value_parser = humantime_duration)]
        hold: Duration,
    },
    /// Compare a recorded run's ground truth with the store again and
    /// print the expected-vs-got table. Exit 1 on a mismatch.
    Verify {
        /// The run id (`<results_dir>/results/<id>.truth.json`).
        #[arg(long)]
        id: String,
    },
    /// Write `--views` views spread over the last `--days` days straight
    /// into the ClickHouse shards of `[clickhouse]` (property
    /// `target.property_id`), for the read benchmark; prints rows/s.
    History {
        #[arg(long)]
        views: u64,
        #[arg(long, default_value_t = 30)]
        days: u32,
    },
    /// Time every kind of api request over the last `--days` days
    /// (`target.api_url`, `target.read_token`): the first request and p50,
    /// p90 and p99 of `--rounds` more, as a Markdown table.
    Reads {
        #[arg(long, default_value_t = 30)]
        days: u32,
        #[arg(long, default_value_t = 20)]
        rounds: usize,
        /// Before each kind's first request, drop the OS page cache (Linux,
        /// root; the shards on this machine), so "first" reads from disk.
        #[arg(long)]
        drop_caches: bool,
    },
    /// Write realistic heartbeat history straight into the topic of
    /// `[kafka]` (no collector), as fast as the broker takes it; prints
    /// records/s and produce latency (the broker benchmark).
    Generate {
        /// How many heartbeats.
        #[arg(long)]
        heartbeats: u64,
        /// Property id of the records.
        #[arg(long, default_value = "bench-property")]
        property: String,
        /// Also send a `qoe-format` header on each record, as collectors
        /// before 2026-11-29 did (a broker that stores headers in rows of
        /// their own pays for it per record).
        #[arg(long)]
        format_header: bool,
    },
    /// Size every tier for an audience: collector cores, Kafka brokers and
    /// partitions, processor cores, ClickHouse shards and replicas, disk per
    /// day. Each per-core input is read from a named row of
    /// `docs/benchmarks.md`, printed with the arithmetic. Needs no running
    /// service.
    Plan {
        #[command(flatten)]
        audience: qoe_loadgen::plan::Audience,
        /// The measured figures.
        #[arg(long, default_value = "docs/benchmarks.md")]
        benchmarks: std::path::PathBuf,
    },
}

fn read_scenario(path: &std::path::Path) -> anyhow::Result<Vec<Step>> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Scenario {
        steps: Vec<Step>,
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read the scenario {}: {e}", path.display()))?;
    let scenario: Scenario =
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("scenario {}: {e}", path.display()))?;
    anyhow::ensure!(
        !scenario.steps.is_empty(),
        "scenario {}: no [[steps]]",
        path.display()
    );
    Ok(scenario.steps)
}

fn report(done: &qoe_loadgen::Finished) {
    let r = &done.record;
    for (i, s) in r.steps.iter().enumerate() {
        println!(
            "step {}: {} viewers, {:.0} s, {:.0} events/s, accepted request p50/p99 {:.1}/{:.1} ms, shed {} refused {} failed {}, write p50/p99 {:.1}/{:.1} s ({} markers), read p90 {}, errors {:.3}/s, backlog {:?} -> {:?}{}",
            i + 1, s.viewers, s.seconds, s.sent_per_s, s.request_p50_ms, s.request_p99_ms, s.shed, s.refused, s.failed,
            s.write_latency_p50_s, s.write_latency_p99_s, s.markers, qoe_loadgen::step::read_p90_text(s.read_latency_p90_ms),
            s.errors_per_s, s.backlog_start, s.backlog_end,
            if s.broken.is_empty() { String::new() } else { format!(" BROKE {}", s.broken.join(", ")) },
        );
    }
    if let Some(v) = &r.verify {
        println!("{}", v.table());
    }
    println!("verdict: {}", r.verdict);
    println!("recorded: {}", done.result_path.display());
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
        Command::Run {
            viewers,
            ramp,
            duration,
            scenario,
        } => {
            let steps = match scenario {
                Some(path) => read_scenario(&path)?,
                None => vec![Step {
                    viewers,
                    ramp,
                    hold: duration,
                }],
            };
            let profile = serde_json::to_value(&steps)?;
            let done = runtime.block_on(qoe_loadgen::load(&cfg, "run", &steps, profile))?;
            report(&done);
            if done.record.verdict != "pass" {
                anyhow::bail!("verdict: {}", done.record.verdict);
            }
        }
        Command::Capacity {
            start,
            step,
            max,
            ramp,
            hold,
        } => {
            anyhow::ensure!(
                start > 0 && step > 0,
                "--start and --step must be greater than zero"
            );
            let mut steps = Vec::new();
            let mut viewers = start;
            while viewers <= max.max(start) {
                steps.push(Step {
                    viewers,
                    ramp,
                    hold,
                });
                viewers += step;
            }
            let profile = serde_json::json!({"start": start, "step": step, "max": max,
                "ramp": format!("{ramp:?}"), "hold": format!("{hold:?}")});
            let done = runtime.block_on(qoe_loadgen::load(&cfg, "capacity", &steps, profile))?;
            report(&done);
        }
        Command::Verify { id } => {
            let dir = std::path::Path::new(&cfg.run.results_dir);
            let (_, truth) = qoe_loadgen::record::paths(dir, &id);
            let saved = qoe_loadgen::truth::Saved::read(&truth)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", truth.display()))?;
            let v = runtime.block_on(qoe_loadgen::truth::verify(
                &cfg.clickhouse,
                &cfg.target.api(),
                &saved,
                cfg.run.settle_timeout,
            ))?;
            println!("{}", v.table());
            anyhow::ensure!(
                v.ok,
                "the store does not match the ground truth ({} missing)",
                v.missing
            );
        }
        Command::Check { timeout } => runtime.block_on(qoe_loadgen::check(&cfg, timeout))?,
        Command::History { views, days } => {
            let h = runtime.block_on(qoe_loadgen::reads::history(
                &cfg.clickhouse,
                &cfg.target.property_id,
                views,
                days,
            ))?;
            println!(
                "wrote {} views ({} rows) over {days} days in {:.1}s ({:.0} rows/s)",
                h.views,
                h.rows,
                h.elapsed.as_secs_f64(),
                h.rows as f64 / h.elapsed.as_secs_f64()
            );
        }
        Command::Reads {
            days,
            rounds,
            drop_caches,
        } => {
            let timings = runtime.block_on(qoe_loadgen::reads::reads(
                &cfg.target.api(),
                days,
                rounds,
                drop_caches,
            ))?;
            println!("| request ({days} days) | first | p50 | p90 | p99 | failed |");
            println!("| --- | --- | --- | --- | --- | --- |");
            for t in &timings {
                println!(
                    "| {} | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms | {} |",
                    t.name,
                    t.first_ms,
                    t.warm(0.5),
                    t.warm(0.9),
                    t.warm(0.99),
                    t.failures
                );
            }
        }
        Command::Plan {
            audience,
            benchmarks,
        } => {
            let text = std::fs::read_to_string(&benchmarks).map_err(|e| {
                anyhow::anyhow!(
                    "cannot read {}: {e} (run from the checkout, or pass --benchmarks)",
                    benchmarks.display()
                )
            })?;
            let inputs = qoe_loadgen::plan::Inputs::from_benchmarks(&text)?;
            print!("{}", qoe_loadgen::plan::plan(&inputs, &audience)?.text);
        }
        Command::Generate {
            heartbeats,
            property,
            format_header,
        } => {
            let g =
                qoe_loadgen::generate::generate(&cfg.kafka, &property, heartbeats, format_header)?;
            println!(
                "generated {} heartbeats of {} views into {} in {:.1}s ({:.0}/s); \
                 produce latency p50 {:.0} ms, p99 {:.0} ms; {} not acknowledged",
                g.heartbeats,
                g.views,
                cfg.kafka.topic,
                g.elapsed.as_secs_f64(),
                g.heartbeats as f64 / g.elapsed.as_secs_f64(),
                g.latency_p50.as_secs_f64() * 1e3,
                g.latency_p99.as_secs_f64() * 1e3,
                g.failed
            );
        }
    }
    Ok(())
}
