//! Where a metric read's views come from: each view's latest row, from a
//! fresh seal or collapsed at read time, with the per-view flags the
//! metrics count by; the filters and the scope of a read. Every value is
//! bound by the client (which escapes it), the database name as an
//! identifier.

use clickhouse::query::Query;
use clickhouse::sql::Identifier;
use clickhouse::Client;

use super::rollup::{Days, Grouping};
use super::seal::{DAY_S, WRITE_MARGIN_S};
use super::Range;

/// Where each view's latest row comes from: three parts, each view in
/// exactly one.
/// - [`Part::Days`]: a sealed day's collapsed rows (`views_sealed`,
///   migration 0007) while the day's seal is fresh.
/// - [`Part::Hours`]: on the other days since yesterday's start (the hour
///   window, [`hour_window`]), the rows of the hours with a fresh seal
///   (migration 0011).
/// - [`Part::Collapsed`]: `views FINAL`, which collapses a view's rows as
///   the `ReplacingMergeTree(seq)` merge would (correct before merges, a
///   plain scan after them): the window's hours without a fresh seal
///   (those with views still running), and the unsealed days before the
///   window. Its `PREWHERE` keeps the other days' and hours' rows (sets
///   the primary key can use, where `NOT IN` would read every day's
///   `view_start`) before `FINAL` reads them, safely, as a view's rows
///   share one `view_start`.
///
/// Every set is a subquery each shard runs on its own tables (a scalar
/// subquery would run once, on the server the read went to).
///
/// A view that started before the range proper (`active_from`) is read
/// only if its latest event is at or after it: it may end in the range,
/// the others count nowhere. The collapsed part picks those views by
/// `view_id` before `FINAL`, so it keeps all or none of a view's rows
/// (a view's `last_ts` need not rise with `seq`), and the hours of views
/// that ended before the range are not collapsed again.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Part {
    Days,
    Hours,
    Collapsed,
}

const PARTS: [Part; 3] = [Part::Days, Part::Hours, Part::Collapsed];

/// The parts a read of `scope` needs: no sealed hours when its range ends
/// before the hour window (the previous period of a 30-day read).
fn parts_of(scope: &Scope<'_>) -> &'static [Part] {
    if scope.range.to <= hour_window(scope.now) {
        &[Part::Days, Part::Collapsed]
    } else {
        &PARTS
    }
}

/// [`Part::Days`]: `{beside}` may leave out the rows a roll-up answers
/// ([`Days::beside_rollups`]).
const DAYS_PART: &str = "FROM ?.views_sealed{array_join} \
      WHERE property_id = ? AND view_start >= toDateTime(?) AND view_start < toDateTime(?) \
        AND (view_start >= toDateTime(?) OR last_ts >= toDateTime(?)) \
        AND (toDate(view_start), generation) IN ({fresh}){beside}";

/// [`Part::Hours`].
const HOURS_PART: &str = "FROM ?.views_sealed{array_join} \
      WHERE property_id = ? AND view_start >= toDateTime(?) AND view_start < toDateTime(?) \
        AND (view_start >= toDateTime(?) OR last_ts >= toDateTime(?)) \
        AND view_start >= toDateTime(?) \
        AND (toStartOfHour(view_start), generation) IN ({fresh_hours})";

/// [`Part::Collapsed`]. Conditions added to its `WHERE` run after `FINAL`
/// (its own `PREWHERE` keeps ClickHouse from moving them before), so a
/// filter sees each view's latest value (`schema/tests/clickhouse.rs`
/// holds both servers to that).
const COLLAPSED_PART: &str = "FROM ?.views FINAL{array_join} \
      PREWHERE toDate(view_start) IN (SELECT day FROM ({unsealed})) \
        AND (view_start < toDateTime(?) OR toStartOfHour(view_start) IN ({unfresh_hours})) \
        AND (view_start >= toDateTime(?) OR view_id IN ( \
          SELECT view_id FROM ?.views_local \
          WHERE property_id = ? AND view_start >= toDateTime(?) AND view_start < toDateTime(?) \
            AND last_ts >= toDateTime(?))) \
      WHERE property_id = ? AND view_start >= toDateTime(?) AND view_start < toDateTime(?)";

/// What a part's `?` placeholders are bound to.
struct Bounds<'a> {
    database: &'a str,
    property: &'a str,
    /// The view starts read.
    starts: Range,
    /// Views that started before it count only if their latest event is
    /// at or after it.
    active_from: u32,
    /// Where the window of hour seals starts ([`hour_window`]).
    window: u32,
}

