//! The metrics as ClickHouse queries. Every value is bound by the client
//! (which escapes it), the database name as an identifier; a query's
//! `sql_display()` shows the text it sends.

use clickhouse::query::Query;
use clickhouse::sql::Identifier;
use clickhouse::Client;

use super::Range;

/// A metric's SQL, over the per-view rows of [`overview_query`].
#[derive(Debug, Clone, Copy)]
pub struct MetricSql {
    /// Column name in the result (= the [`Overview`](super::Overview) field).
    pub name: &'static str,
    /// The aggregate expression.
    pub sql: &'static str,
}

/// The SQL of every [`Overview`](super::Overview) field, in field order.
pub const OVERVIEW_METRICS: &[MetricSql] = &[
    MetricSql { name: "views", sql: "countIf(in_start)" },
    MetricSql { name: "unique_viewers", sql: "uniqIf(viewer, in_start)" },
    MetricSql { name: "watch_time_ms", sql: "sumIf(watch_ms, in_start)" },
    MetricSql { name: "playing_time_ms", sql: "sumIf(playing_ms, in_start)" },
    MetricSql { name: "ended_in_range", sql: "countIf(in_end)" },
    MetricSql {
        name: "playback_failure_pct",
        sql: "if(countIf(in_end) = 0, 0, 100 * countIf(in_end AND fatal = 1) / countIf(in_end))",
    },
    MetricSql {
        name: "exits_before_start_pct",
        sql: "if(countIf(in_end) = 0, 0, 100 * countIf(in_end AND ended AND requested = 1 AND has_startup = 0 AND fatal = 0) / countIf(in_end))",
    },
    MetricSql {
        name: "startup_time_ms_p50",
        sql: "toUInt32(quantileExactIf(0.5)(startup_ms, in_end AND has_startup = 1))",
    },
    MetricSql {
        name: "startup_time_ms_p90",
        sql: "toUInt32(quantileExactIf(0.9)(startup_ms, in_end AND has_startup = 1))",
    },
    MetricSql {
        name: "startup_time_ms_p95",
        sql: "toUInt32(quantileExactIf(0.95)(startup_ms, in_end AND has_startup = 1))",
    },
    MetricSql {
        name: "rebuffer_pct",
        sql: "if(sumIf(watch_ms, in_end) = 0, 0, 100 * sumIf(rebuffer_ms, in_end) / sumIf(watch_ms, in_end))",
    },
    MetricSql {
        name: "rebuffer_frequency_per_min",
        sql: "if(sumIf(watch_ms, in_end) = 0, 0, sumIf(rebuffers, in_end) / (sumIf(watch_ms, in_end) / 60000))",
    },
    MetricSql {
        name: "rebuffer_duration_ms_per_view",
        sql: "if(countIf(in_end) = 0, 0, sumIf(rebuffer_ms, in_end) / countIf(in_end))",
    },
    MetricSql {
        name: "avg_bitrate_kbps",
        sql: "if(sumIf(playing_ms, in_end) = 0, 0, sumIf(bitrate_kbps * playing_ms, in_end) / sumIf(playing_ms, in_end))",
    },
];

/// Where each view's latest row comes from: a sealed day's collapsed
/// rows (`views_sealed`, migration 0007) while the seal is fresh, else
/// `views FINAL`, which collapses a view's rows as the
/// `ReplacingMergeTree(seq)` merge would (correct before merges, a plain
/// scan after them); its `PREWHERE` skips the sealed days' rows before
/// `FINAL` reads them, safely, as a view's rows share one `view_start`.
/// Its columns are `{columns}`; its `?` placeholders are
/// bound by [`bind_view_source`]. Conditions on it belong outside: a
/// `WHERE` over it runs after `FINAL`, so a filter sees each view's latest
/// value (`schema/tests/clickhouse.rs` holds both servers to that).
const VIEW_SOURCE: &str = "SELECT {columns} FROM ?.views_sealed \
      WHERE property_id = ? AND view_start >= toDateTime(?) AND view_start < toDateTime(?) \
        AND (toDate(view_start), generation) IN ({fresh}) \
    UNION ALL \
    SELECT {columns} FROM ?.views FINAL \
      PREWHERE toDate(view_start) NOT IN (SELECT day FROM ({fresh})) \
      WHERE property_id = ? AND view_start >= toDateTime(?) AND view_start < toDateTime(?)";

/// A shard's fresh seals, `(day, latest generation)`: each day's latest seal,
/// when no part of the day's `views_local` partition was written in or
/// after the second the seal began (a later heartbeat, a replay or a merge
/// makes it stale until the seal job seals the day again). Runs on each
/// shard against its own tables.
const FRESH_SEALS: &str = "SELECT day, latest FROM ( \
        SELECT day, max(generation) AS latest, argMax(sealed_at, generation) AS began \
        FROM ?.sealed_days_local GROUP BY day) AS seals \
      ANY LEFT JOIN ( \
        SELECT toDate(concat(substring(partition, 1, 4), '-', substring(partition, 5, 2), '-', \
                             substring(partition, 7, 2))) AS day, \
               max(modification_time) AS modified \
        FROM system.parts WHERE database = ? AND table = 'views_local' AND active \
        GROUP BY day) AS parts USING day \
      WHERE modified < began";

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
    VIEW_SOURCE
        .replace("{fresh}", FRESH_SEALS)
        .replace("{columns}", &columns.join(", "))
}

