//! A Kafka record as the processor decodes it: any bytes give a record or
//! an error, and a record decoded encodes back to the same record.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qoe_schema::record::Record;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(record) = Record::decode(bytes) {
        let mut encoded = Vec::new();
        record.encode_into(&mut encoded);
        let again = Record::decode(&encoded).expect("an encoded record decodes");
        assert_eq!(again, record);
    }
});
