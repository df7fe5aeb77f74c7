-- Raw heartbeats: one row per event, short retention, hourly partitions.
-- ReplacingMergeTree on (property_id, view_id, seq): a replayed record is an
-- exact duplicate (same received_at, so same partition) and collapses on merge.
-- On ClickHouse 18.x there is no TTL: expire old hours with
-- ALTER TABLE heartbeats_local DROP PARTITION on each shard.
CREATE TABLE IF NOT EXISTS {database}.heartbeats_local (
    property_id {lowcard},
    view_id String,
    seq UInt32,
    event {lowcard},
    ts DateTime,
    received_at DateTime,
    view_start DateTime,
    viewer_id String,
    video_id String,
    video_title String,
    stream_type {lowcard},
    video_duration_ms UInt64,
    player_name {lowcard},
    player_version {lowcard},
    player_width UInt16,
    player_height UInt16,
    autoplay UInt8,
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
    bitrate_kbps UInt32,
    avg_bitrate_kbps UInt32,
    dropped_frames UInt64,
    playhead_ms UInt64,
    error_code String,
    error_message String,
    error_fatal UInt8
) ENGINE = ReplacingMergeTree()
PARTITION BY toStartOfHour(received_at)
ORDER BY (property_id, view_id, seq)
{raw_ttl};

CREATE TABLE IF NOT EXISTS {database}.heartbeats AS {database}.heartbeats_local
ENGINE = Distributed({cluster}, {database}, heartbeats_local, sipHash64(view_id));
