//! The keys a CMCD report line is read for, and their values.
//!
//! Players send one form: `key=value` members joined by `,`, values plain
//! integers, strings without escapes, tokens, or inner lists of those
//! (`br=(4500)`). [`Keys::read_line`] scans that form by hand, in place in
//! the body, finding each line's end as it goes (a 20-report batch decodes
//! 3 to 5 times as fast as through `sfv` alone: `docs/benchmarks.md`);
//! anything else (parameters, decimals, escapes, booleans, byte sequences,
//! and every syntax error) goes to `sfv`'s full RFC 8941 parser, which
//! reads it or says what is wrong. For every line the scan accepts, `sfv`
//! reads the same values (property tests and the `cmcd_body` fuzz target
//! check).

use std::borrow::Cow;
use std::convert::Infallible;

use sfv::visitor::{
    DictionaryVisitor, EntryVisitor, Ignored, InnerListVisitor, ItemVisitor, ParameterVisitor,
};
use sfv::{BareItemFromInput, KeyRef, Parser};

use super::refuse;
use crate::validate::{Reason, Rejection};

/// The keys a report is read for; every other key is parsed (so a line
/// must be a valid dictionary) and dropped.
const KEYS: [&str; 11] = [
    "sid", "cid", "e", "sn", "ts", "sta", "st", "cdn", "ec", "br", "bl",
];

/// A value as far as reports are concerned.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Value<'de> {
    Integer(i64),
    Decimal(f64),
    /// Borrowed from the line unless it had escapes.
    String(Cow<'de, str>),
    Token(&'de str),
    /// A boolean, byte sequence, date or display string: no CMCD key this
    /// pipeline reads has one.
    Other,
}

/// One report's wanted keys, their values borrowed from the line. CMCD v2
/// sends some keys as inner lists (`br=(4500)`, `ec=("E1")`, one value per
/// media type); the first value is the one used.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Keys<'de>([Option<Value<'de>>; KEYS.len()]);

impl<'de> Keys<'de> {
    /// Reads the report line of `text` that starts at byte `at` (no blank
    /// before it) into `self`: returns the line without its line break and
    /// the whitespace before it, whether it is an RFC 8941 dictionary (or
    /// why not), and where the next line starts. One pass over the line in
    /// the common form: the scan finds its end. `self` is reused from line
    /// to line rather than moved (it is a few hundred bytes).
    pub(super) fn read_line(
        &mut self,
        text: &'de str,
        at: usize,
    ) -> (&'de str, Result<(), sfv::Error>, usize) {
        self.0.iter_mut().for_each(|v| *v = None);
        if let Some(end) = scan_at(text, at, self) {
            return (&text[at..end], Ok(()), end);
        }
        let end = text[at..].find('\n').map_or(text.len(), |n| at + n);
        let line = text[at..end].trim_end_matches([' ', '\t', '\r']);
        let parsed = parse_with_sfv(line).map(|keys| *self = keys);
        (line, parsed, end)
    }

    #[inline(always)]
    fn slot(key: &str) -> Option<usize> {
        // Every wanted key has 1 to 3 bytes. With a literal key (the
        // accessors below) this folds to a constant.
        if key.len() > 3 {
            return None;
        }
        Keys::slot_of_packed(pack(key.as_bytes()))
    }

    /// The slot of a key of at most 3 bytes, packed by [`pack`]: one
    /// comparison each (this runs for every key of a line).
    #[inline]
    fn slot_of_packed(packed: u32) -> Option<usize> {
        const SID: u32 = pack(b"sid");
        const CID: u32 = pack(b"cid");
        const E: u32 = pack(b"e");
        const SN: u32 = pack(b"sn");
        const TS: u32 = pack(b"ts");
        const STA: u32 = pack(b"sta");
        const ST: u32 = pack(b"st");
        const CDN: u32 = pack(b"cdn");
        const EC: u32 = pack(b"ec");
        const BR: u32 = pack(b"br");
        const BL: u32 = pack(b"bl");
        Some(match packed {
            SID => 0,
            CID => 1,
            E => 2,
            SN => 3,
            TS => 4,
            STA => 5,
            ST => 6,
            CDN => 7,
            EC => 8,
            BR => 9,
            BL => 10,
            _ => return None,
        })
    }

    #[inline(always)]
    fn first(&self, key: &str) -> Option<&Value<'de>> {
        self.0[Keys::slot(key)?].as_ref()
    }

    fn wrong(key: &str, what: &str) -> Rejection {
        refuse(Reason::InvalidType, key, format!("`{key}` must be {what}"))
    }

    #[inline(always)]
    pub(super) fn string(&self, key: &str) -> Result<Option<&str>, Rejection> {
        match self.first(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(Keys::wrong(key, "a string")),
        }
    }

    /// A string, token or number as text (`ec` is a string list in the
    /// specification; dash.js sends its numeric error codes).
    #[inline(always)]
    pub(super) fn text(&self, key: &str) -> Result<Option<String>, Rejection> {
        match self.first(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.to_string())),
            Some(Value::Token(t)) => Ok(Some(t.to_string())),
            Some(Value::Integer(i)) => Ok(Some(i.to_string())),
            Some(_) => Err(Keys::wrong(key, "a string, token or integer")),
        }
    }

    #[inline(always)]
    pub(super) fn token(&self, key: &str) -> Result<Option<&str>, Rejection> {
        match self.first(key) {
            None => Ok(None),
            Some(Value::Token(t)) => Ok(Some(t)),
            Some(_) => Err(Keys::wrong(key, "a token")),
        }
    }

    /// A non-negative integer up to `max` (decimals are rounded: some
    /// players send fractional kbit/s).
    #[inline(always)]
    pub(super) fn integer(&self, key: &str, max: u64) -> Result<Option<u64>, Rejection> {
        let v = match self.first(key) {
            None => return Ok(None),
            Some(&Value::Integer(i)) => u64::try_from(i).ok().filter(|&v| v <= max),
            Some(&Value::Decimal(d)) => {
                (d >= 0.0 && d.round() <= max as f64).then(|| d.round() as u64)
            }
            Some(_) => return Err(Keys::wrong(key, "a number")),
        };
        match v {
            Some(v) => Ok(Some(v)),
            None => Err(refuse(
                Reason::OutOfRange,
                key,
                format!("`{key}` must be between 0 and {max}"),
            )),
        }
    }
}

