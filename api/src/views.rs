//! Single views: `/v1/video-views` lists a property's views (newest first,
//! filtered like the metrics), `/v1/video-views/{view_id}` gives one
//! view's facts and its events in `seq` order.

use clickhouse::sql::Identifier;
use clickhouse::Row;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use qoe_schema::metrics::{bind_view_source, view_source, Filter, Range};

use crate::error::RequestError;
use crate::params::Common;
use crate::store::{Read, Store};

/// A view's facts, as of its latest event.
#[derive(Debug, Row, Serialize, Deserialize)]
pub struct ViewRow {
    pub view_id: String,
    pub viewer_id: String,
    /// Epoch seconds.
    pub view_start: u32,
    /// Time of the latest event, epoch seconds.
    pub last_event_at: u32,
    pub last_event: String,
    pub video_id: String,
    pub video_title: String,
    pub player_name: String,
    pub cdn: String,
    pub country: String,
    pub device_type: String,
    pub watch_time_ms: u64,
    pub playing_time_ms: u64,
    /// 0 when the view never started playing (see `started`).
    pub startup_time_ms: u32,
    pub started: u8,
    pub rebuffer_count: u32,
    pub rebuffer_duration_ms: u64,
    pub avg_bitrate_kbps: u32,
    pub error_fatal: u8,
    pub error_code: String,
}

/// One event of a view's timeline.
#[derive(Debug, Row, Serialize, Deserialize)]
pub struct EventRow {
    pub seq: u32,
    pub event: String,
    /// Epoch seconds.
    pub ts: u32,
    pub state: String,
    pub watch_time_ms: u64,
    pub playing_time_ms: u64,
    pub rebuffer_count: u32,
    pub rebuffer_duration_ms: u64,
    pub bitrate_kbps: u32,
    pub playhead_ms: u64,
    pub buffer_length_ms: u64,
    pub error_code: String,
}

/// Most events a timeline returns.
const MAX_EVENTS: u32 = 10_000;

/// The `views` columns a view's facts show.
const FACT_COLUMNS: &[&str] = &[
    "view_id",
    "viewer_id",
    "view_start",
    "last_ts",
    "last_event",
    "video_id",
    "video_title",
    "player_name",
    "cdn",
    "country",
    "device_type",
    "watch_time_ms",
    "playing_time_ms",
    "startup_time_ms",
    "started",
    "rebuffer_count",
    "rebuffer_duration_ms",
    "avg_bitrate_kbps",
    "error_fatal",
    "error_code",
];

/// The facts ([`ViewRow`]) of `property`'s views that started in a range
/// (`schema::metrics::view_source`, bound by `bind_view_source`), as of
/// each view's latest row, matching `condition` (further ` AND …` over
/// `columns`, with its own placeholders).
fn views_sql(columns: &[&str], condition: &str) -> String {
    format!(
        "SELECT view_id, viewer_id, toUInt32(view_start) AS view_start, \
                toUInt32(last_ts) AS last_event_at, last_event, video_id, video_title, \
                player_name, cdn, country, device_type, watch_time_ms, playing_time_ms, \
                startup_time_ms, started, rebuffer_count, rebuffer_duration_ms, \
                avg_bitrate_kbps, error_fatal, error_code \
         FROM ({}) WHERE 1 {condition}",
        view_source(columns)
    )
}

/// The range of view starts `keys` cover, `None` when empty.
fn span_of(keys: &[(String, u32)]) -> Option<Range> {
    let first = keys.iter().map(|(_, start)| *start).min()?;
    let last = keys.iter().map(|(_, start)| *start).max()?;
    Some(Range {
        from: first,
        to: last + 1,
    })
}

