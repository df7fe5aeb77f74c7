//! The project's Kafka client settings, in one place, and the broker probe.
//!
//! Producers are idempotent with `acks=all` and lz4-compressed batches;
//! consumers commit manually, only after their output is durable.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::ClientConfig;

use crate::config::KafkaConfig;
use crate::health::Probe;

/// Producer settings: idempotent unless `kafka.idempotent_producer` is off
/// (no duplicates or reordering on the client's own retries), `acks=all`,
/// lz4, and a short linger so batches fill under load without adding
/// visible latency when idle.
pub fn producer_config(kafka: &KafkaConfig) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", &kafka.brokers)
        .set("enable.idempotence", kafka.idempotent_producer.to_string())
        .set("acks", "all")
        .set("compression.type", "lz4")
        .set("linger.ms", "5")
        .set("batch.size", "1000000")
        .set("socket.timeout.ms", millis(kafka.request_timeout))
        .set("request.timeout.ms", millis(kafka.request_timeout));
    cfg
}

/// Consumer settings for `group`: no auto-commit and no automatic offset
/// store — the caller commits what it has made durable.
pub fn consumer_config(kafka: &KafkaConfig, group: &str) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", &kafka.brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("allow.auto.create.topics", "false")
        .set("socket.timeout.ms", millis(kafka.request_timeout))
        .set("session.timeout.ms", "10000");
    cfg
}

fn millis(d: Duration) -> String {
    d.as_millis().to_string()
}

/// A probe named `kafka` that passes when the broker answers a metadata
/// request and every topic in `topics` exists with at least one partition.
/// It uses its own small client so it reports the broker, not a busy queue.
pub fn probe(kafka: &KafkaConfig, topics: Vec<String>) -> Result<Probe, KafkaError> {
    let client: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &kafka.brokers)
        .set("allow.auto.create.topics", "false")
        .set("socket.timeout.ms", millis(kafka.request_timeout))
        // The probe's own failures are reported by /readyz; keep logs quiet.
        .set("log_level", "3")
        .create()?;
    let client = Arc::new(client);
    Ok(Probe::new("kafka", move || {
        let client = client.clone();
        let topics = topics.clone();
        async move {
            tokio::task::spawn_blocking(move || check_topics(&client, &topics))
                .await
                .map_err(|e| format!("probe task failed: {e}"))?
        }
    }))
}

/// Asks `brokers` for the metadata of `topics` once, the way the `kafka`
/// probe does: `Err` says what is wrong (broker unreachable, storage not
/// answering, topic missing). For scripts (`qoe-probe kafka`).
pub fn check_once(brokers: &str, topics: &[String], timeout: Duration) -> Result<(), String> {
    let client: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("allow.auto.create.topics", "false")
        .set("socket.timeout.ms", millis(timeout))
        .set("log_level", "0")
        .create()
        .map_err(|e| format!("kafka client: {e}"))?;
    check_topics_within(&client, topics, timeout)
}

fn check_topics(client: &BaseConsumer, topics: &[String]) -> Result<(), String> {
    check_topics_within(client, topics, Duration::from_millis(1500))
}

fn check_topics_within(
    client: &BaseConsumer,
    topics: &[String],
    timeout: Duration,
) -> Result<(), String> {
    for topic in topics {
        let md = client
            .fetch_metadata(Some(topic), timeout)
            .map_err(|e| format!("broker unreachable: {e}"))?;
        let Some(t) = md.topics().iter().find(|t| t.name() == topic) else {
            return Err(format!("topic `{topic}` missing from metadata"));
        };
        if let Some(err) = t.error() {
            return Err(format!("topic `{topic}`: {:?}", err));
        }
        if t.partitions().is_empty() {
            return Err(format!("topic `{topic}` has no partitions"));
        }
    }
    Ok(())
}
