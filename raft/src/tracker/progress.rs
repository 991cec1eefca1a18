//! What a leader knows about one follower's log, and the replication state machine:
//! Probe (one Append at a time until the match point is found), Replicate (pipelined
//! Appends within the inflight window), Snapshot (waiting for a snapshot to land).

use super::inflights::Inflights;
use crate::types::LogIndex;

/// How the leader replicates to a follower.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub enum ProgressState {
    /// At most one Append in flight per heartbeat interval, probing for the match point.
    #[default]
    Probe,
    /// Optimistic pipelining: `next` advances as Appends are sent.
    Replicate,
    /// A snapshot is on its way; no Appends until it is reported.
    Snapshot,
}

/// One follower's replication progress.
#[derive(Clone, PartialEq, Eq, Debug)]
pub(crate) struct Progress {
    /// Highest index known to match the leader's log (inclusive); 0 if unknown.
    pub(crate) match_index: LogIndex,
    /// Next index to send. Invariant: `match_index < next_index`.
    pub(crate) next_index: LogIndex,
    pub(crate) state: ProgressState,
    /// In Snapshot state: index of the snapshot being sent.
    pub(crate) pending_snapshot: LogIndex,
    /// Heard from since the last check-quorum round.
    pub(crate) recent_active: bool,
    /// In Probe state: an Append is out; wait for its answer or a heartbeat response.
    pub(crate) probe_sent: bool,
    pub(crate) inflights: Inflights,
    pub(crate) is_learner: bool,
}

impl Progress {
    pub(crate) fn new(next_index: LogIndex, inflight_msgs_max: usize) -> Progress {
        Progress {
            match_index: LogIndex(0),
            next_index,
            state: ProgressState::Probe,
            pending_snapshot: LogIndex(0),
            recent_active: false,
            probe_sent: false,
            inflights: Inflights::new(inflight_msgs_max),
            is_learner: false,
        }
    }

    fn reset_state(&mut self, state: ProgressState) {
        self.probe_sent = false;
        self.pending_snapshot = LogIndex(0);
        self.state = state;
        self.inflights.reset();
    }

    pub(crate) fn become_probe(&mut self) {
        if self.state == ProgressState::Snapshot {
            // The snapshot may have landed: resume right after it, or after match.
            let pending = self.pending_snapshot;
            self.reset_state(ProgressState::Probe);
            self.next_index = self.match_index.next().max(pending.next());
        } else {
            self.reset_state(ProgressState::Probe);
            self.next_index = self.match_index.next();
        }
    }

    pub(crate) fn become_replicate(&mut self) {
        self.reset_state(ProgressState::Replicate);
        self.next_index = self.match_index.next();
    }

    pub(crate) fn become_snapshot(&mut self, snapshot_index: LogIndex) {
        self.reset_state(ProgressState::Snapshot);
        self.pending_snapshot = snapshot_index;
    }

    /// The follower acknowledged `index`. Returns true when `match_index` advanced.
    pub(crate) fn maybe_update(&mut self, index: LogIndex) -> bool {
        let updated = self.match_index < index;
        if updated {
            self.match_index = index;
            self.probe_sent = false;
        }
        self.next_index = self.next_index.max(index.next());
        updated
    }

    /// An Append with entries up to `last_index` was sent.
    pub(crate) fn sent_entries(&mut self, last_index: LogIndex) {
        match self.state {
            ProgressState::Replicate => {
                self.next_index = last_index.next();
                self.inflights.add(last_index);
            }
            ProgressState::Probe => self.probe_sent = true,
            ProgressState::Snapshot => {
                unreachable!("Append sent to a follower in Snapshot state (is_paused guards)")
            }
        }
    }

    /// The follower rejected an Append at `rejected` and hints it matches at most at
    /// `match_hint`. Returns false when the rejection is stale (ignored).
    pub(crate) fn maybe_decr_to(&mut self, rejected: LogIndex, match_hint: LogIndex) -> bool {
        if self.state == ProgressState::Replicate {
            if rejected <= self.match_index {
                return false;
            }
            self.next_index = self.match_index.next();
            return true;
        }
        if self.next_index.prev() != rejected {
            return false;
        }
        self.next_index = rejected.min(match_hint.next()).max(self.match_index.next());
        self.probe_sent = false;
        true
    }

    /// True when no Append may be sent now.
    pub(crate) fn is_paused(&self) -> bool {
        match self.state {
            ProgressState::Probe => self.probe_sent,
            ProgressState::Replicate => self.inflights.full(),
            ProgressState::Snapshot => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Probe sends one Append, then pauses until the follower answers.
    #[test]
    fn probe_pauses_after_one_append_until_acknowledged() {
        let mut progress = Progress::new(LogIndex(5), 4);
        assert!(!progress.is_paused());
        progress.sent_entries(LogIndex(7));
        assert!(progress.is_paused());
        assert!(progress.maybe_update(LogIndex(7)));
        assert!(!progress.is_paused());
        assert_eq!(progress.next_index, LogIndex(8));
    }

    // Replicate pipelines until the inflight window is full.
    #[test]
    fn replicate_pipelines_until_the_window_is_full() {
        let mut progress = Progress::new(LogIndex(1), 2);
        progress.become_replicate();
        progress.sent_entries(LogIndex(3));
        progress.sent_entries(LogIndex(5));
        assert_eq!(progress.next_index, LogIndex(6));
        assert!(progress.is_paused());
        progress.inflights.free_le(LogIndex(3));
        assert!(!progress.is_paused());
    }

    // Stale rejections (reordered responses) must not move next backwards.
    #[test]
    fn stale_rejections_are_ignored() {
        let mut progress = Progress::new(LogIndex(10), 4);
        assert!(
            !progress.maybe_decr_to(LogIndex(5), LogIndex(2)),
            "probe: not next - 1"
        );
        assert!(progress.maybe_decr_to(LogIndex(9), LogIndex(3)));
        assert_eq!(progress.next_index, LogIndex(4));
        progress.maybe_update(LogIndex(3));
        progress.become_replicate();
        assert!(
            !progress.maybe_decr_to(LogIndex(2), LogIndex(0)),
            "replicate: below match"
        );
        assert!(progress.maybe_decr_to(LogIndex(6), LogIndex(0)));
        assert_eq!(progress.next_index, LogIndex(4));
    }

    // Leaving Snapshot state resumes after the snapshot (or the match, if further).
    #[test]
    fn become_probe_after_snapshot_resumes_after_it() {
        let mut progress = Progress::new(LogIndex(3), 4);
        progress.become_snapshot(LogIndex(20));
        assert!(progress.is_paused());
        progress.become_probe();
        assert_eq!(progress.next_index, LogIndex(21));
        assert_eq!(progress.pending_snapshot, LogIndex(0));
    }
}
