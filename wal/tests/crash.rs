//! Crash tests on MemDisk, in every durable sync mode: run a seeded workload, cut the power
//! at every sync point (in `SyncMode::Dsync` each durable write is one), build the power-loss
//! image (with and without a torn last write), reopen, and check that every acknowledged batch
//! is there, nothing else is returned, and the WAL keeps working. Plus the process-restart
//! cases: what a killed process wrote but never synced is made durable at open.
//!
//! `KEEL_LONG_TESTS=1` runs many more seeds. A failure names its seed, sync mode, sync point
//! and tear; rerun one seed (in both modes) with `KEEL_CRASH_SEED=<seed>`.

mod common;

use std::path::Path;

use common::{entries, small_options_in, splitmix64, Model, DURABLE_SYNC_MODES};
use futures::executor::block_on;
use keel_wal::{
    MemDisk, SnapshotMarker, SyncMode, TornWrite, Wal, WalEntry, WalError, WalOptions, WalState,
};

const DIR: &str = "/crash/wal";
const SEGMENT_SIZE_BYTES: u64 = 16 * 1024;

#[derive(Debug, Clone)]
enum Step {
    Append(Vec<WalEntry>, Option<WalState>),
    Marker(SnapshotMarker),
    Release(u64),
    Reopen,
}

/// A seeded workload that is valid for the WAL's contract: appends (some overwriting a
/// suffix, some multi-block), state-only batches, markers behind and past the log end,
/// releases and reopens, with segments small enough to roll every few batches.
fn script(seed: u64) -> Vec<Step> {
    let mut rng = seed;
    let mut model = Model::default();
    let mut term = 1;
    let mut steps = Vec::new();
    for _ in 0..40 {
        let roll = splitmix64(&mut rng) % 100;
        let step = match roll {
            0..=54 => {
                let count = 1 + splitmix64(&mut rng) % 4;
                let back = if splitmix64(&mut rng).is_multiple_of(5) {
                    splitmix64(&mut rng) % 4
                } else {
                    0
                };
                if back > 0 {
                    term += 1;
                }
                let start = model
                    .next_index()
                    .saturating_sub(back)
                    .max(model.first_allowed_index());
                let data_bytes = match splitmix64(&mut rng) % 10 {
                    0 => 6000,
                    n => (n * 150) as usize,
                };
                let new = entries(start, count, term, data_bytes);
                let state = splitmix64(&mut rng).is_multiple_of(2).then_some(WalState {
                    term,
                    vote: 1,
                    commit: start,
                });
                Step::Append(new, state)
            }
            55..=61 => Step::Append(
                Vec::new(),
                Some(WalState {
                    term,
                    vote: 2,
                    commit: 1,
                }),
            ),
            62..=69 if model.last_index > 0 => {
                let index = if splitmix64(&mut rng).is_multiple_of(2) {
                    model.last_index
                } else {
                    model.last_index + 1 + splitmix64(&mut rng) % 3
                };
                Step::Marker(SnapshotMarker { index, term })
            }
            70..=79 => Step::Release(model.last_index.saturating_sub(splitmix64(&mut rng) % 20)),
            _ => Step::Reopen,
        };
        model_apply(&mut model, &step);
        steps.push(step);
    }
    steps
}

fn model_apply(model: &mut Model, step: &Step) {
    match step {
        Step::Append(new, state) => model.append(new, state.as_ref()),
        Step::Marker(marker) => model.marker(*marker),
        Step::Release(index) => model.release(*index),
        Step::Reopen => {}
    }
}

/// What the workload got acknowledged before the power went out.
struct Outcome {
    acked: Model,
    /// The model as if the interrupted step had completed (its batch may have survived).
    inflight: Option<Model>,
}

