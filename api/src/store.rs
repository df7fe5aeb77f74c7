//! Reading the metrics from ClickHouse, within limits: every query runs
//! with `max_execution_time` and `max_rows_to_read`, and one over them
//! answers with a code instead of holding the connection.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use clickhouse::Client;

use qoe_common::config::ClickHouseConfig;
use qoe_schema::metrics::live::{self, LiveGroup};
use qoe_schema::metrics::{
    self, ErrorCode, Filter, Group, Overview, Range, Scope, Select, DEFAULT_INACTIVITY_TIMEOUT_S,
};

use crate::config::QueryConfig;
use crate::error::RequestError;
use crate::metrics::metrics;

/// What a metric read covers: `property`'s views in `range` matching
/// `filters`, evaluated at `now` (epoch seconds); `route` labels its
/// query time.
#[derive(Clone, Copy)]
pub struct Read<'a> {
    pub route: &'static str,
    pub property: &'a str,
    pub range: Range,
    pub filters: &'a [Filter<'a>],
    pub now: u32,
}

/// The read side of the cluster, through the `Distributed` tables of one
/// server: the first configured, until it stops answering, then the next
/// (any replica of any shard reads the whole cluster).
pub struct Store {
    servers: Vec<Client>,
    /// Index into `servers` of the one in use.
    current: AtomicUsize,
    database: String,
    limits: QueryConfig,
    /// Recent live answers ([`QueryConfig::live_cache`]).
    live: Mutex<HashMap<LiveKey, (Instant, Vec<LiveGroup>)>>,
}

