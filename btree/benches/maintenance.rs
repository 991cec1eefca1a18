//! Maintenance under load, on a page file on disk (16-byte keys, 256-byte values):
//!
//! - `compact_step_1000_keys`: one step of an online compaction. Before the criterion runs,
//!   200k keys are written 10 times (2M revisions) and compacted twice, in steps of 100 keys at
//!   the revision after the fifth round (1M revisions at or below it), then in steps of 1000
//!   keys at the end; each step is followed by a single-put transaction as the server's core
//!   thread would run them, and the put and step latencies are printed: a put waits for at most
//!   one step, so the worst put latency while compacting is the longest step plus the longest
//!   put.
//! - `defrag_step_10k_entries`: one step of an online defragmentation of that store after
//!   compaction. Before it, one whole defragmentation is run with puts between steps, and its
//!   time, longest step (the swap included) and the file size before and after are printed.

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use keel_btree::{DefragProgress, MvccStore};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const KEY_COUNT: u64 = 200_000;
const ROUNDS: usize = 5;
const COMPACT_STEP_KEYS: usize = 1000;
const COMPACT_STEP_KEYS_SMALL: usize = 100;
const DEFRAG_STEP_ENTRIES: usize = 10_000;

fn put_one(store: &mut MvccStore, rng: &mut StdRng) -> Duration {
    let key = common::key(rng.random_range(0..KEY_COUNT));
    let value: Bytes = common::value(rng);
    let started = Instant::now();
    let mut txn = store.write_txn();
    black_box(txn.try_put(key, value, 0).expect("put"));
    black_box(txn.try_commit().expect("commit"));
    black_box(store.read_view());
    started.elapsed()
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[i]
}

fn report(what: &str, mut samples: Vec<Duration>) -> Duration {
    samples.sort_unstable();
    let max = *samples.last().expect("samples");
    eprintln!(
        "{what}: n={} p50={:?} p99={:?} max={max:?}",
        samples.len(),
        percentile(&samples, 0.5),
        percentile(&samples, 0.99)
    );
    max
}

/// One whole compaction at `revision`, in steps of `step_keys` keys, single-put transactions
/// between steps.
fn compaction_under_load(store: &mut MvccStore, rng: &mut StdRng, revision: i64, step_keys: usize) {
    let records = store.record_count();
    let started = Instant::now();
    store.start_compaction(revision).expect("start");
    let (mut steps, mut puts) = (Vec::new(), Vec::new());
    loop {
        let step_started = Instant::now();
        let progress = store.compact_step(step_keys).expect("step");
        steps.push(step_started.elapsed());
        puts.push(put_one(store, rng));
        if progress.done {
            eprintln!(
                "compacted {} of {records} revisions in {:?} ({} steps of {step_keys} entries, \
                 a put after each)",
                progress.outcome.revisions_removed_count,
                started.elapsed(),
                steps.len()
            );
            break;
        }
    }
    let step_max = report("compaction step", steps);
    let put_max = report("put while compacting", puts);
    eprintln!(
        "max put latency while compacting (longest step + longest put): {:?}",
        step_max + put_max
    );
}

/// One whole defragmentation, single-put transactions between steps, then the checkpoint
/// that renames the new file into place.
fn defrag_under_load(store: &mut MvccStore, rng: &mut StdRng) {
    let size_before = store.size_bytes();
    let started = Instant::now();
    store.start_defrag().expect("start");
    let (mut steps, mut puts) = (Vec::new(), Vec::new());
    loop {
        let step_started = Instant::now();
        let progress = store.defrag_step(DEFRAG_STEP_ENTRIES).expect("step");
        steps.push(step_started.elapsed());
        puts.push(put_one(store, rng));
        if matches!(progress, DefragProgress::Swapped { .. }) {
            break;
        }
    }
    let copied = started.elapsed();
    let checkpoint_started = Instant::now();
    common::checkpoint(store);
    eprintln!(
        "defragmented in {copied:?} ({} steps of {DEFRAG_STEP_ENTRIES} entries, a put after each) \
         + first checkpoint {:?}: file {} MiB -> {} MiB ({} MiB in use)",
        steps.len(),
        checkpoint_started.elapsed(),
        size_before >> 20,
        store.size_bytes() >> 20,
        store.size_in_use_bytes() >> 20
    );
    report("defrag step", steps);
    report("put while defragmenting", puts);
}

fn benches(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = common::open(&dir.path().join("maintenance.db"));
    common::build(&mut store, KEY_COUNT, 1000, ROUNDS);
    let middle = store.revision();
    common::build(&mut store, KEY_COUNT, 1000, ROUNDS);
    let mut rng = StdRng::seed_from_u64(common::SEED ^ 3);
    compaction_under_load(&mut store, &mut rng, middle, COMPACT_STEP_KEYS_SMALL);
    common::checkpoint(&mut store);
    let end = store.revision();
    compaction_under_load(&mut store, &mut rng, end, COMPACT_STEP_KEYS);
    common::checkpoint(&mut store);
    defrag_under_load(&mut store, &mut rng);

    let mut group = c.benchmark_group("maintenance_200k_keys");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(COMPACT_STEP_KEYS as u64));
    group.bench_function("compact_step_1000_keys", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                if store.compaction_running().is_none() {
                    // Fresh history to compact: overwrite 50k keys (untimed).
                    let mut txn = store.write_txn();
                    for _ in 0..50_000 {
                        let key = common::key(rng.random_range(0..KEY_COUNT));
                        txn.try_put(key, common::value(&mut rng), 0).expect("put");
                    }
                    txn.try_commit().expect("commit");
                    common::checkpoint(&mut store);
                    store.start_compaction(store.revision()).expect("start");
                }
                let started = Instant::now();
                black_box(store.compact_step(COMPACT_STEP_KEYS).expect("step"));
                total += started.elapsed();
            }
            total
        });
    });
    group.throughput(Throughput::Elements(DEFRAG_STEP_ENTRIES as u64));
    group.bench_function("defrag_step_10k_entries", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                if !store.defrag_running() {
                    common::checkpoint(&mut store);
                    store.start_defrag().expect("start");
                }
                let started = Instant::now();
                black_box(store.defrag_step(DEFRAG_STEP_ENTRIES).expect("step"));
                total += started.elapsed();
            }
            total
        });
    });
    group.finish();
}

criterion_group!(maintenance, benches);
criterion_main!(maintenance);
