use std::collections::HashMap;

use serde_json::json;

use super::*;
use crate::beacon::StreamType;

const NOW: i64 = 1_796_017_700_000;

fn checks() -> Checks {
    Checks::at(NOW)
}

/// Two events of the capture of mux-embed 5.19.0 in Chromium (the view's
/// first, a full snapshot, and a later one with only what changed).
fn captured() -> serde_json::Value {
    json!({"metadata": {"transmission_timestamp": NOW, "rtt_ms": 21}, "events": [
        {"mapve": "2.1", "mem": "mux-embed", "memve": "5.19.0", "pinid": "f9ee", "psqno": 5,
         "xsqno": 5, "pispa": false, "pwd": 320, "pht": 180, "pauon": false, "vsodu": 30000,
         "pphti": 0, "uti": NOW - 9000, "psw": "HTML5 Video Element", "ake": "env-1",
         "pnm": "capture", "vid": "clip", "vtt": "Clip", "xid": "41f6297c-03ab", "xpntimscv": 0,
         "xwati": 0, "xst": NOW - 9001, "vpbrg": "[]", "mvrid": "74d5", "msano": 0.5123,
         "e": "viewstart", "vsour": "MSE style URL", "vsoisli": null},
        {"xsqno": 10, "pphti": 28, "uti": NOW - 8700, "ake": "env-1", "xid": "41f6297c-03ab",
         "xpntimscv": 0, "xwati": 295, "xtitofifr": 295, "e": "playing", "zzq": [1, {"a": true}]}
    ]})
}

