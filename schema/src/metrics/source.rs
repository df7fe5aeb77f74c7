//! Where a metric read's views come from: each view's latest row, from a
//! fresh seal or collapsed at read time, with the per-view flags the
//! metrics count by; the filters and the scope of a read. Every value is
//! bound by the client (which escapes it), the database name as an
//! identifier.

use clickhouse::query::Query;
use clickhouse::sql::Identifier;
use clickhouse::Client;

use super::rollup::Days;
use super::Range;

/// Where each view's latest row comes from: a sealed day's collapsed
/// rows (`views_sealed`, migration 0007) while the seal is fresh, else
/// `views FINAL`, which collapses a view's rows as the
/// `ReplacingMergeTree(seq)` merge would (correct before merges, a plain
/// scan after them); its `PREWHERE` keeps the other days' rows (the
/// shard's days with data, less the fresh seals: a set the primary key
/// can use, where `NOT IN` would read every day's `view_start`) before
/// `FINAL` reads them, safely, as a view's rows share one `view_start`.
/// A view that started before the range proper (`active_from`) is read
/// only if its latest event is at or after it: it may end in the range,
/// the others count nowhere. The collapsed side picks those views by
/// `view_id` before `FINAL`, so it keeps all or none of a view's rows
/// (a view's `last_ts` need not rise with `seq`), and the hours of views
/// that ended before the range are not collapsed again.
/// Its columns are `{columns}` and `from_seal` (1 for a sealed row);
/// `{beside}` may leave out sealed rows a roll-up answers
/// ([`Days::beside_rollups`]). Its `?` placeholders are
/// bound by [`bind_view_source`]. Conditions on it belong outside: a
/// `WHERE` over it runs after `FINAL`, so a filter sees each view's latest
/// value (`schema/tests/clickhouse.rs` holds both servers to that).
const VIEW_SOURCE: &str = "SELECT {columns}, 1 AS from_seal FROM ?.views_sealed \
      WHERE property_id = ? AND view_start >= toDateTime(?) AND view_start < toDateTime(?) \
        AND (view_start >= toDateTime(?) OR last_ts >= toDateTime(?)) \
        AND (toDate(view_start), generation) IN ({fresh}){beside} \
    UNION ALL \
    SELECT {columns}, 0 AS from_seal FROM ?.views FINAL \
      PREWHERE toDate(view_start) IN (SELECT day FROM ({unsealed})) \
        AND (view_start >= toDateTime(?) OR view_id IN ( \
          SELECT view_id FROM ?.views_local \
          WHERE property_id = ? AND view_start >= toDateTime(?) AND view_start < toDateTime(?) \
            AND last_ts >= toDateTime(?))) \
      WHERE property_id = ? AND view_start >= toDateTime(?) AND view_start < toDateTime(?)";

/// A shard's fresh seals, `(day, latest generation)`: each day's latest seal
/// with a roll-up, when no part of the day's `views_local` partition was
/// written in or after the second the seal began (a later heartbeat, a
/// replay or a merge makes it stale until the seal job seals the day
/// again). Runs on each shard against its own tables.
pub(super) const FRESH_SEALS: &str = "SELECT day, latest FROM ( \
        SELECT day, max(generation) AS latest, argMax(sealed_at, generation) AS began \
        FROM ?.sealed_days_local WHERE rolled = 1 GROUP BY day) AS seals \
      ANY LEFT JOIN ( \
        SELECT toDate(concat(substring(partition, 1, 4), '-', substring(partition, 5, 2), '-', \
                             substring(partition, 7, 2))) AS day, \
               max(modification_time) AS modified \
        FROM system.parts WHERE database = ? AND table = 'views_local' AND active \
        GROUP BY day) AS parts USING day \
      WHERE modified < began";

/// A shard's days with `views_local` data and no fresh seal.
const UNSEALED_DAYS: &str = "SELECT day FROM ( \
        SELECT toDate(concat(substring(partition, 1, 4), '-', substring(partition, 5, 2), '-', \
                             substring(partition, 7, 2))) AS day \
        FROM system.parts WHERE database = ? AND table = 'views_local' AND active \
        GROUP BY day) \
      WHERE day NOT IN (SELECT day FROM ({fresh}))";

