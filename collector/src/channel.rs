//! The bounded hand-off between HTTP handlers and the Kafka drain workers.
//!
//! A request either gets room for *all* its events or none: the [`Backlog`]
//! reserves them atomically before anything is enqueued, so a 202 always
//! means every accepted event is in the channel, and a full channel is a
//! clean 503. The backlog counts events until the broker acknowledges them
//! (channel plus the Kafka client's queue), so memory stays bounded even
//! while the broker is down.
//!
//! What travels is a [`Record`]: the events one request carried for one
//! view, which become one Kafka record. There is one flume channel per
//! drain worker and each view's records go to the worker
//! `hash(view_id) % K`, so one view's heartbeats keep their order into
//! Kafka while K workers share the serialization work.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use qoe_schema::beacon::Event;
use qoe_schema::record::binary::MAX_EVENTS;
use qoe_schema::record::Enrichment;

use crate::metrics::metrics;

/// Records accepted and not yet acknowledged, against a fixed capacity.
#[derive(Debug)]
pub struct Backlog {
    used: AtomicUsize,
    capacity: usize,
}

impl Backlog {
    /// An empty backlog holding at most `capacity` records.
    pub fn new(capacity: usize) -> Arc<Self> {
        metrics().backlog_capacity.set(capacity as i64);
        Arc::new(Backlog {
            used: AtomicUsize::new(0),
            capacity,
        })
    }

    /// Reserves room for `n` records, all or nothing.
    pub fn try_reserve(&self, n: usize) -> bool {
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            if used + n > self.capacity {
                return false;
            }
            match self.used.compare_exchange_weak(
                used,
                used + n,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    metrics().backlog.add(n as i64);
                    return true;
                }
                Err(now) => used = now,
            }
        }
    }

    /// Gives back `n` records' room (delivered, or given up on).
    pub fn release(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::AcqRel);
        metrics().backlog.sub(n as i64);
    }

    /// Records currently held.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    /// The capacity.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

/// What one request adds to each of its events; shared by them.
#[derive(Debug)]
pub struct Origin {
    /// The property the ingest key belongs to.
    pub property_id: String,
    /// Server receive time, ms since the Unix epoch.
    pub received_at_ms: i64,
    /// Country, ASN, OS, browser and device type.
    pub enrichment: Enrichment,
    /// When the request was accepted (for the enqueue → delivery histogram).
    pub enqueued: Instant,
}

/// Accepted heartbeats on their way to Kafka as one record: 1 to
/// `binary::MAX_EVENTS` events of one view, in request order, and the
/// request they came with (together, a `schema::record::Record`).
#[derive(Debug)]
pub struct Record {
    /// The validated events, all of one view.
    pub events: Vec<Event>,
    /// Their request's property, receive time and enrichment.
    pub origin: Arc<Origin>,
}

impl Record {
    /// Groups a request's events into records: one per view (several when
    /// a view has more than `binary::MAX_EVENTS`), each view's events in
    /// request order.
    pub fn group(mut events: Vec<Event>, origin: &Arc<Origin>) -> Vec<Record> {
        // A stable sort keeps each view's events in order; an SDK batch is
        // one view, already "sorted".
        if !events.is_sorted_by(|a, b| a.view_id <= b.view_id) {
            events.sort_by(|a, b| a.view_id.cmp(&b.view_id));
        }
        let mut records: Vec<Record> = Vec::new();
        for event in events {
            match records.last_mut() {
                Some(r) if r.key() == &*event.view_id && r.events.len() < MAX_EVENTS => {
                    r.events.push(event)
                }
                _ => records.push(Record {
                    events: vec![event],
                    origin: origin.clone(),
                }),
            }
        }
        records
    }

    /// The Kafka key: the events' `view_id`.
    pub fn key(&self) -> &str {
        self.events.first().map_or("", |e| &e.view_id)
    }

    /// Appends the Kafka value (the current record format) to `buf`.
    pub fn encode_into(&self, buf: &mut Vec<u8>) {
        let o = &self.origin;
        qoe_schema::record::binary::encode(
            &o.property_id,
            o.received_at_ms,
            &o.enrichment,
            &self.events,
            buf,
        );
    }
}

/// Why records could not be enqueued.
#[derive(Debug, PartialEq, Eq)]
pub enum EnqueueError {
    /// The backlog is full: shed (503 + Retry-After).
    Full,
    /// The collector is shutting down.
    Closed,
}

/// The handlers' side of the channel. Cloning is cheap; when every clone is
/// dropped the workers drain what is left and stop.
#[derive(Clone)]
pub struct Channel {
    senders: Arc<Vec<flume::Sender<Record>>>,
    backlog: Arc<Backlog>,
}

