use super::*;
use crate::beacon::MAX_EVENTS_PER_BATCH;
use crate::sample;
use serde_json::json;

fn checks() -> Checks {
    Checks::at(sample::NOW_MS)
}

fn decode_json(v: serde_json::Value) -> Result<Decoded, BodyError> {
    decode(v.to_string().as_bytes(), &checks())
}

fn one_rejection(
    mut fields: serde_json::Value,
    edit: impl FnOnce(&mut serde_json::Value),
) -> Rejection {
    edit(&mut fields);
    let out =
        decode_json(json!({ "events": [sample::wire(&sample::event("ok", 1)), fields] })).unwrap();
    assert_eq!(out.accepted.len(), 1, "the valid neighbour is accepted");
    assert_eq!(out.rejected.len(), 1);
    assert_eq!(out.rejected[0].index, 1);
    out.rejected[0].clone()
}

#[test]
fn a_single_event_round_trips() {
    let event = sample::event("abc-1", 3);
    let out = decode(&sample::single_body(), &checks()).unwrap();
    assert!(out.rejected.is_empty());
    assert_eq!(out.accepted.len(), 1);
    let out = decode_json(sample::wire(&event)).unwrap();
    assert_eq!(out.accepted, vec![event]);
}

#[test]
fn envelope_metadata_fills_missing_fields() {
    let body = json!({
        "metadata": {"viewer_id": "u-7", "video_id": "vid", "view_start": sample::NOW_MS - 1000, "cdn": "edge"},
        "events": [
            {"view_id": "v1", "seq": 1, "event": "viewstart", "ts": sample::NOW_MS},
            {"view_id": "v1", "seq": 2, "event": "play", "ts": sample::NOW_MS, "cdn": "other"},
        ]
    });
    let out = decode_json(body).unwrap();
    assert!(out.rejected.is_empty(), "{:?}", out.rejected);
    assert_eq!(&*out.accepted[0].viewer_id, "u-7");
    assert_eq!(&*out.accepted[0].cdn, "edge");
    assert_eq!(&*out.accepted[1].cdn, "other", "the event's own field wins");
    assert_eq!(out.accepted[1].state, crate::beacon::PlayerState::Starting);
    assert!(out.accepted[1].play_requested);
}

#[test]
fn an_array_is_a_batch_and_unknown_fields_are_ignored() {
    let mut e = sample::wire(&sample::event("v", 1));
    e["sdk_future_field"] = json!({"nested": [1, 2, 3]});
    let out = decode_json(json!([e.clone(), e])).unwrap();
    assert_eq!(out.accepted.len(), 2);
}

