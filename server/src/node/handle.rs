//! The edge's (tokio) handle on the core: propose a request and wait for its
//! result, wait for a linearizable read point, read the published view.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use prost::Message;
use tokio::sync::oneshot;

use super::ids::IdGenerator;
use super::{ApplyResult, CoreRequest, Published, Shared};
use crate::api::errors::ApiError;
use crate::proto::etcdserverpb::ResponseHeader;
use crate::proto::keelpb::{internal_request, InternalRequest, RequestHeader};

/// Cloneable; one per service.
#[derive(Clone)]
pub(crate) struct NodeHandle {
    inbox: flume::Sender<CoreRequest>,
    shared: Arc<Shared>,
    ids: Arc<IdGenerator>,
    max_request_bytes: usize,
    /// etcd's ReqTimeout: 5 s + 2 x election timeout.
    request_timeout: Duration,
}

impl NodeHandle {
    pub(crate) fn new(
        inbox: flume::Sender<CoreRequest>,
        shared: Arc<Shared>,
        max_request_bytes: u64,
        election_timeout: Duration,
    ) -> Self {
        let ids = Arc::new(IdGenerator::new(shared.member_id));
        NodeHandle {
            inbox,
            shared,
            ids,
            max_request_bytes: usize::try_from(max_request_bytes).unwrap_or(usize::MAX),
            request_timeout: Duration::from_secs(5) + 2 * election_timeout,
        }
    }

    /// Replicates `request` through Raft and returns what applying it gave.
    pub(crate) async fn propose(&self, request: internal_request::Request) -> ApplyResult {
        self.propose_with(request, true).await
    }

    /// A physical compaction: the request deadline (etcd's ReqTimeout)
    /// covers replication and apply only; the answer then waits for the
    /// removal to finish, however long (the core answers every held
    /// compaction, or fails it when it stops). The client's deadline applies.
    pub(crate) async fn propose_physical_compaction(
        &self,
        request: internal_request::Request,
    ) -> ApplyResult {
        self.propose_with(request, false).await
    }

    async fn propose_with(
        &self,
        request: internal_request::Request,
        answer_deadline: bool,
    ) -> ApplyResult {
        let id = self.ids.next();
        let data = InternalRequest {
            header: Some(RequestHeader {
                id,
                proposer: self.shared.member_id,
            }),
            request: Some(request),
        }
        .encode_to_vec();
        // etcd compares the encoded internal request with --max-request-bytes.
        if data.len() > self.max_request_bytes {
            return Err(ApiError::RequestTooLarge);
        }
        let (reply, answer) = oneshot::channel();
        let request = CoreRequest::Propose {
            id,
            data: Bytes::from(data),
            reply,
        };
        if answer_deadline {
            self.send(request, answer).await?
        } else {
            self.send_then_wait(request, answer).await?
        }
    }

    /// Like `send`, but only the hand-over to the core has a deadline.
    async fn send_then_wait<T>(
        &self,
        request: CoreRequest,
        answer: oneshot::Receiver<T>,
    ) -> Result<T, ApiError> {
        let deadline = tokio::time::Instant::now() + self.request_timeout;
        self.hand_over(request, deadline).await?;
        answer.await.map_err(|_| ApiError::Stopped)
    }

    /// Puts `request` in the core's inbox, waiting for room until `deadline`.
    async fn hand_over(
        &self,
        request: CoreRequest,
        deadline: tokio::time::Instant,
    ) -> Result<(), ApiError> {
        if self.shared.is_stopped() {
            return Err(ApiError::Stopped);
        }
        match tokio::time::timeout_at(deadline, self.inbox.send_async(request)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(ApiError::Stopped),
            Err(_) => Err(ApiError::Timeout),
        }
    }

    /// A fresh id for a lease the client did not name (etcd: positive ids
    /// from the member's request id generator).
    pub(crate) fn new_lease_id(&self) -> i64 {
        loop {
            let id = (self.ids.next() & (i64::MAX as u64)) as i64;
            if id != 0 {
                return id;
            }
        }
    }

    /// Renews a lease on this member, which must be the leader: its granted TTL.
    pub(crate) async fn lease_renew_local(&self, id: i64) -> Result<i64, ApiError> {
        let (reply, answer) = oneshot::channel();
        self.send(CoreRequest::LeaseRenew { id, reply }, answer)
            .await?
    }

    /// A lease's TTLs and keys from this member, which must be the leader.
    pub(crate) async fn lease_time_to_live_local(
        &self,
        id: i64,
    ) -> Result<super::LeaseInfo, ApiError> {
        let (reply, answer) = oneshot::channel();
        self.send(CoreRequest::LeaseTimeToLive { id, reply }, answer)
            .await?
    }