/// A live question: its kind (series or breakdown), property, dimension,
/// value and buckets.
type LiveKey = (&'static str, String, String, String, u32, u32);

/// Most live answers kept at once.
const LIVE_CACHE_ENTRIES: usize = 4096;

impl Store {
    pub fn new(ch: &ClickHouseConfig, limits: &QueryConfig) -> Store {
        let servers = qoe_common::clickhouse::shards(ch)
            .into_iter()
            .flat_map(|shard| shard.replicas)
            .map(|replica| {
                replica
                    .client
                    .with_setting(
                        "max_execution_time",
                        limits.max_execution_time.as_secs().max(1).to_string(),
                    )
                    .with_setting("max_rows_to_read", limits.max_rows_to_read.to_string())
                    .with_setting("priority", qoe_common::clickhouse::READ_PRIORITY)
            })
            .collect();
        Store {
            servers,
            current: AtomicUsize::new(0),
            database: ch.database.clone(),
            limits: limits.clone(),
            live: Mutex::new(HashMap::new()),
        }
    }

    /// The scope of `read`'s metric query, computing `fields` (names of
    /// [`Overview`] fields) alone.
    fn scope<'a>(&'a self, read: &'a Read<'a>, fields: &'a [&'a str]) -> Scope<'a> {
        Scope {
            database: &self.database,
            property: read.property,
            range: read.range,
            now: read.now,
            inactivity_timeout_s: DEFAULT_INACTIVITY_TIMEOUT_S,
            max_view_s: self.max_view_s(),
            filters: read.filters,
            select: Select::Only(fields),
        }
    }

    /// The `fields` of the [`Overview`] of the views `read` covers (the
    /// others read 0).
    pub async fn overview(
        &self,
        read: &Read<'_>,
        fields: &[&str],
    ) -> Result<Overview, RequestError> {
        let query = metrics::overview_query(self.client()?, &self.scope(read, fields));
        self.timed(read.route, metrics::fetch_overview(query)).await
    }

    /// [`Store::overview`] per value of the `views` column `column`.
    pub async fn breakdown(
        &self,
        read: &Read<'_>,
        column: &'static str,
        fields: &[&str],
    ) -> Result<Vec<Group>, RequestError> {
        let query = metrics::breakdown_query(self.client()?, &self.scope(read, fields), column);
        self.timed(read.route, metrics::fetch_breakdown(query))
            .await
    }

    /// [`Store::overview`] per `step_s`-second bucket that has views.
    pub async fn timeseries(
        &self,
        read: &Read<'_>,
        step_s: u32,
        fields: &[&str],
    ) -> Result<Vec<Group>, RequestError> {
        let query = metrics::timeseries_query(self.client()?, &self.scope(read, fields), step_s);
        self.timed(read.route, metrics::fetch_breakdown(query))
            .await
    }

    /// The error codes of the views `read` covers that ended in its range,
    /// most views first, and how many views ended in it.
    pub async fn errors(&self, read: &Read<'_>) -> Result<(Vec<ErrorCode>, u64), RequestError> {
        let codes = metrics::errors_query(self.client()?, &self.scope(read, &[]));
        let (codes, ended) = tokio::try_join!(
            self.timed(read.route, codes.fetch_all::<ErrorCode>()),
            self.overview(read, &["ended_in_range"]),
        )?;
        Ok((codes, ended.ended_in_range))
    }

    /// The live counts of `property`'s views whose `dim` is `value` (`all`
    /// and empty: every view), per bucket of `range`.
    pub async fn live_series(
        &self,
        property: &str,
        dim: &str,
        value: &str,
        range: Range,
    ) -> Result<Vec<LiveGroup>, RequestError> {
        let key = (
            "series",
            property.into(),
            dim.into(),
            value.into(),
            range.from,
            range.to,
        );
        self.live_cached(key, async {
            let query =
                live::series_query(self.client()?, &self.database, property, dim, value, range);
            self.timed("monitoring", live::fetch_live(query)).await
        })
        .await
    }

    /// The live counts of each value of `dim` in `bucket`.
    pub async fn live_breakdown(
        &self,
        property: &str,
        dim: &str,
        bucket: u32,
    ) -> Result<Vec<LiveGroup>, RequestError> {
        let key = (
            "breakdown",
            property.into(),
            dim.into(),
            String::new(),
            bucket,
            bucket,
        );
        self.live_cached(key, async {
            let query =
                live::breakdown_query(self.client()?, &self.database, property, dim, bucket);
            self.timed("monitoring", live::fetch_live(query)).await
        })
        .await
    }

    /// The answer to `key` given within [`QueryConfig::live_cache`], or
    /// `query`'s, kept for the next asker.
    async fn live_cached(
        &self,
        key: LiveKey,
        query: impl std::future::Future<Output = Result<Vec<LiveGroup>, RequestError>>,
    ) -> Result<Vec<LiveGroup>, RequestError> {
        let ttl = self.limits.live_cache;
        if let Some((at, rows)) = self.live_cache().get(&key) {
            if at.elapsed() < ttl {
                metrics().live_cache.with_label_values(&["hit"]).inc();
                return Ok(rows.clone());
            }
        }
        metrics().live_cache.with_label_values(&["miss"]).inc();
        let rows = query.await?;
        if !ttl.is_zero() {
            let mut cache = self.live_cache();
            if cache.len() >= LIVE_CACHE_ENTRIES {
                cache.retain(|_, (at, _)| at.elapsed() < ttl);
                if cache.len() >= LIVE_CACHE_ENTRIES {
                    cache.clear();
                }
            }
            cache.insert(key, (Instant::now(), rows.clone()));
        }
        Ok(rows)
    }

    fn live_cache(&self) -> std::sync::MutexGuard<'_, HashMap<LiveKey, (Instant, Vec<LiveGroup>)>> {
        // A panic while holding it leaves a map that is still whole.
        self.live
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The client of the server in use, or 503 when no shard is configured.
    pub(crate) fn client(&self) -> Result<&Client, RequestError> {
        if self.servers.is_empty() {
            return Err(unavailable());
        }
        Ok(&self.servers[self.current.load(Ordering::Relaxed) % self.servers.len()])
    }

    /// How long before a range a view ending in it may have started.
    pub(crate) fn max_view_s(&self) -> u32 {
        self.limits.max_view.as_secs().min(u64::from(u32::MAX)) as u32
    }

    /// The database read.
    pub(crate) fn database(&self) -> &str {
        &self.database
    }

    /// Runs a query, timing it, within the deadline.
    pub(crate) async fn timed<T>(
        &self,
        route: &str,
        query: impl std::future::Future<Output = Result<T, clickhouse::error::Error>>,
    ) -> Result<T, RequestError> {
        let used = self.current.load(Ordering::Relaxed);
        let started = Instant::now();
        // The server stops at max_execution_time; this catches a server
        // that does not answer at all.
        let deadline = self.limits.max_execution_time + Duration::from_secs(5);
        let result = tokio::time::timeout(deadline, query).await;
        metrics()
            .query_seconds
            .with_label_values(&[route])
            .observe(started.elapsed().as_secs_f64());
        match result {
            Ok(Ok(rows)) => Ok(rows),
            Ok(Err(err)) => {
                if matches!(err, clickhouse::error::Error::Network(_)) && !self.servers.is_empty() {
                    // Unreachable: later requests go to the next server
                    // (unless another request moved on already).
                    let next = (used + 1) % self.servers.len();
                    let _ = self.current.compare_exchange(
                        used,
                        next,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    );
                }
                Err(classify(&err))
            }
            Err(_) => Err(RequestError::new(
                504,
                "query_timeout",
                "the store did not answer in time",
            )),
        }
    }
}

fn unavailable() -> RequestError {
    RequestError::new(
        503,
        "store_unavailable",
        "no ClickHouse shard is configured",
    )
}

/// A failed query as the client should see it: over a limit, or the store
/// unavailable. Details go to the log, not to the client.
fn classify(err: &clickhouse::error::Error) -> RequestError {
    let text = err.to_string();
    if text.contains("Code: 159") || matches!(err, clickhouse::error::Error::TimedOut) {
        return RequestError::new(
            504,
            "query_timeout",
            "the query ran past its time limit: narrow the timeframe or the filters",
        );
    }
    // 158: too many rows; 307: too many bytes; 241: over the memory limit.
    if ["Code: 158", "Code: 307", "Code: 241"]
        .iter()
        .any(|code| text.contains(code))
    {
        return RequestError::new(
            503,
            "query_too_large",
            "the query would read or hold more than allowed: narrow the timeframe or the filters",
        );
    }
    tracing::warn!(error = %text, "metric query failed");
    RequestError::new(
        503,
        "store_unavailable",
        "the metric store did not answer; retry",
    )
}