/// A shard's fresh seals, `(day start, generation)` ([`FRESH_SEALS`], to
/// run on one shard).
pub fn fresh_seals_query(client: &Client, database: &str) -> Query {
    client
        .query(&format!(
            "SELECT toUInt32(toDateTime(day)), latest FROM ({FRESH_SEALS}) ORDER BY day"
        ))
        .bind(Identifier(database))
        .bind(database)
}

/// [`VIEW_SOURCE`] reading `columns` (`views` columns, from fixed tables,
/// never user text).
pub fn view_source(columns: &[&str]) -> String {
    view_source_beside(columns, &Days::None)
}

/// [`view_source`] without the sealed rows the roll-ups of `days` answer.
fn view_source_beside(columns: &[&str], days: &Days) -> String {
    VIEW_SOURCE
        .replace("{unsealed}", UNSEALED_DAYS)
        .replace("{fresh}", FRESH_SEALS)
        .replace("{beside}", &days.beside_rollups())
        .replace("{columns}", &columns.join(", "))
}

/// Binds [`view_source`]'s values: `property`'s views that started in
/// `starts`.
pub fn bind_view_source(query: Query, database: &str, property: &str, starts: Range) -> Query {
    bind_active_view_source(query, database, property, starts, starts.from)
}

/// Binds [`view_source`]'s values: `property`'s views that started in
/// `starts`, those that started before `active_from` only if their latest
/// event is at or after it.
fn bind_active_view_source(
    query: Query,
    database: &str,
    property: &str,
    starts: Range,
    active_from: u32,
) -> Query {
    let range = |query: Query| query.bind(property).bind(starts.from).bind(starts.to);
    let fresh = |query: Query| query.bind(Identifier(database)).bind(database);
    let sealed = range(query.bind(Identifier(database)))
        .bind(active_from)
        .bind(active_from);
    let unsealed = fresh(fresh(sealed).bind(Identifier(database)).bind(database));
    let active = unsealed
        .bind(active_from)
        .bind(Identifier(database))
        .bind(property)
        .bind(starts.from)
        .bind(active_from)
        .bind(active_from);
    range(active)
}

/// The `views` columns the per-view subquery reads, before a breakdown's
/// and the filters' own.
const VIEW_COLUMNS_READ: &[&str] = &[
    "view_start",
    "viewer_id",
    "last_ts",
    "last_event",
    "play_requested",
    "started",
    "startup_time_ms",
    "error_fatal",
    "watch_time_ms",
    "playing_time_ms",
    "rebuffer_count",
    "rebuffer_duration_ms",
    "avg_bitrate_kbps",
];

/// The per-view subquery: one row per view of `property` that may matter
/// for `range` (started in it, or started up to `max_view_s` before it and
/// possibly ending in it), each its latest ([`VIEW_SOURCE`]).
///
/// Its columns (named apart from the table's, as ClickHouse resolves
/// aliases before columns): `start`, `viewer`, `last`, `final_event`,
/// `requested`, `has_startup`, `startup_ms`, `fatal`, `watch_ms`,
/// `playing_ms`, `rebuffers`, `rebuffer_ms`, `bitrate_kbps`, and the flags
/// `in_start`, `in_end` (each off for a sealed view whose day a roll-up
/// counts: `{start_rolled}`, `{end_rolled}`), `ended`. Its `?`
/// placeholders are bound by [`bind_views`], in order; `{source}` is the
/// [`view_source`], `{filters}` where [`Scope::filters`] go, and `{group}`
/// a breakdown's `group_value` column.
const VIEWS_SUBQUERY: &str = "SELECT *, \
        (start >= toDateTime(?) AND start < toDateTime(?) \
         AND NOT (sealed AND {start_rolled})) AS in_start, \
        (last >= toDateTime(?) AND last < toDateTime(?) \
         AND NOT (sealed AND {end_rolled})) AS in_end, \
        (final_event = 'viewend' OR fatal = 1 OR toDateTime(?) - last >= ?) AS ended \
    FROM ( \
      SELECT view_start AS start, viewer_id AS viewer, last_ts AS last, \
             last_event AS final_event, play_requested AS requested, started AS has_startup, \
             startup_time_ms AS startup_ms, error_fatal AS fatal, watch_time_ms AS watch_ms, \
             playing_time_ms AS playing_ms, rebuffer_count AS rebuffers, \
             rebuffer_duration_ms AS rebuffer_ms, avg_bitrate_kbps AS bitrate_kbps, \
             from_seal AS sealed {group} \
      FROM ({source}) \
      WHERE 1 {filters})";

