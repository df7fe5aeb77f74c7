//! The metrics as ClickHouse queries: each metric is an expression over
//! partial aggregates ([`PARTIALS`]) that single views
//! ([`super::source`]) and sealed days' roll-ups ([`super::rollup`]) both
//! give, and each read (overview, breakdown, time series, error codes)
//! merges the two. Every value is bound by the client (which escapes it),
//! the database name as an identifier; a query's `sql_display()` shows the
//! text it sends.

use clickhouse::query::Query;
use clickhouse::Client;

use super::rollup::{Days, Grouping};
pub use super::source::{
    bind_view_source, fresh_seals_query, view_source, Filter, FilterValue, Scope, Select,
};
use super::source::{bind_views, views_subquery, FRESH_SEALS};

/// A metric's SQL: an expression over merged [`PARTIALS`], each named
/// in braces (`{p_ended}`).
#[derive(Debug, Clone, Copy)]
pub struct MetricSql {
    /// Column name in the result (= the [`Overview`](super::Overview) field).
    pub name: &'static str,
    /// The expression, over `{partial}`s.
    pub sql: &'static str,
}

/// The SQL of every [`Overview`](super::Overview) field, in field order.
pub const OVERVIEW_METRICS: &[MetricSql] = &[
    MetricSql {
        name: "views",
        sql: "{p_views}",
    },
    MetricSql {
        name: "unique_viewers",
        sql: "{p_viewers}",
    },
    MetricSql {
        name: "watch_time_ms",
        sql: "{p_watch}",
    },
    MetricSql {
        name: "playing_time_ms",
        sql: "{p_playing}",
    },
    MetricSql {
        name: "ended_in_range",
        sql: "{p_ended}",
    },
    MetricSql {
        name: "playback_failure_pct",
        sql: "if({p_ended} = 0, 0, 100 * {p_failed} / {p_ended})",
    },
    MetricSql {
        name: "exits_before_start_pct",
        sql: "if({p_ended} = 0, 0, 100 * {p_exits} / {p_ended})",
    },
    MetricSql {
        name: "startup_time_ms_p50",
        sql: "toUInt32({p_startup}[1])",
    },
    MetricSql {
        name: "startup_time_ms_p90",
        sql: "toUInt32({p_startup}[2])",
    },
    MetricSql {
        name: "startup_time_ms_p95",
        sql: "toUInt32({p_startup}[3])",
    },
    MetricSql {
        name: "rebuffer_pct",
        sql: "if({p_watch_ended} = 0, 0, 100 * {p_rebuffer_ms} / {p_watch_ended})",
    },
    MetricSql {
        name: "rebuffer_frequency_per_min",
        sql: "if({p_watch_ended} = 0, 0, {p_rebuffers} / ({p_watch_ended} / 60000))",
    },
    MetricSql {
        name: "rebuffer_duration_ms_per_view",
        sql: "if({p_ended} = 0, 0, {p_rebuffer_ms} / {p_ended})",
    },
    MetricSql {
        name: "avg_bitrate_kbps",
        sql: "if({p_playing_ended} = 0, 0, {p_bitrate} / {p_playing_ended})",
    },
];

/// A partial aggregate the metrics are made of, computed two ways that
/// merge into one: over single views (the per-view subquery's columns and
/// flags: `in_start`, the view counts as started in the range; `in_end`,
/// as ended in it) and over a sealed day's roll-up rows (`view_days`,
/// migration 0010; `{s}`: the row's views count as started in the range,
/// `{e}`: as ended in it). Sums, or states that merge exactly, so a read
/// taking some days from roll-ups and the rest view by view gives the
/// numbers one pass over every view would.
#[derive(Debug, Clone, Copy)]
pub struct Partial {
    pub name: &'static str,
    /// Over per-view rows.
    pub view: &'static str,
    /// Over roll-up rows.
    pub rollup: &'static str,
    /// The aggregate function merging its values.
    pub merge: &'static str,
}

