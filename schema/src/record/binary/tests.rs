use super::*;
use crate::sample;

fn record(events: Vec<Event>) -> Record {
    Record {
        property_id: "prop".into(),
        received_at_ms: sample::NOW_MS,
        enrichment: Enrichment {
            country: "DE".into(),
            asn: 3320,
            os: "Android".into(),
            browser: "Chrome".into(),
            device_type: "mobile".into(),
            source: Source::Beacon,
        },
        events,
    }
}

fn encoded(r: &Record) -> Vec<u8> {
    let mut buf = Vec::new();
    encode(
        &r.property_id,
        r.received_at_ms,
        &r.enrichment,
        &r.events,
        &mut buf,
    );
    buf
}

/// One view's events where some strings change from event to event.
fn varied(n: u32) -> Vec<Event> {
    (1..=n)
        .map(|seq| {
            let mut e = sample::event("v-1", seq);
            if seq % 3 == 0 {
                e.error_code = format!("E{seq}").into();
                e.cdn = "cdn-b".into();
                e.startup_time_ms = None;
            }
            e
        })
        .collect()
}

#[test]
fn enum_bytes_are_their_position_in_all() {
    // `e as u8` on encode and `ALL[i]` on decode must agree.
    for (i, e) in EventType::ALL.iter().enumerate() {
        assert_eq!(*e as u8 as usize, i);
    }
    for (i, s) in PlayerState::ALL.iter().enumerate() {
        assert_eq!(*s as u8 as usize, i);
    }
    assert_eq!(StreamType::OnDemand as u8, 0);
    assert_eq!(StreamType::Live as u8, 1);
}

#[test]
fn round_trips_and_is_smaller_than_json() {
    for n in [1, 2, 20, MAX_EVENTS as u32] {
        let r = record(varied(n));
        let buf = encoded(&r);
        assert_eq!(event_count(&buf), Some(n as usize));
        assert_eq!(decode(&buf), Ok(r.clone()));
        let json: usize = r
            .events
            .iter()
            .map(|e| serde_json::to_vec(e).unwrap().len())
            .sum();
        assert!(buf.len() * 2 < json, "{n} events: {} vs {json}", buf.len());
    }
}

#[test]
fn mux_embed_keys_round_trip_and_are_bounded() {
    let mut events = varied(3);
    events[0].extra = vec![
        ("view_id".into(), "v-1".into()),
        ("view_time_to_first_frame".into(), "295".into()),
        ("video_source_duration".into(), String::new()),
    ];
    events[2].extra = vec![("event".into(), "playing".into())];
    let mut r = record(events);
    r.enrichment.source = Source::MuxEmbed;
    let buf = encoded(&r);
    assert_eq!(decode(&buf), Ok(r.clone()));
    // A block that says it holds no pair, or too many, is refused.
    let mut one = record(vec![r.events[2].clone()]);
    one.enrichment.source = Source::MuxEmbed;
    let mut buf = encoded(&one);
    let at = buf.len() - ("event".len() + "playing".len() + 3);
    assert_eq!(buf[at], 1, "the pair count");
    for n in [0, MAX_EXTRA as u64 + 1] {
        let mut bad = buf[..at].to_vec();
        put_varint(&mut bad, n);
        bad.extend_from_slice(&buf[at + 1..]);
        assert_eq!(decode(&bad).unwrap_err().what, "extra count out of range");
    }
    buf.truncate(at);
    assert!(decode(&buf).is_err(), "a flagged block that is not there");
}

#[test]
fn repeated_strings_are_shared_after_decoding() {
    let r = decode(&encoded(&record(varied(4)))).unwrap();
    let (a, b) = (&r.events[0], &r.events[1]);
    assert!(Arc::ptr_eq(&a.video_title, &b.video_title));
    assert!(Arc::ptr_eq(&a.view_id, &b.view_id));
    assert_eq!(&*r.events[2].cdn, "cdn-b");
    assert_eq!(&*r.events[3].cdn, "cdn-a", "a change back is written again");
}

#[test]
fn every_truncation_and_trailing_byte_is_an_error() {
    let mut buf = encoded(&record(varied(3)));
    for len in 0..buf.len() {
        assert!(decode(&buf[..len]).is_err(), "prefix of {len} bytes");
    }
    buf.push(0);
    assert_eq!(decode(&buf).unwrap_err().what, "trailing bytes");
}

#[test]
fn out_of_range_values_are_errors() {
    let mut buf = vec![VERSION, 1];
    put_str(&mut buf, "p");
    put_zigzag(&mut buf, 1);
    put_str(&mut buf, "");
    put_varint(&mut buf, u64::from(u32::MAX) + 1); // asn
    assert_eq!(decode(&buf).unwrap_err().what, "asn");
    for count in [0, MAX_EVENTS as u8 + 1] {
        let err = decode(&[VERSION, count, 1, b'p']).unwrap_err();
        assert_eq!(err.what, "event count out of range");
    }
    let mut overlong = vec![VERSION, 1, 1, b'p'];
    overlong.extend([0xff; 10]);
    assert!(decode(&overlong).unwrap_err().what.starts_with("varint"));
    let not_utf8 = [VERSION, 1, 2, 0xc3, 0x28];
    assert_eq!(decode(&not_utf8).unwrap_err().what, "string is not UTF-8");
    assert_eq!(event_count(b"{\"v\":1}"), None);
}

