//! The cluster's members as applied state: changed only by applied Raft
//! entries (conf changes carrying a [`Member`] in their context, published
//! attributes, peer URL updates), so every member agrees on it.

use std::collections::{BTreeMap, BTreeSet};

use keel_raft::{ConfChange, ConfChangeKind};
use prost::Message;

use crate::proto::keelpb::{ConfChangeContext, Member, MemberAttributes, MemberPeerUrls};

/// Every member, by id, and the ids removed (a removed id never returns).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Members {
    by_id: BTreeMap<u64, Member>,
    removed: BTreeSet<u64>,
}

/// What a conf change did to the registry.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum MemberChange {
    Added(Member),
    Promoted(u64),
    Removed(u64),
    /// The change named an unknown member or a removed one: ignored.
    Ignored,
}

impl Members {
    pub(crate) fn list(&self) -> Vec<Member> {
        self.by_id.values().cloned().collect()
    }

    /// Ids removed from the cluster (they never return).
    pub(crate) fn removed_ids(&self) -> Vec<u64> {
        self.removed.iter().copied().collect()
    }

    pub(crate) fn get(&self, id: u64) -> Option<&Member> {
        self.by_id.get(&id)
    }

    /// Applies a committed conf change (etcd's ApplyConfChange on the
    /// member store).
    pub(crate) fn apply_conf_change(&mut self, change: &ConfChange) -> MemberChange {
        let id = change.node_id.0;
        if self.removed.contains(&id) {
            return MemberChange::Ignored;
        }
        match change.kind {
            ConfChangeKind::AddNode | ConfChangeKind::AddLearner => {
                let learner = change.kind == ConfChangeKind::AddLearner;
                if let Some(existing) = self.by_id.get_mut(&id) {
                    // AddNode on a learner promotes it (etcd's promote).
                    if existing.is_learner && !learner {
                        existing.is_learner = false;
                        return MemberChange::Promoted(id);
                    }
                    return MemberChange::Ignored;
                }
                let member = decode_context(&change.context)
                    .and_then(|c| c.member)
                    .map(|mut m| {
                        m.id = id;
                        m.is_learner = learner;
                        m
                    })
                    .unwrap_or(Member {
                        id,
                        is_learner: learner,
                        ..Default::default()
                    });
                self.by_id.insert(id, member.clone());
                MemberChange::Added(member)
            }
            ConfChangeKind::RemoveNode => {
                if self.by_id.remove(&id).is_some() {
                    self.removed.insert(id);
                    MemberChange::Removed(id)
                } else {
                    MemberChange::Ignored
                }
            }
        }
    }

    /// The registry as the members bucket held it at open.
    pub(crate) fn restore(members: Vec<Member>, removed: Vec<u64>) -> Self {
        Members {
            by_id: members.into_iter().map(|m| (m.id, m)).collect(),
            removed: removed.into_iter().collect(),
        }
    }

    /// A member published its name and client URLs; its id if it is a member.
    pub(crate) fn apply_attributes(&mut self, attributes: &MemberAttributes) -> Option<u64> {
        let member = self.by_id.get_mut(&attributes.id)?;
        member.name = attributes.name.clone();
        member.client_urls = attributes.client_urls.clone();
        Some(member.id)
    }

    /// Cluster.MemberUpdate: new peer URLs.
    pub(crate) fn apply_peer_urls(&mut self, update: &MemberPeerUrls) -> bool {
        match self.by_id.get_mut(&update.id) {
            Some(member) => {
                member.peer_urls = update.peer_urls.clone();
                true
            }
            None => false,
        }
    }
}

/// The context of a conf change entry (keel writes a [`ConfChangeContext`]).
pub(crate) fn decode_context(context: &[u8]) -> Option<ConfChangeContext> {
    if context.is_empty() {
        return None;
    }
    ConfChangeContext::decode(context).ok()
}

pub(crate) fn encode_context(member: Member, request_id: u64, proposer: u64) -> bytes::Bytes {
    bytes::Bytes::from(
        ConfChangeContext {
            member: Some(member),
            request_id,
            proposer,
        }
        .encode_to_vec(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_raft::NodeId;

    fn add(id: u64, kind: ConfChangeKind, name: &str) -> ConfChange {
        let member = Member {
            id,
            name: name.into(),
            peer_urls: vec![format!("http://h{id}:2380")],
            ..Default::default()
        };
        ConfChange {
            kind,
            node_id: NodeId(id),
            context: encode_context(member, 0, 0),
        }
    }

    // Guards the registry rules: add, promote a learner, remove for good.
    #[test]
    fn members_are_added_promoted_and_removed_for_good() {
        let mut members = Members::default();
        assert!(matches!(
            members.apply_conf_change(&add(1, ConfChangeKind::AddNode, "a")),
            MemberChange::Added(_)
        ));
        assert!(
            matches!(members.apply_conf_change(&add(2, ConfChangeKind::AddLearner, "b")), MemberChange::Added(m) if m.is_learner)
        );
        assert_eq!(
            members.apply_conf_change(&add(2, ConfChangeKind::AddNode, "b")),
            MemberChange::Promoted(2)
        );
        assert!(members
            .list()
            .iter()
            .any(|m| m.peer_urls == ["http://h2:2380"]));
        let remove = ConfChange::new(ConfChangeKind::RemoveNode, NodeId(2));
        assert_eq!(members.apply_conf_change(&remove), MemberChange::Removed(2));
        assert_eq!(
            members.apply_conf_change(&add(2, ConfChangeKind::AddNode, "b")),
            MemberChange::Ignored
        );
        assert_eq!(members.list().len(), 1);
    }
}