    /// Hands peer messages to the core (waits while its inbox is full).
    pub(crate) async fn step(&self, messages: Vec<keel_raft::Message>) -> Result<(), ApiError> {
        self.inbox
            .send_async(CoreRequest::Step { messages })
            .await
            .map_err(|_| ApiError::Stopped)
    }

    /// Hands a received store snapshot to the core.
    pub(crate) async fn snapshot_received(
        &self,
        message: keel_raft::Message,
        path: std::path::PathBuf,
    ) -> Result<(), ApiError> {
        self.inbox
            .send_async(CoreRequest::SnapshotReceived {
                message: Box::new(message),
                path,
            })
            .await
            .map_err(|_| ApiError::Stopped)
    }

    /// A fresh proposal id (for conf changes, whose context carries it).
    pub(crate) fn new_request_id(&self) -> u64 {
        self.ids.next()
    }

    /// Proposes a membership change whose context carries request id `id`.
    pub(crate) async fn propose_conf_change(
        &self,
        id: u64,
        change: keel_raft::ConfChange,
    ) -> super::ApplyResult {
        let (reply, answer) = oneshot::channel();
        self.send(CoreRequest::ProposeConfChange { id, change, reply }, answer)
            .await?
    }

    /// MoveLeader: returns once `target` leads.
    pub(crate) async fn transfer_leader(&self, target: u64) -> Result<(), ApiError> {
        let (reply, answer) = oneshot::channel();
        self.send(CoreRequest::TransferLeader { target, reply }, answer)
            .await?
    }

    pub(crate) async fn raft_status(&self) -> Result<keel_raft::Status, ApiError> {
        let (reply, answer) = oneshot::channel();
        self.send(CoreRequest::RaftStatus { reply }, answer).await
    }

    pub(crate) fn is_leader(&self) -> bool {
        self.shared.raft().leader_id == self.shared.member_id
    }

    /// Maintenance.Defragment: returns once the compact file replaced the old
    /// one. No server-side deadline: a large store takes as long as it takes
    /// (reads and writes go on meanwhile); the client's deadline applies.
    pub(crate) async fn defragment(&self) -> Result<(), ApiError> {
        if self.shared.is_stopped() {
            return Err(ApiError::Stopped);
        }
        let (reply, answer) = oneshot::channel();
        self.inbox
            .send_async(CoreRequest::Defragment { reply })
            .await
            .map_err(|_| ApiError::Stopped)?;
        answer.await.map_err(|_| ApiError::Stopped)?
    }

    /// Every lease id.
    pub(crate) async fn lease_leases(&self) -> Result<Vec<i64>, ApiError> {
        let (reply, answer) = oneshot::channel();
        self.send(CoreRequest::LeaseLeases { reply }, answer).await
    }

    /// Asks the core to stop (answers every waiting request "server stopped").
    pub(crate) fn shutdown(&self) {
        let _ = self.inbox.try_send(CoreRequest::Shutdown);
        if self.inbox.is_full() {
            // try_send failed on a full inbox: wait for room from this thread.
            let _ = self.inbox.send(CoreRequest::Shutdown);
        }
    }

    /// Waits until a read from [`Self::published`] is linearizable.
    pub(crate) async fn read_index(&self) -> Result<(), ApiError> {
        let (reply, answer) = oneshot::channel();
        self.send(CoreRequest::ReadIndex { reply }, answer).await?
    }

    async fn send<T>(
        &self,
        request: CoreRequest,
        answer: oneshot::Receiver<T>,
    ) -> Result<T, ApiError> {
        let deadline = tokio::time::Instant::now() + self.request_timeout;
        self.hand_over(request, deadline).await?;
        match tokio::time::timeout_at(deadline, answer).await {
            Ok(Ok(result)) => Ok(result),
            Ok(Err(_)) => Err(ApiError::Stopped),
            Err(_) => Err(ApiError::Timeout),
        }
    }

    /// The latest applied state.
    pub(crate) fn published(&self) -> Arc<Published> {
        self.shared.published()
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    /// etcd's header.fill: cluster, member, term; the current revision if the
    /// response did not set one.
    pub(crate) fn fill_header(&self, header: &mut Option<ResponseHeader>) {
        let header = header.get_or_insert_with(ResponseHeader::default);
        header.cluster_id = self.shared.cluster_id;
        header.member_id = self.shared.member_id;
        header.raft_term = self.shared.term();
        if header.revision == 0 {
            header.revision = self.published().view.revision();
        }
    }
}
