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

/// One probe per shard, `clickhouse_shard_N`, passing when the server answers
/// a query.
///
/// Each probe opens a fresh connection: a pooled keep-alive connection used
/// every second would hold a stopping ClickHouse server (which waits for open
/// connections) for half a minute.
pub fn probes(cfg: &ClickHouseConfig) -> Vec<Probe> {
    cfg.shards
        .iter()
        .enumerate()
        .map(|(i, url)| {
            let query_url = format!("{}/?query=SELECT%201", url.trim_end_matches('/'));
            let user = cfg.user.clone();
            let password = cfg.password.clone();
            Probe::new(format!("clickhouse_shard_{}", i + 1), move || {
                let query_url = query_url.clone();
                let (user, password) = (user.clone(), password.clone());
                async move {
                    let reply = crate::httpc::send(
                        hyper::Method::GET,
                        &query_url,
                        &[
                            ("X-ClickHouse-User", &user),
                            ("X-ClickHouse-Key", &password),
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
            })
        })
        .collect()
}
