//! The fastest path: a hand-written scanner for the shape nearly every SDK
//! body has — flat event objects whose strings carry no escapes and whose
//! numbers are plain non-negative integers.
//!
//! It accepts a strict subset of JSON and gives up (`None`) on anything
//! else: an escape, a float, a nested value, a duplicate field, a syntax
//! error. The serde-based paths in `decode.rs` then decide, so they alone
//! define what a body means; a property test checks that both agree on every
//! body the scanner does accept.

use std::borrow::Cow;

use serde_json::Number;

use crate::beacon::{RawEvent, MAX_EVENTS_PER_BATCH};

/// Calls `push(event, metadata)` for each event of `text` (a single event,
/// an array of events, or `{"metadata": {...}, "events": [...]}`), or
/// returns `None` — possibly after some pushes, so the caller must discard
/// what it received — when the body is outside the subset.
pub(super) fn scan<'a>(
    text: &'a str,
    mut push: impl FnMut(RawEvent<'a>, Option<&RawEvent<'a>>),
) -> Option<()> {
    let mut s = Scanner {
        text,
        bytes: text.as_bytes(),
        at: 0,
    };
    let envelope = text.contains("\"events\"");
    match s.peek()? {
        b'[' => s.events(None, &mut push)?,
        b'{' if envelope => s.envelope(&mut push)?,
        b'{' => push(s.event()?, None),
        _ => return None,
    }
    (s.peek().is_none()).then_some(())
}

struct Scanner<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
}

/// A field's JSON value, as far as the subset goes.
enum Value<'a> {
    Str(&'a str),
    Uint(u64),
    Bool(bool),
    Null,
}

impl<'a> Scanner<'a> {
    /// The next byte after whitespace, not consumed; `None` at the end.
    fn peek(&mut self) -> Option<u8> {
        while let Some(&b) = self.bytes.get(self.at) {
            if !matches!(b, b' ' | b'\n' | b'\r' | b'\t') {
                return Some(b);
            }
            self.at += 1;
        }
        None
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.at += 1)
    }

    /// `{"metadata": {...}, "events": [...]}`, metadata (if any) first.
    fn envelope(
        &mut self,
        push: &mut impl FnMut(RawEvent<'a>, Option<&RawEvent<'a>>),
    ) -> Option<()> {
        self.expect(b'{')?;
        let mut metadata = None;
        let mut seen_events = false;
        loop {
            match self.string()? {
                "metadata" if metadata.is_none() && !seen_events => {
                    self.expect(b':')?;
                    metadata = Some(self.event()?);
                }
                "events" if !seen_events => {
                    self.expect(b':')?;
                    self.events(metadata.as_ref(), push)?;
                    seen_events = true;
                }
                _ => return None,
            }
            match self.peek()? {
                b',' => self.at += 1,
                b'}' => break,
                _ => return None,
            }
        }
        self.at += 1;
        seen_events.then_some(())
    }

    /// `[{...}, ...]`, at least one and at most the batch limit.
    fn events(
        &mut self,
        metadata: Option<&RawEvent<'a>>,
        push: &mut impl FnMut(RawEvent<'a>, Option<&RawEvent<'a>>),
    ) -> Option<()> {
        self.expect(b'[')?;
        let mut n = 0;
        loop {
            n += 1;
            if n > MAX_EVENTS_PER_BATCH {
                return None;
            }
            push(self.event()?, metadata);
            match self.peek()? {
                b',' => self.at += 1,
                b']' => break,
                _ => return None,
            }
        }
        self.at += 1;
        Some(())
    }

    /// One flat event object.
    fn event(&mut self) -> Option<RawEvent<'a>> {
        self.expect(b'{')?;
        let mut raw = RawEvent::default();
        let mut seen = 0u32;
        if self.peek()? == b'}' {
            self.at += 1;
            return Some(raw);
        }
        loop {
            let key = self.string()?;
            self.expect(b':')?;
            let value = self.value()?;
            set(&mut raw, &mut seen, key, value)?;
            match self.peek()? {
                b',' => self.at += 1,
                b'}' => break,
                _ => return None,
            }
        }
        self.at += 1;
        Some(raw)
    }

    fn value(&mut self) -> Option<Value<'a>> {
        Some(match self.peek()? {
            b'"' => Value::Str(self.string()?),
            b'0'..=b'9' => Value::Uint(self.uint()?),
            b't' => self.literal("true", Value::Bool(true))?,
            b'f' => self.literal("false", Value::Bool(false))?,
            b'n' => self.literal("null", Value::Null)?,
            _ => return None,
        })
    }

    /// A string without escapes or control characters.
    fn string(&mut self) -> Option<&'a str> {
        self.expect(b'"')?;
        let start = self.at;
        loop {
            match *self.bytes.get(self.at)? {
                b'"' => break,
                b'\\' | 0..=0x1f => return None,
                _ => self.at += 1,
            }
        }
        self.at += 1;
        // Both ends sit next to an ASCII quote: char boundaries.
        self.text.get(start..self.at - 1)
    }

    /// A non-negative integer that fits u64, as JSON spells it (no leading
    /// zero); floats and negatives are left to serde.
    fn uint(&mut self) -> Option<u64> {
        let start = self.at;
        let mut n: u64 = 0;
        while let Some(&b) = self.bytes.get(self.at) {
            if !b.is_ascii_digit() {
                break;
            }
            n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
            self.at += 1;
        }
        let digits = self.at - start;
        let leading_zero = digits > 1 && self.bytes[start] == b'0';
        let continues = matches!(self.bytes.get(self.at), Some(b'.' | b'e' | b'E'));
        (!leading_zero && !continues).then_some(n)
    }

    fn literal(&mut self, word: &str, value: Value<'a>) -> Option<Value<'a>> {
        let end = self.at + word.len();
        (self.bytes.get(self.at..end)? == word.as_bytes()).then(|| {
            self.at = end;
            value
        })
    }
}