async fn run(disk: &MemDisk, options: &WalOptions, steps: &[Step]) -> Outcome {
    let dir = Path::new(DIR);
    let mut acked = Model::default();
    let Ok((mut wal, _)) = Wal::open(disk.clone(), dir, options.clone(), 0).await else {
        return Outcome {
            acked,
            inflight: None,
        };
    };
    for step in steps {
        let mut after = acked.clone();
        model_apply(&mut after, step);
        let result = match step {
            Step::Append(new, state) => wal.append(new, state.as_ref()).await,
            Step::Marker(marker) => wal.save_snapshot_marker(*marker).await,
            Step::Release(index) => {
                // Releasing is permission to lose entries below the index, from the call on.
                acked.release(*index);
                wal.release_before(*index).await
            }
            Step::Reopen => match wal.close().await {
                Ok(()) => match Wal::open(disk.clone(), dir, options.clone(), 0).await {
                    Ok((reopened, _)) => {
                        wal = reopened;
                        Ok(())
                    }
                    Err(_) => {
                        return Outcome {
                            acked,
                            inflight: None,
                        }
                    }
                },
                Err(_) => {
                    return Outcome {
                        acked,
                        inflight: None,
                    }
                }
            },
        };
        if result.is_err() {
            return Outcome {
                acked,
                inflight: Some(after),
            };
        }
        acked = after;
    }
    // Best effort: a close failing after the last ack changes nothing acknowledged.
    let _closed = wal.close().await;
    Outcome {
        acked,
        inflight: None,
    }
}

fn tears(seed: u64) -> [TornWrite; 9] {
    [
        TornWrite::None,
        TornWrite::KeepSectors { sector_count: 0 },
        TornWrite::KeepSectors { sector_count: 1 },
        TornWrite::KeepSectors { sector_count: 9 },
        TornWrite::KeepSectors {
            sector_count: usize::MAX,
        },
        TornWrite::Garbage {
            sector_index: 0,
            seed,
        },
        TornWrite::Garbage {
            sector_index: 5,
            seed,
        },
        TornWrite::Scatter { seed },
        TornWrite::Scatter {
            seed: seed ^ 0xFFFF,
        },
    ]
}

/// Reopens a crash image and checks it against the acknowledged (or in-flight) model, then
/// checks that the WAL accepts a new batch that survives another reopen.
async fn recovery_check(
    image: MemDisk,
    options: &WalOptions,
    outcome: &Outcome,
) -> Result<(), String> {
    let dir = Path::new(DIR);
    let (mut wal, recovered) = Wal::open(image.clone(), dir, options.clone(), 0)
        .await
        .map_err(|error| format!("reopen after crash failed: {error}"))?;
    let model = match outcome.acked.check(&recovered, 0) {
        Ok(()) => outcome.acked.clone(),
        Err(acked_diff) => match &outcome.inflight {
            Some(inflight) => match inflight.check(&recovered, 0) {
                Ok(()) => inflight.clone(),
                Err(inflight_diff) => {
                    return Err(format!(
                        "vs acked: {acked_diff}; vs in-flight: {inflight_diff}"
                    ))
                }
            },
            None => return Err(format!("vs acked: {acked_diff}")),
        },
    };
    if wal.last_index() != model.last_index {
        return Err(format!(
            "last_index {} != model {}",
            wal.last_index(),
            model.last_index
        ));
    }
    let mut model = model;
    let new = entries(
        model.next_index().max(model.first_allowed_index()),
        2,
        99,
        100,
    );
    wal.append(&new, None)
        .await
        .map_err(|e| format!("append after recovery: {e}"))?;
    model.append(&new, None);
    wal.close()
        .await
        .map_err(|e| format!("close after recovery: {e}"))?;
    let (wal, recovered) = Wal::open(image, dir, options.clone(), 0)
        .await
        .map_err(|error| format!("second reopen failed: {error}"))?;
    model
        .check(&recovered, 0)
        .map_err(|diff| format!("after the post-crash append: {diff}"))?;
    if recovered.torn_tail.is_some() {
        return Err("a clean close left a torn tail".to_string());
    }
    wal.close().await.map_err(|e| format!("final close: {e}"))
}