impl Part {
    /// Its `FROM … WHERE …`, beside the roll-ups of `days`, with
    /// `array_join` after its table. ` AND …` may follow.
    fn from(self, days: &Days, array_join: &str) -> String {
        let hours = |sql: &str| {
            sql.replace("{hours}", &hours_sql())
                .replace("{margin}", &WRITE_MARGIN_S.to_string())
        };
        let sql = match self {
            Part::Days => DAYS_PART
                .replace("{fresh}", FRESH_SEALS)
                .replace("{beside}", &days.beside_rollups()),
            Part::Hours => HOURS_PART.replace("{fresh_hours}", &hours(FRESH_HOURS)),
            Part::Collapsed => COLLAPSED_PART
                .replace("{unsealed}", &UNSEALED_DAYS.replace("{fresh}", FRESH_SEALS))
                .replace("{unfresh_hours}", &hours(UNFRESH_HOURS)),
        };
        sql.replace("{array_join}", array_join)
    }

    /// 1 for a sealed day's rows: only those can be in a roll-up.
    fn seal_flag(self) -> u8 {
        u8::from(self == Part::Days)
    }

    /// Binds the values of [`Part::from`]'s placeholders.
    fn bind(self, query: Query, b: &Bounds<'_>) -> Query {
        let db = b.database;
        let range = |query: Query| query.bind(b.property).bind(b.starts.from).bind(b.starts.to);
        let sealed_rows = |query: Query| {
            range(query.bind(Identifier(db)))
                .bind(b.active_from)
                .bind(b.active_from)
        };
        match self {
            Part::Days => sealed_rows(query).bind(Identifier(db)).bind(db),
            Part::Hours => bind_hours(sealed_rows(query).bind(b.window), db, b.window),
            Part::Collapsed => {
                let query = bind_unsealed_days(query.bind(Identifier(db)), db);
                let query = bind_hours(query.bind(b.window), db, b.window)
                    .bind(b.active_from)
                    .bind(Identifier(db))
                    .bind(b.property)
                    .bind(b.starts.from)
                    .bind(b.active_from)
                    .bind(b.active_from);
                range(query)
            }
        }
    }
}

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
pub(super) const UNSEALED_DAYS: &str = "SELECT day FROM ( \
        SELECT toDate(concat(substring(partition, 1, 4), '-', substring(partition, 5, 2), '-', \
                             substring(partition, 7, 2))) AS day \
        FROM system.parts WHERE database = ? AND table = 'views_local' AND active \
        GROUP BY day) \
      WHERE day NOT IN (SELECT day FROM ({fresh}))";

/// A shard's standing hour seals from the window's start (bound):
/// `(hour, latest generation, began)`. Only hours of days never sealed
/// count: a day's seal voids its hours' (its prune deletes their rows).
pub(super) const HOUR_SEALS: &str = "SELECT hour, latest, began FROM ( \
        SELECT hour, toDate(hour) AS day, max(generation) AS latest, \
               argMax(sealed_at, generation) AS began \
        FROM ?.sealed_hours_local WHERE hour >= toDateTime(?) GROUP BY hour) AS hours \
      ANY LEFT JOIN ( \
        SELECT day, 1 AS day_sealed FROM ?.sealed_days_local GROUP BY day) AS days USING day \
      WHERE day_sealed = 0";

/// A shard's hours with views from the window's start (bound): `(hour,
/// written, latest, began)`, when a row of the hour was last written
/// (`views_local.inserted_at`) and its standing seal ([`HOUR_SEALS`];
/// 0 and the epoch when none).
pub(super) const HOURS: &str = "SELECT hour, written, latest, began FROM ( \
        SELECT toStartOfHour(view_start) AS hour, max(inserted_at) AS written \
        FROM ?.views_local WHERE view_start >= toDateTime(?) GROUP BY hour) AS rows \
      ANY LEFT JOIN ({hour_seals}) AS seals USING hour";

