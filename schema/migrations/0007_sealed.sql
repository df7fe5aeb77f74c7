-- Sealed days: each view that started on a settled day, collapsed once
-- (`views FINAL`) into one row, so 30-day reads scan plain rows instead
-- of collapsing millions of views each time. Written per shard by the
-- processor's seal job (`processor/src/seal.rs`); each sealing of a day is
-- a new `generation`, recorded in `sealed_days_local` after its rows, and
-- readers take each day's latest (so a day re-sealed after a late
-- heartbeat never counts twice). Days without a seal are read from `views`
-- with FINAL, as before. A replay re-seals a day to the same rows.
CREATE TABLE IF NOT EXISTS {database}.views_sealed_local AS {database}.views_local
ENGINE = MergeTree()
PARTITION BY toYYYYMMDD(view_start)
ORDER BY (property_id, view_start);

ALTER TABLE {database}.views_sealed_local {add_column} generation UInt64;

CREATE TABLE IF NOT EXISTS {database}.views_sealed AS {database}.views_sealed_local
ENGINE = Distributed({cluster}, {database}, views_sealed_local, sipHash64(view_id));

CREATE TABLE IF NOT EXISTS {database}.sealed_days_local (
    day Date,
    generation UInt64,
    sealed_at DateTime
) ENGINE = MergeTree()
ORDER BY (day, generation);