fn body(v: &serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

#[test]
fn a_captured_body_decodes_with_every_key_expanded() {
    let got = decode(&body(&captured()), &checks()).expect("decodes");
    assert_eq!(got.env_key, "env-1");
    assert!(
        got.decoded.rejected.is_empty(),
        "{:?}",
        got.decoded.rejected
    );
    let [start, playing] = got.decoded.accepted.as_slice() else {
        panic!("two events: {:?}", got.decoded.accepted)
    };
    assert_eq!(&*start.view_id, "41f6297c-03ab");
    assert_eq!(start.seq, 5);
    assert_eq!(start.event, EventType::Viewstart);
    assert_eq!(start.ts_ms, NOW - 9000);
    assert_eq!(start.extra.len(), 28, "every key kept: {:?}", start.extra);
    let get = |e: &Event, k: &str| {
        e.extra
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(
        get(start, "player_software").as_deref(),
        Some("HTML5 Video Element")
    );
    assert_eq!(get(start, "player_width").as_deref(), Some("320"));
    assert_eq!(get(start, "player_autoplay_on").as_deref(), Some("false"));
    assert_eq!(get(start, "mux_sample_number").as_deref(), Some("0.5123"));
    assert_eq!(
        get(start, "video_source_is_live").as_deref(),
        Some(""),
        "null is kept empty"
    );
    assert_eq!(get(start, "env_key").as_deref(), Some("env-1"));
    assert_eq!(playing.event, EventType::Playing);
    assert_eq!(
        get(playing, "view_time_to_first_frame").as_deref(),
        Some("295")
    );
    // Not a key of the SDK's: kept as sent, its value as JSON.
    assert_eq!(get(playing, "zzq").as_deref(), Some(r#"[1,{"a":true}]"#));
    assert!(
        Arc::ptr_eq(&start.view_id, &playing.view_id),
        "one allocation per view"
    );
}

#[test]
fn bad_events_are_refused_by_index_and_the_others_kept() {
    let mut v = captured();
    let good = v["events"][1].clone();
    let with = |k: &str, val: serde_json::Value| {
        let mut e = good.clone();
        e[k] = val;
        e
    };
    let without = |k: &str| {
        let mut e = good.clone();
        e.as_object_mut().unwrap().remove(k);
        e
    };
    let cases = [
        (without("xid"), Reason::MissingField, Some("xid")),
        (without("xsqno"), Reason::MissingField, Some("xsqno")),
        (without("e"), Reason::MissingField, Some("e")),
        (without("uti"), Reason::MissingField, Some("uti")),
        (
            with("xid", json!("a b")),
            Reason::InvalidViewId,
            Some("xid"),
        ),
        (
            with("xsqno", json!("7")),
            Reason::InvalidType,
            Some("xsqno"),
        ),
        (with("xsqno", json!(-1)), Reason::OutOfRange, Some("xsqno")),
        (
            with("uti", json!(NOW + 3_600_000)),
            Reason::TsInFuture,
            Some("ts"),
        ),
        (
            with("ake", json!("env-2")),
            Reason::OtherEnvKey,
            Some("ake"),
        ),
        (with(&"k".repeat(65), json!(1)), Reason::FieldTooLong, None),
        (json!("playing"), Reason::NotAnObject, None),
    ];
    let n = cases.len();
    let events = v["events"].as_array_mut().unwrap();
    for (e, _, _) in &cases {
        events.push(e.clone());
    }
    let got = decode(&body(&v), &checks()).expect("decodes");
    assert_eq!(got.decoded.accepted.len(), 2);
    assert_eq!(got.decoded.rejected.len(), n);
    for (r, (_, reason, field)) in got.decoded.rejected.iter().zip(&cases) {
        assert_eq!(r.reason, *reason, "{r:?}");
        assert_eq!(r.field.as_deref(), *field, "{r:?}");
    }
    assert_eq!(got.decoded.rejected[0].index, 2);
}

#[test]
fn bodies_that_are_not_mux_embed_fail_whole() {
    let too_many: Vec<_> = (0..=MAX_EVENTS)
        .map(|_| captured()["events"][1].clone())
        .collect();
    let cases = [
        (b"not json".to_vec(), Reason::InvalidJson),
        (body(&json!([1, 2])), Reason::NotABeacon),
        (body(&json!({"metadata": {}})), Reason::NotABeacon),
        (body(&json!({"events": []})), Reason::EmptyBatch),
        (body(&json!({"events": too_many})), Reason::TooManyEvents),
        (
            body(&json!({"events": [{"e": "play"}]})),
            Reason::MissingField,
        ),
    ];
    for (bytes, reason) in cases {
        let err = decode(&bytes, &checks()).expect_err("refused");
        assert_eq!(err.reason, reason, "{}", err.message);
    }
}

#[test]
fn long_values_are_cut_on_a_character_boundary() {
    let mut v = captured();
    v["events"][1]["wur"] = json!("é".repeat(MAX_VALUE_BYTES));
    let got = decode(&body(&v), &checks()).expect("decodes");
    let (_, url) = got.decoded.accepted[1]
        .extra
        .iter()
        .find(|(k, _)| k == "page_url")
        .expect("kept");
    assert_eq!(url.len(), MAX_VALUE_BYTES);
}

fn keys(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn facts_take_the_sdks_numbers() {
    let k = keys(&[
        ("mux_viewer_id", "74d5"),
        ("video_id", "clip"),
        ("video_title", "Clip"),
        ("video_stream_type", "live"),
        ("player_software", "HTML5 Video Element"),
        ("player_software_version", "5.19.0"),
        ("player_autoplay_on", "true"),
        ("video_cdn", "edge-1"),
        ("view_time_to_first_frame", "295"),
        ("player_error_code", "4"),
        ("player_error_message", "MEDIA_ERR_SRC_NOT_SUPPORTED"),
        ("video_source_duration", "30000"),
        ("player_width", "320"),
        ("player_height", "180"),
        ("view_watch_time", "7202"),
        ("view_playing_time_ms_cumulative", "6907"),
        ("view_rebuffer_count", "1"),
        ("view_rebuffer_duration", "1107.4"),
        ("video_source_bitrate", "2499600"),
        ("view_dropped_frame_count", "3"),
        ("player_playhead_time", "5940"),
    ]);
    let mut row = Event::default();
    facts::fill(&k, &mut row);
    assert_eq!(&*row.viewer_id, "74d5");
    assert_eq!((&*row.video_id, &*row.video_title), ("clip", "Clip"));
    assert_eq!(row.stream_type, StreamType::Live);
    assert_eq!(
        (&*row.player_name, &*row.player_version),
        ("HTML5 Video Element", "5.19.0")
    );
    assert!(row.autoplay);
    assert_eq!(&*row.cdn, "edge-1");
    assert_eq!(row.startup_time_ms, Some(295));
    assert_eq!(
        (&*row.error_code, &*row.error_message),
        ("4", "MEDIA_ERR_SRC_NOT_SUPPORTED")
    );
    assert_eq!(row.video_duration_ms, 30_000);
    assert_eq!((row.player_width, row.player_height), (320, 180));
    assert_eq!((row.watch_time_ms, row.playing_time_ms), (7202, 6907));
    assert_eq!((row.rebuffer_count, row.rebuffer_duration_ms), (1, 1107));
    assert_eq!(row.bitrate_kbps, 2500);
    assert_eq!((row.dropped_frames, row.playhead_ms), (3, 5940));

    // The customer's own names win over the SDK's; unknown (`null`) is
    // absent, and so is a number that is not one.
    let k = keys(&[
        ("viewer_user_id", "u-1"),
        ("mux_viewer_id", "74d5"),
        ("player_name", "main"),
        ("player_software", "HTML5 Video Element"),
        ("video_source_duration", ""),
        ("view_watch_time", "soon"),
        ("video_source_is_live", "false"),
    ]);
    let mut row = Event::default();
    facts::fill(&k, &mut row);
    assert_eq!((&*row.viewer_id, &*row.player_name), ("u-1", "main"));
    assert_eq!((row.video_duration_ms, row.watch_time_ms), (0, 0));
    assert_eq!(row.stream_type, StreamType::OnDemand);
    assert_eq!(row.startup_time_ms, None);
}

#[test]
fn the_readme_documents_every_fact() {
    let readme = include_str!("../../README.md");
    for f in facts::FACTS {
        for key in f.keys {
            assert!(
                readme.contains(&format!("`{key}`")),
                "schema/README.md's mux-embed table lacks `{key}` ({})",
                f.field
            );
        }
    }
}
