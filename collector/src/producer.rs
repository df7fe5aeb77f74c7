//! K drain workers: each takes records (one view's events from one request)
//! from its channel, serializes them and hands them to one shared,
//! thread-safe rdkafka producer (`acks=all`, lz4). Delivery reports
//! release the backlog and feed the metrics, per event. Nothing leaves the
//! backlog until the broker acknowledged it: a failed delivery, whatever its
//! error, goes to [`crate::retry`] and is produced again, and what is still
//! undelivered at the shutdown deadline is written to the spill directory
//! ([`crate::spill`]) and produced again at the next start.
//!
//! A worker takes everything queued in one go. While records keep coming it
//! naps between rounds instead of sleeping on the channel: a sleeping
//! receiver must be woken by every send, and on a busy node those wake-ups
//! (a futex call and a context switch per record) cost more than the
//! serialization. The nap is a tenth of the Kafka client's own `linger.ms`
//! (1 to 5 ms: 5 with the default 50 ms linger), so it adds little to the
//! time a record waits anyway, while each worker wakes at most a few hundred
//! times a second: on a node with more workers than cores, every wake-up
//! preempts the HTTP handlers. An idle worker goes back to sleeping on the
//! channel, so an idle collector does not poll.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{
    BaseRecord, DeliveryResult, Producer as _, ProducerContext, ThreadedProducer,
};
use rdkafka::{ClientConfig, ClientContext, Message as _};

use qoe_common::config::KafkaConfig;
use qoe_common::health::Probe;

use crate::channel::{Backlog, Queued};
use crate::config::ProducerConfig;
use crate::journal::Journal;
use crate::metrics::metrics;
use crate::retry::{Retries, Retry};
use crate::spill::{self, Frame};

/// How long a busy drain worker waits between rounds, for a `linger.ms`.
fn nap(linger: Duration) -> Duration {
    (linger / 10).clamp(Duration::from_millis(1), Duration::from_millis(5))
}
/// How long a worker finding nothing keeps napping before it sleeps on its
/// channel.
const IDLE_AFTER: Duration = Duration::from_millis(20);

/// What a delivery report needs to know about its record, packed into
/// librdkafka's per-record opaque pointer (an integer: no allocation per
/// record): how many events it holds, whether it came from the spill
/// directory, its journal slot if it was journaled, and when it was
/// enqueued, in milliseconds since a process-wide epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sent {
    pub(crate) events: usize,
    pub(crate) replayed: bool,
    pub(crate) slot: Option<u16>,
    enqueued_ms: usize,
}

/// Bits for the event count (records hold at most `binary::MAX_EVENTS`).
const EVENT_BITS: u32 = 16;
const _: () = assert!(qoe_schema::record::binary::MAX_EVENTS < 1 << EVENT_BITS);
/// The bit after the count says "replayed from the spill directory", the
/// next "journaled", and the slot follows.
const REPLAYED_BIT: usize = 1 << EVENT_BITS;
const JOURNALED_BIT: usize = 1 << (EVENT_BITS + 1);
const SLOT_SHIFT: u32 = EVENT_BITS + 2;
const SLOT_BITS: u32 = 12;
const _: () = assert!(crate::journal::SLOTS == 1 << SLOT_BITS);
const TIME_SHIFT: u32 = SLOT_SHIFT + SLOT_BITS;
/// The enqueue time wraps after 2^34 ms (198 days); ages are computed
/// modulo that, so they stay right for any record younger than that.
const TIME_MASK: usize = (1 << (usize::BITS - TIME_SHIFT)) - 1;

impl Sent {
    pub(crate) fn new(events: usize, enqueued: Instant, slot: Option<u16>) -> Sent {
        Sent {
            events,
            replayed: false,
            slot,
            enqueued_ms: ms_since_epoch(enqueued),
        }
    }

    pub(crate) fn pack(self) -> usize {
        let slot = match self.slot {
            Some(slot) => JOURNALED_BIT | (slot as usize) << SLOT_SHIFT,
            None => 0,
        };
        self.enqueued_ms << TIME_SHIFT
            | slot
            | usize::from(self.replayed) << EVENT_BITS
            | self.events
    }

    fn unpack(packed: usize) -> Sent {
        Sent {
            events: packed & ((1 << EVENT_BITS) - 1),
            replayed: packed & REPLAYED_BIT != 0,
            slot: (packed & JOURNALED_BIT != 0)
                .then_some(((packed >> SLOT_SHIFT) & ((1 << SLOT_BITS) - 1)) as u16),
            enqueued_ms: packed >> TIME_SHIFT,
        }
    }

