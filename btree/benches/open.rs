//! Restart time: opening a 1M-key page file (16-byte keys, 256-byte values, checkpointed) and
//! answering the first read, which must not grow with the size of the store (no scan, no
//! index rebuild). Prints the first open after the build, then criterion measures
//! `open_and_first_point_get` (page cache warm: the numbers are CPU and syscalls, not disk)
//! and, for scale, the same on a 10k-key file.

mod common;

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use keel_btree::{KeyRange, MvccStore, RangeOptions, StoreOptions};

fn open_and_get(path: &Path, key: &Bytes) -> Duration {
    let started = Instant::now();
    let (store, opened) = MvccStore::open(path, &StoreOptions::default()).expect("open");
    let got = store
        .read_view()
        .try_range(&KeyRange::Key(key.clone()), &RangeOptions::default())
        .expect("first read");
    let elapsed = started.elapsed();
    assert_eq!(got.count, 1);
    black_box(opened);
    elapsed
}

fn built(dir: &Path, name: &str, keys: u64) -> std::path::PathBuf {
    let path = dir.join(name);
    let mut store = common::open(&path);
    common::build(&mut store, keys, 1000, 1);
    eprintln!(
        "{keys} keys: file {} bytes ({} bytes/key)",
        store.size_bytes(),
        store.size_bytes() / keys
    );
    path
}

fn benches(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let big = built(dir.path(), "big.db", 1_000_000);
    let small = built(dir.path(), "small.db", 10_000);
    let key = common::key(777_777);
    eprintln!(
        "first open + first read of the 1M-key file after the build: {:?}",
        open_and_get(&big, &key)
    );
    let mut group = c.benchmark_group("restart");
    group
        .sample_size(30)
        .measurement_time(Duration::from_secs(4));
    group.bench_function("open_and_first_point_get_1m_keys", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| open_and_get(&big, &key)).sum())
    });
    let small_key = common::key(7_777);
    group.bench_function("open_and_first_point_get_10k_keys", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| open_and_get(&small, &small_key)).sum())
    });
    group.finish();
}

criterion_group!(open, benches);
criterion_main!(open);
