//! MVCC store micro-benchmarks at 1M keys (16-byte keys, 256-byte values): single-put
//! transactions, batches of 100 puts (one transaction, or 100 transactions then one published
//! read view as the server's apply loop does), point gets and short ranges from a read view.
//!
//! Inputs (keys, values) are generated outside the timed region. Put benches overwrite random
//! existing keys, so the key count stays 1M; every `COMPACT_EVERY_PUTS` puts the store is
//! compacted outside the timed region so history does not pile up.

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use keel_btree::{KeyRange, MvccStore, RangeOptions};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const KEY_COUNT: u64 = 1_000_000;
const COMPACT_EVERY_PUTS: usize = 50_000;
/// Search keys drawn from a pool, generated once.
const READ_KEYS_POOL_LEN: usize = 1 << 16;

struct Fixture {
    store: MvccStore,
    rng: StdRng,
    puts_since_compact: usize,
}

impl Fixture {
    fn new() -> Self {
        let started = Instant::now();
        let store = common::store_with_keys(KEY_COUNT, 100);
        eprintln!("built a {KEY_COUNT}-key store in {:?}", started.elapsed());
        Fixture {
            store,
            rng: StdRng::seed_from_u64(common::SEED ^ 1),
            puts_since_compact: 0,
        }
    }

    /// Runs `iters` rounds of `round` over `puts_per_round` fresh (key, value) pairs each; only
    /// `round` is timed. Compacts between rounds, untimed.
    fn time_rounds(
        &mut self,
        iters: u64,
        puts_per_round: usize,
        round: impl Fn(&mut MvccStore, Vec<(Bytes, Bytes)>),
    ) -> Duration {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            let inputs: Vec<(Bytes, Bytes)> = (0..puts_per_round)
                .map(|_| {
                    let key = common::key(self.rng.random_range(0..KEY_COUNT));
                    (key, common::value(&mut self.rng))
                })
                .collect();
            let started = Instant::now();
            round(&mut self.store, inputs);
            total += started.elapsed();
            self.puts_since_compact += puts_per_round;
            if self.puts_since_compact >= COMPACT_EVERY_PUTS {
                self.store
                    .compact(self.store.revision())
                    .expect("compact to current");
                self.puts_since_compact = 0;
            }
        }
        total
    }
}

fn put_benches(c: &mut Criterion, fixture: &mut Fixture) {
    let mut group = c.benchmark_group("mvcc_1m_keys");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(4));
    group.throughput(Throughput::Elements(1));
    group.bench_function("put_txn_commit_with_view_published", |b| {
        b.iter_custom(|iters| {
            fixture.time_rounds(iters, 1, |store, inputs| {
                let mut txn = store.write_txn();
                for (key, value) in inputs {
                    txn.put(key, value, 0);
                }
                black_box(txn.commit());
                black_box(store.read_view());
            })
        });
    });
    group.bench_function("put_txn_commit_no_view", |b| {
        b.iter_custom(|iters| {
            fixture.time_rounds(iters, 1, |store, inputs| {
                let mut txn = store.write_txn();
                for (key, value) in inputs {
                    txn.put(key, value, 0);
                }
                black_box(txn.commit());
            })
        });
    });
    group.throughput(Throughput::Elements(100));
    group.bench_function("batch_100_puts_one_txn_then_view", |b| {
        b.iter_custom(|iters| {
            fixture.time_rounds(iters, 100, |store, inputs| {
                let mut txn = store.write_txn();
                for (key, value) in inputs {
                    txn.put(key, value, 0);
                }
                black_box(txn.commit());
                black_box(store.read_view());
            })
        });
    });
    group.bench_function("batch_100_txns_of_one_put_then_view", |b| {
        b.iter_custom(|iters| {
            fixture.time_rounds(iters, 100, |store, inputs| {
                for (key, value) in inputs {
                    let mut txn = store.write_txn();
                    txn.put(key, value, 0);
                    black_box(txn.commit());
                }
                black_box(store.read_view());
            })
        });
    });
    group.finish();
}

fn read_benches(c: &mut Criterion, fixture: &Fixture) {
    let view = fixture.store.read_view();
    let mut rng = StdRng::seed_from_u64(common::SEED ^ 2);
    let points: Vec<KeyRange> = (0..READ_KEYS_POOL_LEN)
        .map(|_| KeyRange::Key(common::key(rng.random_range(0..KEY_COUNT))))
        .collect();
    let ranges: Vec<KeyRange> = (0..READ_KEYS_POOL_LEN)
        .map(|_| {
            let start = rng.random_range(0..KEY_COUNT - 200);
            KeyRange::Range {
                start: common::key(start),
                end: common::key(start + 100),
            }
        })
        .collect();
    let mut group = c.benchmark_group("mvcc_1m_keys");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(4));
    group.throughput(Throughput::Elements(1));
    let mut next = 0usize;
    group.bench_function("read_view_point_get", |b| {
        b.iter(|| {
            next = (next + 1) % READ_KEYS_POOL_LEN;
            black_box(
                view.range(&points[next], &RangeOptions::default())
                    .expect("read"),
            )
        });
    });
    group.throughput(Throughput::Elements(100));
    group.bench_function("read_view_range_100_keys", |b| {
        b.iter(|| {
            next = (next + 1) % READ_KEYS_POOL_LEN;
            black_box(
                view.range(&ranges[next], &RangeOptions::default())
                    .expect("read"),
            )
        });
    });
    group.throughput(Throughput::Elements(1));
    group.bench_function("take_read_view", |b| {
        b.iter(|| black_box(fixture.store.read_view()))
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    let mut fixture = Fixture::new();
    read_benches(c, &fixture);
    put_benches(c, &mut fixture);
}

criterion_group!(mvcc, benches);
criterion_main!(mvcc);
