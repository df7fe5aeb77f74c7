//! CMCD v2 event-mode reports in over HTTP → records keyed by session,
//! marked `cmcd`; what a player needs to hear when it is misconfigured
//! (410) or the body is not CMCD (400).

mod support;

use std::time::Duration;

use qoe_schema::beacon::{EventType, PlayerState};
use qoe_schema::record::Source;
use qoe_testkit::{unique, Stack};
use rdkafka::message::Message;
use support::{consume_events, gzip, json_of, now_ms, Collector, KEY, PROPERTY};

fn report(sid: &str, cid: &str, sn: u32, keys: &str) -> String {
    format!(
        "br=(3200),cid=\"{cid}\",{keys},sf=h,sid=\"{sid}\",sn={sn},st=v,ts={},v=2",
        now_ms()
    )
}

#[tokio::test]
async fn reports_reach_the_topic_keyed_by_session() {
    let stack = Stack::from_env();
    let topic = unique("cmcd");
    stack.create_topic(&topic, 4).await;
    let collector = Collector::start(&stack.brokers, &topic, &[]);
    collector
        .svc
        .wait_ready(true, Duration::from_secs(30))
        .await;

    let cmcd = [("content-type", "application/cmcd")];
    // One report, as hls.js sends with batchSize 1.
    let r = collector
        .post_to(
            &format!("/v1/cmcd/{KEY}"),
            report("sess-a", "clip-1", 0, "e=ps,sta=s"),
            &cmcd,
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert!(r.body.is_empty());
    assert_eq!(r.headers.get("access-control-allow-origin").unwrap(), "*");
    // A batch, gzip, `text/cmcd`, key in the query: a content change in the
    // middle makes two views of one session.
    let batch = [
        report("sess-a", "clip-1", 1, "e=ps,sta=p"),
        report("sess-a", "clip-1", 2, "e=t,sta=p"),
        report("sess-a", "clip-2", 3, "e=c,sta=s"),
        report("sess-a", "clip-2", 4, "e=ps,sta=p"),
    ]
    .join("\n");
    let r = collector
        .post_to(
            &format!("/v1/cmcd?key={KEY}"),
            gzip(batch.as_bytes()),
            &[("content-type", "text/cmcd"), ("content-encoding", "gzip")],
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text());
    // A line that is not CMCD next to good ones: those are kept, it is named.
    let mixed = format!("{}\n(not cmcd", report("sess-b", "", 0, "e=ps,sta=s"));
    let r = collector
        .post_to(&format!("/v1/cmcd/{KEY}"), mixed, &cmcd)
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    let answer = json_of(&r);
    assert_eq!(answer["accepted"], 1);
    assert_eq!(answer["rejected"][0]["index"], 1);
    assert_eq!(answer["rejected"][0]["reason"], "invalid_cmcd");

    let records = consume_events(&stack.brokers, &topic, 6, Duration::from_secs(60)).await;
    let mut seen = Vec::new();
    for (msg, heartbeats) in &records {
        for hb in heartbeats {
            assert_eq!(hb.enrichment.source, Source::Cmcd);
            assert_eq!(hb.property_id, PROPERTY);
            let session = qoe_schema::cmcd::session_of(&hb.event.view_id);
            assert_eq!(msg.key().unwrap(), session.as_bytes(), "keyed by session");
            seen.push((
                hb.event.view_id.to_string(),
                hb.event.seq,
                hb.event.event,
                hb.event.state,
            ));
        }
    }
    seen.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    let clip = |c: &str| qoe_schema::cmcd::view_id("sess-a", c);
    let mut expected = vec![
        (clip("clip-1"), 0, EventType::Play, PlayerState::Starting),
        (clip("clip-1"), 1, EventType::Playing, PlayerState::Playing),
        (
            clip("clip-1"),
            2,
            EventType::Heartbeat,
            PlayerState::Playing,
        ),
        (
            clip("clip-2"),
            3,
            EventType::Viewstart,
            PlayerState::Starting,
        ),
        (clip("clip-2"), 4, EventType::Playing, PlayerState::Playing),
        (
            "sess-b".to_owned(),
            0,
            EventType::Play,
            PlayerState::Starting,
        ),
    ];
    expected.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    assert_eq!(seen, expected);
    let metrics = collector.svc.metrics().await;
    for line in [
        "qoe_collector_requests_total{route=\"cmcd\",status=\"204\"} 2",
        "qoe_collector_requests_total{route=\"cmcd\",status=\"202\"} 1",
        "qoe_collector_events_rejected_total{reason=\"invalid_cmcd\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
}

#[tokio::test]
async fn a_misconfigured_player_is_told_to_stop_and_bad_bodies_why() {
    let stack = Stack::from_env();
    let topic = unique("cmcd-bad");
    stack.create_topic(&topic, 1).await;
    let collector = Collector::start(&stack.brokers, &topic, &[]);
    collector.wait_listening().await;
    let cmcd = [("content-type", "application/cmcd")];
    let good = report("s", "c", 0, "e=ps,sta=s");
    // path, body, headers, status, code
    type Case<'a> = (String, String, Vec<(&'a str, &'a str)>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            "/v1/cmcd/nope".into(),
            good.clone(),
            cmcd.to_vec(),
            410,
            "unknown_key",
        ),
        (
            "/v1/cmcd".into(),
            good.clone(),
            cmcd.to_vec(),
            410,
            "missing_key",
        ),
        (
            format!("/v1/cmcd/{KEY}"),
            "{\"events\":[]}".into(),
            cmcd.to_vec(),
            400,
            "invalid_cmcd",
        ),
        (
            format!("/v1/cmcd/{KEY}"),
            "\n".into(),
            cmcd.to_vec(),
            400,
            "empty_batch",
        ),
        (
            format!("/v1/cmcd/{KEY}"),
            good.clone(),
            vec![("content-type", "application/json")],
            415,
            "unsupported_media_type",
        ),
        (
            format!("/v1/cmcd/{KEY}"),
            good.replace("sn=0", "sn=-1"),
            cmcd.to_vec(),
            400,
            "out_of_range",
        ),
        (
            format!("/v1/cmcd/{KEY}/x"),
            good.clone(),
            cmcd.to_vec(),
            404,
            "not_found",
        ),
    ];
    for (path, body, headers, status, code) in cases {
        let r = collector.post_to(&path, body, &headers).await;
        assert_eq!(r.status, status, "{path}: {}", r.text());
        let answer = json_of(&r);
        let got = answer["error"]["code"].as_str().unwrap_or_default();
        assert_eq!(got, code, "{path}: {answer}");
    }
    // Nothing refused reached the topic; a good report still flows.
    let r = collector
        .post_to(&format!("/v1/cmcd/{KEY}"), good, &cmcd)
        .await;
    assert_eq!(r.status, 204, "{}", r.text());
    let records = consume_events(&stack.brokers, &topic, 1, Duration::from_secs(30)).await;
    assert_eq!(records.len(), 1);
}
