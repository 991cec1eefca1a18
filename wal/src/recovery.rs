//! Recovery at open: list the directory, drop `.tmp` files, check segment sequence numbers,
//! scan every segment in order, replay their batches, cut a torn tail off the last one
//! (crate docs, invariants 4-6), and make what was recovered durable (invariant 8).

use std::path::{Path, PathBuf};

use crate::disk::{Disk, DiskFile};
use crate::entry::{Recovered, TornTail};
use crate::error::{CorruptReason, WalError};
use crate::options::{Preallocation, WalOptions};
use crate::replay::{Replay, SegmentStats};
use crate::scan::{segment_scan, SegmentScan, Tail};
use crate::segment::{SegmentId, TMP_SUFFIX};

/// A segment that is part of the log.
#[derive(Debug, Clone)]
pub(crate) struct SegmentMeta {
    pub id: SegmentId,
    pub path: PathBuf,
    pub stats: SegmentStats,
}

/// The last segment, reopened for appending.
pub(crate) struct ActiveSegment<F> {
    pub file: F,
    /// Where the next batch goes: the end of the last valid batch (a block boundary).
    pub write_offset_bytes: u64,
}

pub(crate) struct RecoveryOutcome<F> {
    /// Oldest first; empty when the directory held no segment.
    pub segments: Vec<SegmentMeta>,
    pub active: Option<ActiveSegment<F>>,
    pub replay: Replay,
    pub torn_tail: Option<TornTail>,
}

impl<F> RecoveryOutcome<F> {
    pub fn recovered(&mut self) -> Recovered {
        Recovered {
            state: self.replay.state,
            snapshot: self.replay.marker,
            entries: std::mem::take(&mut self.replay.entries),
            torn_tail: self.torn_tail.clone(),
        }
    }
}

/// Lists segment files (sorted by sequence, checked consecutive) and removes `.tmp` files.
async fn segments_list<D: Disk>(disk: &D, dir: &Path) -> Result<Vec<SegmentId>, WalError> {
    let names = disk.list_dir(dir).await.map_err(WalError::io(dir))?;
    let mut ids = Vec::new();
    for name in names {
        if let Some(id) = SegmentId::parse(&name) {
            ids.push(id);
        } else if name.ends_with(TMP_SUFFIX) {
            // A prepared or half-installed segment: never acknowledged data (pipeline.rs).
            let path = dir.join(&name);
            disk.remove_file(&path).await.map_err(WalError::io(&path))?;
        }
    }
    ids.sort();
    for pair in ids.windows(2) {
        if pair[1].seq != pair[0].seq + 1 {
            return Err(WalError::Corrupt {
                segment: dir.join(pair[1].file_name()),
                offset_bytes: 0,
                reason: CorruptReason::SequenceGap {
                    seq_expected: pair[0].seq + 1,
                    seq_found: pair[1].seq,
                },
            });
        }
    }
    Ok(ids)
}

async fn file_read_all<F: DiskFile>(file: &F, path: &Path) -> Result<Vec<u8>, WalError> {
    let len_bytes = file.len_bytes().await.map_err(WalError::io(path))?;
    let len = usize::try_from(len_bytes).map_err(|_| WalError::Corrupt {
        segment: path.to_path_buf(),
        offset_bytes: 0,
        reason: CorruptReason::BadHeader {
            detail: format!("file of {len_bytes} bytes"),
        },
    })?;
    let mut bytes = vec![0u8; len];
    let read = file
        .read_at(0, &mut bytes)
        .await
        .map_err(WalError::io(path))?;
    bytes.truncate(read);
    Ok(bytes)
}

