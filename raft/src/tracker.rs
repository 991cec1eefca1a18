//! ProgressTracker: the membership (voters, learners), each member's replication progress
//! and the votes of the current election. Iteration is in id order (BTreeMap) so that the
//! state machine stays deterministic.

pub(crate) mod inflights;
pub(crate) mod progress;

use std::collections::{BTreeMap, BTreeSet};

use progress::Progress;

use crate::quorum::joint::JointConfig;
use crate::quorum::VoteResult;
use crate::types::{ConfState, LogIndex, NodeId};

/// Membership: voters (as a joint config, outgoing half empty for now) and learners.
/// Invariant: voters and learners are disjoint.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub(crate) struct TrackerConfig {
    pub(crate) voters: JointConfig,
    pub(crate) learners: BTreeSet<NodeId>,
}

impl TrackerConfig {
    pub(crate) fn to_conf_state(&self) -> ConfState {
        ConfState {
            voters: self.voters.incoming.voters.iter().copied().collect(),
            learners: self.learners.iter().copied().collect(),
        }
    }
}

/// Membership plus per-member progress and election votes.
#[derive(Clone, Debug)]
pub(crate) struct ProgressTracker {
    pub(crate) config: TrackerConfig,
    /// One entry per voter and learner.
    pub(crate) progress: BTreeMap<NodeId, Progress>,
    /// Votes received in the current election (true = granted).
    pub(crate) votes: BTreeMap<NodeId, bool>,
    pub(crate) inflight_msgs_max: usize,
}

impl ProgressTracker {
    pub(crate) fn new(inflight_msgs_max: usize) -> ProgressTracker {
        ProgressTracker {
            config: TrackerConfig::default(),
            progress: BTreeMap::new(),
            votes: BTreeMap::new(),
            inflight_msgs_max,
        }
    }

    /// Ids of voters and learners, in order.
    pub(crate) fn member_ids(&self) -> Vec<NodeId> {
        self.progress.keys().copied().collect()
    }

    pub(crate) fn is_voter(&self, id: NodeId) -> bool {
        self.config.voters.contains(id)
    }

    /// True when exactly one voter decides everything (no round trips needed).
    pub(crate) fn is_singleton(&self) -> bool {
        self.config.voters.outgoing.voters.is_empty()
            && self.config.voters.incoming.voters.len() == 1
    }

    /// The largest index a quorum of voters has durably matched.
    pub(crate) fn committed(&self) -> LogIndex {
        self.config
            .voters
            .committed_index(|id| self.progress.get(&id).map(|p| p.match_index))
    }

    /// True when a quorum of voters was heard from recently (`self_id` always counts).
    pub(crate) fn quorum_active(&self, self_id: NodeId) -> bool {
        let mut active = BTreeMap::new();
        for (&id, progress) in &self.progress {
            if !progress.is_learner {
                active.insert(id, id == self_id || progress.recent_active);
            }
        }
        self.config.voters.vote_result(&active) == VoteResult::Won
    }

    pub(crate) fn reset_votes(&mut self) {
        self.votes.clear();
    }

    /// Records `id`'s vote (the first vote of each node counts).
    pub(crate) fn record_vote(&mut self, id: NodeId, granted: bool) {
        self.votes.entry(id).or_insert(granted);
    }

    /// (granted, rejected, result) of the current election.
    pub(crate) fn tally_votes(&self) -> (usize, usize, VoteResult) {
        let voters = self.config.voters.ids();
        let granted = self
            .votes
            .iter()
            .filter(|(id, &v)| v && voters.contains(id))
            .count();
        let rejected = self
            .votes
            .iter()
            .filter(|(id, &v)| !v && voters.contains(id))
            .count();
        (
            granted,
            rejected,
            self.config.voters.vote_result(&self.votes),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracker(voters: &[u64]) -> ProgressTracker {
        let mut tracker = ProgressTracker::new(8);
        tracker.config.voters = JointConfig::new(voters.iter().map(|&i| NodeId(i)));
        for &id in voters {
            tracker
                .progress
                .insert(NodeId(id), Progress::new(LogIndex(1), 8));
        }
        tracker
    }

    // Learners never count towards commit.
    #[test]
    fn committed_counts_voters_only() {
        let mut tracker = tracker(&[1, 2, 3]);
        let mut learner = Progress::new(LogIndex(1), 8);
        learner.is_learner = true;
        learner.match_index = LogIndex(9);
        tracker.progress.insert(NodeId(4), learner);
        tracker.config.learners.insert(NodeId(4));
        tracker
            .progress
            .get_mut(&NodeId(1))
            .expect("voter")
            .match_index = LogIndex(9);
        assert_eq!(tracker.committed(), LogIndex(0));
        tracker
            .progress
            .get_mut(&NodeId(2))
            .expect("voter")
            .match_index = LogIndex(7);
        assert_eq!(tracker.committed(), LogIndex(7));
        assert_eq!(tracker.config.to_conf_state().learners, vec![NodeId(4)]);
    }

    // Check-quorum: the leader alone is not a quorum of three.
    #[test]
    fn quorum_active_needs_a_majority_of_recent_voters() {
        let mut tracker = tracker(&[1, 2, 3]);
        assert!(!tracker.quorum_active(NodeId(1)));
        tracker
            .progress
            .get_mut(&NodeId(3))
            .expect("voter")
            .recent_active = true;
        assert!(tracker.quorum_active(NodeId(1)));
    }

    // A node's first vote in an election is the one that counts (duplicates are ignored).
    #[test]
    fn first_vote_of_each_node_counts() {
        let mut tracker = tracker(&[1, 2, 3]);
        tracker.record_vote(NodeId(1), true);
        tracker.record_vote(NodeId(2), false);
        tracker.record_vote(NodeId(2), true);
        assert_eq!(tracker.tally_votes(), (1, 1, VoteResult::Pending));
        tracker.record_vote(NodeId(3), true);
        assert_eq!(tracker.tally_votes(), (2, 1, VoteResult::Won));
    }
}
