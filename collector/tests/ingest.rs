//! Beacons in over HTTP → exactly those records in the Kafka topic, enriched
//! and keyed by view; bad input refused with a specific status and code
//! while good requests keep flowing.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use qoe_schema::record::FORMAT_VERSION;
use qoe_testkit::httpc::Reply;
use qoe_testkit::{unique, Stack};
use rdkafka::message::{Headers, Message};
use serde_json::json;
use support::{consume_events, event, gzip, json_of, Collector, PROPERTY};

const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";

#[tokio::test]
async fn every_accepted_event_reaches_the_topic_enriched() {
    let stack = Stack::from_env();
    let topic = unique("ingest");
    stack.create_topic(&topic, 4).await;
    let collector = Collector::start(&stack.brokers, &topic, &[]);
    collector
        .svc
        .wait_ready(true, Duration::from_secs(30))
        .await;

    let mut sent = BTreeSet::new();
    let headers = [
        ("content-type", "application/json"),
        ("user-agent", CHROME),
        ("x-forwarded-for", "8.8.8.8"),
    ];
    // Single events.
    for i in 0..5 {
        let e = event(&format!("single-{i}"), 1);
        sent.insert((format!("single-{i}"), 1));
        let r = collector.post(e.to_string(), &headers).await;
        assert_eq!(r.status, 202, "{}", r.text());
        assert_eq!(json_of(&r)["accepted"], 1);
    }
    // A gzip envelope of 20 events of one view, shared fields in metadata.
    let events: Vec<_> = (1..=20)
        .map(|seq| {
            let mut e = event("batch-view", seq);
            e.as_object_mut().unwrap().remove("viewer_id");
            sent.insert(("batch-view".to_owned(), seq));
            e
        })
        .collect();
    let body = json!({"metadata": {"viewer_id": "u-1"}, "events": events}).to_string();
    let r = collector
        .post(
            gzip(body.as_bytes()),
            &[
                ("content-type", "text/plain;charset=UTF-8"),
                ("content-encoding", "gzip"),
                ("user-agent", CHROME),
            ],
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(json_of(&r)["accepted"], 20);
    // A plain array, key in a header instead of the path.
    let events: Vec<_> = (0..10)
        .map(|i| {
            sent.insert((format!("array-{i}"), 3));
            event(&format!("array-{i}"), 3)
        })
        .collect();
    let r = collector
        .post_to(
            "/v1/beacon",
            serde_json::to_vec(&events).unwrap(),
            &[("x-qoe-key", support::KEY)],
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(r.headers.get("access-control-allow-origin").unwrap(), "*");

    let records = consume_events(&stack.brokers, &topic, sent.len(), Duration::from_secs(60)).await;
    // One record per view and request: the 20-event batch is one record.
    let batch_records = records
        .iter()
        .filter(|(m, _)| m.key() == Some(b"batch-view".as_slice()))
        .count();
    assert_eq!(batch_records, 1, "one SDK batch, one Kafka record");
    assert_eq!(records.len(), 5 + 1 + 10);
    let mut got = BTreeSet::new();
    for (msg, heartbeats) in &records {
        assert!(
            msg.headers().is_none_or(|h| h.count() == 0),
            "no headers: the first byte is the version"
        );
        assert_eq!(
            msg.payload().unwrap()[0],
            FORMAT_VERSION as u8,
            "binary record"
        );
        let seqs: Vec<u32> = heartbeats.iter().map(|hb| hb.event.seq).collect();
        assert!(
            seqs.is_sorted(),
            "a view's events keep their order: {seqs:?}"
        );
        for hb in heartbeats {
            assert_eq!(
                msg.key().unwrap(),
                hb.event.view_id.as_bytes(),
                "keyed by view_id"
            );
            assert_eq!(hb.property_id, PROPERTY);
            assert!(hb.received_at_ms > 0);
            if hb.event.view_id.starts_with("single-") {
                let payload = msg.payload().unwrap();
                assert!(
                    !payload.windows(7).any(|w| w == b"8.8.8.8"),
                    "the client IP is used for enrichment, never stored"
                );
                assert_eq!(hb.enrichment.browser, "Chrome");
                assert_eq!(hb.enrichment.device_type, "desktop");
                assert_eq!(
                    hb.enrichment.country, "US",
                    "X-Forwarded-For from a trusted proxy"
                );
            }
            if &*hb.event.view_id == "batch-view" {
                assert_eq!(&*hb.event.viewer_id, "u-1", "metadata applies to the batch");
            }
            assert!(
                got.insert((hb.event.view_id.to_string(), hb.event.seq)),
                "no duplicates"
            );
        }
    }
    assert_eq!(got, sent);
    let metrics = collector.svc.metrics().await;
    assert!(
        metrics.contains("qoe_collector_events_accepted_total 35"),
        "{metrics}"
    );
    for line in [
        "qoe_collector_requests_total{route=\"beacon\",status=\"202\"} 7",
        "qoe_collector_request_seconds_count{route=\"beacon\"} 7",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
}

#[tokio::test]
async fn a_property_over_its_rate_is_told_when_to_retry() {
    let stack = Stack::from_env();
    let topic = unique("ratelimit");
    stack.create_topic(&topic, 1).await;
    let collector = Collector::start(
        &stack.brokers,
        &topic,
        &[
            ("QOE_INGEST__RATE_LIMIT_PER_PROPERTY", "1".into()),
            ("QOE_INGEST__RATE_LIMIT_BURST", "5".into()),
        ],
    );
    collector
        .svc
        .wait_ready(true, Duration::from_secs(30))
        .await;
    let batch = |from: u32| {
        let events: Vec<_> = (from..from + 5)
            .map(|i| event(&format!("limited-{i}"), 1))
            .collect();
        serde_json::to_vec(&events).unwrap()
    };
    let r = collector.post(batch(0), &[]).await;
    assert_eq!(r.status, 202, "the burst is allowed: {}", r.text());
    let r = collector.post(batch(5), &[]).await;
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(json_of(&r)["error"]["code"], "rate_limited");
    let wait: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=5).contains(&wait), "Retry-After {wait}");
    // Only the allowed batch reaches the topic.
    let records = consume_events(&stack.brokers, &topic, 5, Duration::from_secs(30)).await;
    assert_eq!(records.len(), 5);
    assert!(records
        .iter()
        .flat_map(|(_, hbs)| hbs)
        .all(|hb| hb.event.view_id.as_ref() < "limited-5"));
    let metrics = collector.svc.metrics().await;
    assert!(
        metrics.contains("qoe_collector_drops_total{reason=\"rate_limited\"} 1"),
        "{metrics}"
    );
}

/// `(what, body, headers, path, status, reason code)` of a request the
/// collector must refuse.
type BadRequest<'a> = (
    &'a str,
    Vec<u8>,
    Vec<(&'a str, &'a str)>,
    &'a str,
    u16,
    &'a str,
);

