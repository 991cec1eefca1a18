//! Rebuilds a tracker from a stored [`ConfState`] (restart, snapshot install) by applying
//! one change per member, so a stored membership passes the same validation as live ones.

use super::changer::apply_simple;
use crate::conf_change::{ConfChange, ConfChangeKind};
use crate::tracker::ProgressTracker;
use crate::types::{ConfState, LogIndex};

/// A tracker holding exactly `conf_state`'s members. An empty `conf_state` gives an empty
/// tracker (a node waiting to be bootstrapped or to receive a snapshot).
pub(crate) fn restore(
    conf_state: &ConfState,
    last_index: LogIndex,
    inflight_msgs_max: usize,
) -> Result<ProgressTracker, String> {
    let mut tracker = ProgressTracker::new(inflight_msgs_max);
    if conf_state.voters.is_empty() {
        if conf_state.learners.is_empty() {
            return Ok(tracker);
        }
        return Err("conf state has learners but no voters".to_string());
    }
    let changes = conf_state
        .voters
        .iter()
        .map(|&id| (ConfChangeKind::AddNode, id))
        .chain(
            conf_state
                .learners
                .iter()
                .map(|&id| (ConfChangeKind::AddLearner, id)),
        );
    for (kind, id) in changes {
        if kind == ConfChangeKind::AddLearner && tracker.is_voter(id) {
            return Err(format!("{id} is listed as both voter and learner"));
        }
        let changed = apply_simple(&tracker, &ConfChange::new(kind, id), last_index)?;
        tracker.config = changed.config;
        tracker.progress = changed.progress;
    }
    Ok(tracker)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::NodeId;

    // What restore builds converts back to the same ConfState.
    #[test]
    fn restore_round_trips_the_conf_state() {
        let conf_state = ConfState {
            voters: vec![NodeId(1), NodeId(3)],
            learners: vec![NodeId(2)],
        };
        let tracker = restore(&conf_state, LogIndex(4), 8).expect("valid");
        assert_eq!(tracker.config.to_conf_state(), conf_state);
        assert_eq!(tracker.progress.len(), 3);
    }

    // Overlapping lists are corrupt stored state: an error, not a silent pick.
    #[test]
    fn restore_rejects_a_node_in_both_lists() {
        let conf_state = ConfState {
            voters: vec![NodeId(1)],
            learners: vec![NodeId(1)],
        };
        assert!(restore(&conf_state, LogIndex(4), 8).is_err());
        let no_voters = ConfState {
            voters: vec![],
            learners: vec![NodeId(1)],
        };
        assert!(restore(&no_voters, LogIndex(4), 8).is_err());
    }
}
