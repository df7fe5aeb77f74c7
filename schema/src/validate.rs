//! Decoding and validation of beacons, with a stable reason code per failure.
//!
//! A body that is not a beacon at all fails as a whole ([`BodyError`]); in a
//! batch, each event is checked on its own, so one bad event is reported by
//! index ([`Rejection`]) while the others are accepted.

use std::borrow::Cow;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::beacon::{
    limits, Event, EventType, PlayerState, RawEvent, StreamType, MAX_EVENTS_PER_BATCH,
};

/// Why a body or an event was refused. The `snake_case` code is part of the
/// API: SDKs and dashboards match on it, so codes are only ever added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The body is not UTF-8.
    InvalidUtf8,
    /// The body is not JSON (or nests deeper than 128 levels).
    InvalidJson,
    /// The JSON is neither an event, an array of events nor `{"events": [...]}`.
    NotABeacon,
    /// The batch has no events.
    EmptyBatch,
    /// The batch has more than [`MAX_EVENTS_PER_BATCH`] events.
    TooManyEvents,
    /// An element of `events` is not a JSON object.
    NotAnObject,
    /// A required field is absent.
    MissingField,
    /// A field has the wrong JSON type (e.g. a string where a number belongs).
    InvalidType,
    /// A number field is negative, fractional or too large.
    OutOfRange,
    /// A string field is longer than its limit.
    FieldTooLong,
    /// `view_id` has characters outside `[A-Za-z0-9-_.:]`.
    InvalidViewId,
    /// `event` is not one of the known event types.
    UnknownEvent,
    /// `stream_type` or `state` is not one of its allowed values.
    InvalidEnum,
    /// `ts` is further in the future than the allowed clock skew.
    TsInFuture,
    /// `ts` is older than the configured maximum age (a stale heartbeat).
    Stale,
    /// `view_start` is after `ts`, or more than 31 days before it.
    InvalidViewStart,
}

impl Reason {
    /// The stable code.
    pub fn code(self) -> &'static str {
        match self {
            Reason::InvalidUtf8 => "invalid_utf8",
            Reason::InvalidJson => "invalid_json",
            Reason::NotABeacon => "not_a_beacon",
            Reason::EmptyBatch => "empty_batch",
            Reason::TooManyEvents => "too_many_events",
            Reason::NotAnObject => "not_an_object",
            Reason::MissingField => "missing_field",
            Reason::InvalidType => "invalid_type",
            Reason::OutOfRange => "out_of_range",
            Reason::FieldTooLong => "field_too_long",
            Reason::InvalidViewId => "invalid_view_id",
            Reason::UnknownEvent => "unknown_event",
            Reason::InvalidEnum => "invalid_enum",
            Reason::TsInFuture => "ts_in_future",
            Reason::Stale => "stale",
            Reason::InvalidViewStart => "invalid_view_start",
        }
    }

    /// Every reason, for metrics and documentation.
    pub const ALL: [Reason; 16] = [
        Reason::InvalidUtf8,
        Reason::InvalidJson,
        Reason::NotABeacon,
        Reason::EmptyBatch,
        Reason::TooManyEvents,
        Reason::NotAnObject,
        Reason::MissingField,
        Reason::InvalidType,
        Reason::OutOfRange,
        Reason::FieldTooLong,
        Reason::InvalidViewId,
        Reason::UnknownEvent,
        Reason::InvalidEnum,
        Reason::TsInFuture,
        Reason::Stale,
        Reason::InvalidViewStart,
    ];
}

/// A whole body refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{}: {message}", reason.code())]
pub struct BodyError {
    /// Machine-readable reason.
    pub reason: Reason,
    /// What an SDK author needs to fix it.
    pub message: String,
}

/// One event of a batch refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    /// Position of the event in the request (0 for a single event).
    pub index: usize,
    /// Machine-readable reason.
    pub reason: Reason,
    /// The offending field, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// What an SDK author needs to fix it.
    pub message: String,
}

/// The server-side facts validation needs.
#[derive(Debug, Clone, Copy)]
pub struct Checks {
    /// Receive time, ms since the Unix epoch.
    pub now_ms: i64,
    /// Events with `ts` older than this (relative to `now_ms`) are stale.
    pub max_age_ms: i64,
    /// Events with `ts` further ahead than this are refused (clock skew).
    pub max_future_ms: i64,
}

