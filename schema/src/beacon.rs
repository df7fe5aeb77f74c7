//! What a player SDK sends: one event, or an envelope of events.
//!
//! ```json
//! {"metadata": {"viewer_id": "u1", "video_id": "v9", ...},
//!  "events": [{"view_id": "a1", "seq": 3, "event": "heartbeat", "ts": 1700000000000, ...}]}
//! ```
//!
//! Every event carries the view's state *so far*: cumulative counters
//! (watch time, rebuffering, ...) and sticky flags (`play_requested`,
//! `error_fatal`). The event with the highest `seq` of a view is therefore
//! the view's whole truth, and a lost or repeated event is harmless. Fields
//! of `metadata` apply to every event of the envelope that does not set them.
//!
//! Wire types here are lenient ([`RawEvent`]: everything optional, unknown
//! fields ignored); [`crate::validate`] turns them into a checked [`Event`].

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::fields::integer_fields;

/// Most events one request may carry.
pub const MAX_EVENTS_PER_BATCH: usize = 500;

/// Byte limits of string fields (UTF-8 bytes).
pub mod limits {
    /// `view_id`: ASCII letters, digits and `-_.:`.
    pub const VIEW_ID: usize = 128;
    /// `viewer_id`.
    pub const VIEWER_ID: usize = 128;
    /// `video_id`.
    pub const VIDEO_ID: usize = 256;
    /// `video_title`.
    pub const VIDEO_TITLE: usize = 512;
    /// `player_name`, `player_version`, `cdn`.
    pub const SHORT: usize = 64;
    /// `error_code`.
    pub const ERROR_CODE: usize = 64;
    /// `error_message`.
    pub const ERROR_MESSAGE: usize = 1024;
    /// Largest counter in milliseconds accepted (about 31 days).
    pub const MAX_DURATION_MS: u64 = 31 * 24 * 3600 * 1000;
    /// Largest bitrate accepted, kbit/s.
    pub const MAX_BITRATE_KBPS: u64 = 1_000_000;
    /// Largest `seq` accepted.
    pub const MAX_SEQ: u64 = u32::MAX as u64;
    /// Largest player dimension, pixels.
    pub const MAX_PIXELS: u64 = 16_384;
}

/// Event types, as SDKs spell them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    /// A view begins (the page or app decided to play a video).
    Viewstart,
    /// The player is initialised.
    Playerready,
    /// Play was requested (user or autoplay).
    Play,
    /// The first frame is shown / playback resumes with the playhead moving.
    Playing,
    /// Paused by the viewer.
    Pause,
    /// A seek started.
    Seeking,
    /// A seek finished.
    Seeked,
    /// Playback stalled for lack of data.
    Rebufferstart,
    /// Playback resumed after a stall.
    Rebufferend,
    /// The rendition (bitrate) changed.
    Renditionchange,
    /// An error; `error_fatal` says whether playback stopped.
    Error,
    /// Periodic state report (~10 s); the default, being the most common.
    #[default]
    Heartbeat,
    /// The view ended (video end, navigation away, player destroyed).
    Viewend,
}

impl EventType {
    /// Every type, in declaration order.
    pub const ALL: [EventType; 13] = [
        EventType::Viewstart,
        EventType::Playerready,
        EventType::Play,
        EventType::Playing,
        EventType::Pause,
        EventType::Seeking,
        EventType::Seeked,
        EventType::Rebufferstart,
        EventType::Rebufferend,
        EventType::Renditionchange,
        EventType::Error,
        EventType::Heartbeat,
        EventType::Viewend,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Viewstart => "viewstart",
            EventType::Playerready => "playerready",
            EventType::Play => "play",
            EventType::Playing => "playing",
            EventType::Pause => "pause",
            EventType::Seeking => "seeking",
            EventType::Seeked => "seeked",
            EventType::Rebufferstart => "rebufferstart",
            EventType::Rebufferend => "rebufferend",
            EventType::Renditionchange => "renditionchange",
            EventType::Error => "error",
            EventType::Heartbeat => "heartbeat",
            EventType::Viewend => "viewend",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<EventType> {
        // A match compiles to a length switch: cheaper than scanning ALL.
        Some(match s {
            "heartbeat" => EventType::Heartbeat,
            "viewstart" => EventType::Viewstart,
            "playerready" => EventType::Playerready,
            "play" => EventType::Play,
            "playing" => EventType::Playing,
            "pause" => EventType::Pause,
            "seeking" => EventType::Seeking,
            "seeked" => EventType::Seeked,
            "rebufferstart" => EventType::Rebufferstart,
            "rebufferend" => EventType::Rebufferend,
            "renditionchange" => EventType::Renditionchange,
            "error" => EventType::Error,
            "viewend" => EventType::Viewend,
            _ => return None,
        })
    }
}

/// Live or on-demand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum StreamType {
    /// Video on demand (the default).
    #[default]
    #[serde(rename = "on-demand")]
    OnDemand,
    /// A live stream.
    #[serde(rename = "live")]
    Live,
}

