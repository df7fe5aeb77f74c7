//! Small `.mmdb` files (MaxMind DB format 2.0, IPv4, 24-bit records) that
//! tests build themselves: one /8 network mapped to one record. The
//! enrichment tests never depend on a database fetched from the network.

/// A value of the network's record.
pub enum Value<'a> {
    Str(&'a str),
    U32(u32),
}

/// A database mapping `first_octet.0.0.0/8` to `{key: value}` and every
/// other address to nothing.
pub fn one_network(first_octet: u8, key: &str, value: Value<'_>) -> Vec<u8> {
    // One node per bit of the /8: the bit's side leads on (the last to the
    // data, at offset 0), the other side is empty (= node count).
    let nodes = 8u32;
    let mut db = Vec::new();
    for bit in 0..8 {
        let next = if bit == 7 { nodes + 16 } else { bit + 1 };
        let (left, right) = if first_octet >> (7 - bit) & 1 == 0 {
            (next, nodes)
        } else {
            (nodes, next)
        };
        record(&mut db, left);
        record(&mut db, right);
    }
    db.extend_from_slice(&[0; 16]);
    db.push(0xE1); // a map of one entry
    string(&mut db, key);
    match value {
        Value::Str(s) => string(&mut db, s),
        Value::U32(v) => uint(&mut db, 6, u64::from(v)),
    }
    db.extend_from_slice(b"\xAB\xCD\xEFMaxMind.com");
    db.push(0xE0 | 9); // metadata: a map of nine entries
    for (key, value) in [
        ("binary_format_major_version", 2),
        ("binary_format_minor_version", 0),
        ("ip_version", 4),
        ("record_size", 24),
    ] {
        string(&mut db, key);
        uint(&mut db, 5, value); // uint16
    }
    string(&mut db, "node_count");
    uint(&mut db, 6, u64::from(nodes));
    string(&mut db, "build_epoch");
    db.extend_from_slice(&[0x01, 0x02, 0x01]); // uint64 (extended type 9): 1
    string(&mut db, "database_type");
    string(&mut db, "Test");
    string(&mut db, "languages");
    db.extend_from_slice(&[0x00, 0x04]); // an empty array (extended type 11)
    string(&mut db, "description");
    db.push(0xE0); // an empty map
    db
}

/// [`one_network`] written to a fresh file under the temp directory.
pub fn write(name: &str, first_octet: u8, key: &str, value: Value<'_>) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("{}.mmdb", crate::unique(name)));
    std::fs::write(&path, one_network(first_octet, key, value)).expect("write the test mmdb");
    path
}

fn record(out: &mut Vec<u8>, value: u32) {
    out.extend_from_slice(&value.to_be_bytes()[1..]);
}

fn string(out: &mut Vec<u8>, s: &str) {
    assert!(s.len() < 29, "longer strings need an extended size");
    out.push(0x40 | s.len() as u8);
    out.extend_from_slice(s.as_bytes());
}

fn uint(out: &mut Vec<u8>, kind: u8, v: u64) {
    let bytes = v.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    out.push(kind << 5 | (8 - skip) as u8);
    out.extend_from_slice(&bytes[skip..]);
}
