-- Every key a mux-embed event carried, by its full name, with its value as
-- text (`extra_keys[i]` is worth `extra_values[i]`; two arrays rather than
-- a `Map`, which ClickHouse 18.x lacks). Nothing the SDK sends is lost, and
-- a processor taking a view over replays these to rebuild the view's state
-- (`processor/src/mux.rs`). Empty for other formats; rows written before
-- read empty. Re-running is harmless: a column that exists is skipped.
ALTER TABLE {database}.heartbeats_local {add_column} extra_keys Array(String);

ALTER TABLE {database}.heartbeats {add_column} extra_keys Array(String);

ALTER TABLE {database}.heartbeats_local {add_column} extra_values Array(String);

ALTER TABLE {database}.heartbeats {add_column} extra_values Array(String);