impl Checks {
    /// Checks at `now_ms` with a 1 h max age and 5 min allowed skew.
    pub fn at(now_ms: i64) -> Checks {
        Checks {
            now_ms,
            max_age_ms: 3_600_000,
            max_future_ms: 300_000,
        }
    }
}

/// The outcome of decoding one body.
#[derive(Debug, Clone, Default)]
pub struct Decoded {
    /// Valid events, in request order.
    pub accepted: Vec<Event>,
    /// Refused events, by index.
    pub rejected: Vec<Rejection>,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    metadata: Option<&'a RawValue>,
    #[serde(borrow, default)]
    events: Option<Vec<&'a RawValue>>,
}

/// Decodes and validates a beacon body: one event object, an array of
/// events, or `{"metadata": {...}, "events": [...]}`.
pub fn decode(body: &[u8], checks: &Checks) -> Result<Decoded, BodyError> {
    let text = std::str::from_utf8(body).map_err(|e| BodyError {
        reason: Reason::InvalidUtf8,
        message: format!("body is not UTF-8 (first bad byte at {})", e.valid_up_to()),
    })?;
    // Fast path, one streaming parse that validates each event as it is
    // read: a well-formed body (nearly all traffic). Any problem sends it
    // down the slow path, which finds and names it.
    if let Some(decoded) = decode_fast(text, checks) {
        return Ok(decoded);
    }
    let (metadata, events) = parse_slow(text)?;
    check_count(events.len())?;
    let events = events
        .into_iter()
        .map(|raw| parse_event(raw.get(), metadata.as_ref()));
    Ok(validate_all(events, checks))
}

fn decode_fast(text: &str, checks: &Checks) -> Option<Decoded> {
    // Sized from the body (events are a few hundred bytes) to avoid regrowth.
    let mut out = Decoded {
        accepted: Vec::with_capacity((text.len() / 256).clamp(1, MAX_EVENTS_PER_BATCH)),
        rejected: Vec::new(),
    };
    let mut sink = Sink {
        checks,
        out: &mut out,
        strings: Strings::default(),
    };
    let parsed = match text.trim_start().as_bytes().first()? {
        b'[' => {
            let mut de = serde_json::Deserializer::from_str(text);
            serde::de::DeserializeSeed::deserialize(
                EventSeq {
                    sink,
                    metadata: None,
                },
                &mut de,
            )
            .and_then(|()| de.end())
        }
        b'{' if text.contains("\"events\"") => {
            let mut de = serde_json::Deserializer::from_str(text);
            serde::de::DeserializeSeed::deserialize(EnvelopeSeed { sink }, &mut de)
                .and_then(|()| de.end())
        }
        b'{' => serde_json::from_str::<RawEvent>(text).map(|raw| sink.push(raw, None)),
        _ => return None,
    };
    let any = !out.accepted.is_empty() || !out.rejected.is_empty();
    (parsed.is_ok() && any).then_some(out)
}

/// Where streamed events go: validated into `out`.
struct Sink<'c> {
    checks: &'c Checks,
    out: &'c mut Decoded,
    strings: Strings,
}

impl Sink<'_> {
    fn push<'a>(&mut self, mut raw: RawEvent<'a>, metadata: Option<&RawEvent<'a>>) {
        if let Some(meta) = metadata {
            raw.fill_from(meta);
        }
        let index = self.out.accepted.len() + self.out.rejected.len();
        match validate_with(&raw, self.checks, &mut self.strings) {
            Ok(event) => self.out.accepted.push(event),
            Err(mut rejection) => {
                rejection.index = index;
                self.out.rejected.push(rejection);
            }
        }
    }
}

/// `{"metadata": {...}, "events": [...]}` with `metadata` (if any) first.
struct EnvelopeSeed<'c> {
    sink: Sink<'c>,
}

