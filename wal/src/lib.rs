//! keel-wal: the durable, ordered, checksummed log under keel's Raft.
//!
//! It stores *entries* (index, term, kind byte, opaque data), a *state* record (term, vote,
//! commit) and *snapshot markers* (index, term) in segment files of a directory, and gives
//! them back after a restart. Each [`Wal::append`] is one buffer, written and then synced
//! with `fdatasync` ([`SyncMode::Fdatasync`]) or written durably in one call
//! ([`SyncMode::Dsync`]: `pwritev2(.., RWF_DSYNC)` on [`StdDisk`]): group commit happens in
//! the caller, which batches a whole Raft `Ready`.
//! The on-disk format is specified in `docs/design/wal-format.md`.
//!
//! What it is NOT: it knows nothing of Raft, etcd or gRPC types; it does not decide what to
//! keep (the caller calls [`Wal::release_before`]); it is not thread-safe (it runs on one
//! glommio core thread; futures are `!Send`); it does not cache entries for reads (the caller
//! keeps the recovered entries and what it appends).
//!
//! All I/O goes through the [`Disk`] trait: [`GlommioDisk`] (O_DIRECT + io_uring, inside a
//! glommio `LocalExecutor`; without CAP_IPC_LOCK set the executor's `io_memory` to between
//! 512 KiB and 2 MiB; [`SyncMode::Dsync`] is write + `fdatasync` there, the trait's default),
//! [`StdDisk`] (pwrite + fdatasync, or pwritev2 + RWF_DSYNC) and [`MemDisk`] (in memory, with
//! power-loss images, for tests). All three read and write the same format.
//!
//! # Contract with the caller
//! 1. `append(entries, state)`: `entries` are contiguous; `entries[0].index` is at most
//!    `last_index() + 1` (any value for an empty log) and above the last snapshot marker's
//!    index. Starting at or below `last_index()` replaces that suffix (Raft conflict
//!    resolution). Violations return [`WalError::NonContiguous`].
//! 2. When `append` or `save_snapshot_marker` returns `Ok`, the batch survives power loss
//!    (with [`SyncMode::Fdatasync`] or [`SyncMode::Dsync`]). When it returns `Err`, the batch may or may not survive,
//!    but never partly; after a write or sync error the WAL is poisoned: reopen it.
//! 3. `open` returns the last state, the last marker and the entries `>= replay_from`,
//!    contiguous and ascending, with suffix overwrites and snapshot jumps applied. A torn
//!    final write is cut off and reported in [`Recovered::torn_tail`]; any other damage is a
//!    [`WalError::Corrupt`] naming the file and byte offset.
//! 4. A marker past `last_index()` records an installed snapshot: entries are dropped and the
//!    log continues at `marker.index + 1`.
//! 5. `release_before(i)` deletes old segments whose entries are all `< i`; entries `>= i`
//!    are never lost. It may keep more than asked (see invariant 6).
//!
//! # Invariants
//! 1. Every batch starts on a 4096-byte boundary of its segment and is a whole number of
//!    blocks ending with one padding record: a write never touches a block that holds an
//!    acknowledged record, so a torn write cannot destroy acknowledged data.
//! 2. Entry records continue the log: each is at most one past the previous entry, or follows
//!    a snapshot marker, and no entry is written at or below the last marker's index.
//! 3. A batch is atomic on recovery: its records are applied only if every one of them
//!    verifies; entries precede the state record, so state never refers to missing entries.
//! 4. Damage in a segment other than the last, or damage in the last segment followed by a
//!    valid record of a *later* batch, is a hard error. Otherwise the damaged batch is the
//!    torn final write: it is cut off (truncate + re-preallocate + sync) from its first byte.
//! 5. Segments have consecutive sequence numbers. A new segment is prepared under a `.tmp`
//!    name and renamed only after its header and first batch are durable; `.tmp` files never
//!    hold acknowledged data and recovery deletes them. A prepared file's background
//!    zero-fill ([`Preallocation::Zeroed`]) finishes before any other operation on that file,
//!    so it never overwrites a batch.
//! 6. Every new segment starts with copies of the latest snapshot marker and state record;
//!    `release_before` deletes only the oldest segments, never the active one nor the one
//!    holding the last entry record, and makes each removal durable before the next. So the
//!    remaining segments always replay to the same state, last index and entries `>= i`.
//! 7. After a write or sync failure nothing more is written (the WAL is poisoned): the tail
//!    is unknown until recovery re-establishes it.
//! 8. An append's sync covers every byte the append relies on that is not durable yet, so
//!    [`SyncMode::Dsync`], whose durable write syncs only the range it writes (Linux
//!    `RWF_DSYNC` ends in `vfs_fsync_range` of that range), makes exactly what write +
//!    `fdatasync` makes durable. The append is one buffer (invariant 1), and all before it in
//!    its segment is durable already: earlier batches were made durable before they were
//!    acknowledged; a new segment's header travels in the same buffer as its first batch; a
//!    torn tail's cut is synced; and at open the last segment and the directory are synced,
//!    so bytes and names a killed process wrote but never synced cannot vanish under later
//!    appends. A segment's preallocated length (`fallocate`, zero-fill) is never relied on:
//!    a segment cut short by a power loss ends cleanly after its last durable batch.
//!
//! # Example
//! ```
//! use bytes::Bytes;
//! use keel_wal::{MemDisk, Wal, WalEntry, WalOptions, WalState};
//! use std::path::Path;
//!
//! futures::executor::block_on(async {
//!     let disk = MemDisk::new();
//!     let dir = Path::new("/data/wal");
//!     let (mut wal, recovered) = Wal::open(disk.clone(), dir, WalOptions::default(), 0).await?;
//!     assert!(recovered.entries.is_empty());
//!     let entry = WalEntry { index: 1, term: 1, kind: 0, data: Bytes::from_static(b"put a=1") };
//!     wal.append(&[entry.clone()], Some(&WalState { term: 1, vote: 1, commit: 1 })).await?;
//!     wal.close().await?;
//!
//!     let (wal, recovered) = Wal::open(disk, dir, WalOptions::default(), 0).await?;
//!     assert_eq!(recovered.entries, vec![entry]);
//!     assert_eq!(recovered.state, Some(WalState { term: 1, vote: 1, commit: 1 }));
//!     assert_eq!((wal.first_index(), wal.last_index()), (1, 1));
//!     Ok::<(), keel_wal::WalError>(())
//! })
//! .unwrap();
//! ```
#![deny(missing_docs)]

