//! What a mux-embed view's keys say about the view, in this pipeline's
//! fields.
//!
//! The processor folds a view's events into one map of full key names
//! (the latest value of each) and calls [`fill`] for every row. Where the
//! SDK computed a number itself (startup, watch time, playing time,
//! rebuffering), the row carries the SDK's number. [`FACTS`] is the whole
//! mapping, and `schema/README.md` documents it (a test checks).
//!
//! What the keys do not say (the player state, `play_requested`, the
//! rebuffering in progress, the average bitrate, whether an error was
//! fatal) the processor derives from the events in order. The view's
//! start is its first event's time, not the SDK's `view_start`: that
//! comes with the `viewstart` event, after the view's first events, and
//! a view's start must not move once its first row is written.

use std::collections::HashMap;
use std::sync::Arc;

use crate::beacon::{limits, Event, StreamType};

/// One field: the keys that give it, the first present one winning.
pub struct Fact {
    /// The pipeline's field (`schema/README.md`).
    pub field: &'static str,
    /// mux-embed keys, full names, in order of preference.
    pub keys: &'static [&'static str],
}

/// Every field a view's keys fill.
pub const FACTS: &[Fact] = &[
    fact("viewer_id", &["viewer_user_id", "mux_viewer_id"]),
    fact("video_id", &["video_id"]),
    fact("video_title", &["video_title"]),
    fact(
        "stream_type",
        &["video_stream_type", "video_source_is_live"],
    ),
    fact("player_name", &["player_name", "player_software"]),
    fact(
        "player_version",
        &["player_version", "player_software_version"],
    ),
    fact("autoplay", &["player_autoplay_on"]),
    fact("cdn", &["video_cdn"]),
    fact("startup_time_ms", &["view_time_to_first_frame"]),
    fact("error_code", &["player_error_code"]),
    fact("error_message", &["player_error_message"]),
    fact("video_duration_ms", &["video_source_duration"]),
    fact("player_width", &["player_width"]),
    fact("player_height", &["player_height"]),
    fact("watch_time_ms", &["view_watch_time"]),
    // The cumulative one also counts a stall's first second as playing
    // (the SDK declares rebuffering once a stall has lasted 1 s): the
    // content playback time, which the SDK sends at pauses, seeks and
    // stalls, is preferred.
    fact(
        "playing_time_ms",
        &[
            "view_content_playback_time",
            "view_playing_time_ms_cumulative",
        ],
    ),
    fact("rebuffer_count", &["view_rebuffer_count"]),
    fact("rebuffer_duration_ms", &["view_rebuffer_duration"]),
    fact("bitrate_kbps", &["video_source_bitrate"]),
    fact("dropped_frames", &["view_dropped_frame_count"]),
    fact("playhead_ms", &["player_playhead_time"]),
];

const fn fact(field: &'static str, keys: &'static [&'static str]) -> Fact {
    Fact { field, keys }
}

/// The value of `field` in `keys`: its first key that is present and not
/// empty (the SDK sends `null`, kept empty, for "not known").
fn value<'a>(keys: &'a HashMap<String, String>, field: &str) -> Option<&'a str> {
    let fact = FACTS.iter().find(|f| f.field == field)?;
    fact.keys
        .iter()
        .find_map(|k| keys.get(*k).map(String::as_str).filter(|v| !v.is_empty()))
}

/// A number of `field`, rounded, at most `max` (the SDK sends some as
/// fractions); `None` when absent or not a number.
fn number(keys: &HashMap<String, String>, field: &str, max: u64) -> Option<u64> {
    let v: f64 = value(keys, field)?.parse().ok()?;
    (v.is_finite() && v >= 0.0).then(|| (v.round() as u64).min(max))
}

/// Text of `field`, cut to `limit` bytes; shared with `prev` when equal,
/// so a view's rows share one allocation per field.
fn text(keys: &HashMap<String, String>, field: &str, limit: usize, prev: &Arc<str>) -> Arc<str> {
    let v = value(keys, field).unwrap_or("");
    let mut end = v.len().min(limit);
    while !v.is_char_boundary(end) {
        end -= 1;
    }
    if **prev == v[..end] {
        prev.clone()
    } else {
        v[..end].into()
    }
}

/// Writes what the view's `keys` say onto `row` (its other fields stay).
pub fn fill(keys: &HashMap<String, String>, row: &mut Event) {
    use limits::*;
    row.viewer_id = text(keys, "viewer_id", VIEWER_ID, &row.viewer_id);
    row.video_id = text(keys, "video_id", VIDEO_ID, &row.video_id);
    row.video_title = text(keys, "video_title", VIDEO_TITLE, &row.video_title);
    row.stream_type = match value(keys, "stream_type") {
        Some("live" | "true") => StreamType::Live,
        _ => StreamType::OnDemand,
    };
    row.player_name = text(keys, "player_name", SHORT, &row.player_name);
    row.player_version = text(keys, "player_version", SHORT, &row.player_version);
    row.autoplay = value(keys, "autoplay") == Some("true");
    row.cdn = text(keys, "cdn", SHORT, &row.cdn);
    row.startup_time_ms =
        number(keys, "startup_time_ms", MAX_DURATION_MS).map(|ms| ms.min(u32::MAX as u64) as u32);
    row.error_code = text(keys, "error_code", ERROR_CODE, &row.error_code);
    row.error_message = text(keys, "error_message", ERROR_MESSAGE, &row.error_message);
    let ms = |field| number(keys, field, MAX_DURATION_MS).unwrap_or(0);
    row.video_duration_ms = ms("video_duration_ms");
    row.player_width = number(keys, "player_width", MAX_PIXELS).unwrap_or(0) as u16;
    row.player_height = number(keys, "player_height", MAX_PIXELS).unwrap_or(0) as u16;
    row.watch_time_ms = ms("watch_time_ms");
    row.playing_time_ms = ms("playing_time_ms");
    row.rebuffer_count = number(keys, "rebuffer_count", u32::MAX as u64).unwrap_or(0) as u32;
    row.rebuffer_duration_ms = ms("rebuffer_duration_ms");
    // The SDK says bits per second.
    row.bitrate_kbps = number(keys, "bitrate_kbps", MAX_BITRATE_KBPS * 1000)
        .map_or(0, |bps| ((bps + 500) / 1000) as u32);
    row.dropped_frames = number(keys, "dropped_frames", u32::MAX as u64).unwrap_or(0);
    row.playhead_ms = ms("playhead_ms");
}
