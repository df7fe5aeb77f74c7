use proptest::prelude::*;
use sfv::{key_ref, token_ref, DictSerializer, Integer, StringRef};

use super::*;

const NOW: i64 = 1_795_951_800_694;

fn checks() -> Checks {
    Checks::at(NOW + 1000)
}

fn one(line: &str) -> Result<Event, Rejection> {
    at(NOW + 1000, line)
}

/// `line` decoded at `now`: its event, or why it was refused.
fn at(now: i64, line: &str) -> Result<Event, Rejection> {
    let d =
        decode(line.as_bytes(), &Checks::at(now)).map_err(|e| refuse(e.reason, "", e.message))?;
    match (d.accepted.into_iter().next(), d.rejected.into_iter().next()) {
        (Some(e), None) => Ok(e),
        (None, Some(r)) => Err(r),
        other => panic!("one line, one outcome: {other:?}"),
    }
}

fn code(line: &str) -> (&'static str, Option<String>) {
    let r = one(line).expect_err("refused");
    (r.reason.code(), r.field)
}

/// The report hls.js 1.7.4 sent in headless Chromium (the issue's capture).
#[test]
fn the_captured_hls_js_report() {
    let line = format!(
        "bl=(31900),br=(0),cid=\"clip-1\",e=ps,mtp=(71000),sf=h,\
         sid=\"11130f20-5b3e-4c5e-a1b6-7f0f3b2d9c11\",sn=6,st=v,sta=r,ts={NOW},v=2"
    );
    let e = one(&line).expect("accepted");
    assert_eq!(e.event, EventType::Rebufferstart);
    assert_eq!(e.state, PlayerState::Rebuffering);
    assert_eq!((e.seq, e.ts_ms), (6, NOW));
    assert_eq!((e.buffer_length_ms, e.bitrate_kbps), (31900, 0));
    assert_eq!(&*e.video_id, "clip-1");
    assert_eq!(&*e.viewer_id, "11130f20-5b3e-4c5e-a1b6-7f0f3b2d9c11");
    assert_eq!(e.stream_type, StreamType::OnDemand);
    assert_eq!(
        &*e.view_id,
        format!(
            "11130f20-5b3e-4c5e-a1b6-7f0f3b2d9c11:{:016x}",
            crate::rows::view_hash("clip-1")
        )
    );
    assert_eq!(
        session_of(&e.view_id),
        "11130f20-5b3e-4c5e-a1b6-7f0f3b2d9c11"
    );
}

/// Every value type RFC 8941 has, in the keys where CMCD puts them;
/// unknown and custom keys, parameters and booleans are ignored.
#[test]
fn every_key_type() {
    let line = format!(
        "sid=\"s1\",e=e,sn=0,ts={NOW},sta=f,ec=(\"MEDIA_ERR_NETWORK\" \"X\"),\
         br=4500,bl=1200.4,st=ll,cdn=\"fastly\",msd=812,bs,pr=1.25,\
         com.example-tag=?1,nor=(\"a.mp4\";x=1),url=\"https://e/x\",ttfb=12"
    );
    let e = one(&line).expect("accepted");
    assert_eq!(e.event, EventType::Error);
    assert!(e.error_fatal);
    assert_eq!(&*e.error_code, "MEDIA_ERR_NETWORK");
    assert_eq!((e.bitrate_kbps, e.buffer_length_ms), (4500, 1200));
    assert_eq!(e.stream_type, StreamType::Live);
    assert_eq!(&*e.cdn, "fastly");
    assert_eq!(e.startup_time_ms, None, "the sessionizer derives startup");
    assert_eq!(&*e.view_id, "s1", "no cid: the view is the session");
    // dash.js sends its error codes as numbers.
    let e = one(&format!("sid=\"s1\",e=e,sn=4,ts={NOW},sta=p,ec=27")).expect("accepted");
    assert_eq!(
        (&*e.error_code, e.state, e.error_fatal),
        ("27", PlayerState::Errored, true)
    );
    assert_eq!(&*e.video_id, "");
}

