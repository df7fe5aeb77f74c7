//! The collector's configuration: `[log]`, `[admin]` and `[kafka]`.
//! See `qoe_common::config` for how layers merge.

use serde::{Deserialize, Serialize};

use qoe_common::cli::HasLog;
use qoe_common::config::{AdminConfig, ConfigError, KafkaConfig, LogConfig, Validate};

/// Everything `qoe-collector` reads at start.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CollectorConfig {
    /// Logging.
    pub log: LogConfig,
    /// Admin listener (`/healthz`, `/readyz`, `/metrics`); default port 9101.
    pub admin: AdminConfig,
    /// Broker and the heartbeat topic produced to.
    pub kafka: KafkaConfig,
}

impl Default for CollectorConfig {
    fn default() -> Self {
        CollectorConfig {
            log: LogConfig::default(),
            admin: AdminConfig::on_port(9101),
            kafka: KafkaConfig::default(),
        }
    }
}

impl Validate for CollectorConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.admin.validate()?;
        self.kafka.validate()
    }
}

impl HasLog for CollectorConfig {
    fn log(&self) -> &LogConfig {
        &self.log
    }
}
