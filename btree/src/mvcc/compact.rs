//! Compaction (etcd's `store.compact` + `scheduleCompaction`): removes every revision superseded
//! at or before the compaction revision, except the newest one of each live key, key by key.
//!
//! etcd first compacts its whole in-memory index, then deletes the removed revisions from the
//! key bucket in batches. Here each key's index entry and its records go together, so the store
//! is consistent after every key: a `CompactionJob` can stop after any batch of keys and resume
//! later, with writes in between (new writes are above the compaction revision and untouched).

use std::ops::Bound;

use super::index_key::IndexKey;
use super::key_index::KeyCompaction;
use super::state::StoreState;

/// What one compaction removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CompactOutcome {
    /// The revision compacted to (the store's compacted revision from now on).
    pub compacted_revision: i64,
    /// Records (revisions) removed.
    pub revisions_removed_count: usize,
    /// Keys removed from the revision index: their newest revision at or before the compaction
    /// revision was a delete.
    pub keys_removed_count: usize,
}

/// A compaction in progress: walks the revision index in key order, a bounded batch of keys per
/// step.
pub(crate) struct CompactionJob {
    outcome: CompactOutcome,
    /// Keys up to and including this one are done; `None`: none yet.
    done_through: Option<IndexKey>,
}

impl CompactionJob {
    /// Keys per step (etcd's `defaultCompactBatchLimit`, which counts revisions).
    pub(crate) const BATCH_KEYS_MAX: usize = 1000;

    pub(crate) fn new(revision: i64) -> Self {
        let outcome = CompactOutcome {
            compacted_revision: revision,
            ..CompactOutcome::default()
        };
        CompactionJob {
            outcome,
            done_through: None,
        }
    }

    pub(crate) fn outcome(&self) -> CompactOutcome {
        self.outcome
    }

    /// Compacts the next `keys_max` keys (at least 1). Returns `true` once every key is done.
    pub(crate) fn step(&mut self, state: &mut StoreState, keys_max: usize) -> bool {
        assert!(keys_max > 0, "a compaction step makes progress");
        let at = self.outcome.compacted_revision;
        let start = match &self.done_through {
            Some(key) => Bound::Excluded(key.as_slice()),
            None => Bound::Unbounded,
        };
        // Plan read-only first: keys with nothing to remove are not touched, so their tree
        // nodes stay shared with read views.
        let mut visited = 0usize;
        let mut last_visited = None;
        let mut plans: Vec<(IndexKey, KeyCompaction)> = Vec::new();
        for (key, index) in state.index.tree.range::<[u8], _>((start, Bound::Unbounded)) {
            if visited == keys_max {
                break;
            }
            visited += 1;
            last_visited = Some(key);
            if let Some(plan) = index.compact(at) {
                plans.push((key.clone(), plan));
            }
        }
        if let Some(key) = last_visited {
            self.done_through = Some(key.clone());
        }
        for (key, plan) in plans {
            self.apply(state, key, plan);
        }
        visited < keys_max
    }

    fn apply(&mut self, state: &mut StoreState, key: IndexKey, plan: KeyCompaction) {
        for revision in &plan.removed {
            let removed = state.records.remove(revision);
            assert!(
                removed.is_some(),
                "compaction of {revision}, which has no record"
            );
        }
        self.outcome.revisions_removed_count += plan.removed.len();
        match plan.remaining {
            Some(index) => {
                state.index.tree.insert(key, index);
            }
            None => {
                state.index.tree.remove(key.as_slice());
                self.outcome.keys_removed_count += 1;
            }
        }
    }
}