    fn age_seconds(self) -> f64 {
        elapsed_ms(ms_since_epoch(Instant::now()), self.enqueued_ms) as f64 / 1e3
    }
}

/// `now - then` in the wrapping time field.
fn elapsed_ms(now: usize, then: usize) -> usize {
    now.wrapping_sub(then) & TIME_MASK
}

fn ms_since_epoch(at: Instant) -> usize {
    at.saturating_duration_since(epoch()).as_millis() as usize & TIME_MASK
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Counts delivery reports: an acknowledged record releases its backlog, a
/// failed one goes to the retry queue with its bytes (still in the backlog).
pub struct DeliveryContext {
    backlog: Arc<Backlog>,
    retries: Retries,
    failures: RateLimitedLog,
    /// Records from the spill directory not yet acknowledged.
    replay_outstanding: Arc<AtomicU64>,
    journal: Option<Arc<Journal>>,
}

impl ClientContext for DeliveryContext {}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, packed: Self::DeliveryOpaque) {
        let m = metrics();
        let sent = Sent::unpack(packed);
        m.producer_queue.sub(sent.events as i64);
        match result {
            Ok(_) => {
                self.retries.succeeded();
                m.delivered.inc_by(sent.events as u64);
                m.delivery_seconds.observe(sent.age_seconds());
                if sent.replayed {
                    self.replay_outstanding.fetch_sub(1, Ordering::AcqRel);
                }
                if let (Some(journal), Some(slot)) = (&self.journal, sent.slot) {
                    journal.delivered(slot);
                }
                self.backlog.release(sent.events);
            }
            Err((err, message)) => {
                let reason = failure_reason(err);
                m.delivery_errors
                    .with_label_values(&[reason])
                    .inc_by(sent.events as u64);
                self.failures.warn(reason, err);
                let frame = Frame {
                    key: message.key().unwrap_or_default().to_vec(),
                    payload: message.payload().unwrap_or_default().to_vec(),
                    events: sent.events,
                };
                self.retries.failed(Retry { frame, sent });
            }
        }
    }
}

/// Hands one record to the client, waiting while its queue is full, until
/// `stop` is set (then the queue-full error is returned like any other).
/// Both the drain workers and the resend thread produce through it.
pub(crate) fn produce(
    producer: &ThreadedProducer<DeliveryContext>,
    topic: &str,
    key: &[u8],
    payload: &[u8],
    sent: Sent,
    stop: &AtomicBool,
) -> Result<(), KafkaError> {
    let mut record = BaseRecord::with_opaque_to(topic, sent.pack())
        .key(key)
        .payload(payload);
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                if !stop.load(Ordering::Relaxed) =>
            {
                // Backpressure from the client: wait for deliveries.
                record = back;
                std::thread::sleep(Duration::from_millis(2));
            }
            Err((err, _)) => return Err(err),
        }
    }
}

/// A low-cardinality name for a delivery error.
pub(crate) fn failure_reason(err: &KafkaError) -> &'static str {
    match err.rdkafka_error_code() {
        Some(RDKafkaErrorCode::MessageTimedOut) => "timed_out",
        Some(RDKafkaErrorCode::MessageSizeTooLarge) => "too_large",
        Some(RDKafkaErrorCode::UnknownTopicOrPartition) => "unknown_topic",
        Some(RDKafkaErrorCode::TopicAuthorizationFailed) => "not_authorized",
        Some(RDKafkaErrorCode::DuplicateSequenceNumber)
        | Some(RDKafkaErrorCode::OutOfOrderSequenceNumber)
        | Some(RDKafkaErrorCode::UnknownProducerId)
        | Some(RDKafkaErrorCode::InvalidProducerEpoch) => "producer_sequence",
        Some(RDKafkaErrorCode::Unknown) => "broker_error",
        Some(RDKafkaErrorCode::PurgeQueue) | Some(RDKafkaErrorCode::PurgeInflight) => {
            "purged_at_deadline"
        }
        Some(RDKafkaErrorCode::Fatal) => "producer_fatal",
        _ => "other",
    }
}

/// Logs at most one warning per second, with how many were suppressed.
struct RateLimitedLog {
    last: Mutex<Option<Instant>>,
    suppressed: AtomicU64,
}

impl RateLimitedLog {
    fn new() -> Self {
        RateLimitedLog {
            last: Mutex::new(None),
            suppressed: AtomicU64::new(0),
        }
    }

    fn warn(&self, reason: &str, err: &KafkaError) {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        *last = Some(Instant::now());
        let suppressed = self.suppressed.swap(0, Ordering::Relaxed);
        tracing::warn!(reason, error = %err, suppressed, "record not delivered to Kafka");
    }
}

