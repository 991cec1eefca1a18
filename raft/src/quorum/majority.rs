//! A simple majority configuration: decisions need more than half of the voters.

use std::collections::{BTreeMap, BTreeSet};

use super::VoteResult;
use crate::types::{LogIndex, NodeId};

/// A set of voters deciding by majority.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub(crate) struct MajorityConfig {
    pub(crate) voters: BTreeSet<NodeId>,
}

impl MajorityConfig {
    #[cfg(test)]
    pub(crate) fn new(voters: impl IntoIterator<Item = NodeId>) -> MajorityConfig {
        MajorityConfig {
            voters: voters.into_iter().collect(),
        }
    }

    /// Votes needed to decide: more than half.
    pub(crate) fn quorum(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    /// The largest index that a quorum has acknowledged, given each voter's acked index
    /// (`None` counts as 0). An empty configuration returns `u64::MAX` so that it never
    /// limits a joint configuration.
    pub(crate) fn committed_index(&self, acked: impl Fn(NodeId) -> Option<LogIndex>) -> LogIndex {
        if self.voters.is_empty() {
            return LogIndex(u64::MAX);
        }
        let mut indexes: Vec<LogIndex> = self
            .voters
            .iter()
            .map(|&id| acked(id).unwrap_or_default())
            .collect();
        indexes.sort_unstable_by(|a, b| b.cmp(a));
        indexes[self.quorum() - 1]
    }

    /// Tally of `votes` (true = granted). An empty configuration wins (joint convention).
    pub(crate) fn vote_result(&self, votes: &BTreeMap<NodeId, bool>) -> VoteResult {
        if self.voters.is_empty() {
            return VoteResult::Won;
        }
        let (mut granted, mut missing) = (0usize, 0usize);
        for id in &self.voters {
            match votes.get(id) {
                Some(true) => granted += 1,
                Some(false) => {}
                None => missing += 1,
            }
        }
        let quorum = self.quorum();
        if granted >= quorum {
            VoteResult::Won
        } else if granted + missing >= quorum {
            VoteResult::Pending
        } else {
            VoteResult::Lost
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn ids(list: &[u64]) -> MajorityConfig {
        MajorityConfig::new(list.iter().map(|&i| NodeId(i)))
    }

    // Oracle test (etcd quorum/quick_test.go): the committed index is the largest index
    // acknowledged by at least a quorum of voters, computed here the dumb way.
    proptest! {
        #[test]
        fn committed_index_matches_the_count_oracle(acks in proptest::collection::vec(0u64..20, 1..8)) {
            let config = ids(&(1..=acks.len() as u64).collect::<Vec<_>>());
            let got = config.committed_index(|id| Some(LogIndex(acks[(id.0 - 1) as usize])));
            let oracle = (0..20u64).rev()
                .find(|&i| acks.iter().filter(|&&a| a >= i).count() >= config.quorum())
                .unwrap_or(0);
            prop_assert_eq!(got, LogIndex(oracle));
        }
    }

    // Missing acknowledgements count as zero.
    #[test]
    fn committed_index_treats_missing_voters_as_zero() {
        let config = ids(&[1, 2, 3]);
        let got = config.committed_index(|id| (id == NodeId(1)).then_some(LogIndex(5)));
        assert_eq!(got, LogIndex(0));
        assert_eq!(
            MajorityConfig::default().committed_index(|_| None),
            LogIndex(u64::MAX)
        );
    }

    // Won needs a quorum of grants; Lost once a quorum is out of reach.
    #[test]
    fn vote_result_follows_the_majority() {
        let config = ids(&[1, 2, 3]);
        let mut votes = BTreeMap::new();
        votes.insert(NodeId(1), true);
        assert_eq!(config.vote_result(&votes), VoteResult::Pending);
        votes.insert(NodeId(2), false);
        assert_eq!(config.vote_result(&votes), VoteResult::Pending);
        votes.insert(NodeId(3), false);
        assert_eq!(config.vote_result(&votes), VoteResult::Lost);
        votes.insert(NodeId(3), true);
        assert_eq!(config.vote_result(&votes), VoteResult::Won);
        // Votes of non-members are ignored.
        let mut outsiders = BTreeMap::new();
        outsiders.insert(NodeId(9), true);
        outsiders.insert(NodeId(8), true);
        assert_eq!(config.vote_result(&outsiders), VoteResult::Pending);
    }
}
