-- One row per view with its latest state. Filled by a materialized view from
-- every block inserted into heartbeats_local; ReplacingMergeTree(seq) keeps the
-- highest seq of each view, so duplicates and out-of-order arrivals are
-- harmless. Readers collapse with argMax(col, seq) (correct before merges).
-- view_start is in the sorting key and the same on every event of a view, so
-- all of a view's rows meet in one partition and one key.
CREATE TABLE IF NOT EXISTS {database}.views_local (
    property_id {lowcard},
    view_id String,
    seq UInt32,
    view_start DateTime,
    last_ts DateTime,
    last_event {lowcard},
    received_at DateTime,
    viewer_id String,
    video_id String,
    video_title String,
    stream_type {lowcard},
    player_name {lowcard},
    player_version {lowcard},
    cdn {lowcard},
    country {lowcard},
    asn UInt32,
    os {lowcard},
    browser {lowcard},
    device_type {lowcard},
    state {lowcard},
    play_requested UInt8,
    started UInt8,
    startup_time_ms UInt32,
    watch_time_ms UInt64,
    playing_time_ms UInt64,
    rebuffer_count UInt32,
    rebuffer_duration_ms UInt64,
    avg_bitrate_kbps UInt32,
    error_code String,
    error_fatal UInt8
) ENGINE = ReplacingMergeTree(seq)
PARTITION BY toYYYYMMDD(view_start)
ORDER BY (property_id, view_start, view_id);

CREATE TABLE IF NOT EXISTS {database}.views AS {database}.views_local
ENGINE = Distributed({cluster}, {database}, views_local, sipHash64(view_id));

CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.views_mv TO {database}.views_local AS
SELECT property_id, view_id, seq, view_start, ts AS last_ts, event AS last_event, received_at,
       viewer_id, video_id, video_title, stream_type, player_name, player_version, cdn,
       country, asn, os, browser, device_type, state, play_requested, started, startup_time_ms,
       watch_time_ms, playing_time_ms, rebuffer_count, rebuffer_duration_ms, avg_bitrate_kbps,
       error_code, error_fatal
FROM {database}.heartbeats_local;
