//! etcd's KV service: Range, Put, DeleteRange, Txn, Compact.
//!
//! Writes (and Txns with writes) go through Raft; a read-only Txn is one too,
//! as in etcd, so it is ordered with the writes around it. Range reads the
//! published view: serializable at once, linearizable after a read index.

use tonic::{Request, Response, Status};

use crate::api::errors::ApiError;
use crate::mvcc;
use crate::node::{ApplyOutput, NodeHandle};
use crate::proto::etcdserverpb::kv_server::Kv;
use crate::proto::etcdserverpb::request_op::Request as Op;
use crate::proto::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest,
    PutResponse, RangeRequest, RangeResponse, TxnRequest, TxnResponse,
};
use crate::proto::keelpb::internal_request::Request as Internal;

pub(crate) struct KvService {
    node: NodeHandle,
    max_txn_ops: u64,
}

impl KvService {
    pub(crate) fn new(node: NodeHandle, max_txn_ops: u64) -> Self {
        KvService { node, max_txn_ops }
    }

    async fn propose(&self, request: Internal) -> Result<ApplyOutput, Status> {
        self.node.propose(request).await.map_err(Status::from)
    }
}

fn unexpected(output: &ApplyOutput) -> Status {
    Status::from(ApiError::Internal(format!(
        "unexpected apply output {output:?}"
    )))
}

/// etcd's isTxnReadonly: every op of both branches is a Range (a nested txn
/// or an empty op makes it a write txn that goes through Raft).
fn txn_is_read_only(req: &TxnRequest) -> bool {
    req.success
        .iter()
        .chain(&req.failure)
        .all(|op| matches!(op.request, Some(Op::RequestRange(_))))
}

/// etcd's isTxnSerializable: every Range of a read-only txn is serializable.
fn txn_is_serializable(req: &TxnRequest) -> bool {
    req.success
        .iter()
        .chain(&req.failure)
        .all(|op| match &op.request {
            Some(Op::RequestRange(r)) => r.serializable,
            _ => true,
        })
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn range(
        &self,
        request: Request<RangeRequest>,
    ) -> Result<Response<RangeResponse>, Status> {
        let req = request.into_inner();
        mvcc::check_range(&req)?;
        if !req.serializable {
            self.node.read_index().await?;
        }
        let published = self.node.published();
        let mut resp = mvcc::range(&published.view, &req)?;
        self.node.fill_header(&mut resp.header);
        Ok(Response::new(resp))
    }

    async fn put(&self, request: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        let req = request.into_inner();
        mvcc::check_put(&req)?;
        match self.propose(Internal::Put(req)).await? {
            ApplyOutput::Put(mut resp) => {
                self.node.fill_header(&mut resp.header);
                Ok(Response::new(resp))
            }
            other => Err(unexpected(&other)),
        }
    }

    async fn delete_range(
        &self,
        request: Request<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        let req = request.into_inner();
        mvcc::check_delete(&req)?;
        match self.propose(Internal::DeleteRange(req)).await? {
            ApplyOutput::DeleteRange(mut resp) => {
                self.node.fill_header(&mut resp.header);
                Ok(Response::new(resp))
            }
            other => Err(unexpected(&other)),
        }
    }

    async fn txn(&self, request: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        let req = request.into_inner();
        mvcc::check_txn(&req, self.max_txn_ops)?;
        if txn_is_read_only(&req) {
            // etcd serves read-only txns from a read view, after a read
            // index unless every range in it is serializable.
            if !txn_is_serializable(&req) {
                self.node.read_index().await?;
            }
            let published = self.node.published();
            let mut resp = mvcc::read_only_txn(&published.view, &req)?;
            self.node.fill_header(&mut resp.header);
            return Ok(Response::new(resp));
        }
        match self.propose(Internal::Txn(req)).await? {
            ApplyOutput::Txn(mut resp) => {
                self.node.fill_header(&mut resp.header);
                Ok(Response::new(resp))
            }
            other => Err(unexpected(&other)),
        }
    }

    async fn compact(
        &self,
        request: Request<CompactionRequest>,
    ) -> Result<Response<CompactionResponse>, Status> {
        let req = request.into_inner();
        let output = if req.physical {
            self.node
                .propose_physical_compaction(Internal::Compaction(req))
                .await
                .map_err(Status::from)?
        } else {
            self.propose(Internal::Compaction(req)).await?
        };
        match output {
            ApplyOutput::Compact(mut resp) => {
                self.node.fill_header(&mut resp.header);
                Ok(Response::new(resp))
            }
            other => Err(unexpected(&other)),
        }
    }
}