/// Up to the first 4 bytes of `key`, big-endian, in a `u32` (distinct for
/// distinct keys of at most 3 bytes: none has a NUL).
const fn pack(key: &[u8]) -> u32 {
    let mut k = 0u32;
    let mut i = 0;
    while i < key.len() && i < 4 {
        k = k << 8 | key[i] as u32;
        i += 1;
    }
    k
}

// ------------------------------------------------------------ the scan --

/// The common form read by hand; `None` for anything it does not cover,
/// valid or not.
fn scan(line: &str) -> Option<Keys<'_>> {
    let mut keys = Keys::default();
    (scan_at(line, 0, &mut keys)? == line.len()).then_some(keys)
}

/// [`scan`] of the line of `text` from byte `i` into `keys` (all `None`
/// before): where the line ends (before the whitespace and line break that
/// end it, or the text's end). On `None`, `keys` holds some of the line.
fn scan_at<'de>(line: &'de str, mut i: usize, keys: &mut Keys<'de>) -> Option<usize> {
    let b = line.as_bytes();
    loop {
        // key = ( lcalpha / "*" ) *( lcalpha / DIGIT / "_" / "-" / "." / "*" )
        // packed as it is read (see `pack`).
        let start = i;
        let mut packed = match b.get(i) {
            Some(&c) if c.is_ascii_lowercase() || c == b'*' => u32::from(c),
            _ => return None,
        };
        i += 1;
        while let Some(&c) = b.get(i) {
            if CLASS[c as usize] & KEY == 0 {
                break;
            }
            packed = packed << 8 | u32::from(c);
            i += 1;
        }
        let slot = match i - start {
            1..=3 => Keys::slot_of_packed(packed),
            _ => None,
        };
        let value = match b.get(i) {
            Some(b'=') if b.get(i + 1) == Some(&b'(') => {
                let (first, next) = inner_list(line, i + 2)?;
                i = next;
                first
            }
            Some(b'=') => {
                let (v, next) = item(line, i + 1)?;
                i = next;
                Some(v)
            }
            // A bare key is boolean true.
            _ => Some(Value::Other),
        };
        if b.get(i) == Some(&b';') {
            return None; // parameters
        }
        // A repeated key: the last one counts (RFC 8941).
        if let Some(s) = slot {
            keys.0[s] = value;
        }
        let end = i;
        i = skip_ows(b, i);
        match b.get(i) {
            None | Some(b'\n') => return Some(end),
            // A CR ends a line only before its LF (or the text's end).
            Some(b'\r') if matches!(b.get(i + 1), None | Some(b'\n')) => return Some(end),
            Some(b',') => {
                i = skip_ows(b, i + 1);
                if i == b.len() {
                    return None; // a trailing comma
                }
            }
            Some(_) => return None,
        }
    }
}

