//! The api's configuration: `[log]`, `[admin]` and `[clickhouse]`.
//! See `qoe_common::config` for how layers merge.

use serde::{Deserialize, Serialize};

use qoe_common::cli::HasLog;
use qoe_common::config::{AdminConfig, ClickHouseConfig, ConfigError, LogConfig, Validate};

/// Everything `qoe-api` reads at start.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Logging.
    pub log: LogConfig,
    /// Admin listener (`/healthz`, `/readyz`, `/metrics`); default port 9103.
    pub admin: AdminConfig,
    /// The shards read through their `Distributed` tables.
    pub clickhouse: ClickHouseConfig,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            log: LogConfig::default(),
            admin: AdminConfig::on_port(9103),
            clickhouse: ClickHouseConfig::default(),
        }
    }
}

impl Validate for ApiConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.admin.validate()?;
        self.clickhouse.validate()
    }
}

impl HasLog for ApiConfig {
    fn log(&self) -> &LogConfig {
        &self.log
    }
}