fn crash_at_every_sync_point(seed: u64, sync_mode: SyncMode) {
    let steps = script(seed);
    let options = small_options_in(sync_mode, SEGMENT_SIZE_BYTES);
    let clean = MemDisk::new();
    let clean_outcome = block_on(run(&clean, &options, &steps));
    assert!(
        clean_outcome.inflight.is_none(),
        "seed {seed}: the clean run failed"
    );
    let sync_points = clean.sync_count();
    assert!(
        sync_points > 20,
        "seed {seed}: only {sync_points} sync points"
    );
    for sync_point in 1..=sync_points {
        let disk = MemDisk::new();
        disk.cut_power_at_sync(sync_point);
        let outcome = block_on(run(&disk, &options, &steps));
        assert!(
            disk.is_powered_off(),
            "seed {seed}: sync point {sync_point} never reached"
        );
        for torn in tears(seed.wrapping_add(sync_point)) {
            let image = disk.crash(torn);
            if let Err(message) = block_on(recovery_check(image, &options, &outcome)) {
                panic!(
                    "seed {seed}, {sync_mode:?}, power cut at sync {sync_point} of {sync_points}, \
                     {torn:?}: {message}\n  rerun: KEEL_CRASH_SEED={seed} cargo test -p keel-wal \
                     --test crash"
                );
            }
        }
    }
}

// Guards the durability contract end to end: at every sync point of several seeded
// workloads (rolls, overwrites, markers, releases, reopens) and for every kind of torn last
// write, recovery succeeds, returns every acknowledged batch, and returns nothing that was
// never written (at most the one in-flight batch, whole).
#[test]
fn every_acknowledged_batch_survives_a_power_cut_at_any_sync_point() {
    let seeds: Vec<u64> = match std::env::var("KEEL_CRASH_SEED") {
        Ok(seed) => vec![seed.parse().expect("KEEL_CRASH_SEED is a u64")],
        Err(_) if std::env::var_os("KEEL_LONG_TESTS").is_some() => (1..=200).collect(),
        Err(_) => vec![1, 2, 3, 4],
    };
    for seed in seeds {
        for sync_mode in DURABLE_SYNC_MODES {
            eprintln!("crash workload seed {seed}, {sync_mode:?}");
            crash_at_every_sync_point(seed, sync_mode);
        }
    }
}

// Guards invariant 7 (in both durable modes; in Dsync the failed sync is the durable write's):
// after a failed sync the batch's fate is unknown, so the WAL must refuse
// further writes until reopened, and reopening must yield the acknowledged log (plus at most
// the failed batch, whole).
#[test]
fn a_failed_sync_poisons_the_wal_until_it_is_reopened() {
    for sync_mode in DURABLE_SYNC_MODES {
        eprintln!("{sync_mode:?}");
        block_on(async {
            let disk = MemDisk::new();
            let dir = Path::new(DIR);
            let options = small_options_in(sync_mode, SEGMENT_SIZE_BYTES);
            let (mut wal, _) = Wal::open(disk.clone(), dir, options.clone(), 0)
                .await
                .unwrap();
            wal.append(&entries(1, 3, 1, 100), None).await.unwrap();
            disk.fail_next_sync();
            assert!(matches!(
                wal.append(&entries(4, 2, 1, 100), None).await,
                Err(WalError::Io { .. })
            ));
            assert!(matches!(
                wal.append(&entries(4, 2, 1, 100), None).await,
                Err(WalError::Poisoned)
            ));
            assert!(matches!(
                wal.release_before(1).await,
                Err(WalError::Poisoned)
            ));
            drop(wal);
            let image = disk.crash(TornWrite::None);
            let (_, recovered) = Wal::open(image, dir, options.clone(), 0).await.unwrap();
            assert_eq!(recovered.entries, entries(1, 3, 1, 100));
            let (mut wal, recovered) = Wal::open(disk.clone(), dir, options.clone(), 0)
                .await
                .unwrap();
            assert_eq!(
                recovered.entries.len(),
                5,
                "the written-but-unsynced batch is still readable"
            );
            disk.fail_next_write();
            assert!(matches!(
                wal.append(&entries(6, 1, 1, 100), None).await,
                Err(WalError::Io { .. })
            ));
            assert!(matches!(
                wal.append(&entries(6, 1, 1, 100), None).await,
                Err(WalError::Poisoned)
            ));
        });
    }
}

