//! The consume loop: records → workers (per-view state, rows) → batch →
//! shards → commit.
//!
//! At-least-once, replay-idempotent: offsets are committed only after every
//! shard acknowledged the batch's rows; a crash or a rebalance before that
//! means the records are read again, and ClickHouse's tables absorb the
//! duplicates (see `schema/migrations/`). When ClickHouse fails, the loop
//! pauses every assigned partition (so memory stays bounded and the group
//! membership stays alive), retries with doubling backoff, and resumes by
//! itself when the insert succeeds.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::message::{BorrowedMessage, Header, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::statistics::Statistics;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use qoe_schema::record::DEAD_LETTER_REASON_HEADER;

use crate::batch::Batch;
use crate::config::ProcessorSettings;
use crate::metrics::metrics;
use crate::workers::{DeadLetter, Pool, Record};
use crate::writer::Writer;

/// Notices rebalances and publishes consumer lag.
#[derive(Default)]
pub struct Context {
    revoked: AtomicBool,
}

impl ClientContext for Context {
    fn stats(&self, stats: Statistics) {
        let lag = &metrics().consumer_lag;
        for (topic, t) in &stats.topics {
            for (partition, p) in &t.partitions {
                if *partition >= 0 && p.consumer_lag >= 0 {
                    lag.with_label_values(&[topic.as_str(), &partition.to_string()])
                        .set(p.consumer_lag);
                }
            }
        }
    }
}

impl ConsumerContext for Context {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            tracing::info!(partitions = tpl.count(), "partitions revoked");
            self.revoked.store(true, Ordering::SeqCst);
            metrics().assigned_partitions.sub(tpl.count() as i64);
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            tracing::info!(partitions = tpl.count(), "partitions assigned");
            metrics().assigned_partitions.add(tpl.count() as i64);
        }
    }
}

/// The running loop's parts.
pub struct Loop {
    pub consumer: StreamConsumer<Context>,
    pub dead_letters: FutureProducer,
    pub dead_letter_topic: String,
    /// The topic consumed (the origin named in dead letters).
    pub topic: String,
    pub writer: Writer,
    /// Reads back CMCD sessions the workers do not know.
    pub resume: std::sync::Arc<dyn crate::sessions::Resume>,
    pub settings: ProcessorSettings,
}

