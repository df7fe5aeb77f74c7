//! The loadgen's configuration: `[log]`, `[admin]`, `[target]`, `[kafka]`,
//! `[clickhouse]`, `[run]` (sending, probes, SLOs, records) and `[model]`
//! (the simulated audience, see [`crate::model`]).
//! See `qoe_common::config` for how layers merge.

use serde::{Deserialize, Serialize};

use qoe_common::cli::HasLog;
use std::time::Duration;

use qoe_common::config::{
    AdminConfig, ClickHouseConfig, ConfigError, KafkaConfig, LogConfig, Validate,
};

use crate::model::ModelConfig;

/// Everything `qoe-loadgen` reads at start.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoadgenConfig {
    /// Logging.
    pub log: LogConfig,
    /// Admin listener (`/healthz`, `/readyz`, `/metrics`) while a command
    /// runs; default port 9104.
    pub admin: AdminConfig,
    /// The pipeline under test.
    pub target: TargetConfig,
    /// The broker and heartbeat topic `generate` writes to.
    pub kafka: KafkaConfig,
    /// The shards `verify`, the write-latency markers and the read probes
    /// query (through the `Distributed` tables, until the api serves them).
    pub clickhouse: ClickHouseConfig,
    /// How `run` and `capacity` send, probe, judge and record.
    pub run: RunConfig,
    /// The simulated audience.
    pub model: ModelConfig,
}

/// Sending, probing, SLOs and records (`[run]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunConfig {
    /// Seed of the viewer model: the same seed replays the same audience.
    pub seed: u64,
    /// Keep-alive connections to the collector (concurrent requests).
    pub connections: usize,
    /// Longest wait for one request's answer.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Sends of one batch at most (first try included) when it is shed or
    /// unanswered; `Retry-After` is honoured between them, as an SDK does.
    pub max_attempts: u32,
    /// A write-latency marker view is sent this often.
    #[serde(with = "humantime_serde")]
    pub marker_interval: Duration,
    /// A timed overview query (read latency) runs this often.
    #[serde(with = "humantime_serde")]
    pub read_interval: Duration,
    /// After the load stops, how long `verify` waits for the pipeline to
    /// catch up before comparing.
    #[serde(with = "humantime_serde")]
    pub settle_timeout: Duration,
    /// Where results go: `<dir>/results/<id>.json` and a row in
    /// `<dir>/RESULTS.md`.
    pub results_dir: String,
    /// The service-level objectives a run is judged by.
    pub slo: SloConfig,
}

/// The SLOs (`[run.slo]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SloConfig {
    /// Heartbeat sent → visible to queries, p99, seconds.
    pub write_latency_p99_s: f64,
    /// Failed sends (shed, refused or unanswered) per second.
    pub errors_per_s: f64,
    /// Overview query latency, p90, milliseconds.
    pub read_latency_p90_ms: f64,
    /// Acknowledged heartbeats missing from the store.
    pub missing: u64,
}

impl Default for SloConfig {
    fn default() -> Self {
        SloConfig {
            write_latency_p99_s: 30.0,
            errors_per_s: 0.05,
            read_latency_p90_ms: 750.0,
            missing: 0,
        }
    }
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            seed: 1,
            connections: 64,
            request_timeout: Duration::from_secs(10),
            max_attempts: 5,
            marker_interval: Duration::from_secs(2),
            read_interval: Duration::from_secs(2),
            settle_timeout: Duration::from_secs(180),
            results_dir: "loadtests".into(),
            slo: SloConfig::default(),
        }
    }
}

/// Where the pipeline under test answers (`[target]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TargetConfig {
    /// Admin base URLs of the services whose `/readyz` must pass before load
    /// starts (collector, processor, api).
    #[serde(deserialize_with = "qoe_common::config::string_or_list")]
    pub ready_urls: Vec<String>,
    /// The collector's public base URL.
    pub collector_url: String,
    /// The property key sent (`/v1/beacon/{key}`).
    pub property_key: String,
    /// The property id the collector maps that key to (what is queried).
    pub property_id: String,
    /// Backlog gauges read from the services' `/metrics` at each step, to
    /// name the component that fell behind: `[name, admin URL, metric]`.
    pub backlogs: Vec<(String, String, String)>,
    /// The api's base URL: reads (the read-latency probe and `verify`) go
    /// through it, as a customer's would.
    pub api_url: String,
    /// A read token of `property_id` (the local stack's development one by
    /// default).
    pub read_token: String,
}

impl TargetConfig {
    /// A client of the api with the read token.
    pub fn api(&self) -> crate::api::ApiClient {
        crate::api::ApiClient {
            url: self.api_url.clone(),
            token: self.read_token.clone(),
        }
    }
}

impl Default for TargetConfig {
    fn default() -> Self {
        TargetConfig {
            ready_urls: vec![
                "http://127.0.0.1:9101".into(),
                "http://127.0.0.1:9102".into(),
                "http://127.0.0.1:9103".into(),
            ],
            collector_url: "http://127.0.0.1:8080".into(),
            property_key: "dev-key".into(),
            property_id: "dev-property".into(),
            backlogs: vec![
                (
                    "collector".into(),
                    "http://127.0.0.1:9101".into(),
                    "qoe_collector_backlog".into(),
                ),
                (
                    "processor".into(),
                    "http://127.0.0.1:9102".into(),
                    "qoe_processor_consumer_lag".into(),
                ),
            ],
            api_url: "http://127.0.0.1:8090".into(),
            read_token: "devreadtokenlocalonly".into(),
        }
    }
}

impl Default for LoadgenConfig {
    fn default() -> Self {
        LoadgenConfig {
            log: LogConfig::default(),
            admin: AdminConfig::on_port(9104),
            target: TargetConfig::default(),
            kafka: KafkaConfig::default(),
            clickhouse: ClickHouseConfig::default(),
            run: RunConfig::default(),
            model: ModelConfig::default(),
        }
    }
}

impl Validate for LoadgenConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.admin.validate()?;
        self.kafka.validate()?;
        self.clickhouse.validate()?;
        self.model
            .check()
            .map_err(|e| ConfigError::invalid("model", e))?;
        if self.run.connections == 0 || self.run.connections > 10_000 {
            return Err(ConfigError::invalid(
                "run.connections",
                "must be between 1 and 10000",
            ));
        }
        if self.run.max_attempts == 0 {
            return Err(ConfigError::invalid(
                "run.max_attempts",
                "must be at least 1",
            ));
        }
        if self.run.marker_interval.is_zero() || self.run.read_interval.is_zero() {
            return Err(ConfigError::invalid(
                "run.marker_interval",
                "marker_interval and read_interval must be greater than zero",
            ));
        }
        let key_ok = !self.target.property_key.is_empty()
            && self
                .target
                .property_key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !key_ok {
            return Err(ConfigError::invalid(
                "target.property_key",
                "must be letters, digits, - or _",
            ));
        }
        let urls = self
            .target
            .ready_urls
            .iter()
            .chain(std::iter::once(&self.target.collector_url))
            .chain(self.target.backlogs.iter().map(|b| &b.1));
        for url in urls {
            if !url.starts_with("http://") {
                return Err(ConfigError::invalid(
                    "target.ready_urls",
                    format!("`{url}` is not an http:// URL"),
                ));
            }
        }
        Ok(())
    }
}

impl HasLog for LoadgenConfig {
    fn log(&self) -> &LogConfig {
        &self.log
    }
}
