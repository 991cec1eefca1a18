//! The WAL's segment preallocation, measured for docs/tuning.md: append + fdatasync of one
//! 256 B entry per batch (keel's commit path at one client) into segments that are
//! `fallocate`d when created (the default) and into segments that grow with every append.
//! keel has no flag for this yet (`WalOptions::preallocate` is always on in the server), so
//! this bench is the way to see its effect. StdDisk (pwrite + fdatasync) only.
//! Bounded: 10 samples, ~2 s of measurement per case.
//!
//! `cargo bench -p keel-bench --bench wal_preallocate` (use your own CARGO_TARGET_DIR).

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use keel_wal::{StdDisk, Wal, WalEntry, WalOptions, WalState};

const ENTRY_DATA_BYTES: usize = 256;
const BATCH_SIZES: [usize; 2] = [1, 64];

/// Opens a fresh WAL in `dir` with `options` and times `iters` batches of `batch_size`.
async fn append_batches(
    options: WalOptions,
    dir: &Path,
    batch_size: usize,
    iters: u64,
) -> Duration {
    let (mut wal, _) = Wal::open(StdDisk, dir, options, 0).await.expect("open");
    let data = Bytes::from(vec![0xA5u8; ENTRY_DATA_BYTES]);
    let mut next_index = 1u64;
    let started = Instant::now();
    for _ in 0..iters {
        let batch: Vec<WalEntry> = (0..batch_size as u64)
            .map(|offset| WalEntry {
                index: next_index + offset,
                term: 1,
                kind: 0,
                data: data.clone(),
            })
            .collect();
        next_index += batch_size as u64;
        let state = WalState {
            term: 1,
            vote: 1,
            commit: next_index - 1,
        };
        wal.append(&batch, Some(&state)).await.expect("append");
    }
    let elapsed = started.elapsed();
    wal.close().await.expect("close");
    elapsed
}

fn bench_preallocate(c: &mut Criterion) {
    let mut group = c.benchmark_group("wal_append_sync_std");
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));
    for batch_size in BATCH_SIZES {
        group.throughput(Throughput::Elements(batch_size as u64));
        for preallocate in [true, false] {
            let name = if preallocate {
                "preallocated"
            } else {
                "growing"
            };
            let options = WalOptions {
                preallocate,
                ..WalOptions::default()
            };
            group.bench_function(BenchmarkId::new(name, batch_size), |b| {
                b.iter_custom(|iters| {
                    let dir = tempfile::tempdir().expect("temp dir");
                    let path = dir.path().join("wal");
                    futures::executor::block_on(append_batches(
                        options.clone(),
                        &path,
                        batch_size,
                        iters,
                    ))
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_preallocate);
criterion_main!(benches);
