//! etcd's Lease service: grant and revoke through Raft; keep-alive, TTL and
//! listing answered by the core's lessor (the leader's clock).

use std::sync::{Arc, Mutex};

use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::transport::Channel;
use tonic::{Request, Response, Status, Streaming};

use super::closing::{until_stopping, ServerStream};
use crate::api::errors::ApiError;
use crate::lease::LEASE_TTL_SECS_MAX;
use crate::node::{ApplyOutput, NodeHandle};
use crate::proto::etcdserverpb::lease_server::Lease;
use crate::proto::etcdserverpb::{
    LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse,
    LeaseLeasesRequest, LeaseLeasesResponse, LeaseRevokeRequest, LeaseRevokeResponse, LeaseStatus,
    LeaseTimeToLiveRequest, LeaseTimeToLiveResponse, ResponseHeader,
};
use crate::proto::keelpb::internal_request::Request as Internal;
use crate::proto::keelpb::peer_client::PeerClient;
use crate::transport::Transport;

/// Keep-alive responses queued per stream before the stream waits.
const KEEPALIVE_BUFFER_RESPONSES: usize = 16;

pub(crate) struct LeaseService {
    node: NodeHandle,
    leader: LeaderForwarder,
}

impl LeaseService {
    pub(crate) fn new(node: NodeHandle, transport: Transport) -> Self {
        LeaseService {
            leader: LeaderForwarder::new(node.clone(), transport),
            node,
        }
    }
}

/// Keep-alives and TTLs are answered by the leader's clock: a follower
/// forwards them over the peer service (etcd forwards to the leader too).
#[derive(Clone)]
struct LeaderForwarder {
    node: NodeHandle,
    transport: Transport,
    /// A channel to the last known leader.
    channel: Arc<Mutex<Option<(u64, Channel)>>>,
}

impl LeaderForwarder {
    fn new(node: NodeHandle, transport: Transport) -> Self {
        LeaderForwarder {
            node,
            transport,
            channel: Arc::default(),
        }
    }

    async fn client(&self) -> Result<PeerClient<Channel>, Status> {
        let leader = self.node.shared().raft().leader_id;
        if leader == 0 {
            return Err(ApiError::NoLeader.into());
        }
        if let Some((id, channel)) = self.channel.lock().expect("leader channel lock").clone() {
            if id == leader {
                return Ok(PeerClient::new(channel));
            }
        }
        let url = self.transport.peer_url(leader).ok_or(ApiError::NoLeader)?;
        let channel = crate::transport::connect_peer(&url)
            .await
            .map_err(|_| Status::from(ApiError::NoLeader))?;
        *self.channel.lock().expect("leader channel lock") = Some((leader, channel.clone()));
        Ok(PeerClient::new(channel))
    }

    /// The granted TTL, or 0 for a lease that does not exist (etcd).
    async fn renew(&self, id: i64) -> Result<i64, Status> {
        if self.node.is_leader() {
            return match self.node.lease_renew_local(id).await {
                Ok(ttl) => Ok(ttl),
                Err(ApiError::LeaseNotFound) => Ok(0),
                Err(e) => Err(e.into()),
            };
        }
        let resp = self
            .client()
            .await?
            .lease_renew(LeaseKeepAliveRequest { id })
            .await?;
        Ok(resp.into_inner().ttl)
    }

    async fn time_to_live(
        &self,
        req: LeaseTimeToLiveRequest,
    ) -> Result<LeaseTimeToLiveResponse, Status> {
        if self.node.is_leader() {
            let info = self.node.lease_time_to_live_local(req.id).await?;
            return Ok(LeaseTimeToLiveResponse {
                header: None,
                id: req.id,
                ttl: info.remaining_ttl_secs,
                granted_ttl: info.granted_ttl_secs,
                keys: if req.keys { info.keys } else { Vec::new() },
            });
        }
        Ok(self
            .client()
            .await?
            .lease_time_to_live(req)
            .await?
            .into_inner())
    }
}