/// The running drain workers, the resend thread and their producer.
pub struct Drain {
    producer: Arc<ThreadedProducer<DeliveryContext>>,
    workers: Vec<JoinHandle<()>>,
    resender: JoinHandle<Vec<Retry>>,
    retries: Retries,
    /// Set at the shutdown deadline: workers and the resender stop
    /// producing and keep what is left for the spill.
    abandon: Arc<AtomicBool>,
    /// What workers could not hand over before the deadline.
    left_over: Arc<Mutex<Vec<Frame>>>,
    backlog: Arc<Backlog>,
    spill_dir: std::path::PathBuf,
    replay_outstanding: Arc<AtomicU64>,
    /// Whether a journal keeps every accepted record until this run ends.
    journaled: bool,
}

/// What a graceful stop achieved.
#[derive(Debug, Clone, Default)]
pub struct DrainReport {
    /// Events the broker acknowledged during the whole run.
    pub delivered: u64,
    /// Events undelivered at the deadline, written to `spill_file`.
    pub spilled: usize,
    /// The spill file written, if any.
    pub spill_file: Option<std::path::PathBuf>,
    /// Events accepted and neither delivered nor spilled (the spill write
    /// failed): lost, unless the journal keeps them for the next start.
    pub lost: usize,
}

/// The producer client settings for `cfg`.
pub fn client_config(kafka: &KafkaConfig, cfg: &ProducerConfig) -> ClientConfig {
    let mut client = qoe_common::kafka::producer_config(kafka);
    client
        .set("linger.ms", cfg.linger.as_millis().to_string())
        .set(
            "message.timeout.ms",
            cfg.delivery_timeout.as_millis().to_string(),
        )
        // The backlog bounds what is in flight; the client queue must never
        // be the tighter limit, or records would bounce between the two.
        .set(
            "queue.buffering.max.messages",
            (cfg.channel_capacity + 1000).min(2_147_483_647).to_string(),
        )
        .set("queue.buffering.max.kbytes", "2097151");
    for (key, value) in &cfg.librdkafka_options {
        client.set(key, value);
    }
    client
}

impl Drain {
    /// Creates the producer, starts one worker per receiver and the resend
    /// thread.
    pub fn start(
        kafka: &KafkaConfig,
        cfg: &ProducerConfig,
        receivers: Vec<flume::Receiver<Queued>>,
        backlog: Arc<Backlog>,
        journal: Option<Arc<Journal>>,
    ) -> Result<Drain, KafkaError> {
        let retries = Retries::default();
        let replay_outstanding = Arc::new(AtomicU64::new(0));
        let journaled = journal.is_some();
        let context = DeliveryContext {
            backlog: backlog.clone(),
            retries: retries.clone(),
            failures: RateLimitedLog::new(),
            replay_outstanding: replay_outstanding.clone(),
            journal,
        };
        let producer: ThreadedProducer<DeliveryContext> =
            client_config(kafka, cfg).create_with_context(context)?;
        let producer = Arc::new(producer);
        let abandon = Arc::new(AtomicBool::new(false));
        let left_over = Arc::new(Mutex::new(Vec::new()));
        let nap = nap(cfg.linger);
        epoch();
        let workers = receivers
            .into_iter()
            .enumerate()
            .map(|(i, rx)| {
                let producer = producer.clone();
                let abandon = abandon.clone();
                let retries = retries.clone();
                let left_over = left_over.clone();
                let topic = kafka.topic.clone();
                std::thread::Builder::new()
                    .name(format!("kafka-drain-{i}"))
                    .spawn(move || {
                        let out = Output {
                            producer: &producer,
                            topic: &topic,
                            abandon: &abandon,
                            retries: &retries,
                            left_over: &left_over,
                        };
                        drain(&rx, out, nap)
                    })
                    .expect("spawn a drain worker thread")
            })
            .collect();
        let resender = {
            let (retries, producer) = (retries.clone(), producer.clone());
            let (topic, stop) = (kafka.topic.clone(), abandon.clone());
            std::thread::Builder::new()
                .name("kafka-resend".into())
                .spawn(move || crate::retry::resend_loop(retries, producer, topic, stop))
                .expect("spawn the resend thread")
        };
        Ok(Drain {
            producer,
            workers,
            resender,
            retries,
            abandon,
            left_over,
            backlog,
            spill_dir: cfg.spill_dir.clone(),
            replay_outstanding,
            journaled,
        })
    }

