//! Errors of keel-btree: what a caller can get back from the MVCC store, from decoding a stored
//! revision, and from the consistency checks used by tests.

use bytes::Bytes;

use crate::mvcc::Revision;
use crate::tree::TreeCheckError;

/// Why a read or a compaction at a revision was refused (etcd's `ErrCompacted` and
/// `ErrFutureRev`). The server maps these to etcd's wire errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MvccError {
    /// The revision asked for is below what compaction kept (or, for `compact`, at or below
    /// the revision already compacted).
    #[error(
        "mvcc: required revision has been compacted (compacted revision {compacted_revision})"
    )]
    Compacted {
        /// The store's compacted revision.
        compacted_revision: i64,
    },
    /// The revision asked for is above the store's current revision.
    #[error(
        "mvcc: required revision is a future revision (requested {requested}, current {current})"
    )]
    FutureRevision {
        /// The revision asked for.
        requested: i64,
        /// The current revision of the store (or of the write transaction) asked.
        current: i64,
    },
}

/// Why bytes are not an encoded [`Revision`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RevisionDecodeError {
    /// An encoded revision is exactly [`Revision::ENCODED_LEN_BYTES`] long.
    #[error("encoded revision is {len_bytes} bytes, expected 16")]
    Length {
        /// Length of the bytes given.
        len_bytes: usize,
    },
    /// A part has its sign bit set; stored revisions are never negative.
    #[error("encoded revision {main}.{sub} has a negative part")]
    Negative {
        /// Decoded main part.
        main: i64,
        /// Decoded sub part.
        sub: i64,
    },
}

/// A broken invariant of the MVCC store found by `MvccStore::check`: always a bug in this crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreCheckError {
    /// The record tree (revision -> record) is malformed.
    #[error("record tree: {0}")]
    RecordTree(TreeCheckError),
    /// The revision index tree (key -> generations) is malformed.
    #[error("revision index tree: {0}")]
    IndexTree(TreeCheckError),
    /// A key's generations break a rule of `KeyIndex` (see `mvcc/key_index.rs`).
    #[error("key index of {key:?}: {reason}")]
    KeyIndex {
        /// The key.
        key: Bytes,
        /// The rule broken.
        reason: &'static str,
    },
    /// The index names a revision that has no record, or a record of another key or kind.
    #[error("revision {revision} of key {key:?}: {reason}")]
    Record {
        /// The key whose index names the revision.
        key: Bytes,
        /// The revision.
        revision: Revision,
        /// What is wrong with its record.
        reason: &'static str,
    },
    /// Records that no key index names (counts differ).
    #[error("{records} records but the index names {indexed} revisions")]
    Orphans {
        /// Records stored.
        records: usize,
        /// Revisions named by the index.
        indexed: usize,
    },
    /// A stored revision is above the store's revision or at/below a compaction that removed it.
    #[error("revision {revision}: {reason}")]
    Revision {
        /// The revision.
        revision: Revision,
        /// What is wrong.
        reason: &'static str,
    },
}
