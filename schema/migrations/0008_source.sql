-- Which wire format each view came in (`source`: `beacon` or `cmcd`, the
-- `source` dimension), and the milliseconds of `ts` (`ts_millis`: `ts` keeps
-- whole seconds), so a CMCD view's reports can be replayed exactly by a
-- processor that takes the view over (`processor/src/sessions.rs`). Rows
-- written before read `beacon` and 0. Re-running is harmless: a column
-- that exists is skipped.
ALTER TABLE {database}.heartbeats_local {add_column} source {lowcard} DEFAULT 'beacon';

ALTER TABLE {database}.heartbeats {add_column} source {lowcard} DEFAULT 'beacon';

ALTER TABLE {database}.heartbeats_local {add_column} ts_millis UInt16;

ALTER TABLE {database}.heartbeats {add_column} ts_millis UInt16;

ALTER TABLE {database}.views_local {add_column} source {lowcard} DEFAULT 'beacon';

ALTER TABLE {database}.views {add_column} source {lowcard} DEFAULT 'beacon';

-- The sealed copy takes `SELECT *, generation` from `views_local`, so its
-- `source` stands where `views_local` has it: before `generation`.
ALTER TABLE {database}.views_sealed_local {add_column} source {lowcard} DEFAULT 'beacon' AFTER error_fatal;

ALTER TABLE {database}.views_sealed {add_column} source {lowcard} DEFAULT 'beacon' AFTER error_fatal;

-- A materialized view's query cannot be altered: it is created anew with
-- `source`. Blocks inserted between the two statements skip `views_local`,
-- so run migrations before processors write (`qoe-migrate` is step one of
-- every deploy).
DROP TABLE IF EXISTS {database}.views_mv;

CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.views_mv TO {database}.views_local AS
SELECT property_id, view_id, seq, view_start, ts AS last_ts, event AS last_event, received_at,
       viewer_id, video_id, video_title, stream_type, player_name, player_version, cdn,
       country, asn, os, browser, device_type, state, play_requested, started, startup_time_ms,
       watch_time_ms, playing_time_ms, rebuffer_count, rebuffer_duration_ms, avg_bitrate_kbps,
       error_code, error_fatal, source
FROM {database}.heartbeats_local;
