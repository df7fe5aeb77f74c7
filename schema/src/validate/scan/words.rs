//! Bit tricks on eight bytes at a time, for the scanner: finding the end of
//! a string, counting and summing digits, and checking a predicted key.
//! Words are loaded little-endian, so the first byte is the lowest.

/// The eight bytes at `at`, little-endian, if there are eight.
#[inline]
pub(super) fn word_at(bytes: &[u8], at: usize) -> Option<u64> {
    let chunk = bytes.get(at..at.checked_add(8)?)?;
    let mut word = [0u8; 8];
    word.copy_from_slice(chunk);
    Some(u64::from_le_bytes(word))
}

/// `'0'` in every byte: a word XOR this holds each digit's value.
pub(super) const ZEROS: u64 = 0x3030_3030_3030_3030;
const HIGH: u64 = 0x8080_8080_8080_8080;
pub(super) const POWERS_OF_TEN: [u64; 9] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
];

/// How many of the eight bytes of `values` (a word XOR [`ZEROS`]) are
/// digits before the first that is not, 0 to 8. A digit's byte is 0..=9;
/// with its high bit set first, subtracting 10 cannot borrow from the next
/// byte, and it leaves the high bit set exactly when the low seven bits
/// are 10 or more.
#[inline]
pub(super) fn leading_digits(values: u64) -> usize {
    let at_least_ten = (values | HIGH).wrapping_sub(0x0A0A_0A0A_0A0A_0A0A);
    let not_digit = (at_least_ten | values) & HIGH;
    (not_digit.trailing_zeros() / 8) as usize
}

/// The number the first `count` (1 to 8) digit values of `values` spell:
/// moved to the top of the word, with zeros (leading zero digits) below.
#[inline]
pub(super) fn first_digits(values: u64, count: usize) -> u64 {
    digits_value(values << (64 - 8 * count))
}

/// The number eight digit values spell, the first (most significant) in
/// the lowest byte: pairs, then quads, then all eight combined in
/// parallel.
#[inline]
fn digits_value(v: u64) -> u64 {
    let v = (v.wrapping_mul(10) + (v >> 8)) & 0x00FF_00FF_00FF_00FF;
    let v = (v.wrapping_mul(100) + (v >> 16)) & 0x0000_FFFF_0000_FFFF;
    (v.wrapping_mul(10_000) + (v >> 32)) & 0xFFFF_FFFF
}

/// A field name with its closing quote and colon (`name":`), as
/// little-endian words and the mask of the bytes that count in each, so
/// that the predicted key is checked with at most three word comparisons.
pub(super) struct Key {
    words: [u64; 3],
    masks: [u64; 3],
    /// Length with the quote and colon.
    pub(super) len: usize,
}

impl Key {
    pub(super) const fn new(name: &str) -> Key {
        let name = name.as_bytes();
        let len = name.len() + 2;
        let mut words = [0u64; 3];
        let mut masks = [0u64; 3];
        let mut i = 0;
        while i < len {
            let byte = if i < name.len() {
                name[i]
            } else if i == name.len() {
                b'"'
            } else {
                b':'
            };
            words[i / 8] |= (byte as u64) << (8 * (i % 8));
            masks[i / 8] |= 0xFF << (8 * (i % 8));
            i += 1;
        }
        Key { words, masks, len }
    }

    /// Whether `bytes[at..]` starts with the key, its quote and colon.
    /// (Near the end of the body there may be no whole word to load: the
    /// slow path then reads the key.)
    #[inline]
    pub(super) fn is_at(&self, bytes: &[u8], at: usize) -> bool {
        let mut offset = at;
        for (&want, &mask) in self.words.iter().zip(&self.masks) {
            if mask == 0 {
                break;
            }
            match word_at(bytes, offset) {
                Some(have) if (have ^ want) & mask == 0 => offset += 8,
                _ => return false,
            }
        }
        true
    }
}

/// The high bit of each byte of the result is set where `word` has a quote,
/// a backslash or a control character. Borrows only run upwards, so the
/// lowest set bit is exact (higher ones may not be).
#[inline]
pub(super) fn specials(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    let quote = word ^ (ONES * u64::from(b'"'));
    let backslash = word ^ (ONES * u64::from(b'\\'));
    let zero_byte = |w: u64| w.wrapping_sub(ONES) & !w;
    (zero_byte(quote) | zero_byte(backslash) | (word.wrapping_sub(ONES * 0x20) & !word)) & HIGH
}
