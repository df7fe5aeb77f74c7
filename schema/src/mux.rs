//! mux-embed beacons, as the public `mux-embed` SDK (npm, 5.19.0) posts
//! them to the origin named by its `beaconCollectionDomain` option.
//!
//! ```text
//! POST /   Content-Type: text/plain
//! {"metadata": {"transmission_timestamp": 1796017691319, "rtt_ms": 21},
//!  "events": [{"e": "playing", "xid": "41f6…", "xsqno": 10, "uti": 1796017681601,
//!              "ake": "env-key", "xtitofifr": 295, "xwati": 295, …}, …]}
//! ```
//!
//! Every key is shortened (`mux/keys.rs`); [`decode`] expands each to its full
//! name. An event after a view's first carries only the keys that changed
//! (plus a few it always sends), so it says nothing alone: the decoder
//! keeps every key the event carried, expanded, with its value as text,
//! in [`Event::extra`](crate::beacon::Event::extra), and fills only the
//! event's identity (`view_id` = `xid`, `seq` = `xsqno`, `ts` = `uti`,
//! `event` = `e`). The processor (`processor/src/mux.rs`) folds a view's
//! events in `xsqno` order into its full state and maps that onto the view
//! facts ([`facts`]). Keys no fact uses are kept all the same, so nothing
//! the SDK sends is lost.
//!
//! A body belongs to one property: its first event's `ake` (`env_key`);
//! an event with another is refused (`other_env_key`). Refusals reuse the
//! beacon's [`Reason`] codes; a bad event is refused by index while the
//! others are accepted.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use crate::beacon::{limits, Event, EventType};
use crate::validate::{
    check_ts, is_view_id, reject, BodyError, Checks, Decoded, Reason, Rejection,
};

pub mod facts;
mod keys;
mod words;

pub use keys::{expand, ExpandError};

/// Most events one body may carry (the SDK's `maxBeaconSize`).
pub const MAX_EVENTS: usize = 300;
/// Most keys one event may carry (a full snapshot has about 50).
pub const MAX_KEYS: usize = crate::record::binary::MAX_EXTRA;
/// Longest key as sent, bytes.
pub const MAX_KEY_BYTES: usize = 64;
/// Longest value kept, bytes; longer ones (a long page URL) are cut.
pub const MAX_VALUE_BYTES: usize = 2048;
/// Longest event name, bytes.
const MAX_EVENT_NAME: usize = 64;

/// The envelope; `metadata` (transmission time, round-trip time) is not
/// used.
#[derive(Deserialize)]
struct Envelope {
    events: Option<Vec<Value>>,
}

/// A decoded body: its property key and its events.
#[derive(Debug, Default)]
pub struct Body {
    /// The `env_key` (`ake`) of the body's first event.
    pub env_key: String,
    /// The events, accepted and refused.
    pub decoded: Decoded,
}

fn body_error(reason: Reason, message: impl Into<String>) -> BodyError {
    BodyError {
        reason,
        message: message.into(),
    }
}

/// Decodes a mux-embed body at `checks.now_ms`.
pub fn decode(body: &[u8], checks: &Checks) -> Result<Body, BodyError> {
    let envelope: Envelope = serde_json::from_slice(body).map_err(|e| {
        let reason = if e.is_data() {
            Reason::NotABeacon
        } else {
            Reason::InvalidJson
        };
        body_error(reason, format!("not a mux-embed body: {e}"))
    })?;
    let events = envelope.events.ok_or_else(|| {
        body_error(
            Reason::NotABeacon,
            "a mux-embed body is {\"metadata\": {…}, \"events\": […]}",
        )
    })?;
    if events.is_empty() {
        return Err(body_error(Reason::EmptyBatch, "`events` is empty"));
    }
    if events.len() > MAX_EVENTS {
        return Err(body_error(
            Reason::TooManyEvents,
            format!("{} events in one body; at most {MAX_EVENTS}", events.len()),
        ));
    }
    let env_key = events
        .iter()
        .find_map(|e| e.get("ake").and_then(Value::as_str))
        .filter(|k| !k.is_empty())
        .ok_or_else(|| {
            body_error(
                Reason::MissingField,
                "no event names its property: `ake` (env_key) is missing",
            )
        })?
        .to_owned();
    let mut decoded = Decoded {
        accepted: Vec::with_capacity(events.len()),
        ..Decoded::default()
    };
    let mut view: Option<Arc<str>> = None;
    for (index, value) in events.into_iter().enumerate() {
        match event(value, &env_key, checks, &mut view) {
            Ok(e) => decoded.accepted.push(e),
            Err(mut r) => {
                r.index = index;
                decoded.rejected.push(r);
            }
        }
    }
    Ok(Body { env_key, decoded })
}

