-- The per-minute states of 0003 (`minute_dims`) had no reader besides
-- tests, and the live tables of 0005 answer concurrency every 5 seconds.
-- Dropping the materialized view takes its work off every insert.
DROP TABLE IF EXISTS {database}.minute_dims_mv;

DROP TABLE IF EXISTS {database}.minute_dims;

DROP TABLE IF EXISTS {database}.minute_dims_local;