/// [`HOURS`] with a fresh seal, `(hour, latest)`: one begun at least
/// `WRITE_MARGIN_S` after the hour's last row was written.
const FRESH_HOURS: &str = "SELECT hour, latest FROM ({hours}) \
      WHERE latest > 0 AND written < began - {margin}";

/// [`HOURS`] without a fresh seal.
const UNFRESH_HOURS: &str = "SELECT hour FROM ({hours}) \
      WHERE NOT (latest > 0 AND written < began - {margin})";

/// Binds [`HOUR_SEALS`]'s values: the window starts at `window`.
fn bind_hour_seals(query: Query, database: &str, window: u32) -> Query {
    query
        .bind(Identifier(database))
        .bind(window)
        .bind(Identifier(database))
}

/// Binds [`HOURS`]'s values.
pub(super) fn bind_hours(query: Query, database: &str, window: u32) -> Query {
    let query = query.bind(Identifier(database)).bind(window);
    bind_hour_seals(query, database, window)
}

/// [`HOURS`], its subquery in place.
pub(super) fn hours_sql() -> String {
    HOURS.replace("{hour_seals}", HOUR_SEALS)
}

/// Where the window of hour seals starts for a read or a seal at `now`:
/// the start of the day before (so yesterday's hours count until its day
/// seal, `seal.after` past its end).
pub fn hour_window(now: u32) -> u32 {
    (now / DAY_S).saturating_sub(1) * DAY_S
}

/// Binds [`UNSEALED_DAYS`]'s values.
fn bind_unsealed_days(query: Query, database: &str) -> Query {
    query
        .bind(database)
        .bind(Identifier(database))
        .bind(database)
}

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

/// The latest row of each view of `property` that started in a range:
/// `columns` (`views` columns, from fixed tables, never user text) and
/// `from_seal` ([`Part`]), bound by [`bind_view_source`]. Conditions on
/// it belong outside, where they see each view's latest value.
pub fn view_source(columns: &[&str]) -> String {
    let columns = columns.join(", ");
    let parts: Vec<String> = PARTS
        .iter()
        .map(|part| {
            format!(
                "SELECT {columns}, {} AS from_seal {}",
                part.seal_flag(),
                part.from(&Days::None, "")
            )
        })
        .collect();
    parts.join(" UNION ALL ")
}

/// Binds [`view_source`]'s values: `property`'s views that started in
/// `starts`, as read at `now` (which places the window of hour seals).
pub fn bind_view_source(
    query: Query,
    database: &str,
    property: &str,
    starts: Range,
    now: u32,
) -> Query {
    let bounds = Bounds {
        database,
        property,
        starts,
        active_from: starts.from,
        window: hour_window(now),
    };
    PARTS
        .iter()
        .fold(query, |query, part| part.bind(query, &bounds))
}

/// The per-view aliases the partials are written over (named apart from
/// the table's columns, as ClickHouse resolves aliases before columns):
/// `start`, `viewer`, `last`, `final_event`, `requested`, `has_startup`,
/// `startup_ms`, `fatal`, `watch_ms`, `playing_ms`, `rebuffers`,
/// `rebuffer_ms`, `bitrate_kbps`, `sealed`, and the flags `{in_start}`
/// (the view counts as started in the range), `{in_end}` (as ended in
/// it), each off for a sealed view whose day a roll-up counts
/// (`{start_rolled}`, `{end_rolled}`), and `ended`. The bounds are numbers
/// this code computed, written in.
const VIEW_ALIASES: &str = "view_start AS start, viewer_id AS viewer, last_ts AS last, \
        last_event AS final_event, play_requested AS requested, started AS has_startup, \
        startup_time_ms AS startup_ms, error_fatal AS fatal, watch_time_ms AS watch_ms, \
        playing_time_ms AS playing_ms, rebuffer_count AS rebuffers, \
        rebuffer_duration_ms AS rebuffer_ms, avg_bitrate_kbps AS bitrate_kbps, \
        {sealed} AS sealed, \
        (start >= toDateTime({from}) AND start < toDateTime({to}) \
         AND NOT (sealed AND {start_rolled})) AS {in_start}, \
        (last >= toDateTime({from}) AND last < toDateTime({to}) \
         AND NOT (sealed AND {end_rolled})) AS {in_end}, \
        (final_event = 'viewend' OR fatal = 1 OR toDateTime({now}) - last >= {timeout}) AS ended";