// Guards the torn-tail path in isolation: a batch whose write landed only its first sector
// is cut off whole, reported with the segment and the batch's offset, and the next append
// lands where the torn batch was.
#[test]
fn a_torn_multi_block_batch_is_cut_whole_and_reported() {
    for sync_mode in DURABLE_SYNC_MODES {
        eprintln!("{sync_mode:?}");
        block_on(async {
            let disk = MemDisk::new();
            let dir = Path::new(DIR);
            let options = small_options_in(sync_mode, 1024 * 1024);
            let (mut wal, _) = Wal::open(disk.clone(), dir, options.clone(), 0)
                .await
                .unwrap();
            wal.append(&entries(1, 2, 1, 100), None).await.unwrap();
            disk.cut_power_at_sync(1);
            assert!(wal.append(&entries(3, 3, 1, 3000), None).await.is_err());
            let image = disk.crash(TornWrite::KeepSectors { sector_count: 1 });
            let (mut wal, recovered) = Wal::open(image.clone(), dir, options.clone(), 0)
                .await
                .unwrap();
            let torn = recovered.torn_tail.expect("torn tail reported");
            assert_eq!(torn.offset_bytes, 2 * 4096);
            assert!(
                torn.segment
                    .ends_with("0000000000000000-0000000000000001.wal"),
                "{torn:?}"
            );
            assert_eq!(recovered.entries, entries(1, 2, 1, 100));
            wal.append(&entries(3, 1, 2, 10), None).await.unwrap();
            wal.close().await.unwrap();
            let (_, recovered) = Wal::open(image, dir, options, 0).await.unwrap();
            assert!(recovered.torn_tail.is_none());
            let mut want = entries(1, 2, 1, 100);
            want.extend(entries(3, 1, 2, 10));
            assert_eq!(recovered.entries, want);
        });
    }
}

// Guards the point of SyncMode::Dsync: an append is durable when it returns, with one sync
// point (the durable write) and no fdatasync, so a power loss right after it keeps it,
// whatever happens to unsynced writes (none is left to tear).
#[test]
fn a_power_loss_right_after_a_dsync_append_keeps_it() {
    block_on(async {
        let disk = MemDisk::new();
        let dir = Path::new(DIR);
        let segment_size_bytes = 64 * 1024;
        let options = small_options_in(SyncMode::Dsync, segment_size_bytes);
        let (mut wal, _) = Wal::open(disk.clone(), dir, options.clone(), 0)
            .await
            .unwrap();
        let segment = Path::new(DIR).join("0000000000000000-0000000000000001.wal");
        let mut want = Vec::new();
        for index in 1..=3 {
            let syncs_before = disk.sync_count();
            let batch = entries(index, 1, 1, 700);
            let state = WalState {
                term: 1,
                vote: 1,
                commit: index,
            };
            wal.append(&batch, Some(&state)).await.unwrap();
            assert_eq!(
                disk.sync_count(),
                syncs_before + 1,
                "one durable write per append"
            );
            want.extend(batch);
            // Only the written ranges are durable: header + one block per append, not the
            // zero-filled length an fdatasync would have made durable too.
            let image = disk.crash(TornWrite::None);
            let durable_bytes = image.file_bytes(&segment).expect("segment").len() as u64;
            assert_eq!(
                durable_bytes,
                4096 * (1 + index),
                "no fdatasync on the append path"
            );
            for torn in tears(index) {
                let (_, recovered) = Wal::open(disk.crash(torn), dir, options.clone(), 0)
                    .await
                    .unwrap();
                assert_eq!(recovered.entries, want, "after append {index}, {torn:?}");
                assert_eq!(
                    recovered.state,
                    Some(state),
                    "after append {index}, {torn:?}"
                );
                assert!(recovered.torn_tail.is_none(), "{torn:?}");
            }
        }
    });
}

