//! One ClickHouse HTTP client per shard, configured once, and their probes.

use clickhouse::Client;

use crate::config::ClickHouseConfig;
use crate::health::Probe;

/// A client for one shard.
#[derive(Clone)]
pub struct Shard {
    /// 1-based shard number, as in `remote_servers`.
    pub number: usize,
    /// The shard's HTTP URL.
    pub url: String,
    /// Client bound to the pipeline's database.
    pub client: Client,
}

/// Clients for every configured shard, in shard order.
///
/// Validation is off because ClickHouse 18.16 lacks
/// `RowBinaryWithNamesAndTypes`; row types are checked by our own tests.
pub fn shards(cfg: &ClickHouseConfig) -> Vec<Shard> {
    cfg.shards
        .iter()
        .enumerate()
        .map(|(i, url)| Shard {
            number: i + 1,
            url: url.clone(),
            client: server_client(cfg, url).with_database(&cfg.database),
        })
        .collect()
}

/// A client for the server at `url` with no database selected (for DDL that
/// creates the database).
pub fn server_client(cfg: &ClickHouseConfig, url: &str) -> Client {
    Client::default()
        .with_url(url)
        .with_user(&cfg.user)
        .with_password(&cfg.password)
        .with_validation(false)
}

/// One probe per shard, `clickhouse_shard_N`, passing when the server answers
/// a query.
pub fn probes(cfg: &ClickHouseConfig) -> Vec<Probe> {
    shards(cfg)
        .into_iter()
        .map(|shard| {
            let client = server_client(cfg, &shard.url);
            let url = shard.url.clone();
            Probe::new(format!("clickhouse_shard_{}", shard.number), move || {
                let client = client.clone();
                let url = url.clone();
                async move {
                    client
                        .query("SELECT 1")
                        .execute()
                        .await
                        .map_err(|e| format!("{url}: {e}"))
                }
            })
        })
        .collect()
}
