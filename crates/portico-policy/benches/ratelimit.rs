//! What one rate-limit decision costs in the process: GCRA on a key that is there already
//! (the steady state) and on a fresh key, for a limit that is never hit. Run with `cargo bench
//! -p portico-policy --bench ratelimit`; results are recorded in docs/performance.md.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use portico_policy::ratelimit::{Limiter, Rate};

fn decisions(c: &mut Criterion) {
    let Some(rate) = Rate::parse("10000000/s") else {
        unreachable!("a valid rate")
    };
    let limiter = Limiter::new(rate, 10_000_000);
    // An address key, as a `key: ip` limit counts a client.
    let key = [b'i', 127, 0, 0, 1];
    let mut now = 1_000_000_000u64;
    let mut group = c.benchmark_group("rate limit");
    group.bench_function("decide, known key", |b| {
        b.iter(|| {
            now += 1_000;
            black_box(limiter.check(black_box(&key), now))
        })
    });
    let mut n = 0u32;
    group.bench_function("decide, new key", |b| {
        b.iter(|| {
            n = n.wrapping_add(1);
            black_box(limiter.check(&n.to_be_bytes(), now))
        })
    });
    group.finish();
}

criterion_group!(benches, decisions);
criterion_main!(benches);