impl Channel {
    /// A channel feeding `workers` drain workers; returns one receiver each.
    pub fn new(workers: usize, backlog: Arc<Backlog>) -> (Channel, Vec<flume::Receiver<Record>>) {
        // Each queue may hold the whole backlog: the reservation, not the
        // queue, is the bound, so a send after a reservation never fails.
        let (senders, receivers) = (0..workers.max(1))
            .map(|_| flume::bounded(backlog.capacity()))
            .unzip();
        (
            Channel {
                senders: Arc::new(senders),
                backlog,
            },
            receivers,
        )
    }

    /// Enqueues every record or none (room is reserved per event).
    pub fn enqueue(&self, records: Vec<Record>) -> Result<(), EnqueueError> {
        let events: usize = records.iter().map(|r| r.events.len()).sum();
        if events == 0 {
            return Ok(());
        }
        if !self.backlog.try_reserve(events) {
            return Err(EnqueueError::Full);
        }
        let k = self.senders.len() as u64;
        let mut left = events;
        for record in records {
            let n = record.events.len();
            let worker = (qoe_schema::rows::view_hash(record.key()) % k) as usize;
            if self.senders[worker].try_send(record).is_err() {
                // Only when the workers are gone (shutdown): give back the
                // room of everything not enqueued.
                self.backlog.release(left);
                return Err(EnqueueError::Closed);
            }
            left -= n;
            metrics().channel_depth.add(n as i64);
        }
        Ok(())
    }

    /// The shared backlog.
    pub fn backlog(&self) -> &Arc<Backlog> {
        &self.backlog
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> Arc<Origin> {
        Arc::new(Origin {
            property_id: "p".into(),
            received_at_ms: 7,
            enrichment: Enrichment {
                country: "FR".into(),
                ..Enrichment::default()
            },
            enqueued: Instant::now(),
        })
    }

    fn record(view: &str) -> Record {
        Record {
            events: vec![qoe_schema::sample::event(view, 1)],
            origin: origin(),
        }
    }

    #[test]
    fn a_record_encodes_as_its_events_with_their_origin() {
        let r = Record {
            events: vec![
                qoe_schema::sample::event("v-9", 1),
                qoe_schema::sample::event("v-9", 2),
            ],
            origin: origin(),
        };
        let mut buf = Vec::new();
        r.encode_into(&mut buf);
        let decoded = qoe_schema::record::Record::decode(&buf).unwrap();
        assert_eq!(decoded.property_id, "p");
        assert_eq!(decoded.received_at_ms, 7);
        assert_eq!(decoded.enrichment.country, "FR");
        assert_eq!(decoded.events, r.events);
        assert_eq!(r.key(), "v-9");
    }

    #[test]
    fn grouping_keeps_each_views_order_and_caps_records() {
        let mut events = Vec::new();
        for seq in 1..=3 {
            events.push(qoe_schema::sample::event("b", seq));
            events.push(qoe_schema::sample::event("a", seq));
        }
        let grouped = Record::group(events, &origin());
        let seqs: Vec<(&str, Vec<u32>)> = grouped
            .iter()
            .map(|r| (r.key(), r.events.iter().map(|e| e.seq).collect()))
            .collect();
        assert_eq!(seqs, [("a", vec![1, 2, 3]), ("b", vec![1, 2, 3])]);

        let many = (1..=MAX_EVENTS as u32 + 5)
            .map(|seq| qoe_schema::sample::event("big", seq))
            .collect();
        let grouped = Record::group(many, &origin());
        let sizes: Vec<usize> = grouped.iter().map(|r| r.events.len()).collect();
        assert_eq!(sizes, [MAX_EVENTS, 5]);
        assert_eq!(grouped[1].events[0].seq, MAX_EVENTS as u32 + 1);
    }

    #[test]
    fn all_or_nothing_reservation() {
        let backlog = Backlog::new(3);
        let (channel, receivers) = Channel::new(2, backlog.clone());
        assert_eq!(channel.enqueue(vec![record("a"), record("b")]), Ok(()));
        assert_eq!(
            channel.enqueue(vec![record("c"), record("d")]),
            Err(EnqueueError::Full)
        );
        assert_eq!(backlog.used(), 2, "a refused batch reserves nothing");
        assert_eq!(channel.enqueue(vec![record("e")]), Ok(()));
        let queued: usize = receivers.iter().map(|r| r.len()).sum();
        assert_eq!(queued, 3);
        backlog.release(3);
        assert_eq!(backlog.used(), 0);
    }

    #[test]
    fn one_view_always_goes_to_one_worker() {
        let (channel, receivers) = Channel::new(4, Backlog::new(100));
        for _ in 0..10 {
            channel.enqueue(vec![record("same-view")]).unwrap();
        }
        let lens: Vec<usize> = receivers.iter().map(|r| r.len()).collect();
        assert_eq!(lens.iter().filter(|&&n| n == 10).count(), 1, "{lens:?}");
    }
}
