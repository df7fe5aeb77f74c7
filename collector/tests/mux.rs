//! mux-embed beacons in over their own listener → records keyed by view
//! (`xid`), marked `mux-embed`, every key kept by its full name; what the
//! SDK hears for an unknown `env_key` or a body that is not its (4xx: it
//! retries on 5xx only).

mod support;

use std::time::Duration;

use qoe_schema::beacon::EventType;
use qoe_schema::record::Source;
use qoe_testkit::{free_port, unique, Stack};
use rdkafka::message::Message;
use serde_json::{json, Value};
use support::{consume_events, json_of, now_ms, post_mux, Collector, KEY, PROPERTY};

/// A body as mux-embed 5.19.0 posts it: the view's first event in full,
/// then one with only what changed.
fn body(xid: &str, first_seq: u32, ake: &str) -> Value {
    let now = now_ms();
    json!({"metadata": {"transmission_timestamp": now, "rtt_ms": 5}, "events": [
        {"mem": "mux-embed", "memve": "5.19.0", "xsqno": first_seq, "psqno": first_seq,
         "uti": now - 300, "ake": ake, "xid": xid, "e": "viewstart", "vid": "clip",
         "vtt": "Clip", "psw": "HTML5 Video Element", "pwd": 320, "vsodu": null},
        {"xsqno": first_seq + 1, "uti": now - 10, "ake": ake, "xid": xid, "e": "playing",
         "xtitofifr": 290, "xwati": 290}
    ]})
}

struct Mux {
    collector: Collector,
    url: String,
}

async fn start(topic: &str) -> Mux {
    let port = free_port();
    let collector = Collector::start(
        &Stack::from_env().brokers,
        topic,
        &[("QOE_MUX_EMBED__LISTEN", format!("127.0.0.1:{port}"))],
    );
    collector.wait_listening().await;
    Mux {
        collector,
        url: format!("http://127.0.0.1:{port}"),
    }
}

impl Mux {
    async fn post(&self, path: &str, body: Vec<u8>) -> qoe_testkit::httpc::Reply {
        post_mux(&self.url, path, body).await
    }
}

#[tokio::test]
async fn beacons_reach_the_topic_keyed_by_view_with_every_key() {
    let stack = Stack::from_env();
    let topic = unique("mux");
    stack.create_topic(&topic, 4).await;
    let mux = start(&topic).await;

    let r = mux
        .post("/", serde_json::to_vec(&body("view-a", 1, KEY)).unwrap())
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(json_of(&r)["accepted"], 2);
    assert_eq!(r.headers.get("access-control-allow-origin").unwrap(), "*");
    // An event of another property in the body is refused by index.
    let mut mixed = body("view-b", 1, KEY);
    mixed["events"][1]["ake"] = json!("someone-else");
    let r = mux.post("/", serde_json::to_vec(&mixed).unwrap()).await;
    assert_eq!(r.status, 202, "{}", r.text());
    let answer = json_of(&r);
    assert_eq!(answer["accepted"], 1);
    assert_eq!(answer["rejected"][0]["index"], 1);
    assert_eq!(answer["rejected"][0]["reason"], "other_env_key");

    let records = consume_events(&stack.brokers, &topic, 3, Duration::from_secs(60)).await;
    let mut seen = Vec::new();
    for (msg, heartbeats) in &records {
        for hb in heartbeats {
            assert_eq!(hb.enrichment.source, Source::MuxEmbed);
            assert_eq!(hb.property_id, PROPERTY);
            assert_eq!(
                msg.key().unwrap(),
                hb.event.view_id.as_bytes(),
                "keyed by xid"
            );
            let keys: Vec<&str> = hb.event.extra.iter().map(|(k, _)| k.as_str()).collect();
            seen.push((
                hb.event.view_id.to_string(),
                hb.event.seq,
                hb.event.event,
                keys.len(),
            ));
            if hb.event.seq == 1 && &*hb.event.view_id == "view-a" {
                for key in [
                    "mux_embed_version",
                    "player_software",
                    "video_source_duration",
                ] {
                    assert!(keys.contains(&key), "{key} in {keys:?}");
                }
            }
        }
    }
    seen.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    assert_eq!(
        seen,
        [
            ("view-a".to_owned(), 1, EventType::Viewstart, 13),
            ("view-a".to_owned(), 2, EventType::Playing, 7),
            ("view-b".to_owned(), 1, EventType::Viewstart, 13),
        ]
    );
    let metrics = mux.collector.svc.metrics().await;
    for line in [
        "qoe_collector_requests_total{route=\"mux-embed\",status=\"202\"} 2",
        "qoe_collector_events_rejected_total{reason=\"other_env_key\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
}

#[tokio::test]
async fn the_sdk_hears_a_4xx_for_what_it_must_not_retry() {
    let stack = Stack::from_env();
    let topic = unique("mux-bad");
    stack.create_topic(&topic, 1).await;
    let mux = start(&topic).await;
    let good = serde_json::to_vec(&body("view-c", 1, KEY)).unwrap();
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "/",
            serde_json::to_vec(&body("v", 1, "nope")).unwrap(),
            403,
            "unknown_key",
        ),
        ("/", b"{\"metadata\":".to_vec(), 400, "invalid_json"),
        ("/", b"{\"metadata\":{}}".to_vec(), 400, "not_a_beacon"),
        ("/", b"{\"events\":[]}".to_vec(), 400, "empty_batch"),
        (
            "/",
            b"{\"events\":[{\"e\":\"play\"}]}".to_vec(),
            400,
            "missing_field",
        ),
        ("/v1/beacon", good.clone(), 404, "not_found"),
    ];
    for (path, body, status, code) in cases {
        let r = mux.post(path, body).await;
        assert_eq!(r.status, status, "{path}: {}", r.text());
        assert_eq!(json_of(&r)["error"]["code"], code, "{path}: {}", r.text());
    }
    // Not served on the beacon listener.
    let r = mux.collector.post_to("/", good.clone(), &[]).await;
    assert_eq!(r.status, 404, "{}", r.text());
    // Nothing refused reached the topic; a good body still flows.
    let r = mux.post("/", good).await;
    assert_eq!(r.status, 202, "{}", r.text());
    let records = consume_events(&stack.brokers, &topic, 2, Duration::from_secs(30)).await;
    let views: Vec<String> = records
        .iter()
        .flat_map(|(_, hbs)| hbs.iter().map(|hb| hb.event.view_id.to_string()))
        .collect();
    assert_eq!(views, ["view-c", "view-c"]);
}
