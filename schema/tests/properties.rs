//! Property tests: every valid event survives the wire and the Kafka record
//! unchanged; no input, however broken, panics the decoder.

use proptest::prelude::*;
use qoe_schema::beacon::{Event, EventType, PlayerState, StreamType};
use qoe_schema::record::{Enrichment, Heartbeat, Record};
use qoe_schema::sample::{self, NOW_MS};
use qoe_schema::validate::{decode, Checks};

fn text(max: usize) -> impl Strategy<Value = String> {
    // Any Unicode, including quotes, backslashes and control characters.
    proptest::collection::vec(any::<char>(), 0..max / 4).prop_map(|c| c.into_iter().collect())
}

prop_compose! {
    fn valid_event()(
        view_id in "[A-Za-z0-9._:-]{1,128}",
        seq in any::<u32>(),
        event in proptest::sample::select(EventType::ALL.to_vec()),
        age in 0i64..3_000_000,
        view_len in 0i64..86_400_000,
        viewer_id in text(128),
        video_title in text(512),
        stream_type in prop_oneof![Just(StreamType::Live), Just(StreamType::OnDemand)],
        state in proptest::sample::select(PlayerState::ALL.to_vec()),
        counters in (0u64..1_000_000_000, 0u64..1_000_000_000, proptest::option::of(0u32..600_000), any::<u32>()),
        bits in (0u32..1_000_000, 0u32..1_000_000, any::<bool>(), any::<bool>(), any::<bool>()),
        dims in (0u16..16_384, 0u16..16_384, text(64), text(64)),
    ) -> Event {
        let ts_ms = NOW_MS - age;
        let mut e = sample::event(&view_id, seq);
        e.event = event;
        e.ts_ms = ts_ms;
        e.view_start_ms = ts_ms - view_len;
        e.viewer_id = viewer_id.into();
        e.video_title = video_title.into();
        e.stream_type = stream_type;
        e.state = state;
        e.watch_time_ms = counters.0;
        e.playing_time_ms = counters.1;
        e.startup_time_ms = counters.2;
        e.rebuffer_count = counters.3;
        e.bitrate_kbps = bits.0;
        e.avg_bitrate_kbps = bits.1;
        e.autoplay = bits.2;
        e.error_fatal = bits.3;
        // play_requested is sticky and implied by play/playing or a startup time.
        e.play_requested = bits.4
            || matches!(event, EventType::Play | EventType::Playing)
            || e.startup_time_ms.is_some();
        e.player_width = dims.0;
        e.player_height = dims.1;
        e.cdn = dims.2.into();
        e.error_code = dims.3.into();
        e
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn valid_events_round_trip(events in proptest::collection::vec(valid_event(), 1..20)) {
        let wire: Vec<serde_json::Value> = events.iter().map(sample::wire).collect();
        let body = serde_json::to_vec(&serde_json::json!({ "events": wire })).unwrap();
        let out = decode(&body, &Checks::at(NOW_MS)).unwrap();
        prop_assert!(out.rejected.is_empty(), "{:?}", out.rejected);
        prop_assert_eq!(&out.accepted, &events);
        for e in &events {
            let hb = Heartbeat::new("p".into(), NOW_MS, Enrichment::default(), e.clone());
            let one = Record::from(hb.clone());
            prop_assert_eq!(Record::decode(&hb.encode()).unwrap(), one.clone());
            // Records of the previous (JSON) format still read the same.
            prop_assert_eq!(Record::decode(&hb.encode_json()).unwrap(), one);
        }
        // All of them as one view's record: strings repeat or change freely.
        let view: std::sync::Arc<str> = "one-view".into();
        let record = Record {
            property_id: "p".into(),
            received_at_ms: NOW_MS,
            enrichment: Enrichment { country: "JP".into(), ..Enrichment::default() },
            events: events.into_iter().map(|e| Event { view_id: view.clone(), ..e }).collect(),
        };
        let mut buf = Vec::new();
        record.encode_into(&mut buf);
        prop_assert_eq!(Record::event_count(&buf), record.events.len());
        prop_assert_eq!(Record::decode(&buf).unwrap(), record);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = decode(&bytes, &Checks::at(NOW_MS));
        let _ = Record::decode(&bytes);
        let _ = Record::event_count(&bytes);
    }

    #[test]
    fn arbitrary_binary_records_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut bytes = vec![qoe_schema::record::binary::VERSION, 1];
        bytes.extend(tail);
        let _ = Record::decode(&bytes);
    }

    #[test]
    fn mangled_beacons_never_panic(cut in 0usize..2000, flip in 0usize..2000, byte in any::<u8>()) {
        let mut body = sample::batch_body(3);
        let flip = flip % body.len();
        body[flip] = byte;
        body.truncate(cut.max(1).min(body.len()));
        if let Ok(out) = decode(&body, &Checks::at(NOW_MS)) {
            prop_assert!(out.accepted.len() + out.rejected.len() <= 3);
        }
    }
}