fn skip_ows(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t')) {
        i += 1;
    }
    i
}

/// An inner list's first item (`None` when empty) and the index after `)`,
/// from just after `(`.
fn inner_list(line: &str, mut i: usize) -> Option<(Option<Value<'_>>, usize)> {
    let b = line.as_bytes();
    let mut first = None;
    loop {
        while b.get(i) == Some(&b' ') {
            i += 1;
        }
        if b.get(i) == Some(&b')') {
            return Some((first, i + 1));
        }
        let (v, next) = item(line, i)?;
        first.get_or_insert(v);
        i = next;
        // Items are separated by spaces; anything else (parameters) is
        // not the common form.
        if !matches!(b.get(i), Some(b' ' | b')')) {
            return None;
        }
    }
}

/// A bare integer, escape-free string or token at `i`, and the index after.
fn item(line: &str, i: usize) -> Option<(Value<'_>, usize)> {
    let b = line.as_bytes();
    match *b.get(i)? {
        b'"' => {
            let len = b[i + 1..]
                .iter()
                .position(|&c| CLASS[c as usize] & STRING == 0)?;
            (b[i + 1 + len] == b'"').then(|| {
                (
                    Value::String(Cow::Borrowed(&line[i + 1..i + 1 + len])),
                    i + len + 2,
                )
            })
        }
        c if c == b'-' || c.is_ascii_digit() => {
            let digits_at = i + usize::from(c == b'-');
            let mut end = digits_at;
            let mut n = 0i64;
            while let Some(&d) = b.get(end) {
                if !d.is_ascii_digit() {
                    break;
                }
                // More than 15 digits: sfv says what is wrong. (A decimal
                // point after the digits ends the scan where the member
                // should end.)
                if end - digits_at == 15 {
                    return None;
                }
                n = n * 10 + i64::from(d - b'0');
                end += 1;
            }
            if end == digits_at {
                return None;
            }
            Some((Value::Integer(if c == b'-' { -n } else { n }), end))
        }
        c if c.is_ascii_alphabetic() || c == b'*' => {
            let len = b[i + 1..]
                .iter()
                .take_while(|&&c| CLASS[c as usize] & TOKEN != 0)
                .count();
            Some((Value::Token(&line[i..i + 1 + len]), i + 1 + len))
        }
        _ => None,
    }
}