#[test]
fn events_and_states_map_to_the_heartbeat_types() {
    let cases = [
        ("e=ps,sta=d", EventType::Viewstart, PlayerState::Idle),
        ("e=ps,sta=s", EventType::Play, PlayerState::Starting),
        ("e=ps,sta=p", EventType::Playing, PlayerState::Playing),
        ("e=ps,sta=k", EventType::Seeking, PlayerState::Seeking),
        (
            "e=ps,sta=r",
            EventType::Rebufferstart,
            PlayerState::Rebuffering,
        ),
        ("e=ps,sta=a", EventType::Pause, PlayerState::Paused),
        (
            "e=ps,sta=w",
            EventType::Rebufferstart,
            PlayerState::Rebuffering,
        ),
        ("e=ps,sta=e", EventType::Viewend, PlayerState::Ended),
        ("e=ps,sta=q", EventType::Viewend, PlayerState::Ended),
        ("e=ps,sta=f", EventType::Error, PlayerState::Errored),
        ("e=t,sta=p", EventType::Heartbeat, PlayerState::Playing),
        ("e=t", EventType::Heartbeat, PlayerState::Idle),
        (
            "e=bc,sta=p",
            EventType::Renditionchange,
            PlayerState::Playing,
        ),
        ("e=c,sta=s", EventType::Viewstart, PlayerState::Starting),
        ("e=e,sta=p", EventType::Error, PlayerState::Errored),
        ("e=rr,sta=p", EventType::Heartbeat, PlayerState::Playing),
        ("e=zz,sta=p", EventType::Heartbeat, PlayerState::Playing),
    ];
    for (keys, event, state) in cases {
        let e = one(&format!("sid=\"s\",sn=1,ts={NOW},{keys}")).expect(keys);
        assert_eq!((e.event, e.state), (event, state), "{keys}");
    }
}

/// RFC 8941 §4.2.2: of a key given twice, the last instance counts.
#[test]
fn a_repeated_key_takes_its_last_value() {
    let line = format!("cid=\"c\",e=ps,sid=\"s\",sn=0,sn=7,st=v,sta=p,ts={NOW},v=2");
    assert_eq!(one(&line).expect("accepted").seq, 7);
}

#[test]
fn bad_reports_name_the_key() {
    let ok = format!("sid=\"s\",e=t,sn=1,ts={NOW}");
    assert!(one(&ok).is_ok());
    let cases = [
        (format!("e=t,sn=1,ts={NOW}"), "missing_field", Some("sid")),
        (
            format!("sid=\"s\",sn=1,ts={NOW}"),
            "missing_field",
            Some("e"),
        ),
        (
            format!("sid=\"s\",e=t,ts={NOW}"),
            "missing_field",
            Some("sn"),
        ),
        ("sid=\"s\",e=t,sn=1".to_owned(), "missing_field", Some("ts")),
        (
            format!("sid=s,e=t,sn=1,ts={NOW}"),
            "invalid_type",
            Some("sid"),
        ),
        (
            format!("sid=\"s\",e=\"t\",sn=1,ts={NOW}"),
            "invalid_type",
            Some("e"),
        ),
        (
            format!("sid=\"s\",e=t,sn=-1,ts={NOW}"),
            "out_of_range",
            Some("sn"),
        ),
        (
            format!("sid=\"s\",e=t,sn=4294967296,ts={NOW}"),
            "out_of_range",
            Some("sn"),
        ),
        (format!("{ok},sta=x"), "invalid_enum", Some("sta")),
        (format!("{ok},br=(2000000)"), "out_of_range", Some("br")),
        (
            format!("{ok},cid=\"{}\"", "c".repeat(129)),
            "field_too_long",
            Some("cid"),
        ),
        (
            format!("sid=\"s\",e=t,sn=1,ts={}", NOW + 3_600_000),
            "ts_in_future",
            Some("ts"),
        ),
        (
            format!("sid=\"s\",e=t,sn=1,ts={}", NOW - 7_200_000),
            "stale",
            Some("ts"),
        ),
        (
            format!("{ok},x=\"{}\"", "y".repeat(MAX_LINE_BYTES)),
            "line_too_long",
            None,
        ),
    ];
    for (line, reason, field) in cases {
        assert_eq!(
            code(&line),
            (reason, field.map(str::to_owned)),
            "{}",
            &line[..line.len().min(80)]
        );
    }
}

