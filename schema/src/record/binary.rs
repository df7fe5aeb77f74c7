//! The record's binary encoding (format version 4): the events one request
//! carried for one view, after what the collector added to all of them.
//! Integers are LEB128 varints (signed ones zigzagged), strings a varint
//! byte length then UTF-8, enums one byte. It costs a few hundred
//! nanoseconds per event where JSON cost microseconds on both ends, and the
//! fields a request shares are written once.
//!
//! ```text
//! u8 version (= 4; a JSON record starts with `{`)    var event count (1..=MAX_EVENTS)
//! str property_id   zig received_at_ms
//! str country   var asn   str os   str browser   str device_type   u8 source
//! str view_id
//! then per event:
//!   var seq   u8 event   zig ts_ms   zig view_start_ms
//!   str* viewer_id   str* video_id   str* video_title   u8 stream_type
//!   str* player_name   str* player_version   u8 flags   str* cdn   u8 state
//!   [var startup_time_ms if flagged]   str* error_code   str* error_message
//!   var n   n × var: the integer fields, in `crate::fields` table order
//!   [var m   m × (str key, str value): `extra`, if flagged]
//! ```
//!
//! `str*` is a string that may repeat the previous event's value of the same
//! field: varint 0 means "the same", otherwise varint (length + 1) then the
//! bytes. Flags: bit 0 autoplay, 1 play_requested, 2 error_fatal, 3 startup
//! time known, 4 an `extra` block follows the integers (mux-embed events:
//! var n (1..=[`MAX_EXTRA`]), then n × str key, str value; a reader from
//! before it refuses the flag). The integer block is counted so the table can grow without a
//! new version: a reader skips integers past those it knows (a newer
//! writer's) and leaves those a record lacks (an older writer's) at 0.
//! Otherwise decoding is strict: an enum out of range, a number too large
//! for its field, invalid UTF-8, a truncated record or trailing bytes are
//! errors. Any other layout change means a new format version.
//!
//! Versions 3 (no `source` byte: the events are beacons) and 2 (also the
//! integers at fixed places among the other fields) are still read, so a
//! rolling upgrade loses nothing.

use std::sync::Arc;

use crate::beacon::{Event, EventType, PlayerState, StreamType};
use crate::fields::{integer_fields, INTEGER_FIELDS};

use super::{Enrichment, Record, Source};

/// The version byte that opens a binary record written today.
pub const VERSION: u8 = 4;
/// Earlier versions, still read.
const VERSION_3: u8 = 3;
const VERSION_2: u8 = 2;
/// Most events in one record (keeps a record far below Kafka's 1 MB default
/// even with every string at its limit).
pub const MAX_EVENTS: usize = 100;

const AUTOPLAY: u8 = 1;
const PLAY_REQUESTED: u8 = 1 << 1;
const ERROR_FATAL: u8 = 1 << 2;
const STARTED: u8 = 1 << 3;
const EXTRA: u8 = 1 << 4;
/// Most `extra` pairs one event may carry (a mux-embed snapshot has ~50).
pub const MAX_EXTRA: usize = 256;

