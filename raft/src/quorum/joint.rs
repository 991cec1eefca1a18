//! A joint configuration: an incoming and an outgoing majority that must both agree
//! (joint consensus, Raft thesis §4.3). With an empty outgoing half it behaves exactly like
//! the incoming majority; keel-raft currently changes membership one voter at a time and
//! keeps the outgoing half empty, so joint changes can be added without touching callers.

use std::collections::{BTreeMap, BTreeSet};

use super::majority::MajorityConfig;
use super::VoteResult;
use crate::types::{LogIndex, NodeId};

/// Two majority configurations deciding together.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub(crate) struct JointConfig {
    pub(crate) incoming: MajorityConfig,
    pub(crate) outgoing: MajorityConfig,
}

impl JointConfig {
    #[cfg(test)]
    pub(crate) fn new(voters: impl IntoIterator<Item = NodeId>) -> JointConfig {
        JointConfig {
            incoming: MajorityConfig::new(voters),
            outgoing: MajorityConfig::default(),
        }
    }

    /// Every voter of either half.
    pub(crate) fn ids(&self) -> BTreeSet<NodeId> {
        self.incoming
            .voters
            .union(&self.outgoing.voters)
            .copied()
            .collect()
    }

    pub(crate) fn contains(&self, id: NodeId) -> bool {
        self.incoming.voters.contains(&id) || self.outgoing.voters.contains(&id)
    }

    /// The largest index both halves have committed.
    pub(crate) fn committed_index(&self, acked: impl Fn(NodeId) -> Option<LogIndex>) -> LogIndex {
        let incoming = self.incoming.committed_index(&acked);
        let outgoing = self.outgoing.committed_index(&acked);
        incoming.min(outgoing)
    }

    /// Won only if both halves won; Lost if either lost.
    pub(crate) fn vote_result(&self, votes: &BTreeMap<NodeId, bool>) -> VoteResult {
        let incoming = self.incoming.vote_result(votes);
        let outgoing = self.outgoing.vote_result(votes);
        match (incoming, outgoing) {
            (VoteResult::Won, VoteResult::Won) => VoteResult::Won,
            (VoteResult::Lost, _) | (_, VoteResult::Lost) => VoteResult::Lost,
            _ => VoteResult::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn joint(incoming: &[u64], outgoing: &[u64]) -> JointConfig {
        JointConfig {
            incoming: MajorityConfig::new(incoming.iter().map(|&i| NodeId(i))),
            outgoing: MajorityConfig::new(outgoing.iter().map(|&i| NodeId(i))),
        }
    }

    // Both halves must have a majority at an index for it to be committed.
    #[test]
    fn committed_index_is_the_minimum_of_both_halves() {
        let config = joint(&[1, 2, 3], &[3, 4, 5]);
        let acks = |id: NodeId| Some(LogIndex([0, 9, 9, 5, 1, 1][id.0 as usize]));
        assert_eq!(config.committed_index(acks), LogIndex(1));
        let simple = joint(&[1, 2, 3], &[]);
        assert_eq!(simple.committed_index(acks), LogIndex(9));
    }

    // A loss in either half loses; a win needs both.
    #[test]
    fn vote_result_needs_both_halves() {
        let config = joint(&[1, 2, 3], &[3, 4, 5]);
        let mut votes = BTreeMap::new();
        for id in [1, 2, 3] {
            votes.insert(NodeId(id), true);
        }
        assert_eq!(config.vote_result(&votes), VoteResult::Pending);
        votes.insert(NodeId(4), false);
        votes.insert(NodeId(5), false);
        assert_eq!(config.vote_result(&votes), VoteResult::Lost);
        votes.insert(NodeId(4), true);
        assert_eq!(config.vote_result(&votes), VoteResult::Won);
        assert_eq!(config.ids().len(), 5);
        assert!(config.contains(NodeId(5)));
    }
}
