-- The forward buffer length at each event, ms (`buffer_length_ms`; CMCD
-- calls it `bl`). Raw heartbeats only: no metric reads it yet, and `views`
-- keeps what the metrics need. Rows written before read 0, as the record
-- formats do for a field they lack. Re-running is harmless: a column that
-- exists is skipped.
ALTER TABLE {database}.heartbeats_local {add_column} buffer_length_ms UInt64;

ALTER TABLE {database}.heartbeats {add_column} buffer_length_ms UInt64;
