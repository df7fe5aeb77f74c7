//! Layered, typed configuration.
//!
//! Every binary's configuration is a struct with `#[serde(default,
//! deny_unknown_fields)]`, so the layers are: the struct's built-in defaults,
//! then an optional TOML file (`--config FILE`), then environment variables
//! `QOE_<SECTION>__<KEY>` (double underscore between levels, e.g.
//! `QOE_KAFKA__BROKERS=127.0.0.1:9092`). Environment variables are read per
//! process: set only those of the service you start.
//!
//! Errors name the key (`kafka.brokers`) and the environment variable that
//! sets it, so an operator can fix the right thing.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

/// Prefix of every environment variable that overrides configuration.
pub const ENV_PREFIX: &str = "QOE";
/// Separator between nesting levels in environment variable names.
pub const ENV_SEPARATOR: &str = "__";

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or environment could not be read or parsed at all.
    #[error("cannot read configuration: {0}")]
    Source(#[from] config::ConfigError),
    /// A key has the wrong type or is unknown.
    #[error("configuration key `{key}` (env {env}): {message}")]
    Key {
        key: String,
        env: String,
        message: String,
    },
    /// A key parsed but its value is not acceptable.
    #[error("configuration key `{key}` (env {env}): {message}")]
    Invalid {
        key: String,
        env: String,
        message: String,
    },
}

impl ConfigError {
    /// An invalid value for `key`, with a message saying what is acceptable.
    pub fn invalid(key: &str, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            key: key.to_owned(),
            env: env_var_for(key),
            message: message.into(),
        }
    }
}

/// The environment variable that overrides a dotted configuration key.
pub fn env_var_for(key: &str) -> String {
    format!(
        "{ENV_PREFIX}_{}",
        key.replace('.', ENV_SEPARATOR).to_ascii_uppercase()
    )
}

/// Checks that a loaded configuration makes sense as a whole.
pub trait Validate {
    /// Returns the first problem found, naming its key.
    fn validate(&self) -> Result<(), ConfigError>;
}

/// Loads `T` from its defaults, then `file` (if any), then the process's
/// `QOE_<SECTION>__<KEY>` variables.
pub fn load<T>(file: Option<&Path>) -> Result<T, ConfigError>
where
    T: DeserializeOwned + Validate,
{
    load_from(file, environment(std::env::vars()))
}

/// The configuration variables among `vars`: only `QOE_<SECTION>__<KEY>`
/// forms count, so other `QOE_*` variables (`QOE_CONFIG`, the stack
/// script's `QOE_STACK_*`) are not mistaken for keys.
pub fn environment(vars: impl IntoIterator<Item = (String, String)>) -> config::Environment {
    let prefix = format!("{ENV_PREFIX}_");
    let keys = vars
        .into_iter()
        .filter(|(k, _)| {
            k.strip_prefix(&prefix)
                .is_some_and(|rest| rest.contains(ENV_SEPARATOR))
        })
        .collect();
    config::Environment::with_prefix(ENV_PREFIX)
        .prefix_separator("_")
        .separator(ENV_SEPARATOR)
        .source(Some(keys))
}

/// [`load`] with an explicit environment source, so tests need not touch the
/// process environment.
pub fn load_from<T>(file: Option<&Path>, env: config::Environment) -> Result<T, ConfigError>
where
    T: DeserializeOwned + Validate,
{
    let mut builder = config::Config::builder();
    if let Some(path) = file {
        builder = builder.add_source(
            config::File::from(path)
                .format(config::FileFormat::Toml)
                .required(true),
        );
    }
    let layered = builder.add_source(env).build()?;
    let typed: T = serde_path_to_error::deserialize(layered).map_err(|err| {
        let key = err.path().to_string();
        ConfigError::Key {
            env: env_var_for(&key),
            message: err.into_inner().to_string(),
            key,
        }
    })?;
    typed.validate()?;
    Ok(typed)
}

/// Accepts either a TOML list or one comma-separated string (the form an
/// environment variable can carry).
pub fn string_or_list<'de, D>(deserializer: D) -> Result<Vec<String>, D::Error>
where
    D: Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(deserializer)? {
        OneOrMany::One(s) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        OneOrMany::Many(v) => v,
    })
}

/// Logging settings, shared by every binary (`[log]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `tracing` filter directive, e.g. `info` or `info,qoe_collector=debug`.
    /// `RUST_LOG`, when set, wins over this.
    pub level: String,
    /// `text` for humans, `json` for log shippers.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The admin listener every service runs (`[admin]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Address of `/healthz`, `/readyz` and `/metrics`. Port 0 picks a free port
    /// (the chosen one is logged).
    pub listen: SocketAddr,
    /// How often dependency probes run; `/readyz` answers from the last result.
    #[serde(with = "humantime_serde")]
    pub probe_interval: Duration,
    /// How long one probe may take before its dependency counts as down.
    #[serde(with = "humantime_serde")]
    pub probe_timeout: Duration,
}