    /// Produces the frames of earlier runs' spill files again. They take
    /// backlog room beyond its capacity (they were accepted before), so new
    /// requests are shed until they are delivered.
    pub fn replay(&self, frames: Vec<Frame>) {
        for frame in frames {
            self.backlog.force_reserve(frame.events);
            self.replay_outstanding.fetch_add(1, Ordering::AcqRel);
            let mut sent = Sent::new(frame.events, Instant::now(), None);
            sent.replayed = true;
            metrics().replayed.inc_by(frame.events as u64);
            self.retries.replay(Retry { frame, sent });
        }
    }

    /// How many replayed records the broker has not acknowledged yet.
    pub fn replay_outstanding(&self) -> Arc<AtomicU64> {
        self.replay_outstanding.clone()
    }

    /// A readiness probe, `kafka_producer`: passes once the producer's own
    /// client has reached the broker and learned `topic`'s partitions, and
    /// from then on unless the client hit a fatal error (the `kafka` probe
    /// keeps watching the broker). Asking through the producer warms its
    /// connection and metadata before a load balancer sends traffic; a node
    /// flooded before that holds every record until the first round trips
    /// are done, and sheds once its backlog is full.
    pub fn probe(&self, topic: String) -> Probe {
        let producer = self.producer.clone();
        let reached = Arc::new(AtomicBool::new(false));
        Probe::new("kafka_producer", move || {
            let (producer, reached, topic) = (producer.clone(), reached.clone(), topic.clone());
            async move {
                if let Some((code, reason)) = producer.client().fatal_error() {
                    return Err(format!(
                        "the producer hit a fatal error ({code:?}: {reason}); restart the \
                         collector (SIGTERM spills what is undelivered)"
                    ));
                }
                if reached.load(Ordering::Relaxed) {
                    return Ok(());
                }
                tokio::task::spawn_blocking(move || {
                    producer
                        .client()
                        .fetch_metadata(Some(&topic), Duration::from_millis(1500))
                        .map_err(|e| format!("the producer has not reached the broker: {e}"))?;
                    reached.store(true, Ordering::Relaxed);
                    Ok(())
                })
                .await
                .map_err(|e| format!("probe task failed: {e}"))?
            }
        })
    }

    /// Waits until every channel is drained into the producer and every
    /// record acknowledged, or `deadline` passes; then writes what is still
    /// undelivered to the spill directory. Call after the last
    /// [`crate::channel::Channel`] clone is dropped.
    pub fn finish(self, deadline: Instant) -> DrainReport {
        // Workers end when their channel is closed and empty; one stuck on a
        // full client queue stops producing at the deadline.
        let watchdog = {
            let abandon = self.abandon.clone();
            std::thread::spawn(move || {
                while Instant::now() < deadline && !abandon.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(20));
                }
                abandon.store(true, Ordering::Relaxed);
            })
        };
        for worker in self.workers {
            let _ = worker.join();
        }
        // Failed deliveries come back through the resend thread, so the
        // backlog, not the client's queue, says when everything is in.
        while self.backlog.used() > 0 && Instant::now() < deadline {
            let _ = self.producer.flush(Duration::from_millis(50));
        }
        self.abandon.store(true, Ordering::Relaxed);
        let _ = watchdog.join();
        let mut frames =
            std::mem::take(&mut *self.left_over.lock().unwrap_or_else(|e| e.into_inner()));
        let resending = self.resender.join().unwrap_or_default();
        if self.backlog.used() > 0 {
            // Take the client's records back: each comes to the delivery
            // callback as a purge error, which queues it for retry.
            self.producer
                .purge(rdkafka::producer::PurgeConfig::default().queue().inflight());
            let until = Instant::now() + Duration::from_secs(5);
            while self.producer.in_flight_count() > 0 && Instant::now() < until {
                let _ = self.producer.flush(Duration::from_millis(50));
            }
        }
        let retried = resending.into_iter().chain(self.retries.take_all());
        frames.extend(retried.map(|r| r.frame));
        let events: usize = frames.iter().map(|f| f.events).sum();
        let mut report = DrainReport {
            delivered: metrics().delivered.get(),
            ..DrainReport::default()
        };
        match spill::write(&self.spill_dir, &frames) {
            Ok(file) => {
                report.spilled = events;
                report.spill_file = file;
                metrics().spilled.inc_by(events as u64);
            }
            Err(err) if self.journaled => {
                tracing::error!(error = %err, events, "cannot write the spill file: the journal keeps these accepted events for the next start");
                report.lost = events;
            }
            Err(err) => {
                tracing::error!(error = %err, events, "cannot write the spill file: these accepted events are lost");
                report.lost = events;
                metrics()
                    .lost
                    .with_label_values(&["spill_failed"])
                    .inc_by(events as u64);
            }
        }
        self.backlog.release(events.min(self.backlog.used()));
        report
    }
}