impl<'de> serde::de::DeserializeSeed<'de> for EnvelopeSeed<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for EnvelopeSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a beacon envelope")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let EnvelopeSeed { mut sink } = self;
        let mut metadata: Option<RawEvent<'de>> = None;
        // Events that came before `metadata`: validated once it is known.
        let mut pending: Option<Vec<RawEvent<'de>>> = None;
        let mut seen_events = false;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match key.as_ref() {
                "metadata" => metadata = Some(map.next_value()?),
                "events" if metadata.is_some() => {
                    seen_events = true;
                    let sink = Sink {
                        checks: sink.checks,
                        out: &mut *sink.out,
                        strings: Strings::default(),
                    };
                    map.next_value_seed(EventSeq {
                        sink,
                        metadata: metadata.as_ref(),
                    })?;
                }
                "events" => {
                    seen_events = true;
                    pending = Some(map.next_value()?);
                }
                _ => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        if !seen_events {
            return Err(serde::de::Error::missing_field("events"));
        }
        for raw in pending.into_iter().flatten() {
            sink.push(raw, metadata.as_ref());
        }
        Ok(())
    }
}

/// A JSON array of events, each validated as soon as it is parsed.
struct EventSeq<'c, 'm, 'a> {
    sink: Sink<'c>,
    metadata: Option<&'m RawEvent<'a>>,
}

impl<'de> serde::de::DeserializeSeed<'de> for EventSeq<'_, '_, 'de> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> serde::de::Visitor<'de> for EventSeq<'_, '_, 'de> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an array of events")
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        let mut n = 0;
        while let Some(raw) = seq.next_element::<RawEvent<'de>>()? {
            n += 1;
            if n > MAX_EVENTS_PER_BATCH {
                return Err(serde::de::Error::custom("too many events"));
            }
            self.sink.push(raw, self.metadata);
        }
        Ok(())
    }
}

/// Splits a body into its metadata and each event's raw JSON, so that a bad
/// event can be reported without losing its neighbours.
fn parse_slow(text: &str) -> Result<(Option<RawEvent<'_>>, Vec<&RawValue>), BodyError> {
    match text.trim_start().as_bytes().first() {
        Some(b'[') => Ok((None, serde_json::from_str(text).map_err(json_error)?)),
        Some(b'{') => {
            let envelope: Envelope = serde_json::from_str(text).map_err(json_error)?;
            let Some(events) = envelope.events else {
                let raw: &RawValue = serde_json::from_str(text).map_err(json_error)?;
                return Ok((None, vec![raw]));
            };
            let metadata = match envelope.metadata {
                Some(raw) => Some(serde_json::from_str(raw.get()).map_err(|e| BodyError {
                    reason: Reason::NotABeacon,
                    message: format!("`metadata` must be an object of event fields: {e}"),
                })?),
                None => None,
            };
            Ok((metadata, events))
        }
        _ => {
            // Valid JSON of the wrong shape is `not_a_beacon`; anything else is not JSON.
            serde_json::from_str::<serde::de::IgnoredAny>(text).map_err(json_error)?;
            Err(BodyError {
                reason: Reason::NotABeacon,
                message: "expected an event object, an array of events or {\"events\": [...]}"
                    .into(),
            })
        }
    }
}

fn check_count(n: usize) -> Result<(), BodyError> {
    if n == 0 {
        return Err(BodyError {
            reason: Reason::EmptyBatch,
            message: "the batch has no events".into(),
        });
    }
    if n > MAX_EVENTS_PER_BATCH {
        return Err(BodyError {
            reason: Reason::TooManyEvents,
            message: format!(
                "{n} events in one request; at most {MAX_EVENTS_PER_BATCH} are accepted"
            ),
        });
    }
    Ok(())
}

fn validate_all<'a>(
    events: impl ExactSizeIterator<Item = Result<RawEvent<'a>, Rejection>>,
    checks: &Checks,
) -> Decoded {
    let mut out = Decoded {
        accepted: Vec::with_capacity(events.len()),
        rejected: Vec::new(),
    };
    let mut strings = Strings::default();
    for (index, raw) in events.enumerate() {
        match raw.and_then(|e| validate_with(&e, checks, &mut strings)) {
            Ok(event) => out.accepted.push(event),
            Err(mut rejection) => {
                rejection.index = index;
                out.rejected.push(rejection);
            }
        }
    }
    out
}

fn json_error(e: serde_json::Error) -> BodyError {
    BodyError {
        reason: Reason::InvalidJson,
        message: format!("body is not valid JSON: {e}"),
    }
}

