//! Sealing a day (migration 0007): once every view that started on a day
//! has ended, the processor's seal job copies each view's latest row
//! (`views_local FINAL`) into `views_sealed_local` under a new generation,
//! rolls them up by dimension into `view_days_local` (migration 0010),
//! then records the seal in `sealed_days_local`. Reads take a fresh seal's
//! roll-up for the days wholly in their range and its rows at the edges,
//! instead of collapsing the day's views again
//! ([`super::sql::view_source`]); a seal goes stale when its day's
//! partition changes (a later heartbeat, a replay, a merge), and the job
//! seals the day again. Everything here runs per shard, on local tables.

use std::collections::HashMap;

use clickhouse::query::Query;
use clickhouse::sql::Identifier;
use clickhouse::Client;

/// Seconds in a day.
pub const DAY_S: u32 = 86_400;

/// When each day's `views_local` data last changed on this shard: `(day
/// start, latest part modification)`, epoch seconds.
pub fn changes_query(client: &Client, database: &str) -> Query {
    client
        .query(
            "SELECT toUInt32(toDateTime(toDate(concat(substring(partition, 1, 4), '-', \
                    substring(partition, 5, 2), '-', substring(partition, 7, 2))))) AS day, \
                    toUInt32(max(modification_time)) \
             FROM system.parts WHERE database = ? AND table = 'views_local' AND active \
             GROUP BY day",
        )
        .bind(database)
}

/// When each day was last sealed on this shard: `(day start, seal start)`.
/// Seals without a roll-up (made before migration 0010) do not count, so
/// their days are sealed again.
pub fn seals_query(client: &Client, database: &str) -> Query {
    client
        .query(
            "SELECT toUInt32(toDateTime(day)), toUInt32(argMax(sealed_at, generation)) \
             FROM ?.sealed_days_local WHERE rolled = 1 GROUP BY day",
        )
        .bind(Identifier(database))
}

/// The days to seal, oldest first: those that ended at least `after_s`
/// before `now` (by then every view that started on them has ended) and
/// changed in or after the second their last seal began, or never sealed.
pub fn days_to_seal(
    changes: &[(u32, u32)],
    seals: &[(u32, u32)],
    now: u32,
    after_s: u32,
) -> Vec<u32> {
    let sealed: HashMap<u32, u32> = seals.iter().copied().collect();
    let mut days: Vec<u32> = changes
        .iter()
        .filter(|(day, _)| day.saturating_add(DAY_S).saturating_add(after_s) <= now)
        .filter(|(day, modified)| sealed.get(day).is_none_or(|began| modified >= began))
        .map(|(day, _)| *day)
        .collect();
    days.sort_unstable();
    days
}

/// The server's clock, epoch seconds: when a seal begins (part times are
/// the server's too).
pub fn now_query(client: &Client) -> Query {
    client.query("SELECT toUInt32(now())")
}

/// Copies each view that started on `day` (its start, epoch seconds), as
/// of its latest row, into `views_sealed_local` under `generation`.
pub fn copy_query(client: &Client, database: &str, day: u32, generation: u64) -> Query {
    client
        .query(
            "INSERT INTO ?.views_sealed_local \
             SELECT *, ? FROM ?.views_local FINAL \
             WHERE view_start >= toDateTime(?) AND view_start < toDateTime(?)",
        )
        .bind(Identifier(database))
        .bind(generation)
        .bind(Identifier(database))
        .bind(day)
        .bind(day.saturating_add(DAY_S))
}

/// Records that `day` is sealed as `generation`, the seal begun at
/// `began` (after [`copy_query`]: readers take a seal only once its rows
/// are there).
pub fn record_query(
    client: &Client,
    database: &str,
    day: u32,
    generation: u64,
    began: u32,
) -> Query {
    client
        .query(
            "INSERT INTO ?.sealed_days_local (day, generation, sealed_at, rolled) \
             SELECT toDate(toDateTime(?)), ?, toDateTime(?), 1",
        )
        .bind(Identifier(database))
        .bind(day)
        .bind(generation)
        .bind(began)
}