mod batch;
mod disk;
mod entry;
mod error;
mod options;
mod pipeline;
mod record;
mod recovery;
mod replay;
mod scan;
mod segment;
mod wal;

pub use disk::{
    Disk, DiskFile, GlommioBuffer, GlommioDisk, GlommioDiskFile, MemDisk, MemDiskFile, StdDisk,
    StdDiskFile, TornWrite, MEM_SECTOR_BYTES,
};
pub use entry::{Recovered, SnapshotMarker, TornTail, WalEntry, WalState};
pub use error::{CorruptReason, WalError};
pub use options::{Preallocation, SyncMode, WalOptions, SEGMENT_SIZE_BYTES_DEFAULT};
pub use segment::{BLOCK_SIZE_BYTES, SEGMENT_HEADER_BYTES};
pub use wal::Wal;

/// Decodes a segment image as recovery would, without touching any disk: `Ok(n)` is the
/// number of valid records, `Err` a description of the first problem. For fuzzing and
/// tooling; never panics on any input.
pub fn segment_verify(bytes: &[u8]) -> Result<usize, String> {
    let scan = scan::segment_scan(bytes).map_err(|reason| reason.to_string())?;
    let records = scan.batches.iter().map(|batch| batch.records.len()).sum();
    match scan.tail {
        scan::Tail::Clean => Ok(records),
        scan::Tail::Damaged {
            offset_bytes,
            problem,
            ..
        } => Err(format!("at byte offset {offset_bytes}: {problem}")),
    }
}

/// The header block of segment `seq` named after `first_index`, as the WAL writes it. For
/// fuzzing and tooling (build a segment image by appending batches after it).
pub fn segment_header_block(seq: u64, first_index: u64) -> Vec<u8> {
    let mut block = vec![0u8; SEGMENT_HEADER_BYTES as usize];
    segment::header_encode(segment::SegmentId { seq, first_index }, &mut block);
    block
}
