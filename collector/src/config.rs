//! The collector's configuration: `[log]`, `[admin]`, `[kafka]`, `[http]`,
//! `[mux_embed]`, `[ingest]`, `[producer]` and `[properties]`. See
//! `qoe_common::config` for how layers merge.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

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
    /// The public ingest listener.
    pub http: HttpConfig,
    /// The listener mux-embed SDKs post to.
    pub mux_embed: MuxEmbedConfig,
    /// Validation, enrichment and load shedding.
    pub ingest: IngestConfig,
    /// The bounded channel and the Kafka drain workers.
    pub producer: ProducerConfig,
    /// Ingest keys: `key = "property_id"`. The key is public (it ships in
    /// web pages); it only says which property a beacon belongs to.
    pub properties: BTreeMap<String, String>,
}

/// The public ingest listener (`[http]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Address SDKs post to.
    pub listen: SocketAddr,
    /// Most open connections; beyond it new connections get a cheap 503.
    pub max_connections: usize,
    /// Largest request body as sent (compressed or not), bytes.
    pub max_body_bytes: usize,
    /// Largest body after gzip decompression, bytes (gzip-bomb guard).
    pub max_decompressed_bytes: usize,
    /// Bytes of request bodies being received at once, all connections
    /// together (a body counts its `Content-Length`, or `max_body_bytes`
    /// when it has none). A request beyond it gets 503 + `Retry-After`
    /// (`body_budget`); together with the channel's bound this caps the
    /// collector's memory whatever the clients do.
    pub max_body_bytes_in_flight: usize,
    /// Shed a share of new requests (503 + `Retry-After`, `overloaded`)
    /// while tasks wait longer than this for a core, on average over
    /// ~100 ms: none at this lag, all at twice it. Keeps the latency of the
    /// requests taken bounded when offered more than the CPU can serve.
    /// `0s` turns it off.
    #[serde(with = "humantime_serde")]
    pub overload_lag: Duration,
    /// Time allowed to receive the request headers (slowloris guard).
    #[serde(with = "humantime_serde")]
    pub header_timeout: Duration,
    /// Time allowed to receive the whole body.
    #[serde(with = "humantime_serde")]
    pub body_timeout: Duration,
    /// `Access-Control-Allow-Origin` answered to browsers; `*` or one origin.
    pub cors_allow_origin: String,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_connections: 10_000,
            max_body_bytes: 512 * 1024,
            max_decompressed_bytes: 1024 * 1024,
            max_body_bytes_in_flight: 64 * 1024 * 1024,
            overload_lag: Duration::from_millis(200),
            header_timeout: Duration::from_secs(5),
            body_timeout: Duration::from_secs(10),
            cors_allow_origin: "*".into(),
        }
    }
}

/// A listener of its own for the mux-embed SDK (`[mux_embed]`), which
/// posts to the root of the origin its `beaconCollectionDomain` option
/// names. Connection caps, timeouts, body limits and CORS are `[http]`'s.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MuxEmbedConfig {
    /// Address mux-embed posts to (e.g. `127.0.0.1:8082`, then
    /// `beaconCollectionDomain: "localhost:8082"`); none = not served.
    pub listen: Option<SocketAddr>,
    /// The path beacons arrive on; `/` (the SDK's) when empty.
    pub path: String,
}

impl MuxEmbedConfig {
    /// The path beacons arrive on.
    pub fn path(&self) -> &str {
        if self.path.is_empty() {
            "/"
        } else {
            &self.path
        }
    }
}

