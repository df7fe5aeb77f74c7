//! Hand-written mux-embed event sequences (shaped like a capture of the
//! SDK in Chromium: after the first event, only the keys that changed)
//! with the view facts they must give, and the take-over rule.

use std::sync::Arc;

use proptest::prelude::*;
use qoe_schema::beacon::EventType;
use qoe_schema::sample;
use serde_json::{json, Value};

use super::*;
use crate::sessions::tests::run_with_takeover;
use crate::sessions::{Forgetful, Sessions};

const T0: i64 = 1_796_017_681_000;

/// View `xid`'s events, each `(ms after T0, name, other keys)`.
fn events(xid: &str, steps: &[(i64, &str, Value)]) -> Vec<Event> {
    sample::mux_events(xid, T0, steps)
}

fn run(events: &[Event]) -> Vec<Event> {
    let mut views = Sessions::<MuxView>::new(100, 3_600_000, Arc::new(Forgetful));
    let mut rows = Vec::new();
    for e in events {
        views.apply("p", e, &mut rows);
    }
    rows
}

/// Play with a stall, a seek, a pause and the end, as the SDK reported it.
fn played() -> Vec<Event> {
    events(
        "v1",
        &[
            (
                0,
                "viewstart",
                json!({"xst": T0, "mvrid": "viewer-1", "vid": "clip",
                "vtt": "Clip", "psw": "HTML5 Video Element", "pnm": "main", "pwd": 320,
                "pht": 180, "vsodu": null, "pauon": false, "xwati": 0, "xpntimscv": 0,
                "vsobi": 800000}),
            ),
            (10, "play", json!({})),
            (20, "waiting", json!({})),
            (
                295,
                "playing",
                json!({"xwati": 295, "xtitofifr": 295, "vsodu": 30000}),
            ),
            (6200, "waiting", json!({"xwati": 6200, "xpntimscv": 5905})),
            (
                6200,
                "rebufferstart",
                json!({"xwati": 7200, "xpntimscv": 6905, "xreco": 1}),
            ),
            (7300, "playing", json!({"xwati": 7300, "xredu": 1100})),
            (7300, "rebufferend", json!({"xredu": 1100})),
            (
                10000,
                "renditionchange",
                json!({"vsobi": 1600000, "xpntimscv": 9605}),
            ),
            (
                11000,
                "seeking",
                json!({"xwati": 11000, "xpntimscv": 10605, "xskco": 1}),
            ),
            (11020, "seeked", json!({"xskdu": 20})),
            (11030, "playing", json!({})),
            (13000, "pause", json!({"xwati": 13000, "xpntimscv": 12605})),
            (14500, "play", json!({})),
            (14510, "playing", json!({})),
            (20000, "ended", json!({"xwati": 18500, "xpntimscv": 18105})),
        ],
    )
}

#[test]
fn a_played_view_carries_the_sdks_numbers() {
    let rows = run(&played());
    assert_eq!(rows.len(), 16, "one row per event");
    let by_seq = |sq: u32| rows.iter().find(|r| r.seq == sq).expect("row");
    assert_eq!(by_seq(2).state, PlayerState::Starting);
    assert!(by_seq(2).play_requested);
    assert_eq!(
        by_seq(3).state,
        PlayerState::Starting,
        "waiting is no state"
    );
    assert_eq!(by_seq(4).state, PlayerState::Playing);
    assert_eq!(by_seq(4).startup_time_ms, Some(295));
    assert_eq!(by_seq(6).state, PlayerState::Rebuffering);
    assert_eq!(by_seq(6).rebuffer_count, 1);
    assert_eq!(by_seq(7).state, PlayerState::Playing);
    assert_eq!(by_seq(7).current_rebuffer_ms, 0);
    assert_eq!(by_seq(10).state, PlayerState::Seeking);
    assert_eq!(
        by_seq(11).state,
        PlayerState::Seeking,
        "until playing again"
    );
    assert_eq!(by_seq(13).state, PlayerState::Paused);
    assert_eq!(
        by_seq(14).state,
        PlayerState::Paused,
        "play after a pause waits for playing"
    );

    let end = rows.last().expect("rows");
    assert_eq!(end.state, PlayerState::Ended);
    assert_eq!(
        end.event,
        EventType::Heartbeat,
        "`ended` is no event type of ours"
    );
    assert_eq!(end.view_start_ms, T0);
    assert_eq!(end.ts_ms, T0 + 20_000);
    assert_eq!(
        (&*end.viewer_id, &*end.video_id, &*end.video_title),
        ("viewer-1", "clip", "Clip")
    );
    assert_eq!(&*end.player_name, "main");
    assert_eq!((end.player_width, end.player_height), (320, 180));
    assert_eq!(end.video_duration_ms, 30_000);
    assert_eq!(end.startup_time_ms, Some(295));
    assert_eq!((end.watch_time_ms, end.playing_time_ms), (18_500, 18_105));
    assert_eq!((end.rebuffer_count, end.rebuffer_duration_ms), (1, 1100));
    assert_eq!(end.bitrate_kbps, 1600);
    // 800 kbit/s for 9605 ms of playing, then 1600 for 8500:
    // (800 × 9605 + 1600 × 8500) / 18105 = 1175.6
    assert_eq!(end.avg_bitrate_kbps, 1176);
    assert!(!end.error_fatal);
    assert_eq!(
        end.extra.len(),
        7,
        "the row keeps the event's own keys: {:?}",
        end.extra
    );
}