fn reject(reason: Reason, field: Option<&str>, message: impl Into<String>) -> Rejection {
    Rejection {
        index: 0,
        reason,
        field: field.map(str::to_owned),
        message: message.into(),
    }
}

fn parse_event<'a>(
    text: &'a str,
    metadata: Option<&RawEvent<'a>>,
) -> Result<RawEvent<'a>, Rejection> {
    let mut event: RawEvent = match serde_json::from_str(text) {
        Ok(event) => event,
        Err(_) => {
            // Slow path, only on failure: find which field was wrong.
            let de = &mut serde_json::Deserializer::from_str(text);
            let err = match serde_path_to_error::deserialize::<_, RawEvent>(de) {
                Err(err) => err,
                Ok(event) => return Ok(event),
            };
            let field = err.path().to_string();
            return Err(if !text.trim_start().starts_with('{') {
                reject(
                    Reason::NotAnObject,
                    None,
                    "each event must be a JSON object",
                )
            } else if err.inner().classify() == serde_json::error::Category::Syntax
                || field.is_empty()
                || field == "."
            {
                // E.g. nesting deeper than 128 levels inside an unknown field.
                reject(Reason::InvalidJson, None, err.inner().to_string())
            } else {
                let message = format!("`{field}`: {}", err.inner());
                reject(Reason::InvalidType, Some(&field), message)
            });
        }
    };
    if let Some(meta) = metadata {
        event.fill_from(meta);
    }
    Ok(event)
}

impl<'a> RawEvent<'a> {
    /// Takes every field this event lacks from `meta` (the envelope's
    /// `metadata`).
    fn fill_from(&mut self, meta: &RawEvent<'a>) {
        macro_rules! fill {
            ($($f:ident),*) => {$(
                if self.$f.is_none() { self.$f = meta.$f.clone(); }
            )*};
        }
        fill!(
            view_id,
            seq,
            event,
            ts,
            view_start,
            viewer_id,
            video_id,
            video_title,
            stream_type,
            video_duration_ms,
            player_name,
            player_version,
            player_width,
            player_height,
            autoplay,
            cdn,
            state,
            play_requested,
            watch_time_ms,
            playing_time_ms,
            startup_time_ms,
            rebuffer_count,
            rebuffer_duration_ms,
            bitrate_kbps,
            avg_bitrate_kbps,
            dropped_frames,
            playhead_ms,
            error_code,
            error_message,
            error_fatal
        );
    }
}

/// Checks one raw event and normalizes it.
pub fn validate(raw: &RawEvent<'_>, checks: &Checks) -> Result<Event, Rejection> {
    validate_with(raw, checks, &mut Strings::default())
}

/// Reuses the previous event's string when a field repeats — the events of
/// one batch mostly share viewer, video and player — so they share one
/// allocation instead of one each.
#[derive(Default)]
pub struct Strings {
    last: [Option<Arc<str>>; 9],
}

impl Strings {
    const VIEW_ID: usize = 0;
    const VIEWER_ID: usize = 1;
    const VIDEO_ID: usize = 2;
    const VIDEO_TITLE: usize = 3;
    const PLAYER_NAME: usize = 4;
    const PLAYER_VERSION: usize = 5;
    const CDN: usize = 6;
    const ERROR_CODE: usize = 7;
    const ERROR_MESSAGE: usize = 8;

    fn get(&mut self, slot: usize, s: &str) -> Arc<str> {
        let last = &mut self.last[slot];
        if let Some(shared) = last {
            if **shared == *s {
                return shared.clone();
            }
        }
        let fresh: Arc<str> = Arc::from(s);
        *last = Some(fresh.clone());
        fresh
    }

    fn optional(
        &mut self,
        slot: usize,
        value: &Option<Cow<'_, str>>,
        field: &str,
        limit: usize,
    ) -> Result<Arc<str>, Rejection> {
        let s = value.as_deref().unwrap_or("");
        check_len(s, field, limit)?;
        Ok(self.get(slot, s))
    }
}

