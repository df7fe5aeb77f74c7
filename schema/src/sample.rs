//! Realistic sample events and bodies, for tests, benches and examples.

use crate::beacon::{Event, EventType, PlayerState, StreamType};
use crate::validate::Checks;

/// 2026-11-01T00:00:00Z in ms: a fixed "now" for reproducible samples.
pub const NOW_MS: i64 = 1_793_491_200_000;

/// A mid-view heartbeat of `view_id` with sequence `seq`, sent at [`NOW_MS`].
pub fn event(view_id: &str, seq: u32) -> Event {
    Event {
        view_id: view_id.into(),
        seq,
        event: EventType::Heartbeat,
        ts_ms: NOW_MS,
        view_start_ms: NOW_MS - 120_000,
        viewer_id: format!("viewer-{view_id}").into(),
        video_id: "video-42".into(),
        video_title: "Championship Final — Live".into(),
        stream_type: StreamType::Live,
        player_name: "web-player".into(),
        player_version: "3.2.1".into(),
        player_width: 1280,
        player_height: 720,
        autoplay: true,
        cdn: "cdn-a".into(),
        state: PlayerState::Playing,
        play_requested: true,
        watch_time_ms: 118_000,
        playing_time_ms: 112_000,
        startup_time_ms: Some(850),
        rebuffer_count: 1,
        rebuffer_duration_ms: 2_400,
        bitrate_kbps: 4_500,
        avg_bitrate_kbps: 4_100,
        dropped_frames: 12,
        playhead_ms: 3_600_000,
        // Live: no duration; no error. (A field added later is 0 here.)
        ..Event::default()
    }
}

/// The wire JSON of `e`, as an SDK would send it.
pub fn wire(e: &Event) -> serde_json::Value {
    serde_json::to_value(crate::beacon::WireEvent::from(e)).expect("an event serializes")
}

/// A realistic SDK batch body: `n` heartbeats of different views.
pub fn batch_body(n: usize) -> Vec<u8> {
    let events: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            wire(&event(
                &format!("0b5c2f1e-7d3a-4c41-9e2b-{i:012}"),
                10 + i as u32,
            ))
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({ "events": events })).expect("serializes")
}

/// A single-event body.
pub fn single_body() -> Vec<u8> {
    serde_json::to_vec(&wire(&event("0b5c2f1e-7d3a-4c41-9e2b-000000000001", 7)))
        .expect("serializes")
}

/// Every event of `n` simulated views starting around `base_ms`, with a mix
/// of endings: normal, fatal error, exit before start, still playing,
/// heavy rebuffering, and never played. Deterministic.
pub fn views(n: usize, base_ms: i64) -> Vec<Event> {
    let mut out = Vec::new();
    for i in 0..n {
        view_into(i, n, base_ms - 1_800_000 + i as i64 * 37_000, &mut out);
    }
    out
}

/// Gives `view`'s highest-`seq` event in `events` another CDN, as a player
/// switching CDN mid-view does: its metrics then belong to `cdn` alone.
///
/// # Panics
/// When `view` has no event after its first (a sample's mistake).
pub fn switch_cdn_of_last_event(events: &mut [Event], view: &str, cdn: &str) {
    let last = events
        .iter_mut()
        .filter(|e| &*e.view_id == view)
        .max_by_key(|e| e.seq)
        .filter(|e| e.seq > 1)
        .expect("the view has events after its first");
    last.cdn = cdn.into();
}

/// Moves the highest-`seq` event of the first view in `events` that runs
/// across `at_ms` back to its view's start, as a player whose clock jumps
/// back does: by `seq` the view then ended before `at_ms`, though earlier
/// events of it are later. Returns that view's id.
///
/// # Panics
/// When no view has events on both sides of `at_ms` (a sample's mistake).
pub fn rewind_last_event_across(events: &mut [Event], at_ms: i64) -> String {
    let view = events
        .iter()
        .filter(|e| e.view_start_ms < at_ms && e.ts_ms >= at_ms)
        .map(|e| e.view_id.to_string())
        .next()
        .expect("a view runs across the instant");
    let last = events
        .iter_mut()
        .filter(|e| *e.view_id == *view)
        .max_by_key(|e| e.seq)
        .expect("the view has events");
    last.ts_ms = last.view_start_ms;
    view
}

