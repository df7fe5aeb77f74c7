//! A beacon body, as the collector decodes it (after any gzip): any bytes
//! give events or a named refusal, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qoe_schema::validate::{decode, Checks};

fuzz_target!(|body: &[u8]| {
    let _ = decode(body, &Checks::at(1_795_000_000_000));
});