/// Appends `v` as an unsigned LEB128 varint.
pub(crate) fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push(v as u8 | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn put_zigzag(buf: &mut Vec<u8>, v: i64) {
    put_varint(buf, ((v << 1) ^ (v >> 63)) as u64);
}

/// Appends `s` as a varint byte length and its bytes (also ClickHouse's
/// RowBinary `String`).
pub(crate) fn put_str(buf: &mut Vec<u8>, s: &str) {
    put_varint(buf, s.len() as u64);
    buf.extend_from_slice(s.as_bytes());
}

/// Appends `s`, or "the same" when it equals the previous event's value.
/// The events of one batch mostly share one allocation per field, so the
/// pointers are compared before the text.
fn put_shared(buf: &mut Vec<u8>, s: &Arc<str>, prev: Option<&Arc<str>>) {
    if prev.is_some_and(|p| Arc::ptr_eq(p, s) || **p == **s) {
        buf.push(0);
    } else {
        put_varint(buf, s.len() as u64 + 1);
        buf.extend_from_slice(s.as_bytes());
    }
}

/// Appends the binary record of `events` (1 to [`MAX_EVENTS`], all of one
/// view: the first event's `view_id` is the record's) with what the
/// collector added to them.
pub fn encode(
    property_id: &str,
    received_at_ms: i64,
    x: &Enrichment,
    events: &[Event],
    buf: &mut Vec<u8>,
) {
    debug_assert!((1..=MAX_EVENTS).contains(&events.len()));
    debug_assert!(events.iter().all(|e| e.view_id == events[0].view_id));
    buf.push(VERSION);
    put_varint(buf, events.len() as u64);
    put_str(buf, property_id);
    put_zigzag(buf, received_at_ms);
    put_str(buf, &x.country);
    put_varint(buf, u64::from(x.asn));
    put_str(buf, &x.os);
    put_str(buf, &x.browser);
    put_str(buf, &x.device_type);
    buf.push(x.source as u8);
    put_str(buf, events.first().map_or("", |e| &e.view_id));
    let mut prev: Option<&Event> = None;
    for e in events {
        let p = |field: fn(&Event) -> &Arc<str>| prev.map(field);
        put_varint(buf, u64::from(e.seq));
        buf.push(e.event as u8);
        put_zigzag(buf, e.ts_ms);
        put_zigzag(buf, e.view_start_ms);
        put_shared(buf, &e.viewer_id, p(|e| &e.viewer_id));
        put_shared(buf, &e.video_id, p(|e| &e.video_id));
        put_shared(buf, &e.video_title, p(|e| &e.video_title));
        buf.push(e.stream_type as u8);
        put_shared(buf, &e.player_name, p(|e| &e.player_name));
        put_shared(buf, &e.player_version, p(|e| &e.player_version));
        let flag = |on: bool, bit: u8| if on { bit } else { 0 };
        buf.push(
            flag(e.autoplay, AUTOPLAY)
                | flag(e.play_requested, PLAY_REQUESTED)
                | flag(e.error_fatal, ERROR_FATAL)
                | flag(e.startup_time_ms.is_some(), STARTED)
                | flag(!e.extra.is_empty(), EXTRA),
        );
        put_shared(buf, &e.cdn, p(|e| &e.cdn));
        buf.push(e.state as u8);
        if let Some(startup) = e.startup_time_ms {
            put_varint(buf, u64::from(startup));
        }
        put_shared(buf, &e.error_code, p(|e| &e.error_code));
        put_shared(buf, &e.error_message, p(|e| &e.error_message));
        put_integers(buf, e);
        if !e.extra.is_empty() {
            put_varint(buf, e.extra.len() as u64);
            for (key, value) in &e.extra {
                put_str(buf, key);
                put_str(buf, value);
            }
        }
        prev = Some(e);
    }
}

macro_rules! integer_codec {
    ({} $($name:ident: $ty:ty = $max:expr, $doc:literal;)*) => {
        /// The event's integer block: how many, then each in table order.
        fn put_integers(buf: &mut Vec<u8>, e: &Event) {
            put_varint(buf, INTEGER_FIELDS.len() as u64);
            $(put_varint(buf, u64::from(e.$name));)*
        }

        impl Reader<'_> {
            /// An integer block into `e`: the fields it has, in table
            /// order; integers past those this build knows are skipped.
            fn integers(&mut self, e: &mut Event) -> Result<(), BinaryError> {
                let mut left = self.varint()?;
                $(
                    if left > 0 {
                        e.$name = self.int(stringify!($name))?;
                        left -= 1;
                    }
                )*
                for _ in 0..left {
                    self.varint()?;
                }
                Ok(())
            }
        }
    };
}
integer_fields!(integer_codec! {});

/// Why a binary record does not decode: what was wrong, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} at byte {at}")]
pub struct BinaryError {
    /// What was wrong.
    pub what: &'static str,
    /// The byte offset where it was noticed.
    pub at: usize,
}

/// How many events a binary record says it holds, read from its first
/// bytes without decoding it (`None` if it is not a binary record).
pub fn event_count(bytes: &[u8]) -> Option<usize> {
    let mut r = Reader { bytes, at: 0 };
    match r.u8() {
        Ok(VERSION | VERSION_3 | VERSION_2) => r.varint().ok().map(|n| n as usize),
        _ => None,
    }
}

