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

/// The per-view subquery: one row per view of `property` that may matter
/// for `range` (started in it, or started up to `max_view_s` before it and
/// possibly ending in it), each column its highest-`seq` value. `argMax`
/// rather than `FINAL`, because it is correct before merges and lets
/// conditions on non-key columns apply after collapsing.
///
/// Its columns (named apart from the table's, as ClickHouse resolves
/// aliases before columns): `view_id`, `start`, `viewer`, `last`,
/// `final_event`, `requested`, `has_startup`, `startup_ms`, `fatal`,
/// `watch_ms`, `playing_ms`, `rebuffers`, `rebuffer_ms`, `bitrate_kbps`, and
/// the flags `in_start`, `in_end`, `ended`. Its `?` placeholders are bound
/// by [`bind_views`], in order; `{having}` is where [`Scope::filters`] go.
const VIEWS_SUBQUERY: &str = "SELECT *, \
        (start >= toDateTime(?) AND start < toDateTime(?)) AS in_start, \
        (last >= toDateTime(?) AND last < toDateTime(?)) AS in_end, \
        (final_event = 'viewend' OR fatal = 1 OR toDateTime(?) - last >= ?) AS ended \
    FROM ( \
      SELECT view_id, view_start AS start, \
             argMax(viewer_id, seq) AS viewer, argMax(last_ts, seq) AS last, \
             argMax(last_event, seq) AS final_event, argMax(play_requested, seq) AS requested, \
             argMax(started, seq) AS has_startup, argMax(startup_time_ms, seq) AS startup_ms, \
             argMax(error_fatal, seq) AS fatal, argMax(watch_time_ms, seq) AS watch_ms, \
             argMax(playing_time_ms, seq) AS playing_ms, argMax(rebuffer_count, seq) AS rebuffers, \
             argMax(rebuffer_duration_ms, seq) AS rebuffer_ms, \
             argMax(avg_bitrate_kbps, seq) AS bitrate_kbps \
      FROM ?.views \
      WHERE property_id = ? AND view_start >= toDateTime(?) AND view_start < toDateTime(?) \
      GROUP BY view_id, view_start {having})";

/// Binds [`VIEWS_SUBQUERY`]'s values (the client escapes them).
fn bind_views(query: Query, scope: &Scope<'_>) -> Query {
    let Range { from, to } = scope.range;
    let query = query
        .bind(from)
        .bind(to)
        .bind(from)
        .bind(to)
        .bind(scope.now)
        .bind(scope.inactivity_timeout_s)
        .bind(Identifier(scope.database))
        .bind(scope.property)
        .bind(from.saturating_sub(scope.max_view_s))
        .bind(to);
    scope
        .filters
        .iter()
        .fold(query, |query, filter| filter.value.bind_to(query))
}

/// The per-view subquery with `scope`'s filters in place.
fn views_subquery(scope: &Scope<'_>) -> String {
    let conditions: Vec<String> = scope
        .filters
        .iter()
        .map(|f| {
            let op = if f.negate { "!=" } else { "=" };
            format!("argMax({}, seq) {op} ?", f.column)
        })
        .collect();
    let having = if conditions.is_empty() {
        String::new()
    } else {
        format!("HAVING {}", conditions.join(" AND "))
    };
    VIEWS_SUBQUERY.replace("{having}", &having)
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
}

/// The query returning one row with every [`OVERVIEW_METRICS`] column
/// (an [`Overview`](super::Overview)), its values bound. `sql_display()` shows its text.
pub fn overview_query(client: &Client, scope: &Scope<'_>) -> Query {
    let columns: Vec<String> = OVERVIEW_METRICS
        .iter()
        .map(|m| format!("{} AS {}", m.sql, m.name))
        .collect();
    let sql = format!(
        "SELECT {} FROM ({})",
        columns.join(", "),
        views_subquery(scope)
    );
    bind_views(client.query(&sql), scope)
}

/// **Concurrent viewers** per minute: distinct views with an event in the
/// minute whose state was starting, playing, rebuffering, seeking or just
/// failed (paused, idle and ended views excluded), from the `minute_dims`
/// aggregate (`uniq`: exact below ~65 k per minute, within ~2 % above).
/// Known gap: views rebuffering for more than 5 minutes are still counted.
/// Returns `(minute, concurrent)` rows for `dim = 'all'`.
pub fn concurrent_per_minute_query(
    client: &Client,
    database: &str,
    property: &str,
    range: Range,
) -> Query {
    client
        .query(
            "SELECT minute, uniqMerge(concurrent) AS concurrent FROM ?.minute_dims \
             WHERE property_id = ? AND dim = 'all' AND minute >= toDateTime(?) AND minute < toDateTime(?) \
             GROUP BY minute ORDER BY minute",
        )
        .bind(Identifier(database))
        .bind(property)
        .bind(range.from)
        .bind(range.to)
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
        };
        let sql = overview_query(&Client::default(), &scope)
            .sql_display()
            .to_string();
        assert!(!sql.contains('?'), "every placeholder bound: {sql}");
        assert!(sql.contains("FROM `qoe`.views"), "{sql}");
        assert!(sql.contains(r"property_id = 'it\'s \\ here'"), "{sql}");
        assert!(sql.contains("view_start >= toDateTime(50)"), "{sql}");
        assert!(sql.contains("toDateTime(300) - last >= 3600"), "{sql}");
        assert!(
            sql.contains(
                r"HAVING argMax(country, seq) = 'US\' OR 1=1 --' AND argMax(asn, seq) != 3320"
            ),
            "{sql}"
        );
    }
}