/// Binds [`view_source`]'s values: `property`'s views that started in
/// `starts`.
pub fn bind_view_source(query: Query, database: &str, property: &str, starts: Range) -> Query {
    let range = |query: Query| query.bind(property).bind(starts.from).bind(starts.to);
    let fresh = |query: Query| query.bind(Identifier(database)).bind(database);
    let sealed = fresh(range(query.bind(Identifier(database))));
    range(fresh(sealed.bind(Identifier(database))))
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
/// `in_start`, `in_end`, `ended`. Its `?` placeholders are bound by
/// [`bind_views`], in order; `{source}` is the [`view_source`],
/// `{filters}` where [`Scope::filters`] go, and `{group}` a breakdown's
/// `group_value` column.
const VIEWS_SUBQUERY: &str = "SELECT *, \
        (start >= toDateTime(?) AND start < toDateTime(?)) AS in_start, \
        (last >= toDateTime(?) AND last < toDateTime(?)) AS in_end, \
        (final_event = 'viewend' OR fatal = 1 OR toDateTime(?) - last >= ?) AS ended \
    FROM ( \
      SELECT view_start AS start, viewer_id AS viewer, last_ts AS last, \
             last_event AS final_event, play_requested AS requested, started AS has_startup, \
             startup_time_ms AS startup_ms, error_fatal AS fatal, watch_time_ms AS watch_ms, \
             playing_time_ms AS playing_ms, rebuffer_count AS rebuffers, \
             rebuffer_duration_ms AS rebuffer_ms, avg_bitrate_kbps AS bitrate_kbps {group} \
      FROM ({source}) \
      WHERE 1 {filters})";

/// Binds [`VIEWS_SUBQUERY`]'s values (the client escapes them).
fn bind_views(query: Query, scope: &Scope<'_>) -> Query {
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
    let query = bind_view_source(query, scope.database, scope.property, starts);
    Filter::bind_all(query, scope.filters)
}

/// The per-view subquery with `scope`'s filters in place and, for a
/// breakdown, each view's latest value of `group` as `group_value`.
fn views_subquery(scope: &Scope<'_>, group: Option<&'static str>) -> String {
    let mut columns: Vec<&str> = VIEW_COLUMNS_READ.to_vec();
    columns.extend(group);
    let columns = Filter::with_columns(&columns, scope.filters);
    let group = group
        .map(|column| format!(", {column} AS group_value"))
        .unwrap_or_default();
    VIEWS_SUBQUERY
        .replace("{source}", &view_source(&columns))
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
    /// Which [`OVERVIEW_METRICS`] the query computes.
    pub select: Select<'a>,
}

/// Which overview metrics a query computes: each costs time over millions
/// of views, and a request usually needs a few.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Select<'a> {
    All,
    /// These [`OVERVIEW_METRICS`] names; the others read 0.
    Only(&'a [&'a str]),
}

impl Select<'_> {
    fn includes(&self, name: &str) -> bool {
        match self {
            Select::All => true,
            Select::Only(names) => names.contains(&name),
        }
    }
}

/// The query returning one row with the [`OVERVIEW_METRICS`] columns
/// `scope` selects (an [`Overview`](super::Overview): with all of them,
/// `fetch_one` reads it; else [`fetch_overview`]), its values bound.
/// `sql_display()` shows its text.
pub fn overview_query(client: &Client, scope: &Scope<'_>) -> Query {
    let sql = format!(
        "SELECT {} FROM ({})",
        overview_columns(scope.select),
        views_subquery(scope, None)
    );
    bind_views(client.query(&sql), scope)
}

/// Runs [`overview_query`], whatever it selects.
pub async fn fetch_overview(query: Query) -> Result<super::Overview, clickhouse::error::Error> {
    let rows = fetch_json_rows(query).await?;
    Ok(rows.into_iter().next().unwrap_or_default())
}

/// Most groups a breakdown returns.
pub const MAX_GROUPS: usize = 100_000;

/// One value of a breakdown's dimension and the overview of its views.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct Group {
    pub value: String,
    #[serde(flatten)]
    pub overview: super::Overview,
}

/// Runs [`breakdown_query`] or [`timeseries_query`]: one [`Group`] per
/// value, in the query's order.
/// (Read as JSON lines: a group row is the overview plus its value, and
/// serde's `flatten` is not available to RowBinary.)
pub async fn fetch_breakdown(query: Query) -> Result<Vec<Group>, clickhouse::error::Error> {
    fetch_json_rows(query).await
}

