-- Per-minute activity by dimension, for dashboards and concurrent viewers.
-- One row per (property, minute, dimension, value), plus dim = 'all'. Only
-- uniq states: merging a state with itself changes nothing, so replayed
-- heartbeats cannot inflate these numbers (sums would; they come from views).
CREATE TABLE IF NOT EXISTS {database}.minute_dims_local (
    property_id {lowcard},
    minute DateTime,
    dim {lowcard},
    value String,
    views AggregateFunction(uniq, String),
    viewers AggregateFunction(uniq, String),
    concurrent AggregateFunction(uniq, String),
    rebuffering AggregateFunction(uniq, String)
) ENGINE = AggregatingMergeTree()
PARTITION BY toYYYYMMDD(minute)
ORDER BY (property_id, dim, value, minute);

CREATE TABLE IF NOT EXISTS {database}.minute_dims AS {database}.minute_dims_local
ENGINE = Distributed({cluster}, {database}, minute_dims_local, rand());

CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.minute_dims_mv TO {database}.minute_dims_local AS
SELECT property_id, toStartOfMinute(ts) AS minute, d.1 AS dim, d.2 AS value,
       uniqState(view_id) AS views,
       uniqState(viewer_id) AS viewers,
       uniqStateIf(view_id, state IN ('starting', 'playing', 'rebuffering', 'seeking', 'errored')) AS concurrent,
       uniqStateIf(view_id, state = 'rebuffering') AS rebuffering
FROM {database}.heartbeats_local
ARRAY JOIN [
    ('all', ''),
    ('country', CAST(country AS String)),
    ('device_type', CAST(device_type AS String)),
    ('os', CAST(os AS String)),
    ('browser', CAST(browser AS String)),
    ('player', CAST(player_name AS String)),
    ('cdn', CAST(cdn AS String)),
    ('stream_type', CAST(stream_type AS String)),
    ('video', video_id)
] AS d
GROUP BY property_id, minute, dim, value;
