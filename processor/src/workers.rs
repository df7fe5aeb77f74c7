//! The worker pool: records are spread over `processor.workers` threads by
//! the hash of their Kafka key, so every update of a view is decoded,
//! deduplicated and encoded into its shard's RowBinary rows by the same
//! worker, which owns its views outright — no lock on the hot path.
//!
//! The Kafka key is the `view_id` of beacons and mux-embed events and the
//! session of CMCD reports (the collector's contract), so the consume loop
//! routes a record by hashing its key without decoding it; the decoding,
//! the CPU-heavy part, happens on the workers. CMCD reports and mux-embed
//! events go through the worker's [`Sessions`] first (one per format),
//! which turn them into the rows beacons would make. A player posts each
//! report on its own, so two of a session can arrive swapped (a seek and
//! the stall after it, a few ms apart): the worker holds a batch's sparse
//! events until the flush and applies them in sequence order. Records
//! travel in chunks to keep channel wake-ups rare, over bounded channels so
//! a slow worker slows the consumer instead of growing a queue.
//!
//! At a flush the loop asks every worker for its rows (`collect`); because
//! each channel is FIFO, the answer covers every record routed before it, so
//! the offsets the loop tracked are exactly the ones the rows cover.

use std::sync::Arc;
use std::thread::JoinHandle;

use qoe_schema::beacon::Event;
use qoe_schema::record::Record as Decoded;
use qoe_schema::rows::{shard_for, view_hash, write_row_binary};

use qoe_schema::record::Source;

use crate::batch::ShardRows;
use crate::mux::MuxView;
use crate::sessions::{Fold, Resume, Session, Sessions};
use crate::views::{Seen, ViewTable};

/// Records per chunk sent to a worker.
const CHUNK: usize = 256;
/// Chunks a worker may have queued before the consume loop waits for it.
const QUEUE_CHUNKS: usize = 16;

/// One Kafka record, copied out of the consumer's buffer.
pub struct Record {
    /// The record's value (an encoded heartbeat).
    pub payload: Vec<u8>,
    /// The record's key (the `view_id`), kept for the dead-letter copy.
    pub key: Option<Vec<u8>>,
    /// Where it was read (the topic is the one the processor consumes).
    pub partition: i32,
    /// Its offset in `partition`.
    pub offset: i64,
}

/// A record that cannot be processed, and why.
pub struct DeadLetter {
    /// The record as it was read.
    pub record: Record,
    /// `schema::record::RecordError::reason()`, or `invalid`.
    pub reason: &'static str,
}

/// What the workers produced since the last collect.
pub struct Output {
    /// Rows per shard.
    pub rows: Vec<ShardRows>,
    /// Records for the dead-letter topic.
    pub dead_letters: Vec<DeadLetter>,
}

enum Command {
    Records(Vec<Record>),
    Collect(flume::Sender<Output>),
    Expire(i64),
    Clear,
}

/// The threads and the loop's side of their channels.
pub struct Pool {
    senders: Vec<flume::Sender<Command>>,
    pending: Vec<Vec<Record>>,
    threads: Vec<JoinHandle<()>>,
    shards: usize,
}

impl Pool {
    /// Starts `workers` threads (at least one) writing rows for `shards`
    /// shards, sharing `max_open_views` between them (and as many CMCD
    /// sessions and as many mux-embed views, which `resume` reads back
    /// when a worker meets one it does not know).
    pub fn start(
        workers: usize,
        shards: usize,
        max_open_views: usize,
        view_timeout_ms: i64,
        resume: Arc<dyn Resume>,
    ) -> Pool {
        let workers = workers.max(1);
        let mut senders = Vec::with_capacity(workers);
        let mut threads = Vec::with_capacity(workers);
        for i in 0..workers {
            let (tx, rx) = flume::bounded(QUEUE_CHUNKS);
            let views = ViewTable::new(max_open_views / workers, view_timeout_ms);
            let cap = max_open_views / workers;
            let worker = Worker {
                views,
                sessions: Sessions::new(cap, view_timeout_ms, resume.clone()),
                mux: Sessions::new(cap, view_timeout_ms, resume.clone()),
                reports: Vec::new(),
                rows: vec![Encoded::default(); shards],
                dead_letters: Vec::new(),
            };
            let thread = std::thread::Builder::new()
                .name(format!("qoe-worker-{i}"))
                .spawn(move || worker.run(rx))
                .expect("cannot start a worker thread");
            senders.push(tx);
            threads.push(thread);
        }
        Pool {
            pending: (0..workers).map(|_| Vec::with_capacity(CHUNK)).collect(),
            senders,
            threads,
            shards,
        }
    }

