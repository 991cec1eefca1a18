//! Raw `BTree` micro-benchmarks at 1M u64 keys, next to `std::collections::BTreeMap` for scale:
//! point get, overwrite, insert+remove of a new key, and the same writes after a snapshot (the
//! path copy every write after a read view pays once).

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use keel_btree::BTree;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const KEY_COUNT: u64 = 1_000_000;

/// Even keys 0, 2, ... are present; odd keys are free for insert+remove.
fn trees() -> (BTree<u64, u64>, BTreeMap<u64, u64>) {
    let mut rng = StdRng::seed_from_u64(7);
    let mut tree = BTree::new();
    let mut map = BTreeMap::new();
    for _ in 0..KEY_COUNT * 2 {
        let k = rng.random_range(0..KEY_COUNT) * 2;
        tree.insert(k, k);
        map.insert(k, k);
    }
    (tree, map)
}

fn benches(c: &mut Criterion) {
    let (mut tree, mut map) = trees();
    let mut rng = StdRng::seed_from_u64(8);
    let mut group = c.benchmark_group("tree_1m_u64");
    group
        .sample_size(30)
        .measurement_time(Duration::from_secs(3));
    group.bench_function("btree_get", |b| {
        b.iter(|| black_box(tree.get(&(rng.random_range(0..KEY_COUNT) * 2))))
    });
    group.bench_function("std_btreemap_get", |b| {
        b.iter(|| black_box(map.get(&(rng.random_range(0..KEY_COUNT) * 2))))
    });
    group.bench_function("btree_insert_remove_new_key", |b| {
        b.iter(|| {
            let k = rng.random_range(0..KEY_COUNT) * 2 + 1;
            tree.insert(k, k);
            black_box(tree.remove(&k))
        })
    });
    group.bench_function("std_btreemap_insert_remove_new_key", |b| {
        b.iter(|| {
            let k = rng.random_range(0..KEY_COUNT) * 2 + 1;
            map.insert(k, k);
            black_box(map.remove(&k))
        })
    });
    group.bench_function("btree_overwrite_after_snapshot", |b| {
        b.iter(|| {
            let snapshot = tree.clone();
            let k = rng.random_range(0..KEY_COUNT) * 2;
            black_box(tree.insert(k, k));
            snapshot
        })
    });
    group.bench_function("btree_range_100", |b| {
        b.iter(|| {
            let start = rng.random_range(0..KEY_COUNT);
            black_box(tree.range(start..).take(100).count())
        })
    });
    group.finish();
}

criterion_group!(tree_benches, benches);
criterion_main!(tree_benches);
