//! What the collector's integration tests share: start a collector binary
//! against a broker, post beacons, build valid events for "now".

#![allow(dead_code)]

use std::time::Duration;

use bytes::Bytes;
use hyper::Method;
use qoe_schema::record::{Heartbeat, Record};
use qoe_testkit::httpc::{self, Reply};
use qoe_testkit::{free_port, Service};
use rdkafka::message::Message as _;
use serde_json::{json, Value};

/// The ingest key every test collector accepts, and its property.
pub const KEY: &str = "testkey";
pub const PROPERTY: &str = "prop-test";

pub struct Collector {
    pub svc: Service,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
}

impl Collector {
    /// Starts `qoe-collector` producing to `topic` on `brokers`; `extra`
    /// adds or overrides configuration variables.
    pub fn start(brokers: &str, topic: &str, extra: &[(&str, String)]) -> Collector {
        let port = free_port();
        let mut env = vec![
            ("QOE_KAFKA__BROKERS", brokers.to_owned()),
            ("QOE_KAFKA__TOPIC", topic.to_owned()),
            ("QOE_HTTP__LISTEN", format!("127.0.0.1:{port}")),
            ("QOE_PROPERTIES__TESTKEY", PROPERTY.to_owned()),
            ("QOE_INGEST__TRUSTED_PROXIES", "127.0.0.1".to_owned()),
            ("QOE_PRODUCER__WORKERS", "2".to_owned()),
            // Its own spill directory: another test's must not be replayed here.
            (
                "QOE_PRODUCER__SPILL_DIR",
                std::env::temp_dir()
                    .join(qoe_testkit::unique("spill"))
                    .display()
                    .to_string(),
            ),
        ];
        // A country database of its own: 8.0.0.0/8 is the US.
        let geo = qoe_testkit::mmdb::write(
            "geo",
            8,
            "country_code",
            qoe_testkit::mmdb::Value::Str("US"),
        );
        env.push(("QOE_INGEST__GEO_DB", geo.display().to_string()));
        env.extend(extra.iter().cloned());
        let svc = Service::spawn("qoe-collector", env!("CARGO_BIN_EXE_qoe-collector"), &env);
        Collector {
            svc,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Waits until the ingest port answers.
    pub async fn wait_listening(&self) {
        let url = format!("{}/v1/beacon", self.url);
        qoe_testkit::wait_until(Duration::from_secs(20), "the collector to listen", || {
            let url = url.clone();
            async move {
                httpc::send(
                    Method::OPTIONS,
                    &url,
                    &[],
                    Bytes::new(),
                    Duration::from_secs(2),
                )
                .await
                .is_ok()
            }
        })
        .await;
    }

    /// POSTs `body` to `/v1/beacon/{KEY}` with `headers`.
    pub async fn post(&self, body: impl Into<Bytes>, headers: &[(&str, &str)]) -> Reply {
        self.post_to(&format!("/v1/beacon/{KEY}"), body, headers)
            .await
    }

    /// POSTs `body` to `path`.
    pub async fn post_to(
        &self,
        path: &str,
        body: impl Into<Bytes>,
        headers: &[(&str, &str)],
    ) -> Reply {
        httpc::send(
            Method::POST,
            &format!("{}{path}", self.url),
            headers,
            body.into(),
            Duration::from_secs(10),
        )
        .await
        .unwrap_or_else(|e| panic!("POST {path}: {e}"))
    }
}

pub use qoe_common::clock::now_ms;

/// POSTs `body` to `path` on a mux-embed listener (`base`:
/// `http://127.0.0.1:<port>`), as the SDK sends it (`text/plain`).
pub async fn post_mux(base: &str, path: &str, body: Vec<u8>) -> Reply {
    httpc::send(
        Method::POST,
        &format!("{base}{path}"),
        &[("content-type", "text/plain")],
        body.into(),
        Duration::from_secs(10),
    )
    .await
    .unwrap_or_else(|e| panic!("POST {base}{path} (mux-embed): {e}"))
}

/// `text` as Latin-1 bytes (each char must be below U+0100): not UTF-8
/// wherever it has a char above U+007F.
pub fn latin1(text: &str) -> Vec<u8> {
    text.chars().map(|c| c as u8).collect()
}

/// A valid wire event of `view` with `seq`, timed now.
pub fn event(view: &str, seq: u32) -> Value {
    let mut e = qoe_schema::sample::wire(&qoe_schema::sample::event(view, seq));
    let now = now_ms();
    e["ts"] = json!(now);
    e["view_start"] = json!(now - 60_000);
    e
}

/// The JSON body of the reply.
pub fn json_of(reply: &Reply) -> Value {
    serde_json::from_slice(&reply.body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", reply.text()))
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

/// Reads `topic` from the start until records holding `events` events
/// arrived; returns each event as a heartbeat.
pub async fn consume_events(
    brokers: &str,
    topic: &str,
    events: usize,
    timeout: Duration,
) -> Vec<(rdkafka::message::OwnedMessage, Vec<Heartbeat>)> {
    let records = qoe_testkit::consume_weighted(brokers, topic, events, timeout, |m| {
        Record::event_count(m.payload().unwrap_or_default())
    })
    .await;
    records
        .into_iter()
        .map(|m| {
            let record = Record::decode(m.payload().unwrap_or_default())
                .expect("the collector writes current-format records");
            let heartbeats = record.heartbeats().collect();
            (m, heartbeats)
        })
        .collect()
}
