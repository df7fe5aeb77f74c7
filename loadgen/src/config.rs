//! The loadgen's configuration: `[log]`, `[admin]` and `[target]`.
//! See `qoe_common::config` for how layers merge.

use serde::{Deserialize, Serialize};

use qoe_common::cli::HasLog;
use qoe_common::config::{AdminConfig, ConfigError, KafkaConfig, LogConfig, Validate};

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
}

/// Where the pipeline under test answers (`[target]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TargetConfig {
    /// Admin base URLs of the services whose `/readyz` must pass before load
    /// starts (collector, processor, api).
    #[serde(deserialize_with = "qoe_common::config::string_or_list")]
    pub ready_urls: Vec<String>,
}

impl Default for TargetConfig {
    fn default() -> Self {
        TargetConfig {
            ready_urls: vec![
                "http://127.0.0.1:9101".into(),
                "http://127.0.0.1:9102".into(),
                "http://127.0.0.1:9103".into(),
            ],
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
        }
    }
}

impl Validate for LoadgenConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.admin.validate()?;
        self.kafka.validate()?;
        for url in &self.target.ready_urls {
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
