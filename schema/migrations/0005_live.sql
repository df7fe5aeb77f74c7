-- Live numbers (the api's /v1/monitoring): how long the rebuffering in
-- progress has lasted at each event (`current_rebuffer_ms`, so views
-- stalled for over 5 minutes leave the concurrent count; rows written
-- before read 0), per-5-second states by dimension, and their counts.
ALTER TABLE {database}.heartbeats_local {add_column} current_rebuffer_ms UInt64;

ALTER TABLE {database}.heartbeats {add_column} current_rebuffer_ms UInt64;

-- Each event's views in its own 5-second bucket, by dimension (dim = 'all'
-- for every view) and, for playing events, by bitrate (`rung`; 0 for the
-- others), so an average over distinct views stays exact. Only uniq
-- states: a replayed heartbeat changes nothing. An event counts in its
-- bucket and the two after (a 15 s window, one heartbeat interval and a
-- bucket): `schema::metrics::live` states the definitions.
CREATE TABLE IF NOT EXISTS {database}.live_local (
    property_id {lowcard},
    bucket DateTime,
    dim {lowcard},
    value String,
    rung UInt32,
    concurrent AggregateFunction(uniq, String),
    rebuffering AggregateFunction(uniq, String),
    playing AggregateFunction(uniq, String),
    ended AggregateFunction(uniq, String),
    failed AggregateFunction(uniq, String),
    exited AggregateFunction(uniq, String)
) ENGINE = AggregatingMergeTree()
PARTITION BY toYYYYMMDD(bucket)
ORDER BY (property_id, dim, value, bucket, rung)
{live_ttl};

CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.live_mv TO {database}.live_local AS
SELECT property_id, toDateTime(intDiv(toUInt32(ts), 5) * 5) AS bucket, d.1 AS dim, d.2 AS value,
       if(state = 'playing', bitrate_kbps, 0) AS rung,
       uniqStateIf(view_id, state IN ('starting', 'playing', 'rebuffering', 'seeking') AND current_rebuffer_ms <= 300000) AS concurrent,
       uniqStateIf(view_id, state = 'rebuffering' AND current_rebuffer_ms <= 300000) AS rebuffering,
       uniqStateIf(view_id, state = 'playing') AS playing,
       uniqStateIf(view_id, event = 'viewend' OR (event = 'error' AND error_fatal = 1)) AS ended,
       uniqStateIf(view_id, event = 'error' AND error_fatal = 1) AS failed,
       uniqStateIf(view_id, event = 'viewend' AND play_requested = 1 AND started = 0 AND error_fatal = 0) AS exited
FROM {database}.heartbeats_local
ARRAY JOIN [
    ('all', ''),
    ('country', CAST(country AS String)),
    ('asn', toString(asn)),
    ('os', CAST(os AS String)),
    ('browser', CAST(browser AS String)),
    ('device_type', CAST(device_type AS String)),
    ('player_name', CAST(player_name AS String)),
    ('cdn', CAST(cdn AS String)),
    ('stream_type', CAST(stream_type AS String)),
    ('video_id', video_id)
] AS d
GROUP BY property_id, bucket, dim, value, rung;

-- The live numbers of each settled 5-second bucket as plain counts, which
-- the api reads (merging an hour of states per request would be too slow).
-- Written per shard by the processor's live job (`processor/src/live.rs`)
-- from `live_local`, recomputed while the bucket settles; the latest
-- computation wins. A shard's counts cover its own views, so the api sums
-- the shards.
CREATE TABLE IF NOT EXISTS {database}.live_counts_local (
    property_id {lowcard},
    dim {lowcard},
    value String,
    bucket DateTime,
    concurrent UInt64,
    rebuffering UInt64,
    playing UInt64,
    bitrate_kbps_sum UInt64,
    ended UInt64,
    failed UInt64,
    exited UInt64,
    computed_at DateTime
) ENGINE = ReplacingMergeTree(computed_at)
PARTITION BY toYYYYMMDD(bucket)
ORDER BY (property_id, dim, value, bucket)
{live_ttl};

CREATE TABLE IF NOT EXISTS {database}.live_counts AS {database}.live_counts_local
ENGINE = Distributed({cluster}, {database}, live_counts_local, rand());