/// The events of view number `i` of `n` (see [`views`]), starting at
/// `start` (ms), appended to `out`.
pub fn view_into(i: usize, n: usize, start: i64, out: &mut Vec<Event>) {
    let id = format!("view-{i:05}");
    let kind = i % 6;
    let startup = 300 + (i as u32 * 137) % 4000;
    let mut e = event(&id, 1);
    e.viewer_id = format!("viewer-{}", i % (n / 2 + 1)).into();
    e.video_id = format!("video-{}", i % 4).into();
    e.cdn = ["cdn-a", "cdn-b"][i % 2].into();
    e.view_start_ms = start;
    e.ts_ms = start;
    e.event = EventType::Viewstart;
    e.state = PlayerState::Idle;
    e.play_requested = false;
    e.startup_time_ms = None;
    e.watch_time_ms = 0;
    e.playing_time_ms = 0;
    e.rebuffer_count = 0;
    e.rebuffer_duration_ms = 0;
    e.avg_bitrate_kbps = 0;
    out.push(e.clone());
    if kind == 5 {
        e.seq += 1;
        e.ts_ms += 5_000;
        e.event = EventType::Viewend;
        e.state = PlayerState::Ended;
        out.push(e);
        return;
    }
    e.seq += 1;
    e.ts_ms += 1_000;
    e.event = EventType::Play;
    e.state = PlayerState::Starting;
    e.play_requested = true;
    out.push(e.clone());
    if kind == 2 || kind == 1 {
        // Leaves (or fails) before the first frame.
        e.seq += 1;
        e.ts_ms += 6_000;
        e.watch_time_ms = 6_000;
        if kind == 1 {
            e.event = EventType::Error;
            e.state = PlayerState::Errored;
            e.error_fatal = true;
            e.error_code = "MEDIA_ERR_DECODE".into();
        } else {
            e.event = EventType::Viewend;
            e.state = PlayerState::Ended;
        }
        out.push(e);
        return;
    }
    e.seq += 1;
    e.ts_ms += i64::from(startup);
    e.event = EventType::Playing;
    e.state = PlayerState::Playing;
    e.startup_time_ms = Some(startup);
    e.watch_time_ms = u64::from(startup);
    e.avg_bitrate_kbps = 2_000 + (i as u32 % 5) * 500;
    out.push(e.clone());
    for _ in 0..(3 + i % 5) {
        e.seq += 1;
        e.ts_ms += 10_000;
        e.event = EventType::Heartbeat;
        e.watch_time_ms += 10_000;
        e.playing_time_ms += 10_000;
        if kind == 4 {
            e.rebuffer_count += 1;
            e.rebuffer_duration_ms += 2_500;
            e.playing_time_ms -= 2_500;
        }
        out.push(e.clone());
    }
    if kind != 3 {
        e.seq += 1;
        e.ts_ms += 2_000;
        e.event = EventType::Viewend;
        e.state = PlayerState::Ended;
        e.watch_time_ms += 2_000;
        e.playing_time_ms += 2_000;
        out.push(e);
    }
}

/// A batch the way a player SDK sends it: one view's `n` events, the
/// view-level fields once in `metadata`, each event with its own sequence,
/// time, state and counters.
pub fn sdk_batch_body(n: usize) -> Vec<u8> {
    let base = event("0b5c2f1e-7d3a-4c41-9e2b-5d1f3a7c9e01", 1);
    let mut wire_base = wire(&base);
    let metadata = serde_json::json!({
        "view_id": base.view_id, "view_start": base.view_start_ms, "viewer_id": base.viewer_id,
        "video_id": base.video_id, "video_title": base.video_title,
        "stream_type": base.stream_type.as_str(), "player_name": base.player_name,
        "player_version": base.player_version, "player_width": base.player_width,
        "player_height": base.player_height, "autoplay": base.autoplay, "cdn": base.cdn,
    });
    for key in metadata.as_object().expect("object").keys() {
        wire_base.as_object_mut().expect("object").remove(key);
    }
    let events: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            let mut e = wire_base.clone();
            e["seq"] = (10 + i).into();
            e["ts"] = (base.ts_ms - 5_000 * (n - 1 - i) as i64).into();
            e["watch_time_ms"] = (base.watch_time_ms + 500 * i as u64).into();
            e
        })
        .collect();
    // `metadata` first, as the SDK format asks (json! would sort the keys).
    format!(
        "{{\"metadata\":{metadata},\"events\":{}}}",
        serde_json::Value::from(events)
    )
    .into_bytes()
}

/// `n` CMCD v2 event-mode reports of one session, one per line, as hls.js
/// 1.7.4 sends its interval reports (`bl`, `br`, `mtp` as lists; the same
/// lines `collector/bench/bodies.py` writes).
pub fn cmcd_batch_body(n: usize) -> Vec<u8> {
    let mut body = String::new();
    for i in 0..n {
        body.push_str(&format!(
            "bl=(21900),br=(4500),cid=\"video-42\",e=t,mtp=(71000),sf=h,\
             sid=\"0b5c2f1e-7d3a-4c41-9e2b-5d1f3a7c9e01\",sn={},st=l,sta=p,ts={},v=2\n",
            10 + i,
            NOW_MS - 10_000 * (n - 1 - i) as i64
        ));
    }
    body.into_bytes()
}

/// The events the collector makes of mux-embed view `xid`'s events, each
/// step `(ms after start_ms, event name, other short keys)`, numbered from
/// `xsqno` 1 (as the SDK numbers a view's events), of env key `k`.
pub fn mux_events(
    xid: &str,
    start_ms: i64,
    steps: &[(i64, &str, serde_json::Value)],
) -> Vec<Event> {
    let events: Vec<serde_json::Value> = steps
        .iter()
        .enumerate()
        .map(|(n, (ms, name, keys))| {
            let mut e = serde_json::json!({"xid": xid, "xsqno": n + 1, "uti": start_ms + ms,
                "e": name, "ake": "k"});
            for (k, v) in keys.as_object().into_iter().flatten() {
                e[k] = v.clone();
            }
            e
        })
        .collect();
    let body = serde_json::json!({"metadata": {}, "events": events}).to_string();
    let last = steps.last().map_or(0, |(ms, _, _)| *ms);
    let decoded = crate::mux::decode(body.as_bytes(), &Checks::at(start_ms + last))
        .expect("a mux-embed body")
        .decoded;
    assert!(decoded.rejected.is_empty(), "{:?}", decoded.rejected);
    decoded.accepted
}
