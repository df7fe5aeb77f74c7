//! One batch: rows grouped by shard, plus the next offset to commit per
//! partition once every shard has acknowledged its rows.

use std::collections::BTreeMap;
use std::time::Instant;

use bytes::Bytes;

/// One shard's rows, already RowBinary-encoded (`schema::rows`), in the
/// chunks the workers made them in. A retry sends the very same bytes.
#[derive(Debug, Default, Clone)]
pub struct ShardRows {
    /// RowBinary rows, one chunk per worker.
    pub chunks: Vec<Bytes>,
    /// How many rows the chunks hold.
    pub count: usize,
}

impl ShardRows {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Adds a chunk of `count` rows.
    pub fn push(&mut self, chunk: Vec<u8>, count: usize) {
        if count > 0 {
            self.chunks.push(chunk.into());
            self.count += count;
        }
    }
}

/// Rows waiting for ClickHouse and the offsets they cover.
pub struct Batch {
    /// Rows per shard (index = shard number − 1).
    pub rows: Vec<ShardRows>,
    /// Shards whose rows are already written (a retry skips them).
    pub written: Vec<bool>,
    /// Next offset to commit, per partition of the consumed topic.
    pub offsets: BTreeMap<i32, i64>,
    /// Kafka records covered (rows, skipped duplicates and dead letters).
    pub records: usize,
    /// Events in those records (what `processor.batch_rows` counts).
    pub events: usize,
    /// Bytes of the records' values.
    pub bytes: usize,
    /// When the first record arrived.
    pub started: Option<Instant>,
}

impl Batch {
    /// An empty batch for `shards` shards.
    pub fn new(shards: usize) -> Self {
        Batch {
            rows: vec![ShardRows::default(); shards],
            written: vec![false; shards],
            offsets: BTreeMap::new(),
            records: 0,
            events: 0,
            bytes: 0,
            started: None,
        }
    }

    /// Notes that a record of `events` events at `offset` is covered by
    /// this batch.
    pub fn cover(&mut self, partition: i32, offset: i64, bytes: usize, events: usize) {
        self.started.get_or_insert_with(Instant::now);
        self.records += 1;
        self.events += events;
        self.bytes += bytes;
        let next = self.offsets.entry(partition).or_insert(0);
        *next = (*next).max(offset + 1);
    }

    /// Rows in the batch.
    pub fn row_count(&self) -> usize {
        self.rows.iter().map(|r| r.count).sum()
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
