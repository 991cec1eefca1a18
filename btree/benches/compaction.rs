//! Per-entry costs of online compaction and of a large DeleteRange, on a page file on disk
//! (16-byte keys, 256-byte values). A plain timing run (no criterion), ~30 s:
//!
//! - `nothing removable`: 300k keys written once (300k revisions); a compaction at the current
//!   revision visits every key (first pass) and every record (second pass) and removes nothing.
//! - `history`: 100k keys written 4 times (400k revisions); a compaction at the current
//!   revision removes the 300k superseded ones.
//! - `delete range`: one transaction deleting 60k consecutive keys of a 200k-key store, then
//!   its commit (4 times, the keys put back untimed in between).
//!
//! Compactions run in steps of 100 entries (the server core's `COMPACT_STEP_ENTRIES`) and of
//! 1000; each prints the total, the cost per entry visited, and the step p50/p99/max: a put on
//! the server waits for at most one step, so the step maximum is its worst added latency.
//! `KEEL_BENCH_STEP_ENTRIES=N` replaces the step sizes by N.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use keel_btree::{KeyRange, MvccStore};
use rand::rngs::StdRng;
use rand::SeedableRng;

const NOTHING_REMOVABLE_KEYS: u64 = 300_000;
const HISTORY_KEYS: u64 = 100_000;
const HISTORY_ROUNDS: usize = 4;
const DELETE_STORE_KEYS: u64 = 200_000;
const DELETE_RANGE_KEYS: u64 = 60_000;
const DELETE_RANGE_REPEATS: usize = 4;

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[i]
}

fn step_sizes() -> Vec<usize> {
    match std::env::var("KEEL_BENCH_STEP_ENTRIES") {
        Ok(n) => vec![n.parse().expect("KEEL_BENCH_STEP_ENTRIES is a number")],
        Err(_) => vec![100, 1000],
    }
}

/// Compacts `store` at its current revision in steps of `step_entries`; prints the costs.
fn compact_in_steps(what: &str, store: &mut MvccStore, step_entries: usize) {
    let records_before = store.record_count();
    let started = Instant::now();
    store
        .start_compaction(store.revision())
        .expect("start compaction");
    let mut steps = Vec::new();
    let mut visited = 0usize;
    let outcome = loop {
        let step_started = Instant::now();
        let progress = store.compact_step(step_entries).expect("compaction step");
        steps.push(step_started.elapsed());
        visited += progress.entries_visited;
        if progress.done {
            break progress.outcome;
        }
    };
    let total = started.elapsed();
    steps.sort_unstable();
    eprintln!(
        "{what}, steps of {step_entries}: removed {} of {records_before} revisions in {total:?}: \
         {visited} entries visited, {:.2} us/entry, {:.2} us/revision; {} steps p50={:?} \
         p99={:?} max={:?}",
        outcome.revisions_removed_count,
        total.as_secs_f64() * 1e6 / visited as f64,
        total.as_secs_f64() * 1e6 / records_before as f64,
        steps.len(),
        percentile(&steps, 0.5),
        percentile(&steps, 0.99),
        steps.last().expect("at least one step"),
    );
}

fn nothing_removable(step_entries: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = common::open(&dir.path().join("nothing.db"));
    common::build(&mut store, NOTHING_REMOVABLE_KEYS, 1000, 1);
    compact_in_steps("nothing removable", &mut store, step_entries);
}

fn history(step_entries: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = common::open(&dir.path().join("history.db"));
    common::build(&mut store, HISTORY_KEYS, 1000, HISTORY_ROUNDS);
    compact_in_steps("history", &mut store, step_entries);
}

fn delete_range() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = common::open(&dir.path().join("delete.db"));
    common::build(&mut store, DELETE_STORE_KEYS, 1000, 1);
    let mut rng = StdRng::seed_from_u64(common::SEED ^ 5);
    let first = DELETE_STORE_KEYS / 4;
    let range = KeyRange::Range {
        start: common::key(first),
        end: common::key(first + DELETE_RANGE_KEYS),
    };
    for _ in 0..DELETE_RANGE_REPEATS {
        let started = Instant::now();
        let mut txn = store.write_txn();
        let deleted = txn.try_delete_range(&range).expect("delete range");
        let applied = started.elapsed();
        txn.try_commit().expect("commit");
        let committed = started.elapsed();
        assert_eq!(deleted.len() as u64, DELETE_RANGE_KEYS);
        eprintln!(
            "delete range of {} keys: {applied:?} ({:.2} us/key), with commit {committed:?}",
            deleted.len(),
            applied.as_secs_f64() * 1e6 / deleted.len() as f64
        );
        // Put the keys back and make the store durable again (untimed).
        let mut txn = store.write_txn();
        for i in first..first + DELETE_RANGE_KEYS {
            let value: Bytes = common::value(&mut rng);
            txn.try_put(common::key(i), value, 0).expect("put");
        }
        txn.try_commit().expect("commit");
        store.compact(store.revision()).expect("compact");
        common::checkpoint(&mut store);
    }
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument selects the cases to run.
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let selected = |name: &str| filter.is_empty() || filter.iter().any(|f| name.contains(f));
    for step_entries in step_sizes() {
        if selected("nothing") {
            nothing_removable(step_entries);
        }
        if selected("history") {
            history(step_entries);
        }
    }
    if selected("delete") {
        delete_range();
    }
}
