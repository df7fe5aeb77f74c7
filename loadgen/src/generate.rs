//! `qoe-loadgen generate`: realistic history written straight into the
//! heartbeat topic, fast — for the processor and api benchmarks.
//!
//! Views come from `schema::sample::view_into` (startup, rebuffering,
//! failures, exits before start, abandonment), their starts spread over the
//! last two hours so the raw table's hourly partitions stay few. Each event
//! is its own record (what a collector writes for single-event posts): the
//! processor's costliest input per event.

use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

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
}

/// Produces `heartbeats` records for `property` into `kafka.topic`.
pub fn generate(
    kafka: &KafkaConfig,
    property: &str,
    heartbeats: u64,
) -> Result<Generated, KafkaError> {
    let producer: ThreadedProducer<DefaultProducerContext> =
        qoe_common::kafka::producer_config(kafka)
            .set("linger.ms", "50")
            .set("queue.buffering.max.messages", "1000000")
            .set("queue.buffering.max.kbytes", "1048576")
            .create()?;
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
            let mut record = BaseRecord::to(&kafka.topic).key(hb.key()).payload(&payload);
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
    Ok(Generated {
        heartbeats: sent,
        views,
        elapsed: started.elapsed(),
    })
}
