//! etcd's v3election service (`etcdctl elect`).

use futures::StreamExt;
use tonic::{Request, Response, Status};

use super::closing::{until_stopping, ServerStream};
use crate::api::errors::ApiError;
use crate::concurrency::{Election, InternalClient, LeaderKey};
use crate::proto::v3electionpb::election_server::Election as ElectionApi;
use crate::proto::v3electionpb::{
    self as pb, CampaignRequest, CampaignResponse, LeaderRequest, LeaderResponse, ProclaimRequest,
    ProclaimResponse, ResignRequest, ResignResponse,
};

pub(crate) struct ElectionService {
    client: InternalClient,
}

impl ElectionService {
    pub(crate) fn new(client: InternalClient) -> Self {
        ElectionService { client }
    }

    fn election(&self, name: bytes::Bytes) -> Election {
        Election::new(self.client.clone(), name)
    }
}

fn leader_key(key: Option<pb::LeaderKey>) -> Result<LeaderKey, ApiError> {
    let key = key.ok_or(ApiError::MissingLeaderKey)?;
    Ok(LeaderKey {
        name: key.name,
        key: key.key,
        revision: key.rev,
        lease: key.lease,
    })
}

#[tonic::async_trait]
impl ElectionApi for ElectionService {
    async fn campaign(
        &self,
        request: Request<CampaignRequest>,
    ) -> Result<Response<CampaignResponse>, Status> {
        let req = request.into_inner();
        let (mut header, leader) = self
            .election(req.name.clone())
            .campaign(req.lease, req.value)
            .await?;
        self.client.fill_header(&mut header);
        Ok(Response::new(CampaignResponse {
            header,
            leader: Some(pb::LeaderKey {
                name: req.name,
                key: leader.key,
                rev: leader.revision,
                lease: leader.lease,
            }),
        }))
    }

    async fn proclaim(
        &self,
        request: Request<ProclaimRequest>,
    ) -> Result<Response<ProclaimResponse>, Status> {
        let req = request.into_inner();
        let leader = leader_key(req.leader)?;
        let mut header = self
            .election(leader.name.clone())
            .proclaim(&leader, req.value)
            .await?;
        self.client.fill_header(&mut header);
        Ok(Response::new(ProclaimResponse { header }))
    }

    async fn leader(
        &self,
        request: Request<LeaderRequest>,
    ) -> Result<Response<LeaderResponse>, Status> {
        let req = request.into_inner();
        let (mut header, kv) = self.election(req.name).leader().await?;
        self.client.fill_header(&mut header);
        Ok(Response::new(LeaderResponse {
            header,
            kv: Some(kv),
        }))
    }

    type ObserveStream = ServerStream<LeaderResponse>;

    async fn observe(
        &self,
        request: Request<LeaderRequest>,
    ) -> Result<Response<Self::ObserveStream>, Status> {
        let req = request.into_inner();
        let stream = self.election(req.name).observe().map(|item| {
            item.map(|(header, kv)| LeaderResponse {
                header,
                kv: Some(kv),
            })
            .map_err(Status::from)
        });
        Ok(Response::new(until_stopping(self.client.node(), stream)))
    }

    async fn resign(
        &self,
        request: Request<ResignRequest>,
    ) -> Result<Response<ResignResponse>, Status> {
        let req = request.into_inner();
        let leader = leader_key(req.leader)?;
        let mut header = self.election(leader.name.clone()).resign(&leader).await?;
        self.client.fill_header(&mut header);
        Ok(Response::new(ResignResponse { header }))
    }
}