/// Every partial, by name.
pub const PARTIALS: &[Partial] = &[
    Partial {
        name: "p_views",
        view: "countIf(in_start)",
        rollup: "sumIf(views, {s})",
        merge: "sum",
    },
    Partial {
        name: "p_viewers",
        view: "uniqStateIf(viewer, in_start)",
        rollup: "uniqMergeStateIf(viewers, {s})",
        merge: "uniqMerge",
    },
    Partial {
        name: "p_watch",
        view: "sumIf(watch_ms, in_start)",
        rollup: "sumIf(watch_ms, {s})",
        merge: "sum",
    },
    Partial {
        name: "p_playing",
        view: "sumIf(playing_ms, in_start)",
        rollup: "sumIf(playing_ms, {s})",
        merge: "sum",
    },
    Partial {
        name: "p_ended",
        view: "countIf(in_end)",
        rollup: "sumIf(views, {e})",
        merge: "sum",
    },
    Partial {
        name: "p_failed",
        view: "countIf(in_end AND fatal = 1)",
        rollup: "sumIf(fatal, {e})",
        merge: "sum",
    },
    // A sealed view has ended, so `ended` holds for every roll-up row.
    Partial {
        name: "p_exits",
        view: "countIf(in_end AND ended AND requested = 1 AND has_startup = 0 AND fatal = 0)",
        rollup: "sumIf(exits, {e})",
        merge: "sum",
    },
    Partial {
        name: "p_startup",
        view: "quantilesExactStateIf(0.5, 0.9, 0.95)(startup_ms, in_end AND has_startup = 1)",
        rollup: "quantilesExactMergeStateIf(0.5, 0.9, 0.95)(startup, {e})",
        merge: STARTUP_MERGE,
    },
    Partial {
        name: "p_watch_ended",
        view: "sumIf(watch_ms, in_end)",
        rollup: "sumIf(watch_ms, {e})",
        merge: "sum",
    },
    Partial {
        name: "p_rebuffer_ms",
        view: "sumIf(rebuffer_ms, in_end)",
        rollup: "sumIf(rebuffer_ms, {e})",
        merge: "sum",
    },
    Partial {
        name: "p_rebuffers",
        view: "sumIf(rebuffers, in_end)",
        rollup: "sumIf(rebuffers, {e})",
        merge: "sum",
    },
    Partial {
        name: "p_playing_ended",
        view: "sumIf(playing_ms, in_end)",
        rollup: "sumIf(playing_ms, {e})",
        merge: "sum",
    },
    // When the latest view that ended in the range ended (for errors).
    Partial {
        name: "p_last_seen",
        view: "maxIf(toUInt32(last), in_end)",
        rollup: "maxIf(toUInt32(last_seen), {e})",
        merge: "max",
    },
    Partial {
        name: "p_bitrate",
        view: "sumIf(bitrate_kbps * playing_ms, in_end)",
        rollup: "sumIf(bitrate_ms, {e})",
        merge: "sum",
    },
];

/// Merges the startup-time quantiles' states (every value kept, so exact).
const STARTUP_MERGE: &str = "quantilesExactMerge(0.5, 0.9, 0.95)";

impl MetricSql {
    /// The expression with each partial merged.
    fn merged(&self) -> String {
        PARTIALS.iter().fold(self.sql.to_owned(), |sql, p| {
            sql.replace(
                &format!("{{{}}}", p.name),
                &format!("{}({})", p.merge, p.name),
            )
        })
    }

    fn uses(&self, partial: &Partial) -> bool {
        self.sql.contains(&format!("{{{}}}", partial.name))
    }
}

/// The query returning one row with the [`OVERVIEW_METRICS`] columns
/// `scope` selects (an [`Overview`](super::Overview): with all of them,
/// `fetch_one` reads it; else [`fetch_overview`]), its values bound.
/// `sql_display()` shows its text.
pub fn overview_query(client: &Client, scope: &Scope<'_>) -> Query {
    let days = Days::of(scope, Grouping::None);
    let partials = partials(scope.select, Grouping::None);
    let views = format!(
        "SELECT {} FROM ({})",
        view_partials(&partials),
        views_subquery(scope, None, &days)
    );
    let sql = format!(
        "SELECT {} FROM ({})",
        overview_columns(scope.select),
        beside_rollup(views, &days, Grouping::None, scope, &partials)
    );
    bind_read(client.query(&sql), scope, &days, Grouping::None)
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
    let grouping = Grouping::Column(column);
    let days = Days::of(scope, grouping);
    let partials = partials(scope.select, grouping);
    let sql = format!(
        "SELECT key AS value, {} FROM ({}) \
         GROUP BY key HAVING sum(p_views) + sum(p_ended) > 0 \
         ORDER BY value LIMIT {MAX_GROUPS}",
        overview_columns(scope.select),
        by_column(scope, column, &days, &partials)
    );
    bind_read(client.query(&sql), scope, &days, grouping)
}

