//! The api's configuration: `[log]`, `[admin]`, `[clickhouse]`, `[http]`,
//! `[read_tokens]` and `[query]`. See `qoe_common::config` for how layers
//! merge.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

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
    /// The customers' listener.
    pub http: HttpConfig,
    /// Read tokens: `"<token>" = "<property id>"`. A property may have
    /// several (to rotate one, add the new token, move clients, remove the
    /// old). They are not the collector's ingest keys: an ingest key is
    /// public (it ships in players), a read token is a secret.
    pub read_tokens: BTreeMap<String, String>,
    /// Query limits.
    pub query: QueryConfig,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            log: LogConfig::default(),
            admin: AdminConfig::on_port(9103),
            clickhouse: ClickHouseConfig::default(),
            http: HttpConfig::default(),
            read_tokens: BTreeMap::new(),
            query: QueryConfig::default(),
        }
    }
}

/// The customers' listener (`[http]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Address of the JSON API.
    pub listen: SocketAddr,
    /// Longest wait for a request's headers.
    #[serde(with = "humantime_serde")]
    pub header_timeout: Duration,
    /// Longest query string accepted, bytes (longer: 414).
    pub max_query_bytes: usize,
    /// Most open connections; beyond it a new one gets `503
    /// too_many_connections` and is closed.
    pub max_connections: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8090)),
            header_timeout: Duration::from_secs(5),
            max_query_bytes: 4096,
            max_connections: 1024,
        }
    }
}

/// What one request may cost (`[query]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueryConfig {
    /// ClickHouse's `max_execution_time` for each query; past it the
    /// request answers 504 `query_timeout`.
    #[serde(with = "humantime_serde")]
    pub max_execution_time: Duration,
    /// ClickHouse's `max_rows_to_read` for each query; past it the request
    /// answers 503 `query_too_large`.
    pub max_rows_to_read: u64,
    /// How far back data is kept: a timeframe starting earlier is refused.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// The longest a view may last: how long before a timeframe a view may
    /// have started and still end in it.
    #[serde(with = "humantime_serde")]
    pub max_view: Duration,
    /// How long a live answer (`/v1/monitoring`) is reused for the same
    /// question: at most the processor's live interval, as the counts
    /// change no faster. Many dashboards polling the same numbers then
    /// cost one query per interval. `0s` turns it off.
    #[serde(with = "humantime_serde")]
    pub live_cache: Duration,
}

impl Default for QueryConfig {
    fn default() -> Self {
        QueryConfig {
            max_execution_time: Duration::from_secs(10),
            max_rows_to_read: 2_000_000_000,
            retention: Duration::from_secs(31 * 86_400),
            max_view: Duration::from_secs(6 * 3600),
            live_cache: Duration::from_secs(5),
        }
    }
}

impl Validate for ApiConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.admin.validate()?;
        self.clickhouse.validate()?;
        if self.read_tokens.is_empty() {
            return Err(ConfigError::invalid(
                "read_tokens",
                "no read tokens configured: add `[read_tokens] \"<secret token>\" = \"<property id>\"`",
            ));
        }
        for (token, property) in &self.read_tokens {
            if token.len() < 16 || property.is_empty() {
                return Err(ConfigError::invalid(
                    "read_tokens",
                    "each token must be at least 16 characters and name a property",
                ));
            }
        }
        if self.query.max_execution_time.is_zero() || self.query.retention.is_zero() {
            return Err(ConfigError::invalid(
                "query",
                "max_execution_time and retention must be greater than zero",
            ));
        }
        if self.http.max_connections == 0 {
            return Err(ConfigError::invalid(
                "http.max_connections",
                "must be greater than zero",
            ));
        }
        if self.http.listen == self.admin.listen {
            return Err(ConfigError::invalid(
                "http.listen",
                "must differ from admin.listen (the customers' and the operators' listeners are separate)",
            ));
        }
        Ok(())
    }
}

impl HasLog for ApiConfig {
    fn log(&self) -> &LogConfig {
        &self.log
    }
}
