-- Sealed hours: the hours of days not sealed yet (today's, and
-- yesterday's until its seal), each sealed once no view that started in it
-- has written for a while, so a read collapses (`FINAL`) only the hours
-- with views still running instead of the whole day.
--
-- `inserted_at` is when a `views_local` row was written (the server's
-- clock at insert, kept by merges): an hour's seal is fresh while no row of
-- it was written after the seal began (`schema::metrics::seal`). Rows
-- written before this migration read the time they are read (or merged),
-- so their hours seal only once merged.
ALTER TABLE {database}.views_local {add_column} inserted_at DateTime DEFAULT now();

ALTER TABLE {database}.views {add_column} inserted_at DateTime DEFAULT now();

-- The sealed copy takes `SELECT *, generation` from `views_local`, so its
-- `inserted_at` stands where `views_local` has it: before `generation`.
ALTER TABLE {database}.views_sealed_local {add_column} inserted_at DateTime DEFAULT now() AFTER source;

ALTER TABLE {database}.views_sealed {add_column} inserted_at DateTime DEFAULT now() AFTER source;

-- A materialized view's query cannot be altered: it is created anew,
-- writing `inserted_at` itself (ClickHouse 18 fills no defaults for a
-- view's target). Blocks inserted between the two statements skip
-- `views_local`, so run migrations before processors write
-- (`qoe-migrate` is step one of every deploy).
DROP TABLE IF EXISTS {database}.views_mv;

CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.views_mv TO {database}.views_local AS
SELECT property_id, view_id, seq, view_start, ts AS last_ts, event AS last_event, received_at,
       viewer_id, video_id, video_title, stream_type, player_name, player_version, cdn,
       country, asn, os, browser, device_type, state, play_requested, started, startup_time_ms,
       watch_time_ms, playing_time_ms, rebuffer_count, rebuffer_duration_ms, avg_bitrate_kbps,
       error_code, error_fatal, source, now() AS inserted_at
FROM {database}.heartbeats_local;

-- Each sealing of an hour (its rows go to `views_sealed_local` under
-- `generation`, as a day's do), recorded after its rows. A seal of the
-- hour's day voids it: that seal's prune deletes its rows.
CREATE TABLE IF NOT EXISTS {database}.sealed_hours_local (
    hour DateTime,
    generation UInt64,
    sealed_at DateTime
) ENGINE = MergeTree()
ORDER BY (hour, generation);