/// The SDK sends `view_start` with `viewstart`, after the view's first
/// events (`networkchange`, `playerready`, ...): the view's start stays
/// its first event's time, or the view would seem two.
#[test]
fn the_start_of_a_view_never_moves() {
    let rows = run(&events(
        "v1",
        &[
            (0, "networkchange", json!({})),
            (900, "viewstart", json!({"xst": T0 + 900})),
            (1000, "playing", json!({"xtitofifr": 100})),
        ],
    ));
    assert!(rows.iter().all(|r| r.view_start_ms == T0), "{rows:?}");
}

#[test]
fn the_rebuffering_in_progress_counts_from_rebufferstart() {
    let rows = run(&events(
        "v1",
        &[
            (0, "viewstart", json!({})),
            (100, "playing", json!({"xtitofifr": 100})),
            (5000, "rebufferstart", json!({"xreco": 1})),
            (8000, "heartbeat", json!({})),
        ],
    ));
    assert_eq!(rows[3].state, PlayerState::Rebuffering);
    assert_eq!(rows[3].current_rebuffer_ms, 3000);
}

#[test]
fn an_error_fails_the_view_unless_a_warning() {
    let rows = run(&events(
        "v1",
        &[
            (0, "viewstart", json!({})),
            (
                50,
                "error",
                json!({"percd": 2, "perme": "slow", "persy": "warning"}),
            ),
            (60, "playing", json!({"xtitofifr": 60})),
            (
                900,
                "error",
                json!({"percd": 4, "perme": "MEDIA_ERR_SRC_NOT_SUPPORTED",
                "persy": "fatal"}),
            ),
            (950, "loadstart", json!({})),
        ],
    ));
    assert_eq!(rows[1].state, PlayerState::Idle);
    assert!(!rows[1].error_fatal);
    assert_eq!(&*rows[1].error_code, "2");
    let end = rows.last().expect("rows");
    assert_eq!(
        end.state,
        PlayerState::Errored,
        "later events keep the failure"
    );
    assert!(end.error_fatal);
    assert_eq!(
        (&*end.error_code, &*end.error_message),
        ("4", "MEDIA_ERR_SRC_NOT_SUPPORTED")
    );
}

#[test]
fn late_and_repeated_events_change_nothing() {
    let mut seq = played();
    let late = seq.remove(5);
    seq.insert(9, late);
    seq.push(seq[3].clone());
    let rows = run(&seq);
    assert_eq!(rows.len(), 15, "the late one and the repeat write nothing");
    let end = rows.last().expect("rows");
    assert_eq!(end.watch_time_ms, 18_500);
    // The late event's `xreco` was never folded in.
    assert_eq!(end.rebuffer_count, 0);
}

#[test]
fn views_are_kept_apart() {
    let mut a = events(
        "a",
        &[
            (0, "viewstart", json!({"vid": "one"})),
            (10, "playing", json!({"xtitofifr": 10})),
        ],
    );
    let b = events("b", &[(5, "viewstart", json!({"vid": "two"}))]);
    let seq = vec![a.remove(0), b[0].clone(), a.remove(0)];
    let rows = run(&seq);
    assert_eq!(rows.len(), 3);
    assert_eq!((&*rows[2].view_id, &*rows[2].video_id), ("a", "one"));
    assert_eq!(rows[2].startup_time_ms, Some(10));
}

#[test]
fn a_worker_taking_over_ends_with_the_same_numbers() {
    let seq = played();
    let whole = run(&seq);
    for crash_at in 1..seq.len() {
        let taken_over = run_with_takeover::<MuxView>(&seq, crash_at);
        assert_eq!(taken_over, whole, "taken over after {crash_at} events");
    }
}

proptest! {
    /// A repeat anywhere: the rows are those of the events in order, and a
    /// take-over anywhere changes none. (Not a repeat of the view's first
    /// event: a worker that does not know the view takes it for the start
    /// without reading back, and writes its row again, the same row.)
    #[test]
    fn any_takeover_gives_the_same_rows(crash_at in 1usize..16, repeat in 1usize..16) {
        let mut seq = played();
        seq.insert(repeat + 1, seq[repeat].clone());
        let whole = run(&seq);
        prop_assert_eq!(whole.len(), 16);
        prop_assert_eq!(run_with_takeover::<MuxView>(&seq, crash_at), whole);
    }
}