/// Byte classes: a key's later characters (lcalpha / DIGIT / "_" / "-" /
/// "." / "*"), a token's (tchar / ":" / "/"), a string's unescaped ones
/// (%x20-21 / %x23-5B / %x5D-7E).
const KEY: u8 = 1;
const TOKEN: u8 = 2;
const STRING: u8 = 4;
const CLASS: [u8; 256] = {
    let mut class = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        if b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.' | b'*') {
            class[c] |= KEY;
        }
        if b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
                    | b':'
                    | b'/'
            )
        {
            class[c] |= TOKEN;
        }
        if b >= 0x20 && b <= 0x7e && b != b'"' && b != b'\\' {
            class[c] |= STRING;
        }
        c += 1;
    }
    class
};

/// Whether the scan, where it reads `line`, reads what `sfv` reads (for
/// the fuzz target: the property tests' check on any input).
#[doc(hidden)]
pub fn scan_agrees_with_sfv(line: &str) -> bool {
    scan(line).is_none_or(|scanned| parse_with_sfv(line).is_ok_and(|parsed| parsed == scanned))
}

// ---------------------------------------------------- the full parser --

fn parse_with_sfv(line: &str) -> Result<Keys<'_>, sfv::Error> {
    Parser::new(line).parse_dictionary_with_visitor(Keys::default())
}

impl<'de> From<BareItemFromInput<'de>> for Value<'de> {
    fn from(item: BareItemFromInput<'de>) -> Value<'de> {
        match item {
            BareItemFromInput::Integer(i) => Value::Integer(i.into()),
            BareItemFromInput::Decimal(d) => Value::Decimal(d.into()),
            BareItemFromInput::String(Cow::Borrowed(s)) => Value::String(Cow::Borrowed(s.as_str())),
            BareItemFromInput::String(Cow::Owned(s)) => {
                Value::String(Cow::Owned(s.as_str().to_owned()))
            }
            BareItemFromInput::Token(t) => Value::Token(t.as_str()),
            _ => Value::Other,
        }
    }
}

impl<'de> DictionaryVisitor<'de> for Keys<'de> {
    type Out = Keys<'de>;
    type Error = Infallible;

    fn entry(&mut self, key: &'de KeyRef) -> Result<impl EntryVisitor<'de>, Self::Error> {
        // A repeated key: the last one counts (RFC 8941), so forget the first.
        Ok(Keys::slot(key.as_str()).map(|i| {
            self.0[i] = None;
            Slot(&mut self.0[i])
        }))
    }

    fn finish(self) -> Result<Self::Out, Self::Error> {
        Ok(self)
    }
}

/// Where a wanted key's first value goes.
struct Slot<'a, 'de>(&'a mut Option<Value<'de>>);

impl<'de> EntryVisitor<'de> for Slot<'_, 'de> {
    type Error = Infallible;

    fn item(self) -> Result<impl ItemVisitor<'de>, Self::Error> {
        Ok(self)
    }

    fn inner_list(self) -> Result<impl InnerListVisitor<'de>, Self::Error> {
        Ok(FirstOf(Some(self)))
    }
}

impl<'de> ItemVisitor<'de> for Slot<'_, 'de> {
    type Out = ();
    type Error = Infallible;

    fn bare_item(
        self,
        value: BareItemFromInput<'de>,
    ) -> Result<impl ParameterVisitor<'de, Out = Self::Out>, Self::Error> {
        *self.0 = Some(value.into());
        Ok(Ignored)
    }
}

/// An inner list whose first item goes to the slot.
struct FirstOf<'a, 'de>(Option<Slot<'a, 'de>>);

impl<'de> InnerListVisitor<'de> for FirstOf<'_, 'de> {
    type Error = Infallible;