    /// The worker that owns the view or session `key` names.
    pub fn worker_for(&self, key: &[u8]) -> usize {
        // Not the bits that pick the shard, so workers stay balanced
        // whatever the shard count.
        let hash = view_hash(std::str::from_utf8(key).unwrap_or(""));
        ((hash >> 32) % self.senders.len() as u64) as usize
    }

    /// Hands `record` to the worker of its view or session.
    pub async fn push(&mut self, record: Record) {
        let worker = self.worker_for(record.key.as_deref().unwrap_or_default());
        self.pending[worker].push(record);
        if self.pending[worker].len() >= CHUNK {
            self.send_pending(worker).await;
        }
    }

    /// Everything the workers made of the records pushed so far.
    pub async fn collect(&mut self) -> Output {
        let mut out = Output {
            rows: vec![ShardRows::default(); self.shards],
            dead_letters: Vec::new(),
        };
        let mut replies = Vec::with_capacity(self.senders.len());
        for worker in 0..self.senders.len() {
            self.send_pending(worker).await;
            let (tx, rx) = flume::bounded(1);
            self.send(worker, Command::Collect(tx)).await;
            replies.push(rx);
        }
        for rx in replies {
            let Ok(part) = rx.recv_async().await else {
                continue;
            };
            for (all, rows) in out.rows.iter_mut().zip(part.rows) {
                all.chunks.extend(rows.chunks);
                all.count += rows.count;
            }
            out.dead_letters.extend(part.dead_letters);
        }
        out
    }

    /// Closes views idle for the timeout as of `now_ms`.
    pub async fn expire(&mut self, now_ms: i64) {
        for worker in 0..self.senders.len() {
            self.send(worker, Command::Expire(now_ms)).await;
        }
    }

    /// Drops every pending record, row and view (a rebalance took the
    /// partitions: their records will be read again).
    pub async fn clear(&mut self) {
        for worker in 0..self.senders.len() {
            self.pending[worker].clear();
            self.send(worker, Command::Clear).await;
        }
    }

    async fn send_pending(&mut self, worker: usize) {
        if self.pending[worker].is_empty() {
            return;
        }
        let chunk = std::mem::replace(&mut self.pending[worker], Vec::with_capacity(CHUNK));
        self.send(worker, Command::Records(chunk)).await;
    }