/// The `views` columns a day is rolled up by, besides `all` (every view):
/// every dimension the api filters and breaks down by.
pub const ROLLED_UP: &[&str] = &[
    "country",
    "asn",
    "os",
    "browser",
    "device_type",
    "player_name",
    "player_version",
    "cdn",
    "stream_type",
    "video_id",
    "video_title",
    "error_code",
    "source",
];

/// Rolls up `day`'s sealed rows of `generation` (written by
/// [`copy_query`]) into `view_days_local`: per dimension value and end
/// day, what each metric needs (`super::sql::PARTIALS` reads it). Every
/// sealed view has ended, so each counts as ended.
pub fn rollup_query(client: &Client, database: &str, day: u32, generation: u64) -> Query {
    let dims: Vec<String> = std::iter::once("('all', '')".to_string())
        .chain(
            ROLLED_UP
                .iter()
                .map(|c| format!("('{c}', CAST({c} AS String))")),
        )
        .collect();
    client
        .query(&format!(
            "INSERT INTO ?.view_days_local \
             SELECT property_id, toDate(view_start) AS day, generation, d.1 AS dim, d.2 AS value, \
                    toDate(last_ts) AS end_day, count(), uniqState(viewer_id), \
                    sum(watch_time_ms), sum(playing_time_ms), countIf(error_fatal = 1), \
                    countIf(play_requested = 1 AND started = 0 AND error_fatal = 0), \
                    quantilesExactStateIf(0.5, 0.9, 0.95)(startup_time_ms, started = 1), \
                    sum(rebuffer_duration_ms), sum(rebuffer_count), \
                    sum(avg_bitrate_kbps * playing_time_ms), max(last_ts) \
             FROM ?.views_sealed_local ARRAY JOIN [{}] AS d \
             WHERE view_start >= toDateTime(?) AND view_start < toDateTime(?) AND generation = ? \
             GROUP BY property_id, day, generation, dim, value, end_day",
            dims.join(", ")
        ))
        .bind(Identifier(database))
        .bind(Identifier(database))
        .bind(day)
        .bind(day.saturating_add(DAY_S))
        .bind(generation)
}

/// Deletes `day`'s sealed rows and roll-up of generations before
/// `generation` (mutations, done in the background; readers already skip
/// them).
pub fn prune_queries(client: &Client, database: &str, day: u32, generation: u64) -> [Query; 2] {
    let rows = client
        .query(
            "ALTER TABLE ?.views_sealed_local DELETE \
             WHERE view_start >= toDateTime(?) AND view_start < toDateTime(?) AND generation < ?",
        )
        .bind(Identifier(database))
        .bind(day)
        .bind(day.saturating_add(DAY_S))
        .bind(generation);
    let rollup = client
        .query(
            "ALTER TABLE ?.view_days_local DELETE \
             WHERE day = toDate(toDateTime(?)) AND generation < ?",
        )
        .bind(Identifier(database))
        .bind(day)
        .bind(generation);
    [rows, rollup]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settled_days_seal_once_and_again_after_a_change() {
        let now = 10 * DAY_S + 9 * 3600;
        let after = 8 * 3600;
        let changes = [
            (8 * DAY_S, 8 * DAY_S + 100), // never sealed
            (9 * DAY_S, 9 * DAY_S + 100), // sealed, unchanged since
            (7 * DAY_S, 9 * DAY_S + 500), // changed after its seal
            (6 * DAY_S, 7 * DAY_S),       // changed the second its seal began
            (10 * DAY_S, 10 * DAY_S + 1), // today: views may still run
        ];
        let seals = [
            (9 * DAY_S, 9 * DAY_S + 200),
            (7 * DAY_S, 9 * DAY_S),
            (6 * DAY_S, 7 * DAY_S),
        ];
        assert_eq!(
            days_to_seal(&changes, &seals, now, after),
            [6 * DAY_S, 7 * DAY_S, 8 * DAY_S]
        );
        // Yesterday seals once `after` has passed since its end.
        assert_eq!(
            days_to_seal(&[(9 * DAY_S, 9 * DAY_S)], &[], 10 * DAY_S + after, after),
            [9 * DAY_S]
        );
        assert!(days_to_seal(
            &[(9 * DAY_S, 9 * DAY_S)],
            &[],
            10 * DAY_S + after - 1,
            after
        )
        .is_empty());
    }
}