impl Loop {
    /// Consumes until `shutdown`, then flushes what is pending and commits
    /// it — unless that takes longer than `shutdown_flush_timeout` (counted
    /// from the signal, also for a flush already retrying then), in which
    /// case it stops without committing: the partitions' next owner reads
    /// those records again.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let grace = self.settings.shutdown_flush_timeout;
        let mut stop = Stop {
            signal: Box::pin(shutdown),
            deadline: None,
            grace,
        };
        let shards = self.writer.shard_count();
        let mut batch = Batch::new(shards);
        let mut pool = Pool::start(
            self.settings.worker_count(),
            shards,
            self.settings.max_open_views,
            self.settings.view_timeout.as_millis() as i64,
            self.resume.clone(),
        );
        let mut ticker = tokio::time::interval(self.settings.batch_interval / 4);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.signalled() => break,
                received = self.consumer.recv() => match received {
                    Ok(msg) => {
                        if self.consumer.context().revoked.swap(false, Ordering::SeqCst) {
                            self.forget(&mut batch, &mut pool).await;
                        }
                        take(&msg, &mut batch, &mut pool).await;
                    }
                    Err(err) => tracing::warn!(error = %err, "consumer error"),
                },
                _ = ticker.tick() => {
                    if self.consumer.context().revoked.swap(false, Ordering::SeqCst) {
                        self.forget(&mut batch, &mut pool).await;
                    }
                    pool.expire(qoe_common::clock::now_ms()).await;
                }
            }
            let due = batch
                .started
                .is_some_and(|t| t.elapsed() >= self.settings.batch_interval);
            let full = batch.events >= self.settings.batch_rows || (due && !batch.is_empty());
            // An Err means the shutdown deadline passed mid-flush.
            if full && self.flush(&mut batch, &mut pool, &mut stop).await.is_err() {
                return;
            }
        }
        if !batch.is_empty() {
            tracing::info!(
                records = batch.records,
                ?grace,
                "flushing the last batch before exit"
            );
            let _ = self.flush(&mut batch, &mut pool, &mut stop).await;
        }
    }

    /// A rebalance took partitions: their pending rows will be re-read by
    /// their new owner, so drop them (and the per-view state they built).
    async fn forget(&self, batch: &mut Batch, pool: &mut Pool) {
        if !batch.is_empty() {
            tracing::info!(
                records = batch.records,
                "rebalance: dropping uncommitted records; they will be read again"
            );
        }
        batch.clear();
        pool.clear().await;
    }

    /// Sends a record that cannot be processed to the dead-letter topic,
    /// with the reason in a header; retries until the broker takes it, so
    /// its offset is never committed before it is safe elsewhere.
    async fn dead_letter(&self, dead: &DeadLetter) {
        let DeadLetter { record, reason } = dead;
        metrics().dead_letters.with_label_values(&[reason]).inc();
        let origin = format!("{}/{}/{}", self.topic, record.partition, record.offset);
        tracing::warn!(reason, %origin, "dead-lettering a record");
        let mut backoff = self.settings.retry_backoff;
        loop {
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: DEAD_LETTER_REASON_HEADER,
                    value: Some(*reason),
                })
                .insert(Header {
                    key: "qoe-origin",
                    value: Some(origin.as_str()),
                });
            let mut out = FutureRecord::to(&self.dead_letter_topic)
                .payload(record.payload.as_slice())
                .headers(headers);
            if let Some(key) = &record.key {
                out = out.key(key.as_slice());
            }
            match self.dead_letters.send(out, Duration::from_secs(10)).await {
                Ok(_) => return,
                Err((err, _)) => {
                    tracing::error!(error = %err, "dead-letter topic refused a record; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(self.settings.retry_max_backoff);
                }
            }
        }
    }

    /// Collects the workers' rows, sends dead letters on, writes the rows
    /// (pausing consumption while ClickHouse fails), then commits the
    /// offsets. Gives up, committing nothing, when the shutdown deadline
    /// passes (`Err`).
    async fn flush(
        &self,
        batch: &mut Batch,
        pool: &mut Pool,
        stop: &mut Stop<impl Future<Output = ()>>,
    ) -> Result<(), DeadlinePassed> {
        let records = batch.records;
        let outcome = tokio::select! {
            outcome = self.write(batch, pool) => outcome,
            _ = stop.deadline_passed() => Err(DeadlinePassed),
        };
        if outcome.is_err() {
            tracing::error!(
                records,
                "shutdown deadline (processor.shutdown_flush_timeout) passed before the batch \
                 was written: exiting without committing it; the partitions' next owner reads \
                 those records again"
            );
        }
        outcome
    }

    /// [`Loop::flush`] without the deadline.
    async fn write(&self, batch: &mut Batch, pool: &mut Pool) -> Result<(), DeadlinePassed> {
        let output = pool.collect().await;
        for dead in &output.dead_letters {
            self.dead_letter(dead).await;
        }
        batch.rows = output.rows;
        let m = metrics();
        m.batch_rows.observe(batch.row_count() as f64);
        m.batch_bytes.observe(batch.bytes as f64);
        let mut backoff = self.settings.retry_backoff;
        let mut paused: Option<(TopicPartitionList, Instant)> = None;
        while let Err(err) = self.writer.write(batch).await {
            if paused.is_none() {
                tracing::warn!(error = %err, "ClickHouse insert failed: pausing consumption and retrying");
                if let Ok(assignment) = self.consumer.assignment() {
                    if let Err(e) = self.consumer.pause(&assignment) {
                        tracing::warn!(error = %e, "cannot pause partitions");
                    }
                    paused = Some((assignment, Instant::now()));
                    m.paused.set(1);
                }
            } else {
                tracing::debug!(error = %err, ?backoff, "insert retry failed");
            }
            // Keep polling while paused: it keeps the group membership alive.
            let wait = tokio::time::sleep(backoff);
            tokio::pin!(wait);
            loop {
                tokio::select! {
                    _ = &mut wait => break,
                    received = self.consumer.recv() => {
                        // Prefetched records can still surface; they are not in
                        // this batch and their offsets are not committed, so
                        // they will be read again after the resume.
                        if let Ok(msg) = received {
                            tracing::debug!(offset = msg.offset(), "record arrived while paused; it will be re-read");
                            let _ = self.consumer.seek(msg.topic(), msg.partition(), Offset::Offset(msg.offset()), Duration::from_secs(1));
                        }
                    }
                }
            }
            backoff = (backoff * 2).min(self.settings.retry_max_backoff);
        }
        if let Some((assignment, since)) = paused {
            let _ = self.consumer.resume(&assignment);
            m.paused.set(0);
            m.paused_seconds.inc_by(since.elapsed().as_secs());
            tracing::info!(paused_for = ?since.elapsed(), "ClickHouse answers again: resumed");
        }
        if self.settings.crash_after_insert {
            tracing::error!("crash_after_insert is set: exiting before the commit");
            std::process::abort();
        }
        self.commit(batch);
        batch.clear();
        Ok(())
    }

    fn commit(&self, batch: &Batch) {
        let mut tpl = TopicPartitionList::new();
        for (partition, next) in &batch.offsets {
            if let Err(e) = tpl.add_partition_offset(&self.topic, *partition, Offset::Offset(*next))
            {
                tracing::warn!(error = %e, "cannot build the commit list");
            }
        }
        if tpl.count() == 0 {
            return;
        }
        match self.consumer.commit(&tpl, CommitMode::Sync) {
            Ok(()) => metrics().commits.with_label_values(&["ok"]).inc(),
            Err(err) => {
                // Usually a rebalance took the partitions: the new owner
                // re-reads them; duplicates are absorbed downstream.
                metrics().commits.with_label_values(&["failed"]).inc();
                tracing::warn!(error = %err, "offset commit failed; those records will be read again");
            }
        }
    }
}

