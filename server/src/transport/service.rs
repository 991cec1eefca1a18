//! The peer service on --listen-peer-urls: receives Raft message batches and
//! the requests followers forward to the leader.

use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use super::{from_wire, Transport};
use crate::api::errors::ApiError;
use crate::node::NodeHandle;
use crate::proto::etcdserverpb::{
    LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
    MemberPromoteRequest, MemberPromoteResponse,
};
use crate::proto::keelpb::peer_server::Peer;
use crate::proto::keelpb::{MessageBatch, MessagesAck};

pub(crate) struct PeerService {
    node: NodeHandle,
    transport: Transport,
    cluster: crate::api::ClusterOps,
}

impl PeerService {
    pub(crate) fn new(
        node: NodeHandle,
        transport: Transport,
        cluster: crate::api::ClusterOps,
    ) -> Self {
        PeerService {
            node,
            transport,
            cluster,
        }
    }
}

#[tonic::async_trait]
impl Peer for PeerService {
    async fn messages(
        &self,
        request: Request<Streaming<MessageBatch>>,
    ) -> Result<Response<MessagesAck>, Status> {
        let mut batches = request.into_inner();
        while let Some(batch) = batches.next().await {
            let batch = batch?;
            if batch.cluster_id != self.transport.cluster_id() {
                tracing::warn!(
                    from = format!("{:x}", batch.from),
                    remote_cluster = format!("{:x}", batch.cluster_id),
                    local_cluster = format!("{:x}", self.transport.cluster_id()),
                    "refused raft messages from another cluster"
                );
                return Err(Status::failed_precondition(format!(
                    "cluster ID mismatch: local {:x}, remote {:x}",
                    self.transport.cluster_id(),
                    batch.cluster_id
                )));
            }
            if self.node.shared().is_removed_member(batch.from) {
                return Err(Status::failed_precondition(super::MEMBER_REMOVED));
            }
            let mut messages = Vec::with_capacity(batch.messages.len());
            for wire in batch.messages {
                match from_wire(wire) {
                    Ok(m) => messages.push(m),
                    Err(e) => tracing::warn!(
                        from = format!("{:x}", batch.from),
                        error = e,
                        "undecodable raft message dropped"
                    ),
                }
            }
            if self.node.step(messages).await.is_err() {
                return Err(Status::unavailable("member stopping"));
            }
        }
        Ok(Response::new(MessagesAck {}))
    }

    async fn lease_renew(
        &self,
        request: Request<LeaseKeepAliveRequest>,
    ) -> Result<Response<LeaseKeepAliveResponse>, Status> {
        let req = request.into_inner();
        let ttl = match self.node.lease_renew_local(req.id).await {
            Ok(ttl) => ttl,
            Err(ApiError::LeaseNotFound) => 0,
            Err(e) => return Err(e.into()),
        };
        let mut resp = LeaseKeepAliveResponse {
            header: None,
            id: req.id,
            ttl,
        };
        self.node.fill_header(&mut resp.header);
        Ok(Response::new(resp))
    }

    async fn lease_time_to_live(
        &self,
        request: Request<LeaseTimeToLiveRequest>,
    ) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        let req = request.into_inner();
        let info = self.node.lease_time_to_live_local(req.id).await?;
        let mut resp = LeaseTimeToLiveResponse {
            header: None,
            id: req.id,
            ttl: info.remaining_ttl_secs,
            granted_ttl: info.granted_ttl_secs,
            keys: if req.keys { info.keys } else { Vec::new() },
        };
        self.node.fill_header(&mut resp.header);
        Ok(Response::new(resp))
    }

    async fn cluster_info(
        &self,
        _: Request<crate::proto::keelpb::ClusterInfoRequest>,
    ) -> Result<Response<crate::proto::keelpb::ClusterInfoResponse>, Status> {
        Ok(Response::new(crate::proto::keelpb::ClusterInfoResponse {
            cluster_id: self.transport.cluster_id(),
            members: self.node.shared().members().as_ref().clone(),
        }))
    }

    /// A store snapshot from the leader: received into the snap dir, then
    /// handed to the core with its Raft message.
    async fn snapshot(
        &self,
        request: Request<Streaming<crate::proto::keelpb::SnapshotChunk>>,
    ) -> Result<Response<crate::proto::keelpb::SnapshotAck>, Status> {
        let shared = self.node.shared();
        let received = super::snapshot::receive(
            request.into_inner(),
            self.transport.cluster_id(),
            |id| shared.is_removed_member(id),
            self.transport.snap_dir(),
        )
        .await?;
        tracing::debug!(
            from = format!("{:x}", received.from),
            "handing the snapshot to the core"
        );
        self.node
            .snapshot_received(received.message, received.path)
            .await?;
        Ok(Response::new(crate::proto::keelpb::SnapshotAck {}))
    }

    async fn member_promote(
        &self,
        request: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        Ok(Response::new(
            self.cluster.promote(request.into_inner().id).await?,
        ))
    }
}