#[test]
fn the_first_event_cannot_repeat_a_value() {
    let e = sample::event("v-1", 1);
    let mut buf = encoded(&record(vec![e.clone()]));
    // Rewrite the viewer_id (`str*`: length + 1, then bytes) as "same".
    let mut written = vec![e.viewer_id.len() as u8 + 1];
    written.extend_from_slice(e.viewer_id.as_bytes());
    let at = buf
        .windows(written.len())
        .position(|w| w == written.as_slice())
        .unwrap();
    buf.splice(at..at + written.len(), [0]);
    assert_eq!(
        decode(&buf).unwrap_err().what,
        "the first event repeats a value"
    );
}

/// A record of one event as version 2 wrote it, byte by byte (a
/// frozen layout: the encoder that made it is gone).
fn version_2_record(e: &Event) -> Vec<u8> {
    let mut buf = vec![VERSION_2, 1];
    for s in ["prop", "DE"] {
        put_str(&mut buf, s);
        if s == "prop" {
            put_zigzag(&mut buf, sample::NOW_MS);
        }
    }
    put_varint(&mut buf, 3320);
    for s in ["Android", "Chrome", "mobile", &e.view_id] {
        put_str(&mut buf, s);
    }
    put_varint(&mut buf, u64::from(e.seq));
    buf.push(e.event as u8);
    put_zigzag(&mut buf, e.ts_ms);
    put_zigzag(&mut buf, e.view_start_ms);
    for s in [&e.viewer_id, &e.video_id, &e.video_title] {
        put_shared(&mut buf, s, None);
    }
    buf.push(e.stream_type as u8);
    put_varint(&mut buf, e.video_duration_ms);
    put_shared(&mut buf, &e.player_name, None);
    put_shared(&mut buf, &e.player_version, None);
    put_varint(&mut buf, u64::from(e.player_width));
    put_varint(&mut buf, u64::from(e.player_height));
    buf.push(AUTOPLAY | PLAY_REQUESTED | STARTED);
    put_shared(&mut buf, &e.cdn, None);
    buf.push(e.state as u8);
    put_varint(&mut buf, e.watch_time_ms);
    put_varint(&mut buf, e.playing_time_ms);
    put_varint(&mut buf, u64::from(e.startup_time_ms.unwrap()));
    for v in [
        u64::from(e.rebuffer_count),
        e.rebuffer_duration_ms,
        u64::from(e.bitrate_kbps),
        u64::from(e.avg_bitrate_kbps),
        e.dropped_frames,
        e.playhead_ms,
    ] {
        put_varint(&mut buf, v);
    }
    put_shared(&mut buf, &e.error_code, None);
    put_shared(&mut buf, &e.error_message, None);
    buf
}

#[test]
fn version_2_records_are_still_read() {
    let mut e = sample::event("v-1", 7);
    e.autoplay = true;
    e.play_requested = true;
    e.error_fatal = false;
    let buf = version_2_record(&e);
    assert_eq!(event_count(&buf), Some(1));
    assert_eq!(decode(&buf), Ok(record(vec![e])));
}

#[test]
fn version_3_records_are_read_as_beacons_and_the_source_round_trips() {
    let mut r = record(varied(3));
    r.enrichment.source = Source::Cmcd;
    let v4 = encoded(&r);
    assert_eq!(decode(&v4), Ok(r.clone()));
    // Version 3 is version 4 without the source byte after device_type.
    let at = v4
        .windows(7)
        .position(|w| w == b"\x06mobile")
        .expect("device_type is encoded")
        + 7;
    assert_eq!(v4[at], Source::Cmcd as u8);
    let mut v3 = v4.clone();
    v3[0] = VERSION_3;
    v3.remove(at);
    r.enrichment.source = Source::Beacon;
    assert_eq!(decode(&v3), Ok(r));
    let mut bad = v4;
    bad[at] = Source::ALL.len() as u8;
    assert_eq!(decode(&bad).map_err(|e| e.what), Err("source"));
}

#[test]
fn the_integer_block_tolerates_a_longer_or_shorter_table() {
    let e = sample::event("v-1", 1);
    let buf = encoded(&record(vec![e.clone()]));
    // The block closes the record: its count, then one varint each.
    let mut block = Vec::new();
    put_integers(&mut block, &e);
    assert!(buf.ends_with(&block));
    let head = &buf[..buf.len() - block.len()];
    let mut r = Reader {
        bytes: &block,
        at: 0,
    };
    let n = r.varint().unwrap() as usize;
    assert_eq!(n, INTEGER_FIELDS.len());
    let mut values = Vec::new();
    for _ in 0..n {
        let from = r.at;
        r.varint().unwrap();
        values.push(&block[from..r.at]);
    }
    let with = |count: usize, values: &[&[u8]]| {
        let mut out = head.to_vec();
        put_varint(&mut out, count as u64);
        out.extend(values.concat());
        out
    };
    // A newer writer's record, one integer more: skipped.
    let newer = with(n + 1, &[&values[..], &[&[0x7f][..]]].concat());
    assert_eq!(decode(&newer), Ok(record(vec![e.clone()])));
    // An older writer's record, the last integer missing: read as 0.
    let older = with(n - 1, &values[..n - 1]);
    let read = decode(&older).unwrap();
    let zero = [0u8];
    let expected = with(n, &[&values[..n - 1], &[&zero[..]]].concat());
    assert_eq!(encoded(&read), expected);
}

#[test]
fn zigzag_covers_the_extremes() {
    for v in [
        0,
        1,
        -1,
        i64::MAX,
        i64::MIN,
        sample::NOW_MS,
        -sample::NOW_MS,
    ] {
        let mut buf = Vec::new();
        put_zigzag(&mut buf, v);
        let mut r = Reader { bytes: &buf, at: 0 };
        assert_eq!(r.zigzag(), Ok(v));
        assert_eq!(r.at, buf.len());
    }
}
