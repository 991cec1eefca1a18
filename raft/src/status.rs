//! [`Status`]: a read-only summary of a node for the server's status endpoints and tests.

use std::collections::BTreeMap;

pub use crate::tracker::progress::ProgressState;
use crate::types::{LogIndex, NodeId, Role, Term};

/// What the leader knows about one member.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ProgressStatus {
    /// Highest index known replicated (inclusive).
    pub match_index: LogIndex,
    /// Next index to send.
    pub next_index: LogIndex,
    /// Replication state.
    pub state: ProgressState,
    /// Member does not vote.
    pub is_learner: bool,
    /// Heard from during the current check-quorum period.
    pub recent_active: bool,
    /// Append messages in flight (unacknowledged).
    pub inflight_msgs: usize,
}

/// A summary of one node.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Status {
    /// This node.
    pub id: NodeId,
    /// Current term.
    pub term: Term,
    /// Vote in the current term.
    pub vote: Option<NodeId>,
    /// Commit index (inclusive).
    pub commit: LogIndex,
    /// Applied index confirmed by the application (inclusive).
    pub applied: LogIndex,
    /// Known leader.
    pub leader_id: Option<NodeId>,
    /// Current role.
    pub role: Role,
    /// Last log index (durable or not).
    pub last_index: LogIndex,
    /// Members' progress; only on the leader.
    pub progress: Option<BTreeMap<NodeId, ProgressStatus>>,
}
