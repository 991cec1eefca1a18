//! The core's cluster duties: stepping peer messages, conf changes (member
//! add/remove/promote), leader transfer, publishing this member's attributes,
//! and keeping the members registry, its published copy and the transport's
//! links in step.

use std::time::{Duration, Instant};

use keel_raft::{ConfChange, Entry, Message, NodeId, ProposeError};
use tokio::sync::oneshot;

use super::core::Core;
use super::{ApplyOutput, ApplyResult};
use crate::api::errors::ApiError;
use crate::cluster::{decode_context, MemberChange};
use crate::proto::keelpb::internal_request::Request;
use crate::proto::keelpb::MemberAttributes;

/// How often an unpublished member retries publishing its attributes.
const PUBLISH_RETRY: Duration = Duration::from_secs(1);

struct PendingTransfer {
    target: u64,
    reply: oneshot::Sender<Result<(), ApiError>>,
    deadline: Instant,
}

struct ParkedConfChange {
    id: u64,
    change: ConfChange,
    reply: oneshot::Sender<ApplyResult>,
    deadline: Instant,
}

/// Cluster bookkeeping of the core.
pub(crate) struct ClusterState {
    /// What this member publishes about itself (etcd's publish).
    attributes: MemberAttributes,
    attributes_published: bool,
    attributes_attempt: Option<Instant>,
    transfer: Option<PendingTransfer>,
    parked: Vec<ParkedConfChange>,
    published_members_version: u64,
}

impl ClusterState {
    pub(crate) fn new(attributes: MemberAttributes) -> Self {
        ClusterState {
            attributes,
            attributes_published: false,
            attributes_attempt: None,
            transfer: None,
            parked: Vec::new(),
            published_members_version: u64::MAX,
        }
    }
}

impl Core {
    /// A peer refused our messages: this member was removed.
    pub(super) fn removed_from_cluster(&mut self) {
        tracing::warn!("peers report that this member was removed from the cluster; stopping");
        self.removed = true;
    }

    pub(super) fn step(&mut self, messages: Vec<Message>) {
        for message in messages {
            let (from, kind) = (message.from.0, message.kind);
            if let Err(e) = self.raw.step(message) {
                tracing::debug!(from = format!("{from:x}"), ?kind, error = %e, "raft message refused");
            }
        }
    }

    pub(super) fn propose_conf_change(
        &mut self,
        id: u64,
        change: ConfChange,
        reply: oneshot::Sender<ApplyResult>,
        deadline: Instant,
    ) {
        match self.raw.propose_conf_change(change.clone()) {
            Ok(()) => self.proposals.track(id, reply, deadline),
            // One change at a time, and only with a leader: wait and retry.
            Err(ProposeError::ConfChangePending { .. })
            | Err(ProposeError::NoLeader)
            | Err(ProposeError::LeaderTransferring { .. }) => {
                self.cluster.parked.push(ParkedConfChange {
                    id,
                    change,
                    reply,
                    deadline,
                });
            }
            Err(e) => {
                let _ = reply.send(Err(ApiError::Internal(format!("conf change refused: {e}"))));
            }
        }
    }

    pub(super) fn propose_parked_conf_changes(&mut self) {
        if self.cluster.parked.is_empty() || self.leader_id == 0 {
            return;
        }
        for p in std::mem::take(&mut self.cluster.parked) {
            self.propose_conf_change(p.id, p.change, p.reply, p.deadline);
        }
    }

    /// etcd's MoveLeader: only the leader transfers; answers once the target leads.
    pub(super) fn transfer_leader(
        &mut self,
        target: u64,
        reply: oneshot::Sender<Result<(), ApiError>>,
        deadline: Instant,
    ) {
        let me = self.settings.member_id;
        if self.leader_id != me {
            let _ = reply.send(Err(ApiError::NotLeader));
            return;
        }
        if target == me {
            let _ = reply.send(Ok(()));
            return;
        }
        if !self.voters.contains(&NodeId(target)) {
            let _ = reply.send(Err(ApiError::BadLeaderTransferee));
            return;
        }
        self.raw.transfer_leader(NodeId(target));
        if let Some(previous) = self.cluster.transfer.replace(PendingTransfer {
            target,
            reply,
            deadline,
        }) {
            let _ = previous.reply.send(Err(ApiError::TimeoutLeaderTransfer));
        }
    }

