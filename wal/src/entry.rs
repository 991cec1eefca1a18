//! The values the WAL stores for its caller: entries, the state record, snapshot markers, and
//! what recovery hands back. They know nothing of Raft; the server maps its types onto them.

use std::path::PathBuf;

use bytes::Bytes;

/// One log entry. `index` is 1-based and ascending in the log; `kind` and `data` are opaque.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalEntry {
    /// Position in the log, >= 1.
    pub index: u64,
    /// The term the entry was created in (opaque to the WAL).
    pub term: u64,
    /// Caller-defined kind byte (opaque to the WAL).
    pub kind: u8,
    /// Caller-defined payload (opaque to the WAL).
    pub data: Bytes,
}

/// The state record (Raft's hard state): three u64s, opaque to the WAL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WalState {
    /// Current term.
    pub term: u64,
    /// Vote in the current term (0 = none).
    pub vote: u64,
    /// Commit index.
    pub commit: u64,
}

/// A snapshot marker: "the log is covered by a snapshot up to and including `index`".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SnapshotMarker {
    /// Last log index covered by the snapshot.
    pub index: u64,
    /// Term of that entry.
    pub term: u64,
}

/// What [`crate::Wal::open`] recovered.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Recovered {
    /// The last state record written, if any.
    pub state: Option<WalState>,
    /// The last snapshot marker written, if any.
    pub snapshot: Option<SnapshotMarker>,
    /// Contiguous, ascending entries with `index >= replay_from`, after suffix-overwrite
    /// resolution (a later record for index i replaces every earlier entry >= i).
    pub entries: Vec<WalEntry>,
    /// The torn final write that recovery cut off, if any (also logged with `tracing::warn!`).
    pub torn_tail: Option<TornTail>,
}

/// A torn final write that recovery removed from the last segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// The segment file that was cut.
    pub segment: PathBuf,
    /// Byte offset where the cut starts: the start of the torn batch. Everything from here to
    /// the end of the file was zeroed (truncated and re-preallocated).
    pub offset_bytes: u64,
    /// What was wrong (first bad record and its offset).
    pub reason: String,
}