/// The shutdown deadline passed before a batch was written and committed.
#[derive(Debug)]
pub struct DeadlinePassed;

/// The shutdown signal, and the deadline it sets for the last flush.
pub struct Stop<F> {
    signal: Pin<Box<F>>,
    /// Set when the signal resolves: signal time + `grace`.
    deadline: Option<Instant>,
    grace: Duration,
}

impl<F: Future<Output = ()>> Stop<F> {
    /// Resolves once shutdown is signalled (at once if it already was).
    /// Cancel-safe: the signal future is kept across calls.
    async fn signalled(&mut self) -> Instant {
        match self.deadline {
            Some(at) => at,
            None => {
                self.signal.as_mut().await;
                let at = Instant::now() + self.grace;
                self.deadline = Some(at);
                at
            }
        }
    }

    /// Resolves when shutdown has been signalled and its deadline passed.
    async fn deadline_passed(&mut self) {
        let at = self.signalled().await;
        tokio::time::sleep_until(at.into()).await;
    }
}

/// Copies a record out of the consumer's buffer, covers its offset and
/// hands it to its view's worker.
async fn take(msg: &BorrowedMessage<'_>, batch: &mut Batch, pool: &mut Pool) {
    metrics().records.inc();
    let payload = msg.payload().unwrap_or_default();
    let events = qoe_schema::record::Record::event_count(payload);
    batch.cover(msg.partition(), msg.offset(), payload.len(), events);
    let record = Record {
        payload: payload.to_vec(),
        key: msg.key().map(<[u8]>::to_vec),
        partition: msg.partition(),
        offset: msg.offset(),
    };
    pool.push(record).await;
}

/// Why the loop could not start.
pub type StartError = rdkafka::error::KafkaError;

/// Creates the consumer (subscribed) and the dead-letter producer.
pub fn clients(
    kafka: &qoe_common::config::KafkaConfig,
    settings: &ProcessorSettings,
) -> Result<(StreamConsumer<Context>, FutureProducer), StartError> {
    let mut cfg = qoe_common::kafka::consumer_config(kafka, &settings.group);
    cfg.set("statistics.interval.ms", "5000");
    if !settings.instance_id.is_empty() {
        cfg.set("group.instance.id", &settings.instance_id);
    }
    let consumer: StreamConsumer<Context> = cfg.create_with_context(Context::default())?;
    consumer.subscribe(&[&kafka.topic])?;
    let producer: FutureProducer = qoe_common::kafka::producer_config(kafka).create()?;
    Ok((consumer, producer))
}
