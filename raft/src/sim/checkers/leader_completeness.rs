//! Leader completeness (Raft §5.4): an entry committed in a term is present in the log of
//! every leader of every later term.
//!
//! Checked when a node becomes leader of term T (its first Ready as leader, after its log
//! took that Ready's entries): every entry the commit log knows was committed by a leader
//! of a term below T must be in the new leader's log (or under its snapshot, whose own
//! position must then be committed). Commit terms in the commit log are upper bounds, so
//! the check never blames a leader for an entry committed in its own term or later.

use crate::sim::commit_log::CommitLog;
use crate::sim::shadow::ShadowLog;
use crate::types::{LogIndex, NodeId, Term};

/// Stateless: all it needs is the commit log and the new leader's log.
#[derive(Clone, Debug, Default)]
pub(crate) struct LeaderCompleteness {
    /// Leaders checked (for the summary).
    pub(crate) checked_leaders: u64,
}

impl LeaderCompleteness {
    pub(crate) fn on_elected(
        &mut self,
        node: NodeId,
        term: Term,
        shadow: &ShadowLog,
        commit_log: &CommitLog,
    ) -> Result<(), String> {
        self.checked_leaders += 1;
        let snapshot_index = shadow.snapshot_index();
        if let Some(committed) = commit_log.get(snapshot_index) {
            if shadow.term(snapshot_index) != Some(committed.id.term) {
                return Err(format!(
                    "new leader {node} of {term} has a snapshot at {snapshot_index} that \
                     disagrees with the committed entry ({})",
                    committed.id.term
                ));
            }
        }
        for index in snapshot_index.0 + 1..=commit_log.last_index().0 {
            let index = LogIndex(index);
            let Some(committed) = commit_log.get(index) else {
                continue;
            };
            if committed.commit_term >= term {
                continue;
            }
            let held = shadow.entry(index);
            if held != Some(committed.id) {
                return Err(format!(
                    "new leader {node} of {term} lacks {index} (committed in {} or earlier, \
                     entry of {}); it holds {}",
                    committed.commit_term,
                    committed.id.term,
                    held.map_or_else(
                        || "nothing".to_string(),
                        |h| format!("an entry of {}", h.term)
                    )
                ));
            }
        }
        Ok(())
    }
}