/// The per-view side of a read: `partials` (aggregates over
/// [`VIEW_ALIASES`]) of the views of `scope` that may matter for its
/// range (started in it, or started up to `max_view_s` before it and
/// possibly ending in it), beside the roll-ups of `days`, with `scope`'s
/// filters, keyed as `grouping` asks (`key`, a `String`, for a column;
/// `bucket`, a `UInt64`, for buckets, where a view counts in the bucket
/// it started in and the one it ended in). One aggregate per [`Part`],
/// each straight over a `Distributed` table, so each shard aggregates its
/// own views and sends only the partial states; the rows are merged by
/// the caller. Bound by [`bind_views`].
pub(super) fn views_partials(
    scope: &Scope<'_>,
    grouping: Grouping,
    days: &Days,
    partials: &str,
) -> String {
    let (key, array_join, in_start, in_end, extra, group_by) = match grouping {
        Grouping::None => (String::new(), String::new(), "in_start", "in_end", "", ""),
        Grouping::Column(column) => (
            format!("CAST({column} AS String) AS key, "),
            String::new(),
            "in_start",
            "in_end",
            "",
            " GROUP BY key",
        ),
        Grouping::Buckets(step) => (
            "bucket, ".to_owned(),
            format!(
                " ARRAY JOIN [(intDiv(toUInt32(view_start), {step}) * {step}, 1), \
                 (intDiv(toUInt32(last_ts), {step}) * {step}, 2)] AS b"
            ),
            "was_start",
            "was_end",
            ", toUInt64(tupleElement(b, 1)) AS bucket, \
             (tupleElement(b, 2) = 1 AND was_start) AS in_start, \
             (tupleElement(b, 2) = 2 AND was_end) AS in_end",
            " GROUP BY bucket",
        ),
    };
    let Range { from, to } = scope.range;
    let filters = Filter::conditions(scope.filters);
    let parts: Vec<String> = parts_of(scope)
        .iter()
        .map(|part| {
            let aliases = VIEW_ALIASES
                .replace("{sealed}", &part.seal_flag().to_string())
                .replace("{start_rolled}", &days.contain("toDate(start)"))
                .replace("{end_rolled}", &days.contain("toDate(last)"))
                .replace("{in_start}", in_start)
                .replace("{in_end}", in_end)
                .replace("{from}", &from.to_string())
                .replace("{to}", &to.to_string())
                .replace("{now}", &scope.now.to_string())
                .replace("{timeout}", &scope.inactivity_timeout_s.to_string());
            // In its own subquery: a current ClickHouse applies a `WITH`
            // to every later member of a `UNION` (`enable_global_with_statement`).
            format!(
                "SELECT * FROM (WITH {aliases}{extra} SELECT {key}{partials} {}{filters}{group_by})",
                part.from(days, &array_join)
            )
        })
        .collect();
    parts.join(" UNION ALL ")
}

/// Binds [`views_partials`]' values (the client escapes them).
pub(super) fn bind_views(query: Query, scope: &Scope<'_>) -> Query {
    let from = scope.range.from;
    let bounds = Bounds {
        database: scope.database,
        property: scope.property,
        starts: Range {
            from: from.saturating_sub(scope.max_view_s),
            to: scope.range.to,
        },
        active_from: from,
        window: hour_window(scope.now),
    };
    parts_of(scope).iter().fold(query, |query, part| {
        Filter::bind_all(part.bind(query, &bounds), scope.filters)
    })
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
