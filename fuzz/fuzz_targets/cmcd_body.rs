//! A CMCD v2 event-mode body, as the collector decodes it (after any
//! gzip): any bytes give reports or a named refusal, never a panic; and
//! each line the hand scan reads, it reads as `sfv` does.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qoe_schema::cmcd::{decode, scan_agrees_with_sfv};
use qoe_schema::validate::Checks;

fuzz_target!(|body: &[u8]| {
    let _ = decode(body, &Checks::at(1_795_951_800_000));
    if let Ok(text) = std::str::from_utf8(body) {
        for line in text.lines() {
            assert!(scan_agrees_with_sfv(line), "{line:?}");
        }
    }
});
