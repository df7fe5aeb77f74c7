//! Decoding and validation of beacons, with a stable reason code per failure.
//!
//! A body that is not a beacon at all fails as a whole ([`BodyError`]); in a
//! batch, each event is checked on its own, so one bad event is reported by
//! index ([`Rejection`]) while the others are accepted.
//!
//! [`decode`] (in `decode.rs`) turns a request body into raw events; the
//! rest of this module checks one raw event and normalizes it.

mod decode;
mod scan;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::cell::Cell;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::beacon::{limits, Event, EventType, PlayerState, RawEvent, StreamType};
use crate::fields::integer_fields;

pub use decode::decode;

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
    /// The batch has more than [`MAX_EVENTS_PER_BATCH`](crate::beacon::MAX_EVENTS_PER_BATCH) events.
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
    /// A CMCD report line is not an RFC 8941 dictionary.
    InvalidCmcd,
    /// A CMCD report line is longer than [`MAX_LINE_BYTES`](crate::cmcd::MAX_LINE_BYTES).
    LineTooLong,
    /// A mux-embed event's `env_key` is not the body's (its first event's).
    OtherEnvKey,
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
            Reason::InvalidCmcd => "invalid_cmcd",
            Reason::LineTooLong => "line_too_long",
            Reason::OtherEnvKey => "other_env_key",
        }
    }

    /// Every reason, for metrics and documentation.
    pub const ALL: [Reason; 19] = [
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
        Reason::InvalidCmcd,
        Reason::LineTooLong,
        Reason::OtherEnvKey,
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
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decoded {
    /// Valid events, in request order.
    pub accepted: Vec<Event>,
    /// Refused events, by index.
    pub rejected: Vec<Rejection>,
}

/// Refuses `ts` too far ahead of the server clock or older than the
/// maximum age (beacon events and CMCD reports alike).
pub(crate) fn check_ts(ts_ms: i64, checks: &Checks) -> Result<(), Rejection> {
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
                "`ts` is {} s old; events older than {} s are dropped",
                (checks.now_ms - ts_ms) / 1000,
                checks.max_age_ms / 1000
            ),
        ));
    }
    Ok(())
}

pub(crate) fn reject(reason: Reason, field: Option<&str>, message: impl Into<String>) -> Rejection {
    Rejection {
        index: 0,
        reason,
        field: field.map(str::to_owned),
        message: message.into(),
    }
}

/// Checks one raw event and normalizes it.
pub fn validate(raw: &RawEvent<'_>, checks: &Checks) -> Result<Event, Rejection> {
    validate_with(raw, checks, &mut Strings::default())
}

/// Reuses the previous event's string when a field repeats — the events of
/// one batch mostly share viewer, video and player — so they share one
/// allocation instead of one each. The scanner's path keeps them per thread
/// from one body to the next ([`Strings::recalled`]): during a live event
/// most requests name the same video, player and CDN.
#[derive(Default)]
pub(crate) struct Strings {
    last: [Option<Arc<str>>; 9],
    /// Where in the body each `last` string was borrowed from (address and
    /// length; 0 when it was not borrowed). Fields taken from a batch's
    /// `metadata` are the very same slice of the body in every event, so
    /// the same address means the same text without comparing it. Only
    /// compared, never dereferenced, and only within one body, which does
    /// not move meanwhile: [`Strings::recalled`] forgets them between
    /// bodies. (An unescaped copy could be freed and its address reused,
    /// hence borrowed slices only.)
    source: [(usize, usize); 9],
}

thread_local! {
    /// The strings of this thread's previous body (see [`Strings::recalled`]).
    static KEPT: Cell<Option<Strings>> = const { Cell::new(None) };
}

// `&Cow`, not `&str`: whether a string was borrowed from the body matters.
#[allow(clippy::ptr_arg)]
impl Strings {
    /// This thread's strings from its previous body, with where they came
    /// from forgotten: that body is gone, and a new one may sit at the same
    /// address with other text. Reuse then takes equal text.
    pub(crate) fn recalled() -> Strings {
        let mut strings = KEPT.take().unwrap_or_default();
        strings.source = [(0, 0); 9];
        strings
    }

    /// Keeps these strings for this thread's next body.
    pub(crate) fn keep(self) {
        KEPT.set(Some(self));
    }

    const VIEW_ID: usize = 0;
    const VIEWER_ID: usize = 1;
    const VIDEO_ID: usize = 2;
    const VIDEO_TITLE: usize = 3;
    const PLAYER_NAME: usize = 4;
    const PLAYER_VERSION: usize = 5;
    const CDN: usize = 6;
    const ERROR_CODE: usize = 7;
    const ERROR_MESSAGE: usize = 8;

    /// Where `text` was borrowed from in the body, or `(0, 0)`.
    #[inline]
    fn source(text: &Cow<'_, str>) -> (usize, usize) {
        match text {
            Cow::Borrowed(b) => (b.as_ptr() as usize, b.len()),
            Cow::Owned(_) => (0, 0),
        }
    }

    /// The last string of `slot` again, when `text` is the same: the very
    /// same slice of the body, or equal text.
    #[inline]
    fn reuse(&mut self, slot: usize, text: &Cow<'_, str>) -> Option<Arc<str>> {
        let source = Strings::source(text);
        let shared = self.last[slot].as_ref()?;
        if (source.0 != 0 && self.source[slot] == source) || **shared == **text {
            self.source[slot] = source;
            return Some(shared.clone());
        }
        None
    }

