//! The fastest path: a hand-written scanner for the shape nearly every SDK
//! body has — flat event objects whose strings carry no escapes and whose
//! numbers are plain non-negative integers.
//!
//! It accepts a strict subset of JSON and gives up (`None`) on anything
//! else: an escape, a float, a nested value, a duplicate field, a syntax
//! error. The serde-based paths in `decode.rs` then decide, so they alone
//! define what a body means; a property test checks that both agree on every
//! body the scanner does accept.
//!
//! Two things make it fast. Strings and numbers are read eight bytes at a
//! time (the bit tricks are in `scan/words.rs`). And an SDK lists its
//! fields in the same order in every event it sends, so the scanner first
//! checks whether a key is the one at this position in the previous object
//! of its kind — on this thread, so also in the previous request: a word
//! comparison or three, no search for the key's end and no lookup among
//! thirty names.

use std::borrow::Cow;
use std::cell::Cell;

use serde_json::Number;

use crate::beacon::{RawEvent, MAX_EVENTS_PER_BATCH};
use crate::fields::integer_fields;

mod words;

use words::{first_digits, leading_digits, specials, word_at, Key, POWERS_OF_TEN, ZEROS};

/// Calls `push(event)` for each event of `text` (a single event, an array
/// of events, or `{"metadata": {...}, "events": [...]}`, each event already
/// completed from `metadata`), or returns `None` — possibly after some
/// pushes, so the caller must discard what it received — when the body is
/// outside the subset.
pub(super) fn scan<'a>(text: &'a str, mut push: impl FnMut(&RawEvent<'a>)) -> Option<()> {
    let mut s = Scanner::new(text, ORDERS.get());
    let scanned = s.body(&mut push);
    ORDERS.set(s.orders);
    scanned
}

thread_local! {
    /// The field orders this thread saw last, one per [`Kind`]: each request
    /// starts from the previous one's (a guess: only speed depends on it).
    static ORDERS: Cell<Orders> = const { Cell::new([[UNKNOWN; ORDER_LEN]; KINDS]) };
}

/// The field at each position of the previous object, per [`Kind`].
type Orders = [[u8; ORDER_LEN]; KINDS];

/// Positions remembered per object; later fields are looked up by name.
const ORDER_LEN: usize = 40;

/// Objects whose fields come in different orders: a lone event carries the
/// fields a batch's events leave to its metadata.
#[derive(Clone, Copy)]
enum Kind {
    Lone,
    Metadata,
    Batched,
}
const KINDS: usize = 3;

struct Scanner<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
    /// The keys predicted for each kind of object, learnt as they come.
    orders: Orders,
}

impl<'a> Scanner<'a> {
    fn new(text: &'a str, orders: Orders) -> Self {
        Scanner {
            text,
            bytes: text.as_bytes(),
            at: 0,
            orders,
        }
    }