    fn item(&mut self) -> Result<impl ItemVisitor<'de>, Self::Error> {
        Ok(self.0.take())
    }

    fn finish(self) -> Result<impl ParameterVisitor<'de>, Self::Error> {
        Ok(Ignored)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// One line's keys, as `decode` reads a body of one line.
    fn parse(line: &str) -> Result<Keys<'_>, sfv::Error> {
        let mut keys = Keys::default();
        keys.read_line(line, 0).1.map(|()| keys)
    }

    /// Where lines end: at LF, after trailing whitespace and a CR; a CR
    /// inside a line is no end (and no valid dictionary).
    #[test]
    fn lines_end_where_decode_splits_them() {
        let text = "e=t,sn=1 \r\ne=t,sn=2\n\ne=t,sn=3\ne=t,\rsn=4\n(bad\r\ne=t";
        let mut at = 0;
        let mut got = Vec::new();
        let mut keys = Keys::default();
        while at < text.len() {
            while matches!(text.as_bytes().get(at), Some(b' ' | b'\t' | b'\r' | b'\n')) {
                at += 1;
            }
            let (line, read, next) = keys.read_line(text, at);
            got.push((line, read.is_ok()));
            at = next;
        }
        assert_eq!(
            got,
            [
                ("e=t,sn=1", true),
                ("e=t,sn=2", true),
                ("e=t,sn=3", true),
                ("e=t,\rsn=4", false),
                ("(bad", false),
                ("e=t", true),
            ]
        );
    }

    #[test]
    fn each_key_has_its_slot() {
        for (i, key) in KEYS.iter().enumerate() {
            assert_eq!(Keys::slot(key), Some(i), "{key}");
        }
        assert_eq!(Keys::slot("mtp"), None);
    }

    /// What players send is read by the scan, not the fallback.
    #[test]
    fn the_players_form_is_scanned() {
        for line in [
            "bl=(31900),br=(0),cid=\"clip-1\",e=ps,mtp=(71000),sf=h,sid=\"11130f20\",sn=6,st=v,sta=r,ts=1795951800694,v=2",
            "sid=\"s\", e=e, ec=(\"MEDIA_ERR\" \"X\"), sn=0, ts=1, bs, cdn=\"a b\", st=ll",
            "br=( 4500  3000 ),sid=\"s\",e=t,sn=1,ts=2,sta=p,sta=a,nor=\"../a/b.m4s\",url=\"http://x/y?z\"",
            "e=c,sid=\"s\",cid=\"c\",sn=3,ts=-5,br=(),ot=v,*custom=tok/en:1",
        ] {
            let scanned = scan(line).unwrap_or_else(|| panic!("not scanned: {line}"));
            assert_eq!(Ok(scanned), parse_with_sfv(line).map_err(|e| e.to_string()), "{line}");
        }
        let k = scan("br=( 4500  3000 ),sta=p,sta=a,cdn=(),sid=\"s\"").expect("scanned");
        assert_eq!(k.first("br"), Some(&Value::Integer(4500)));
        assert_eq!(k.first("sta"), Some(&Value::Token("a")));
        assert_eq!(k.first("cdn"), None);
        assert_eq!(k.first("sid"), Some(&Value::String(Cow::Borrowed("s"))));
    }

    /// What the scan leaves to sfv: valid lines it still reads, and errors.
    #[test]
    fn the_rest_falls_back_to_sfv() {
        let cases = [
            ("br=1.5,sid=\"s\"", Some(Value::Decimal(1.5))),
            ("br=4500;a=1", Some(Value::Integer(4500))),
            ("br=(4500;a=1)", Some(Value::Integer(4500))),
            ("br=(4500);a", Some(Value::Integer(4500))),
            ("br=?0", Some(Value::Other)),
            ("br=:aGk=:", Some(Value::Other)),
            ("br=1234567890123456", None),
            ("br=4500,", None),
            ("Br=4500", None),
            ("br= 4500", None),
            ("br=(4500,3000)", None),
        ];
        for (line, br) in cases {
            assert_eq!(scan(line), None, "{line}");
            let parsed = parse(line);
            match br {
                Some(v) => assert_eq!(parsed.expect(line).first("br"), Some(&v), "{line}"),
                None => assert!(parsed.is_err(), "{line}"),
            }
        }
        let escaped = parse("sid=\"a\\\"b\"").expect("valid");
        assert_eq!(escaped.string("sid"), Ok(Some("a\"b")));
    }

    /// Pieces of lines, valid and not, that the scan must agree with sfv on.
    fn piece() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(KEYS.to_vec()).prop_map(str::to_owned),
            prop::sample::select(vec!["mtp", "v", "*x", "a-b.c_d", "B", "1a", ""])
                .prop_map(str::to_owned),
            prop::sample::select(vec![
                "=", "=", "=(", ")", " ", "  ", "\t", ",", ", ", " ,", ";", ";a=1", "?1", "\"",
                "\\", "\\\"", ".", "-", ":", "/", "@1", "%\"x\"", ":aGk=:", "\u{e9}",
            ])
            .prop_map(str::to_owned),
            (0i64..10_000_000_000_000_000).prop_map(|n| n.to_string()),
            "[a-zA-Z*][a-zA-Z0-9:/!#$%&'*+.^_`|~-]{0,8}",
            "\"[ -~]{0,12}\"",
        ]
    }

    /// A member of the form players send.
    fn member() -> impl Strategy<Value = String> {
        let item = prop_oneof![
            (-999_999_999_999_999i64..1_000_000_000_000_000).prop_map(|n| n.to_string()),
            "\"[ !#-\\[\\]-~]{0,12}\"",
            "[a-zA-Z*][a-zA-Z0-9:/!#$%&'*+.^_`|~-]{0,8}",
        ];
        let value = prop_oneof![
            item.clone(),
            (prop::collection::vec(item, 0..4), " {0,2}", " {1,2}")
                .prop_map(|(items, pad, sep)| format!("({pad}{}{pad})", items.join(&sep))),
        ];
        let key = prop_oneof![
            prop::sample::select(KEYS.to_vec()).prop_map(str::to_owned),
            "[a-z*][a-z0-9_.*-]{0,6}",
        ];
        (key, prop::option::weighted(0.9, value)).prop_map(|(k, v)| match v {
            Some(v) => format!("{k}={v}"),
            None => k,
        })
    }

    proptest! {
        #[test]
        fn the_scan_reads_the_players_form(
            members in prop::collection::vec(member(), 1..16),
            sep in "[ \t]{0,2},[ \t]{0,2}",
        ) {
            let line = members.join(&sep);
            let scanned = scan(&line);
            prop_assert!(scanned.is_some(), "not scanned: {}", line);
            prop_assert_eq!(Ok(scanned.expect("some")), parse_with_sfv(&line).map_err(|e| e.to_string()));
        }

        #[test]
        fn the_scan_reads_what_sfv_reads(pieces in prop::collection::vec(piece(), 0..24)) {
            let line = pieces.concat();
            if let Some(scanned) = scan(&line) {
                prop_assert_eq!(Ok(scanned), parse_with_sfv(&line).map_err(|e| e.to_string()));
            }
        }

        /// The players' form, broken in a few places.
        #[test]
        fn the_scan_reads_what_sfv_reads_of_near_misses(
            members in prop::collection::vec(member(), 1..8),
            edits in prop::collection::vec((any::<prop::sample::Index>(), piece(), any::<bool>()), 1..4),
        ) {
            let mut line = members.join(",");
            for (at, piece, replace) in edits {
                let mut at = at.index(line.len() + 1);
                while !line.is_char_boundary(at) {
                    at -= 1;
                }
                if replace && at < line.len() {
                    let next = line[at..].chars().next().map_or(0, char::len_utf8);
                    line.replace_range(at..at + next, &piece);
                } else {
                    line.insert_str(at, &piece);
                }
            }
            if let Some(scanned) = scan(&line) {
                prop_assert_eq!(Ok(scanned), parse_with_sfv(&line).map_err(|e| e.to_string()), "{}", line);
            }
        }
    }
}