impl Store {
    /// A page of `property`'s views that started in `read`'s range, newest
    /// first, and how many there are.
    pub async fn list_views(
        &self,
        read: &Read<'_>,
        viewer: Option<&str>,
        limit: usize,
        offset: usize,
    ) -> Result<(Vec<ViewRow>, u64), RequestError> {
        let count = async {
            match viewer {
                // The `views` metric, which roll-ups answer.
                None => Ok(self.overview(read, &["views"]).await?.views),
                Some(_) => self.count_views(read, viewer).await,
            }
        };
        let (keys, total) = tokio::try_join!(self.page_keys(read, viewer, limit, offset), count)?;
        let Some(starts) = span_of(&keys) else {
            return Ok((Vec::new(), total));
        };
        let ids: Vec<&str> = keys.iter().map(|(id, _)| id.as_str()).collect();
        let rows = self
            .facts(
                read.route,
                read.property,
                starts,
                "AND has(?, view_id)",
                &ids,
            )
            .await?;
        Ok((rows, total))
    }

    /// The keys (`view_id`, start) of a page of `read`'s views, newest
    /// first. The newest views are read first: the last hour, then the
    /// last day, then the whole range, stopping at the first window that
    /// holds the page (all its views are newer than any outside it).
    async fn page_keys(
        &self,
        read: &Read<'_>,
        viewer: Option<&str>,
        limit: usize,
        offset: usize,
    ) -> Result<Vec<(String, u32)>, RequestError> {
        let Range { from, to } = read.range;
        let sql = format!(
            "SELECT view_id, toUInt32(view_start) FROM ({}) \
             ORDER BY view_start DESC, view_id LIMIT {limit} OFFSET {offset}",
            self.keys_sql(read, viewer)
        );
        // The last window is the whole range, which always ends the loop.
        for window_s in [3600, 86_400, u32::MAX] {
            let window = Range {
                from: to.saturating_sub(window_s).max(from),
                to,
            };
            let query = self.bind_keys(&sql, read, window, viewer)?;
            let keys = self
                .timed(read.route, query.fetch_all::<(String, u32)>())
                .await?;
            if keys.len() == limit || window.from == from {
                return Ok(keys);
            }
        }
        Ok(Vec::new())
    }

    /// How many of `read`'s views `viewer` watched.
    async fn count_views(
        &self,
        read: &Read<'_>,
        viewer: Option<&str>,
    ) -> Result<u64, RequestError> {
        let sql = format!("SELECT count() FROM ({})", self.keys_sql(read, viewer));
        let query = self.bind_keys(&sql, read, read.range, viewer)?;
        self.timed(read.route, query.fetch_one::<u64>()).await
    }

    /// The keys of `read`'s views (reading only what the filters need: the
    /// facts of every view in range would not fit in memory at millions
    /// of views), bound by [`Store::bind_keys`].
    fn keys_sql(&self, read: &Read<'_>, viewer: Option<&str>) -> String {
        let mut conditions = Filter::conditions(read.filters);
        let mut key_columns = Filter::with_columns(&["view_id", "view_start"], read.filters);
        if viewer.is_some() {
            conditions.push_str(" AND viewer_id = ?");
            key_columns.push("viewer_id");
        }
        format!(
            "SELECT view_id, view_start FROM ({}) WHERE 1 {conditions}",
            view_source(&key_columns)
        )
    }

    fn bind_keys(
        &self,
        sql: &str,
        read: &Read<'_>,
        starts: Range,
        viewer: Option<&str>,
    ) -> Result<clickhouse::query::Query, RequestError> {
        let q = bind_view_source(
            self.client()?.query(sql),
            self.database(),
            read.property,
            starts,
        );
        let q = Filter::bind_all(q, read.filters);
        Ok(match viewer {
            Some(v) => q.bind(v),
            None => q,
        })
    }

    /// The facts of the views of `property` that started in `starts`
    /// and match `condition` (one placeholder, bound to `value`), newest
    /// first. A narrow `starts` keeps the read to a few granules.
    async fn facts(
        &self,
        route: &str,
        property: &str,
        starts: Range,
        condition: &str,
        value: impl serde::Serialize,
    ) -> Result<Vec<ViewRow>, RequestError> {
        let facts = views_sql(FACT_COLUMNS, condition);
        let query = self
            .client()?
            .query(&format!("{facts} ORDER BY view_start DESC, view_id"));
        let query = bind_view_source(query, self.database(), property, starts).bind(value);
        self.timed(route, query.fetch_all::<ViewRow>()).await
    }