impl AdminConfig {
    /// Default admin config listening on `port` on loopback.
    pub fn on_port(port: u16) -> Self {
        AdminConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], port)),
            ..AdminConfig::default()
        }
    }

    /// Checks the probe timings.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.probe_interval.is_zero() {
            return Err(ConfigError::invalid(
                "admin.probe_interval",
                "must be greater than zero, e.g. \"1s\"",
            ));
        }
        if self.probe_timeout.is_zero() {
            return Err(ConfigError::invalid(
                "admin.probe_timeout",
                "must be greater than zero, e.g. \"1s\"",
            ));
        }
        Ok(())
    }
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            probe_interval: Duration::from_secs(1),
            probe_timeout: Duration::from_secs(2),
        }
    }
}

/// Connection to the Kafka-API broker (`[kafka]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap brokers, `host:port[,host:port...]`.
    pub brokers: String,
    /// The heartbeat topic: normalized, enriched heartbeats keyed by `view_id`.
    pub topic: String,
    /// Where records that cannot be processed go, with the reason in a header.
    pub dead_letter_topic: String,
    /// Socket and request timeout towards the broker.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Idempotent producers (`enable.idempotence`): the broker drops a
    /// retried batch it already stored. An optimisation, not the guarantee:
    /// the processor deduplicates by (view, seq) and ClickHouse collapses
    /// replays. Off on the local tansu broker, whose sequence check fails
    /// under load (`DuplicateSequenceNumber`, then a storage panic).
    pub idempotent_producer: bool,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: "127.0.0.1:9092".into(),
            topic: "qoe.heartbeats".into(),
            dead_letter_topic: "qoe.heartbeats.dlq".into(),
            request_timeout: Duration::from_secs(10),
            idempotent_producer: true,
        }
    }
}

impl KafkaConfig {
    /// Checks that brokers and topics are set.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.brokers.trim().is_empty() {
            return Err(ConfigError::invalid(
                "kafka.brokers",
                "must list at least one broker, e.g. \"127.0.0.1:9092\"",
            ));
        }
        for (key, topic) in [
            ("kafka.topic", &self.topic),
            ("kafka.dead_letter_topic", &self.dead_letter_topic),
        ] {
            let legal = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
            if topic.is_empty() || topic.len() > 249 || !topic.chars().all(legal) {
                return Err(ConfigError::invalid(
                    key,
                    format!("`{topic}` is not a Kafka topic name (1-249 of [a-zA-Z0-9._-])"),
                ));
            }
        }
        Ok(())
    }
}

/// Connection to the ClickHouse shards (`[clickhouse]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClickHouseConfig {
    /// HTTP URL of one server per shard, in shard order; a shard with
    /// replicas lists each, separated by `|` (`http://a:8123|http://b:8123`),
    /// and is used through the first that answers. Writes go to each shard's
    /// `*_local` tables; reads through the `Distributed` tables. A list, or
    /// one comma-separated string.
    #[serde(deserialize_with = "string_or_list")]
    pub shards: Vec<String>,
    /// Database holding the pipeline's tables.
    pub database: String,
    /// ClickHouse user.
    pub user: String,
    /// ClickHouse password (prefer the environment variable over a file).
    pub password: String,
    /// Name of the cluster in `remote_servers` that `Distributed` tables use.
    pub cluster: String,
    /// `qoe-migrate` creates the `Replicated*MergeTree` variant of every
    /// table (paths `/clickhouse/tables/{shard}/<database>/<table>`, replica
    /// `{replica}`): every server needs ZooKeeper or ClickHouse Keeper and
    /// those macros. Retried inserts of an identical block are then stored
    /// once. Migrations run on every replica listed in `shards`.
    pub replicated: bool,
}

impl Default for ClickHouseConfig {
    fn default() -> Self {
        ClickHouseConfig {
            shards: vec![
                "http://127.0.0.1:8123".into(),
                "http://127.0.0.1:8124".into(),
            ],
            database: "qoe".into(),
            user: "default".into(),
            password: String::new(),
            cluster: "qoe".into(),
            replicated: false,
        }
    }
}

impl ClickHouseConfig {
    /// Checks the shard list and names.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.shards.is_empty() {
            return Err(ConfigError::invalid(
                "clickhouse.shards",
                "must list one HTTP URL per shard, e.g. \"http://127.0.0.1:8123\"",
            ));
        }
        for entry in &self.shards {
            let mut urls = crate::clickhouse::replica_urls(entry).peekable();
            if urls.peek().is_none() {
                return Err(ConfigError::invalid(
                    "clickhouse.shards",
                    format!("`{entry}` names no server: give one URL, or replicas as `url|url`"),
                ));
            }
            for url in urls {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(ConfigError::invalid(
                        "clickhouse.shards",
                        format!("`{url}` is not an http:// or https:// URL"),
                    ));
                }
            }
        }
        let ident = |s: &str| {
            !s.is_empty()
                && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !s.starts_with(|c: char| c.is_ascii_digit())
        };
        if !ident(&self.database) {
            return Err(ConfigError::invalid(
                "clickhouse.database",
                format!(
                    "`{}` is not a plain identifier ([a-zA-Z_][a-zA-Z0-9_]*)",
                    self.database
                ),
            ));
        }
        if !ident(&self.cluster) {
            return Err(ConfigError::invalid(
                "clickhouse.cluster",
                format!("`{}` is not a plain identifier", self.cluster),
            ));
        }
        Ok(())
    }
}