#[tokio::test]
async fn bad_input_gets_its_status_and_code() {
    let stack = Stack::from_env();
    let topic = unique("badinput");
    stack.create_topic(&topic, 1).await;
    let collector = Collector::start(
        &stack.brokers,
        &topic,
        &[("QOE_HTTP__MAX_BODY_BYTES", "65536".into())],
    );
    collector
        .svc
        .wait_ready(true, Duration::from_secs(30))
        .await;
    let good = || event("good", 1).to_string();

    let mut missing = event("v", 1);
    missing.as_object_mut().unwrap().remove("view_id");
    let mut wrong_type = event("v", 1);
    wrong_type["seq"] = json!("seven");
    let mut unknown = event("v", 1);
    unknown["event"] = json!("teleport");
    let bomb = gzip(&vec![b' '; 50 * 1024 * 1024]);
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let cases: Vec<BadRequest> = vec![
        (
            "malformed JSON",
            b"{\"view_id\": ".to_vec(),
            vec![],
            "/v1/beacon/testkey",
            400,
            "invalid_json",
        ),
        (
            "wrong types",
            wrong_type.to_string().into_bytes(),
            vec![],
            "/v1/beacon/testkey",
            400,
            "invalid_type",
        ),
        (
            "missing field",
            missing.to_string().into_bytes(),
            vec![],
            "/v1/beacon/testkey",
            400,
            "missing_field",
        ),
        (
            "unknown event",
            unknown.to_string().into_bytes(),
            vec![],
            "/v1/beacon/testkey",
            400,
            "unknown_event",
        ),
        (
            "huge body",
            vec![b' '; 70_000],
            vec![],
            "/v1/beacon/testkey",
            413,
            "body_too_large",
        ),
        (
            "gzip bomb",
            bomb,
            vec![("content-encoding", "gzip")],
            "/v1/beacon/testkey",
            413,
            "body_too_large",
        ),
        (
            "deep nesting",
            deep.into_bytes(),
            vec![],
            "/v1/beacon/testkey",
            413,
            "body_too_large",
        ),
        (
            "invalid UTF-8",
            b"{\"view_id\": \"\xff\xfe\"}".to_vec(),
            vec![],
            "/v1/beacon/testkey",
            400,
            "invalid_utf8",
        ),
        (
            "unknown key",
            good().into_bytes(),
            vec![],
            "/v1/beacon/nope",
            403,
            "unknown_key",
        ),
        (
            "no key",
            good().into_bytes(),
            vec![],
            "/v1/beacon",
            401,
            "missing_key",
        ),
        (
            "wrong content type",
            good().into_bytes(),
            vec![("content-type", "application/x-www-form-urlencoded")],
            "/v1/beacon/testkey",
            415,
            "unsupported_media_type",
        ),
        (
            "unknown encoding",
            good().into_bytes(),
            vec![("content-encoding", "br")],
            "/v1/beacon/testkey",
            415,
            "unsupported_encoding",
        ),
        (
            "not gzip",
            good().into_bytes(),
            vec![("content-encoding", "gzip")],
            "/v1/beacon/testkey",
            400,
            "invalid_gzip",
        ),
        (
            "not a beacon",
            b"[1, 2]".to_vec(),
            vec![],
            "/v1/beacon/testkey",
            400,
            "no_valid_events",
        ),
    ];
    for (name, body, headers, path, status, code) in cases {
        let r = collector.post_to(path, body, &headers).await;
        assert_eq!(r.status.as_u16(), status, "{name}: {}", r.text());
        let body = json_of(&r);
        assert_eq!(body["error"]["code"], code, "{name}: {body}");
        // The server keeps serving good requests in between.
        let ok = collector.post(good(), &[]).await;
        assert_eq!(ok.status, 202, "after {name}: {}", ok.text());
    }
    // Deep nesting inside a small body is refused per event, no crash.
    let deep_small = format!("{{\"events\":[{}{}]}}", "[".repeat(1000), "]".repeat(1000));
    let r = collector.post(deep_small, &[]).await;
    assert_eq!(r.status, 400);
    assert_eq!(json_of(&r)["rejected"][0]["reason"], "not_an_object");
    // A partially valid batch: the valid events are accepted, the rest reported.
    let mut stale = event("old", 1);
    stale["ts"] = json!(support::now_ms() - 3 * 3_600_000);
    let r = collector
        .post(
            json!({"events": [event("a", 1), stale, event("b", 1)]}).to_string(),
            &[],
        )
        .await;
    assert_eq!(r.status, 202);
    let body = json_of(&r);
    assert_eq!(body["accepted"], 2);
    assert_eq!(body["rejected"][0]["index"], 1);
    assert_eq!(body["rejected"][0]["reason"], "stale");
    // CORS preflight.
    let pre = qoe_testkit::httpc::send(
        hyper::Method::OPTIONS,
        &format!("{}/v1/beacon/testkey", collector.url),
        &[
            ("origin", "https://example.com"),
            ("access-control-request-method", "POST"),
        ],
        bytes::Bytes::new(),
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert_eq!(pre.status, 204);
    assert!(pre
        .headers
        .get("access-control-allow-methods")
        .unwrap()
        .to_str()
        .unwrap()
        .contains("POST"));
    let metrics = collector.svc.metrics().await;
    assert!(
        metrics.contains("qoe_collector_events_rejected_total{reason=\"stale\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("qoe_collector_drops_total{reason=\"body_too_large\"} 3"),
        "{metrics}"
    );
}

#[tokio::test]
async fn connection_cap_and_slow_headers_are_refused_cheaply() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let stack = Stack::from_env();
    let topic = unique("conns");
    stack.create_topic(&topic, 1).await;
    let collector = Collector::start(
        &stack.brokers,
        &topic,
        &[
            ("QOE_HTTP__MAX_CONNECTIONS", "2".into()),
            ("QOE_HTTP__HEADER_TIMEOUT", "2s".into()),
        ],
    );
    collector
        .svc
        .wait_ready(true, Duration::from_secs(30))
        .await;
    collector.wait_listening().await;
    let addr = collector.url.trim_start_matches("http://").to_owned();

    // Two idle connections fill the cap; the third gets a 503 at once. The
    // connection `wait_listening` used may still be closing: wait it out.
    open_connections(&collector, 0).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        s.write_all(b"POST /v1/beacon/testkey HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        held.push(s);
    }
    open_connections(&collector, 2).await;
    let mut third = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut reply = String::new();
    tokio::time::timeout(Duration::from_secs(5), third.read_to_string(&mut reply))
        .await
        .expect("answered at once")
        .unwrap();
    assert!(reply.starts_with("HTTP/1.1 503"), "{reply}");
    assert!(reply.contains("too_many_connections"), "{reply}");

    // The held connections never finish their headers: closed after 2 s.
    for mut s in held {
        let mut buf = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf)).await;
        assert!(read.is_ok(), "a slow-header connection was not closed");
    }
    // Slots are free again.
    let ok = collector.post(event("after", 1).to_string(), &[]).await;
    assert_eq!(ok.status, 202);
    let metrics = collector.svc.metrics().await;
    assert!(
        metrics.contains("qoe_collector_drops_total{reason=\"max_connections\"} 1"),
        "{metrics}"
    );
}