    #[inline]
    fn get(&mut self, slot: usize, text: &Cow<'_, str>) -> Arc<str> {
        if let Some(same) = self.reuse(slot, text) {
            return same;
        }
        let fresh: Arc<str> = Arc::from(text.as_ref());
        self.last[slot] = Some(fresh.clone());
        self.source[slot] = Strings::source(text);
        fresh
    }

    #[inline]
    fn optional(
        &mut self,
        slot: usize,
        value: &Option<Cow<'_, str>>,
        field: &str,
        limit: usize,
    ) -> Result<Arc<str>, Rejection> {
        const EMPTY: Cow<'static, str> = Cow::Borrowed("");
        let text = value.as_ref().unwrap_or(&EMPTY);
        check_len(text, field, limit)?;
        Ok(self.get(slot, text))
    }
}

/// [`validate`] sharing repeated strings through `strings`.
/// Whether `s` is a valid `view_id`: 1-128 of `[A-Za-z0-9-_.:]`.
pub(crate) fn is_view_id(s: &str) -> bool {
    (1..=limits::VIEW_ID).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

pub(crate) fn validate_with(
    raw: &RawEvent<'_>,
    checks: &Checks,
    strings: &mut Strings,
) -> Result<Event, Rejection> {
    let view_id_text = required_str(&raw.view_id, "view_id", limits::VIEW_ID)?;
    // The previous event's view (a batch is one view) passed this check.
    let view_id = match strings.reuse(Strings::VIEW_ID, view_id_text) {
        Some(same) => same,
        None if is_view_id(view_id_text) => strings.get(Strings::VIEW_ID, view_id_text),
        None => {
            return Err(reject(
                Reason::InvalidViewId,
                Some("view_id"),
                "`view_id` must be 1-128 characters of A-Z a-z 0-9 - _ . :",
            ))
        }
    };
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
    check_ts(ts_ms, checks)?;
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
    // The integer fields are checked after the others, from the table.
    macro_rules! checked {
        ({ $($fixed:tt)* } $($name:ident: $ty:ty = $max:expr, $doc:literal;)*) => {
            Event {
                $($fixed)*
                $($name: counter(&raw.$name, stringify!($name), $max)? as $ty,)*
            }
        };
    }
    Ok(integer_fields!(checked! {
        view_id,
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
        autoplay: raw.autoplay.unwrap_or(false),
        cdn: strings.optional(Strings::CDN, &raw.cdn, "cdn", limits::SHORT)?,
        state,
        play_requested: raw.play_requested.unwrap_or(false)
            || matches!(event, EventType::Play | EventType::Playing)
            || startup_time_ms.is_some(),
        startup_time_ms,
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
        extra: Vec::new(),
    }))
}

#[cold]
#[inline(never)]
fn missing(field: &str) -> Rejection {
    reject(
        Reason::MissingField,
        Some(field),
        format!("`{field}` is required"),
    )
}

#[inline]
fn required_str<'s, 'a>(
    value: &'s Option<Cow<'a, str>>,
    field: &str,
    limit: usize,
) -> Result<&'s Cow<'a, str>, Rejection> {
    let s = value.as_ref().ok_or_else(|| missing(field))?;
    check_len(s, field, limit)?;
    Ok(s)
}

// The checks below run for every field of every event; what they build
// when a check fails is kept out of line, so the passing case stays small.

#[inline]
fn check_len(s: &str, field: &str, limit: usize) -> Result<(), Rejection> {
    if s.len() > limit {
        return Err(too_long(s, field, limit));
    }
    Ok(())
}

#[cold]
#[inline(never)]
fn too_long(s: &str, field: &str, limit: usize) -> Rejection {
    reject(
        Reason::FieldTooLong,
        Some(field),
        format!(
            "`{field}` is {} bytes; at most {limit} are accepted",
            s.len()
        ),
    )
}

#[inline]
fn uint(
    value: &Option<serde_json::Number>,
    field: &str,
    max: u64,
) -> Result<Option<u64>, Rejection> {
    let Some(n) = value else { return Ok(None) };
    match n.as_u64() {
        Some(v) if v <= max => Ok(Some(v)),
        _ => Err(out_of_range(
            n,
            field,
            format_args!("a whole number from 0 to {max}"),
        )),
    }
}

#[inline]
fn counter(value: &Option<serde_json::Number>, field: &str, max: u64) -> Result<u64, Rejection> {
    Ok(uint(value, field, max)?.unwrap_or(0))
}

#[inline]
fn int(value: &Option<serde_json::Number>, field: &str) -> Result<Option<i64>, Rejection> {
    let Some(n) = value else { return Ok(None) };
    match n.as_i64() {
        Some(v) if v > 0 => Ok(Some(v)),
        _ => Err(out_of_range(
            n,
            field,
            format_args!("milliseconds since the Unix epoch"),
        )),
    }
}

#[cold]
#[inline(never)]
fn out_of_range(n: &serde_json::Number, field: &str, what: std::fmt::Arguments<'_>) -> Rejection {
    reject(
        Reason::OutOfRange,
        Some(field),
        format!("`{field}` must be {what}, got {n}"),
    )
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