/// One drain worker: sends what `rx` brings through `out` until the
/// channel is closed and empty, in rounds `nap` apart while busy.
fn drain(rx: &flume::Receiver<Queued>, mut out: Output<'_>, nap: Duration) {
    let idle_rounds_before_sleep = IDLE_AFTER.as_millis() / nap.as_millis().max(1);
    let mut idle_rounds = 0;
    loop {
        let mut took = 0;
        for queued in rx.try_iter() {
            // Per record: under steady load this loop may not end for a while.
            metrics().channel_depth.sub(queued.frame.events as i64);
            out.send(queued);
            took += 1;
        }
        if took > 0 {
            idle_rounds = 0;
            std::thread::sleep(nap);
            continue;
        }
        if rx.is_disconnected() && rx.is_empty() {
            return;
        }
        idle_rounds += 1;
        if idle_rounds < idle_rounds_before_sleep {
            std::thread::sleep(nap);
            continue;
        }
        // Idle: sleep on the channel until the next record (or the end).
        match rx.recv() {
            Ok(queued) => {
                metrics().channel_depth.sub(queued.frame.events as i64);
                out.send(queued);
                idle_rounds = 0;
            }
            Err(flume::RecvError::Disconnected) => return,
        }
    }
}

/// One drain worker's side of the producer, and its reusable buffer.
struct Output<'a> {
    producer: &'a ThreadedProducer<DeliveryContext>,
    topic: &'a str,
    abandon: &'a AtomicBool,
    retries: &'a Retries,
    left_over: &'a Mutex<Vec<Frame>>,
}

impl Output<'_> {
    /// Hands the record to the Kafka client, waiting while the client's
    /// queue is full. At the shutdown deadline it keeps the record for the
    /// spill instead; a record the client refuses goes to the retry queue.
    fn send(&mut self, queued: Queued) {
        let Queued {
            frame,
            enqueued,
            slot,
        } = queued;
        let events = frame.events;
        let sent = Sent::new(events, enqueued, slot);
        if !self.abandon.load(Ordering::Relaxed) {
            // No headers: the payload's first byte is its format version, and
            // a broker that stores headers as rows (tansu) pays for each one.
            match produce(
                self.producer,
                self.topic,
                &frame.key,
                &frame.payload,
                sent,
                self.abandon,
            ) {
                Ok(()) => {
                    metrics().producer_queue.add(events as i64);
                    return;
                }
                Err(err) if !self.abandon.load(Ordering::Relaxed) => {
                    let reason = failure_reason(&err);
                    metrics()
                        .delivery_errors
                        .with_label_values(&[reason])
                        .inc_by(events as u64);
                    tracing::warn!(error = %err, reason, events, "record could not be handed to Kafka; retrying");
                    self.retries.failed(Retry { frame, sent });
                    return;
                }
                // The deadline passed while waiting for room: spill it.
                Err(_) => {}
            }
        }
        self.left_over
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(frame);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn naps_are_a_tenth_of_the_linger_within_one_to_five_ms() {
        let ms = Duration::from_millis;
        assert_eq!(nap(ms(50)), ms(5));
        assert_eq!(nap(ms(20)), ms(2));
        assert_eq!(nap(ms(0)), ms(1));
        assert_eq!(nap(ms(1000)), ms(5));
    }

    #[test]
    fn sent_packs_into_one_integer_and_back() {
        let later = epoch() + Duration::from_secs(3 * 24 * 3600);
        for events in [1, 20, qoe_schema::record::binary::MAX_EVENTS] {
            for replayed in [false, true] {
                for slot in [None, Some(0), Some(7), Some(4095)] {
                    let mut sent = Sent::new(events, later, slot);
                    sent.replayed = replayed;
                    assert_eq!(Sent::unpack(sent.pack()), sent);
                    assert_eq!(sent.enqueued_ms, 3 * 24 * 3600 * 1_000);
                }
            }
        }
    }

    #[test]
    fn ages_survive_the_enqueue_time_wrapping() {
        assert_eq!(elapsed_ms(3, TIME_MASK - 499), 503);
        assert_eq!(elapsed_ms(900, 400), 500);
        let sent = Sent::new(1, Instant::now(), None);
        assert_eq!(Sent::unpack(sent.pack()).enqueued_ms, sent.enqueued_ms);
    }
}