/// Validation, enrichment and shedding (`[ingest]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestConfig {
    /// Events whose `ts` is older than this are dropped as stale.
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
    /// Events whose `ts` is further in the future are refused (clock skew).
    #[serde(with = "humantime_serde")]
    pub max_future: Duration,
    /// Events per second one property may send, sustained; 0 = unlimited.
    pub rate_limit_per_property: u32,
    /// Burst above the sustained rate, in events.
    pub rate_limit_burst: u32,
    /// Country `.mmdb` (records with `country_code` or `country.iso_code`);
    /// empty = no country enrichment.
    pub geo_db: Option<PathBuf>,
    /// ASN `.mmdb` (records with `autonomous_system_number`, as in GeoLite2-ASN
    /// or DB-IP's ASN Lite); empty = ASN 0. No CC0 ASN database is published,
    /// so `deploy/local/stack install` fetches only the country one.
    pub asn_db: Option<PathBuf>,
    /// Proxies whose `X-Forwarded-For` is trusted (exact IPs; a list, or one
    /// comma-separated string). The client IP is the last address in the
    /// header not in this list.
    #[serde(deserialize_with = "ip_list")]
    pub trusted_proxies: Vec<IpAddr>,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            max_age: Duration::from_secs(3600),
            max_future: Duration::from_secs(300),
            rate_limit_per_property: 0,
            rate_limit_burst: 10_000,
            geo_db: None,
            asn_db: None,
            trusted_proxies: Vec::new(),
        }
    }
}

fn ip_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<IpAddr>, D::Error> {
    qoe_common::config::string_or_list(d)?
        .iter()
        .map(|s| {
            s.parse()
                .map_err(|_| serde::de::Error::custom(format!("`{s}` is not an IP address")))
        })
        .collect()
}

/// The bounded channel and the drain workers (`[producer]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProducerConfig {
    /// Events accepted but not yet delivered (channel plus the Kafka
    /// client's queue). When full, requests get 503 + `Retry-After`.
    pub channel_capacity: usize,
    /// Drain workers serializing records into Kafka; 0 = one per core.
    pub workers: usize,
    /// How long a record may wait in the Kafka client before its delivery
    /// counts as failed (`message.timeout.ms`); a failed record is produced
    /// again, never dropped.
    #[serde(with = "humantime_serde")]
    pub delivery_timeout: Duration,
    /// `linger.ms`: how long the client waits to fill a batch. Bigger
    /// batches cost the broker far less per record (the local broker used
    /// a quarter of a core at 5 ms and 6 % at 100 ms for 10 k records/s),
    /// and the wait is nothing next to the 30 s write-latency SLO. Busy
    /// drain workers nap a tenth of it (1 to 5 ms) between rounds.
    #[serde(with = "humantime_serde")]
    pub linger: Duration,
    /// `Retry-After` sent with 503s, seconds.
    pub retry_after_s: u32,
    /// On SIGTERM, how long to wait for in-flight requests and for every
    /// accepted record to be delivered; what is still undelivered then is
    /// written to `spill_dir`.
    #[serde(with = "humantime_serde")]
    pub shutdown_deadline: Duration,
    /// Where records undelivered at the shutdown deadline are written (one
    /// fsynced file per stop) and read back and produced again at the next
    /// start. Must survive a restart: a persistent volume, not a tmpfs.
    /// Relative paths resolve against the working directory. It also holds
    /// the write-ahead journal, and one collector at a time (a lock file).
    pub spill_dir: PathBuf,
    /// Append every accepted record to a journal in `spill_dir` before
    /// answering, so that a collector killed with `-9` loses nothing it
    /// acknowledged (the next start produces the journal again). Off, a
    /// `202` means "in memory" and a kill loses what was undelivered.
    pub journal: bool,
    /// How often the journal closes its segment (syncing it to disk) and
    /// deletes the segments whose records are all delivered. A host crash
    /// can lose up to this long of acknowledged records; a process crash
    /// loses none.
    #[serde(with = "humantime_serde")]
    pub journal_rotate: Duration,
    /// Extra librdkafka producer properties, applied last (e.g.
    /// `"batch.num.messages" = "20000"`). For tuning; the defaults are the
    /// project's (`qoe_common::kafka::producer_config`).
    pub librdkafka_options: BTreeMap<String, String>,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            channel_capacity: 200_000,
            workers: 0,
            delivery_timeout: Duration::from_secs(300),
            linger: Duration::from_millis(50),
            retry_after_s: 1,
            shutdown_deadline: Duration::from_secs(30),
            spill_dir: PathBuf::from("spill"),
            journal: true,
            journal_rotate: Duration::from_secs(1),
            librdkafka_options: BTreeMap::new(),
        }
    }
}

