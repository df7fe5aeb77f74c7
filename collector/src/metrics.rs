//! The collector's metrics, with fixed, low-cardinality label sets.
//!
//! The backlog (`qoe_collector_backlog` against `..._backlog_capacity`) is
//! the first thing to look at; every refusal is a `qoe_collector_drops_total`
//! with its reason.

use std::sync::OnceLock;

use prometheus::{
    register_gauge, register_histogram, register_histogram_vec, register_int_counter,
    register_int_counter_vec, register_int_gauge, Gauge, Histogram, HistogramVec, IntCounter,
    IntCounterVec, IntGauge,
};

/// Every collector metric.
pub struct Metrics {
    /// HTTP requests by route and status.
    pub requests: IntCounterVec,
    /// Request handling time by route.
    pub request_seconds: HistogramVec,
    /// Events accepted into the channel.
    pub events_accepted: IntCounter,
    /// Events refused by validation, by reason code.
    pub events_rejected: IntCounterVec,
    /// Requests or connections refused by load shedding, by reason.
    pub drops: IntCounterVec,
    /// Events accepted and not yet delivered (channel + Kafka client queue).
    pub backlog: IntGauge,
    /// The backlog's capacity.
    pub backlog_capacity: IntGauge,
    /// Events waiting in the channel for a drain worker.
    pub channel_depth: IntGauge,
    /// Events handed to the Kafka client and not yet acknowledged.
    pub producer_queue: IntGauge,
    /// Enqueue → broker acknowledgement.
    pub delivery_seconds: Histogram,
    /// Events acknowledged by the broker.
    pub delivered: IntCounter,
    /// Failed delivery attempts, in events, by reason (each is retried).
    pub delivery_errors: IntCounterVec,
    /// Events waiting to be produced again (failed, or replayed from spill).
    pub retry_queue: IntGauge,
    /// Events handed to the Kafka client again after a failure or from spill.
    pub retried: IntCounter,
    /// Events written to the spill directory at the shutdown deadline.
    pub spilled: IntCounter,
    /// Events read back from the spill directory at start.
    pub replayed: IntCounter,
    /// Accepted events lost, by reason (only `spill_failed`: the spill file
    /// could not be written at the shutdown deadline).
    pub lost: IntCounterVec,
    /// Open ingest connections.
    pub open_connections: IntGauge,
    /// How late the runtime wakes a task, smoothed (`shed::Overload`).
    pub runtime_lag: Gauge,
    /// Write-ahead journal segments on disk (the one being written
    /// included): grows while deliveries lag.
    pub journal_segments: IntGauge,
    /// Bytes in the journal segments on disk.
    pub journal_bytes: IntGauge,
    /// `requests{route="beacon",status="202"}` and
    /// `request_seconds{route="beacon"}`, looked up once: nearly every
    /// request counts there, and a lookup hashes the labels each time.
    pub beacon_accepted: (IntCounter, Histogram),
}

/// The process-wide metrics (registered once in the default registry).
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let latency = vec![
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            30.0,
        ];
        // Registration fails only on a duplicate name, which OnceLock rules out.
        let requests = register_int_counter_vec!(
            "qoe_collector_requests_total",
            "HTTP requests by route and status",
            &["route", "status"]
        )
        .expect("metric");
        let request_seconds = register_histogram_vec!(
            "qoe_collector_request_seconds",
            "Time to answer a request, by route",
            &["route"],
            latency.clone()
        )
        .expect("metric");
        Metrics {
            beacon_accepted: (
                requests.with_label_values(&["beacon", "202"]),
                request_seconds.with_label_values(&["beacon"]),
            ),
            requests,
            request_seconds,
            events_accepted: register_int_counter!(
                "qoe_collector_events_accepted_total",
                "Events accepted into the channel (answered 202)"
            )
            .expect("metric"),
            events_rejected: register_int_counter_vec!(
                "qoe_collector_events_rejected_total",
                "Events refused by validation, by reason code",
                &["reason"]
            )
            .expect("metric"),
            drops: register_int_counter_vec!(
                "qoe_collector_drops_total",
                "Requests or connections refused by load shedding or limits, by reason",
                &["reason"]
            )
            .expect("metric"),
            backlog: register_int_gauge!(
                "qoe_collector_backlog",
                "Events accepted and not yet acknowledged by the broker"
            )
            .expect("metric"),
            backlog_capacity: register_int_gauge!(
                "qoe_collector_backlog_capacity",
                "Most events the backlog holds before requests are shed"
            )
            .expect("metric"),
            channel_depth: register_int_gauge!(
                "qoe_collector_channel_depth",
                "Events waiting in the channel for a drain worker"
            )
            .expect("metric"),
            producer_queue: register_int_gauge!(
                "qoe_collector_producer_queue",
                "Events in the Kafka client's queue, not yet acknowledged"
            )
            .expect("metric"),
            delivery_seconds: register_histogram!(
                "qoe_collector_delivery_seconds",
                "Time from enqueue to broker acknowledgement",
                latency
            )
            .expect("metric"),
            delivered: register_int_counter!(
                "qoe_collector_delivered_total",
                "Events acknowledged by the broker"
            )
            .expect("metric"),
            delivery_errors: register_int_counter_vec!(
                "qoe_collector_delivery_errors_total",
                "Failed delivery attempts in events, by reason; every one is retried",
                &["reason"]
            )
            .expect("metric"),
            retry_queue: register_int_gauge!(
                "qoe_collector_retry_queue",
                "Events waiting to be produced again (failed deliveries, spill replay)"
            )
            .expect("metric"),
            retried: register_int_counter!(
                "qoe_collector_retried_total",
                "Events handed to the Kafka client again"
            )
            .expect("metric"),
            spilled: register_int_counter!(
                "qoe_collector_spilled_total",
                "Events undelivered at the shutdown deadline, written to the spill directory"
            )
            .expect("metric"),
            replayed: register_int_counter!(
                "qoe_collector_replayed_total",
                "Events read back from the spill directory at start"
            )
            .expect("metric"),
            lost: register_int_counter_vec!(
                "qoe_collector_lost_total",
                "Accepted events lost, by reason (spill_failed)",
                &["reason"]
            )
            .expect("metric"),
            open_connections: register_int_gauge!(
                "qoe_collector_open_connections",
                "Open ingest connections"
            )
            .expect("metric"),
            runtime_lag: register_gauge!(
                "qoe_collector_runtime_lag_seconds",
                "How late the runtime wakes a task, smoothed over ~100 ms; above http.overload_lag requests are shed"
            )
            .expect("metric"),
            journal_segments: register_int_gauge!(
                "qoe_collector_journal_segments",
                "Write-ahead journal segments on disk, the open one included"
            )
            .expect("metric"),
            journal_bytes: register_int_gauge!(
                "qoe_collector_journal_bytes",
                "Bytes in the write-ahead journal segments on disk"
            )
            .expect("metric"),
        }
    })
}