/// [`validate`] sharing repeated strings through `strings`.
pub fn validate_with(
    raw: &RawEvent<'_>,
    checks: &Checks,
    strings: &mut Strings,
) -> Result<Event, Rejection> {
    let view_id = required_str(&raw.view_id, "view_id", limits::VIEW_ID)?;
    if view_id.is_empty()
        || !view_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
    {
        return Err(reject(
            Reason::InvalidViewId,
            Some("view_id"),
            "`view_id` must be 1-128 characters of A-Z a-z 0-9 - _ . :",
        ));
    }
    let seq = uint(&raw.seq, "seq", limits::MAX_SEQ)?.ok_or_else(|| missing("seq"))? as u32;
    let event_name = raw.event.as_deref().ok_or_else(|| missing("event"))?;
    let event = EventType::parse(event_name).ok_or_else(|| {
        reject(
            Reason::UnknownEvent,
            Some("event"),
            format!(
                "unknown event `{}`; known: {}",
                truncate(event_name, 40),
                EventType::ALL.map(EventType::as_str).join(", ")
            ),
        )
    })?;
    let ts_ms = int(&raw.ts, "ts")?.ok_or_else(|| missing("ts"))?;
    if ts_ms > checks.now_ms + checks.max_future_ms {
        return Err(reject(
            Reason::TsInFuture,
            Some("ts"),
            format!(
                "`ts` is {} s ahead of the server clock (at most {} s allowed); send milliseconds since the Unix epoch",
                (ts_ms - checks.now_ms) / 1000,
                checks.max_future_ms / 1000
            ),
        ));
    }
    if ts_ms < checks.now_ms - checks.max_age_ms {
        return Err(reject(
            Reason::Stale,
            Some("ts"),
            format!(
                "event is {} s old; events older than {} s are dropped",
                (checks.now_ms - ts_ms) / 1000,
                checks.max_age_ms / 1000
            ),
        ));
    }
    let view_start_ms = int(&raw.view_start, "view_start")?.ok_or_else(|| missing("view_start"))?;
    if view_start_ms > ts_ms || ts_ms - view_start_ms > limits::MAX_DURATION_MS as i64 {
        return Err(reject(
            Reason::InvalidViewStart,
            Some("view_start"),
            "`view_start` must be at or before `ts` and at most 31 days earlier",
        ));
    }
    let viewer_id = required_str(&raw.viewer_id, "viewer_id", limits::VIEWER_ID)?;
    let stream_type = match raw.stream_type.as_deref() {
        None => StreamType::default(),
        Some(s) => StreamType::parse(s).ok_or_else(|| {
            reject(
                Reason::InvalidEnum,
                Some("stream_type"),
                "`stream_type` must be \"live\" or \"on-demand\"",
            )
        })?,
    };
    let error_fatal = raw.error_fatal.unwrap_or(false);
    let state = match raw.state.as_deref() {
        None => PlayerState::implied_by(event, error_fatal),
        Some(s) => PlayerState::parse(s).ok_or_else(|| {
            reject(
                Reason::InvalidEnum,
                Some("state"),
                format!(
                    "`state` must be one of {}",
                    PlayerState::ALL.map(PlayerState::as_str).join(", ")
                ),
            )
        })?,
    };
    let startup_time_ms = uint(
        &raw.startup_time_ms,
        "startup_time_ms",
        limits::MAX_DURATION_MS,
    )?
    .map(|v| v.min(u64::from(u32::MAX)) as u32);
    Ok(Event {
        view_id: strings.get(Strings::VIEW_ID, view_id),
        seq,
        event,
        ts_ms,
        view_start_ms,
        viewer_id: strings.get(Strings::VIEWER_ID, viewer_id),
        video_id: strings.optional(
            Strings::VIDEO_ID,
            &raw.video_id,
            "video_id",
            limits::VIDEO_ID,
        )?,
        video_title: strings.optional(
            Strings::VIDEO_TITLE,
            &raw.video_title,
            "video_title",
            limits::VIDEO_TITLE,
        )?,
        stream_type,
        video_duration_ms: counter(
            &raw.video_duration_ms,
            "video_duration_ms",
            limits::MAX_DURATION_MS,
        )?,
        player_name: strings.optional(
            Strings::PLAYER_NAME,
            &raw.player_name,
            "player_name",
            limits::SHORT,
        )?,
        player_version: strings.optional(
            Strings::PLAYER_VERSION,
            &raw.player_version,
            "player_version",
            limits::SHORT,
        )?,
        player_width: counter(&raw.player_width, "player_width", limits::MAX_PIXELS)? as u16,
        player_height: counter(&raw.player_height, "player_height", limits::MAX_PIXELS)? as u16,
        autoplay: raw.autoplay.unwrap_or(false),
        cdn: strings.optional(Strings::CDN, &raw.cdn, "cdn", limits::SHORT)?,
        state,
        play_requested: raw.play_requested.unwrap_or(false)
            || matches!(event, EventType::Play | EventType::Playing)
            || startup_time_ms.is_some(),
        watch_time_ms: counter(&raw.watch_time_ms, "watch_time_ms", limits::MAX_DURATION_MS)?,
        playing_time_ms: counter(
            &raw.playing_time_ms,
            "playing_time_ms",
            limits::MAX_DURATION_MS,
        )?,
        startup_time_ms,
        rebuffer_count: counter(&raw.rebuffer_count, "rebuffer_count", u64::from(u32::MAX))? as u32,
        rebuffer_duration_ms: counter(
            &raw.rebuffer_duration_ms,
            "rebuffer_duration_ms",
            limits::MAX_DURATION_MS,
        )?,
        bitrate_kbps: counter(&raw.bitrate_kbps, "bitrate_kbps", limits::MAX_BITRATE_KBPS)? as u32,
        avg_bitrate_kbps: counter(
            &raw.avg_bitrate_kbps,
            "avg_bitrate_kbps",
            limits::MAX_BITRATE_KBPS,
        )? as u32,
        dropped_frames: counter(&raw.dropped_frames, "dropped_frames", u64::from(u32::MAX))?,
        playhead_ms: counter(&raw.playhead_ms, "playhead_ms", limits::MAX_DURATION_MS)?,
        error_code: strings.optional(
            Strings::ERROR_CODE,
            &raw.error_code,
            "error_code",
            limits::ERROR_CODE,
        )?,
        error_message: strings.optional(
            Strings::ERROR_MESSAGE,
            &raw.error_message,
            "error_message",
            limits::ERROR_MESSAGE,
        )?,
        error_fatal,
    })
}

