//! What the simulator knows to be committed: for each index, the entry a leader reported
//! committed and the lowest term of a leader seen reporting it (an upper bound on the term
//! in which it was committed, which keeps the leader-completeness check sound).
//!
//! Sources: a leader's status after each step (its own commit index) and every Append and
//! Heartbeat a leader hands out (their `commit` field is that leader's commit index, and
//! no follower learns of a commit any other way). Bootstrap entries are committed by
//! construction.

use crate::sim::shadow::{EntryId, ShadowLog};
use crate::types::{LogIndex, NodeId, Term};

/// One committed entry.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Committed {
    pub(crate) id: EntryId,
    /// Lowest leader term seen reporting this index committed.
    pub(crate) commit_term: Term,
}

/// The committed log, index 1 first.
#[derive(Clone, Debug, Default)]
pub(crate) struct CommitLog {
    entries: Vec<Committed>,
}

impl CommitLog {
    pub(crate) fn last_index(&self) -> LogIndex {
        LogIndex(self.entries.len() as u64)
    }

    pub(crate) fn get(&self, index: LogIndex) -> Option<Committed> {
        let position = index.0.checked_sub(1)?;
        self.entries.get(position as usize).copied()
    }

    /// Records that the leader `leader` of `term`, whose log is `shadow`, has committed up to
    /// `commit`. Entries it newly commits must be in its log; entries already known
    /// committed must match its log where it still holds them (else the error describes the
    /// disagreement).
    pub(crate) fn observe(
        &mut self,
        leader: NodeId,
        term: Term,
        commit: LogIndex,
        shadow: &ShadowLog,
    ) -> Result<(), String> {
        let known = self.last_index();
        if commit <= known {
            return self.verify(leader, commit, shadow);
        }
        self.verify(leader, known, shadow)?;
        for index in known.0 + 1..=commit.0 {
            let index = LogIndex(index);
            let Some(id) = shadow.entry(index) else {
                return Err(format!(
                    "leader {leader} of {term} reports commit {commit} but its log ends at {} \
                     (snapshot at {}) and {index} was never seen committed",
                    shadow.last_index(),
                    shadow.snapshot_index()
                ));
            };
            self.entries.push(Committed {
                id,
                commit_term: term,
            });
        }
        Ok(())
    }

    /// The leader's entry at `upto` (when held) must be the committed one. Checking the last
    /// index suffices: log matching (checked separately) extends agreement to the prefix.
    fn verify(&self, leader: NodeId, upto: LogIndex, shadow: &ShadowLog) -> Result<(), String> {
        let (Some(held), Some(committed)) = (shadow.entry(upto), self.get(upto)) else {
            return Ok(());
        };
        if held == committed.id {
            return Ok(());
        }
        Err(format!(
            "leader {leader} reports {upto} committed but holds {}/{:016x} there; committed \
             was {}/{:016x}",
            held.term, held.digest, committed.id.term, committed.id.digest
        ))
    }

    /// Records entries committed without a leader (bootstrap).
    pub(crate) fn record_bootstrap(&mut self, ids: &[EntryId]) {
        for &id in ids.iter().skip(self.entries.len()) {
            self.entries.push(Committed {
                id,
                commit_term: id.term,
            });
        }
    }
}
