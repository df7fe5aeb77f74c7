//! `qoe-loadgen generate`: realistic history written straight into the
//! heartbeat topic, fast — for the processor and api benchmarks.
//!
//! Views come from `schema::sample::view_into` (startup, rebuffering,
//! failures, exits before start, abandonment), their starts spread over the
//! last two hours so the raw table's hourly partitions stay few. Each event
//! is its own record (what a collector writes for single-event posts): the
//! processor's costliest input per event.
//!
//! It is also the broker benchmark: it produces as fast as the broker
//! acknowledges and reports records/s and the produce latency (hand-off to
//! acknowledgement) percentiles.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;

use qoe_common::config::KafkaConfig;
use qoe_schema::record::{Enrichment, Heartbeat};

/// What a generate run did.
#[derive(Debug, Clone, Copy)]
pub struct Generated {
    /// Heartbeats produced and acknowledged.
    pub heartbeats: u64,
    /// Views they belong to.
    pub views: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// Records the broker did not acknowledge.
    pub failed: u64,
    /// Produce latency (hand-off → acknowledgement) p50 and p99.
    pub latency_p50: Duration,
    pub latency_p99: Duration,
}

/// Collects each record's produce latency (the opaque is its hand-off time
/// in microseconds since the run's start).
struct Latencies {
    start: Instant,
    micros: Mutex<Vec<u32>>,
    failed: AtomicU64,
}

impl ClientContext for &'static Latencies {}

impl ProducerContext for &'static Latencies {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, sent_us: usize) {
        if result.is_err() {
            self.failed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let now_us = self.start.elapsed().as_micros() as usize;
        let took = now_us.saturating_sub(sent_us).min(u32::MAX as usize) as u32;
        self.micros
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(took);
    }
}

/// Produces `heartbeats` records for `property` into `kafka.topic`.
pub fn generate(
    kafka: &KafkaConfig,
    property: &str,
    heartbeats: u64,
    format_header: bool,
) -> Result<Generated, KafkaError> {
    // One per process: a context must outlive the producer's threads.
    static LATENCIES: OnceLock<Latencies> = OnceLock::new();
    let latencies = LATENCIES.get_or_init(|| Latencies {
        start: Instant::now(),
        micros: Mutex::new(Vec::new()),
        failed: AtomicU64::new(0),
    });
    let producer: ThreadedProducer<&'static Latencies> = qoe_common::kafka::producer_config(kafka)
        .set("linger.ms", "50")
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .create_with_context(latencies)?;
    let now_ms = qoe_common::clock::now_ms();
    // About 5.5 events per view in the sample model.
    let views_total = (heartbeats / 5).max(1) as usize;
    let started = Instant::now();
    let mut last_report = Instant::now();
    let (mut sent, mut views) = (0u64, 0u64);
    let mut events = Vec::with_capacity(16);
    'outer: for i in 0.. {
        events.clear();
        let start = now_ms - 7_200_000 + ((i % 7_000) as i64) * 1_000;
        qoe_schema::sample::view_into(i, views_total, start, &mut events);
        views += 1;
        for e in events.drain(..) {
            if sent == heartbeats {
                break 'outer;
            }
            let hb = Heartbeat::new(property.to_owned(), e.ts_ms + 150, Enrichment::default(), e);
            let payload = hb.encode();
            let sent_us = latencies.start.elapsed().as_micros() as usize;
            let mut record = BaseRecord::with_opaque_to(&kafka.topic, sent_us)
                .key(hb.key())
                .payload(&payload);
            if format_header {
                record = record.headers(OwnedHeaders::new().insert(Header {
                    key: "qoe-format",
                    value: Some("1"),
                }));
            }
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        record = back;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err((err, _)) => return Err(err),
                }
            }
            sent += 1;
            if last_report.elapsed() >= Duration::from_secs(1) {
                last_report = Instant::now();
                let rate = sent as f64 / started.elapsed().as_secs_f64();
                eprintln!("generate: {sent}/{heartbeats} heartbeats, {views} views, {rate:.0}/s");
            }
        }
    }
    producer.flush(Duration::from_secs(120))?;
    let elapsed = started.elapsed();
    let mut micros =
        std::mem::take(&mut *latencies.micros.lock().unwrap_or_else(|e| e.into_inner()));
    micros.sort_unstable();
    let pick = |q: f64| {
        let i = ((micros.len() as f64 * q) as usize).min(micros.len().saturating_sub(1));
        Duration::from_micros(micros.get(i).copied().unwrap_or(0) as u64)
    };
    Ok(Generated {
        heartbeats: sent,
        views,
        elapsed,
        failed: latencies.failed.swap(0, Ordering::Relaxed),
        latency_p50: pick(0.5),
        latency_p99: pick(0.99),
    })
}
