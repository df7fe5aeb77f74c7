//! The bounded hand-off between HTTP handlers and the Kafka drain workers.
//!
//! A request either gets room for *all* its events or none: the [`Backlog`]
//! reserves them atomically before anything is enqueued, so a 202 always
//! means every accepted event is in the channel, and a full channel is a
//! clean 503. The backlog counts events until the broker acknowledges them
//! (channel plus the Kafka client's queue), so memory stays bounded even
//! while the broker is down.
//!
//! What travels is a [`Queued`] Kafka record, already encoded: the events
//! one request carried for one view (`schema::record::Record`). Encoding
//! happens here, in the handler, because with the [`Journal`] on the bytes
//! are appended to it before the request is answered. There is
//! one flume channel per drain worker and each view's records go to the
//! worker `hash(view_id) % K`, so one view's heartbeats keep their order
//! into Kafka while K workers share the serialization work.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use qoe_schema::record::Record;

use crate::journal::Journal;
use crate::metrics::metrics;
use crate::spill::Frame;

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

    /// Takes room for `n` records even beyond the capacity: for records
    /// accepted by an earlier run (the spill), which must not be refused.
    pub fn force_reserve(&self, n: usize) {
        self.used.fetch_add(n, Ordering::AcqRel);
        metrics().backlog.add(n as i64);
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

/// One Kafka record on its way: a view's events from one request
/// (`schema::record::Record`, grouped by `Record::group`), encoded, with
/// when the request was accepted (for the enqueue → delivery histogram)
/// and its journal slot.
#[derive(Debug)]
pub struct Queued {
    /// Key (`view_id`), encoded record and event count.
    pub frame: Frame,
    /// When its request was accepted.
    pub enqueued: Instant,
    /// The journal segment slot its delivery reports to, if journaled.
    pub slot: Option<u16>,
}

/// Why records could not be enqueued.
#[derive(Debug)]
pub enum EnqueueError {
    /// The backlog is full: shed (503 + Retry-After).
    Full,
    /// The collector is shutting down.
    Closed,
    /// The journal could not be written (a full or failing disk): shed.
    Journal(std::io::Error),
}

impl PartialEq for EnqueueError {
    fn eq(&self, other: &Self) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
    }
}

/// The handlers' side of the channel. Cloning is cheap; when every clone is
/// dropped the workers drain what is left and stop.
#[derive(Clone)]
pub struct Channel {
    senders: Arc<Vec<flume::Sender<Queued>>>,
    backlog: Arc<Backlog>,
    journal: Option<Arc<Journal>>,
}

impl Channel {
    /// A channel feeding `workers` drain workers, journaling what it
    /// takes if given a journal; returns one receiver per worker.
    pub fn new(
        workers: usize,
        backlog: Arc<Backlog>,
        journal: Option<Arc<Journal>>,
    ) -> (Channel, Vec<flume::Receiver<Queued>>) {
        // Each queue may hold the whole backlog: the reservation, not the
        // queue, is the bound, so a send after a reservation never fails.
        let (senders, receivers) = (0..workers.max(1))
            .map(|_| flume::bounded(backlog.capacity()))
            .unzip();
        (
            Channel {
                senders: Arc::new(senders),
                backlog,
                journal,
            },
            receivers,
        )
    }

    /// Enqueues every record or none (room is reserved per event), each
    /// stamped with `enqueued` (when its request was accepted). With a
    /// journal, the records are in it when this returns `Ok`.
    pub fn enqueue(&self, records: Vec<Record>, enqueued: Instant) -> Result<(), EnqueueError> {
        let events: usize = records.iter().map(|r| r.events.len()).sum();
        if events == 0 {
            return Ok(());
        }
        if !self.backlog.try_reserve(events) {
            return Err(EnqueueError::Full);
        }
        let workers: Vec<usize> = records.iter().map(|r| self.worker_of(r.key())).collect();
        let frames: Vec<Frame> = records
            .iter()
            .map(|record| {
                let mut payload = Vec::with_capacity(256 + 128 * record.events.len());
                record.encode_into(&mut payload);
                Frame {
                    key: record.key().as_bytes().to_vec(),
                    payload,
                    events: record.events.len(),
                }
            })
            .collect();
        let slot = match &self.journal {
            None => None,
            Some(journal) => match journal.append(&frames) {
                Ok(slot) => Some(slot),
                Err(err) => {
                    self.backlog.release(events);
                    return Err(EnqueueError::Journal(err));
                }
            },
        };
        let mut left = events;
        for (frame, worker) in frames.into_iter().zip(workers) {
            let n = frame.events;
            let queued = Queued {
                frame,
                enqueued,
                slot,
            };
            if self.senders[worker].try_send(queued).is_err() {
                // Only when the workers are gone (shutdown): give back the
                // room of everything not enqueued. The refused records stay
                // in the journal until the stop retires it; a client's
                // retry of the request duplicates the ones already sent,
                // which downstream collapses.
                self.backlog.release(left);
                return Err(EnqueueError::Closed);
            }
            left -= n;
            metrics().channel_depth.add(n as i64);
        }
        Ok(())
    }

    /// The drain worker for `record`'s view.
    fn worker_of(&self, view_id: &str) -> usize {
        match self.senders.len() {
            1 => 0,
            k => (qoe_schema::rows::view_hash(view_id) % k as u64) as usize,
        }
    }

    /// The shared backlog.
    pub fn backlog(&self) -> &Arc<Backlog> {
        &self.backlog
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(view: &str) -> Record {
        Record {
            property_id: "p".into(),
            received_at_ms: 7,
            enrichment: Default::default(),
            events: vec![qoe_schema::sample::event(view, 1)],
        }
    }

    #[test]
    fn all_or_nothing_reservation() {
        let backlog = Backlog::new(3);
        let (channel, receivers) = Channel::new(2, backlog.clone(), None);
        assert_eq!(
            channel.enqueue(vec![record("a"), record("b")], Instant::now()),
            Ok(())
        );
        assert_eq!(
            channel.enqueue(vec![record("c"), record("d")], Instant::now()),
            Err(EnqueueError::Full)
        );
        assert_eq!(backlog.used(), 2, "a refused batch reserves nothing");
        assert_eq!(channel.enqueue(vec![record("e")], Instant::now()), Ok(()));
        let queued: usize = receivers.iter().map(|r| r.len()).sum();
        assert_eq!(queued, 3);
        backlog.release(3);
        assert_eq!(backlog.used(), 0);
    }

    #[test]
    fn one_view_always_goes_to_one_worker() {
        let (channel, receivers) = Channel::new(4, Backlog::new(100), None);
        for _ in 0..10 {
            channel
                .enqueue(vec![record("same-view")], Instant::now())
                .unwrap();
        }
        let lens: Vec<usize> = receivers.iter().map(|r| r.len()).collect();
        assert_eq!(lens.iter().filter(|&&n| n == 10).count(), 1, "{lens:?}");
    }
}