    /// One view's facts and events, if `property` has a view `view_id`
    /// that started within `range`.
    pub async fn view(
        &self,
        property: &str,
        view_id: &str,
        range: Range,
    ) -> Result<Option<(ViewRow, Vec<EventRow>)>, RequestError> {
        let client = self.client()?;
        // Where the view starts (a scan of two columns, no FINAL), then its
        // facts from that second alone.
        let start = client
            .query(
                "SELECT toUInt32(view_start) FROM ?.views \
                 WHERE property_id = ? AND view_id = ? \
                   AND view_start >= toDateTime(?) AND view_start < toDateTime(?) LIMIT 1",
            )
            .bind(Identifier(self.database()))
            .bind(property)
            .bind(view_id)
            .bind(range.from)
            .bind(range.to);
        let Some(start) = self
            .timed("video_view", start.fetch_optional::<u32>())
            .await?
        else {
            return Ok(None);
        };
        let second = Range {
            from: start,
            to: start + 1,
        };
        // Replays leave exact duplicates until merges: one row per seq.
        let events = client
            .query(&format!(
                "SELECT DISTINCT seq, event, toUInt32(ts) AS ts, state, watch_time_ms, \
                 playing_time_ms, rebuffer_count, rebuffer_duration_ms, bitrate_kbps, \
                 playhead_ms, buffer_length_ms, error_code \
                 FROM ?.heartbeats WHERE property_id = ? AND view_id = ? \
                 ORDER BY seq LIMIT {MAX_EVENTS}"
            ))
            .bind(Identifier(self.database()))
            .bind(property)
            .bind(view_id);
        let (facts, events) = tokio::try_join!(
            self.facts("video_view", property, second, "AND view_id = ?", view_id),
            self.timed("video_view", events.fetch_all::<EventRow>()),
        )?;
        Ok(facts.into_iter().next().map(|f| (f, events)))
    }
}

/// `/v1/errors`: each error code with its views, their share of the views
/// that ended in the timeframe, and when it was last seen.
pub async fn errors(
    store: &Store,
    property: &str,
    c: &Common,
    now: u32,
) -> Result<(Value, usize), RequestError> {
    let filters = c.filters();
    let read = c.read("errors", property, &filters, now);
    let (codes, ended) = store.errors(&read).await?;
    let rows: Vec<Value> = codes
        .iter()
        .map(|e| {
            json!({
                "code": e.code,
                "views": e.views,
                "fatal": e.fatal,
                "percentage": 100.0 * e.views as f64 / ended.max(1) as f64,
                "last_seen": e.last_seen,
            })
        })
        .collect();
    Ok((json!(rows), codes.len()))
}

/// `/v1/video-views`: a page of views, `viewer_id` optional.
pub async fn list(
    store: &Store,
    property: &str,
    c: &Common,
    pairs: &[(String, String)],
    now: u32,
) -> Result<(Value, usize), RequestError> {
    let (limit, page) = crate::params::paging(pairs)?;
    let viewer = pairs
        .iter()
        .find(|(k, _)| k == "viewer_id")
        .map(|(_, v)| v.as_str());
    let filters = c.filters();
    let read = c.read("video_views", property, &filters, now);
    let (rows, total) = store
        .list_views(&read, viewer, limit, (page - 1) * limit)
        .await?;
    Ok((json!(rows), total as usize))
}

/// `/v1/video-views/{view_id}`: the view's facts and its events.
pub async fn one(
    store: &Store,
    property: &str,
    view_id: &str,
    retention_s: u32,
    now: u32,
) -> Result<Value, RequestError> {
    let range = Range {
        from: now.saturating_sub(retention_s),
        to: now.saturating_add(3600),
    };
    match store.view(property, view_id, range).await? {
        Some((facts, events)) => Ok(json!({ "view": facts, "events": events })),
        None => Err(RequestError::new(
            404,
            "unknown_view",
            format!("no view `{view_id}` of this property in the retained data"),
        )),
    }
}
