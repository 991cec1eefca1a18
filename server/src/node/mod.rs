//! The node: one Raft member's core thread (glommio) and the handle the tokio
//! edge uses to reach it.
//!
//! Contract between edge and core (see ARCHITECTURE.md "The write path"):
//! 1. The edge encodes a request as a Raft entry payload (with a proposal id)
//!    and sends it over a bounded channel; a full channel makes the edge wait.
//! 2. Each core turn drains every pending request into one Raft batch, so one
//!    WAL write + fdatasync serves all of them.
//! 3. The core applies committed entries, publishes a new read view, and only
//!    then completes the waiting clients' oneshots: a client that saw its
//!    write acknowledged reads it back from the published view.
//! 4. Linearizable reads ask the core for a read index (batched: one Raft
//!    read-index round serves every read that arrived meanwhile) and are
//!    released once the applied index reaches it.

mod core;
mod core_cluster;
mod core_leases;
mod core_storage;
mod handle;
mod ids;
mod log;
mod proposals;
mod reads;
mod shared;
mod start;

pub(crate) use handle::NodeHandle;
pub(crate) use shared::{Published, Shared};
pub(crate) use start::{start, RunningNode};

use crate::api::errors::ApiError;
use crate::proto::etcdserverpb::{
    CompactionResponse, DeleteRangeResponse, LeaseGrantResponse, LeaseRevokeResponse, PutResponse,
    TxnResponse,
};

/// What applying one request produced.
#[derive(Debug, Clone)]
pub(crate) enum ApplyOutput {
    Put(PutResponse),
    DeleteRange(DeleteRangeResponse),
    Txn(TxnResponse),
    Compact(CompactionResponse),
    LeaseGrant(LeaseGrantResponse),
    LeaseRevoke(LeaseRevokeResponse),
    /// Internal: nobody waits for a checkpoint's answer.
    LeaseCheckpoint,
    /// A membership change: every member after it.
    Members(Vec<crate::proto::keelpb::Member>),
    /// An alarm change: the alarms after it.
    Alarm(crate::proto::etcdserverpb::AlarmResponse),
}

/// The answer a proposing client waits for.
pub(crate) type ApplyResult = Result<ApplyOutput, ApiError>;

/// A request from the edge to the core.
pub(crate) enum CoreRequest {
    /// Propose an encoded `keelpb::InternalRequest` whose header carries `id`.
    Propose {
        id: u64,
        data: bytes::Bytes,
        reply: tokio::sync::oneshot::Sender<ApplyResult>,
    },
    /// Answer once a linearizable read may be served from the published view.
    ReadIndex {
        reply: tokio::sync::oneshot::Sender<Result<(), ApiError>>,
    },
    /// A lease keep-alive (leader only): the lease's granted TTL.
    LeaseRenew {
        id: i64,
        reply: tokio::sync::oneshot::Sender<Result<i64, ApiError>>,
    },
    /// A lease's remaining and granted TTL and its keys.
    LeaseTimeToLive {
        id: i64,
        reply: tokio::sync::oneshot::Sender<Result<LeaseInfo, ApiError>>,
    },
    /// Every lease id.
    LeaseLeases {
        reply: tokio::sync::oneshot::Sender<Vec<i64>>,
    },
    /// Raft messages from peers.
    Step { messages: Vec<keel_raft::Message> },
    /// The transport could not reach a peer.
    Unreachable { id: u64 },
    /// A peer refused this member's messages: it was removed from the cluster.
    RemovedFromCluster,
    /// Stop the core (the member is shutting down). The transport holds an
    /// inbox sender, so the inbox never disconnects while the core lives.
    Shutdown,
    /// The checkpoint thread wrote a checkpoint (or failed to).
    CheckpointDone {
        /// Which store the job belongs to (a snapshot install replaces it).
        generation: u64,
        job: Box<keel_btree::CheckpointJob>,
        result: Result<keel_btree::CheckpointStats, keel_btree::BtreeError>,
    },
    /// A store snapshot from the leader, received into `path`: step its
    /// Raft message; the file is swapped in when Raft installs it.
    SnapshotReceived {
        message: Box<keel_raft::Message>,
        path: std::path::PathBuf,
    },
    /// The transport finished sending a store snapshot to `to`.
    SnapshotSent { to: u64, ok: bool },
    /// Maintenance.Defragment: answer once the compact file is swapped in.
    Defragment {
        reply: tokio::sync::oneshot::Sender<Result<(), ApiError>>,
    },
    /// A membership change; `id` is also in the change's context.
    ProposeConfChange {
        id: u64,
        change: keel_raft::ConfChange,
        reply: tokio::sync::oneshot::Sender<ApplyResult>,
    },
    /// Hand leadership to `target` (leader only).
    TransferLeader {
        target: u64,
        reply: tokio::sync::oneshot::Sender<Result<(), ApiError>>,
    },
    /// Raft's status, with follower progress on the leader.
    RaftStatus {
        reply: tokio::sync::oneshot::Sender<keel_raft::Status>,
    },
}

/// A lease as TimeToLive reports it.
#[derive(Debug, Clone)]
pub(crate) struct LeaseInfo {
    /// Seconds left on the leader's clock.
    pub(crate) remaining_ttl_secs: i64,
    /// The granted TTL in seconds.
    pub(crate) granted_ttl_secs: i64,
    pub(crate) keys: Vec<bytes::Bytes>,
}

/// Bound of the edge -> core channel (requests waiting for the next turn).
pub(crate) const INBOX_CAPACITY: usize = 8192;