pub(crate) async fn recover<D: Disk>(
    disk: &D,
    dir: &Path,
    options: &WalOptions,
    replay_from: u64,
) -> Result<RecoveryOutcome<D::File>, WalError> {
    let ids = segments_list(disk, dir).await?;
    let mut outcome = RecoveryOutcome {
        segments: Vec::with_capacity(ids.len()),
        active: None,
        replay: Replay::new(replay_from),
        torn_tail: None,
    };
    for (position, &id) in ids.iter().enumerate() {
        let is_last = position + 1 == ids.len();
        let path = dir.join(id.file_name());
        let file = disk.open_file(&path).await.map_err(WalError::io(&path))?;
        let bytes = file_read_all(&file, &path).await?;
        let corrupt = |offset_bytes: u64, reason: CorruptReason| WalError::Corrupt {
            segment: path.clone(),
            offset_bytes,
            reason,
        };
        let scan = segment_scan(&bytes).map_err(|reason| corrupt(0, reason))?;
        drop(bytes);
        if scan.id != id {
            let detail = format!("header says {:?}, file name says {id:?}", scan.id);
            return Err(corrupt(0, CorruptReason::BadHeader { detail }));
        }
        let end_bytes = scan.end_bytes;
        let torn =
            tail_check(&scan, is_last).map_err(|(offset, reason)| corrupt(offset, reason))?;
        let mut stats = SegmentStats::default();
        for batch in scan.batches {
            for scanned in batch.records {
                outcome
                    .replay
                    .apply(scanned.record, &mut stats)
                    .map_err(|gap| {
                        let reason = CorruptReason::NonContiguousEntry {
                            expected: gap.expected,
                            got: gap.got,
                        };
                        corrupt(scanned.offset_bytes, reason)
                    })?;
            }
        }
        if let Some(reason) = torn {
            tail_cut(&file, &path, end_bytes, options).await?;
            tracing::warn!(
                segment = %path.display(),
                offset_bytes = end_bytes,
                %reason,
                "wal: cut off a torn final write"
            );
            outcome.torn_tail = Some(TornTail {
                segment: path.clone(),
                offset_bytes: end_bytes,
                reason,
            });
        }
        outcome.segments.push(SegmentMeta {
            id,
            path: path.clone(),
            stats,
        });
        if is_last {
            recovered_sync(disk, dir, &file, &path, options).await?;
            outcome.active = Some(ActiveSegment {
                file,
                write_offset_bytes: end_bytes,
            });
        } else {
            file.close().await.map_err(WalError::io(&path))?;
        }
    }
    Ok(outcome)
}

/// Invariant 8: a process killed between a write and its sync, or between a segment's rename
/// and the directory sync, leaves bytes and names that this process reads back (from the page
/// cache) but that a power loss could still take. Appends build on them, and a durable write
/// of a later batch (`SyncMode::Dsync`) does not sync them, so they are synced here, once,
/// before anything is appended: the last segment's data (earlier segments were closed only
/// after their last batch was durable) and the directory. Usually there is nothing dirty and
/// both syncs are cheap. Nothing to do without syncs (`SyncMode::None`).
async fn recovered_sync<D: Disk>(
    disk: &D,
    dir: &Path,
    file: &D::File,
    path: &Path,
    options: &WalOptions,
) -> Result<(), WalError> {
    if !options.sync_mode.is_durable() {
        return Ok(());
    }
    file.sync().await.map_err(WalError::io(path))?;
    disk.sync_dir(dir).await.map_err(WalError::io(dir))
}

/// Decides what a segment's tail means. `Ok(None)`: clean. `Ok(Some(reason))`: a torn final
/// write to cut off (last segment only). `Err`: corruption (invariant 5).
fn tail_check(scan: &SegmentScan, is_last: bool) -> Result<Option<String>, (u64, CorruptReason)> {
    let Tail::Damaged {
        offset_bytes,
        problem,
        later_record_offset_bytes,
    } = &scan.tail
    else {
        return Ok(None);
    };
    if let Some(later) = later_record_offset_bytes {
        let reason = CorruptReason::CorruptBeforeTail {
            first_problem: problem.to_string(),
            later_record_offset_bytes: *later,
        };
        return Err((*offset_bytes, reason));
    }
    if !is_last {
        return Err((*offset_bytes, problem.clone()));
    }
    Ok(Some(format!("at byte offset {offset_bytes}: {problem}")))
}

/// Removes everything from `end_bytes` on, so stale bytes can never be read as records later:
/// truncate, re-preallocate (new space reads as zeros), sync.
async fn tail_cut<F: DiskFile>(
    file: &F,
    path: &Path,
    end_bytes: u64,
    options: &WalOptions,
) -> Result<(), WalError> {
    file.set_len(end_bytes).await.map_err(WalError::io(path))?;
    // The active segment is in use at once: its tail is fallocated (zeroing it in the
    // background would race the appends), even with `Preallocation::Zeroed`.
    if options.preallocation != Preallocation::Grow && end_bytes < options.segment_size_bytes {
        file.allocate(options.segment_size_bytes)
            .await
            .map_err(WalError::io(path))?;
    }
    file.sync().await.map_err(WalError::io(path))
}