#[test]
fn a_body_is_refused_whole_only_when_nothing_in_it_is_cmcd() {
    let ok = format!("sid=\"s\",e=t,sn=1,ts={NOW}");
    let body = format!("{ok}\r\n\nnot cmcd at all\n{ok},sta=x\n");
    let d = decode(body.as_bytes(), &checks()).expect("partly accepted");
    assert_eq!(d.accepted.len(), 1);
    let refused: Vec<(usize, &str)> = d
        .rejected
        .iter()
        .map(|r| (r.index, r.reason.code()))
        .collect();
    assert_eq!(refused, [(1, "invalid_cmcd"), (2, "invalid_enum")]);

    let whole = |body: &[u8]| decode(body, &checks()).expect_err("refused").reason.code();
    assert_eq!(whole(b"{\"events\": []}"), "invalid_cmcd");
    assert_eq!(whole(b"\n \n"), "empty_batch");
    assert_eq!(whole(b"sid=\"\xff\""), "invalid_utf8");
    let many = format!("{ok}\n").repeat(MAX_REPORTS + 1);
    assert_eq!(whole(many.as_bytes()), "too_many_events");
    // A body of reports that are CMCD but all invalid is answered line by line.
    let d = decode(format!("{ok},sta=x").as_bytes(), &checks()).expect("CMCD");
    assert_eq!(d.rejected.len(), 1);
}

#[test]
fn view_ids_are_valid_and_stable() {
    assert_eq!(view_id("abc-1", ""), "abc-1");
    let odd = view_id("a b/c", "x");
    assert!(
        odd.starts_with('s') && odd.len() == 1 + 16 + 1 + 16,
        "{odd}"
    );
    assert_eq!(
        view_id(&"a".repeat(65), ""),
        format!("s{:016x}", crate::rows::view_hash(&"a".repeat(65)))
    );
    for id in [view_id("abc-1", "clip"), odd, view_id("a:b", "")] {
        assert!(id.len() <= limits::VIEW_ID);
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b)),
            "{id}"
        );
        assert!(!session_of(&id).contains(':'));
    }
    assert_ne!(
        view_id("s", "a"),
        view_id("s", "b"),
        "a content change is a new view"
    );
}

/// A report as a player would serialize it, with `sfv`'s own serializer.
#[derive(Debug, Clone)]
struct Spec {
    sid: String,
    cid: String,
    sn: u32,
    ts: i64,
    sta: &'static str,
    e: &'static str,
    br: u32,
    bl: u64,
    cdn: String,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        "[a-z0-9-]{1,64}",
        "[ -~]{0,40}",
        any::<u32>(),
        (NOW - 3_000_000)..(NOW + 200_000),
        prop::sample::select(vec!["d", "s", "p", "k", "r", "a", "w", "e", "f", "q"]),
        prop::sample::select(vec!["ps", "t", "bc", "c", "e", "sk", "rr"]),
        0..=1_000_000u32,
        0..=3_600_000u64,
        "[a-z]{0,10}",
    )
        .prop_map(|(sid, cid, sn, ts, sta, e, br, bl, cdn)| Spec {
            sid,
            cid,
            sn,
            ts,
            sta,
            e,
            br,
            bl,
            cdn,
        })
}

fn int(v: i64) -> Integer {
    Integer::try_from(v).expect("within RFC 8941's 15 digits")
}

fn serialize(s: &Spec) -> String {
    let mut d = DictSerializer::new();
    for (key, v) in [("bl", s.bl as i64), ("br", i64::from(s.br))] {
        let mut list = d.inner_list(key_ref(key));
        list.bare_item(int(v));
        let _params = list.finish();
    }
    if !s.cdn.is_empty() {
        d.bare_item(key_ref("cdn"), StringRef::from_str(&s.cdn).expect("ASCII"));
    }
    if !s.cid.is_empty() {
        d.bare_item(
            key_ref("cid"),
            StringRef::from_str(&s.cid).expect("printable ASCII"),
        );
    }
    d.bare_item(key_ref("e"), token_ref(s.e));
    d.bare_item(key_ref("sid"), StringRef::from_str(&s.sid).expect("ASCII"));
    d.bare_item(key_ref("sn"), int(i64::from(s.sn)));
    d.bare_item(key_ref("sta"), token_ref(s.sta));
    d.bare_item(key_ref("ts"), int(s.ts));
    d.bare_item(key_ref("v"), int(2));
    d.finish().expect("not empty")
}

proptest! {
    #[test]
    fn serialized_reports_decode_to_what_they_say(s in spec()) {
        let e = one(&serialize(&s)).expect("accepted");
        prop_assert_eq!(e.seq, s.sn);
        prop_assert_eq!(e.ts_ms, s.ts);
        let state = if s.e == "e" { PlayerState::Errored } else { player_state(s.sta).expect("known") };
        prop_assert_eq!(e.state, state);
        prop_assert_eq!((e.bitrate_kbps, e.buffer_length_ms), (s.br, s.bl));
        prop_assert_eq!(&*e.video_id, s.cid.as_str());
        prop_assert_eq!(&*e.cdn, s.cdn.as_str());
        let expected = view_id(&s.sid, &s.cid);
        prop_assert_eq!(&*e.view_id, expected.as_str());
    }

    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = decode(&body, &checks());
    }

    #[test]
    fn arbitrary_dictionary_text_never_panics(line in "[a-z0-9=,;()\"?*. -]{0,200}") {
        let _ = decode(line.as_bytes(), &checks());
    }
}

