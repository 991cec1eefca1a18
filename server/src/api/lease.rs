//! etcd's Lease service: grant and revoke through Raft; keep-alive, TTL and
//! listing answered by the core's lessor (the leader's clock).

use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

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

/// Keep-alive responses queued per stream before the stream waits.
const KEEPALIVE_BUFFER_RESPONSES: usize = 16;

pub(crate) struct LeaseService {
    node: NodeHandle,
}

impl LeaseService {
    pub(crate) fn new(node: NodeHandle) -> Self {
        LeaseService { node }
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

    type LeaseKeepAliveStream = ReceiverStream<Result<LeaseKeepAliveResponse, Status>>;

    /// One response per request, in order; an unknown lease gets TTL 0
    /// (etcd), other errors end the stream with the error.
    async fn lease_keep_alive(
        &self,
        request: Request<Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        let mut requests = request.into_inner();
        let node = self.node.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(KEEPALIVE_BUFFER_RESPONSES);
        tokio::spawn(async move {
            while let Some(Ok(req)) = requests.next().await {
                let ttl = match node.lease_renew(req.id).await {
                    Ok(ttl) => ttl,
                    Err(ApiError::LeaseNotFound) => 0,
                    Err(e) => {
                        let _ = tx.send(Err(Status::from(e))).await;
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
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    /// An unknown lease answers TTL -1 (etcd), not an error.
    async fn lease_time_to_live(
        &self,
        request: Request<LeaseTimeToLiveRequest>,
    ) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        let req = request.into_inner();
        let mut resp = match self.node.lease_time_to_live(req.id).await {
            Ok(info) => LeaseTimeToLiveResponse {
                header: None,
                id: req.id,
                ttl: info.remaining_ttl_secs,
                granted_ttl: info.granted_ttl_secs,
                keys: if req.keys { info.keys } else { Vec::new() },
            },
            Err(ApiError::LeaseNotFound) => LeaseTimeToLiveResponse {
                header: Some(ResponseHeader::default()),
                id: req.id,
                ttl: -1,
                ..Default::default()
            },
            Err(e) => return Err(e.into()),
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
