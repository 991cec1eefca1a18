//! keel-btree: keel's MVCC store — a hand-written copy-on-write B+tree ([`BTree`]) and, on top
//! of it, etcd 3.4's revision model ([`MvccStore`]): every committed write transaction is one
//! revision, every key keeps its history as generations of revisions, reads can ask for any
//! revision not yet compacted, and watch history is replayed from the stored changes.
//!
//! This step is the in-memory form. The final form keeps this API and these algorithms and
//! moves the trees into a page file (mmap reads, meta-page flip, free list); see
//! `docs/design/mvcc.md`.
//!
//! What it is NOT: it knows nothing of gRPC, protobuf, Raft, leases (a lease is an opaque id
//! stored with a value), auth or watchers (it returns events; the server fans them out). It
//! does no I/O and keeps nothing across restarts yet.
//!
//! # Contract with the caller (the server's core thread)
//!
//! 1. One writer. [`MvccStore`] is owned by one thread; [`MvccStore::write_txn`] borrows it
//!    mutably, so at most one [`WriteTxn`] exists, and no read view can be taken while it is
//!    open (readers never see a half-applied transaction).
//! 2. One transaction = one revision. Its changes share main revision `revision() + 1` with sub
//!    revisions 0, 1, 2, ... in call order; [`WriteTxn::commit`] publishes them and returns the
//!    events in that order. A transaction that changed nothing (no put, and deletes that found
//!    nothing) leaves the revision unchanged and returns no events. Dropping a transaction
//!    without committing undoes its changes.
//! 3. Readers take a [`ReadView`] (O(1), `Send + Sync + 'static`) and may read it on any thread
//!    for as long as they like; it never changes and never blocks the writer. While a view is
//!    alive, the writer copies each tree node it changes that the view still shares (one path
//!    per key written), and memory for the old nodes is held until the last view of them goes.
//! 4. Revisions in reads: `<= 0` means the reader's current revision; above it is
//!    [`MvccError::FutureRevision`]; below the compacted revision is [`MvccError::Compacted`]
//!    (exactly the compacted revision is readable). etcd checks future before compacted; so do
//!    we.
//! 5. [`MvccStore::compact`] follows etcd: a revision at or below the last compaction is
//!    `Compacted` (before the first compaction, as etcd's initial -1, 0 is accepted once and a
//!    negative revision is `Compacted`), above the current revision `FutureRevision`. It runs to
//!    completion now, in bounded batches of keys (the online, interleaved form is a later step).
//! 6. Keys and values are kept as the `Bytes` handed in (zero copy). A `Bytes` that slices a
//!    larger buffer keeps all of that buffer alive for as long as the version is stored: hand in
//!    exact-size `Bytes` (for example `Bytes::copy_from_slice`) when the source is a big buffer.
//!
//! # Invariants (checked by [`MvccStore::check`] and [`BTree::check`])
//!
//! 1. Every revision named by the revision index has exactly one record in the record tree, of
//!    the same key, and every record is named by the index.
//! 2. The revisions of a key strictly increase, oldest first; a generation other than the last
//!    ends with its tombstone; the last holds none.
//! 3. Every stored main revision is at most the store's revision.
//! 4. Once [`MvccStore::compact`] returns, a key holds at most one revision at or below the
//!    compacted revision: its newest one there, and only if that is a put.
//! 5. Every tree node except the root is at least half full; all leaves are at the same depth;
//!    keys are strictly ascending within and across nodes.
//!
//! # Tests
//!
//! Property tests compare [`BTree`] with `std::collections::BTreeMap` and [`MvccStore`] with a
//! model that keeps every change in a `Vec`. Randomized tests print their seed; rerun one with
//! `KEEL_TEST_SEED=<seed>`; `KEEL_LONG_TESTS=1` runs them longer.
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use keel_btree::{EventKind, KeyRange, MvccError, MvccStore, RangeOptions};
//!
//! let mut store = MvccStore::new(); // revision 1
//! let mut txn = store.write_txn();
//! txn.put(Bytes::from_static(b"foo"), Bytes::from_static(b"bar"), 0);
//! txn.put(Bytes::from_static(b"zoo"), Bytes::from_static(b"1"), 0);
//! let committed = txn.commit();
//! assert_eq!(committed.revision, 2);
//! assert_eq!(committed.events.len(), 2);
//!
//! let view = store.read_view(); // a snapshot at revision 2
//! let mut txn = store.write_txn();
//! txn.delete_range(&KeyRange::Key(Bytes::from_static(b"foo")));
//! assert_eq!(txn.commit().events[0].kind, EventKind::Delete); // revision 3
//!
//! let all = KeyRange::FromKey(Bytes::new());
//! let now = store.read_view().range(&all, &RangeOptions::default()).unwrap();
//! assert_eq!(now.count, 1);
//! let then = view.range(&all, &RangeOptions::default()).unwrap();
//! assert_eq!(then.kvs[0].value, Bytes::from_static(b"bar"));
//!
//! store.compact(3).unwrap();
//! let at_2 = RangeOptions { revision: 2, ..RangeOptions::default() };
//! assert_eq!(
//!     store.read_view().range(&all, &at_2),
//!     Err(MvccError::Compacted { compacted_revision: 3 })
//! );
//! assert!(view.range(&all, &at_2).is_ok()); // the older view still has it
//! ```
#![deny(missing_docs)]

mod cursor;
mod error;
mod mvcc;
mod node;
mod tree;

pub use cursor::Range;
pub use error::{MvccError, RevisionDecodeError, StoreCheckError};
pub use mvcc::{
    Committed, CompactOutcome, Event, EventKind, KeyRange, KeyValue, MvccStore, RangeOptions,
    RangeResult, ReadView, Revision, WriteTxn,
};
pub use tree::{BTree, TreeCheckError, FANOUT_MAX_DEFAULT};
