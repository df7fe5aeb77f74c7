//! A mux-embed body, as the collector decodes it: any bytes give events or
//! a named refusal, never a panic; every accepted event keeps at most
//! `MAX_KEYS` keys, and travels through a Kafka record unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qoe_schema::mux::{decode, MAX_KEYS, MAX_VALUE_BYTES};
use qoe_schema::record::{Enrichment, Record, Source};
use qoe_schema::validate::Checks;

fuzz_target!(|body: &[u8]| {
    let Ok(body) = decode(body, &Checks::at(1_796_017_700_000)) else {
        return;
    };
    for e in body.decoded.accepted {
        assert!(e.extra.len() <= MAX_KEYS);
        assert!(e.extra.iter().all(|(_, v)| v.len() <= MAX_VALUE_BYTES));
        let record = Record {
            property_id: "p".into(),
            received_at_ms: 1,
            enrichment: Enrichment {
                source: Source::MuxEmbed,
                ..Enrichment::default()
            },
            events: vec![e],
        };
        let mut encoded = Vec::new();
        record.encode_into(&mut encoded);
        assert_eq!(Record::decode(&encoded).ok(), Some(record));
    }
});
