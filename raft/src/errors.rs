//! Error types: one crate-wide [`RaftError`] plus per-operation enums where callers react
//! differently (proposals, storage, configuration, conf-change decoding).

use thiserror::Error;

use crate::message::MessageKind;
use crate::types::{LogIndex, NodeId, Term};

/// Errors of [`crate::LogStorage`] reads (returned by the server's implementation).
#[derive(Clone, PartialEq, Eq, Debug, Error)]
pub enum StorageError {
    /// The requested index is below the first available index (released behind a snapshot).
    #[error("requested index is unavailable due to compaction")]
    Compacted,
    /// The requested index is above the last index.
    #[error("requested entry at index is unavailable")]
    Unavailable,
    /// The snapshot being applied is older than the storage's current one.
    #[error("requested index is older than the existing snapshot")]
    SnapshotOutOfDate,
    /// No snapshot new enough exists yet; the leader will retry later.
    #[error("snapshot is temporarily unavailable")]
    SnapshotTemporarilyUnavailable,
    /// Anything else (I/O, corruption), described by the implementation.
    #[error("storage error: {0}")]
    Other(String),
}

/// Invalid [`crate::Config`] values.
#[derive(Clone, PartialEq, Eq, Debug, Error)]
pub enum ConfigError {
    /// `id` must not be 0.
    #[error("config: id must not be 0")]
    ZeroId,
    /// `heartbeat_ticks` must be >= 1.
    #[error("config: heartbeat_ticks must be >= 1")]
    ZeroHeartbeatTicks,
    /// `election_ticks` must exceed `heartbeat_ticks`.
    #[error(
        "config: election_ticks ({election_ticks}) must be greater than heartbeat_ticks \
         ({heartbeat_ticks})"
    )]
    ElectionNotAboveHeartbeat {
        /// Configured election timeout (ticks).
        election_ticks: u32,
        /// Configured heartbeat interval (ticks).
        heartbeat_ticks: u32,
    },
    /// `inflight_msgs_max` must be >= 1.
    #[error("config: inflight_msgs_max must be >= 1")]
    ZeroInflightMsgs,
    /// `msg_size_bytes_max` must be >= 1.
    #[error("config: msg_size_bytes_max must be >= 1")]
    ZeroMsgSize,
    /// `uncommitted_size_bytes_max` must be >= 1.
    #[error("config: uncommitted_size_bytes_max must be >= 1")]
    ZeroUncommittedSize,
}

/// Why `ConfChange::decode` refused its input.
#[derive(Clone, PartialEq, Eq, Debug, Error)]
pub enum ConfChangeDecodeError {
    /// Shorter than the fixed header.
    #[error("conf change: truncated ({len_bytes} bytes)")]
    Truncated {
        /// Bytes received.
        len_bytes: usize,
    },
    /// Unknown encoding version.
    #[error("conf change: unknown version {version}")]
    UnknownVersion {
        /// Version byte found.
        version: u8,
    },
    /// Unknown change kind.
    #[error("conf change: unknown kind code {code}")]
    UnknownKind {
        /// Kind byte found.
        code: u8,
    },
    /// Context length field disagrees with the bytes present.
    #[error("conf change: context length field says {expected} bytes, {actual} present")]
    ContextLength {
        /// Length from the header (bytes).
        expected: usize,
        /// Bytes actually present after the header.
        actual: usize,
    },
    /// Node id 0 is never a member.
    #[error("conf change: node id 0")]
    ZeroNodeId,
}

/// Why a proposal was not appended (the caller may retry, possibly at another node).
#[derive(Clone, PartialEq, Eq, Debug, Error)]
pub enum ProposeError {
    /// No leader is known (election in progress, or partitioned).
    #[error("proposal dropped: no leader")]
    NoLeader,
    /// The leader is handing leadership over and accepts no proposals meanwhile.
    #[error("proposal dropped: leadership transfer to {transferee} in progress")]
    LeaderTransferring {
        /// Node taking over.
        transferee: NodeId,
    },
    /// The leader's uncommitted tail is over `uncommitted_size_bytes_max`.
    #[error(
        "proposal dropped: uncommitted log is {uncommitted_size_bytes} bytes, \
         max {uncommitted_size_bytes_max}"
    )]
    UncommittedSizeExceeded {
        /// Payload bytes appended but not yet committed.
        uncommitted_size_bytes: u64,
        /// Configured maximum (bytes).
        uncommitted_size_bytes_max: u64,
    },
    /// This node was removed from the group (or never was a member).
    #[error("proposal dropped: this node is not a member")]
    NotAMember,
    /// A previous membership change is not applied yet (one change at a time).
    #[error("conf change dropped: change at {pending_index} not yet applied (applied {applied})")]
    ConfChangePending {
        /// Index of the pending change.
        pending_index: LogIndex,
        /// Index the application has applied.
        applied: LogIndex,
    },
    /// The change is not valid against the current membership.
    #[error("conf change refused: {reason}")]
    ConfChangeInvalid {
        /// Why.
        reason: String,
    },
}

/// Errors of [`crate::RawNode`] operations.
#[derive(Clone, PartialEq, Eq, Debug, Error)]
pub enum RaftError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The log storage failed.
    #[error("log storage: {0}")]
    Storage(#[from] StorageError),
    /// A message addressed to another node was stepped into this one.
    #[error("message {kind:?} from {from} is addressed to {to}, this node is {id}")]
    NotAddressedToMe {
        /// Message kind.
        kind: MessageKind,
        /// Sender.
        from: NodeId,
        /// Addressee.
        to: NodeId,
        /// This node.
        id: NodeId,
    },
    /// A peer sent a message that breaks the protocol's shape rules (ignored, reported).
    #[error("invalid {kind:?} from {from} at term {term}: {reason}")]
    InvalidMessage {
        /// Message kind.
        kind: MessageKind,
        /// Sender.
        from: NodeId,
        /// Message term.
        term: Term,
        /// What is wrong.
        reason: String,
    },
    /// A leader asked this node to overwrite an entry it knows is committed: a safety
    /// violation by the peer (or corrupted state). The message was ignored.
    #[error("append from {from} conflicts at {conflict_index}, below commit index {commit}")]
    ConflictBelowCommit {
        /// Sender.
        from: NodeId,
        /// First conflicting index.
        conflict_index: LogIndex,
        /// This node's commit index.
        commit: LogIndex,
    },
    /// `bootstrap` was called on a node whose storage already holds a log or state.
    #[error("bootstrap needs empty storage; last index is {last_index}")]
    NotEmpty {
        /// Storage's last index.
        last_index: LogIndex,
    },
    /// `bootstrap` was called with no peers.
    #[error("bootstrap needs at least one peer")]
    NoPeers,
    /// The stored state is inconsistent with itself or the config.
    #[error("inconsistent stored state: {reason}")]
    InconsistentState {
        /// What is inconsistent.
        reason: String,
    },
    /// A campaign was refused (not a voter, snapshot pending, unapplied conf changes).
    #[error("campaign refused: {reason}")]
    CampaignRefused {
        /// Why.
        reason: String,
    },
    /// A conf change entry did not decode.
    #[error(transparent)]
    ConfChangeDecode(#[from] ConfChangeDecodeError),
    /// A committed conf change is invalid against the current membership (every member
    /// refuses it identically, so membership stays consistent).
    #[error("conf change refused: {reason}")]
    ConfChangeInvalid {
        /// Why.
        reason: String,
    },
}
