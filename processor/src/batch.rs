//! One batch: rows grouped by shard, plus the next offset to commit per
//! partition once every shard has acknowledged its rows.

use std::collections::BTreeMap;
use std::time::Instant;

use qoe_schema::rows::HeartbeatRow;

/// Rows waiting for ClickHouse and the offsets they cover.
pub struct Batch {
    /// Rows per shard (index = shard number − 1).
    pub rows: Vec<Vec<HeartbeatRow>>,
    /// Shards whose rows are already written (a retry skips them).
    pub written: Vec<bool>,
    /// Next offset to commit, per (topic, partition).
    pub offsets: BTreeMap<(String, i32), i64>,
    /// Records covered (rows, skipped duplicates and dead letters).
    pub records: usize,
    /// Bytes of the records' values.
    pub bytes: usize,
    /// When the first record arrived.
    pub started: Option<Instant>,
}

impl Batch {
    /// An empty batch for `shards` shards.
    pub fn new(shards: usize) -> Self {
        Batch {
            rows: vec![Vec::new(); shards],
            written: vec![false; shards],
            offsets: BTreeMap::new(),
            records: 0,
            bytes: 0,
            started: None,
        }
    }

    /// Notes that a record at `offset` is covered by this batch.
    pub fn cover(&mut self, topic: &str, partition: i32, offset: i64, bytes: usize) {
        self.started.get_or_insert_with(Instant::now);
        self.records += 1;
        self.bytes += bytes;
        let next = self
            .offsets
            .entry((topic.to_owned(), partition))
            .or_insert(0);
        *next = (*next).max(offset + 1);
    }

    /// Rows in the batch.
    pub fn row_count(&self) -> usize {
        self.rows.iter().map(Vec::len).sum()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// Empties it (after a commit, or when a rebalance took the partitions).
    pub fn clear(&mut self) {
        let shards = self.rows.len();
        *self = Batch::new(shards);
    }
}