/// The rows of `query`, read as JSON lines (for rows RowBinary cannot
/// read: flattened or of columns known only at run time).
pub async fn fetch_json_rows<T: serde::de::DeserializeOwned>(
    query: Query,
) -> Result<Vec<T>, clickhouse::error::Error> {
    let mut cursor = query
        .with_setting("output_format_json_quote_64bit_integers", "0")
        .fetch_bytes("JSONEachRow")?;
    let bytes = cursor.collect().await?;
    bytes
        .split(|b| *b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| {
            serde_json::from_slice(line)
                .map_err(|e| clickhouse::error::Error::Custom(format!("metric row: {e}")))
        })
        .collect()
}

/// One row per value of `column` among the views of `scope` (each view
/// judged by its latest value): the value as text, then every
/// [`OVERVIEW_METRICS`] column for that value's views, ordered by value
/// (run it with [`fetch_breakdown`]). Values with no view in the range
/// (only in the look-back) are left out.
pub fn breakdown_query(client: &Client, scope: &Scope<'_>, column: &'static str) -> Query {
    let sql = format!(
        "SELECT toString(group_value) AS value, {} FROM ({}) \
         GROUP BY group_value HAVING countIf(in_start) + countIf(in_end) > 0 \
         ORDER BY value LIMIT {MAX_GROUPS}",
        overview_columns(scope.select),
        views_subquery(scope, Some(column))
    );
    bind_views(client.query(&sql), scope)
}

/// The per-view columns the overview metrics read, besides `in_start`
/// and `in_end`.
const VIEW_COLUMNS: &str = "viewer, requested, has_startup, startup_ms, fatal, watch_ms, \
                            playing_ms, rebuffers, rebuffer_ms, bitrate_kbps, ended";

/// One row per `step_s`-second bucket (aligned to the epoch, so days are
/// UTC days) that has views of `scope`: the bucket's start (epoch
/// seconds, as text in `value`), then every [`OVERVIEW_METRICS`] column.
/// A view counts in the bucket it started in for the engagement metrics
/// and in the bucket it ended in for the QoE ones — the same rule as a
/// whole range, so each bucket equals the overview of its part of the
/// range. Run it with [`fetch_breakdown`]; rows come in time order.
pub fn timeseries_query(client: &Client, scope: &Scope<'_>, step_s: u32) -> Query {
    let step = step_s.max(1);
    let sql = format!(
        "SELECT toString(bucket) AS value, {columns} FROM ( \
           SELECT {VIEW_COLUMNS}, \
                  arrayJoin([(intDiv(toUInt32(start), {step}) * {step}, 1), \
                             (intDiv(toUInt32(last), {step}) * {step}, 2)]) AS b, \
                  tupleElement(b, 1) AS bucket, \
                  (tupleElement(b, 2) = 1 AND was_start) AS in_start, \
                  (tupleElement(b, 2) = 2 AND was_end) AS in_end \
           FROM (SELECT {VIEW_COLUMNS}, start, last, in_start AS was_start, in_end AS was_end \
                 FROM ({views}))) \
         GROUP BY bucket HAVING countIf(in_start) + countIf(in_end) > 0 \
         ORDER BY bucket",
        columns = overview_columns(scope.select),
        views = views_subquery(scope, None)
    );
    bind_views(client.query(&sql), scope)
}

/// `expr AS name, …` of the overview metrics `select` names (at least
/// `views`, so the list is never empty).
fn overview_columns(select: Select<'_>) -> String {
    let columns: Vec<String> = OVERVIEW_METRICS
        .iter()
        .filter(|m| select.includes(m.name) || m.name == "views")
        .map(|m| format!("{} AS {}", m.sql, m.name))
        .collect();
    columns.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_bound_and_escaped() {
        let scope = Scope {
            database: "qoe",
            property: "it's \\ here",
            range: Range { from: 100, to: 200 },
            now: 300,
            inactivity_timeout_s: 3600,
            max_view_s: 50,
            filters: &[
                Filter {
                    column: "country",
                    value: FilterValue::Text("US' OR 1=1 --"),
                    negate: false,
                },
                Filter {
                    column: "asn",
                    value: FilterValue::Number(3320),
                    negate: true,
                },
            ],
            select: Select::Only(&["rebuffer_pct"]),
        };
        let sql = overview_query(&Client::default(), &scope)
            .sql_display()
            .to_string();
        assert!(!sql.contains('?'), "every placeholder bound: {sql}");
        assert!(
            sql.starts_with("SELECT countIf(in_start) AS views, if("),
            "{sql}"
        );
        assert!(
            sql.contains(") AS rebuffer_pct FROM ("),
            "only what is selected: {sql}"
        );
        assert!(sql.contains("FROM `qoe`.views FINAL"), "{sql}");
        assert!(sql.contains("FROM `qoe`.views_sealed WHERE"), "{sql}");
        assert!(sql.contains(r"property_id = 'it\'s \\ here'"), "{sql}");
        assert!(sql.contains("view_start >= toDateTime(50)"), "{sql}");
        assert!(sql.contains("toDateTime(300) - last >= 3600"), "{sql}");
        assert!(
            sql.contains(r"WHERE 1  AND country = 'US\' OR 1=1 --' AND asn != 3320)"),
            "{sql}"
        );
    }
}
