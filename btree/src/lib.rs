//! keel-btree: keel's storage engine. A page file of fixed-size pages holds copy-on-write
//! B+trees (redb/LMDB style: writers copy the pages they change, readers keep reading the old
//! ones, two checksummed meta pages flip on commit, freed pages wait for their readers), and on
//! top of them etcd 3.4's revision model ([`MvccStore`]): every committed write transaction is
//! one revision, every key keeps its history as generations of revisions, reads can ask for any
//! revision not yet compacted, and watch history is replayed from the stored changes. Beside
//! the MVCC trees, six [`Bucket`]s hold the server's unversioned state (meta, leases, auth,
//! members, alarms), committed atomically with the MVCC changes of the same transaction.
//!
//! File layout, checksums, versioning: `docs/design/btree-format.md`; the MVCC model and the
//! algorithms: `docs/design/mvcc.md`.
//!
//! What it is NOT: it knows nothing of gRPC, protobuf, Raft, leases (a lease is an opaque id
//! stored with a value), auth or watchers (it returns events; the server fans them out), and
//! it runs no thread of its own: the caller drives checkpoints, compaction and
//! defragmentation in bounded steps.
//!
//! # Contract with the caller (the server's core thread)
//!
//! 1. One writer. [`MvccStore`] is owned by one thread; [`MvccStore::write_txn`] borrows it
//!    mutably, so at most one [`WriteTxn`] exists, and no read view can be taken while it is
//!    open (readers never see a half-applied transaction). One process opens a file at a time,
//!    and nothing else modifies it.
//! 2. One transaction = one revision. Its MVCC changes share main revision `revision() + 1`
//!    with sub revisions 0, 1, 2, ... in call order; [`WriteTxn::try_commit`] publishes them
//!    (and its bucket changes) and returns the events in order. A transaction without MVCC
//!    changes leaves the revision unchanged. Dropping a transaction undoes it (an undo log).
//!    After an operation returned an error the transaction is failed: commit undoes it and
//!    errs. If an undo itself fails (a corrupt page), the store refuses writes and
//!    checkpoints ([`BtreeError::Poisoned`]) until reopened.
//! 3. Applying is synchronous and does no I/O: a commit changes nodes in memory (dirty pages)
//!    and makes them visible to every [`ReadView`] taken afterwards. It is NOT durable.
//! 4. Durability: [`MvccStore::begin_checkpoint`]`(applied_index, metadata)` encodes every
//!    change since the last checkpoint into pages (CPU, on the writer's thread) and returns a
//!    [`CheckpointJob`]; [`CheckpointJob::run`] does the I/O (write pages, fsync, write the meta
//!    page, fsync) on any thread, while the writer goes on applying; once `run` returns `Ok`,
//!    the checkpoint is durable: any later crash reopens at it or at a later one.
//!    [`MvccStore::finish_checkpoint`] then releases the memory of what it wrote; only after
//!    it returns `Ok` may the caller release its log up to `applied_index`.
//!    [`MvccStore::open`] returns the last durable checkpoint's `applied_index` and `metadata`
//!    ([`Opened`]); replay the log after that index. A failed checkpoint poisons the store:
//!    no further checkpoint is taken ([`BtreeError::Poisoned`]), reads and commits still work,
//!    and the caller must reopen (and replay) to continue durably.
//! 5. Readers take a [`ReadView`] (O(1), `Send + Sync + 'static`) and may read it on any
//!    thread for as long as they like; it never changes and never blocks the writer. While a
//!    view lives, the pages it can reach are not reused, so long-lived views make the file
//!    grow.
//! 6. Revisions in reads: `<= 0` means the reader's current revision; above it is
//!    [`MvccError::FutureRevision`]; below the compacted revision is [`MvccError::Compacted`]
//!    (exactly the compacted revision is readable). etcd checks future before compacted; so do
//!    we.
//! 7. Compaction follows etcd: [`MvccStore::start_compaction`] refuses a revision at or below
//!    the last compaction (`Compacted`; before the first, 0 is accepted once) or above the
//!    current one (`FutureRevision`), and from then on reads below it fail. The removal runs in
//!    [`MvccStore::compact_step`]s of a bounded number of keys (first pass) or records (second
//!    pass), which the caller interleaves with applies; the same calls give the same store on
//!    every member. A compaction running at a checkpoint resumes after a restart.
//!    [`MvccStore::compact`] does it all at once.
//! 8. Defragmentation: [`MvccStore::start_defrag`] then [`MvccStore::defrag_step`]s (bounded)
//!    copy the live data compactly into `<file>.defrag` and catch up with changes made
//!    meanwhile; the step that finds nothing left swaps files (a pause of one step); the next
//!    checkpoint makes the new file durable and renames it over the old one. Views taken
//!    before keep reading the old file until dropped.
//! 9. Sizes for quota and status: [`MvccStore::size_bytes`] is the file's real size,
//!    [`MvccStore::size_in_use_bytes`] the pages in use. The quota decision is the caller's.
//! 10. Errors: storage failures are [`BtreeError`]s naming the file (and page, for
//!     corruption: bytes that fail verification are never read as data); MVCC refusals are
//!     [`MvccError`]s, wrapped as [`BtreeError::Mvcc`] by the `try_` methods. The methods
//!     without `try_` (`range`, `events`, `put`, `delete_range`, `commit`, `compact`) keep
//!     the in-memory store's signatures and panic on a storage error.
//! 11. Snapshots: [`ReadView::export`]`(out, applied_index, metadata)` writes a view as a new,
//!     compact, fsynced page file (built under a temporary name, then renamed) that
//!     [`MvccStore::open`] opens at exactly that view's state, with that `applied_index` and
//!     metadata; it runs on any thread while the writer goes on, in bounded memory.
//!
//! # Invariants
//!
//! 1. Every revision named by the revision index has exactly one record in the record tree,
//!    of the same key, and every record is named by the index ([`MvccStore::check`]), except
//!    that between the two passes of a running compaction, records at or below its revision
//!    may be named by none (no read returns them).
//! 2. The revisions of a key strictly increase, oldest first; a generation other than the
//!    last ends with its tombstone; the last holds none.
//! 3. Every stored main revision is at most the store's revision.
//! 4. Once a compaction finished, a key holds at most one revision at or below the compacted
//!    revision: its newest one there, and only if that is a put.
//! 5. Crash consistency: a checkpoint writes its pages, fsyncs, then writes meta slot
//!    `txn % 2`, then fsyncs; opening takes the valid meta with the highest txn id. So the
//!    meta the file opens with names only pages that were durable before it, and a torn meta
//!    leaves the previous checkpoint.
//! 6. Reclamation: a page released by a change is reused only by a checkpoint after the one
//!    that stopped referencing it became durable (so neither meta the file could open with
//!    references it), and only once no read view of a version that could reach it is alive.
//!    Pages of a checkpoint still running are read from memory, never from the file.
//! 7. Tree shape: every node fits its page; an entry takes at most a quarter page (longer
//!    items are blobs); non-root leaves hold an entry and branches two children; all leaves
//!    are at the same depth; keys strictly ascend within and across nodes.
//! 8. Every page is verified (checksum over the whole page, kind, its own id) before its bytes
//!    are used; a blob's checksum covers its payload. Each page is verified once per open.
//!
//! # Tests
//!
//! Property tests compare the trees with `BTreeMap` and [`MvccStore`] with a model that keeps
//! every change in a `Vec`, across commits, checkpoints, restarts, compaction steps and
//! defragmentation; a crash test injects power loss, failed fsyncs and failed writes at
//! random points and reopens from crash images. Randomized tests print their seed; rerun one
//! with `KEEL_TEST_SEED=<seed>`; `KEEL_LONG_TESTS=1` runs them longer.
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use keel_btree::{Bucket, DefragProgress, KeyRange, MvccStore, RangeOptions, StoreOptions};
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("keel.db");
//! let (mut store, opened) = MvccStore::open(&path, &StoreOptions::default())?;
//! assert!(opened.created);
//!
//! // Apply: one transaction per request; MVCC and bucket changes commit together.
//! let mut txn = store.write_txn();
//! txn.try_put(Bytes::from_static(b"foo"), Bytes::from_static(b"bar"), 0)?;
//! txn.bucket_put(Bucket::Meta, Bytes::from_static(b"term"), Bytes::from_static(b"7"))?;
//! let committed = txn.try_commit()?;
//! assert_eq!(committed.revision, 2);
//!
//! // Readers see it at once (not durable yet).
//! let all = KeyRange::FromKey(Bytes::new());
//! let view = store.read_view();
//! assert_eq!(view.try_range(&all, &RangeOptions::default())?.count, 1);
//!
//! // Checkpoint every N applies: CPU part here, I/O on any thread, then finish.
//! let mut job = store.begin_checkpoint(1, b"raft hard state")?;
//! std::thread::spawn(move || job.run().map(|_| job))
//!     .join()
//!     .expect("checkpoint thread")
//!     .and_then(|job| store.finish_checkpoint(job))?;
//! // Now the caller may release its log up to applied index 1.
//!
//! // Compaction and defragmentation advance in bounded steps between applies.
//! let mut txn = store.write_txn();
//! txn.try_put(Bytes::from_static(b"foo"), Bytes::from_static(b"baz"), 0)?;
//! txn.try_commit()?;
//! store.start_compaction(3)?;
//! while !store.compact_step(1000)?.done {}
//! store.start_defrag()?;
//! while !matches!(store.defrag_step(1000)?, DefragProgress::Swapped { .. }) {}
//! let (hash, compacted) = store.read_view().hash_kv(0)?;
//! store.checkpoint(2, b"raft hard state 2")?; // also renames the defragmented file in place
//! assert!(store.size_in_use_bytes() <= store.size_bytes());
//! drop((store, view));
//!
//! // Restart: O(1) open, then replay the log after the applied index.
//! let (store, opened) = MvccStore::open(&path, &StoreOptions::default())?;
//! assert_eq!(opened.applied_index, 2);
//! assert_eq!(&opened.checkpoint_metadata[..], b"raft hard state 2");
//! let view = store.read_view();
//! assert_eq!(view.try_range(&all, &RangeOptions::default())?.kvs[0].value, "baz");
//! assert_eq!(view.bucket_get(Bucket::Meta, b"term")?.as_deref(), Some(&b"7"[..]));
//! assert_eq!(view.hash_kv(0)?, (hash, compacted));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

mod bucket;
mod db;
mod defrag;
mod error;
mod freelist;
mod io;
mod meta;
mod mvcc;
mod node;
mod options;
mod page;
mod pager;
mod tree;

pub use bucket::Bucket;
pub use db::{CheckpointJob, CheckpointStats};
pub use defrag::DefragProgress;
pub use error::{
    BtreeError, Corruption, MvccError, RevisionDecodeError, StoreCheckError, TreeCheckError,
};
pub use io::{Faults, FileMap, MemIoCounts, MemPageIo, PageFile, PageIo, StdPageIo};
pub use mvcc::{
    Committed, CompactOutcome, CompactProgress, Event, EventKind, ExportStats, KeyRange, KeyValue,
    MvccStore, RangeOptions, RangeResult, ReadView, Revision, WriteTxn,
};
pub use options::{Opened, StoreOptions};
pub use page::{PageId, TxnId};
