//! The per-request costs the server pays (issue "keel-bench ... reach the speed targets"), at
//! 1M keys (16-byte keys, 256-byte values, random order, 4 KiB pages, a page file on disk):
//!
//! - `put_txn_view_per_100`: `write_txn` + `try_put` (overwriting a random key) +
//!   `try_commit`, with a `read_view()` taken after every 100 transactions and held until the
//!   next one (the server takes one view per apply batch; the view makes the next writes copy
//!   the nodes it shares). Per transaction, the views included.
//! - `read_view_after_commit`: `read_view()` right after a commit (not memoized yet).
//! - `point_get`, `range_100_keys`: `try_range` on a view of the checkpointed store; also at
//!   100k keys (`hot_paths_100k_keys`, a 51 MiB file instead of 554 MiB), which separates the
//!   CPU cost of a read from the cost of touching cold pages of a large mapping.
//! - `begin_checkpoint/{100,1000}_puts` (and at 100k keys): the CPU part of a checkpoint on the
//!   core thread after that many puts (100 per transaction); the I/O and `finish` are not
//!   timed. The dirty pages it encodes are printed: its cost must follow them, not the tree.
//!
//! The store is opened with `fsync: false`: no timed path syncs, and it keeps the untimed
//! checkpoints short. Inputs are generated outside the timed regions; every 50k puts the store
//! is compacted and checkpointed (untimed) so history does not pile up.

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use keel_btree::{RangeOptions, ReadView, StoreOptions};

const KEY_COUNT: u64 = 1_000_000;
const SMALL_KEY_COUNT: u64 = 100_000;
const TXNS_PER_VIEW: u64 = 100;

struct Fixture {
    work: common::Workload,
    /// Dirty node pages the untimed checkpoints after a timed `begin_checkpoint` wrote, and
    /// how many there were, for the printed average.
    encoded_pages: u64,
    encoded_checkpoints: u64,
}

impl Fixture {
    /// The store is opened with `fsync: false` (see the module docs).
    fn new(key_count: u64) -> Self {
        let options = StoreOptions {
            fsync: false,
            ..StoreOptions::default()
        };
        Fixture {
            work: common::Workload::new(key_count, &options, common::SEED ^ 4),
            encoded_pages: 0,
            encoded_checkpoints: 0,
        }
    }

    fn put_batch(&mut self, puts: usize) {
        let inputs = self.work.inputs(puts);
        let mut txn = self.work.store.write_txn();
        for (key, value) in inputs {
            txn.try_put(key, value, 0).expect("put");
        }
        txn.try_commit().expect("commit");
    }

    /// `iters` times: `puts` puts (untimed), then a timed `begin_checkpoint`; its I/O and
    /// finish untimed.
    fn time_begin_checkpoint(&mut self, iters: u64, puts: usize) -> Duration {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            for _ in 0..puts / 100 {
                self.put_batch(100);
            }
            let index = self.work.store.applied_index() + 1;
            let started = Instant::now();
            let job = self.work.store.begin_checkpoint(index, b"bench");
            total += started.elapsed();
            let mut job = job.expect("begin");
            self.encoded_pages += job.stats().node_pages;
            self.encoded_checkpoints += 1;
            job.run().expect("run");
            self.work.store.finish_checkpoint(job).expect("finish");
            self.work.maintain(puts);
        }
        total
    }

    fn report_encoded(&mut self, what: &str) {
        if self.encoded_checkpoints > 0 {
            eprintln!(
                "{what}: {:.1} dirty node pages per checkpoint ({} checkpoints)",
                self.encoded_pages as f64 / self.encoded_checkpoints as f64,
                self.encoded_checkpoints
            );
        }
        self.encoded_pages = 0;
        self.encoded_checkpoints = 0;
    }
}

fn read_benches(c: &mut Criterion, fixture: &Fixture, group_name: &str) {
    let key_count = fixture.work.key_count;
    let view = fixture.work.store.read_view();
    let (points, ranges) = common::read_pools(key_count, common::SEED ^ 5);
    let mut group = c.benchmark_group(group_name);
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(4));
    group.throughput(Throughput::Elements(1));
    let mut next = 0usize;
    group.bench_function("point_get", |b| {
        b.iter(|| {
            next = (next + 1) % common::READ_KEYS_POOL_LEN;
            let got = view
                .try_range(&points[next], &RangeOptions::default())
                .expect("read");
            assert_eq!(got.count, 1);
            black_box(got)
        });
    });
    group.throughput(Throughput::Elements(100));
    group.bench_function("range_100_keys", |b| {
        b.iter(|| {
            next = (next + 1) % common::READ_KEYS_POOL_LEN;
            let got = view
                .try_range(&ranges[next], &RangeOptions::default())
                .expect("read");
            assert_eq!(got.count, 100);
            black_box(got)
        });
    });
    group.finish();
}

fn write_benches(c: &mut Criterion, fixture: &mut Fixture) {
    let mut group = c.benchmark_group("hot_paths_1m_keys");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(4));
    group.throughput(Throughput::Elements(1));
    group.bench_function("put_txn_view_per_100", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut view: Option<ReadView> = None;
            let mut done = 0;
            while done < iters {
                let batch = (iters - done).min(TXNS_PER_VIEW);
                let inputs = fixture.work.inputs(batch as usize);
                let store = &mut fixture.work.store;
                let started = Instant::now();
                for (key, value) in inputs {
                    let mut txn = store.write_txn();
                    black_box(txn.try_put(key, value, 0).expect("put"));
                    black_box(txn.try_commit().expect("commit"));
                }
                view = Some(store.read_view());
                total += started.elapsed();
                done += batch;
                fixture.work.maintain(batch as usize);
            }
            drop(view);
            total
        });
    });
    group.bench_function("read_view_after_commit", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut view: Option<ReadView> = None;
            for _ in 0..iters {
                fixture.put_batch(1);
                let started = Instant::now();
                let taken = fixture.work.store.read_view();
                total += started.elapsed();
                view = Some(taken);
                fixture.work.maintain(1);
            }
            drop(view);
            total
        });
    });
    group.finish();
}

fn checkpoint_benches(c: &mut Criterion, fixture: &mut Fixture, label: &str) {
    let mut group = c.benchmark_group("begin_checkpoint");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_millis(400));
    for puts in [100usize, 1000] {
        common::checkpoint(&mut fixture.work.store);
        let id = BenchmarkId::new(label, format!("{puts}_puts"));
        group.bench_function(id, |b| {
            b.iter_custom(|iters| fixture.time_begin_checkpoint(iters, puts));
        });
        fixture.report_encoded(&format!("begin_checkpoint {label} after {puts} puts"));
    }
    group.finish();
}

fn benches(c: &mut Criterion) {
    let mut fixture = Fixture::new(KEY_COUNT);
    read_benches(c, &fixture, "hot_paths_1m_keys");
    write_benches(c, &mut fixture);
    checkpoint_benches(c, &mut fixture, "1m_keys");
    drop(fixture);
    let mut small = Fixture::new(SMALL_KEY_COUNT);
    read_benches(c, &small, "hot_paths_100k_keys");
    checkpoint_benches(c, &mut small, "100k_keys");
}

criterion_group!(hot_paths, benches);
criterion_main!(hot_paths);
