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

/// A way to spoil an event, and the reason and field it must be refused with.
type BadCase<'a> = (
    Reason,
    Option<&'a str>,
    Box<dyn FnOnce(&mut serde_json::Value)>,
);

#[test]
fn each_bad_event_gets_its_reason_and_field() {
    let good = sample::wire(&sample::event("v", 1));
    let cases: Vec<BadCase> = vec![
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
    // In an envelope too, with or without metadata before the events.
    for envelope in [
        format!("{{\"events\": {many}}}"),
        format!("{{\"metadata\": {{}}, \"events\": {many}}}"),
        format!("{{\"events\": {many}, \"metadata\": {{}}}}"),
    ] {
        assert_eq!(
            decode(envelope.as_bytes(), &c).unwrap_err().reason,
            Reason::TooManyEvents,
            "{envelope:.60}"
        );
    }
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

#[test]
fn unescaped_strings_of_equal_length_stay_apart() {
    // Escaped strings are unescaped into copies that are freed after each
    // event; a later copy may get the same address. Reuse of the previous
    // event's string must compare text, not addresses, for those.
    let a = sample::wire(&sample::event("v1", 1)).to_string();
    let first = a.replacen("\"cdn\":\"", "\"cdn\":\"a\\u0062c", 1);
    let second = a.replacen("\"cdn\":\"", "\"cdn\":\"x\\u0079z", 1);
    let body = format!("[{first},{second},{first}]");
    let decoded = decode(body.as_bytes(), &checks()).unwrap();
    let cdns: Vec<String> = decoded
        .accepted
        .iter()
        .map(|e| e.cdn[..3].to_string())
        .collect();
    assert_eq!(cdns, ["abc", "xyz", "abc"]);
}

mod scanner {
    use super::*;
    use crate::validate::decode::{decode_scan, decode_serde};
    use proptest::prelude::*;

    #[test]
    fn takes_the_bodies_sdks_send() {
        for body in [
            sample::single_body(),
            sample::batch_body(20),
            sample::sdk_batch_body(20),
        ] {
            let text = std::str::from_utf8(&body).unwrap();
            let scanned = decode_scan(text, &checks()).expect("in the scanner's subset");
            assert_eq!(Ok(scanned), decode_serde(text, &checks()));
        }
    }

    #[test]
    fn leaves_anything_unusual_to_serde() {
        let ok = sample::wire(&sample::event("v1", 1)).to_string();
        let cases = [
            ok.replacen("\"seq\":1", "\"seq\":1.0", 1),
            ok.replacen("\"seq\":1", "\"seq\":-1", 1),
            ok.replacen("\"seq\":1", "\"seq\":01", 1),
            ok.replacen("\"seq\":1", "\"seq\":1e0", 1),
            ok.replacen("\"seq\":1", "\"seq\":99999999999999999999999", 1),
            ok.replacen("{", "{\"cdn\":null,", 1)
                .replacen("\"cdn\":\"", "\"cdn\":\"x", 1),
            ok.replacen("{", "{\"view_id\":\"a\\u0062\",", 1),
            ok.replacen("{", "{\"extra\":{\"nested\":1},", 1),
            ok.replacen("{", "{\"seq\":\"1\",", 1),
            format!("[{ok}] x"),
            "[]".to_string(),
            format!("{{\"events\":[{ok}],\"other\":1}}"),
        ];
        for body in cases {
            assert_eq!(decode_scan(&body, &checks()), None, "{body}");
        }
        // Unknown scalar fields are ignored, as serde does.
        let extra = ok.replacen("{", "{\"sdk\":\"web\",\"retries\":2,\"beta\":true,", 1);
        let scanned = decode_scan(&extra, &checks()).expect("unknown scalars are fine");
        assert_eq!(scanned.accepted.len(), 1);
    }

    #[test]
    fn fields_in_any_order_and_metadata_under_events() {
        // The scanner predicts each key from the previous event; events that
        // list their fields in another order, or add unknown ones, must read
        // the same as serde reads them.
        let a = sample::wire(&sample::event("v1", 1));
        let mut reversed = serde_json::Map::new();
        for (k, v) in a.as_object().unwrap().iter().rev() {
            reversed.insert(k.clone(), v.clone());
        }
        let b = serde_json::Value::Object(reversed).to_string();
        let c = a.to_string().replacen('{', "{\"sdk\":\"web\",", 1);
        let bodies = [
            format!("[{a},{b},{c},{a}]"),
            format!(
                "{{\"metadata\":{{\"cdn\":\"m\",\"viewer_id\":\"w\"}},\"events\":[{a},{b},{c}]}}"
            ),
            // A string that spells "events" does not make an envelope.
            a.to_string()
                .replacen("\"cdn\":\"", "\"cdn\":\"events\",\"x\":\"", 1),
        ];
        for body in bodies {
            let scanned = decode_scan(&body, &checks()).expect("in the scanner's subset");
            assert_eq!(
                Ok(scanned.clone()),
                decode_serde(&body, &checks()),
                "{body}"
            );
            assert!(!scanned.accepted.is_empty(), "{body}");
        }
        // A field named like the envelope's is left to serde.
        let odd = a.to_string().replacen('{', "{\"events\":1,", 1);
        assert_eq!(decode_scan(&odd, &checks()), None);
    }

    #[test]
    fn a_previous_requests_order_is_only_a_guess() {
        // Each thread predicts keys from the previous body's order: bodies
        // in other orders, with fewer or unknown fields, or shaped
        // differently, read as serde reads them, whatever came before.
        let wire = sample::wire(&sample::event("v1", 1));
        let fields: Vec<String> = wire
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| format!("{}:{v}", serde_json::Value::from(k.as_str())))
            .collect();
        let object = |fields: &mut dyn Iterator<Item = &String>| {
            format!("{{{}}}", fields.cloned().collect::<Vec<_>>().join(","))
        };
        let a = object(&mut fields.iter());
        let b = object(&mut fields.iter().rev());
        let short = object(&mut fields.iter().filter(|f| !f.starts_with("\"cdn\"")));
        let unknown = a.replacen("\"seq\":1", "\"sequence\":1,\"seq\":1", 1);
        assert_ne!(a, b);
        let bodies = [
            a.clone(),
            b.clone(),
            a.clone(),
            short,
            unknown,
            a.clone(),
            format!("[{b},{a}]"),
            String::from_utf8(sample::sdk_batch_body(3)).unwrap(),
            b,
            a,
        ];
        for body in bodies.iter().chain(bodies.iter().rev()) {
            let scanned = decode_scan(body, &checks()).expect("in the scanner's subset");
            assert_eq!(Ok(scanned.clone()), decode_serde(body, &checks()), "{body}");
            assert!(!scanned.accepted.is_empty(), "{body}");
        }
    }

    #[test]
    fn strings_carry_over_between_bodies_by_text_only() {
        // A thread keeps the last body's strings: the next body's equal
        // text shares them, and other text — even at the address the last
        // body had — is read afresh.
        let a = sample::wire(&sample::event("v1", 1)).to_string();
        let first = decode_scan(&a, &checks()).expect("in the scanner's subset");
        let again = decode_scan(&a.clone(), &checks()).expect("in the scanner's subset");
        let (first, again) = (&first.accepted[0], &again.accepted[0]);
        assert!(Arc::ptr_eq(&first.video_title, &again.video_title));
        assert!(Arc::ptr_eq(&first.cdn, &again.cdn));
        for round in 0..50 {
            let cdn = format!("cdn-{round:03}");
            let body = a.replacen("\"cdn\":\"cdn-a\"", &format!("\"cdn\":\"{cdn}\""), 1);
            assert_ne!(body, a);
            let decoded = decode_scan(&body, &checks()).expect("in the scanner's subset");
            assert_eq!(&*decoded.accepted[0].cdn, cdn);
            assert_eq!(Ok(decoded), decode_serde(&body, &checks()));
        }
    }

    #[test]
    fn a_field_one_event_wrote_is_the_metadatas_again_in_the_next() {
        // Events are read in place over the metadata: a field the previous
        // event wrote and this one leaves out, or gives as null, must read
        // as the metadata's value, never the previous event's.
        let with = |cdn: &str| {
            let mut e = sample::wire(&sample::event("v1", 1));
            let map = e.as_object_mut().unwrap();
            map.remove("cdn");
            map.remove("player_name");
            if !cdn.is_empty() {
                map.insert("cdn".into(), serde_json::from_str(cdn).unwrap());
            }
            e.to_string()
        };
        let (own, null, absent) = (with("\"own\""), with("null"), with(""));
        let body = format!(
            "{{\"metadata\":{{\"cdn\":\"meta\",\"player_name\":\"p\"}},\
             \"events\":[{own},{null},{own},{absent},{own},{own}]}}"
        );
        let scanned = decode_scan(&body, &checks()).expect("in the scanner's subset");
        assert_eq!(Ok(scanned.clone()), decode_serde(&body, &checks()));
        let cdns: Vec<&str> = scanned.accepted.iter().map(|e| &*e.cdn).collect();
        assert_eq!(cdns, ["own", "meta", "own", "meta", "own", "own"]);
        assert!(scanned.accepted.iter().all(|e| &*e.player_name == "p"));
    }

    fn edit() -> impl Strategy<Value = (usize, u8)> {
        let bytes = b"\"\\,:{}[]0129-.eE nultrf\x01a".to_vec();
        (any::<usize>(), proptest::sample::select(bytes))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        /// Whatever the scanner accepts, the serde paths read the same way.
        #[test]
        fn agrees_with_serde(
            which in 0usize..3,
            edits in proptest::collection::vec(edit(), 1..4),
            insert in any::<bool>(),
            cut in any::<usize>(),
        ) {
            let mut body = match which {
                0 => sample::single_body(),
                1 => sample::batch_body(3),
                _ => sample::sdk_batch_body(3),
            };
            for (at, byte) in edits {
                let at = at % body.len();
                if insert { body.insert(at, byte) } else { body[at] = byte }
            }
            body.truncate(1 + cut % body.len());
            if let Ok(text) = std::str::from_utf8(&body) {
                if let Some(scanned) = decode_scan(text, &checks()) {
                    prop_assert_eq!(Ok(scanned), decode_serde(text, &checks()), "{}", text);
                }
            }
        }
    }
}