/// Waits until the collector counts `n` open ingest connections.
async fn open_connections(collector: &Collector, n: usize) {
    let line = format!("qoe_collector_open_connections {n}\n");
    let what = format!("{n} open connections");
    qoe_testkit::wait_until(Duration::from_secs(10), &what, || {
        let line = line.clone();
        async move { collector.svc.metrics().await.contains(&line) }
    })
    .await;
}

#[tokio::test]
async fn a_body_that_never_arrives_is_timed_out() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let stack = Stack::from_env();
    let topic = unique("bodytimeout");
    stack.create_topic(&topic, 1).await;
    let collector = Collector::start(
        &stack.brokers,
        &topic,
        &[("QOE_HTTP__BODY_TIMEOUT", "1s".into())],
    );
    collector.wait_listening().await;
    let addr = collector.url.trim_start_matches("http://").to_owned();
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    s.write_all(
        b"POST /v1/beacon/testkey HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
          Content-Length: 1000\r\n\r\n{\"view_id\":",
    )
    .await
    .unwrap();
    let mut reply = String::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut reply))
        .await
        .expect("answered after the body timeout")
        .unwrap();
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    assert!(reply.contains("body_timeout"), "{reply}");
}

#[tokio::test]
async fn bodies_in_flight_are_capped_across_connections() {
    use tokio::io::AsyncWriteExt;
    let stack = Stack::from_env();
    let topic = unique("bodybudget");
    stack.create_topic(&topic, 1).await;
    let collector = Collector::start(
        &stack.brokers,
        &topic,
        &[
            ("QOE_HTTP__MAX_BODY_BYTES", "65536".into()),
            ("QOE_HTTP__MAX_BODY_BYTES_IN_FLIGHT", "65536".into()),
            ("QOE_HTTP__BODY_TIMEOUT", "2s".into()),
        ],
    );
    collector.wait_listening().await;
    let addr = collector.url.trim_start_matches("http://").to_owned();
    // A slow client declares 60 000 bytes and sends a few: it holds 59 KiB
    // of the 64 KiB budget until its body times out.
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(
        b"POST /v1/beacon/testkey HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
          Content-Length: 60000\r\n\r\n{\"view_id\":",
    )
    .await
    .unwrap();
    // A batch of ~8 KiB does not fit beside it: refused at once, with a retry.
    let batch: Vec<_> = (0..16).map(|i| event("budget", i)).collect();
    let body = json!({ "events": batch }).to_string();
    assert!(body.len() > 6 * 1024, "{}", body.len());
    let refused = post_until(&collector, &body, 503, "the slow body to hold its room").await;
    assert_eq!(json_of(&refused)["error"]["code"], "body_budget");
    assert_eq!(refused.headers["retry-after"], "1");
    // A small one fits.
    let ok = collector.post(event("small", 1).to_string(), &[]).await;
    assert_eq!(ok.status, 202, "{}", ok.text());
    // Once the slow body times out, its room is given back.
    drop(slow);
    let ok = post_until(&collector, &body, 202, "the room to come back").await;
    assert_eq!(json_of(&ok)["accepted"], 16);
    let metrics = collector.svc.metrics().await;
    assert!(
        metrics.contains("qoe_collector_drops_total{reason=\"body_budget\"}"),
        "{metrics}"
    );
}

/// Posts `body` every 100 ms until the answer is `status`.
async fn post_until(collector: &Collector, body: &str, status: u16, what: &str) -> Reply {
    let start = std::time::Instant::now();
    loop {
        let r = collector.post(body.to_owned(), &[]).await;
        if r.status == status {
            return r;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}: last answer {} {}",
            r.status,
            r.text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
