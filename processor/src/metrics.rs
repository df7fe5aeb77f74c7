//! The processor's metrics. Consumer lag per partition is the backlog.

use std::sync::OnceLock;

use prometheus::{
    register_histogram, register_histogram_vec, register_int_counter, register_int_counter_vec,
    register_int_gauge, register_int_gauge_vec, Histogram, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec,
};

/// Every processor metric.
pub struct Metrics {
    /// Records behind the high watermark, per partition (from librdkafka stats).
    pub consumer_lag: IntGaugeVec,
    /// Records consumed.
    pub records: IntCounter,
    /// Rows per flushed batch.
    pub batch_rows: Histogram,
    /// Bytes per flushed batch (encoded Kafka values).
    pub batch_bytes: Histogram,
    /// Insert latency per table.
    pub insert_seconds: HistogramVec,
    /// Rows written, per table.
    pub rows_written: IntCounterVec,
    /// Failed inserts that were retried, per table.
    pub insert_retries: IntCounterVec,
    /// Times a shard's replica did not answer and the next one was used.
    pub replica_failovers: IntCounterVec,
    /// 1 while consumption is paused for a slow or failing ClickHouse.
    pub paused: IntGauge,
    /// Total seconds spent paused.
    pub paused_seconds: IntCounter,
    /// Records sent to the dead-letter topic, by reason.
    pub dead_letters: IntCounterVec,
    /// Views held in memory.
    pub open_views: IntGauge,
    /// Views closed (viewend or timeout) and evicted (over the cap), by reason.
    pub views_closed: IntCounterVec,
    /// CMCD sessions and mux-embed views held in memory.
    pub open_sessions: IntGauge,
    /// Events of the sparse formats (CMCD reports, mux-embed events), by
    /// source and outcome (applied, late_or_repeated).
    pub sparse_events: IntCounterVec,
    /// Unknown CMCD sessions and mux-embed views read back from
    /// ClickHouse, by outcome (found, empty, failed).
    pub sessions_resumed: IntCounterVec,
    /// Offset commits, by result.
    pub commits: IntCounterVec,
    /// Partitions this processor owns now (0 between a revoke and the next
    /// assignment; the group's members add up to the topic's partitions).
    pub assigned_partitions: IntGauge,
    /// Time to settle one shard's live buckets.
    pub live_settle_seconds: Histogram,
    /// Live settles that failed (retried at the next interval).
    pub live_settle_failures: IntCounter,
    /// Time to seal one day on one shard.
    pub seal_seconds: Histogram,
    /// Seal runs that failed (retried at the next interval).
    pub seal_failures: IntCounter,
}

/// The process-wide metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let seconds = vec![
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
        ];
        let sizes = prometheus::exponential_buckets(10.0, 4.0, 10).expect("buckets");
        // Registration fails only on a duplicate name, which OnceLock rules out.
        Metrics {
            consumer_lag: register_int_gauge_vec!(
                "qoe_processor_consumer_lag",
                "Records behind the partition's high watermark",
                &["topic", "partition"]
            )
            .expect("metric"),
            records: register_int_counter!("qoe_processor_records_total", "Records consumed")
                .expect("metric"),
            batch_rows: register_histogram!(
                "qoe_processor_batch_rows",
                "Rows per flushed batch",
                sizes.clone()
            )
            .expect("metric"),
            batch_bytes: register_histogram!(
                "qoe_processor_batch_bytes",
                "Bytes (Kafka values) per flushed batch",
                prometheus::exponential_buckets(1000.0, 4.0, 10).expect("buckets")
            )
            .expect("metric"),
            insert_seconds: register_histogram_vec!(
                "qoe_processor_insert_seconds",
                "ClickHouse insert latency, per table",
                &["table"],
                seconds.clone()
            )
            .expect("metric"),
            rows_written: register_int_counter_vec!(
                "qoe_processor_rows_written_total",
                "Rows acknowledged by ClickHouse, per table",
                &["table"]
            )
            .expect("metric"),
            insert_retries: register_int_counter_vec!(
                "qoe_processor_insert_retries_total",
                "Failed inserts retried, per table",
                &["table"]
            )
            .expect("metric"),
            replica_failovers: register_int_counter_vec!(
                "qoe_processor_replica_failovers_total",
                "Times a shard's replica in use did not answer and the next was used, per shard",
                &["shard"]
            )
            .expect("metric"),
            paused: register_int_gauge!(
                "qoe_processor_paused",
                "1 while consumption is paused waiting for ClickHouse"
            )
            .expect("metric"),
            paused_seconds: register_int_counter!(
                "qoe_processor_paused_seconds_total",
                "Seconds spent paused waiting for ClickHouse"
            )
            .expect("metric"),
            dead_letters: register_int_counter_vec!(
                "qoe_processor_dead_letters_total",
                "Records sent to the dead-letter topic, by reason",
                &["reason"]
            )
            .expect("metric"),
            open_views: register_int_gauge!("qoe_processor_open_views", "Views held in memory")
                .expect("metric"),
            views_closed: register_int_counter_vec!(
                "qoe_processor_views_closed_total",
                "Views forgotten, by reason (viewend, timeout, evicted)",
                &["reason"]
            )
            .expect("metric"),
            open_sessions: register_int_gauge!(
                "qoe_processor_open_sessions",
                "CMCD sessions and mux-embed views held in memory"
            )
            .expect("metric"),
            sparse_events: register_int_counter_vec!(
                "qoe_processor_sparse_events_total",
                "CMCD reports and mux-embed events, by source and outcome (applied, late_or_repeated)",
                &["source", "outcome"]
            )
            .expect("metric"),
            sessions_resumed: register_int_counter_vec!(
                "qoe_processor_sessions_resumed_total",
                "Unknown CMCD sessions and mux-embed views read back from ClickHouse, by outcome (found, empty, failed)",
                &["outcome"]
            )
            .expect("metric"),
            assigned_partitions: register_int_gauge!(
                "qoe_processor_assigned_partitions",
                "Partitions of the topic this processor owns now"
            )
            .expect("metric"),
            commits: register_int_counter_vec!(
                "qoe_processor_commits_total",
                "Offset commits, by result",
                &["result"]
            )
            .expect("metric"),
            live_settle_seconds: register_histogram!(
                "qoe_processor_live_settle_seconds",
                "Time to settle one shard's live 5-second buckets",
                seconds.clone()
            )
            .expect("metric"),
            live_settle_failures: register_int_counter!(
                "qoe_processor_live_settle_failures_total",
                "Live settles that failed (retried at the next interval)"
            )
            .expect("metric"),
            seal_seconds: register_histogram!(
                "qoe_processor_seal_seconds",
                "Time to seal one day on one shard",
                seconds.clone()
            )
            .expect("metric"),
            seal_failures: register_int_counter!(
                "qoe_processor_seal_failures_total",
                "Seal runs that failed (retried at the next interval)"
            )
            .expect("metric"),
        }
    })
}