impl ProducerConfig {
    /// The worker count, resolving 0 to the number of cores.
    pub fn worker_count(&self) -> usize {
        if self.workers > 0 {
            return self.workers;
        }
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    }
}

impl Default for CollectorConfig {
    fn default() -> Self {
        CollectorConfig {
            log: LogConfig::default(),
            admin: AdminConfig::on_port(9101),
            kafka: KafkaConfig::default(),
            http: HttpConfig::default(),
            mux_embed: MuxEmbedConfig::default(),
            ingest: IngestConfig::default(),
            producer: ProducerConfig::default(),
            properties: BTreeMap::from([("dev-key".to_owned(), "dev-property".to_owned())]),
        }
    }
}

impl Validate for CollectorConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.admin.validate()?;
        self.kafka.validate()?;
        let positive = |key: &str, v: usize| {
            if v == 0 {
                Err(ConfigError::invalid(key, "must be greater than zero"))
            } else {
                Ok(())
            }
        };
        positive("http.max_connections", self.http.max_connections)?;
        positive("http.max_body_bytes", self.http.max_body_bytes)?;
        positive(
            "http.max_decompressed_bytes",
            self.http.max_decompressed_bytes,
        )?;
        if self.http.max_body_bytes_in_flight < self.http.max_body_bytes {
            return Err(ConfigError::invalid(
                "http.max_body_bytes_in_flight",
                "must be at least http.max_body_bytes (or no largest body could be received)",
            ));
        }
        positive("producer.channel_capacity", self.producer.channel_capacity)?;
        if self.producer.spill_dir.as_os_str().is_empty() {
            return Err(ConfigError::invalid(
                "producer.spill_dir",
                "must name a directory (undelivered records are kept there at shutdown)",
            ));
        }
        if self.http.max_decompressed_bytes < self.http.max_body_bytes {
            return Err(ConfigError::invalid(
                "http.max_decompressed_bytes",
                "must be at least http.max_body_bytes",
            ));
        }
        if !self.mux_embed.path().starts_with('/') {
            return Err(ConfigError::invalid(
                "mux_embed.path",
                "must start with `/` (the SDK posts to `/`)",
            ));
        }
        if self.mux_embed.listen == Some(self.http.listen) {
            return Err(ConfigError::invalid(
                "mux_embed.listen",
                "must differ from http.listen (mux-embed needs a listener of its own)",
            ));
        }
        if self.producer.journal_rotate < Duration::from_millis(50) {
            return Err(ConfigError::invalid(
                "producer.journal_rotate",
                "must be at least 50ms (each rotation syncs a file to disk)",
            ));
        }
        if self.ingest.max_age.is_zero() {
            return Err(ConfigError::invalid(
                "ingest.max_age",
                "must be greater than zero",
            ));
        }
        if self.properties.is_empty() {
            return Err(ConfigError::invalid(
                "properties",
                "no ingest keys configured: add `[properties] <key> = \"<property id>\"`",
            ));
        }
        for (key, property) in &self.properties {
            if key.is_empty() || key.len() > 128 || property.is_empty() || property.len() > 128 {
                return Err(ConfigError::invalid(
                    &format!("properties.{key}"),
                    "keys and property ids must be 1-128 bytes",
                ));
            }
        }
        for path in [&self.ingest.geo_db, &self.ingest.asn_db]
            .into_iter()
            .flatten()
        {
            if !path.exists() {
                return Err(ConfigError::invalid(
                    if Some(path) == self.ingest.geo_db.as_ref() {
                        "ingest.geo_db"
                    } else {
                        "ingest.asn_db"
                    },
                    format!("{} does not exist", path.display()),
                ));
            }
        }
        Ok(())
    }
}

impl HasLog for CollectorConfig {
    fn log(&self) -> &LogConfig {
        &self.log
    }
}
