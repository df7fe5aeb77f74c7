//! Decode + validate throughput of SDK beacons: one event, and a realistic
//! 20-event batch. Run: `cargo bench -p qoe-schema --bench decode`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use qoe_schema::sample;
use qoe_schema::validate::{decode, Checks};

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
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
