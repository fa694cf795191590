//! Criterion benches: every mining engine this CPU runs, one thread, on
//! the same inputs (a difficulty no seed meets, so each call walks its
//! whole range). Run with `cargo bench --bench engines`; `edgeminer bench`
//! and `bench/compare.sh` measure the pool and the ratios to OpenSSL.

use std::hint::black_box;
use std::sync::atomic::AtomicBool;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use edgeminer::pow::engine;
use edgeminer::pow::Template;

/// Seeds per call: crosses no segment boundary and keeps one call short
/// even for the slowest engine.
const SEEDS: u64 = 1 << 16;

fn engines(c: &mut Criterion) {
    let t = Template::new(b"criterion-12", &[0x42; 8]);
    let stop = AtomicBool::new(false);
    let mut group = c.benchmark_group("search");
    group.throughput(Throughput::Elements(SEEDS));
    for e in engine::all() {
        group.bench_function(e.name(), |b| {
            let mut start = 0u64;
            b.iter(|| {
                let r = e.search(&t, black_box(start), start + SEEDS, 160, &stop);
                start = start.wrapping_add(SEEDS) % (1 << 40);
                black_box(r)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, engines);
criterion_main!(benches);