/// `partials` per value (`key`, as text) of `column`, from single views
/// and roll-ups, to merge.
fn by_column(
    scope: &Scope<'_>,
    column: &'static str,
    days: &Days,
    partials: &[&Partial],
) -> String {
    let views = format!(
        "SELECT CAST(group_value AS String) AS key, {} FROM ({}) GROUP BY key",
        view_partials(partials),
        views_subquery(scope, Some(column), days)
    );
    beside_rollup(views, days, Grouping::Column(column), scope, partials)
}

/// Most error codes [`errors_query`] returns.
pub const MAX_ERROR_CODES: usize = 1000;

/// One error code among the views of a range that ended in it.
#[derive(Debug, Clone, PartialEq, clickhouse::Row, serde::Serialize, serde::Deserialize)]
pub struct ErrorCode {
    pub code: String,
    /// Views whose latest error was this code.
    pub views: u64,
    /// Of them, those the error stopped.
    pub fatal: u64,
    /// The latest of those views' last events, epoch seconds.
    pub last_seen: u32,
}

/// The error codes ([`ErrorCode`]) of `scope`'s views that ended in its
/// range, as of each view's latest event, most views first (up to
/// [`MAX_ERROR_CODES`]).
pub fn errors_query(client: &Client, scope: &Scope<'_>) -> Query {
    let grouping = Grouping::Column("error_code");
    let days = Days::of(scope, grouping);
    let partials: Vec<&Partial> = PARTIALS
        .iter()
        .filter(|p| ["p_ended", "p_failed", "p_last_seen"].contains(&p.name))
        .collect();
    let sql = format!(
        "SELECT key AS code, sum(p_ended) AS views, sum(p_failed) AS fatal, \
                max(p_last_seen) AS last_seen FROM ({}) \
         WHERE key != '' GROUP BY key HAVING views > 0 \
         ORDER BY views DESC, code LIMIT {MAX_ERROR_CODES}",
        by_column(scope, "error_code", &days, &partials)
    );
    bind_read(client.query(&sql), scope, &days, grouping)
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
    let grouping = Grouping::Buckets(step);
    let days = Days::of(scope, grouping);
    let partials = partials(scope.select, grouping);
    let views = format!(
        "SELECT bucket, {partials} FROM ( \
           SELECT {VIEW_COLUMNS}, \
                  arrayJoin([(intDiv(toUInt32(start), {step}) * {step}, 1), \
                             (intDiv(toUInt32(last), {step}) * {step}, 2)]) AS b, \
                  toUInt64(tupleElement(b, 1)) AS bucket, \
                  (tupleElement(b, 2) = 1 AND was_start) AS in_start, \
                  (tupleElement(b, 2) = 2 AND was_end) AS in_end \
           FROM (SELECT {VIEW_COLUMNS}, start, last, in_start AS was_start, in_end AS was_end \
                 FROM ({views}))) \
         GROUP BY bucket",
        partials = view_partials(&partials),
        views = views_subquery(scope, None, &days)
    );
    let sql = format!(
        "SELECT toString(bucket) AS value, {} FROM ({}) \
         GROUP BY bucket HAVING sum(p_views) + sum(p_ended) > 0 \
         ORDER BY bucket",
        overview_columns(scope.select),
        beside_rollup(views, &days, grouping, scope, &partials)
    );
    bind_read(client.query(&sql), scope, &days, grouping)
}