fn unexpected(output: &ApplyOutput) -> Status {
    Status::from(ApiError::Internal(format!(
        "unexpected apply output {output:?}"
    )))
}

#[tonic::async_trait]
impl Lease for LeaseService {
    async fn lease_grant(
        &self,
        request: Request<LeaseGrantRequest>,
    ) -> Result<Response<LeaseGrantResponse>, Status> {
        let mut req = request.into_inner();
        if req.ttl > LEASE_TTL_SECS_MAX {
            return Err(ApiError::LeaseTtlTooLarge.into());
        }
        if req.id == 0 {
            req.id = self.node.new_lease_id();
        }
        match self.node.propose(Internal::LeaseGrant(req)).await? {
            ApplyOutput::LeaseGrant(mut resp) => {
                self.node.fill_header(&mut resp.header);
                Ok(Response::new(resp))
            }
            other => Err(unexpected(&other)),
        }
    }

    async fn lease_revoke(
        &self,
        request: Request<LeaseRevokeRequest>,
    ) -> Result<Response<LeaseRevokeResponse>, Status> {
        let req = request.into_inner();
        match self.node.propose(Internal::LeaseRevoke(req)).await? {
            ApplyOutput::LeaseRevoke(mut resp) => {
                self.node.fill_header(&mut resp.header);
                Ok(Response::new(resp))
            }
            other => Err(unexpected(&other)),
        }
    }

    type LeaseKeepAliveStream = ServerStream<LeaseKeepAliveResponse>;

    /// One response per request, in order; an unknown lease gets TTL 0
    /// (etcd), other errors end the stream with the error.
    async fn lease_keep_alive(
        &self,
        request: Request<Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        let mut requests = request.into_inner();
        let node = self.node.clone();
        let leader = self.leader.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(KEEPALIVE_BUFFER_RESPONSES);
        tokio::spawn(async move {
            loop {
                // A dropped response stream (the member stops, the client
                // left) ends the task, and with it the request stream.
                let req = tokio::select! {
                    request = requests.next() => match request {
                        Some(Ok(req)) => req,
                        Some(Err(_)) | None => return,
                    },
                    () = tx.closed() => return,
                };
                let ttl = match leader.renew(req.id).await {
                    Ok(ttl) => ttl,
                    Err(status) => {
                        let _ = tx.send(Err(status)).await;
                        return;
                    }
                };
                let mut resp = LeaseKeepAliveResponse {
                    header: None,
                    id: req.id,
                    ttl,
                };
                node.fill_header(&mut resp.header);
                if tx.send(Ok(resp)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(until_stopping(
            &self.node,
            ReceiverStream::new(rx),
        )))
    }

    /// An unknown lease answers TTL -1 (etcd), not an error.
    async fn lease_time_to_live(
        &self,
        request: Request<LeaseTimeToLiveRequest>,
    ) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        let req = request.into_inner();
        let id = req.id;
        let mut resp = match self.leader.time_to_live(req).await {
            Ok(resp) => resp,
            Err(status) if status.message() == ApiError::LeaseNotFound.to_string() => {
                LeaseTimeToLiveResponse {
                    header: Some(ResponseHeader::default()),
                    id,
                    ttl: -1,
                    ..Default::default()
                }
            }
            Err(status) => return Err(status),
        };
        self.node.fill_header(&mut resp.header);
        Ok(Response::new(resp))
    }

    async fn lease_leases(
        &self,
        _: Request<LeaseLeasesRequest>,
    ) -> Result<Response<LeaseLeasesResponse>, Status> {
        let ids = self.node.lease_leases().await?;
        let mut resp = LeaseLeasesResponse {
            header: None,
            leases: ids.into_iter().map(|id| LeaseStatus { id }).collect(),
        };
        self.node.fill_header(&mut resp.header);
        Ok(Response::new(resp))
    }
}
