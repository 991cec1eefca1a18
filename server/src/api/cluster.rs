//! etcd's Cluster service: member list, add, remove, update, promote.
//!
//! The rules live in [`ClusterOps`] (also used by the peer service for
//! promotions forwarded to the leader). Membership changes are Raft conf
//! changes; etcd's checks apply: valid and unused peer URLs, at most one
//! learner (etcd 3.4), and with --strict-reconfig-check a change must leave a
//! quorum of started members (a member is started once it published its name).

use std::time::{SystemTime, UNIX_EPOCH};

use keel_raft::{ConfChange, ConfChangeKind, NodeId};
use sha1::{Digest, Sha1};
use tonic::{Request, Response, Status};

use crate::api::errors::ApiError;
use crate::cluster::encode_context;
use crate::node::{ApplyOutput, NodeHandle};
use crate::proto::etcdserverpb::cluster_server::Cluster;
use crate::proto::etcdserverpb::{
    self as pb, MemberAddRequest, MemberAddResponse, MemberListRequest, MemberListResponse,
    MemberPromoteRequest, MemberPromoteResponse, MemberRemoveRequest, MemberRemoveResponse,
    MemberUpdateRequest, MemberUpdateResponse,
};
use crate::proto::keelpb::internal_request::Request as Internal;
use crate::proto::keelpb::{self, MemberPeerUrls};
use crate::transport::Transport;

/// etcd 3.4's maxLearners.
const LEARNERS_MAX: usize = 1;
/// etcd's readyPercent: a learner within 90% of the leader's match index may be promoted.
const LEARNER_READY_RATIO: f64 = 0.9;

fn to_pb(m: &keelpb::Member) -> pb::Member {
    pb::Member {
        id: m.id,
        name: m.name.clone(),
        peer_ur_ls: m.peer_urls.clone(),
        client_ur_ls: m.client_urls.clone(),
        is_learner: m.is_learner,
    }
}

fn to_pb_list(members: &[keelpb::Member]) -> Vec<pb::Member> {
    members.iter().map(to_pb).collect()
}

/// etcd's checkURLs for member peer URLs: http(s)://host:port, no path.
fn check_peer_urls(urls: &[String]) -> Result<Vec<String>, ApiError> {
    if urls.is_empty() {
        return Err(ApiError::MemberBadUrls);
    }
    let mut checked = Vec::new();
    for text in urls {
        let url = url::Url::parse(text).map_err(|_| ApiError::MemberBadUrls)?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() || url.port().is_none()
        {
            return Err(ApiError::MemberBadUrls);
        }
        if url.path() != "/" && !url.path().is_empty() {
            return Err(ApiError::MemberBadUrls);
        }
        checked.push(crate::cluster::url_text(&url));
    }
    Ok(checked)
}