/// The partials the metrics `select` names need (with `p_views` and, for
/// a grouped read, `p_ended`, which decide whether a group has views).
fn partials(select: Select<'_>, grouping: Grouping) -> Vec<&'static Partial> {
    let metrics: Vec<&MetricSql> = OVERVIEW_METRICS
        .iter()
        .filter(|m| select.includes(m.name))
        .collect();
    PARTIALS
        .iter()
        .filter(|p| {
            p.name == "p_views"
                || (p.name == "p_ended" && grouping != Grouping::None)
                || metrics.iter().any(|m| m.uses(p))
        })
        .collect()
}

/// `partials` over per-view rows, each named.
fn view_partials(partials: &[&Partial]) -> String {
    let columns: Vec<String> = partials
        .iter()
        .map(|p| format!("{} AS {}", p.view, p.name))
        .collect();
    columns.join(", ")
}

/// `views` (per-view partials) and, when `days` has any, the same
/// partials from their roll-ups, as one set of rows to merge.
fn beside_rollup(
    views: String,
    days: &Days,
    grouping: Grouping,
    scope: &Scope<'_>,
    partials: &[&Partial],
) -> String {
    match days.rollup_sql(grouping, scope.filters, partials, FRESH_SEALS) {
        Some(rollup) => format!("{views} UNION ALL {rollup}"),
        None => views,
    }
}

/// Binds the values of a read built by [`beside_rollup`]: the per-view
/// side's, then the roll-up side's.
fn bind_read(query: Query, scope: &Scope<'_>, days: &Days, grouping: Grouping) -> Query {
    let query = bind_views(query, scope);
    if *days == Days::None {
        return query;
    }
    Days::bind(
        query,
        scope.database,
        scope.property,
        grouping,
        scope.filters,
    )
}

/// `expr AS name, …` of the overview metrics `select` names (at least
/// `views`, so the list is never empty), over merged partials.
fn overview_columns(select: Select<'_>) -> String {
    let columns: Vec<String> = OVERVIEW_METRICS
        .iter()
        .filter(|m| select.includes(m.name) || m.name == "views")
        .map(|m| format!("{} AS {}", m.merged(), m.name))
        .collect();
    columns.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Range;

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
            sql.starts_with("SELECT sum(p_views) AS views, if("),
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
        assert!(!sql.contains("view_days"), "two filters: no roll-up: {sql}");
    }

    #[test]
    fn a_read_over_whole_days_takes_their_rollups() {
        let day = 86_400;
        let scope = Scope {
            database: "qoe",
            property: "p",
            range: Range {
                from: 10 * day + 7,
                to: 40 * day + 7,
            },
            now: 40 * day + 7,
            inactivity_timeout_s: 3600,
            max_view_s: 21_600,
            filters: &[Filter {
                column: "country",
                value: FilterValue::Text("US' --"),
                negate: true,
            }],
            select: Select::Only(&["unique_viewers"]),
        };
        let sql = overview_query(&Client::default(), &scope)
            .sql_display()
            .to_string();
        assert!(!sql.contains('?'), "every placeholder bound: {sql}");
        assert!(sql.contains("uniqMergeStateIf(viewers, "), "{sql}");
        assert!(
            sql.contains("FROM `qoe`.view_days WHERE property_id = 'p'"),
            "{sql}"
        );
        assert!(
            sql.contains(r"dim = 'country' AND value != toString('US\' --')"),
            "{sql}"
        );
        // Sealed rows only at the edges: up to a day after the start, and
        // from a day and a view's length before the end.
        assert!(
            sql.contains("view_start < toDateTime(864007 + 90000)"),
            "{sql}"
        );
        assert!(
            sql.contains("view_start >= toDateTime(greatest(3456007, 111600) - 111600)"),
            "{sql}"
        );

        let breakdown = breakdown_query(
            &Client::default(),
            &Scope {
                filters: &[],
                ..scope
            },
            "asn",
        )
        .sql_display()
        .to_string();
        assert!(
            breakdown.contains("dim = 'asn' AND (day, generation)"),
            "{breakdown}"
        );
        let filtered = breakdown_query(&Client::default(), &scope, "asn")
            .sql_display()
            .to_string();
        assert!(
            !filtered.contains("view_days"),
            "filter and group: {filtered}"
        );
    }
}
