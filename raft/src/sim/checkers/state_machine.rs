//! State machine safety (Raft §5.4.3): no two nodes apply different entries at the same
//! index, and every node's applied sequence is a prefix of the longest one.
//!
//! For each index the first application records the entry and the digest of the KV state
//! right after it; every later application at that index (another node, or the same node
//! replaying after a restart) must match both. Each node applies in index order (the node
//! loop reports a gap as a violation), so equal entries per index make applied sequences
//! prefixes of each other. Every applied entry must also be the one the commit log holds:
//! nothing uncommitted is ever applied. A state restored from a snapshot or checkpoint at
//! index i must have the digest recorded for i.

use crate::sim::commit_log::CommitLog;
use crate::sim::shadow::EntryId;
use crate::types::{LogIndex, NodeId};

/// The first application seen at an index.
#[derive(Clone, Copy, Debug)]
struct Applied {
    id: Option<EntryId>,
    kv_digest: u64,
    node: NodeId,
}

/// Applications per index (index 1 first).
#[derive(Clone, Debug, Default)]
pub(crate) struct StateMachineSafety {
    applied: Vec<Option<Applied>>,
}

impl StateMachineSafety {
    fn slot(&mut self, index: LogIndex) -> &mut Option<Applied> {
        let position = index.0.saturating_sub(1) as usize;
        if self.applied.len() <= position {
            self.applied.resize(position + 1, None);
        }
        &mut self.applied[position]
    }

    /// Highest index any node applied.
    pub(crate) fn applied_max(&self) -> LogIndex {
        LogIndex(self.applied.len() as u64)
    }

    /// `node` applied `id` at `index`, leaving its KV state with `kv_digest`.
    pub(crate) fn on_applied(
        &mut self,
        node: NodeId,
        index: LogIndex,
        id: EntryId,
        kv_digest: u64,
        commit_log: &CommitLog,
    ) -> Result<(), String> {
        match commit_log.get(index) {
            Some(committed) if committed.id == id => {}
            Some(committed) => {
                return Err(format!(
                    "{node} applied an entry of {} at {index}; the committed entry is of {}",
                    id.term, committed.id.term
                ))
            }
            None => {
                return Err(format!(
                    "{node} applied {index} (entry of {}) but no leader reported it committed",
                    id.term
                ))
            }
        }
        let slot = self.slot(index);
        let Some(first) = *slot else {
            *slot = Some(Applied {
                id: Some(id),
                kv_digest,
                node,
            });
            return Ok(());
        };
        if first.id.is_some_and(|first_id| first_id != id) {
            return Err(format!(
                "{node} and {} applied different entries at {index}",
                first.node
            ));
        }
        if first.kv_digest != kv_digest {
            return Err(format!(
                "{node} and {} reached different KV states after applying {index} \
                 ({kv_digest:016x} vs {:016x})",
                first.node, first.kv_digest
            ));
        }
        Ok(())
    }

    /// `node` restored its state at `index` (from a snapshot or its checkpoint).
    pub(crate) fn on_restored(
        &mut self,
        node: NodeId,
        index: LogIndex,
        kv_digest: u64,
    ) -> Result<(), String> {
        if index == LogIndex(0) {
            return Ok(());
        }
        let slot = self.slot(index);
        let Some(first) = *slot else {
            *slot = Some(Applied {
                id: None,
                kv_digest,
                node,
            });
            return Ok(());
        };
        if first.kv_digest != kv_digest {
            return Err(format!(
                "{node} restored a KV state at {index} ({kv_digest:016x}) that differs from \
                 what {} had applied there ({:016x})",
                first.node, first.kv_digest
            ));
        }
        Ok(())
    }
}
