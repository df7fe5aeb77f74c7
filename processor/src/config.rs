//! The processor's configuration: `[log]`, `[admin]`, `[kafka]`, `[clickhouse]`,
//! `[processor]`, `[live]` and `[seal]`. See `qoe_common::config` for how layers merge.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use qoe_common::cli::HasLog;
use qoe_common::config::{
    AdminConfig, ClickHouseConfig, ConfigError, KafkaConfig, LogConfig, Validate,
};

/// Everything `qoe-processor` reads at start.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProcessorConfig {
    /// Logging.
    pub log: LogConfig,
    /// Admin listener (`/healthz`, `/readyz`, `/metrics`); default port 9102.
    pub admin: AdminConfig,
    /// Broker and topics consumed.
    pub kafka: KafkaConfig,
    /// The shards written to.
    pub clickhouse: ClickHouseConfig,
    /// Consumption, batching and per-view state.
    pub processor: ProcessorSettings,
    /// The live numbers' settling job.
    pub live: LiveSettings,
    /// The seal job.
    pub seal: SealSettings,
}

/// The seal job (`[seal]`): copies each settled day's views, collapsed,
/// so long-range reads need not collapse them again.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SealSettings {
    /// Whether this processor runs the job (every processor may: it is
    /// idempotent).
    pub enabled: bool,
    /// How often the shards are checked for days to seal.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// How long after a day's end it is sealed: keep it above the api's
    /// `query.max_view` plus the inactivity timeout (1 h), so every view
    /// that started that day has ended.
    #[serde(with = "humantime_serde")]
    pub after: Duration,
}

impl Default for SealSettings {
    fn default() -> Self {
        SealSettings {
            enabled: true,
            interval: Duration::from_secs(60),
            after: Duration::from_secs(8 * 3600),
        }
    }
}

/// The live job (`[live]`): turns the live 5-second states into the counts
/// the api's `/v1/monitoring` reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LiveSettings {
    /// Whether this processor runs the job (every processor may: it is
    /// idempotent).
    pub enabled: bool,
    /// How often the settling buckets are recomputed.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// How long after its window ends a bucket is still recomputed: events
    /// arriving later than this stay out of the live numbers.
    #[serde(with = "humantime_serde")]
    pub settle: Duration,
}

impl Default for LiveSettings {
    fn default() -> Self {
        LiveSettings {
            enabled: true,
            interval: Duration::from_secs(5),
            settle: Duration::from_secs(30),
        }
    }
}

/// Consumption, batching and per-view state (`[processor]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProcessorSettings {
    /// Kafka consumer group; every process of one deployment uses the same.
    pub group: String,
    /// Static group membership (`group.instance.id`): a stable name per
    /// process (e.g. a StatefulSet pod name). A restarted process with the
    /// same name takes its partitions back at once instead of waiting for
    /// the broker to expire the dead member — but a static member that stops
    /// for good keeps its partitions until its session expires, so leave it
    /// empty (dynamic membership) for autoscaled processors.
    pub instance_id: String,
    /// Worker threads decoding records and keeping per-view state; each
    /// view belongs to one worker (`hash(view_id)`). 0 = one per core the
    /// process may run on.
    pub workers: usize,
    /// Flush a batch when it holds this many events (rows, before
    /// duplicates are skipped)...
    pub batch_rows: usize,
    /// ...or when its oldest row has waited this long, whichever first.
    /// Each flush writes new parts that ClickHouse then merges, on the
    /// cores its reads need: at 50 k viewers on two cores, 5 s rather than
    /// 1 s lowered every kind of 30-day read's p90 (median of three runs)
    /// by 7–50 %, for write p99 7.7–9.2 s instead of 2.5–5.3 s
    /// (docs/benchmarks.md).
    #[serde(with = "humantime_serde")]
    pub batch_interval: Duration,
    /// Most views kept in memory; beyond it the least recently seen are
    /// evicted (counted). Their later heartbeats are still written.
    pub max_open_views: usize,
    /// A view with no event for this long is closed and forgotten.
    #[serde(with = "humantime_serde")]
    pub view_timeout: Duration,
    /// First wait after a failed insert; doubles up to `retry_max_backoff`.
    #[serde(with = "humantime_serde")]
    pub retry_backoff: Duration,
    /// Longest wait between insert retries.
    #[serde(with = "humantime_serde")]
    pub retry_max_backoff: Duration,
    /// At shutdown, how long the last batch may take to be written and
    /// committed. Past it the process exits without committing: the
    /// partitions' next owner reads those records again. Keep it below the
    /// orchestrator's grace period (Kubernetes: 30 s by default).
    #[serde(with = "humantime_serde")]
    pub shutdown_flush_timeout: Duration,
    /// Fault injection for tests: exit abruptly after the first successful
    /// insert and before committing its offsets. Never set in production.
    pub crash_after_insert: bool,
}