    /// The leader changed: a pending transfer to it is done.
    pub(super) fn on_leader_known(&mut self) {
        if self
            .cluster
            .transfer
            .as_ref()
            .is_some_and(|t| t.target == self.leader_id)
        {
            if let Some(done) = self.cluster.transfer.take() {
                let _ = done.reply.send(Ok(()));
            }
        }
    }

    pub(super) fn tick_cluster(&mut self, now: Instant) {
        if self
            .cluster
            .transfer
            .as_ref()
            .is_some_and(|t| t.deadline <= now)
        {
            if let Some(late) = self.cluster.transfer.take() {
                let _ = late.reply.send(Err(ApiError::TimeoutLeaderTransfer));
            }
        }
        let (expired, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.cluster.parked)
            .into_iter()
            .partition(|p| p.deadline <= now);
        self.cluster.parked = kept;
        for p in expired {
            let _ = p.reply.send(Err(ApiError::Timeout));
        }
        self.publish_attributes(now);
    }

    /// etcd's publish: once there is a leader, make the registry hold this
    /// member's name and client URLs (retried until applied).
    fn publish_attributes(&mut self, now: Instant) {
        if self.cluster.attributes_published || self.leader_id == 0 {
            return;
        }
        let me = self.settings.member_id;
        let current = self.applier.members().get(me);
        if current.is_some_and(|m| {
            m.name == self.cluster.attributes.name
                && m.client_urls == self.cluster.attributes.client_urls
        }) {
            self.cluster.attributes_published = true;
            tracing::info!(
                name = self.cluster.attributes.name,
                "published member attributes"
            );
            return;
        }
        if current.is_none()
            || self
                .cluster
                .attributes_attempt
                .is_some_and(|t| now.duration_since(t) < PUBLISH_RETRY)
        {
            return;
        }
        self.cluster.attributes_attempt = Some(now);
        self.propose_internal(Request::MemberAttributes(self.cluster.attributes.clone()));
    }

    /// Applies a committed conf change to Raft, the registry and the links.
    pub(super) fn apply_conf_change(
        &mut self,
        entry: &Entry,
        answers: &mut Vec<(u64, ApplyResult)>,
    ) -> Result<(), super::core::CoreError> {
        let change = match ConfChange::decode(&entry.data) {
            Ok(change) => change,
            Err(e) => {
                tracing::error!(index = entry.index.0, error = %e, "undecodable conf change skipped");
                return Ok(());
            }
        };
        match self.raw.apply_conf_change(&change) {
            Ok(conf_state) => {
                self.voters = conf_state.voters;
                self.learners = conf_state.learners;
            }
            Err(e) => {
                tracing::error!(index = entry.index.0, error = %e, "conf change rejected by raft")
            }
        }
        let outcome = self.applier.apply_member_change(&change)?;
        tracing::info!(?outcome, voters = ?self.voters, learners = ?self.learners, "membership changed");
        if outcome == MemberChange::Removed(self.settings.member_id) {
            tracing::warn!("this member was removed from the cluster; stopping");
            self.removed = true;
        }
        if let Some(context) = decode_context(&change.context) {
            if context.proposer == self.settings.member_id && context.request_id != 0 {
                answers.push((
                    context.request_id,
                    Ok(ApplyOutput::Members(self.applier.members().list())),
                ));
            }
        }
        Ok(())
    }

    /// Publishes the registry and relinks peers whatever was published.
    pub(super) fn force_publish_members(&mut self) {
        self.cluster.published_members_version = u64::MAX;
        self.publish_members_if_changed();
    }

    /// Publishes the registry and relinks peers when it changed.
    pub(super) fn publish_members_if_changed(&mut self) {
        let version = self.applier.members_version();
        if version == self.cluster.published_members_version {
            return;
        }
        self.cluster.published_members_version = version;
        let members = self.applier.members().list();
        let peers: Vec<(u64, Vec<String>)> = members
            .iter()
            .map(|m| (m.id, m.peer_urls.clone()))
            .collect();
        self.transport.set_peers(&peers);
        self.shared
            .set_members(members, self.applier.members().removed_ids());
    }

    pub(super) fn fail_cluster_requests(&mut self, error: &ApiError) {
        if let Some(t) = self.cluster.transfer.take() {
            let _ = t.reply.send(Err(error.clone()));
        }
        for p in self.cluster.parked.drain(..) {
            let _ = p.reply.send(Err(error.clone()));
        }
    }
}
