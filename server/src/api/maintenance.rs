//! etcd's Maintenance service: Status (`etcdctl endpoint status`), Alarm
//! (`etcdctl alarm list/disarm`), Defragment (`etcdctl defrag`, online in
//! keel), Hash and HashKV (`etcdctl endpoint hashkv`), MoveLeader.
//! Snapshot answers Unimplemented until store export lands.

use keel_btree::{Bucket, KeyRange, ReadView};
use tonic::{Request, Response, Status};

use crate::api::errors::ApiError;
use crate::mvcc::storage_error;
use crate::node::{ApplyOutput, NodeHandle};
use crate::proto::etcdserverpb::maintenance_server::Maintenance;
use crate::proto::etcdserverpb::{
    AlarmMember, AlarmRequest, AlarmResponse, AlarmType, DefragmentRequest, DefragmentResponse,
    HashKvRequest, HashKvResponse, HashRequest, HashResponse, MoveLeaderRequest,
    MoveLeaderResponse, ResponseHeader, SnapshotRequest, SnapshotResponse, StatusRequest,
    StatusResponse,
};
use crate::proto::keelpb::internal_request;

pub(crate) struct MaintenanceService {
    node: NodeHandle,
}

impl MaintenanceService {
    pub(crate) fn new(node: NodeHandle) -> Self {
        MaintenanceService { node }
    }
}

fn not_yet(what: &str) -> Status {
    Status::unimplemented(format!("keel does not implement {what} yet"))
}

/// An alarm as etcd's Status lists it: gogo's compact text form of
/// `AlarmMember` (`memberID:<decimal> alarm:NOSPACE `).
fn alarm_text(alarm: &AlarmMember) -> String {
    let name = AlarmType::try_from(alarm.alarm).map_or("UNKNOWN", |a| a.as_str_name());
    format!("memberID:{} alarm:{} ", alarm.member_id, name)
}

/// Buckets whose contents Hash covers besides the key space (the meta
/// bucket holds per-file bookkeeping and is left out, as etcd leaves out
/// its consistent index).
const HASHED_BUCKETS: [(Bucket, &[u8]); 5] = [
    (Bucket::Lease, b"lease"),
    (Bucket::AuthUsers, b"authUsers"),
    (Bucket::AuthRoles, b"authRoles"),
    (Bucket::Members, b"members"),
    (Bucket::Alarm, b"alarm"),
];

/// Maintenance.Hash: a CRC-32 over the whole state of the view: HashKV's
/// hash of the key space at its revision, then every bucket's name and its
/// entries. Same state, same hash on every member (the value is keel's own;
/// etcd's hashes its bolt file's layout and so differs between the two).
fn hash_all(view: &ReadView) -> Result<u32, ApiError> {
    let (kv_hash, _) = view.hash_kv(0).map_err(storage_error)?;
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&kv_hash.to_be_bytes());
    for (bucket, name) in HASHED_BUCKETS {
        hasher.update(name);
        let entries = view
            .bucket_range(bucket, &KeyRange::FromKey(bytes::Bytes::new()), 0)
            .map_err(storage_error)?;
        for (key, value) in entries {
            hasher.update(&(key.len() as u64).to_be_bytes());
            hasher.update(&key);
            hasher.update(&(value.len() as u64).to_be_bytes());
            hasher.update(&value);
        }
    }
    Ok(hasher.finalize())
}

type SnapshotStream = std::pin::Pin<
    Box<dyn futures::Stream<Item = Result<SnapshotResponse, Status>> + Send + 'static>,
>;

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    /// etcd's Status: Raft numbers, the db file's size and the part of it in
    /// use, and as errors "no leader" and every active alarm.
    async fn status(&self, _: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        let shared = self.node.shared();
        let raft = shared.raft();
        let storage = shared.storage();
        let mut errors = Vec::new();
        if raft.leader_id == 0 {
            errors.push(ApiError::NoLeader.to_string());
        }
        errors.extend(storage.alarms.iter().map(alarm_text));
        let is_learner = shared
            .members()
            .iter()
            .any(|m| m.id == shared.member_id && m.is_learner);
        let mut resp = StatusResponse {
            header: None,
            version: crate::ETCD_API_VERSION.to_string(),
            db_size: i64::try_from(storage.size_bytes).unwrap_or(i64::MAX),
            leader: raft.leader_id,
            raft_index: raft.commit_index,
            raft_term: raft.term,
            raft_applied_index: raft.applied_index,
            errors,
            db_size_in_use: i64::try_from(storage.in_use_bytes).unwrap_or(i64::MAX),
            is_learner,
        };
        self.node.fill_header(&mut resp.header);
        Ok(Response::new(resp))
    }

    /// etcd's Alarm: every action (list included) goes through Raft.
    async fn alarm(
        &self,
        request: Request<AlarmRequest>,
    ) -> Result<Response<AlarmResponse>, Status> {
        let output = self
            .node
            .propose(internal_request::Request::Alarm(request.into_inner()))
            .await?;
        let ApplyOutput::Alarm(mut resp) = output else {
            return Err(ApiError::Internal("alarm answered with another kind".into()).into());
        };
        self.node.fill_header(&mut resp.header);
        Ok(Response::new(resp))
    }

    /// Rewrites this member's store compactly while reads and writes go on;
    /// answers once the compact file replaced the old one.
    async fn defragment(
        &self,
        _: Request<DefragmentRequest>,
    ) -> Result<Response<DefragmentResponse>, Status> {
        self.node.defragment().await?;
        let mut resp = DefragmentResponse { header: None };
        self.node.fill_header(&mut resp.header);
        Ok(Response::new(resp))
    }

    async fn hash(&self, _: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        let published = self.node.published();
        let hash = hash_all(&published.view)?;
        let mut resp = HashResponse {
            header: Some(ResponseHeader {
                revision: published.view.revision(),
                ..Default::default()
            }),
            hash,
        };
        self.node.fill_header(&mut resp.header);
        Ok(Response::new(resp))
    }

    /// etcd's HashKV: the key space's hash at a revision (0: the current
    /// one), with the compacted revision (-1 if never compacted).
    async fn hash_kv(
        &self,
        request: Request<HashKvRequest>,
    ) -> Result<Response<HashKvResponse>, Status> {
        let requested = request.into_inner().revision;
        let published = self.node.published();
        let view = &published.view;
        let (hash, compacted) = view.hash_kv(requested).map_err(storage_error)?;
        let revision = if requested <= 0 {
            view.revision()
        } else {
            requested
        };
        let compact_revision = if view.compacted_revision() == 0 {
            -1
        } else {
            compacted
        };
        let mut resp = HashKvResponse {
            header: Some(ResponseHeader {
                revision,
                ..Default::default()
            }),
            hash,
            compact_revision,
        };
        self.node.fill_header(&mut resp.header);
        Ok(Response::new(resp))
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
