//! K drain workers: each takes records from its channel, serializes them
//! and hands them to one shared, thread-safe rdkafka producer (idempotent,
//! `acks=all`, lz4). Delivery reports release the backlog and feed the
//! metrics; nothing leaves the backlog until the broker acknowledged it or
//! the delivery timeout gave up on it (counted, logged).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{
    BaseRecord, DeliveryResult, Producer as _, ProducerContext, ThreadedProducer,
};
use rdkafka::{ClientConfig, ClientContext};

use qoe_common::config::KafkaConfig;
use qoe_schema::record::{FORMAT_HEADER, FORMAT_VERSION};

use crate::channel::{Backlog, Record};
use crate::config::ProducerConfig;
use crate::metrics::metrics;

/// Counts delivery reports and releases the backlog.
pub struct DeliveryContext {
    backlog: Arc<Backlog>,
    failures: RateLimitedLog,
}

impl ClientContext for DeliveryContext {}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = Box<Instant>;

    fn delivery(&self, result: &DeliveryResult<'_>, enqueued: Self::DeliveryOpaque) {
        let m = metrics();
        match result {
            Ok(_) => {
                m.delivered.inc();
                m.delivery_seconds.observe(enqueued.elapsed().as_secs_f64());
            }
            Err((err, _)) => {
                let reason = failure_reason(err);
                m.delivery_failed.with_label_values(&[reason]).inc();
                self.failures.warn(reason, err);
            }
        }
        m.producer_queue.dec();
        self.backlog.release(1);
    }
}

fn failure_reason(err: &KafkaError) -> &'static str {
    match err.rdkafka_error_code() {
        Some(RDKafkaErrorCode::MessageTimedOut) => "timed_out",
        Some(RDKafkaErrorCode::MessageSizeTooLarge) => "too_large",
        Some(RDKafkaErrorCode::UnknownTopicOrPartition) => "unknown_topic",
        Some(RDKafkaErrorCode::TopicAuthorizationFailed) => "not_authorized",
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

/// The running drain workers and their producer.
pub struct Drain {
    producer: Arc<ThreadedProducer<DeliveryContext>>,
    workers: Vec<JoinHandle<()>>,
    abandon: Arc<AtomicBool>,
    backlog: Arc<Backlog>,
}

/// What a graceful stop achieved.
#[derive(Debug, Clone, Copy)]
pub struct DrainReport {
    /// Records the broker acknowledged during the whole run.
    pub delivered: u64,
    /// Records accepted but not acknowledged by the deadline (lost).
    pub undelivered: usize,
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
    /// Creates the producer and starts one worker per receiver.
    pub fn start(
        kafka: &KafkaConfig,
        cfg: &ProducerConfig,
        receivers: Vec<flume::Receiver<Record>>,
        backlog: Arc<Backlog>,
    ) -> Result<Drain, KafkaError> {
        let context = DeliveryContext {
            backlog: backlog.clone(),
            failures: RateLimitedLog::new(),
        };
        let producer: ThreadedProducer<DeliveryContext> =
            client_config(kafka, cfg).create_with_context(context)?;
        let producer = Arc::new(producer);
        let abandon = Arc::new(AtomicBool::new(false));
        let workers = receivers
            .into_iter()
            .enumerate()
            .map(|(i, rx)| {
                let producer = producer.clone();
                let abandon = abandon.clone();
                let backlog = backlog.clone();
                let topic = kafka.topic.clone();
                std::thread::Builder::new()
                    .name(format!("kafka-drain-{i}"))
                    .spawn(move || drain(&rx, &producer, &topic, &abandon, &backlog))
                    .expect("spawn a drain worker thread")
            })
            .collect();
        Ok(Drain {
            producer,
            workers,
            abandon,
            backlog,
        })
    }

    /// Waits until every channel is drained into the producer and every
    /// record acknowledged, or `deadline` passes. Call after the last
    /// [`crate::channel::Channel`] clone is dropped.
    pub fn finish(self, deadline: Instant) -> DrainReport {
        // Workers end when their channel is closed and empty; one stuck on a
        // full client queue gives up at the deadline.
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
        let left = deadline.saturating_duration_since(Instant::now());
        let _ = self.producer.flush(left);
        self.abandon.store(true, Ordering::Relaxed);
        let _ = watchdog.join();
        DrainReport {
            delivered: metrics().delivered.get(),
            undelivered: self.backlog.used(),
        }
    }
}

fn drain(
    rx: &flume::Receiver<Record>,
    producer: &ThreadedProducer<DeliveryContext>,
    topic: &str,
    abandon: &AtomicBool,
    backlog: &Backlog,
) {
    let m = metrics();
    let version = FORMAT_VERSION.to_string();
    let mut buf = Vec::with_capacity(1024);
    for record in rx.iter() {
        m.channel_depth.dec();
        buf.clear();
        record.heartbeat.encode_into(&mut buf);
        let headers = OwnedHeaders::new().insert(Header {
            key: FORMAT_HEADER,
            value: Some(version.as_str()),
        });
        let mut pending = BaseRecord::with_opaque_to(topic, Box::new(record.enqueued))
            .key(record.heartbeat.key())
            .payload(&buf)
            .headers(headers);
        loop {
            match producer.send(pending) {
                Ok(()) => {
                    m.producer_queue.inc();
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                    if !abandon.load(Ordering::Relaxed) =>
                {
                    // Backpressure from the client: wait for deliveries.
                    pending = back;
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err((err, _)) => {
                    let reason = if abandon.load(Ordering::Relaxed) {
                        "shutdown"
                    } else {
                        failure_reason(&err)
                    };
                    m.delivery_failed.with_label_values(&[reason]).inc();
                    tracing::warn!(error = %err, reason, "record could not be handed to Kafka");
                    backlog.release(1);
                    break;
                }
            }
        }
    }
}