/// Decodes a binary record (the version byte included).
pub fn decode(bytes: &[u8]) -> Result<Record, BinaryError> {
    let mut r = Reader { bytes, at: 0 };
    let version = r.u8()?;
    if !matches!(version, VERSION | VERSION_3 | VERSION_2) {
        return Err(r.error("not a version 2, 3 or 4 record"));
    }
    let count: usize = r.int("event count")?;
    if !(1..=MAX_EVENTS).contains(&count) {
        return Err(r.error("event count out of range"));
    }
    let property_id = r.str()?.to_owned();
    let received_at_ms = r.zigzag()?;
    let enrichment = Enrichment {
        country: r.str()?.to_owned(),
        asn: r.int("asn")?,
        os: r.str()?.to_owned(),
        browser: r.str()?.to_owned(),
        device_type: r.str()?.to_owned(),
        source: if version == VERSION {
            r.enumerated(&Source::ALL, "source")?
        } else {
            Source::Beacon
        },
    };
    let view_id: Arc<str> = r.str()?.into();
    let mut events: Vec<Event> = Vec::with_capacity(count);
    for _ in 0..count {
        let e = if version != VERSION_2 {
            r.event(&view_id, events.last())?
        } else {
            r.event_v2(&view_id, events.last())?
        };
        events.push(e);
    }
    if r.at != bytes.len() {
        return Err(r.error("trailing bytes"));
    }
    Ok(Record {
        property_id,
        received_at_ms,
        enrichment,
        events,
    })
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn error(&self, what: &'static str) -> BinaryError {
        BinaryError { what, at: self.at }
    }

    fn u8(&mut self) -> Result<u8, BinaryError> {
        let b = *self.bytes.get(self.at).ok_or(self.error("truncated"))?;
        self.at += 1;
        Ok(b)
    }

    fn varint(&mut self) -> Result<u64, BinaryError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            let bits = u64::from(b & 0x7f);
            if shift == 63 && bits > 1 {
                return Err(self.error("varint overflows 64 bits"));
            }
            v |= bits << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.error("varint longer than 10 bytes"))
    }

    fn zigzag(&mut self) -> Result<i64, BinaryError> {
        let v = self.varint()?;
        Ok((v >> 1) as i64 ^ -((v & 1) as i64))
    }

    fn int<T: TryFrom<u64>>(&mut self, field: &'static str) -> Result<T, BinaryError> {
        let v = self.varint()?;
        T::try_from(v).map_err(|_| BinaryError {
            what: field,
            at: self.at,
        })
    }

    fn bytes(&mut self, len: u64) -> Result<&'a str, BinaryError> {
        let end = usize::try_from(len)
            .ok()
            .and_then(|len| self.at.checked_add(len))
            .filter(|&end| end <= self.bytes.len())
            .ok_or(self.error("string runs past the end"))?;
        let s = std::str::from_utf8(&self.bytes[self.at..end])
            .map_err(|_| self.error("string is not UTF-8"))?;
        self.at = end;
        Ok(s)
    }

    fn str(&mut self) -> Result<&'a str, BinaryError> {
        let len = self.varint()?;
        self.bytes(len)
    }

    /// A `str*`: the previous event's value, or a new string.
    fn shared(&mut self, prev: Option<&Arc<str>>) -> Result<Arc<str>, BinaryError> {
        match (self.varint()?, prev) {
            (0, Some(prev)) => Ok(prev.clone()),
            (0, None) => Err(self.error("the first event repeats a value")),
            (len, _) => self.bytes(len - 1).map(Arc::from),
        }
    }

    fn enumerated<T: Copy>(&mut self, all: &[T], what: &'static str) -> Result<T, BinaryError> {
        let i = self.u8()?;
        all.get(usize::from(i)).copied().ok_or(BinaryError {
            what,
            at: self.at - 1,
        })
    }

    fn flags(&mut self) -> Result<u8, BinaryError> {
        let flags = self.u8()?;
        if flags & !(AUTOPLAY | PLAY_REQUESTED | ERROR_FATAL | STARTED | EXTRA) != 0 {
            return Err(self.error("unknown flags"));
        }
        Ok(flags)
    }

    fn startup(&mut self, flags: u8) -> Result<Option<u32>, BinaryError> {
        match flags & STARTED {
            0 => Ok(None),
            _ => Ok(Some(self.int("startup_time_ms")?)),
        }
    }

    /// One version 3 or 4 event (their events are the same).
    fn event(&mut self, view_id: &Arc<str>, prev: Option<&Event>) -> Result<Event, BinaryError> {
        let p = |field: fn(&Event) -> &Arc<str>| prev.map(field);
        let seq = self.int("seq")?;
        let event = self.enumerated(&EventType::ALL, "event type")?;
        let ts_ms = self.zigzag()?;
        let view_start_ms = self.zigzag()?;
        let viewer_id = self.shared(p(|e| &e.viewer_id))?;
        let video_id = self.shared(p(|e| &e.video_id))?;
        let video_title = self.shared(p(|e| &e.video_title))?;
        let stream_type =
            self.enumerated(&[StreamType::OnDemand, StreamType::Live], "stream type")?;
        let player_name = self.shared(p(|e| &e.player_name))?;
        let player_version = self.shared(p(|e| &e.player_version))?;
        let flags = self.flags()?;
        let cdn = self.shared(p(|e| &e.cdn))?;
        let state = self.enumerated(&PlayerState::ALL, "player state")?;
        let startup_time_ms = self.startup(flags)?;
        let mut e = Event {
            view_id: view_id.clone(),
            seq,
            event,
            ts_ms,
            view_start_ms,
            viewer_id,
            video_id,
            video_title,
            stream_type,
            player_name,
            player_version,
            autoplay: flags & AUTOPLAY != 0,
            cdn,
            state,
            play_requested: flags & PLAY_REQUESTED != 0,
            startup_time_ms,
            error_code: self.shared(p(|e| &e.error_code))?,
            error_message: self.shared(p(|e| &e.error_message))?,
            error_fatal: flags & ERROR_FATAL != 0,
            ..Event::default()
        };
        self.integers(&mut e)?;
        if flags & EXTRA != 0 {
            let n: usize = self.int("extra count")?;
            if !(1..=MAX_EXTRA).contains(&n) {
                return Err(self.error("extra count out of range"));
            }
            e.extra.reserve_exact(n);
            for _ in 0..n {
                let key = self.str()?.to_owned();
                e.extra.push((key, self.str()?.to_owned()));
            }
        }
        Ok(e)
    }

    /// One version 2 event: its integers sit among the other fields, and
    /// integer fields added since stay 0.
    fn event_v2(&mut self, view_id: &Arc<str>, prev: Option<&Event>) -> Result<Event, BinaryError> {
        let p = |field: fn(&Event) -> &Arc<str>| prev.map(field);
        let mut e = Event {
            view_id: view_id.clone(),
            seq: self.int("seq")?,
            event: self.enumerated(&EventType::ALL, "event type")?,
            ts_ms: self.zigzag()?,
            view_start_ms: self.zigzag()?,
            viewer_id: self.shared(p(|e| &e.viewer_id))?,
            video_id: self.shared(p(|e| &e.video_id))?,
            video_title: self.shared(p(|e| &e.video_title))?,
            stream_type: self
                .enumerated(&[StreamType::OnDemand, StreamType::Live], "stream type")?,
            ..Event::default()
        };
        e.video_duration_ms = self.varint()?;
        e.player_name = self.shared(p(|e| &e.player_name))?;
        e.player_version = self.shared(p(|e| &e.player_version))?;
        e.player_width = self.int("player_width")?;
        e.player_height = self.int("player_height")?;
        let flags = self.flags()?;
        e.autoplay = flags & AUTOPLAY != 0;
        e.play_requested = flags & PLAY_REQUESTED != 0;
        e.error_fatal = flags & ERROR_FATAL != 0;
        e.cdn = self.shared(p(|e| &e.cdn))?;
        e.state = self.enumerated(&PlayerState::ALL, "player state")?;
        e.watch_time_ms = self.varint()?;
        e.playing_time_ms = self.varint()?;
        e.startup_time_ms = self.startup(flags)?;
        e.rebuffer_count = self.int("rebuffer_count")?;
        e.rebuffer_duration_ms = self.varint()?;
        e.bitrate_kbps = self.int("bitrate_kbps")?;
        e.avg_bitrate_kbps = self.int("avg_bitrate_kbps")?;
        e.dropped_frames = self.varint()?;
        e.playhead_ms = self.varint()?;
        e.error_code = self.shared(p(|e| &e.error_code))?;
        e.error_message = self.shared(p(|e| &e.error_message))?;
        Ok(e)
    }
}

#[cfg(test)]
mod tests;
