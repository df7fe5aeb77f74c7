//! ClickHouse HTTP clients per shard and replica, configured once, and
//! their probes. A shard with replicas fails over to the next replica when
//! the one in use stops answering.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use clickhouse::Client;

use crate::config::ClickHouseConfig;
use crate::health::Probe;

/// One server of a shard.
#[derive(Clone)]
pub struct Replica {
    /// Its HTTP URL.
    pub url: String,
    /// Client bound to the pipeline's database.
    pub client: Client,
}

/// A shard: one server, or several replicas of the same data.
#[derive(Clone)]
pub struct Shard {
    /// 1-based shard number, as in `remote_servers`.
    pub number: usize,
    /// The first replica's URL (the only one with one server per shard).
    pub url: String,
    /// The first replica's client.
    pub client: Client,
    /// Every replica, in configured order; the first is `url`/`client`.
    pub replicas: Vec<Replica>,
    /// Index of the replica to use now: the first, until one fails.
    preferred: Arc<AtomicUsize>,
}

impl Shard {
    /// The replica to use now, and its index.
    pub fn replica(&self) -> (usize, &Replica) {
        let i = self.preferred.load(Ordering::Relaxed) % self.replicas.len();
        (i, &self.replicas[i])
    }

    /// Records that replica `index` failed: later calls to [`Shard::replica`]
    /// get the next one (unless another caller moved on already).
    pub fn failed(&self, index: usize) {
        let next = (index + 1) % self.replicas.len();
        let _ = self
            .preferred
            .compare_exchange(index, next, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// Records that replica `index` answered: it is the one to use now.
    pub fn answered(&self, index: usize) {
        self.preferred.store(index, Ordering::Relaxed);
    }

    /// The same shard with `setting` on every replica's client.
    pub fn with_setting(mut self, name: &str, value: &str) -> Shard {
        for replica in &mut self.replicas {
            replica.client = replica.client.clone().with_setting(name, value);
        }
        self.client = self.replicas[0].client.clone();
        self
    }
}

/// Clients for every configured shard, in shard order, each with its
/// replicas (`|`-separated URLs of one `clickhouse.shards` entry).
///
/// Validation is off because ClickHouse 18.16 lacks
/// `RowBinaryWithNamesAndTypes`; row types are checked by our own tests.
pub fn shards(cfg: &ClickHouseConfig) -> Vec<Shard> {
    cfg.shards
        .iter()
        .enumerate()
        .map(|(i, entry)| {
            let replicas: Vec<Replica> = replica_urls(entry)
                .map(|url| Replica {
                    url: url.to_owned(),
                    client: server_client(cfg, url).with_database(&cfg.database),
                })
                .collect();
            Shard {
                number: i + 1,
                url: replicas[0].url.clone(),
                client: replicas[0].client.clone(),
                replicas,
                preferred: Arc::new(AtomicUsize::new(0)),
            }
        })
        .collect()
}

/// The replica URLs of one `clickhouse.shards` entry (`url` or
/// `url|url|…`); at least one, as validation guarantees.
pub fn replica_urls(entry: &str) -> impl Iterator<Item = &str> {
    entry.split('|').map(str::trim).filter(|u| !u.is_empty())
}

/// ClickHouse query priorities (`priority`: 1 is the highest; a query
/// waits while one of higher priority runs). Customers' reads have the
/// tight SLO (p90 < 750 ms), writes a loose one (p99 < 30 s), so on a busy
/// server the api's reads go first and the pipeline's writes yield.
pub const READ_PRIORITY: &str = "1";
/// See [`READ_PRIORITY`].
pub const WRITE_PRIORITY: &str = "5";

/// A client for the server at `url` with no database selected (for DDL that
/// creates the database).
pub fn server_client(cfg: &ClickHouseConfig, url: &str) -> Client {
    Client::default()
        .with_url(url)
        .with_user(&cfg.user)
        .with_password(&cfg.password)
        .with_validation(false)
}

/// One probe per shard, `clickhouse_shard_N`, passing when one of its
/// replicas answers a query.
///
/// Each probe opens a fresh connection: a pooled keep-alive connection used
/// every second would hold a stopping ClickHouse server (which waits for open
/// connections) for half a minute.
pub fn probes(cfg: &ClickHouseConfig) -> Vec<Probe> {
    cfg.shards
        .iter()
        .enumerate()
        .map(|(i, entry)| {
            let query_urls: Vec<String> = replica_urls(entry)
                .map(|url| format!("{}/?query=SELECT%201", url.trim_end_matches('/')))
                .collect();
            let user = cfg.user.clone();
            let password = cfg.password.clone();
            Probe::new(format!("clickhouse_shard_{}", i + 1), move || {
                let query_urls = query_urls.clone();
                let (user, password) = (user.clone(), password.clone());
                async move {
                    let mut failures = Vec::new();
                    for query_url in &query_urls {
                        match ping(query_url, &user, &password).await {
                            Ok(()) => return Ok(()),
                            Err(why) => failures.push(why),
                        }
                    }
                    Err(failures.join("; "))
                }
            })
        })
        .collect()
}

async fn ping(query_url: &str, user: &str, password: &str) -> Result<(), String> {
    let reply = crate::httpc::send(
        hyper::Method::GET,
        query_url,
        &[
            ("X-ClickHouse-User", user),
            ("X-ClickHouse-Key", password),
            ("Connection", "close"),
        ],
        bytes::Bytes::new(),
        std::time::Duration::from_secs(5),
    )
    .await?;
    if reply.status.is_success() {
        Ok(())
    } else {
        Err(format!(
            "{query_url}: {} {}",
            reply.status,
            reply.text().trim()
        ))
    }
}
