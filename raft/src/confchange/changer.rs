//! Applies one [`ConfChange`] to a copy of the tracker's membership and progress, validates
//! the result and returns it; the caller swaps it in. One voter changes at a time, so any
//! two consecutive configurations share a majority (Raft thesis §4.1).

use std::collections::BTreeMap;

use crate::conf_change::{ConfChange, ConfChangeKind};
use crate::tracker::progress::Progress;
use crate::tracker::{ProgressTracker, TrackerConfig};
use crate::types::{LogIndex, NodeId};

/// A new membership and matching progress map.
pub(crate) struct Changed {
    pub(crate) config: TrackerConfig,
    pub(crate) progress: BTreeMap<NodeId, Progress>,
}

/// Applies `cc` on top of `tracker`. New members start probing at `last_index`.
pub(crate) fn apply_simple(
    tracker: &ProgressTracker,
    cc: &ConfChange,
    last_index: LogIndex,
) -> Result<Changed, String> {
    let mut changed = Changed {
        config: tracker.config.clone(),
        progress: tracker.progress.clone(),
    };
    let id = cc.node_id;
    if id == NodeId(0) {
        return Err("node id 0 is never a member".to_string());
    }
    match cc.kind {
        ConfChangeKind::AddNode => add_voter(&mut changed, id, last_index, tracker),
        ConfChangeKind::AddLearner => add_learner(&mut changed, id, last_index, tracker),
        ConfChangeKind::RemoveNode => {
            changed.config.voters.incoming.voters.remove(&id);
            changed.config.learners.remove(&id);
            changed.progress.remove(&id);
        }
    }
    check(&changed)?;
    Ok(changed)
}

fn new_progress(last_index: LogIndex, tracker: &ProgressTracker, is_learner: bool) -> Progress {
    let mut progress = Progress::new(last_index.max(LogIndex(1)), tracker.inflight_msgs_max);
    // A new member counts as active so that check-quorum does not depose the leader
    // before the member had a chance to answer.
    progress.recent_active = true;
    progress.is_learner = is_learner;
    progress
}

fn add_voter(changed: &mut Changed, id: NodeId, last_index: LogIndex, tracker: &ProgressTracker) {
    changed.config.learners.remove(&id);
    changed.config.voters.incoming.voters.insert(id);
    changed
        .progress
        .entry(id)
        .or_insert_with(|| new_progress(last_index, tracker, false))
        .is_learner = false;
}

fn add_learner(changed: &mut Changed, id: NodeId, last_index: LogIndex, tracker: &ProgressTracker) {
    changed.config.voters.incoming.voters.remove(&id);
    changed.config.learners.insert(id);
    changed
        .progress
        .entry(id)
        .or_insert_with(|| new_progress(last_index, tracker, true))
        .is_learner = true;
}

/// Invariants of a membership: at least one voter; voters and learners disjoint; exactly
/// the members have progress, with matching learner flags.
fn check(changed: &Changed) -> Result<(), String> {
    let voters = &changed.config.voters.incoming.voters;
    if voters.is_empty() {
        return Err("removing the last voter".to_string());
    }
    if let Some(both) = voters.intersection(&changed.config.learners).next() {
        return Err(format!("{both} is both voter and learner"));
    }
    for id in voters.iter().chain(changed.config.learners.iter()) {
        let progress = changed
            .progress
            .get(id)
            .ok_or_else(|| format!("{id} has no progress"))?;
        assert_eq!(
            progress.is_learner,
            changed.config.learners.contains(id),
            "learner flag of {id} disagrees with the membership"
        );
    }
    let members = voters.len() + changed.config.learners.len();
    assert_eq!(
        changed.progress.len(),
        members,
        "progress map holds non-members"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::confchange::restore::restore;
    use crate::types::ConfState;

    fn tracker(voters: &[u64], learners: &[u64]) -> ProgressTracker {
        let conf_state = ConfState {
            voters: voters.iter().map(|&i| NodeId(i)).collect(),
            learners: learners.iter().map(|&i| NodeId(i)).collect(),
        };
        restore(&conf_state, LogIndex(10), 8).expect("valid conf state")
    }

    fn apply(
        tracker: &ProgressTracker,
        kind: ConfChangeKind,
        id: u64,
    ) -> Result<ConfState, String> {
        apply_simple(tracker, &ConfChange::new(kind, NodeId(id)), LogIndex(10))
            .map(|changed| changed.config.to_conf_state())
    }

    // Promotion, demotion, addition and removal each move exactly one node.
    #[test]
    fn each_change_moves_one_node() {
        let t = tracker(&[1, 2], &[3]);
        let ids = |v: &[u64]| v.iter().map(|&i| NodeId(i)).collect::<Vec<_>>();
        assert_eq!(
            apply(&t, ConfChangeKind::AddNode, 3).map(|c| c.voters),
            Ok(ids(&[1, 2, 3]))
        );
        assert_eq!(
            apply(&t, ConfChangeKind::AddLearner, 2).map(|c| c.learners),
            Ok(ids(&[2, 3]))
        );
        assert_eq!(
            apply(&t, ConfChangeKind::AddNode, 4).map(|c| c.voters),
            Ok(ids(&[1, 2, 4]))
        );
        assert_eq!(
            apply(&t, ConfChangeKind::RemoveNode, 3).map(|c| c.learners),
            Ok(ids(&[]))
        );
        // Idempotent: adding an existing voter changes nothing.
        assert_eq!(
            apply(&t, ConfChangeKind::AddNode, 1).map(|c| c.voters),
            Ok(ids(&[1, 2]))
        );
    }

    // The last voter cannot go: a group without voters can never commit again.
    #[test]
    fn removing_the_last_voter_is_refused() {
        let t = tracker(&[1], &[2]);
        assert!(apply(&t, ConfChangeKind::RemoveNode, 1).is_err());
        assert!(apply(&t, ConfChangeKind::AddLearner, 1).is_err());
    }

    // New members start probing near the leader's last index and count as active.
    #[test]
    fn new_member_starts_probing_at_last_index() {
        let t = tracker(&[1], &[]);
        let changed = apply_simple(
            &t,
            &ConfChange::new(ConfChangeKind::AddNode, NodeId(5)),
            LogIndex(10),
        )
        .expect("valid");
        let progress = &changed.progress[&NodeId(5)];
        assert_eq!(progress.next_index, LogIndex(10));
        assert!(progress.recent_active);
    }
}
