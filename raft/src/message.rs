//! The messages Raft nodes exchange. All fields are public: the server frames them itself.

use bytes::Bytes;

use crate::types::{Entry, LogIndex, NodeId, Snapshot, Term};

/// What a [`Message`] asks or answers. Field use per kind is documented on each variant;
/// unused fields are zero/empty.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub enum MessageKind {
    /// Leader -> follower: `entries` follow the entry at (`index`, `log_term`); `commit` is the
    /// leader's commit index.
    #[default]
    Append,
    /// Follower -> leader. Accept: `index` = last index now matching the leader. Reject:
    /// `index` = the rejected `Append.index`, `reject_hint` / `log_term` = the follower's guess of
    /// the last matching position (fast back-off).
    AppendResponse,
    /// Candidate -> voter: vote for me in `term`; my last entry is (`index`, `log_term`).
    /// `context` = [`CAMPAIGN_TRANSFER_CONTEXT`] when a leader transfer forces the election.
    Vote,
    /// Voter -> candidate: `reject` = false grants the vote.
    VoteResponse,
    /// Pre-candidate -> voter: would you vote for me in `term` (my term + 1)?
    PreVote,
    /// Voter -> pre-candidate. A grant carries the asked-for term.
    PreVoteResponse,
    /// Leader -> follower: `commit` = min(follower match, leader commit); `context` = the
    /// read-index round being confirmed (8 bytes little-endian) or empty.
    Heartbeat,
    /// Follower -> leader: echoes the heartbeat's `context`.
    HeartbeatResponse,
    /// Leader -> follower: `snapshot` holds a snapshot to install.
    Snapshot,
    /// Follower -> leader: please confirm a linearizable read; `context` = request context.
    ReadIndex,
    /// Leader -> follower: the read identified by `context` is safe at `index`.
    ReadIndexResponse,
    /// Leader -> transfer target: start an election now, skipping pre-vote and leases.
    TimeoutNow,
    /// Any node -> leader: transfer leadership. Following etcd, `from` is the *transferee*.
    TransferLeader,
    /// Follower -> leader: a forwarded proposal; `entries` hold the proposed entries (index and
    /// term zero, the leader assigns them).
    Propose,
}

/// The `context` of a [`MessageKind::Vote`] that a leader transfer forced: such a vote request
/// is honoured even while the voter still hears from a leader (check-quorum lease).
pub const CAMPAIGN_TRANSFER_CONTEXT: &[u8] = b"CampaignTransfer";

/// One Raft message.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Message {
    /// What the message asks or answers.
    pub kind: MessageKind,
    /// Sender (for `TransferLeader`: the transferee).
    pub from: NodeId,
    /// Recipient.
    pub to: NodeId,
    /// Sender's term (a granted pre-vote response carries the pre-candidate's future term);
    /// zero for `Propose` and `ReadIndex`, which are not bound to a term.
    pub term: Term,
    /// Term of the entry at `index` (meaning per kind, see [`MessageKind`]).
    pub log_term: Term,
    /// A log position (meaning per kind, see [`MessageKind`]).
    pub index: LogIndex,
    /// Entries carried by `Append` and `Propose`.
    pub entries: Vec<Entry>,
    /// Sender's commit index (`Append`, `Heartbeat`).
    pub commit: LogIndex,
    /// True when a response refuses the request.
    pub reject: bool,
    /// Rejecting `AppendResponse`: the follower's best guess of the last matching index.
    pub reject_hint: LogIndex,
    /// The snapshot of a `Snapshot` message.
    pub snapshot: Option<Snapshot>,
    /// Opaque context (read-index request, heartbeat round, transfer campaign marker).
    pub context: Bytes,
}

impl Message {
    /// A message of `kind` from `from` to `to` with every other field empty.
    pub fn new(kind: MessageKind, from: NodeId, to: NodeId) -> Message {
        Message {
            kind,
            from,
            to,
            ..Message::default()
        }
    }

    /// True for kinds that responders send back (never start an action on the receiver).
    pub fn is_response(&self) -> bool {
        matches!(
            self.kind,
            MessageKind::AppendResponse
                | MessageKind::VoteResponse
                | MessageKind::PreVoteResponse
                | MessageKind::HeartbeatResponse
                | MessageKind::ReadIndexResponse
        )
    }
}