impl Default for ProcessorSettings {
    fn default() -> Self {
        ProcessorSettings {
            group: "qoe-processor".into(),
            instance_id: String::new(),
            workers: 0,
            batch_rows: 100_000,
            batch_interval: Duration::from_secs(5),
            max_open_views: 2_000_000,
            view_timeout: Duration::from_secs(3600),
            retry_backoff: Duration::from_millis(200),
            retry_max_backoff: Duration::from_secs(10),
            shutdown_flush_timeout: Duration::from_secs(20),
            crash_after_insert: false,
        }
    }
}

impl ProcessorSettings {
    /// `workers`, with 0 resolved to the cores available to the process.
    pub fn worker_count(&self) -> usize {
        if self.workers > 0 {
            return self.workers;
        }
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }
}

impl Default for ProcessorConfig {
    fn default() -> Self {
        ProcessorConfig {
            log: LogConfig::default(),
            admin: AdminConfig::on_port(9102),
            kafka: KafkaConfig::default(),
            clickhouse: ClickHouseConfig::default(),
            processor: ProcessorSettings::default(),
            live: LiveSettings::default(),
            seal: SealSettings::default(),
        }
    }
}

impl Validate for ProcessorConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.admin.validate()?;
        self.kafka.validate()?;
        self.clickhouse.validate()?;
        let p = &self.processor;
        if p.group.trim().is_empty() {
            return Err(ConfigError::invalid(
                "processor.group",
                "must name the consumer group, e.g. \"qoe-processor\"",
            ));
        }
        if p.batch_rows == 0 {
            return Err(ConfigError::invalid(
                "processor.batch_rows",
                "must be greater than zero",
            ));
        }
        if p.shutdown_flush_timeout.is_zero() {
            return Err(ConfigError::invalid(
                "processor.shutdown_flush_timeout",
                "must be greater than zero (how long the last batch may take at shutdown)",
            ));
        }
        if p.batch_interval.is_zero() {
            return Err(ConfigError::invalid(
                "processor.batch_interval",
                "must be greater than zero",
            ));
        }
        if p.workers > 256 {
            return Err(ConfigError::invalid(
                "processor.workers",
                "at most 256 (0 = one per core)",
            ));
        }
        if p.max_open_views == 0 {
            return Err(ConfigError::invalid(
                "processor.max_open_views",
                "must be greater than zero",
            ));
        }
        if self.live.interval.is_zero() || self.live.settle < self.live.interval {
            return Err(ConfigError::invalid(
                "live.interval",
                "must be greater than zero and at most live.settle",
            ));
        }
        if self.seal.interval.is_zero() {
            return Err(ConfigError::invalid(
                "seal.interval",
                "must be greater than zero",
            ));
        }
        if p.retry_backoff.is_zero() || p.retry_max_backoff < p.retry_backoff {
            return Err(ConfigError::invalid(
                "processor.retry_backoff",
                "must be greater than zero and at most processor.retry_max_backoff",
            ));
        }
        Ok(())
    }
}

impl HasLog for ProcessorConfig {
    fn log(&self) -> &LogConfig {
        &self.log
    }
}
