//! append + sync at batch sizes 1, 8, 64 and 256 entries of 256 B, for StdDisk in both durable
//! sync modes (`std-fdatasync`: pwrite + fdatasync; `std-dsync`: one pwritev2 with RWF_DSYNC)
//! and GlommioDisk (write + fdatasync; Dsync is the same there), into preallocated
//! (zero-filled) 64 MiB segments in a temporary directory (the default options); and, StdDisk
//! only, zeroed vs preallocated vs growing segments in both modes (docs/tuning.md).
//! Bounded: 10 samples, ~2 s of measurement per case.
//!
//! `cargo bench -p keel-wal --bench append` (use your own CARGO_TARGET_DIR).

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion, Throughput,
};
use glommio::{LocalExecutorBuilder, Placement};
use keel_wal::{
    Disk, GlommioDisk, Preallocation, StdDisk, SyncMode, Wal, WalEntry, WalOptions, WalState,
};

const ENTRY_DATA_BYTES: usize = 256;
const BATCH_SIZES: [usize; 4] = [1, 8, 64, 256];
/// The durable sync modes, named as in the benchmark ids and `--wal-sync`.
const SYNC_MODES: [(&str, SyncMode); 2] = [
    ("fdatasync", SyncMode::Fdatasync),
    ("dsync", SyncMode::Dsync),
];
/// glommio's locked I/O memory; 2 MiB works without CAP_IPC_LOCK too.
const GLOMMIO_IO_MEMORY_BYTES: usize = 2 << 20;

/// Opens a fresh WAL in `dir` and times `iters` batches of `batch_size` entries.
async fn append_batches<D: Disk>(disk: D, dir: &Path, batch_size: usize, iters: u64) -> Duration {
    append_batches_with(disk, WalOptions::default(), dir, batch_size, iters).await
}

/// [`append_batches`] with explicit options.
async fn append_batches_with<D: Disk>(
    disk: D,
    options: WalOptions,
    dir: &Path,
    batch_size: usize,
    iters: u64,
) -> Duration {
    let (mut wal, _) = Wal::open(disk, dir, options, 0).await.expect("open");
    let data = Bytes::from(vec![0x5Au8; ENTRY_DATA_BYTES]);
    let mut batch: Vec<WalEntry> = (0..batch_size)
        .map(|_| WalEntry {
            index: 0,
            term: 1,
            kind: 0,
            data: data.clone(),
        })
        .collect();
    let mut next_index = 1u64;
    let started = Instant::now();
    for _ in 0..iters {
        for (offset, entry) in batch.iter_mut().enumerate() {
            entry.index = next_index + offset as u64;
        }
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

/// One StdDisk case: each sample appends `iters` batches of `batch_size` entries into a
/// fresh WAL opened with `options`.
fn bench_std_case(
    group: &mut BenchmarkGroup<'_, WallTime>,
    id: BenchmarkId,
    options: &WalOptions,
    batch_size: usize,
) {
    group.bench_function(id, |b| {
        b.iter_custom(|iters| {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("wal");
            futures::executor::block_on(append_batches_with(
                StdDisk,
                options.clone(),
                &path,
                batch_size,
                iters,
            ))
        });
    });
}

fn bench_append(c: &mut Criterion) {
    let mut group = c.benchmark_group("append_sync");
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));
    for batch_size in BATCH_SIZES {
        group.throughput(Throughput::Elements(batch_size as u64));
        for (mode_name, sync_mode) in SYNC_MODES {
            let options = WalOptions {
                sync_mode,
                ..WalOptions::default()
            };
            let id = BenchmarkId::new(format!("std-{mode_name}"), batch_size);
            bench_std_case(&mut group, id, &options, batch_size);
        }
        group.bench_function(BenchmarkId::new("glommio", batch_size), |b| {
            b.iter_custom(|iters| {
                let dir = tempfile::tempdir().expect("tempdir");
                let path = dir.path().join("wal");
                LocalExecutorBuilder::new(Placement::Unbound)
                    .io_memory(GLOMMIO_IO_MEMORY_BYTES)
                    .make()
                    .expect("glommio executor")
                    .run(async move { append_batches(GlommioDisk, &path, batch_size, iters).await })
            });
        });
    }
    group.finish();
}

/// Segment preallocation (docs/tuning.md): the same appends into segments
/// zero-filled in the background (the default), `fallocate`d only ("preallocated")
/// and growing with every append, each in both sync modes (`RWF_DSYNC` into unwritten
/// extents or past the end still commits the journal, as fdatasync does). This is how to
/// see the effect of `--wal-preallocation` and `--wal-sync` together.
/// StdDisk only.
fn bench_preallocate(c: &mut Criterion) {
    let mut group = c.benchmark_group("append_sync_std_preallocation");
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));
    for batch_size in [1, 64] {
        group.throughput(Throughput::Elements(batch_size as u64));
        for ((name, preallocation), (mode_name, sync_mode)) in [
            ("zeroed", Preallocation::Zeroed),
            ("preallocated", Preallocation::Fallocate),
            ("growing", Preallocation::Grow),
        ]
        .into_iter()
        .flat_map(|preallocation| SYNC_MODES.map(|mode| (preallocation, mode)))
        {
            let options = WalOptions {
                preallocation,
                sync_mode,
                ..WalOptions::default()
            };
            let id = BenchmarkId::new(format!("{name}-{mode_name}"), batch_size);
            bench_std_case(&mut group, id, &options, batch_size);
        }
    }
    group.finish();
}

criterion_group!(benches, bench_append, bench_preallocate);
criterion_main!(benches);
