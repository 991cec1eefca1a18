//! The no-op baseline: etcd's KV service answering every Put and Range at once, with no
//! storage, no Raft and no checks, on a stock tonic server (keel's own server additionally
//! batches its writes, `server/src/batched_io.rs`). Measuring it with keel-bench shows what
//! gRPC alone costs on this machine (what a server written with stock tonic can reach here,
//! client included), so the comparison can say how much of keel's time is its write path and
//! how much is the transport.
//!
//! Not a server: it stores nothing and answers Range with no keys. It serves KV only.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};

use anyhow::Context as _;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

use crate::proto::etcdserverpb::kv_server::{Kv, KvServer};
use crate::proto::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest,
    PutResponse, RangeRequest, RangeResponse, ResponseHeader, TxnRequest, TxnResponse,
};

/// A KV service that answers at once. Revisions count the puts, so answers have the
/// size and shape of a real server's.
#[derive(Default)]
struct NoopKv {
    revision: AtomicI64,
}

impl NoopKv {
    fn header(&self, revision: i64) -> Option<ResponseHeader> {
        Some(ResponseHeader {
            cluster_id: 0x1c4f_2b0a_9d3e_5f61,
            member_id: 0x8e9e_05c5_2164_694d,
            revision,
            raft_term: 2,
        })
    }
}

#[tonic::async_trait]
impl Kv for NoopKv {
    async fn range(&self, _: Request<RangeRequest>) -> Result<Response<RangeResponse>, Status> {
        let revision = self.revision.load(Ordering::Relaxed);
        Ok(Response::new(RangeResponse {
            header: self.header(revision),
            ..Default::default()
        }))
    }

    async fn put(&self, _: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        let revision = self.revision.fetch_add(1, Ordering::Relaxed) + 1;
        Ok(Response::new(PutResponse {
            header: self.header(revision),
            prev_kv: None,
        }))
    }

    async fn delete_range(
        &self,
        _: Request<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        Err(Status::unimplemented(
            "the no-op baseline serves Put and Range",
        ))
    }

    async fn txn(&self, _: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        Err(Status::unimplemented(
            "the no-op baseline serves Put and Range",
        ))
    }

    async fn compact(
        &self,
        _: Request<CompactionRequest>,
    ) -> Result<Response<CompactionResponse>, Status> {
        Err(Status::unimplemented(
            "the no-op baseline serves Put and Range",
        ))
    }
}

/// Serves the no-op KV on `addr` until the process ends, on a multi-threaded tokio runtime
/// with one worker per core (keel's edge runtime).
pub fn serve(addr: SocketAddr) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .thread_name("noop-edge")
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        serve_on(listener).await
    })
}

/// Serves the no-op KV on `listener` (already bound, so a test can take port 0) on the
/// current tokio runtime, until the future is dropped.
pub async fn serve_on(listener: tokio::net::TcpListener) -> anyhow::Result<()> {
    // The builder's TCP settings apply only to the listeners it binds itself.
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    tonic::transport::Server::builder()
        .add_service(KvServer::new(NoopKv::default()))
        .serve_with_incoming(incoming)
        .await?;
    Ok(())
}
