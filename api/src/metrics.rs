//! The api's own metrics, on the admin listener's `/metrics`.

use std::sync::OnceLock;

use prometheus::{register_histogram_vec, register_int_counter_vec, HistogramVec, IntCounterVec};

pub struct ApiMetrics {
    /// Request latency, by route.
    pub request_seconds: HistogramVec,
    /// ClickHouse query time, by route.
    pub query_seconds: HistogramVec,
    /// Answers, by route and status.
    pub responses: IntCounterVec,
    /// Live questions answered from the live cache (`hit`) or ClickHouse.
    pub live_cache: IntCounterVec,
}

/// The process-wide metrics (registered once).
pub fn metrics() -> &'static ApiMetrics {
    static METRICS: OnceLock<ApiMetrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let buckets = vec![
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0,
        ];
        ApiMetrics {
            request_seconds: register_histogram_vec!(
                "qoe_api_request_seconds",
                "Time to answer a request, by route",
                &["route"],
                buckets.clone()
            )
            .expect("metric"),
            query_seconds: register_histogram_vec!(
                "qoe_api_query_seconds",
                "ClickHouse query time, by route",
                &["route"],
                buckets
            )
            .expect("metric"),
            responses: register_int_counter_vec!(
                "qoe_api_responses_total",
                "Answers, by route and HTTP status",
                &["route", "status"]
            )
            .expect("metric"),
            live_cache: register_int_counter_vec!(
                "qoe_api_live_cache_total",
                "Live questions answered from the live cache (hit) or by a query (miss)",
                &["outcome"]
            )
            .expect("metric"),
        }
    })
}
