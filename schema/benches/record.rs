//! The Kafka record's hot path, per heartbeat: the collector encodes it, the
//! processor decodes it and encodes its `heartbeats_local` RowBinary row.
//! The version-1 JSON form and the `HeartbeatRow` build it replaced are the
//! same-run references. Run: `cargo bench -p qoe-schema --bench record`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use qoe_schema::record::{Enrichment, Heartbeat, Record};
use qoe_schema::rows::{write_row_binary, HeartbeatRow};
use qoe_schema::sample;

fn heartbeat() -> Heartbeat {
    let enrichment = Enrichment {
        country: "US".into(),
        asn: 15169,
        os: "Windows 10".into(),
        browser: "Chrome".into(),
        device_type: "desktop".into(),
        ..Enrichment::default()
    };
    let event = sample::event("0b5c2f1e-7d3a-4c41-9e2b-000000000001", 7);
    Heartbeat::new("property-1".into(), sample::NOW_MS, enrichment, event)
}

fn bench(c: &mut Criterion) {
    let hb = heartbeat();
    let encoded = hb.encode();
    let mut group = c.benchmark_group("record");
    group.throughput(Throughput::Elements(1));
    let json = hb.encode_json();
    let mut buf = Vec::with_capacity(1024);
    group.bench_function("encode_binary", |b| {
        b.iter(|| {
            buf.clear();
            buf.extend_from_slice(&std::hint::black_box(&hb).encode());
            buf.len()
        })
    });
    group.bench_function("encode_json_v1", |b| {
        b.iter(|| std::hint::black_box(&hb).encode_json())
    });
    group.bench_function("decode_binary", |b| {
        b.iter(|| Record::decode(std::hint::black_box(&encoded)).expect("decodes"))
    });
    group.bench_function("decode_json_v1", |b| {
        b.iter(|| Record::decode(std::hint::black_box(&json)).expect("decodes"))
    });
    let record = Record::from(hb.clone());
    group.bench_function("row_binary", |b| {
        b.iter(|| {
            buf.clear();
            let r = std::hint::black_box(&record);
            write_row_binary(r, &r.events[0], &mut buf);
            buf.len()
        })
    });
    group.bench_function("heartbeat_row_build", |b| {
        b.iter(|| HeartbeatRow::from(std::hint::black_box(&hb)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
