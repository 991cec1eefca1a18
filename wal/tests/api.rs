//! Contract details of the public API on MemDisk: refused appends, segment names and
//! rolling, temporary files, missing segments, and options.

mod common;

use std::path::{Path, PathBuf};

use common::{entries, small_options};
use futures::executor::block_on;
use keel_wal::{
    CorruptReason, Disk, MemDisk, SnapshotMarker, SyncMode, Wal, WalError, WalOptions, WalState,
};

const DIR: &str = "/api/wal";

fn segment_names(disk: &MemDisk) -> Vec<String> {
    let mut names: Vec<String> = disk
        .file_paths()
        .iter()
        .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
        .filter(|name| name.ends_with(".wal"))
        .collect();
    names.sort();
    names
}

// Guards the append contract: gaps, index 0, non-contiguous batches and entries at or below
// the snapshot marker are refused with the indexes involved, and nothing is written.
#[test]
fn appends_that_do_not_continue_the_log_are_refused() {
    block_on(async {
        let disk = MemDisk::new();
        let (mut wal, _) = Wal::open(disk.clone(), Path::new(DIR), small_options(16384), 0)
            .await
            .unwrap();
        wal.append(&entries(1, 3, 1, 10), None).await.unwrap();
        let gap = wal.append(&entries(5, 1, 1, 10), None).await;
        assert!(
            matches!(
                gap,
                Err(WalError::NonContiguous {
                    expected: 4,
                    got: 5
                })
            ),
            "{gap:?}"
        );
        let zero = wal.append(&entries(0, 1, 1, 10), None).await;
        assert!(
            matches!(
                zero,
                Err(WalError::NonContiguous {
                    expected: 1,
                    got: 0
                })
            ),
            "{zero:?}"
        );
        let mut holes = entries(4, 3, 1, 10);
        holes.remove(1);
        let inner = wal.append(&holes, None).await;
        assert!(
            matches!(
                inner,
                Err(WalError::NonContiguous {
                    expected: 5,
                    got: 6
                })
            ),
            "{inner:?}"
        );
        wal.save_snapshot_marker(SnapshotMarker { index: 2, term: 1 })
            .await
            .unwrap();
        let below = wal.append(&entries(2, 1, 2, 10), None).await;
        assert!(
            matches!(
                below,
                Err(WalError::NonContiguous {
                    expected: 3,
                    got: 2
                })
            ),
            "{below:?}"
        );
        assert_eq!(wal.last_index(), 3);
        wal.append(&entries(3, 1, 2, 10), None).await.unwrap();
        assert_eq!((wal.first_index(), wal.last_index()), (1, 3));
    });
}

// Guards rolling: each new segment gets the next sequence number and is named after the
// first entry of the batch that opened it; the prepared segment is a .tmp that close removes.
#[test]
fn rolling_names_segments_by_sequence_and_first_index() {
    block_on(async {
        let disk = MemDisk::new();
        let (mut wal, _) = Wal::open(disk.clone(), Path::new(DIR), small_options(8192), 0)
            .await
            .unwrap();
        assert_eq!(
            segment_names(&disk),
            vec!["0000000000000000-0000000000000001.wal"]
        );
        assert!(disk
            .file_paths()
            .iter()
            .any(|p| p.ends_with("0000000000000001.tmp")));
        for index in 1..=3 {
            wal.append(&entries(index, 1, 1, 3000), None).await.unwrap();
        }
        assert_eq!(
            segment_names(&disk),
            vec![
                "0000000000000000-0000000000000001.wal",
                "0000000000000001-0000000000000002.wal",
                "0000000000000002-0000000000000003.wal",
            ]
        );
        // A state-only batch that rolls names the segment after the next index.
        wal.append(
            &[],
            Some(&WalState {
                term: 1,
                vote: 1,
                commit: 3,
            }),
        )
        .await
        .unwrap();
        assert_eq!(
            segment_names(&disk)[3],
            "0000000000000003-0000000000000004.wal"
        );
        wal.close().await.unwrap();
        assert!(disk
            .file_paths()
            .iter()
            .all(|p| !p.to_string_lossy().ends_with(".tmp")));
    });
}