impl StreamType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            StreamType::OnDemand => "on-demand",
            StreamType::Live => "live",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<StreamType> {
        match s {
            "on-demand" => Some(StreamType::OnDemand),
            "live" => Some(StreamType::Live),
            _ => None,
        }
    }
}

/// What the player is doing when the event is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlayerState {
    /// Play requested, first frame not shown yet.
    Starting,
    /// Frames advancing.
    Playing,
    /// Paused by the viewer.
    Paused,
    /// Stalled for lack of data.
    Rebuffering,
    /// Seeking.
    Seeking,
    /// Stopped by a fatal error.
    Errored,
    /// The view is over.
    Ended,
    /// Loaded, play not requested yet (the default).
    #[default]
    Idle,
}

impl PlayerState {
    /// Every state.
    pub const ALL: [PlayerState; 8] = [
        PlayerState::Starting,
        PlayerState::Playing,
        PlayerState::Paused,
        PlayerState::Rebuffering,
        PlayerState::Seeking,
        PlayerState::Errored,
        PlayerState::Ended,
        PlayerState::Idle,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            PlayerState::Starting => "starting",
            PlayerState::Playing => "playing",
            PlayerState::Paused => "paused",
            PlayerState::Rebuffering => "rebuffering",
            PlayerState::Seeking => "seeking",
            PlayerState::Errored => "errored",
            PlayerState::Ended => "ended",
            PlayerState::Idle => "idle",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<PlayerState> {
        Some(match s {
            "playing" => PlayerState::Playing,
            "starting" => PlayerState::Starting,
            "paused" => PlayerState::Paused,
            "rebuffering" => PlayerState::Rebuffering,
            "seeking" => PlayerState::Seeking,
            "errored" => PlayerState::Errored,
            "ended" => PlayerState::Ended,
            "idle" => PlayerState::Idle,
            _ => return None,
        })
    }

    /// Whether a viewer in this state counts as concurrent: waiting for
    /// start, playing, rebuffering or seeking — not idle, paused, failed or
    /// ended (`metrics::live`; the SQL twin is in `0005_live.sql`).
    pub fn is_concurrent(self) -> bool {
        matches!(
            self,
            PlayerState::Starting
                | PlayerState::Playing
                | PlayerState::Rebuffering
                | PlayerState::Seeking
        )
    }

    /// The state an event implies when the SDK did not send `state`.
    pub fn implied_by(event: EventType, fatal: bool) -> PlayerState {
        match event {
            EventType::Viewstart | EventType::Playerready => PlayerState::Idle,
            EventType::Play => PlayerState::Starting,
            EventType::Playing
            | EventType::Rebufferend
            | EventType::Seeked
            | EventType::Renditionchange
            | EventType::Heartbeat => PlayerState::Playing,
            EventType::Pause => PlayerState::Paused,
            EventType::Seeking => PlayerState::Seeking,
            EventType::Rebufferstart => PlayerState::Rebuffering,
            EventType::Error if fatal => PlayerState::Errored,
            EventType::Error => PlayerState::Playing,
            EventType::Viewend => PlayerState::Ended,
        }
    }
}

macro_rules! raw_event {
    ({} $($name:ident: $ty:ty = $max:expr, $doc:literal;)*) => {
        /// One event as it arrives: every field optional, unknown fields ignored.
        /// Strings borrow from the request body when they contain no escapes.
        #[derive(Debug, Clone, Default, Deserialize)]
        pub struct RawEvent<'a> {
            #[serde(borrow)]
            pub view_id: Option<std::borrow::Cow<'a, str>>,
            pub seq: Option<serde_json::Number>,
            #[serde(borrow)]
            pub event: Option<std::borrow::Cow<'a, str>>,
            /// Client time in ms since the Unix epoch.
            pub ts: Option<serde_json::Number>,
            /// When the view started, client time in ms (same on every event of a view).
            pub view_start: Option<serde_json::Number>,
            #[serde(borrow)]
            pub viewer_id: Option<std::borrow::Cow<'a, str>>,
            #[serde(borrow)]
            pub video_id: Option<std::borrow::Cow<'a, str>>,
            #[serde(borrow)]
            pub video_title: Option<std::borrow::Cow<'a, str>>,
            #[serde(borrow)]
            pub stream_type: Option<std::borrow::Cow<'a, str>>,
            #[serde(borrow)]
            pub player_name: Option<std::borrow::Cow<'a, str>>,
            #[serde(borrow)]
            pub player_version: Option<std::borrow::Cow<'a, str>>,
            pub autoplay: Option<bool>,
            #[serde(borrow)]
            pub cdn: Option<std::borrow::Cow<'a, str>>,
            #[serde(borrow)]
            pub state: Option<std::borrow::Cow<'a, str>>,
            pub play_requested: Option<bool>,
            pub startup_time_ms: Option<serde_json::Number>,
            #[serde(borrow)]
            pub error_code: Option<std::borrow::Cow<'a, str>>,
            #[serde(borrow)]
            pub error_message: Option<std::borrow::Cow<'a, str>>,
            pub error_fatal: Option<bool>,
            $(#[doc = $doc] pub $name: Option<serde_json::Number>,)*
        }
    };
}
integer_fields!(raw_event! {});

macro_rules! event {
    ({} $($name:ident: $ty:ty = $max:expr, $doc:literal;)*) => {
        /// A checked event: required fields present, limits respected. Strings are
        /// shared (`Arc<str>`): the events of one batch usually repeat the same
        /// viewer, video and player, and one allocation serves them all. The
        /// integer fields ([`crate::fields`]) come last.
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
        pub struct Event {
            /// The view (one attempt to play one video); 1-128 of `[A-Za-z0-9-_.:]`.
            pub view_id: Arc<str>,
            /// Per-view sequence number, increasing with every event of the view.
            pub seq: u32,
            /// What happened.
            pub event: EventType,
            /// Client time, ms since the Unix epoch.
            pub ts_ms: i64,
            /// When the view started, client time in ms.
            pub view_start_ms: i64,
            /// The viewer (anonymous id chosen by the SDK).
            pub viewer_id: Arc<str>,
            /// Video id.
            pub video_id: Arc<str>,
            /// Video title.
            pub video_title: Arc<str>,
            /// Live or on-demand.
            pub stream_type: StreamType,
            /// Player software name.
            pub player_name: Arc<str>,
            /// Player software version.
            pub player_version: Arc<str>,
            /// Whether playback started by autoplay.
            pub autoplay: bool,
            /// CDN serving the media.
            pub cdn: Arc<str>,
            /// Player state at `ts`.
            pub state: PlayerState,
            /// Sticky: play has been requested in this view.
            pub play_requested: bool,
            /// Play request → first moving frame, once known.
            pub startup_time_ms: Option<u32>,
            /// Last error code, empty if none.
            pub error_code: Arc<str>,
            /// Last error message, empty if none.
            pub error_message: Arc<str>,
            /// Sticky: the view has hit a fatal error.
            pub error_fatal: bool,
            /// mux-embed events only: every key the event carried, by its
            /// full name (`schema::mux`), value as text; empty otherwise.
            #[serde(default, skip_serializing_if = "Vec::is_empty")]
            pub extra: Vec<(String, String)>,
            // A record written before a field existed reads it as 0.
            $(#[doc = $doc] #[serde(default)] pub $name: $ty,)*
        }
    };
}
integer_fields!(event! {});

macro_rules! wire_event {
    ({} $($name:ident: $ty:ty = $max:expr, $doc:literal;)*) => {
        /// An event as an SDK spells it on the wire (the reverse of decoding:
        /// `ts`, `view_start`, names for enums, `startup_time_ms` only once known).
        /// Fields carry the wire names documented in `schema/README.md`.
        #[derive(Serialize)]
        pub struct WireEvent<'a> {
            pub view_id: &'a str,
            pub seq: u32,
            pub event: &'static str,
            pub ts: i64,
            pub view_start: i64,
            pub viewer_id: &'a str,
            pub video_id: &'a str,
            pub video_title: &'a str,
            pub stream_type: &'static str,
            pub player_name: &'a str,
            pub player_version: &'a str,
            pub autoplay: bool,
            pub cdn: &'a str,
            pub state: &'static str,
            pub play_requested: bool,
            #[serde(skip_serializing_if = "Option::is_none")]
            pub startup_time_ms: Option<u32>,
            pub error_code: &'a str,
            pub error_message: &'a str,
            pub error_fatal: bool,
            $(pub $name: $ty,)*
        }

        impl<'a> From<&'a Event> for WireEvent<'a> {
            fn from(e: &'a Event) -> Self {
                WireEvent {
                    view_id: &e.view_id,
                    seq: e.seq,
                    event: e.event.as_str(),
                    ts: e.ts_ms,
                    view_start: e.view_start_ms,
                    viewer_id: &e.viewer_id,
                    video_id: &e.video_id,
                    video_title: &e.video_title,
                    stream_type: e.stream_type.as_str(),
                    player_name: &e.player_name,
                    player_version: &e.player_version,
                    autoplay: e.autoplay,
                    cdn: &e.cdn,
                    state: e.state.as_str(),
                    play_requested: e.play_requested,
                    startup_time_ms: e.startup_time_ms,
                    error_code: &e.error_code,
                    error_message: &e.error_message,
                    error_fatal: e.error_fatal,
                    $($name: e.$name,)*
                }
            }
        }
    };
}
integer_fields!(wire_event! {});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for e in EventType::ALL {
            assert_eq!(EventType::parse(e.as_str()), Some(e));
            assert_eq!(serde_json::to_value(e).unwrap(), e.as_str());
        }
        for s in PlayerState::ALL {
            assert_eq!(PlayerState::parse(s.as_str()), Some(s));
        }
        for t in [StreamType::Live, StreamType::OnDemand] {
            assert_eq!(StreamType::parse(t.as_str()), Some(t));
        }
        assert_eq!(EventType::parse("Heartbeat"), None);
    }
}
