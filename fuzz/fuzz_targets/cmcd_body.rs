//! A CMCD v2 event-mode body, as the collector decodes it (after any
//! gzip): any bytes give reports or a named refusal, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qoe_schema::cmcd::decode;
use qoe_schema::validate::Checks;

fuzz_target!(|body: &[u8]| {
    let _ = decode(body, &Checks::at(1_795_951_800_000));
});
