//! Errors of keel-btree: storage failures ([`BtreeError`], with the file and page of any
//! corruption), MVCC refusals ([`MvccError`]), revision decoding, and the consistency checks.

use std::io;
use std::path::PathBuf;

use bytes::Bytes;

use crate::mvcc::Revision;
use crate::page::PageId;

/// What the store can fail with. Storage errors name the file (and, for corruption, the page);
/// MVCC refusals are wrapped so one `?` carries both.
#[derive(Debug, thiserror::Error)]
pub enum BtreeError {
    /// An I/O call on the file or its directory failed.
    #[error("{}: I/O error: {source}", path.display())]
    Io {
        /// The file (or directory) the call was on.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// Bytes read from the file are not what keel wrote there. Never read as data.
    #[error("{}: page {page_id} is corrupt: {reason}", path.display())]
    Corrupt {
        /// The page file.
        path: PathBuf,
        /// The page whose bytes failed verification.
        page_id: PageId,
        /// What failed.
        reason: Corruption,
    },
    /// An MVCC read or compaction was refused (compacted or future revision).
    #[error(transparent)]
    Mvcc(#[from] MvccError),
    /// An earlier checkpoint failed (a write or fsync error): what is on the media is unknown,
    /// so the store takes no further checkpoints and must be reopened (the WAL replays from the
    /// last durable checkpoint); reads and in-memory commits still work. Or the undo of a write
    /// transaction failed: the writer's trees are unknown, so writes are refused too.
    #[error("{}: store failed earlier and must be reopened: {reason}", path.display())]
    Poisoned {
        /// The page file.
        path: PathBuf,
        /// The first failure.
        reason: String,
    },
    /// The options cannot be used (a page size that is not a power of two in 512..=65536).
    #[error("invalid store options: {reason}")]
    InvalidOptions {
        /// What is wrong.
        reason: String,
    },
    /// An operation of this write transaction failed earlier; the transaction was undone.
    #[error("write transaction failed earlier and was undone: {reason}")]
    TxnFailed {
        /// The first error.
        reason: String,
    },
    /// `MvccStore::check` found a broken invariant: a bug in keel-btree.
    #[error("store check failed: {0}")]
    Check(#[from] StoreCheckError),
}

/// Why the bytes of a page were rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Corruption {
    /// The stored CRC-32 differs from the one computed over the checked bytes.
    #[error("checksum mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    Checksum {
        /// The checksum in the page.
        stored: u32,
        /// The checksum of the bytes read.
        computed: u32,
    },
    /// The page is of another kind than the reference to it says.
    #[error("expected a {expected} page, found kind byte {found}")]
    Kind {
        /// The kind expected.
        expected: &'static str,
        /// The kind byte found.
        found: u8,
    },
    /// A format version this build does not know.
    #[error("unknown format version {found}")]
    Version {
        /// The version byte found.
        found: u8,
    },
    /// A valid page that names another page id: a misdirected or lost write.
    #[error("page records id {found}")]
    MisplacedPage {
        /// The id the page records.
        found: u64,
    },
    /// A reference to a page at or beyond the end of the file's pages.
    #[error("reference beyond the {page_count} pages of the file")]
    OutOfFile {
        /// Pages the meta page says the file has.
        page_count: u64,
    },
    /// Neither meta page is valid: not a keel page file, or both metas destroyed.
    #[error("no valid meta page (not a keel page file, or both meta pages are damaged)")]
    NoValidMeta,
    /// A length, offset or count inside the page does not fit its layout.
    #[error("bad layout: {0}")]
    Layout(&'static str),
    /// A value inside a page is not a valid encoding (rkyv validation failed).
    #[error("bad value encoding: {0}")]
    Value(String),
}

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

/// A broken structural invariant of one tree, found by the check walk. `depth` counts from 1
/// at the root.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TreeCheckError {
    /// Keys are not strictly ascending within a node or across nodes.
    #[error("keys out of order at depth {depth}")]
    Unordered {
        /// Depth of the node.
        depth: usize,
    },
    /// A key lies outside the interval its parent's separators give the node.
    #[error("key outside its separator bounds at depth {depth}")]
    OutOfBounds {
        /// Depth of the node.
        depth: usize,
    },
    /// A node does not fit its page, or a non-root node is empty or a branch has one child.
    #[error("node at depth {depth} has {entries} entries in {size_bytes} bytes: {reason}")]
    Shape {
        /// Depth of the node.
        depth: usize,
        /// Entries (leaf) or children (branch).
        entries: usize,
        /// Encoded size.
        size_bytes: usize,
        /// The rule broken.
        reason: &'static str,
    },
    /// Leaves at different depths.
    #[error("leaf at depth {actual}, expected every leaf at depth {expected}")]
    UnevenDepth {
        /// Depth of the first leaf found.
        expected: usize,
        /// Depth of this leaf.
        actual: usize,
    },
    /// The recorded entry count differs from the entries found.
    #[error("tree records {recorded} entries but holds {counted}")]
    Len {
        /// What the tree's count says.
        recorded: u64,
        /// Entries found by the walk.
        counted: u64,
    },
}

/// A broken invariant of the MVCC store or the page file found by `MvccStore::check`: always a
/// bug in this crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreCheckError {
    /// A tree is malformed.
    #[error("tree {tree}: {error}")]
    Tree {
        /// Which tree.
        tree: &'static str,
        /// What is wrong.
        error: TreeCheckError,
    },
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
        records: u64,
        /// Revisions named by the index.
        indexed: u64,
    },
    /// A stored revision is above the store's revision or at/below a compaction that removed it.
    #[error("revision {revision}: {reason}")]
    Revision {
        /// The revision.
        revision: Revision,
        /// What is wrong.
        reason: &'static str,
    },
    /// Page accounting of the durable file is off: a page is both used and free, used twice,
    /// or neither (leaked).
    #[error("page {page_id}: {reason}")]
    Pages {
        /// The page.
        page_id: PageId,
        /// What is wrong.
        reason: &'static str,
    },
}

/// Shorthand for results of this crate.
pub(crate) type Result<T, E = BtreeError> = std::result::Result<T, E>;
