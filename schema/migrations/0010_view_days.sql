-- Sealed days rolled up: for each sealed day (`day`, the views' start
-- day) and `generation`, one row per value of each dimension (`dim` is a
-- `views` column; `dim = 'all'` for every view) and per day the views
-- ended on (`end_day`), holding what the metrics need of those views:
-- sums, and states that merge exactly (`uniq` of viewers, the exact
-- startup times). A 30-day read then merges a few rows per day for the
-- days wholly inside its range and reads single views only at its edges
-- (`schema::metrics::sql`). Written by the seal job after the day's
-- `views_sealed_local` rows, from them, with the same generation.
CREATE TABLE IF NOT EXISTS {database}.view_days_local (
    property_id {lowcard},
    day Date,
    generation UInt64,
    dim {lowcard},
    value String,
    end_day Date,
    views UInt64,
    viewers AggregateFunction(uniq, String),
    watch_ms UInt64,
    playing_ms UInt64,
    fatal UInt64,
    exits UInt64,
    startup AggregateFunction(quantilesExact(0.5, 0.9, 0.95), UInt32),
    rebuffer_ms UInt64,
    rebuffers UInt64,
    bitrate_ms UInt64,
    last_seen DateTime
) ENGINE = MergeTree()
PARTITION BY toYYYYMMDD(day)
ORDER BY (property_id, dim, value, day);

CREATE TABLE IF NOT EXISTS {database}.view_days AS {database}.view_days_local
ENGINE = Distributed({cluster}, {database}, view_days_local, rand());

-- Whether a seal wrote its roll-up. Seals made before this migration read
-- 0: readers and the seal job pass them over, so those days are read view
-- by view until the seal job seals them again, with a roll-up.
ALTER TABLE {database}.sealed_days_local {add_column} rolled UInt8;
