use super::*;

#[test]
fn field_numbers_and_keys_agree() {
    assert_eq!(NAMES.len(), KEYS.len());
    for (number, (name, key)) in NAMES.iter().zip(KEYS).enumerate() {
        assert_eq!(usize::from(field_of(name)), number, "{name}");
        let padded = format!("{name}\":1,\"x\":2,\"yyyyyyyyyyyyyyyyyyyy\"");
        assert!(key.is_at(padded.as_bytes(), 0), "{name}");
        assert_eq!(key.len, name.len() + 2, "{name}");
        // One byte off anywhere in the name, its quote or colon: no match.
        for i in 0..key.len {
            let mut wrong = padded.clone().into_bytes();
            wrong[i] ^= 0x01;
            assert!(!key.is_at(&wrong, 0), "{name} at {i}");
        }
        // Whitespace before the colon is JSON too, left to the slow path.
        let spaced = format!("{name}\" :1,\"x\":2,\"yyyyyyyyyyyyyyyyyyyy\"");
        assert!(!key.is_at(spaced.as_bytes(), 0), "{name}");
    }
}

#[test]
fn numbers_a_word_at_a_time() {
    // Every length from 1 to 19 digits, ending inside a word, at its
    // end, and with fewer than eight bytes left.
    let mut n = 0u64;
    for digits in 1..=19u32 {
        n = n * 10 + u64::from(digits % 10);
        for tail in ["", ",", "}", ",\"padding\":1234567}"] {
            let text = format!("{n}{tail}");
            let mut s = Scanner::new(&text, [[UNKNOWN; ORDER_LEN]; KINDS]);
            assert_eq!(s.uint(), Some(n), "{text}");
            assert_eq!(s.at, digits as usize, "{text}");
        }
    }
    // Each refusal alone (fewer than eight bytes: read byte by byte) and
    // followed by more body (read a word at a time).
    for refused in [
        "01",
        "12345678901234567890",
        "1.5",
        "7e3",
        "2E1",
        "00000000,",
        "01,\"padding\":1",
        "1.5,\"padding\":1",
        "7e3,\"padding\":1",
        "1234567.5,\"padding\":1",
        "123456789e1,\"padding\":1",
    ] {
        let mut s = Scanner::new(refused, [[UNKNOWN; ORDER_LEN]; KINDS]);
        assert_eq!(s.uint(), None, "{refused}");
    }
    for (word, count) in [
        (*b"1234567:", 7),
        (*b"/1234567", 0),
        (*b"12345678", 8),
        (*b"9\xff000000", 1),
    ] {
        assert_eq!(leading_digits(u64::from_le_bytes(word) ^ ZEROS), count);
    }
    assert_eq!(
        leading_digits(u64::from_le_bytes(*b"0\x80\xb0\xb9:;@@") ^ ZEROS),
        1
    );
}