/// Binds [`VIEWS_SUBQUERY`]'s values (the client escapes them).
pub(super) fn bind_views(query: Query, scope: &Scope<'_>) -> Query {
    let Range { from, to } = scope.range;
    let query = query
        .bind(from)
        .bind(to)
        .bind(from)
        .bind(to)
        .bind(scope.now)
        .bind(scope.inactivity_timeout_s);
    let starts = Range {
        from: from.saturating_sub(scope.max_view_s),
        to,
    };
    let query = bind_active_view_source(query, scope.database, scope.property, starts, from);
    Filter::bind_all(query, scope.filters)
}

/// The per-view subquery with `scope`'s filters in place, beside the
/// roll-ups of `days`, and, for a breakdown, each view's latest value of
/// `group` as `group_value`.
pub(super) fn views_subquery(
    scope: &Scope<'_>,
    group: Option<&'static str>,
    days: &Days,
) -> String {
    let mut columns: Vec<&str> = VIEW_COLUMNS_READ.to_vec();
    columns.extend(group);
    let columns = Filter::with_columns(&columns, scope.filters);
    let group = group
        .map(|column| format!(", {column} AS group_value"))
        .unwrap_or_default();
    VIEWS_SUBQUERY
        .replace("{source}", &view_source_beside(&columns, days))
        .replace("{start_rolled}", &days.contain("toDate(start)"))
        .replace("{end_rolled}", &days.contain("toDate(last)"))
        .replace("{filters}", &Filter::conditions(scope.filters))
        .replace("{group}", &group)
}

/// A condition on a view's dimension, as of its latest event: `column`
/// (a `views` column, from the caller's fixed table, never user text)
/// equals `value`, or differs from it when `negate`.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter<'a> {
    pub column: &'static str,
    pub value: FilterValue<'a>,
    pub negate: bool,
}

/// A filter's value, bound as a query parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum FilterValue<'a> {
    Text(&'a str),
    Number(u64),
}

impl Filter<'_> {
    /// ` AND …` of `filters`, to follow a `WHERE` over a [`view_source`]
    /// (so each condition sees a view's latest value), or nothing; bind its
    /// values with [`Filter::bind_all`].
    pub fn conditions(filters: &[Filter<'_>]) -> String {
        filters
            .iter()
            .map(|f| {
                let op = if f.negate { "!=" } else { "=" };
                format!(" AND {} {op} ?", f.column)
            })
            .collect()
    }

    /// `columns` and the columns `filters` name, once each: what a
    /// [`view_source`] must read for them.
    pub fn with_columns<'c>(columns: &[&'c str], filters: &[Filter<'_>]) -> Vec<&'c str> {
        let mut all: Vec<&str> = columns.to_vec();
        all.extend(filters.iter().map(|f| f.column));
        all.sort_unstable();
        all.dedup();
        all
    }

    /// Binds the values of [`Filter::conditions`]' placeholders, in order.
    pub fn bind_all(query: Query, filters: &[Filter<'_>]) -> Query {
        filters
            .iter()
            .fold(query, |query, filter| filter.value.bind_to(query))
    }
}

impl FilterValue<'_> {
    fn bind_to(&self, query: Query) -> Query {
        match self {
            FilterValue::Text(s) => query.bind(*s),
            FilterValue::Number(n) => query.bind(*n),
        }
    }
}

/// What an overview query covers: one property, a range, "now" (for the
/// inactivity timeout), and how long a view may last (how far before the
/// range a view may have started and still end in it).
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    pub database: &'a str,
    pub property: &'a str,
    pub range: Range,
    pub now: u32,
    pub inactivity_timeout_s: u64,
    pub max_view_s: u32,
    /// Only views matching all of these.
    pub filters: &'a [Filter<'a>],
    /// Which [`OVERVIEW_METRICS`](super::sql::OVERVIEW_METRICS) the query computes.
    pub select: Select<'a>,
}

/// Which overview metrics a query computes: each costs time over millions
/// of views, and a request usually needs a few.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Select<'a> {
    All,
    /// These [`OVERVIEW_METRICS`](super::sql::OVERVIEW_METRICS) names; the others read 0.
    Only(&'a [&'a str]),
}

impl Select<'_> {
    pub(super) fn includes(&self, name: &str) -> bool {
        match self {
            Select::All => true,
            Select::Only(names) => names.contains(&name),
        }
    }
}