// Guards invariant 5: leftover .tmp files (a roll cut short) are deleted at open and never
// read as segments.
#[test]
fn leftover_temporary_segments_are_deleted_at_open() {
    block_on(async {
        let disk = MemDisk::new();
        let dir = Path::new(DIR);
        let (mut wal, _) = Wal::open(disk.clone(), dir, small_options(8192), 0)
            .await
            .unwrap();
        wal.append(&entries(1, 2, 1, 10), None).await.unwrap();
        wal.close().await.unwrap();
        let junk = dir.join("0000000000000007.tmp");
        disk.create_file(&junk).await.unwrap();
        let (_, recovered) = Wal::open(disk.clone(), dir, small_options(8192), 0)
            .await
            .unwrap();
        assert_eq!(recovered.entries, entries(1, 2, 1, 10));
        assert!(!disk.file_paths().contains(&junk));
    });
}

// Guards invariant 5: a missing segment in the middle is a hard error, never a silent gap.
#[test]
fn a_missing_middle_segment_is_a_hard_error() {
    block_on(async {
        let disk = MemDisk::new();
        let dir = Path::new(DIR);
        let (mut wal, _) = Wal::open(disk.clone(), dir, small_options(8192), 0)
            .await
            .unwrap();
        for index in 1..=4 {
            wal.append(&entries(index, 1, 1, 3000), None).await.unwrap();
        }
        wal.close().await.unwrap();
        let missing: PathBuf = dir.join(&segment_names(&disk)[1]);
        disk.remove_file(&missing).await.unwrap();
        let result = Wal::open(disk.clone(), dir, small_options(8192), 0).await;
        match result {
            Err(WalError::Corrupt {
                reason:
                    CorruptReason::SequenceGap {
                        seq_expected: 1,
                        seq_found: 2,
                    },
                ..
            }) => {}
            other => panic!("expected a sequence gap, got {other:?}"),
        }
    });
}

// Guards option validation at open.
#[test]
fn unusable_options_are_refused_at_open() {
    block_on(async {
        let options = WalOptions {
            segment_size_bytes: 5000,
            ..WalOptions::default()
        };
        let result = Wal::open(MemDisk::new(), Path::new(DIR), options, 0).await;
        assert!(matches!(result, Err(WalError::InvalidOptions { .. })));
    });
}

// Guards SyncMode::None: no syncs at all on the append path, and the data is still written.
#[test]
fn sync_mode_none_appends_without_syncing() {
    block_on(async {
        let disk = MemDisk::new();
        let options = WalOptions {
            sync_mode: SyncMode::None,
            ..small_options(8192)
        };
        let (mut wal, _) = Wal::open(disk.clone(), Path::new(DIR), options.clone(), 0)
            .await
            .unwrap();
        let syncs = disk.sync_count();
        for index in 1..=5 {
            wal.append(&entries(index, 1, 1, 3000), None).await.unwrap();
        }
        assert_eq!(disk.sync_count(), syncs);
        wal.close().await.unwrap();
        let (_, recovered) = Wal::open(disk, Path::new(DIR), options, 0).await.unwrap();
        assert_eq!(recovered.entries, entries(1, 5, 1, 3000));
    });
}

// Guards a batch larger than a whole segment: it is written whole into its own segment.
#[test]
fn a_batch_larger_than_a_segment_gets_a_segment_of_its_own() {
    block_on(async {
        let disk = MemDisk::new();
        let (mut wal, _) = Wal::open(disk.clone(), Path::new(DIR), small_options(8192), 0)
            .await
            .unwrap();
        wal.append(&entries(1, 1, 1, 10), None).await.unwrap();
        wal.append(&entries(2, 4, 1, 5000), None).await.unwrap();
        wal.append(&entries(6, 1, 1, 10), None).await.unwrap();
        wal.close().await.unwrap();
        assert_eq!(segment_names(&disk).len(), 3);
        let (_, recovered) = Wal::open(disk, Path::new(DIR), small_options(8192), 0)
            .await
            .unwrap();
        let mut want = entries(1, 1, 1, 10);
        want.extend(entries(2, 4, 1, 5000));
        want.extend(entries(6, 1, 1, 10));
        assert_eq!(recovered.entries, want);
    });
}
