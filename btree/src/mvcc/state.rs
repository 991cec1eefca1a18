//! `StoreState`: one version of the whole store (record tree, revision index, revision,
//! compaction point) and the reads every holder of a version shares: ranges at a revision,
//! watch history, and the consistency check. Cloning it is O(1) (two root pointers).

use std::sync::Arc;

use bytes::Bytes;

use super::event::Event;
use super::index::RevisionIndex;
use super::key_range::KeyRange;
use super::key_value::KeyValue;
use super::range::{RangeOptions, RangeResult};
use super::record::Record;
use super::revision::Revision;
use crate::error::{MvccError, StoreCheckError};
use crate::BTree;

#[derive(Clone)]
pub(crate) struct StoreState {
    /// etcd's key bucket: every stored revision -> its record.
    pub(crate) records: BTree<Revision, Arc<Record>>,
    /// key -> generations of its stored revisions.
    pub(crate) index: RevisionIndex,
    /// Main revision of the last committed write transaction; 1 in a new store.
    pub(crate) revision: i64,
    /// Revision of the last compaction; `None` until the first one (etcd's -1).
    pub(crate) compacted: Option<i64>,
}

impl StoreState {
    pub(crate) fn new() -> Self {
        StoreState {
            records: BTree::new(),
            index: RevisionIndex::default(),
            revision: 1,
            compacted: None,
        }
    }

    /// 0 until the first compaction.
    pub(crate) fn compacted_revision(&self) -> i64 {
        self.compacted.unwrap_or(0)
    }

    pub(crate) fn record(&self, revision: Revision) -> &Record {
        self.records
            .get(&revision)
            .expect("every revision in the index has a record")
    }

    pub(crate) fn key_value(&self, revision: Revision) -> KeyValue {
        self.record(revision).to_key_value(revision.main)
    }

    /// The revision a read asking for `requested` reads at, in etcd's order of checks: above
    /// `current` is a future revision; `<= 0` means `current`; below the compaction is gone.
    fn read_revision(&self, requested: i64, current: i64) -> Result<i64, MvccError> {
        if requested > current {
            return Err(MvccError::FutureRevision { requested, current });
        }
        let at = if requested <= 0 { current } else { requested };
        if let Some(compacted) = self.compacted {
            if at < compacted {
                return Err(MvccError::Compacted {
                    compacted_revision: compacted,
                });
            }
        }
        Ok(at)
    }

    /// etcd's rangeKeys. `current` is the revision of the reader (the store's, or a write
    /// transaction's own once it has changes).
    pub(crate) fn range(
        &self,
        range: &KeyRange,
        opts: &RangeOptions,
        current: i64,
    ) -> Result<RangeResult, MvccError> {
        let at = self.read_revision(opts.revision, current)?;
        let limit = if opts.limit == 0 {
            usize::MAX
        } else {
            opts.limit
        };
        let mut kvs = Vec::new();
        let mut count = 0usize;
        self.index.for_each_at(range, at, |found| {
            count += 1;
            if !opts.count_only && kvs.len() < limit {
                let record = found
                    .record
                    .map_or_else(|| self.record(found.revision), |r| &**r);
                debug_assert!(!record.is_tombstone(), "a read at {at} found a tombstone");
                kvs.push(record.to_key_value(found.revision.main));
            }
        });
        Ok(RangeResult {
            kvs,
            count,
            revision: current,
        })
    }

    /// Changes with `start_revision <= main < end_revision` to keys in `range`, in revision
    /// order, at most `max_events` (0 = no limit); `end_revision` is capped at `revision + 1`.
    pub(crate) fn events(
        &self,
        range: &KeyRange,
        start_revision: i64,
        end_revision: i64,
        max_events: usize,
        with_prev_kv: bool,
    ) -> Result<Vec<Event>, MvccError> {
        if let Some(compacted) = self.compacted {
            if start_revision < compacted {
                return Err(MvccError::Compacted {
                    compacted_revision: compacted,
                });
            }
        }
        let end_revision = end_revision.min(self.revision.saturating_add(1));
        let mut events = Vec::new();
        if start_revision >= end_revision {
            return Ok(events);
        }
        let max_events = if max_events == 0 {
            usize::MAX
        } else {
            max_events
        };
        let window = Revision::new(start_revision, 0)..Revision::new(end_revision, 0);
        for (revision, record) in self.records.range(window) {
            if events.len() == max_events {
                break;
            }
            if !range.contains(&record.key) {
                continue;
            }
            let prev_kv = if with_prev_kv {
                self.prev_key_value(record, *revision)
            } else {
                None
            };
            let kv = record.to_key_value(revision.main);
            events.push(Event {
                kind: record.kind,
                kv,
                prev_kv,
            });
        }
        Ok(events)
    }

    /// The version the change at `revision` replaced, if it is still stored.
    fn prev_key_value(&self, record: &Record, revision: Revision) -> Option<KeyValue> {
        let index = self
            .index
            .get(&record.key)
            .expect("a stored record's key is indexed");
        index
            .previous(revision)
            .map(|previous| self.key_value(previous))
    }

    /// Verifies that the trees are well formed, every key index keeps its invariants, the index
    /// and the records name each other exactly, versions agree, and compaction left nothing it
    /// should have removed. O(n).
    pub(crate) fn check(&self) -> Result<(), StoreCheckError> {
        self.records.check().map_err(StoreCheckError::RecordTree)?;
        self.index
            .tree
            .check()
            .map_err(StoreCheckError::IndexTree)?;
        let mut indexed = 0usize;
        for (key, index) in &self.index.tree {
            let key = Bytes::copy_from_slice(key.as_slice());
            let record_of = |revision| self.records.get(&revision);
            index
                .check(record_of)
                .map_err(|reason| StoreCheckError::KeyIndex {
                    key: key.clone(),
                    reason,
                })?;
            // Crate invariant 4 counts revisions at or below the compacted revision.
            let mut at_or_below_compaction = 0usize;
            for (revision, tombstone) in index.revisions() {
                indexed += 1;
                let fail = |reason| StoreCheckError::Record {
                    key: key.clone(),
                    revision,
                    reason,
                };
                let record = self
                    .records
                    .get(&revision)
                    .ok_or_else(|| fail("no record"))?;
                if record.key != key {
                    return Err(fail("record of another key"));
                }
                if record.is_tombstone() != tombstone {
                    return Err(fail(
                        "record kind differs from its place in the generations",
                    ));
                }
                let want = index.version_of(revision);
                if !tombstone && want != Some((record.create_revision, record.version)) {
                    return Err(fail("create revision or version differs from the index"));
                }
                // Crate invariant 3.
                if revision.main > self.revision {
                    let reason = "revision above the store's revision";
                    return Err(StoreCheckError::Revision { revision, reason });
                }
                if self.compacted.is_some_and(|c| revision.main <= c) {
                    at_or_below_compaction += 1;
                    if tombstone || at_or_below_compaction > 1 {
                        let reason = "compaction left a revision it removes";
                        return Err(StoreCheckError::Revision { revision, reason });
                    }
                }
            }
        }
        // Crate invariant 1: no record the index does not name.
        if indexed != self.records.len() {
            return Err(StoreCheckError::Orphans {
                records: self.records.len(),
                indexed,
            });
        }
        Ok(())
    }
}

impl Default for StoreState {
    fn default() -> Self {
        Self::new()
    }
}
