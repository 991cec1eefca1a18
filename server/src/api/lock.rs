//! etcd's v3lock service (`etcdctl lock`).

use tonic::{Request, Response, Status};

use crate::concurrency::{lock, InternalClient};
use crate::proto::v3lockpb::lock_server::Lock;
use crate::proto::v3lockpb::{LockRequest, LockResponse, UnlockRequest, UnlockResponse};

pub(crate) struct LockService {
    client: InternalClient,
}

impl LockService {
    pub(crate) fn new(client: InternalClient) -> Self {
        LockService { client }
    }
}

#[tonic::async_trait]
impl Lock for LockService {
    async fn lock(&self, request: Request<LockRequest>) -> Result<Response<LockResponse>, Status> {
        let req = request.into_inner();
        let (mut header, key) = lock(&self.client, &req.name, req.lease).await?;
        self.client.fill_header(&mut header);
        Ok(Response::new(LockResponse { header, key }))
    }

    async fn unlock(
        &self,
        request: Request<UnlockRequest>,
    ) -> Result<Response<UnlockResponse>, Status> {
        let req = request.into_inner();
        let resp = self.client.delete(req.key).await?;
        Ok(Response::new(UnlockResponse {
            header: resp.header,
        }))
    }
}