/// Sets one field of `raw`; `None` for a field seen before in this object
/// (serde refuses duplicates, even of `null`) or a type the field cannot
/// hold.
fn set<'a>(raw: &mut RawEvent<'a>, seen: &mut u32, key: &str, value: Value<'a>) -> Option<()> {
    fn text<'a>(slot: &mut Option<Cow<'a, str>>, value: Value<'a>) -> Option<()> {
        match value {
            Value::Str(s) => *slot = Some(Cow::Borrowed(s)),
            Value::Null => {}
            _ => return None,
        }
        Some(())
    }
    fn number(slot: &mut Option<Number>, value: Value<'_>) -> Option<()> {
        match value {
            Value::Uint(n) => *slot = Some(Number::from(n)),
            Value::Null => {}
            _ => return None,
        }
        Some(())
    }
    fn flag(slot: &mut Option<bool>, value: Value<'_>) -> Option<()> {
        match value {
            Value::Bool(b) => *slot = Some(b),
            Value::Null => {}
            _ => return None,
        }
        Some(())
    }
    // Each known field once: a bit per field.
    let mut once = |bit: u32| {
        let fresh = *seen & (1 << bit) == 0;
        *seen |= 1 << bit;
        fresh.then_some(())
    };
    macro_rules! fields {
        ($($bit:literal $name:literal => $kind:ident($field:ident),)*) => {
            match key {
                $($name => {
                    once($bit)?;
                    $kind(&mut raw.$field, value)
                })*
                // Unknown fields are ignored, as serde does (their values
                // are scalars here: nested values stopped the scan).
                _ => Some(()),
            }
        };
    }
    fields! {
        0 "view_id" => text(view_id),
        1 "seq" => number(seq),
        2 "event" => text(event),
        3 "ts" => number(ts),
        4 "view_start" => number(view_start),
        5 "viewer_id" => text(viewer_id),
        6 "video_id" => text(video_id),
        7 "video_title" => text(video_title),
        8 "stream_type" => text(stream_type),
        9 "video_duration_ms" => number(video_duration_ms),
        10 "player_name" => text(player_name),
        11 "player_version" => text(player_version),
        12 "player_width" => number(player_width),
        13 "player_height" => number(player_height),
        14 "autoplay" => flag(autoplay),
        15 "cdn" => text(cdn),
        16 "state" => text(state),
        17 "play_requested" => flag(play_requested),
        18 "watch_time_ms" => number(watch_time_ms),
        19 "playing_time_ms" => number(playing_time_ms),
        20 "startup_time_ms" => number(startup_time_ms),
        21 "rebuffer_count" => number(rebuffer_count),
        22 "rebuffer_duration_ms" => number(rebuffer_duration_ms),
        23 "bitrate_kbps" => number(bitrate_kbps),
        24 "avg_bitrate_kbps" => number(avg_bitrate_kbps),
        25 "dropped_frames" => number(dropped_frames),
        26 "playhead_ms" => number(playhead_ms),
        27 "error_code" => text(error_code),
        28 "error_message" => text(error_message),
        29 "error_fatal" => flag(error_fatal),
    }
}