#[test]
fn each_bad_event_gets_its_reason_and_field() {
    let good = sample::wire(&sample::event("v", 1));
    let cases: Vec<(
        Reason,
        Option<&str>,
        Box<dyn FnOnce(&mut serde_json::Value)>,
    )> = vec![
        (
            Reason::MissingField,
            Some("view_id"),
            Box::new(|e| {
                e.as_object_mut().unwrap().remove("view_id");
            }),
        ),
        (
            Reason::MissingField,
            Some("viewer_id"),
            Box::new(|e| {
                e.as_object_mut().unwrap().remove("viewer_id");
            }),
        ),
        (
            Reason::InvalidType,
            Some("seq"),
            Box::new(|e| e["seq"] = json!("7")),
        ),
        (
            Reason::InvalidType,
            Some("autoplay"),
            Box::new(|e| e["autoplay"] = json!(1)),
        ),
        (
            Reason::OutOfRange,
            Some("seq"),
            Box::new(|e| e["seq"] = json!(-1)),
        ),
        (
            Reason::OutOfRange,
            Some("watch_time_ms"),
            Box::new(|e| e["watch_time_ms"] = json!(1.5)),
        ),
        (
            Reason::UnknownEvent,
            Some("event"),
            Box::new(|e| e["event"] = json!("teleport")),
        ),
        (
            Reason::InvalidEnum,
            Some("stream_type"),
            Box::new(|e| e["stream_type"] = json!("vod")),
        ),
        (
            Reason::InvalidEnum,
            Some("state"),
            Box::new(|e| e["state"] = json!("dancing")),
        ),
        (
            Reason::FieldTooLong,
            Some("video_title"),
            Box::new(|e| e["video_title"] = json!("x".repeat(513))),
        ),
        (
            Reason::InvalidViewId,
            Some("view_id"),
            Box::new(|e| e["view_id"] = json!("has space")),
        ),
        (
            Reason::InvalidViewId,
            Some("view_id"),
            Box::new(|e| e["view_id"] = json!("")),
        ),
        (
            Reason::TsInFuture,
            Some("ts"),
            Box::new(|e| e["ts"] = json!(sample::NOW_MS + 3_600_000)),
        ),
        (
            Reason::Stale,
            Some("ts"),
            Box::new(|e| e["ts"] = json!(sample::NOW_MS - 7_200_000)),
        ),
        (
            Reason::InvalidViewStart,
            Some("view_start"),
            Box::new(|e| e["view_start"] = json!(sample::NOW_MS + 1)),
        ),
    ];
    for (reason, field, edit) in cases {
        let r = one_rejection(good.clone(), edit);
        assert_eq!((r.reason, r.field.as_deref()), (reason, field), "{r:?}");
        assert!(!r.message.is_empty());
    }
    let r = {
        let out = decode_json(json!({"events": [good.clone(), 5]})).unwrap();
        out.rejected[0].clone()
    };
    assert_eq!(r.reason, Reason::NotAnObject);
}

#[test]
fn whole_body_errors() {
    let c = checks();
    assert_eq!(
        decode(b"\xff\xfe{}", &c).unwrap_err().reason,
        Reason::InvalidUtf8
    );
    assert_eq!(
        decode(b"{\"events\": [", &c).unwrap_err().reason,
        Reason::InvalidJson
    );
    assert_eq!(decode(b"", &c).unwrap_err().reason, Reason::InvalidJson);
    assert_eq!(decode(b"42", &c).unwrap_err().reason, Reason::NotABeacon);
    assert_eq!(
        decode(b"\"hi\"", &c).unwrap_err().reason,
        Reason::NotABeacon
    );
    assert_eq!(
        decode(b"{\"events\": []}", &c).unwrap_err().reason,
        Reason::EmptyBatch
    );
    assert_eq!(
        decode(b"{\"events\": 3}", &c).unwrap_err().reason,
        Reason::InvalidJson
    );
    let many = format!("[{}]", vec!["{}"; MAX_EVENTS_PER_BATCH + 1].join(","));
    assert_eq!(
        decode(many.as_bytes(), &c).unwrap_err().reason,
        Reason::TooManyEvents
    );
    // Deep nesting never overflows the stack: it is refused, per event.
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let out = decode(deep.as_bytes(), &c).unwrap();
    assert_eq!(out.rejected[0].reason, Reason::NotAnObject);
    // A deeply nested unknown field is skipped without recursion.
    let mut event = sample::wire(&sample::event("v", 1)).to_string();
    event.pop();
    let deep_event = format!(
        "{{\"events\":[{event},\"x\":{}{}}}]}}",
        "[".repeat(5_000),
        "]".repeat(5_000)
    );
    let out = decode(deep_event.as_bytes(), &c).unwrap();
    assert_eq!((out.accepted.len(), out.rejected.len()), (1, 0));
}

#[test]
fn codes_are_stable_and_unique() {
    let codes: std::collections::BTreeSet<&str> = Reason::ALL.iter().map(|r| r.code()).collect();
    assert_eq!(codes.len(), Reason::ALL.len());
    for r in Reason::ALL {
        assert_eq!(serde_json::to_value(r).unwrap(), json!(r.code()));
    }
}
