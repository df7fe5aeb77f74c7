//! Which days a metric read takes from sealed days' roll-ups
//! (`view_days`, migration 0010), and the roll-up side of its query.
//!
//! A read's range rarely starts or ends at midnight, and the newest days
//! are not sealed. So a read takes from roll-ups only the days wholly
//! inside its range, on the shards where the day's seal is fresh: the
//! views that started on such a day count as started there, and those
//! that ended on one count as ended there. Every other view is read singly
//! (the per-view subquery of [`super::source`]), with its flags cleared where
//! a roll-up already counts it. Each view is counted once either way,
//! because a view's row and its roll-up row come from one seal, and both
//! sides judge a seal fresh by the same rule, on the same shard, within
//! one query. (A seal going stale, or a day sealed again, between the
//! two sides' look at it can miscount that day for that one read.)
//!
//! The bounds here are numbers this code computed (a range's seconds),
//! written into the SQL; values from the request are bound.

use clickhouse::query::Query;
use clickhouse::sql::Identifier;

use super::seal::ROLLED_UP;
use super::source::{Filter, Scope};
use super::sql::Partial;
use super::Range;

/// The longest a day lasts (a day that ends daylight saving time).
const LONGEST_DAY_S: u32 = 25 * 3600;

/// The shortest a day lasts: a shorter range holds no whole day.
const SHORTEST_DAY_S: u32 = 23 * 3600;

/// The days a read takes from roll-ups.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Days {
    /// None: the read's filters or grouping have no roll-up, or its range
    /// holds no whole day.
    None,
    /// The days wholly inside `range`, and inside one `step`-second bucket
    /// (aligned to the epoch) when set.
    Within {
        range: Range,
        step: Option<u32>,
        /// How long a view may last (`Scope::max_view_s`).
        max_view_s: u32,
    },
}

/// How a read groups its views.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Grouping {
    /// One row for the whole range.
    None,
    /// One row per value of a `views` column.
    Column(&'static str),
    /// One row per `step`-second bucket.
    Buckets(u32),
}

impl Days {
    /// The days `scope`'s read, grouped by `grouping`, takes from
    /// roll-ups: a roll-up holds one dimension at a time, so there are
    /// none when the read filters on two, or filters and breaks down.
    pub fn of(scope: &Scope<'_>, grouping: Grouping) -> Days {
        let rolled = |column: &str| ROLLED_UP.contains(&column);
        let covered = match (grouping, scope.filters) {
            (Grouping::Column(column), []) => rolled(column),
            (Grouping::Column(_), _) => false,
            (_, []) => true,
            (_, [filter]) => rolled(filter.column),
            _ => false,
        };
        let Range { from, to } = scope.range;
        if !covered || to.saturating_sub(from) < SHORTEST_DAY_S {
            return Days::None;
        }
        Days::Within {
            range: scope.range,
            step: match grouping {
                Grouping::Buckets(step) => Some(step.max(1)),
                _ => None,
            },
            max_view_s: scope.max_view_s,
        }
    }

    /// SQL: whether the `Date` expression `day` is one of these days.
    pub fn contain(&self, day: &str) -> String {
        let Days::Within { range, step, .. } = self else {
            return "0".into();
        };
        let Range { from, to } = range;
        let bucket = step
            .map(|step| {
                format!(
                    " AND intDiv(toUInt32(toDateTime({day})), {step}) = \
                     intDiv(toUInt32(toDateTime({day} + 1)) - 1, {step})"
                )
            })
            .unwrap_or_default();
        format!("(toDateTime({day}) >= toDateTime({from}) AND toDateTime({day} + 1) <= toDateTime({to}){bucket})")
    }

    /// ` AND …` on sealed `views` rows: leaves out the views a roll-up
    /// counts wholly (started and ended on these days). The index bounds
    /// keep the read to the range's edges: a view left in started before
    /// the first whole day, or ends after the last and so started at most
    /// `max_view_s` before its end.
    pub fn beside_rollups(&self) -> String {
        let Days::Within {
            range, max_view_s, ..
        } = self
        else {
            return String::new();
        };
        let Range { from, to } = range;
        let back = LONGEST_DAY_S.saturating_add(*max_view_s);
        format!(
            " AND NOT ({} AND {}) AND (view_start < toDateTime({from} + {LONGEST_DAY_S}) \
             OR view_start >= toDateTime(greatest({to}, {back}) - {back}))",
            self.contain("toDate(view_start)"),
            self.contain("toDate(last_ts)")
        )
    }

    /// The roll-up side of a read: `partials` over the fresh roll-up rows
    /// of these days, keyed as `grouping` asks (`key`, a `String`, for a
    /// column; `bucket`, a `UInt64`, for buckets), aggregated on each
    /// shard. `None` when there are no such days. Its `?` placeholders
    /// are bound by [`Days::bind`]; `fresh` is the shard's fresh seals.
    pub fn rollup_sql(
        &self,
        grouping: Grouping,
        filters: &[Filter<'_>],
        partials: &[&Partial],
        fresh: &str,
    ) -> Option<String> {
        if *self == Days::None {
            return None;
        }
        let (started, ended) = (self.contain("day"), self.contain("end_day"));
        let (key, array_join, s, e, group_by) = match grouping {
            Grouping::None => (String::new(), "", started.clone(), ended.clone(), ""),
            Grouping::Column(_) => (
                "value AS key, ".to_owned(),
                "",
                started.clone(),
                ended.clone(),
                " GROUP BY key",
            ),
            Grouping::Buckets(step) => (
                format!("toUInt64(intDiv(tupleElement(b, 1), {step}) * {step}) AS bucket, "),
                " ARRAY JOIN [(toUInt32(toDateTime(day)), 1), \
                 (toUInt32(toDateTime(end_day)), 2)] AS b",
                format!("(tupleElement(b, 2) = 1 AND {started})"),
                format!("(tupleElement(b, 2) = 2 AND {ended})"),
                " GROUP BY bucket",
            ),
        };
        let columns: Vec<String> = partials
            .iter()
            .map(|p| {
                let sql = p.rollup.replace("{s}", &s).replace("{e}", &e);
                format!("{sql} AS {}", p.name)
            })
            .collect();
        let value = match filters {
            [f] if f.negate => " AND value != toString(?)",
            [_] => " AND value = toString(?)",
            _ => "",
        };
        Some(format!(
            "SELECT {key}{} FROM ?.view_days{array_join} \
             WHERE property_id = ? AND dim = ?{value} AND (day, generation) IN ({fresh}) \
               AND ({started} OR {ended}){group_by}",
            columns.join(", ")
        ))
    }

    /// Binds [`Days::rollup_sql`]'s values.
    pub fn bind(
        query: Query,
        database: &str,
        property: &str,
        grouping: Grouping,
        filters: &[Filter<'_>],
    ) -> Query {
        let dim = match grouping {
            Grouping::Column(column) => column,
            _ => filters.first().map(|f| f.column).unwrap_or("all"),
        };
        let query = query.bind(Identifier(database)).bind(property).bind(dim);
        let query = Filter::bind_all(query, filters);
        query.bind(Identifier(database)).bind(database)
    }
}
