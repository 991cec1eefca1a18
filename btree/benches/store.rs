//! Store micro-benchmarks at 1M keys (16-byte keys, 256-byte values) in a page file on disk
//! (4 KiB pages, checkpointed, so reads go through the mmap): point get and 100-key range from a
//! read view, single-put transactions, batches of 100 puts, and checkpoints (encode + write +
//! 2 fsyncs + finish) after 100 and 1000 puts.
//!
//! Puts overwrite random existing keys (each returns the previous version); inputs are
//! generated outside the timed region; every 50k puts the store is compacted and checkpointed
//! outside the timed region so history does not pile up.

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use keel_btree::{MvccStore, RangeOptions, StoreOptions};

const KEY_COUNT: u64 = 1_000_000;

type Fixture = common::Workload;

fn put_all(store: &mut MvccStore, inputs: Vec<(Bytes, Bytes)>) {
    let mut txn = store.write_txn();
    for (key, value) in inputs {
        black_box(txn.try_put(key, value, 0).expect("put"));
    }
    black_box(txn.try_commit().expect("commit"));
}

fn write_benches(c: &mut Criterion, fixture: &mut Fixture) {
    let mut group = c.benchmark_group("store_1m_keys");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(4));
    group.throughput(Throughput::Elements(1));
    group.bench_function("put_txn_commit_then_view", |b| {
        b.iter_custom(|iters| {
            fixture.time_rounds(iters, 1, |store, inputs| {
                put_all(store, inputs);
                black_box(store.read_view());
            })
        });
    });
    group.throughput(Throughput::Elements(100));
    group.bench_function("batch_insert_100_puts_one_txn", |b| {
        b.iter_custom(|iters| fixture.time_rounds(iters, 100, put_all));
    });
    group.bench_function("checkpoint_after_100_puts", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let inputs = fixture.inputs(100);
                put_all(&mut fixture.store, inputs);
                let started = Instant::now();
                common::checkpoint(&mut fixture.store);
                total += started.elapsed();
                fixture.maintain(100);
            }
            total
        });
    });
    group.throughput(Throughput::Elements(1000));
    group.bench_function("checkpoint_after_1000_puts", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let inputs = fixture.inputs(1000);
                put_all(&mut fixture.store, inputs);
                let started = Instant::now();
                let index = fixture.store.applied_index() + 1;
                let job = fixture
                    .store
                    .begin_checkpoint(index, b"bench")
                    .expect("begin");
                let encoded = started.elapsed();
                let mut job = job;
                job.run().expect("run");
                fixture.store.finish_checkpoint(job).expect("finish");
                total += started.elapsed();
                black_box(encoded);
                fixture.maintain(1000);
            }
            total
        });
    });
    group.finish();
}

fn read_benches(c: &mut Criterion, fixture: &Fixture) {
    let view = fixture.store.read_view();
    let (points, ranges) = common::read_pools(KEY_COUNT, common::SEED ^ 2);
    let mut group = c.benchmark_group("store_1m_keys");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(4));
    group.throughput(Throughput::Elements(1));
    let mut next = 0usize;
    group.bench_function("point_get", |b| {
        b.iter(|| {
            next = (next + 1) % common::READ_KEYS_POOL_LEN;
            black_box(
                view.try_range(&points[next], &RangeOptions::default())
                    .expect("read"),
            )
        });
    });
    group.throughput(Throughput::Elements(100));
    group.bench_function("range_scan_100_keys", |b| {
        b.iter(|| {
            next = (next + 1) % common::READ_KEYS_POOL_LEN;
            black_box(
                view.try_range(&ranges[next], &RangeOptions::default())
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
    let mut fixture = Fixture::new(KEY_COUNT, &StoreOptions::default(), common::SEED ^ 1);
    read_benches(c, &fixture);
    write_benches(c, &mut fixture);
}

criterion_group!(store, benches);
criterion_main!(store);