    fn body(&mut self, push: &mut impl FnMut(&RawEvent<'a>)) -> Option<()> {
        match self.peek()? {
            b'[' => self.events(&RawEvent::default(), push)?,
            b'{' => self.object(push)?,
            _ => return None,
        }
        (self.peek().is_none()).then_some(())
    }

    /// The next byte after whitespace, not consumed; `None` at the end.
    #[inline]
    fn peek(&mut self) -> Option<u8> {
        // SDKs send compact JSON: the next byte is usually not whitespace.
        match self.bytes.get(self.at) {
            Some(&b) if b > b' ' => Some(b),
            _ => self.skip_whitespace(),
        }
    }

    #[cold]
    fn skip_whitespace(&mut self) -> Option<u8> {
        // The position stays in a register until the end (here and below):
        // writing `self.at` per byte costs more than the comparisons.
        let mut at = self.at;
        while let Some(&b) = self.bytes.get(at) {
            if !matches!(b, b' ' | b'\n' | b'\r' | b'\t') {
                self.at = at;
                return Some(b);
            }
            at += 1;
        }
        self.at = at;
        None
    }

    #[inline]
    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.at += 1)
    }

    /// A top-level object: the envelope when its first key is `metadata` or
    /// `events`, otherwise one event. (An event with a field of either name
    /// is left to serde, which would read the body as an envelope.)
    fn object(&mut self, push: &mut impl FnMut(&RawEvent<'a>)) -> Option<()> {
        let open = self.at;
        self.expect(b'{')?;
        let first = if self.peek()? == b'"' {
            self.at += 1;
            self.string_rest()?
        } else {
            ""
        };
        self.at = open;
        if matches!(first, "metadata" | "events") {
            self.envelope(push)
        } else {
            let mut raw = RawEvent::default();
            self.event(&mut raw, Kind::Lone)?;
            push(&raw);
            Some(())
        }
    }

    /// `{"metadata": {...}, "events": [...]}`, metadata (if any) first.
    fn envelope(&mut self, push: &mut impl FnMut(&RawEvent<'a>)) -> Option<()> {
        self.expect(b'{')?;
        let mut metadata = None;
        let mut seen_events = false;
        loop {
            match self.string()? {
                "metadata" if metadata.is_none() && !seen_events => {
                    self.expect(b':')?;
                    let mut raw = RawEvent::default();
                    self.event(&mut raw, Kind::Metadata)?;
                    metadata = Some(raw);
                }
                "events" if !seen_events => {
                    self.expect(b':')?;
                    // No metadata: events are read over an empty one
                    // (a later `metadata` is refused: events came first).
                    self.events(metadata.get_or_insert_with(RawEvent::default), push)?;
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

    /// `[{...}, ...]`, at least one and at most the batch limit, each
    /// event read over a copy of `metadata` (its fields win, and an absent
    /// or `null` field keeps the metadata's value).
    fn events(
        &mut self,
        metadata: &RawEvent<'a>,
        push: &mut impl FnMut(&RawEvent<'a>),
    ) -> Option<()> {
        self.expect(b'[')?;
        // One event in place, reused: RawEvent is large to move around.
        // The events of a batch mostly write the same fields, so only those
        // the previous event wrote and this one did not need the metadata's
        // values back.
        let mut raw = metadata.clone();
        let mut previous = 0;
        let mut n = 0;
        loop {
            n += 1;
            if n > MAX_EVENTS_PER_BATCH {
                return None;
            }
            let written = self.event(&mut raw, Kind::Batched)?;
            restore(&mut raw, metadata, previous & !written);
            push(&raw);
            previous = written;
            match self.peek()? {
                b',' => self.at += 1,
                b']' => break,
                _ => return None,
            }
        }
        self.at += 1;
        Some(())
    }

    /// One flat event object, its fields set in `raw`; returns the fields
    /// it wrote (not those it gave as `null`), a bit per field number.
    fn event(&mut self, raw: &mut RawEvent<'a>, kind: Kind) -> Option<FieldSet> {
        self.expect(b'{')?;
        let mut seen: FieldSet = 0;
        let mut written: FieldSet = 0;
        if self.peek()? == b'}' {
            self.at += 1;
            return Some(written);
        }
        let mut position = 0;
        loop {
            self.expect(b'"')?;
            let field = self.key(kind, position)?;
            position += 1;
            if field == UNKNOWN {
                self.skip_value()?;
            } else {
                // Each known field once: a bit per field (serde refuses
                // duplicates, even of `null`).
                let bit: FieldSet = 1 << field;
                if seen & bit != 0 {
                    return None;
                }
                seen |= bit;
                if read(self, raw, field)? {
                    written |= bit;
                }
            }
            match self.peek()? {
                b',' => self.at += 1,
                b'}' => break,
                _ => return None,
            }
        }
        self.at += 1;
        Some(written)
    }

    /// The field a key names, just after its opening quote, and its colon;
    /// `None` for a key the scanner must leave to serde.
    #[inline]
    fn key(&mut self, kind: Kind, position: usize) -> Option<u8> {
        let predicted = self.orders[kind as usize]
            .get(position)
            .copied()
            .unwrap_or(UNKNOWN);
        if let Some(key) = KEYS.get(usize::from(predicted)) {
            if key.is_at(self.bytes, self.at) {
                self.at += key.len;
                return Some(predicted);
            }
        }
        let key = self.string_rest()?;
        self.expect(b':')?;
        let field = field_of(key);
        if field == UNKNOWN && matches!(key, "metadata" | "events") {
            return None;
        }
        if let Some(slot) = self.orders[kind as usize].get_mut(position) {
            *slot = field;
        }
        Some(field)
    }

    /// A string field's value into `slot`: whether it was written (`null`
    /// leaves the slot as it is); `None` for any other type.
    #[inline]
    fn text(&mut self, slot: &mut Option<Cow<'a, str>>) -> Option<bool> {
        match self.peek()? {
            b'"' => {
                self.at += 1;
                *slot = Some(Cow::Borrowed(self.string_rest()?));
                Some(true)
            }
            b'n' => self.null(),
            _ => None,
        }
    }

    /// A number field's value into `slot`, as [`Scanner::text`].
    #[inline]
    fn number(&mut self, slot: &mut Option<Number>) -> Option<bool> {
        match self.peek()? {
            b'0'..=b'9' => {
                *slot = Some(Number::from(self.uint()?));
                Some(true)
            }
            b'n' => self.null(),
            _ => None,
        }
    }

    /// A boolean field's value into `slot`, as [`Scanner::text`].
    #[inline]
    fn flag(&mut self, slot: &mut Option<bool>) -> Option<bool> {
        let value = match self.peek()? {
            b't' => self.literal("true", true)?,
            b'f' => self.literal("false", false)?,
            b'n' => return self.null(),
            _ => return None,
        };
        *slot = Some(value);
        Some(true)
    }

    fn null(&mut self) -> Option<bool> {
        self.literal("null", false)
    }

    /// Any scalar the subset has, read and ignored (an unknown field).
    fn skip_value(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => {
                self.at += 1;
                self.string_rest()?;
            }
            b'0'..=b'9' => {
                self.uint()?;
            }
            b't' => self.literal("true", ())?,
            b'f' => self.literal("false", ())?,
            b'n' => self.literal("null", ())?,
            _ => return None,
        }
        Some(())
    }

    /// A string without escapes or control characters.
    fn string(&mut self) -> Option<&'a str> {
        self.expect(b'"')?;
        self.string_rest()
    }

    /// The rest of a string whose opening quote was consumed.
    #[inline]
    fn string_rest(&mut self) -> Option<&'a str> {
        let start = self.at;
        let mut end = start;
        // Eight bytes at a time while they last, then byte by byte.
        while let Some(word) = word_at(self.bytes, end) {
            let found = specials(word);
            if found != 0 {
                end += (found.trailing_zeros() / 8) as usize;
                return self.close_string(start, end);
            }
            end += 8;
        }
        while !matches!(*self.bytes.get(end)?, b'"' | b'\\' | 0..=0x1f) {
            end += 1;
        }
        self.close_string(start, end)
    }

    /// Ends the string at `end`, which holds a special byte: a quote ends
    /// it, an escape or control character is outside the subset.
    #[inline]
    fn close_string(&mut self, start: usize, end: usize) -> Option<&'a str> {
        if self.bytes.get(end) != Some(&b'"') {
            return None;
        }
        self.at = end + 1;
        // Both ends sit next to an ASCII quote: char boundaries.
        self.text.get(start..end)
    }

    /// A non-negative integer that fits u64, as JSON spells it (no leading
    /// zero); floats, negatives and numbers of 20 digits or more are left
    /// to serde.
    #[inline]
    fn uint(&mut self) -> Option<u64> {
        // Most numbers end within the word they start in: read at once.
        if let Some(word) = word_at(self.bytes, self.at) {
            let values = word ^ ZEROS;
            let count = leading_digits(values);
            if (1..8).contains(&count) {
                self.at += count;
                let next = Some((word >> (8 * count)) as u8);
                return plain_uint(first_digits(values, count), count, word as u8, next);
            }
        }
        self.long_uint()
    }

    /// [`Scanner::uint`] for numbers of eight digits or more, or near the
    /// end of the body.
    #[inline(never)]
    fn long_uint(&mut self) -> Option<u64> {
        let bytes = self.bytes;
        let start = self.at;
        let mut at = start;
        let mut n: u64 = 0;
        // A word at a time while there are eight bytes (a millisecond time
        // has 13 digits); the loop yields the byte after the digits, if any.
        let next = loop {
            let Some(word) = word_at(bytes, at) else {
                // Fewer than eight bytes left: one by one.
                while let Some(&b) = bytes.get(at) {
                    let digit = b.wrapping_sub(b'0');
                    if digit > 9 {
                        break;
                    }
                    n = n.wrapping_mul(10).wrapping_add(u64::from(digit));
                    at += 1;
                }
                break bytes.get(at).copied();
            };
            let values = word ^ ZEROS;
            let count = leading_digits(values);
            if count > 0 {
                // Wrapping: past 19 digits the number is refused anyway.
                n = n
                    .wrapping_mul(POWERS_OF_TEN[count])
                    .wrapping_add(first_digits(values, count));
            }
            at += count;
            if count < 8 {
                break Some((word >> (8 * count)) as u8);
            }
        };
        self.at = at;
        let first = bytes.get(start).copied().unwrap_or(0);
        plain_uint(n, at - start, first, next)
    }

    fn literal<T>(&mut self, word: &str, value: T) -> Option<T> {
        let end = self.at + word.len();
        (self.bytes.get(self.at..end)? == word.as_bytes()).then(|| {
            self.at = end;
            value
        })
    }
}

/// `n`, read from `digits` digits starting with `first` and followed by
/// `next`, if JSON spells it as the subset's plain integer: no leading zero,
/// no fraction or exponent, and at most 19 digits (which cannot overflow).
#[inline]
fn plain_uint(n: u64, digits: usize, first: u8, next: Option<u8>) -> Option<u64> {
    let leading_zero = digits > 1 && first == b'0';
    let continues = matches!(next, Some(b'.' | b'e' | b'E'));
    (digits <= 19 && !leading_zero && !continues).then_some(n)
}

/// Not a field of [`RawEvent`]: ignored, as serde does (its value is a
/// scalar here: nested values stopped the scan).
const UNKNOWN: u8 = u8::MAX;

/// A bit per field number.
type FieldSet = u64;

macro_rules! fields {
    (
        { $($number:literal $key:literal => $kind:ident($field:ident),)* }
        $($name:ident: $ty:ty = $max:expr, $doc:literal;)*
    ) => {
        /// Every field's JSON name and quote; its index is the field's
        /// number: the numbered fields, then the integer fields in table order.
        const KEYS: &[Key] = &[$(Key::new($key),)* $(Key::new(stringify!($name)),)*];

        /// The first integer field's number.
        const FIRST_INTEGER: u8 = [$($number),*].len() as u8;

        const _: () = assert!(KEYS.len() <= FieldSet::BITS as usize, "a FieldSet bit per field");

        #[cfg(test)]
        const NAMES: &[&str] = &[$($key,)* $(stringify!($name),)*];

        /// The number of the field named `key`, or [`UNKNOWN`].
        fn field_of(key: &str) -> u8 {
            match key {
                $($key => $number,)*
                _ => {
                    let mut number = FIRST_INTEGER;
                    $(
                        if key == stringify!($name) {
                            return number;
                        }
                        number += 1;
                    )*
                    let _ = number;
                    UNKNOWN
                }
            }
        }

        /// Gives the fields in `set` their values in `from` again.
        #[inline]
        fn restore<'a>(raw: &mut RawEvent<'a>, from: &RawEvent<'a>, mut set: FieldSet) {
            while set != 0 {
                let field = set.trailing_zeros() as u8;
                match field {
                    $($number => raw.$field.clone_from(&from.$field),)*
                    _ => {
                        let mut number = FIRST_INTEGER;
                        $(
                            if field == number {
                                raw.$name = from.$name.clone();
                            }
                            number += 1;
                        )*
                        let _ = number;
                    }
                }
                set &= set - 1;
            }
        }

        /// Reads field number `field`'s value into `raw`: whether it was
        /// written (not `null`); `None` for a type the field cannot hold.
        #[inline]
        fn read<'a>(s: &mut Scanner<'a>, raw: &mut RawEvent<'a>, field: u8) -> Option<bool> {
            match field {
                $($number => s.$kind(&mut raw.$field),)*
                _ => {
                    let mut number = FIRST_INTEGER;
                    $(
                        if field == number {
                            return s.number(&mut raw.$name);
                        }
                        number += 1;
                    )*
                    let _ = number;
                    Some(false)
                }
            }
        }
    };
}

integer_fields!(fields! {
    0 "view_id" => text(view_id),
    1 "seq" => number(seq),
    2 "event" => text(event),
    3 "ts" => number(ts),
    4 "view_start" => number(view_start),
    5 "viewer_id" => text(viewer_id),
    6 "video_id" => text(video_id),
    7 "video_title" => text(video_title),
    8 "stream_type" => text(stream_type),
    9 "player_name" => text(player_name),
    10 "player_version" => text(player_version),
    11 "autoplay" => flag(autoplay),
    12 "cdn" => text(cdn),
    13 "state" => text(state),
    14 "play_requested" => flag(play_requested),
    15 "startup_time_ms" => number(startup_time_ms),
    16 "error_code" => text(error_code),
    17 "error_message" => text(error_message),
    18 "error_fatal" => flag(error_fatal),
});

#[cfg(test)]
mod tests;