/// Renders a configuration as TOML, for `--print-config`.
pub fn to_toml<T: Serialize>(config: &T) -> String {
    toml::to_string_pretty(config).unwrap_or_else(|err| format!("# cannot render: {err}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[derive(Debug, Default, Serialize, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct Sample {
        kafka: KafkaConfig,
        clickhouse: ClickHouseConfig,
        admin: AdminConfig,
    }

    impl Validate for Sample {
        fn validate(&self) -> Result<(), ConfigError> {
            self.kafka.validate()?;
            self.clickhouse.validate()?;
            self.admin.validate()
        }
    }

    fn env(vars: &[(&str, &str)]) -> config::Environment {
        environment(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn defaults_then_file_then_env() {
        let f = file("[kafka]\nbrokers = \"file:1\"\ntopic = \"from-file\"\n");
        let cfg: Sample = load_from(
            Some(f.path()),
            env(&[
                ("QOE_KAFKA__BROKERS", "env:2"),
                ("QOE_ADMIN__PROBE_INTERVAL", "250ms"),
            ]),
        )
        .unwrap();
        assert_eq!(cfg.kafka.brokers, "env:2");
        assert_eq!(cfg.kafka.topic, "from-file");
        assert_eq!(cfg.kafka.dead_letter_topic, "qoe.heartbeats.dlq");
        assert_eq!(cfg.admin.probe_interval, Duration::from_millis(250));
    }

    #[test]
    fn other_qoe_variables_are_not_keys() {
        let cfg: Sample = load_from(
            None,
            env(&[
                ("QOE_CONFIG", "x.toml"),
                ("QOE_STACK_DIR", "/tmp"),
                ("QOE_KAFKA__TOPIC", "t"),
            ]),
        )
        .unwrap();
        assert_eq!(cfg.kafka.topic, "t");
    }

    #[test]
    fn shards_from_comma_separated_env() {
        let cfg: Sample = load_from(
            None,
            env(&[("QOE_CLICKHOUSE__SHARDS", "http://a:1, http://b:2")]),
        )
        .unwrap();
        assert_eq!(cfg.clickhouse.shards, vec!["http://a:1", "http://b:2"]);
    }

    #[test]
    fn replicas_of_a_shard_are_pipe_separated() {
        let cfg: Sample = load_from(
            None,
            env(&[(
                "QOE_CLICKHOUSE__SHARDS",
                "http://a:1|http://a:2,http://b:1|http://b:2",
            )]),
        )
        .unwrap();
        let shards = crate::clickhouse::shards(&cfg.clickhouse);
        assert_eq!(shards.len(), 2);
        let urls: Vec<&str> = shards[1].replicas.iter().map(|r| r.url.as_str()).collect();
        assert_eq!(urls, ["http://b:1", "http://b:2"]);
        // A failed replica hands over to the next, and back round.
        assert_eq!(shards[0].replica().0, 0);
        shards[0].failed(0);
        assert_eq!(shards[0].replica().1.url, "http://a:2");
        shards[0].failed(0); // a stale report changes nothing
        assert_eq!(shards[0].replica().0, 1);
        shards[0].failed(1);
        assert_eq!(shards[0].replica().0, 0);
        let err = load_from::<Sample>(
            None,
            env(&[("QOE_CLICKHOUSE__SHARDS", "http://a:1|ftp://b")]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("`ftp://b`"), "{err}");
        let err = load_from::<Sample>(None, env(&[("QOE_CLICKHOUSE__SHARDS", "http://a:1, |")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("names no server"), "{err}");
    }

    #[test]
    fn unknown_key_is_named() {
        let f = file("[kafka]\nbrokerz = \"x\"\n");
        let err = load_from::<Sample>(Some(f.path()), env(&[])).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("kafka"), "{msg}");
        assert!(msg.contains("brokerz"), "{msg}");
    }

    #[test]
    fn wrong_type_is_named() {
        let err =
            load_from::<Sample>(None, env(&[("QOE_ADMIN__LISTEN", "not-an-address")])).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("`admin.listen`"), "{msg}");
        assert!(msg.contains("QOE_ADMIN__LISTEN"), "{msg}");
    }

    #[test]
    fn invalid_value_is_named() {
        let err =
            load_from::<Sample>(None, env(&[("QOE_CLICKHOUSE__SHARDS", "ftp://x")])).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("`clickhouse.shards`"), "{msg}");
        assert!(msg.contains("QOE_CLICKHOUSE__SHARDS"), "{msg}");
    }

    #[test]
    fn missing_file_is_an_error() {
        let err =
            load_from::<Sample>(Some(Path::new("/nonexistent/qoe.toml")), env(&[])).unwrap_err();
        assert!(matches!(err, ConfigError::Source(_)), "{err}");
    }
}
