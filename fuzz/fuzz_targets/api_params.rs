//! An api query string: any text gives parameters or a 400 naming the
//! problem, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qoe_api::params;

fuzz_target!(|query: &[u8]| {
    let Ok(query) = std::str::from_utf8(query) else {
        return;
    };
    if let Ok(pairs) = params::pairs(query) {
        if let Ok(common) = params::common(&pairs, 1_795_000_000, 90 * 86_400) {
            let _ = params::step(&pairs, common.range);
        }
        let _ = params::listing(&pairs);
        let _ = params::paging(&pairs);
    }
});
