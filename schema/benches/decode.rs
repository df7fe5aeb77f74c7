//! Decode + validate throughput of SDK beacons: one event; 20 full events of
//! 20 views; and an SDK-shaped batch (one view's 20 events, shared fields in
//! `metadata`); and of CMCD v2 reports, one and 20 (hls.js's keys). Run:
//! `cargo bench -p qoe-schema --bench decode`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use qoe_schema::validate::{decode, Checks};
use qoe_schema::{cmcd, sample};

fn bench(c: &mut Criterion) {
    let checks = Checks::at(sample::NOW_MS);
    let mut group = c.benchmark_group("decode_validate");
    let single = sample::single_body();
    group.throughput(Throughput::Elements(1));
    group.bench_function("single_event", |b| {
        b.iter(|| decode(std::hint::black_box(&single), &checks).expect("valid"))
    });
    let batch = sample::batch_body(20);
    group.throughput(Throughput::Elements(20));
    group.bench_function("batch_20_events", |b| {
        b.iter(|| decode(std::hint::black_box(&batch), &checks).expect("valid"))
    });
    // What an SDK actually posts: one view's events, shared fields in metadata.
    let sdk = sample::sdk_batch_body(20);
    assert_eq!(decode(&sdk, &checks).expect("valid").accepted.len(), 20);
    group.bench_function("sdk_batch_20_events", |b| {
        b.iter(|| decode(std::hint::black_box(&sdk), &checks).expect("valid"))
    });
    let cmcd_single = sample::cmcd_batch_body(1);
    group.throughput(Throughput::Elements(1));
    group.bench_function("cmcd_single_report", |b| {
        b.iter(|| cmcd::decode(std::hint::black_box(&cmcd_single), &checks).expect("valid"))
    });
    let cmcd_batch = sample::cmcd_batch_body(20);
    assert_eq!(
        cmcd::decode(&cmcd_batch, &checks)
            .expect("valid")
            .accepted
            .len(),
        20
    );
    group.throughput(Throughput::Elements(20));
    group.bench_function("cmcd_batch_20_reports", |b| {
        b.iter(|| cmcd::decode(std::hint::black_box(&cmcd_batch), &checks).expect("valid"))
    });
    group.finish();

    // References on the same machine and body: a bare JSON syntax scan and a
    // parse into serde_json::Value. Our decode is reported as a ratio to them.
    let mut reference = c.benchmark_group("reference_sdk_batch_20");
    reference.throughput(Throughput::Elements(20));
    reference.bench_function("json_scan_ignored_any", |b| {
        b.iter(|| {
            serde_json::from_slice::<serde::de::IgnoredAny>(std::hint::black_box(&sdk))
                .expect("json")
        })
    });
    reference.bench_function("json_to_value", |b| {
        b.iter(|| {
            serde_json::from_slice::<serde_json::Value>(std::hint::black_box(&sdk)).expect("json")
        })
    });
    reference.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
