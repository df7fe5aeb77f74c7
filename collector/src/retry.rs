//! Records to produce again: deliveries that failed (whatever the error),
//! records the Kafka client refused at hand-off, and records replayed from
//! the spill directory. They keep their room in the backlog until the broker
//! acknowledges them, so while the broker keeps failing the backlog fills and
//! the edge sheds new requests (503) instead of dropping accepted ones.
//!
//! One thread resends them, backing off while failures come in a row (100 ms
//! doubling to 5 s; any acknowledged record resets it). A retried record may
//! overtake a later record of the same view; that is harmless, because a
//! view's truth is its highest `seq` and older `seq`s are still written
//! (`processor::views`).

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::producer::ThreadedProducer;

use crate::metrics::metrics;
use crate::producer::{failure_reason, produce, DeliveryContext, Sent};
use crate::spill::Frame;

/// A record to produce again, with its delivery bookkeeping.
#[derive(Debug)]
pub struct Retry {
    /// Key and encoded payload.
    pub frame: Frame,
    /// Event count, replay flag and enqueue time.
    pub(crate) sent: Sent,
}

/// The queue of records to produce again and the failure streak that sets
/// the back-off. Cheap to clone.
#[derive(Clone)]
pub struct Retries {
    tx: flume::Sender<Retry>,
    rx: flume::Receiver<Retry>,
    streak: Arc<AtomicU32>,
}

impl Default for Retries {
    fn default() -> Self {
        let (tx, rx) = flume::unbounded();
        Retries {
            tx,
            rx,
            streak: Arc::default(),
        }
    }
}

impl Retries {
    /// A delivery or hand-off failed: queue the record again. The queue is
    /// unbounded in records but every record in it holds its backlog room,
    /// so it is bounded by `producer.channel_capacity` events.
    pub fn failed(&self, retry: Retry) {
        self.streak.fetch_add(1, Ordering::Relaxed);
        metrics().retry_queue.add(retry.sent.events as i64);
        // The receiver lives as long as any `Retries`: this cannot fail.
        let _ = self.tx.send(retry);
    }

    /// A record was acknowledged: the broker is taking records again.
    pub fn succeeded(&self) {
        if self.streak.load(Ordering::Relaxed) != 0 {
            self.streak.store(0, Ordering::Relaxed);
        }
    }

    /// Queues a record from the spill directory (no failure behind it).
    pub fn replay(&self, retry: Retry) {
        metrics().retry_queue.add(retry.sent.events as i64);
        let _ = self.tx.send(retry);
    }

    /// Everything queued now (for the spill at the deadline).
    pub fn take_all(&self) -> Vec<Retry> {
        let taken: Vec<Retry> = self.rx.try_iter().collect();
        let events: usize = taken.iter().map(|r| r.sent.events).sum();
        metrics().retry_queue.sub(events as i64);
        taken
    }

    fn backoff(&self) -> Duration {
        match self.streak.load(Ordering::Relaxed) {
            0 => Duration::ZERO,
            n => Duration::from_millis(100 << n.min(6)).min(Duration::from_secs(5)),
        }
    }
}

/// The resend loop: runs until `stop`, then returns what it still held
/// (which the caller spills).
pub fn resend_loop(
    retries: Retries,
    producer: Arc<ThreadedProducer<DeliveryContext>>,
    topic: String,
    stop: Arc<AtomicBool>,
) -> Vec<Retry> {
    let stopped = || stop.load(Ordering::Relaxed);
    let tick = Duration::from_millis(50);
    let mut pending: Vec<Retry> = Vec::new();
    loop {
        if stopped() {
            return pending;
        }
        if pending.is_empty() {
            match retries.rx.recv_timeout(tick) {
                Ok(r) => pending.push(r),
                Err(flume::RecvTimeoutError::Timeout) => continue,
                Err(flume::RecvTimeoutError::Disconnected) => return pending,
            }
        }
        pending.extend(retries.rx.try_iter());
        // Back off while the broker keeps failing, waking to notice `stop`.
        let mut wait = retries.backoff();
        while !wait.is_zero() && !stopped() {
            let step = wait.min(tick);
            std::thread::sleep(step);
            wait -= step;
        }
        let mut kept = Vec::new();
        for retry in pending.drain(..) {
            if stopped() {
                kept.push(retry);
                continue;
            }
            let events = retry.sent.events as i64;
            let (key, payload) = (&retry.frame.key[..], &retry.frame.payload[..]);
            match produce(&producer, &topic, key, payload, retry.sent, &stop) {
                Ok(()) => {
                    let m = metrics();
                    m.retry_queue.sub(events);
                    m.retried.inc_by(events as u64);
                    m.producer_queue.add(events);
                }
                Err(err) => {
                    let reason = failure_reason(&err);
                    metrics()
                        .delivery_errors
                        .with_label_values(&[reason])
                        .inc_by(events as u64);
                    retries.streak.fetch_add(1, Ordering::Relaxed);
                    kept.push(retry);
                }
            }
        }
        pending = kept;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn retry(events: usize) -> Retry {
        Retry {
            frame: Frame {
                key: b"v".to_vec(),
                payload: vec![1, 2, 3],
                events,
            },
            sent: Sent::new(events, Instant::now(), None),
        }
    }

    #[test]
    fn back_off_grows_with_the_failure_streak_and_resets_on_success() {
        let r = Retries::default();
        assert_eq!(r.backoff(), Duration::ZERO);
        r.failed(retry(1));
        assert_eq!(r.backoff(), Duration::from_millis(200));
        for _ in 0..10 {
            r.failed(retry(1));
        }
        assert_eq!(r.backoff(), Duration::from_secs(5));
        r.succeeded();
        assert_eq!(r.backoff(), Duration::ZERO);
        assert_eq!(r.take_all().len(), 11, "every failed record is kept");
        assert!(r.take_all().is_empty());
    }
}