/// Invariant 8's kill scenario on a MemDisk: `first` is appended; `fault` arms a failure
/// that makes appending `second` fail (the process dies there: the WAL is dropped, the page
/// cache and the directory as that process saw them stay); the WAL is opened again, must
/// read both batches back, and `third` is appended. Returns the disk for a power loss.
async fn killed_mid_append_then_reopened(
    options: &keel_wal::WalOptions,
    [first, second, third]: [Vec<WalEntry>; 3],
    fault: impl FnOnce(&MemDisk),
) -> MemDisk {
    let disk = MemDisk::new();
    let dir = Path::new(DIR);
    let (mut wal, _) = Wal::open(disk.clone(), dir, options.clone(), 0)
        .await
        .unwrap();
    wal.append(&first, None).await.unwrap();
    fault(&disk);
    assert!(wal.append(&second, None).await.is_err());
    drop(wal);
    let (mut wal, recovered) = Wal::open(disk.clone(), dir, options.clone(), 0)
        .await
        .unwrap();
    let mut read_back = first;
    read_back.extend(second);
    assert_eq!(recovered.entries, read_back, "read back unsynced");
    wal.append(&third, None).await.unwrap();
    wal.close().await.unwrap();
    disk
}

// Guards invariant 8 at open: a process killed between a batch's write and its sync leaves
// the batch in the page cache; the next process reads it back and appends after it. In Dsync
// mode those appends sync only their own range, so unless open syncs what it recovered, a
// power loss would drop the old batch under durable new ones: a hole that recovery refuses as
// corruption, and acknowledged batches lost. (The failed sync stands in for the kill.)
#[test]
fn a_batch_a_killed_process_wrote_but_never_synced_is_made_durable_at_open() {
    for sync_mode in DURABLE_SYNC_MODES {
        eprintln!("{sync_mode:?}");
        block_on(async {
            let options = small_options_in(sync_mode, 1024 * 1024);
            let batches = [
                entries(1, 2, 1, 100),
                entries(3, 2, 1, 100),
                entries(5, 2, 1, 100),
            ];
            let disk =
                killed_mid_append_then_reopened(&options, batches, MemDisk::fail_next_sync).await;
            let (_, recovered) = Wal::open(disk.crash(TornWrite::None), Path::new(DIR), options, 0)
                .await
                .unwrap();
            assert_eq!(recovered.entries, entries(1, 6, 1, 100));
        });
    }
}

// Guards invariant 8 at open for names: a process killed between a segment's rename and the
// directory sync leaves a name the next process sees and appends into; unless open syncs the
// directory, a power loss would take the segment with every batch acknowledged into it since.
#[test]
fn a_segment_a_killed_process_renamed_but_never_synced_is_made_durable_at_open() {
    for sync_mode in DURABLE_SYNC_MODES {
        eprintln!("{sync_mode:?}");
        block_on(async {
            // Header + 3 blocks: a 2-block batch, then another that rolls, then a 1-block
            // batch that fits behind it (so no later roll syncs the directory by itself).
            let options = small_options_in(sync_mode, 4 * 4096);
            let batches = [
                entries(1, 1, 1, 5000),
                entries(2, 1, 1, 5000),
                entries(3, 1, 1, 100),
            ];
            let disk =
                killed_mid_append_then_reopened(&options, batches, MemDisk::fail_next_sync_dir)
                    .await;
            let segments: Vec<_> = disk
                .file_paths()
                .into_iter()
                .filter(|path| path.extension().is_some_and(|ext| ext == "wal"))
                .collect();
            assert_eq!(segments.len(), 2, "no roll after the restart: {segments:?}");
            let (_, recovered) = Wal::open(disk.crash(TornWrite::None), Path::new(DIR), options, 0)
                .await
                .unwrap();
            let mut want = entries(1, 2, 1, 5000);
            want.extend(entries(3, 1, 1, 100));
            assert_eq!(recovered.entries, want);
        });
    }
}
