//! etcd's Maintenance service. Status is served (`etcdctl endpoint status`);
//! the rest arrive with the storage and cluster work and answer
//! Unimplemented until then, naming what is missing.

use std::path::PathBuf;

use tonic::{Request, Response, Status};

use crate::node::NodeHandle;
use crate::proto::etcdserverpb::maintenance_server::Maintenance;
use crate::proto::etcdserverpb::{
    AlarmRequest, AlarmResponse, DefragmentRequest, DefragmentResponse, HashKvRequest,
    HashKvResponse, HashRequest, HashResponse, MoveLeaderRequest, MoveLeaderResponse,
    SnapshotRequest, SnapshotResponse, StatusRequest, StatusResponse,
};

pub(crate) struct MaintenanceService {
    node: NodeHandle,
    wal_dir: PathBuf,
}

impl MaintenanceService {
    pub(crate) fn new(node: NodeHandle, wal_dir: PathBuf) -> Self {
        MaintenanceService { node, wal_dir }
    }

    /// Bytes of the WAL segments on disk: until the B+tree page file lands,
    /// the WAL is the whole durable store, so this is keel's db size.
    fn wal_size_bytes(&self) -> u64 {
        let Ok(entries) = std::fs::read_dir(&self.wal_dir) else {
            return 0;
        };
        entries
            .filter_map(Result::ok)
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum()
    }
}

fn not_yet(what: &str) -> Status {
    Status::unimplemented(format!("keel does not implement {what} yet"))
}

type SnapshotStream = std::pin::Pin<
    Box<dyn futures::Stream<Item = Result<SnapshotResponse, Status>> + Send + 'static>,
>;

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    async fn status(&self, _: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        let raft = self.node.shared().raft();
        let db_size = i64::try_from(self.wal_size_bytes()).unwrap_or(i64::MAX);
        let mut resp = StatusResponse {
            header: None,
            version: crate::ETCD_API_VERSION.to_string(),
            db_size,
            leader: raft.leader_id,
            raft_index: raft.commit_index,
            raft_term: raft.term,
            raft_applied_index: raft.applied_index,
            errors: Vec::new(),
            db_size_in_use: db_size,
            is_learner: false,
        };
        self.node.fill_header(&mut resp.header);
        Ok(Response::new(resp))
    }

    async fn alarm(&self, _: Request<AlarmRequest>) -> Result<Response<AlarmResponse>, Status> {
        Err(not_yet("alarms (they arrive with the backend quota)"))
    }

    async fn defragment(
        &self,
        _: Request<DefragmentRequest>,
    ) -> Result<Response<DefragmentResponse>, Status> {
        Err(not_yet("Defragment (it arrives with the B+tree page file)"))
    }

    async fn hash(&self, _: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        Err(not_yet("Hash"))
    }

    async fn hash_kv(&self, _: Request<HashKvRequest>) -> Result<Response<HashKvResponse>, Status> {
        Err(not_yet("HashKV"))
    }

    type SnapshotStream = SnapshotStream;

    async fn snapshot(
        &self,
        _: Request<SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        Err(not_yet("Snapshot"))
    }

    /// etcd's MoveLeader: leader only; returns once the target leads.
    async fn move_leader(
        &self,
        request: Request<MoveLeaderRequest>,
    ) -> Result<Response<MoveLeaderResponse>, Status> {
        self.node
            .transfer_leader(request.into_inner().target_id)
            .await?;
        let mut resp = MoveLeaderResponse { header: None };
        self.node.fill_header(&mut resp.header);
        Ok(Response::new(resp))
    }
}
