//! mux-embed's shortened keys, expanded to their full names.
//!
//! The SDK shortens every key it sends: the first word of
//! `view_time_to_first_frame` becomes one letter (`x`), each later word two
//! letters (`ti` `to` `fi` `fr`), so the key travels as `xtitofifr`. A word
//! made of digits stays as it is; a word neither dictionary has is written
//! `_word_` (a first word, `word_`). [`expand`] reverses that with the
//! SDK's own dictionaries ([`words`](super::words)). The SDK's form is
//! ambiguous for an unknown first word that starts with a first word's
//! letter (`flux_` reads as `f`, experiment, then `lu`): such a key does
//! not expand (the decoder keeps it as sent); and two numbers in a row run
//! together (`a00` is `env_00`). The SDK's own keys all start with a known
//! word and have no two numbers in a row.

use super::words::{FIRST_WORDS, LATER_WORDS};

/// Why a key does not expand.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpandError {
    /// Empty, or not made of the SDK's codes.
    #[error("`{key}` is not a mux-embed key: no word for `{code}` at byte {at}")]
    Unknown {
        key: String,
        code: String,
        at: usize,
    },
}

/// The full name of a shortened key: `xtitofifr` → `view_time_to_first_frame`.
pub fn expand(key: &str) -> Result<String, ExpandError> {
    let unknown = |at: usize, len: usize| ExpandError::Unknown {
        key: key.to_owned(),
        code: key
            .get(at..(at + len).min(key.len()))
            .unwrap_or("")
            .to_owned(),
        at,
    };
    let b = key.as_bytes();
    let mut words: Vec<&str> = Vec::with_capacity(b.len() / 2 + 1);
    let mut i = match b.first() {
        None => return Err(unknown(0, 1)),
        Some(&c) => match FIRST_WORDS.iter().find(|(code, _)| *code == c) {
            Some((_, word)) => {
                words.push(word);
                1
            }
            // An unknown first word travels as itself, then `_`.
            None => {
                let end = key
                    .find('_')
                    .filter(|&end| end > 0)
                    .ok_or_else(|| unknown(0, 1))?;
                words.push(&key[..end]);
                end + 1
            }
        },
    };
    while i < b.len() {
        if b[i] == b'_' {
            // `_word_`: a word the dictionary does not have.
            let len = key[i + 1..]
                .find('_')
                .ok_or_else(|| unknown(i, b.len() - i))?;
            words.push(&key[i + 1..i + 1 + len]);
            i += len + 2;
        } else if b[i].is_ascii_digit() {
            let len = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
            words.push(&key[i..i + len]);
            i += len;
        } else {
            let (_, word) = key
                .get(i..i + 2)
                .and_then(|code| LATER_WORDS.iter().find(|(c, _)| *c == code))
                .ok_or_else(|| unknown(i, 2))?;
            words.push(word);
            i += 2;
        }
    }
    Ok(words.join("_"))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The keys of the capture of mux-embed 5.19.0 in Chromium.
    #[test]
    fn the_captured_keys() {
        let cases = [
            ("e", "event"),
            ("xid", "view_id"),
            ("xsqno", "view_sequence_number"),
            ("psqno", "player_sequence_number"),
            ("ake", "env_key"),
            ("pinid", "player_instance_id"),
            ("vid", "video_id"),
            ("vtt", "video_title"),
            ("vsmty", "video_stream_type"),
            ("pnm", "player_name"),
            ("psw", "player_software"),
            ("uti", "viewer_time"),
            ("pphti", "player_playhead_time"),
            ("xpntimscv", "view_playing_time_ms_cumulative"),
            ("xwati", "view_watch_time"),
            ("xtitofifr", "view_time_to_first_frame"),
            ("xagsuti", "view_aggregate_startup_time"),
            ("vsodu", "video_source_duration"),
            ("vsour", "video_source_url"),
            ("pwd", "player_width"),
            ("pht", "player_height"),
            ("mem", "mux_embed"),
            ("memve", "mux_embed_version"),
        ];
        for (short, full) in cases {
            assert_eq!(expand(short).as_deref(), Ok(full), "{short}");
        }
    }

    #[test]
    fn digits_and_unknown_words() {
        assert_eq!(expand("c1").as_deref(), Ok("custom_1"));
        assert_eq!(expand("xer12cd").as_deref(), Ok("view_error_12_code"));
        assert_eq!(expand("x_flux_id").as_deref(), Ok("view_flux_id"));
        assert_eq!(expand("glux_caid").as_deref(), Ok("glux_cached_id"));
        assert!(expand("flux_caid").is_err(), "`f` is experiment");
    }

    #[test]
    fn what_is_not_a_key_is_named() {
        for (key, code, at) in [
            ("", "", 0),
            ("zq", "z", 0),
            ("xqq", "qq", 1),
            ("xi", "i", 1),
            ("x_open", "_open", 1),
            ("_x", "_", 0),
        ] {
            assert_eq!(
                expand(key),
                Err(ExpandError::Unknown {
                    key: key.into(),
                    code: code.into(),
                    at
                }),
                "{key}"
            );
        }
    }

    #[test]
    fn the_dictionaries_are_unambiguous() {
        let mut codes: Vec<&str> = LATER_WORDS.iter().map(|(c, _)| *c).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), LATER_WORDS.len());
        assert!(codes
            .iter()
            .all(|c| c.len() == 2 && c.bytes().all(|b| b.is_ascii_lowercase())));
        assert!(FIRST_WORDS.iter().all(|(c, _)| c.is_ascii_lowercase()));
    }

    /// The SDK's shortening (`dist/mux.js`), to test against.
    fn shorten(words: &[String]) -> String {
        let mut out = match FIRST_WORDS.iter().find(|(_, w)| *w == words[0]) {
            Some((c, _)) => (*c as char).to_string(),
            None => format!("{}_", words[0]),
        };
        for word in &words[1..] {
            match LATER_WORDS.iter().find(|(_, w)| w == word) {
                Some((c, _)) => out.push_str(c),
                None if word.bytes().all(|b| b.is_ascii_digit()) => out.push_str(word),
                None => out.push_str(&format!("_{word}_")),
            }
        }
        out
    }

    fn word() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => prop::sample::select(LATER_WORDS.to_vec()).prop_map(|(_, w)| w.to_owned()),
            1 => "[0-9]{1,4}",
            1 => "[a-z]{2,8}",
        ]
    }

    fn first_word() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => prop::sample::select(FIRST_WORDS.to_vec()).prop_map(|(_, w)| w.to_owned()),
            // Not starting with a first word's letter (see the module doc).
            1 => "[ghjklz][a-z]{1,7}",
        ]
    }

    proptest! {
        #[test]
        fn expand_reverses_the_sdk(first in first_word(), rest in prop::collection::vec(word(), 0..6)) {
            let words: Vec<String> = std::iter::once(first).chain(rest).collect();
            // Two numbers in a row run together in the SDK's form.
            let number = |w: &String| w.bytes().all(|b| b.is_ascii_digit());
            prop_assume!(!words.windows(2).any(|p| number(&p[0]) && number(&p[1])));
            let short = shorten(&words);
            prop_assert_eq!(expand(&short), Ok(words.join("_")), "{}", short);
        }

        #[test]
        fn any_text_expands_or_is_named(key in "\\PC{0,16}") {
            let _ = expand(&key);
        }
    }
}