/// etcd's NewMember for MemberAdd: SHA-1 over the sorted peer URLs, the (empty)
/// cluster name and the current unix time.
fn new_member_id(peer_urls: &[String]) -> u64 {
    let mut sorted = peer_urls.to_vec();
    sorted.sort();
    let mut hasher = Sha1::new();
    for url in &sorted {
        hasher.update(url.as_bytes());
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    hasher.update(now.to_string().as_bytes());
    let digest = hasher.finalize();
    let mut id = [0u8; 8];
    id.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(id)
}

/// The Cluster API's rules.
#[derive(Clone)]
pub(crate) struct ClusterOps {
    node: NodeHandle,
    transport: Transport,
    strict_reconfig_check: bool,
}

impl ClusterOps {
    pub(crate) fn new(node: NodeHandle, transport: Transport, strict_reconfig_check: bool) -> Self {
        ClusterOps {
            node,
            transport,
            strict_reconfig_check,
        }
    }

    fn members(&self) -> std::sync::Arc<Vec<keelpb::Member>> {
        self.node.shared().members()
    }

    fn header(&self) -> Option<pb::ResponseHeader> {
        let mut header = None;
        self.node.fill_header(&mut header);
        header
    }

    /// etcd's IsReadyToAddVotingMember / IsReadyToRemoveVotingMember: the
    /// voters after the change, counting `extra` unstarted ones, must have a
    /// started quorum.
    fn started_quorum_after(&self, excluding: Option<u64>, extra: usize) -> bool {
        let voters: Vec<_> = self
            .members()
            .iter()
            .filter(|m| !m.is_learner && Some(m.id) != excluding)
            .cloned()
            .collect();
        let total = voters.len() + extra;
        let started = voters.iter().filter(|m| !m.name.is_empty()).count();
        total == 0 || started > total / 2
    }

    async fn propose(
        &self,
        kind: ConfChangeKind,
        member: keelpb::Member,
    ) -> Result<Vec<keelpb::Member>, ApiError> {
        let request_id = self.node.new_request_id();
        let node_id = member.id;
        let change = ConfChange {
            kind,
            node_id: NodeId(node_id),
            context: encode_context(member, request_id, self.node.shared().member_id),
        };
        match self.node.propose_conf_change(request_id, change).await? {
            ApplyOutput::Members(members) => Ok(members),
            other => Err(ApiError::Internal(format!(
                "unexpected apply output {other:?}"
            ))),
        }
    }

    pub(crate) async fn add(&self, req: MemberAddRequest) -> Result<MemberAddResponse, ApiError> {
        let peer_urls = check_peer_urls(&req.peer_ur_ls)?;
        let members = self.members();
        if peer_urls
            .iter()
            .any(|u| members.iter().any(|m| m.peer_urls.contains(u)))
        {
            return Err(ApiError::PeerUrlExist);
        }
        if req.is_learner && members.iter().filter(|m| m.is_learner).count() >= LEARNERS_MAX {
            return Err(ApiError::TooManyLearners);
        }
        if self.strict_reconfig_check && !req.is_learner && !self.started_quorum_after(None, 1) {
            return Err(ApiError::MemberNotEnoughStarted);
        }
        let id = new_member_id(&peer_urls);
        if members.iter().any(|m| m.id == id) {
            return Err(ApiError::MemberExist);
        }
        let member = keelpb::Member {
            id,
            peer_urls,
            is_learner: req.is_learner,
            ..Default::default()
        };
        let kind = if req.is_learner {
            ConfChangeKind::AddLearner
        } else {
            ConfChangeKind::AddNode
        };
        let after = self.propose(kind, member.clone()).await?;
        Ok(MemberAddResponse {
            header: self.header(),
            member: Some(to_pb(&member)),
            members: to_pb_list(&after),
        })
    }

    pub(crate) async fn remove(&self, id: u64) -> Result<MemberRemoveResponse, ApiError> {
        let members = self.members();
        let member = members
            .iter()
            .find(|m| m.id == id)
            .ok_or(ApiError::MemberNotFound)?;
        if self.strict_reconfig_check
            && !member.is_learner
            && !self.started_quorum_after(Some(id), 0)
        {
            return Err(ApiError::MemberNotEnoughStarted);
        }
        let after = self
            .propose(ConfChangeKind::RemoveNode, member.clone())
            .await?;
        Ok(MemberRemoveResponse {
            header: self.header(),
            members: to_pb_list(&after),
        })
    }

    pub(crate) async fn update(
        &self,
        req: MemberUpdateRequest,
    ) -> Result<MemberUpdateResponse, ApiError> {
        let peer_urls = check_peer_urls(&req.peer_ur_ls)?;
        let members = self.members();
        if !members.iter().any(|m| m.id == req.id) {
            return Err(ApiError::MemberNotFound);
        }
        if peer_urls.iter().any(|u| {
            members
                .iter()
                .any(|m| m.id != req.id && m.peer_urls.contains(u))
        }) {
            return Err(ApiError::PeerUrlExist);
        }
        match self
            .node
            .propose(Internal::MemberPeerUrls(MemberPeerUrls {
                id: req.id,
                peer_urls,
            }))
            .await?
        {
            ApplyOutput::Members(after) => Ok(MemberUpdateResponse {
                header: self.header(),
                members: to_pb_list(&after),
            }),
            other => Err(ApiError::Internal(format!(
                "unexpected apply output {other:?}"
            ))),
        }
    }

    /// Promote: the leader checks the learner's progress; a follower
    /// forwards to the leader and relays its answer (code and text) as is.
    pub(crate) async fn promote(&self, id: u64) -> Result<MemberPromoteResponse, Status> {
        if self.node.is_leader() {
            return Ok(self.promote_on_leader(id).await?);
        }
        let leader = self.node.shared().raft().leader_id;
        let url = self.transport.peer_url(leader).ok_or(ApiError::NoLeader)?;
        let channel = crate::transport::connect_peer(&url)
            .await
            .map_err(|_| ApiError::NoLeader)?;
        let mut client = crate::proto::keelpb::peer_client::PeerClient::new(channel);
        Ok(client
            .member_promote(MemberPromoteRequest { id })
            .await?
            .into_inner())
    }

    pub(crate) async fn promote_on_leader(
        &self,
        id: u64,
    ) -> Result<MemberPromoteResponse, ApiError> {
        let members = self.members();
        let member = members
            .iter()
            .find(|m| m.id == id)
            .ok_or(ApiError::MemberNotFound)?;
        if !member.is_learner {
            return Err(ApiError::MemberNotLearner);
        }
        let status = self.node.raft_status().await?;
        let progress = status.progress.unwrap_or_default();
        let me = NodeId(self.node.shared().member_id);
        let leader_match = progress
            .get(&me)
            .map_or(status.commit.0, |p| p.match_index.0);
        let learner_match = progress.get(&NodeId(id)).map_or(0, |p| p.match_index.0);
        if (learner_match as f64) < (leader_match as f64) * LEARNER_READY_RATIO {
            return Err(ApiError::LearnerNotReady);
        }
        let after = self
            .propose(ConfChangeKind::AddNode, member.clone())
            .await?;
        Ok(MemberPromoteResponse {
            header: self.header(),
            members: to_pb_list(&after),
        })
    }

    pub(crate) fn list(&self) -> MemberListResponse {
        MemberListResponse {
            header: self.header(),
            members: to_pb_list(&self.members()),
        }
    }
}

pub(crate) struct ClusterService {
    ops: ClusterOps,
}

impl ClusterService {
    pub(crate) fn new(ops: ClusterOps) -> Self {
        ClusterService { ops }
    }
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_add(
        &self,
        request: Request<MemberAddRequest>,
    ) -> Result<Response<MemberAddResponse>, Status> {
        Ok(Response::new(self.ops.add(request.into_inner()).await?))
    }

    async fn member_remove(
        &self,
        request: Request<MemberRemoveRequest>,
    ) -> Result<Response<MemberRemoveResponse>, Status> {
        Ok(Response::new(
            self.ops.remove(request.into_inner().id).await?,
        ))
    }

    async fn member_update(
        &self,
        request: Request<MemberUpdateRequest>,
    ) -> Result<Response<MemberUpdateResponse>, Status> {
        Ok(Response::new(self.ops.update(request.into_inner()).await?))
    }

    async fn member_list(
        &self,
        _: Request<MemberListRequest>,
    ) -> Result<Response<MemberListResponse>, Status> {
        Ok(Response::new(self.ops.list()))
    }

    async fn member_promote(
        &self,
        request: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        Ok(Response::new(
            self.ops.promote(request.into_inner().id).await?,
        ))
    }
}
