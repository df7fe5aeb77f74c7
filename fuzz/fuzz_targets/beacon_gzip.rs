//! A gzip-encoded beacon body: inflated within the limit (a bomb stops
//! there), then decoded; never a panic, never more than the limit held.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qoe_collector::ingest::gunzip;
use qoe_schema::validate::{decode, Checks};

const LIMIT: usize = 1 << 20;

fuzz_target!(|body: &[u8]| {
    if let Ok(inflated) = gunzip(body, LIMIT) {
        assert!(inflated.len() <= LIMIT);
        let _ = decode(&inflated, &Checks::at(1_795_000_000_000));
    }
});