/// The event-mode examples of CTA-5004-B section 8.2 (as the SVTA's
/// common-media-library transcribes them). The specification makes only
/// `e` and `ts` mandatory; this pipeline also needs `sid` (no session, no
/// view) and `sn` (it orders and de-duplicates a session's reports by it),
/// which all three web players send. Examples without them are refused
/// naming the key, and read as the others once it is added.
mod spec_examples {
    use super::*;

    const T0: i64 = 1_764_752_400_000;

    /// 8.2.2: a session's interval reports, from starting to ended.
    #[test]
    fn a_session_of_interval_reports() {
        let lines = [
            "bl=(0),cid=\"content-id-123\",e=t,h=\"example.com\",pt=0,sid=\"session-id-123\",sn=1,sta=s,su,ts=1764752400000,v=2",
            "bl=(6000),br=(4200;v 256;a),cid=\"content-id-123\",e=t,h=\"example.com\",lb=(523;v 64;a),msd=812,mtp=(87000;v 49000;a),pb=(4200;v 256;a),pt=29188,sf=d,sid=\"session-id-123\",sn=2,st=v,sta=p,tb=(4200;v 256;a),tpb=(4200;v 256;a),ts=1764752430000,v=2",
            "bl=(3200),br=(4200;v 256;a),bs,bsd=(720;v),cid=\"content-id-123\",e=t,ec=(\"MEDIA_ERR_NETWORK\"),h=\"example.com\",lb=(523;v 64;a),mtp=(89000;v 52000;a),pb=(4200;v 256;a),pt=59188,sf=d,sid=\"session-id-123\",sn=3,st=v,sta=p,tb=(4200;v 256;a),tpb=(4200;v 256;a),ts=1764752460000,v=2",
            "bl=(6000),br=(4200;v 256;a),cid=\"content-id-123\",e=t,h=\"example.com\",lb=(523;v 64;a),mtp=(81000;v 55000;a),pb=(4200;v 256;a),pt=89188,sf=d,sid=\"session-id-123\",sn=4,st=v,sta=p,tb=(4200;v 256;a),tpb=(4200;v 256;a),ts=1764752490000,v=2",
            "bl=(0),br=(4200;v 256;a),cid=\"content-id-123\",e=t,h=\"example.com\",lb=(523;v 64;a),mtp=(82000;v 55000;a),pb=(4200;v 256;a),pr=0,pt=111000,sf=d,sid=\"session-id-123\",sn=5,st=v,sta=e,tb=(4200;v 256;a),tpb=(4200;v 256;a),ts=1764752520000,v=2",
        ];
        let body = lines.join("\n");
        let d = decode(body.as_bytes(), &Checks::at(T0 + 121_000)).expect("CMCD");
        assert!(d.rejected.is_empty(), "{:?}", d.rejected);
        let got: Vec<_> = d
            .accepted
            .iter()
            .map(|e| {
                (
                    e.seq,
                    e.ts_ms - T0,
                    e.state,
                    e.bitrate_kbps,
                    e.buffer_length_ms,
                    &*e.error_code,
                )
            })
            .collect();
        use PlayerState::*;
        assert_eq!(
            got,
            [
                (1, 0, Starting, 0, 0, ""),
                (2, 30_000, Playing, 4200, 6000, ""),
                // An error code in an interval report, playback going on.
                (3, 60_000, Playing, 4200, 3200, "MEDIA_ERR_NETWORK"),
                (4, 90_000, Playing, 4200, 6000, ""),
                (5, 120_000, Ended, 4200, 0, ""),
            ]
        );
        assert!(d
            .accepted
            .iter()
            .all(|e| e.event == EventType::Heartbeat && !e.error_fatal));
        assert!(d
            .accepted
            .iter()
            .all(|e| e.stream_type == StreamType::OnDemand));
        let view = format!(
            "session-id-123:{:016x}",
            crate::rows::view_hash("content-id-123")
        );
        assert!(d.accepted.iter().all(|e| *e.view_id == view));
    }