    async fn send(&self, worker: usize, command: Command) {
        // A worker only stops when the pool is dropped; a panicked one is
        // a bug, and losing its records must not go unnoticed.
        if self.senders[worker].send_async(command).await.is_err() {
            tracing::error!(worker, "a processor worker has died");
            std::process::abort();
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.senders.clear();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// One worker's state: its views and the rows it made since the last
/// collect.
struct Worker {
    views: ViewTable,
    sessions: Sessions<Session>,
    mux: Sessions<MuxView>,
    /// The sparse events of this batch (a record and an event of it),
    /// applied in `sn` (`xsqno`) order at the flush.
    reports: Vec<(Arc<Decoded>, usize)>,
    rows: Vec<Encoded>,
    dead_letters: Vec<DeadLetter>,
}

/// One shard's rows being encoded by one worker.
#[derive(Default, Clone)]
struct Encoded {
    bytes: Vec<u8>,
    count: usize,
}

impl Worker {
    fn run(mut self, rx: flume::Receiver<Command>) {
        while let Ok(command) = rx.recv() {
            match command {
                Command::Records(records) => {
                    for record in records {
                        self.take(record);
                    }
                }
                Command::Collect(reply) => {
                    self.apply_reports();
                    let rows = self
                        .rows
                        .iter_mut()
                        .map(|shard| {
                            let mut out = ShardRows::default();
                            // Presize the next buffer like this one: no regrowth.
                            let next = Vec::with_capacity(shard.bytes.capacity());
                            out.push(std::mem::replace(&mut shard.bytes, next), shard.count);
                            shard.count = 0;
                            out
                        })
                        .collect();
                    let _ = reply.send(Output {
                        rows,
                        dead_letters: std::mem::take(&mut self.dead_letters),
                    });
                }
                Command::Expire(now_ms) => {
                    self.views.expire(now_ms);
                    self.sessions.expire(now_ms);
                    self.mux.expire(now_ms);
                }
                Command::Clear => {
                    self.views.clear();
                    self.sessions.clear();
                    self.mux.clear();
                    self.reports.clear();
                    self.rows.iter_mut().for_each(|shard| {
                        shard.bytes.clear();
                        shard.count = 0;
                    });
                    self.dead_letters.clear();
                }
            }
        }
    }

    fn take(&mut self, record: Record) {
        let decoded = match decode(&record.payload) {
            Ok(decoded) => decoded,
            Err(reason) => return self.dead_letters.push(DeadLetter { record, reason }),
        };
        let shards = self.rows.len();
        if decoded.enrichment.source.is_sparse() {
            let decoded = Arc::new(decoded);
            for i in 0..decoded.events.len() {
                self.reports.push((decoded.clone(), i));
            }
            return;
        }
        // Every event of a record belongs to one view, hence one shard.
        let shard = &mut self.rows[shard_for(&decoded.events[0].view_id, shards)];
        for event in &decoded.events {
            if self.views.observe(&decoded.property_id, event) != Seen::Duplicate {
                write_row_binary(&decoded, event, &mut shard.bytes);
                shard.count += 1;
            }
        }
    }
}

impl Worker {
    /// Applies the batch's sparse events, each session's (CMCD) or view's
    /// (mux-embed) in sequence order, and encodes the rows they make (a
    /// content change writes a row of another view: each row goes to its
    /// own view's shard).
    fn apply_reports(&mut self) {
        let mut reports = std::mem::take(&mut self.reports);
        let key = |(record, i): &(Arc<Decoded>, usize)| {
            let e = &record.events[*i];
            let source = record.enrichment.source;
            let key = match source {
                Source::MuxEmbed => MuxView::key(&e.view_id),
                _ => Session::key(&e.view_id),
            };
            (
                source as u8,
                record.property_id.clone(),
                key.to_owned(),
                e.seq,
            )
        };
        reports.sort_by_cached_key(key);
        let shards = self.rows.len();
        let mut rows: Vec<Event> = Vec::new();
        for (record, i) in reports.drain(..) {
            let (property, e) = (&record.property_id, &record.events[i]);
            match record.enrichment.source {
                Source::MuxEmbed => self.mux.apply(property, e, &mut rows),
                _ => self.sessions.apply(property, e, &mut rows),
            }
            for row in rows.drain(..) {
                let shard = &mut self.rows[shard_for(&row.view_id, shards)];
                write_row_binary(&record, &row, &mut shard.bytes);
                shard.count += 1;
            }
        }
        self.reports = reports;
    }
}

/// Decodes a record, or says why it goes to the dead-letter topic.
fn decode(payload: &[u8]) -> Result<Decoded, &'static str> {
    let decoded = Decoded::decode(payload).map_err(|e| e.reason())?;
    if decoded.key().is_empty() || decoded.property_id.is_empty() {
        return Err("invalid");
    }
    Ok(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sessions::Forgetful;
    use qoe_schema::record::Enrichment;

    /// A Kafka record of `view`'s events with these `seqs`.
    fn events(view: &str, seqs: &[u32]) -> Record {
        let decoded = Decoded {
            property_id: "p".into(),
            received_at_ms: qoe_schema::sample::NOW_MS,
            enrichment: Enrichment::default(),
            events: seqs
                .iter()
                .map(|&seq| qoe_schema::sample::event(view, seq))
                .collect(),
        };
        let mut payload = Vec::new();
        decoded.encode_into(&mut payload);
        Record {
            payload,
            key: Some(view.as_bytes().to_vec()),
            partition: 0,
            offset: i64::from(seqs[0]),
        }
    }

    fn record(view: &str, seq: u32) -> Record {
        events(view, &[seq])
    }

    /// The `view_id` of each row: the second RowBinary column, after the
    /// property (both under 128 bytes: one length byte). Rows of `record()`
    /// differ only in view and seq (fixed width), so each row's length is
    /// that of a fresh encoding of its view.
    fn read_views(rows: &ShardRows) -> Vec<String> {
        let all = rows.chunks.concat();
        let mut found = Vec::new();
        let mut at = 0;
        while at < all.len() {
            let view_at = at + 2 + usize::from(all[at]);
            let view_len = usize::from(all[view_at - 1]);
            let view = std::str::from_utf8(&all[view_at..view_at + view_len]).unwrap();
            let mut row = Vec::new();
            let decoded = Decoded::decode(&record(view, 1).payload).unwrap();
            write_row_binary(&decoded, &decoded.events[0], &mut row);
            at += row.len();
            found.push(view.to_owned());
        }
        assert_eq!(found.len(), rows.count);
        found
    }

    #[tokio::test]
    async fn a_view_always_goes_to_the_same_worker() {
        let pool = Pool::start(4, 2, 1000, 60_000, Arc::new(Forgetful));
        let mut used = std::collections::HashSet::new();
        for i in 0..200 {
            let key = format!("view-{i}");
            let w = pool.worker_for(key.as_bytes());
            assert_eq!(w, pool.worker_for(key.as_bytes()));
            used.insert(w);
        }
        assert_eq!(used.len(), 4, "views spread over every worker");
    }

    #[tokio::test]
    async fn rows_dead_letters_and_duplicates_across_workers() {
        let mut pool = Pool::start(3, 2, 1000, 60_000, Arc::new(Forgetful));
        for i in 0..100 {
            pool.push(record(&format!("v{i}"), 1)).await;
            pool.push(record(&format!("v{i}"), 1)).await; // duplicate: skipped
            pool.push(record(&format!("v{i}"), 2)).await;
        }
        pool.push(Record {
            payload: b"not a heartbeat".to_vec(),
            key: None,
            partition: 0,
            offset: 999,
        })
        .await;
        let out = pool.collect().await;
        assert_eq!(out.rows.iter().map(|r| r.count).sum::<usize>(), 200);
        // Both shards get rows and no view is split between them (where
        // ClickHouse puts each view is schema/tests/clickhouse.rs's test).
        let per_shard: Vec<std::collections::BTreeSet<String>> = out
            .rows
            .iter()
            .map(|rows| read_views(rows).into_iter().collect())
            .collect();
        assert!(per_shard.iter().all(|views| !views.is_empty()));
        assert!(per_shard[0].is_disjoint(&per_shard[1]));
        assert_eq!(per_shard[0].len() + per_shard[1].len(), 100);
        assert_eq!(out.dead_letters.len(), 1);
        assert_eq!(out.dead_letters[0].reason, "malformed");
        // Collected rows are handed over once; the views are remembered.
        pool.push(record("v1", 2)).await;
        let again = pool.collect().await;
        assert_eq!(again.rows.iter().map(|r| r.count).sum::<usize>(), 0);
        pool.clear().await;
        pool.push(record("v1", 2)).await;
        let after_clear = pool.collect().await;
        assert_eq!(after_clear.rows.iter().map(|r| r.count).sum::<usize>(), 1);
    }

    /// A CMCD record of one report of session `s` with `sn` and `keys`.
    fn report(sn: u32, ms: i64, keys: &str) -> Record {
        let ts = qoe_schema::sample::NOW_MS + ms;
        let line = format!("sid=\"s\",sn={sn},ts={ts},{keys}");
        let checks = qoe_schema::validate::Checks::at(ts);
        let decoded = Decoded {
            property_id: "p".into(),
            received_at_ms: ts,
            enrichment: Enrichment {
                source: qoe_schema::record::Source::Cmcd,
                ..Enrichment::default()
            },
            events: qoe_schema::cmcd::decode(line.as_bytes(), &checks)
                .expect("CMCD")
                .accepted,
        };
        let mut payload = Vec::new();
        decoded.encode_into(&mut payload);
        Record {
            payload,
            key: Some(b"s".to_vec()),
            partition: 0,
            offset: i64::from(sn),
        }
    }

    #[tokio::test]
    async fn a_batchs_reports_are_applied_in_sn_order() {
        let mut pool = Pool::start(2, 2, 1000, 60_000, Arc::new(Forgetful));
        // The stall after the seek arrived before the seek.
        for (sn, ms, keys) in [
            (0, 0, "e=ps,sta=s"),
            (1, 500, "e=ps,sta=p"),
            (3, 9001, "e=ps,sta=r"),
            (2, 9000, "e=ps,sta=k"),
            (4, 9800, "e=ps,sta=p"),
            (4, 9800, "e=ps,sta=p"),
        ] {
            pool.push(report(sn, ms, keys)).await;
        }
        let out = pool.collect().await;
        // In arrival order, the seek (sn 2) would come after sn 3 and be
        // dropped as late: one row fewer. The repeat writes none.
        assert_eq!(out.rows.iter().map(|r| r.count).sum::<usize>(), 5);
    }

    #[tokio::test]
    async fn every_event_of_a_record_becomes_a_row_unless_a_duplicate() {
        let mut pool = Pool::start(2, 2, 1000, 60_000, Arc::new(Forgetful));
        pool.push(events("batched", &[1, 2, 2, 3])).await;
        pool.push(events("batched", &[3, 4])).await;
        let out = pool.collect().await;
        assert_eq!(out.rows.iter().map(|r| r.count).sum::<usize>(), 4);
        let counts: Vec<usize> = out.rows.iter().map(|r| r.count).collect();
        assert!(
            counts == [4, 0] || counts == [0, 4],
            "one view, one shard: {counts:?}"
        );
        assert!(out.dead_letters.is_empty());
    }
}