fn missing(field: &str) -> Rejection {
    reject(
        Reason::MissingField,
        Some(field),
        format!("`{field}` is required"),
    )
}

fn required_str<'s>(
    value: &'s Option<Cow<'_, str>>,
    field: &str,
    limit: usize,
) -> Result<&'s str, Rejection> {
    let s = value.as_deref().ok_or_else(|| missing(field))?;
    check_len(s, field, limit)?;
    Ok(s)
}

fn check_len(s: &str, field: &str, limit: usize) -> Result<(), Rejection> {
    if s.len() > limit {
        return Err(reject(
            Reason::FieldTooLong,
            Some(field),
            format!(
                "`{field}` is {} bytes; at most {limit} are accepted",
                s.len()
            ),
        ));
    }
    Ok(())
}

fn uint(
    value: &Option<serde_json::Number>,
    field: &str,
    max: u64,
) -> Result<Option<u64>, Rejection> {
    let Some(n) = value else { return Ok(None) };
    match n.as_u64() {
        Some(v) if v <= max => Ok(Some(v)),
        _ => Err(reject(
            Reason::OutOfRange,
            Some(field),
            format!("`{field}` must be a whole number from 0 to {max}, got {n}"),
        )),
    }
}

fn counter(value: &Option<serde_json::Number>, field: &str, max: u64) -> Result<u64, Rejection> {
    Ok(uint(value, field, max)?.unwrap_or(0))
}

fn int(value: &Option<serde_json::Number>, field: &str) -> Result<Option<i64>, Rejection> {
    let Some(n) = value else { return Ok(None) };
    match n.as_i64() {
        Some(v) if v > 0 => Ok(Some(v)),
        _ => Err(reject(
            Reason::OutOfRange,
            Some(field),
            format!("`{field}` must be milliseconds since the Unix epoch, got {n}"),
        )),
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
        let out = decode_json(json!({ "events": [sample::wire(&sample::event("ok", 1)), fields] }))
            .unwrap();
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
        let codes: std::collections::BTreeSet<&str> =
            Reason::ALL.iter().map(|r| r.code()).collect();
        assert_eq!(codes.len(), Reason::ALL.len());
        for r in Reason::ALL {
            assert_eq!(serde_json::to_value(r).unwrap(), json!(r.code()));
        }
    }
}
