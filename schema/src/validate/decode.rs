//! From a request body to validated events: one streaming parse for
//! well-formed bodies, and a slow path that isolates each broken event so its
//! neighbours are still accepted.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::scan::scan;
use super::{reject, validate_with, BodyError, Checks, Decoded, Reason, Rejection, Strings};
use crate::beacon::{RawEvent, MAX_EVENTS_PER_BATCH};
use crate::fields::integer_fields;

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
    // Fast paths, each validating every event as soon as it is read: the
    // scanner for the plain bodies SDKs send, then one streaming serde
    // parse for any well-formed body. A problem sends the body down the
    // slow path, which finds and names it.
    match decode_scan(text, checks) {
        Some(decoded) => Ok(decoded),
        None => decode_serde(text, checks),
    }
}

/// What a body means: one streaming serde parse, or the slow path when
/// that fails.
pub(super) fn decode_serde(text: &str, checks: &Checks) -> Result<Decoded, BodyError> {
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

pub(super) fn decode_scan(text: &str, checks: &Checks) -> Option<Decoded> {
    let mut out = sized_for(text);
    let mut sink = Sink {
        checks,
        out: &mut out,
        strings: Strings::recalled(),
    };
    let scanned = scan(text, |raw| sink.accept(raw));
    sink.strings.keep();
    scanned?;
    let any = !out.accepted.is_empty() || !out.rejected.is_empty();
    any.then_some(out)
}

/// An empty result sized from the body (events are a few hundred bytes).
fn sized_for(text: &str) -> Decoded {
    Decoded {
        accepted: Vec::with_capacity((text.len() / 256).clamp(1, MAX_EVENTS_PER_BATCH)),
        rejected: Vec::new(),
    }
}

fn decode_fast(text: &str, checks: &Checks) -> Option<Decoded> {
    let mut out = sized_for(text);
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
        self.accept(&raw);
    }

    fn accept(&mut self, raw: &RawEvent<'_>) {
        let index = self.out.accepted.len() + self.out.rejected.len();
        match validate_with(raw, self.checks, &mut self.strings) {
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
        // The slow path then names the reason (`too_many_events`).
        if pending
            .as_ref()
            .is_some_and(|p| p.len() > MAX_EVENTS_PER_BATCH)
        {
            return Err(serde::de::Error::custom("too many events"));
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
            ({ $($f:ident),* } $($name:ident: $ty:ty = $max:expr, $doc:literal;)*) => {$(
                if self.$f.is_none() { self.$f = meta.$f.clone(); }
            )* $(
                if self.$name.is_none() { self.$name = meta.$name.clone(); }
            )*};
        }
        integer_fields!(fill! {
            view_id,
            seq,
            event,
            ts,
            view_start,
            viewer_id,
            video_id,
            video_title,
            stream_type,
            player_name,
            player_version,
            autoplay,
            cdn,
            state,
            play_requested,
            startup_time_ms,
            error_code,
            error_message,
            error_fatal
        });
    }
}
