//! Plain data shared by every part of the crate: identifiers, log entries and durable state.
//!
//! Everything here is public with no hidden state so that the server can persist and serialize
//! it in its own formats (WAL records, gRPC messages).

use std::fmt;

use bytes::Bytes;

/// Declares a `u64` newtype with the derives STYLE.md §2 asks for.
macro_rules! u64_newtype {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
        pub struct $name(pub u64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }
    };
}

u64_newtype!(
    /// Identifies one member of a Raft group. `NodeId(0)` is never a valid member.
    NodeId,
    "n"
);
u64_newtype!(
    /// A Raft term (election epoch). Term 0 means "no term" (empty log, local message).
    Term,
    "t"
);
u64_newtype!(
    /// Position of an entry in the Raft log, starting at 1. Index 0 means "before the log".
    LogIndex,
    "i"
);

impl LogIndex {
    /// The next index (saturating; the log never reaches `u64::MAX`).
    pub fn next(self) -> LogIndex {
        LogIndex(self.0.saturating_add(1))
    }

    /// The previous index (saturating at 0).
    pub fn prev(self) -> LogIndex {
        LogIndex(self.0.saturating_sub(1))
    }
}

/// What an entry's `data` holds.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub enum EntryKind {
    /// Application data (or empty: the leader's no-op entry at the start of its term).
    #[default]
    Normal,
    /// An encoded [`crate::ConfChange`] (see [`crate::ConfChange::encode`]).
    ConfChange,
}

/// Fixed per-entry overhead counted in message size limits, on top of `data.len()` (bytes).
/// It approximates term + index + kind as the server frames them.
pub const ENTRY_OVERHEAD_BYTES: u64 = 24;

/// One Raft log entry.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Entry {
    /// Term of the leader that created the entry.
    pub term: Term,
    /// Position in the log (>= 1).
    pub index: LogIndex,
    /// How to interpret `data`.
    pub kind: EntryKind,
    /// Opaque payload.
    pub data: Bytes,
}

impl Entry {
    /// Size counted against `msg_size_bytes_max` and per-Ready limits: payload plus overhead.
    pub fn size_bytes(&self) -> u64 {
        self.data.len() as u64 + ENTRY_OVERHEAD_BYTES
    }

    /// Size counted against `uncommitted_size_bytes_max`: the payload only, as etcd does, so
    /// that empty entries (leader no-ops) never count.
    pub fn payload_size_bytes(&self) -> u64 {
        self.data.len() as u64
    }
}

/// State that must be durable before messages that depend on it are sent.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct HardState {
    /// Current term.
    pub term: Term,
    /// Candidate voted for in `term`, if any.
    pub vote: Option<NodeId>,
    /// Highest log index known to be committed (inclusive).
    pub commit: LogIndex,
}

impl HardState {
    /// True for the state of a node that never ran (all zero).
    pub fn is_empty(&self) -> bool {
        *self == HardState::default()
    }
}

/// Membership of a Raft group. Lists are sorted and disjoint.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct ConfState {
    /// Members that vote and count in quorums.
    pub voters: Vec<NodeId>,
    /// Members that receive the log but never vote or count in quorums.
    pub learners: Vec<NodeId>,
}

/// Identifies the state a snapshot captures.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct SnapshotMeta {
    /// Last log index covered by the snapshot (inclusive).
    pub index: LogIndex,
    /// Term of the entry at `index`.
    pub term: Term,
    /// Membership as of `index`.
    pub conf_state: ConfState,
}

/// A state machine snapshot: what the application had applied up to `meta.index`.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Snapshot {
    /// Position and membership.
    pub meta: SnapshotMeta,
    /// Opaque application state.
    pub data: Bytes,
}

impl Snapshot {
    /// True for the placeholder "no snapshot" (index 0).
    pub fn is_empty(&self) -> bool {
        self.meta.index == LogIndex(0)
    }
}

/// A linearizable read that is now safe: once the application has applied up to `index`, it
/// may answer the read identified by `request_ctx`.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct ReadState {
    /// Commit index of the leader when the read arrived (inclusive).
    pub index: LogIndex,
    /// The context passed to `RawNode::read_index`.
    pub request_ctx: Bytes,
}

/// The role a node plays in its current term.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub enum Role {
    /// Follows a leader (or waits for one).
    #[default]
    Follower,
    /// Asks whether it could win an election, without bumping its term (pre-vote).
    PreCandidate,
    /// Runs an election in its current term.
    Candidate,
    /// Leads the current term.
    Leader,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Role::Follower => "follower",
            Role::PreCandidate => "pre-candidate",
            Role::Candidate => "candidate",
            Role::Leader => "leader",
        };
        f.write_str(name)
    }
}

/// Volatile state worth telling the application about (no need to persist it).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct SoftState {
    /// The leader this node knows of in its current term.
    pub leader_id: Option<NodeId>,
    /// This node's role.
    pub role: Role,
}

/// Outcome of sending a snapshot to a follower, reported with `RawNode::report_snapshot`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SnapshotStatus {
    /// The follower received the whole snapshot.
    Finish,
    /// Sending failed; the leader will probe the follower again.
    Failure,
}

#[cfg(test)]
mod tests {
    use super::*;

    // Guards the Display forms used in logs and interaction-test output.
    #[test]
    fn newtypes_display_with_their_prefix() {
        assert_eq!(NodeId(3).to_string(), "n3");
        assert_eq!(Term(2).to_string(), "t2");
        assert_eq!(LogIndex(7).to_string(), "i7");
    }

    // Guards against underflow when computing "the entry before the first one".
    #[test]
    fn log_index_prev_saturates_at_zero() {
        assert_eq!(LogIndex(0).prev(), LogIndex(0));
        assert_eq!(LogIndex(5).prev(), LogIndex(4));
        assert_eq!(LogIndex(5).next(), LogIndex(6));
    }

    // Empty entries must not count against the uncommitted-size budget (etcd rule).
    #[test]
    fn empty_entry_has_no_payload_size() {
        let entry = Entry::default();
        assert_eq!(entry.payload_size_bytes(), 0);
        assert_eq!(entry.size_bytes(), ENTRY_OVERHEAD_BYTES);
    }
}
