//! The processor's configuration: `[log]`, `[admin]`, `[kafka]`, `[clickhouse]`
//! and `[processor]`. See `qoe_common::config` for how layers merge.

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
    /// Consumption settings.
    pub processor: ProcessorSettings,
}

/// Consumption settings (`[processor]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProcessorSettings {
    /// Kafka consumer group; every process of one deployment uses the same.
    pub group: String,
}

impl Default for ProcessorSettings {
    fn default() -> Self {
        ProcessorSettings {
            group: "qoe-processor".into(),
        }
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
        }
    }
}

impl Validate for ProcessorConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.admin.validate()?;
        self.kafka.validate()?;
        self.clickhouse.validate()?;
        if self.processor.group.trim().is_empty() {
            return Err(ConfigError::invalid(
                "processor.group",
                "must name the consumer group, e.g. \"qoe-processor\"",
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