/// One event: its keys expanded, its identity checked.
fn event(
    value: Value,
    env_key: &str,
    checks: &Checks,
    view: &mut Option<Arc<str>>,
) -> Result<Event, Rejection> {
    let Value::Object(map) = value else {
        return Err(reject(
            Reason::NotAnObject,
            None,
            "an element of `events` is not a JSON object",
        ));
    };
    if map.len() > MAX_KEYS {
        return Err(reject(
            Reason::OutOfRange,
            None,
            format!("an event has {} keys; at most {MAX_KEYS}", map.len()),
        ));
    }
    let text = |short: &str, limit: usize| -> Result<Option<&str>, Rejection> {
        match map.get(short) {
            None => Ok(None),
            Some(Value::String(s)) if s.len() <= limit => Ok(Some(s)),
            Some(Value::String(_)) => Err(reject(
                Reason::FieldTooLong,
                Some(short),
                format!("`{short}` is longer than {limit} bytes"),
            )),
            Some(_) => Err(wrong_type(short, "a string")),
        }
    };
    let integer = |short: &str, max: u64| -> Result<Option<u64>, Rejection> {
        match map.get(short) {
            None => Ok(None),
            Some(Value::Number(n)) => match n.as_u64() {
                Some(v) if v <= max => Ok(Some(v)),
                _ => Err(reject(
                    Reason::OutOfRange,
                    Some(short),
                    format!("`{short}` must be a whole number from 0 to {max}"),
                )),
            },
            Some(_) => Err(wrong_type(short, "a number")),
        }
    };
    let xid = text("xid", limits::VIEW_ID)?.ok_or_else(|| missing("xid"))?;
    if !is_view_id(xid) {
        return Err(reject(
            Reason::InvalidViewId,
            Some("xid"),
            "`xid` (view_id) must be 1-128 characters of A-Z a-z 0-9 - _ . :",
        ));
    }
    let seq = integer("xsqno", limits::MAX_SEQ)?.ok_or_else(|| missing("xsqno"))? as u32;
    let name = text("e", MAX_EVENT_NAME)?.ok_or_else(|| missing("e"))?;
    let ts_ms = integer("uti", i64::MAX as u64)?.ok_or_else(|| missing("uti"))? as i64;
    check_ts(ts_ms, checks)?;
    if text("ake", limits::SHORT)?.is_some_and(|k| k != env_key) {
        return Err(reject(
            Reason::OtherEnvKey,
            Some("ake"),
            "one body carries the events of one env_key (its first event's)",
        ));
    }
    let mut extra = Vec::with_capacity(map.len());
    for (short, value) in &map {
        if short.len() > MAX_KEY_BYTES {
            return Err(reject(
                Reason::FieldTooLong,
                None,
                format!("a key is longer than {MAX_KEY_BYTES} bytes"),
            ));
        }
        // A key the dictionaries do not cover is kept as it was sent.
        let key = expand(short).unwrap_or_else(|_| short.clone());
        extra.push((key, value_text(value)));
    }
    let view_id = match view {
        Some(v) if **v == *xid => v.clone(),
        _ => view.insert(xid.into()).clone(),
    };
    Ok(Event {
        view_id,
        seq,
        event: EventType::parse(name).unwrap_or(EventType::Heartbeat),
        ts_ms,
        view_start_ms: ts_ms,
        extra,
        ..Event::default()
    })
}

/// A value as text: strings as they are, numbers and booleans as JSON
/// writes them, `null` (the SDK's "unknown") empty, arrays and objects as
/// JSON; cut to [`MAX_VALUE_BYTES`] on a character boundary.
fn value_text(value: &Value) -> String {
    let mut text = match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    if text.len() > MAX_VALUE_BYTES {
        let mut end = MAX_VALUE_BYTES;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

fn wrong_type(short: &str, what: &str) -> Rejection {
    reject(
        Reason::InvalidType,
        Some(short),
        format!("`{short}` must be {what}"),
    )
}

fn missing(short: &str) -> Rejection {
    reject(
        Reason::MissingField,
        Some(short),
        format!("mux-embed events need `{short}`"),
    )
}

#[cfg(test)]
mod tests;