    /// 8.2.1, 8.2.3 to 8.2.8 carry no `sn` (8.2.1 no `sid` either).
    #[test]
    fn reports_without_sn_or_sid_are_refused_by_name() {
        let refused = |now, line: &str| {
            let r = at(now, line).expect_err(line);
            (r.reason.code(), r.field)
        };
        let sn = ("missing_field", Some("sn".to_owned()));
        assert_eq!(
            refused(T0 + 1, "e=t,ts=1764752400000,v=2"),
            ("missing_field", Some("sid".to_owned()))
        );
        assert_eq!(refused(1_763_657_019_723 + 1, "cid=\"bbb\",cmsdd=\"ZXRwPTEyNTAwO3J0dD0zNTttYj02MDAwO3JkPTIwMA==\",cmsds=\"c2lkPSI5YTNiLTIxY2QiO2JyPTQ1MDA7ZD00MDAwO290PXY7c3Q9dg==\",e=rr,nor=(\"video/segment-6.m4v\"),ot=v,rc=200,sid=\"session1\",ts=1763657019723,ttfb=180,ttlb=200,url=\"video/segment-5.m4v\",v=2"), sn);
        assert_eq!(refused(1_764_269_150_213 + 1, "cid=\"content-id-123\",e=e,ec=(\"CODEC_NOT_SUPPORTED\"),sid=\"session-id-123\",ts=1764269150213,v=2"), sn);
    }

    /// 8.2.4 to 8.2.8 with the `sn` a player adds.
    #[test]
    fn the_other_examples_with_a_sequence_number() {
        const T: i64 = 1_764_269_150_000;
        let cases = [
            // 8.2.4: an error event: a playback failure.
            ("cid=\"content-id-123\",e=e,ec=(\"CODEC_NOT_SUPPORTED\"),sid=\"session-id-123\",ts=1764269150213,v=2", EventType::Error, PlayerState::Errored, "content-id-123"),
            // 8.2.5: rebuffering, then playing again.
            ("bs,cid=\"content-id-123\",e=ps,sid=\"session-id-123\",sta=r,ts=1764269150889,v=2", EventType::Rebufferstart, PlayerState::Rebuffering, "content-id-123"),
            ("bs,bsd=(1500),cid=\"content-id-123\",e=ps,sid=\"session-id-123\",sta=p,ts=1764269152389,v=2", EventType::Playing, PlayerState::Playing, "content-id-123"),
            // 8.2.6: seeking.
            ("bl=(0),cid=\"content-id-123\",e=ps,pt=30000,sid=\"session-id-123\",sta=k,ts=1764269150529,v=2", EventType::Seeking, PlayerState::Seeking, "content-id-123"),
            // 8.2.7: an ad skipped: no change to the view.
            ("cid=\"ad-content-555\",e=sk,sid=\"session-id-123\",ts=1764269150076,v=2", EventType::Heartbeat, PlayerState::Idle, "ad-content-555"),
            // 8.2.8: an ad break; each content is its own view.
            ("cid=\"movie-123\",e=abs,nr,sid=\"session-id-123\",ts=1764269150186,v=2", EventType::Heartbeat, PlayerState::Idle, "movie-123"),
            ("cid=\"ad-001\",e=as,sid=\"session-id-123\",ts=1764269150934,v=2", EventType::Heartbeat, PlayerState::Idle, "ad-001"),
            ("cid=\"ad-001\",e=ae,nr,sid=\"session-id-123\",ts=1764269170901,v=2", EventType::Heartbeat, PlayerState::Idle, "ad-001"),
            ("cid=\"movie-123\",e=abe,sid=\"session-id-123\",ts=1764269170331,v=2", EventType::Heartbeat, PlayerState::Idle, "movie-123"),
        ];
        for (sn, (line, event, state, cid)) in cases.into_iter().enumerate() {
            let line = format!("{line},sn={sn}");
            let e = at(T + 30_000, &line).expect(&line);
            assert_eq!(
                (e.event, e.state, &*e.video_id, e.seq),
                (event, state, cid, sn as u32),
                "{line}"
            );
            assert_eq!(&*e.viewer_id, "session-id-123");
            assert_eq!(e.error_fatal, event == EventType::Error, "{line}");
        }
        let error = at(T + 30_000, &format!("{},sn=0", cases[0].0)).expect("error");
        assert_eq!(&*error.error_code, "CODEC_NOT_SUPPORTED");
    }
}
