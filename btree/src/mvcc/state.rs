//! `StoreState`: one version of the whole store (the trees, revision, compaction point) and the
//! reads every holder of a version shares: ranges at a revision, watch history, `hash_kv`, and
//! the consistency check. Cloning it is O(1) (nine root pointers). `TreeWriter` is the one way
//! the writer changes trees: it notes released pages and, while a defragmentation runs, the
//! keys it touched.

use std::collections::BTreeSet;
use std::ops::Bound;

use bytes::Bytes;

use super::event::Event;
use super::key_index::KeyIndex;
use super::key_range::KeyRange;
use super::key_value::KeyValue;
use super::range::{RangeOptions, RangeResult};
use super::record::{self, RecordRef};
use super::revision::Revision;
use crate::error::{BtreeError, Corruption, MvccError, Result, StoreCheckError};
use crate::meta::{TreeId, TREE_COUNT};
use crate::node::Layout;
use crate::page::PageId;
use crate::pager::PageSource;
use crate::tree::{check_tree, Freed, Tree, Value, WriteCx};

/// Keys changed while a defragmentation copies: (tree, key).
pub(crate) type Touched = BTreeSet<(TreeId, Bytes)>;

#[derive(Clone)]
pub(crate) struct StoreState {
    pub(crate) trees: [Tree; TREE_COUNT],
    /// Main revision of the last committed write transaction; 1 in a new store.
    pub(crate) revision: i64,
    /// Revision of the last compaction; `None` until the first one (etcd's -1).
    pub(crate) compacted: Option<i64>,
}

impl StoreState {
    pub(crate) fn new() -> Self {
        StoreState {
            trees: Default::default(),
            revision: 1,
            compacted: None,
        }
    }

    pub(crate) fn tree(&self, tree: TreeId) -> &Tree {
        &self.trees[tree.index()]
    }

    /// 0 until the first compaction.
    pub(crate) fn compacted_revision(&self) -> i64 {
        self.compacted.unwrap_or(0)
    }

    /// The key index of `key`.
    pub(crate) fn key_index(&self, src: &PageSource, key: &[u8]) -> Result<Option<KeyIndex>> {
        match self.tree(TreeId::Index).get(src, key)? {
            Some(value) => decode_key_index(src, value).map(Some),
            None => Ok(None),
        }
    }

    /// Runs `read` on the record at `revision`, which the index names for `key`.
    pub(crate) fn with_record<R>(
        &self,
        src: &PageSource,
        revision: Revision,
        key: &[u8],
        read: impl FnOnce(RecordRef<'_>) -> R,
    ) -> Result<R> {
        let encoded = revision.to_bytes();
        let Some(value) = self.tree(TreeId::Records).get(src, &encoded)? else {
            let reason =
                Corruption::Value(format!("the index names {revision}, which has no record"));
            return Err(src.corrupt(PageId(0), reason));
        };
        let page = value.page;
        let outcome = record::with_record(value.bytes, |record| {
            (record.key() == key).then(|| read(record))
        })
        .map_err(|reason| src.corrupt(page, reason))?;
        outcome.ok_or_else(|| {
            let reason = Corruption::Value(format!("record {revision} is of another key"));
            src.corrupt(page, reason)
        })
    }

    pub(crate) fn key_value(
        &self,
        src: &PageSource,
        revision: Revision,
        key: &[u8],
    ) -> Result<KeyValue> {
        self.with_record(src, revision, key, |record| {
            record.to_key_value(revision.main)
        })
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

    /// Calls `visit(key, index)` in ascending key order for each key in `range`.
    pub(crate) fn for_each_index(
        &self,
        src: &PageSource,
        range: &KeyRange,
        mut visit: impl FnMut(&[u8], KeyIndex) -> Result<bool>,
    ) -> Result<()> {
        self.for_each_stored_index(src, range, |key, value| {
            visit(key, decode_key_index(src, value)?)
        })
    }

    /// Calls `visit(key, stored key index)` in ascending key order for each key in `range`.
    pub(crate) fn for_each_stored_index<'a>(
        &'a self,
        src: &'a PageSource,
        range: &KeyRange,
        mut visit: impl FnMut(&[u8], Value<'a>) -> Result<bool>,
    ) -> Result<()> {
        if let KeyRange::Key(key) = range {
            if let Some(value) = self.tree(TreeId::Index).get(src, key)? {
                visit(key, value)?;
            }
            return Ok(());
        }
        let Some((start, end)) = range.bounds() else {
            return Ok(());
        };
        let end = match end {
            Bound::Included(end) => Bound::Included(Bytes::copy_from_slice(end)),
            Bound::Excluded(end) => Bound::Excluded(Bytes::copy_from_slice(end)),
            Bound::Unbounded => Bound::Unbounded,
        };
        for entry in self.tree(TreeId::Index).range(src, start, end) {
            let (key, value) = entry?;
            if !visit(key, value)? {
                break;
            }
        }
        Ok(())
    }

    /// etcd's rangeKeys. `current` is the revision of the reader (the store's, or a write
    /// transaction's own once it has changes).
    pub(crate) fn range(
        &self,
        src: &PageSource,
        range: &KeyRange,
        opts: &RangeOptions,
        current: i64,
    ) -> Result<RangeResult> {
        let at = self.read_revision(opts.revision, current)?;
        let limit = if opts.limit == 0 {
            usize::MAX
        } else {
            opts.limit
        };
        let mut kvs = Vec::new();
        let mut count = 0usize;
        self.for_each_stored_index(src, range, |key, value| {
            let found = KeyIndex::stored_get(value.bytes, at)
                .map_err(|reason| src.corrupt(value.page, reason))?;
            if let Some(revision) = found {
                count += 1;
                if !opts.count_only && kvs.len() < limit {
                    kvs.push(self.key_value(src, revision, key)?);
                }
            }
            Ok(true)
        })?;
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
        src: &PageSource,
        range: &KeyRange,
        start_revision: i64,
        end_revision: i64,
        max_events: usize,
        with_prev_kv: bool,
    ) -> Result<Vec<Event>> {
        if let Some(compacted) = self.compacted {
            if start_revision < compacted {
                let compacted_revision = compacted;
                return Err(MvccError::Compacted { compacted_revision }.into());
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
        let start = Revision::new(start_revision.max(0), 0).to_bytes();
        let end = Bytes::copy_from_slice(&Revision::new(end_revision, 0).to_bytes());
        let records = self.tree(TreeId::Records);
        for entry in records.range(src, Bound::Included(&start), Bound::Excluded(end)) {
            if events.len() == max_events {
                break;
            }
            let (encoded, value) = entry?;
            let revision = decode_revision(src, encoded, value.page)?;
            let page = value.page;
            let found = record::with_record(value.bytes, |record| {
                range
                    .contains(record.key())
                    .then(|| (record.kind(), record.to_key_value(revision.main)))
            })
            .map_err(|reason| src.corrupt(page, reason))?;
            let Some((kind, kv)) = found else {
                continue;
            };
            if !self.survives_compaction(src, &kv.key, revision, None)? {
                continue;
            }
            let prev_kv = if with_prev_kv {
                self.prev_key_value(src, &kv.key, revision)?
            } else {
                None
            };
            events.push(Event { kind, kv, prev_kv });
        }
        Ok(events)
    }

    /// The version the change at `revision` replaced, if it is still stored.
    fn prev_key_value(
        &self,
        src: &PageSource,
        key: &[u8],
        revision: Revision,
    ) -> Result<Option<KeyValue>> {
        let Some(index) = self.key_index(src, key)? else {
            let reason = Corruption::Value(format!("record {revision} of a key the index lacks"));
            return Err(src.corrupt(PageId(0), reason));
        };
        match index.previous(revision) {
            Some(previous) if self.survives_compaction(src, key, previous, Some(&index))? => {
                self.key_value(src, previous, key).map(Some)
            }
            Some(_) | None => Ok(None),
        }
    }

    /// Whether `revision` of `key` survives the compaction (done or still running): a revision
    /// above the compacted one does; at or below, only the version the key had there (what
    /// compaction keeps). So history reads answer the same however far a compaction got.
    fn survives_compaction(
        &self,
        src: &PageSource,
        key: &[u8],
        revision: Revision,
        index: Option<&KeyIndex>,
    ) -> Result<bool> {
        let Some(compacted) = self.compacted.filter(|&c| revision.main <= c) else {
            return Ok(true);
        };
        let kept = match index {
            Some(index) => index.get(compacted),
            None => self
                .key_index(src, key)?
                .and_then(|index| index.get(compacted)),
        };
        Ok(kept == Some(revision))
    }

    /// etcd's HashByRev: CRC-32 over every record at or below `revision` that a read at a
    /// revision from the compacted one up can observe: records above the compacted revision,
    /// and, at or below it, the version each key had there (what compaction keeps). So the
    /// answer does not depend on how far a running compaction got.
    pub(crate) fn hash_kv(&self, src: &PageSource, revision: i64) -> Result<(u32, i64)> {
        let compacted = self.compacted_revision();
        if revision > 0 && self.compacted.is_some() && revision <= compacted {
            return Err(MvccError::Compacted {
                compacted_revision: compacted,
            }
            .into());
        }
        if revision > self.revision {
            let current = self.revision;
            return Err(MvccError::FutureRevision {
                requested: revision,
                current,
            }
            .into());
        }
        let at = if revision <= 0 {
            self.revision
        } else {
            revision
        };
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(b"key");
        let end = Bytes::copy_from_slice(&Revision::new(at + 1, 0).to_bytes());
        let records = self.tree(TreeId::Records);
        for entry in records.range(src, Bound::Unbounded, Bound::Excluded(end)) {
            let (encoded, value) = entry?;
            let revision = decode_revision(src, encoded, value.page)?;
            let page = value.page;
            let key =
                record::with_record(value.bytes, |record| Bytes::copy_from_slice(record.key()))
                    .map_err(|reason| src.corrupt(page, reason))?;
            if !self.survives_compaction(src, &key, revision, None)? {
                continue;
            }
            hasher.update(encoded);
            record::with_record(value.bytes, |record| record.hash_into(&mut hasher))
                .map_err(|reason| src.corrupt(page, reason))?;
        }
        Ok((hasher.finalize(), compacted))
    }

    /// Verifies the trees, every key index, that the index and the records name each other
    /// exactly, versions, and (once no compaction runs) that compaction left nothing it
    /// removes. O(n). `visit` gets every page run the trees reference.
    pub(crate) fn check(
        &self,
        src: &PageSource,
        layout: Layout,
        compaction_running: bool,
        visit: &mut dyn FnMut(PageId, u64),
    ) -> Result<()> {
        for tree in TreeId::ALL {
            if let Err(error) = check_tree(self.tree(tree), src, layout, visit)? {
                let tree = tree.name();
                return Err(StoreCheckError::Tree { tree, error }.into());
            }
        }
        let mut indexed = 0u64;
        self.for_each_index(src, &KeyRange::FromKey(Bytes::new()), |key, index| {
            indexed += index.revisions().len() as u64;
            self.check_key(src, key, &index, compaction_running)?;
            Ok(true)
        })?;
        // Crate invariant 1: no record the index does not name (a running compaction's second
        // pass removes the records its first pass stopped naming).
        let records = self.tree(TreeId::Records).len;
        if indexed != records && !compaction_running {
            return Err(StoreCheckError::Orphans { records, indexed }.into());
        }
        Ok(())
    }

    fn check_key(
        &self,
        src: &PageSource,
        key: &[u8],
        index: &KeyIndex,
        compaction_running: bool,
    ) -> Result<()> {
        let key_bytes = Bytes::copy_from_slice(key);
        index.check().map_err(|reason| StoreCheckError::KeyIndex {
            key: key_bytes.clone(),
            reason,
        })?;
        // Crate invariant 4 counts revisions at or below the compacted revision.
        let mut at_or_below_compaction = 0usize;
        for (revision, tombstone) in index.revisions() {
            let fail = |reason| -> BtreeError {
                StoreCheckError::Record {
                    key: key_bytes.clone(),
                    revision,
                    reason,
                }
                .into()
            };
            let (is_tombstone, create, version) = self
                .with_record(src, revision, key, |record| {
                    (
                        record.is_tombstone(),
                        record.create_revision(),
                        record.version(),
                    )
                })
                .map_err(|_| fail("no record of this key"))?;
            if is_tombstone != tombstone {
                return Err(fail(
                    "record kind differs from its place in the generations",
                ));
            }
            if !tombstone && index.version_of(revision) != Some((create, version)) {
                return Err(fail("create revision or version differs from the index"));
            }
            // Crate invariant 3.
            if revision.main > self.revision {
                let reason = "revision above the store's revision";
                return Err(StoreCheckError::Revision { revision, reason }.into());
            }
            if !compaction_running && self.compacted.is_some_and(|c| revision.main <= c) {
                at_or_below_compaction += 1;
                if tombstone || at_or_below_compaction > 1 {
                    let reason = "compaction left a revision it removes";
                    return Err(StoreCheckError::Revision { revision, reason }.into());
                }
            }
        }
        Ok(())
    }
}

impl Default for StoreState {
    fn default() -> Self {
        Self::new()
    }
}

fn decode_key_index(src: &PageSource, value: Value<'_>) -> Result<KeyIndex> {
    KeyIndex::decode(value.bytes).map_err(|reason| src.corrupt(value.page, reason))
}

fn decode_revision(src: &PageSource, encoded: &[u8], page: PageId) -> Result<Revision> {
    Revision::from_bytes(encoded)
        .map_err(|error| src.corrupt(page, Corruption::Value(format!("record key: {error}"))))
}

/// How to undo one tree change: put back `old` under `key` (or remove `key` if it was
/// absent). Idempotent, so it also repairs a change that failed half-way.
pub(crate) struct UndoOp {
    pub(crate) tree: TreeId,
    pub(crate) key: Bytes,
    pub(crate) old: Option<Bytes>,
}

/// The writer's way to change the trees of a state.
pub(crate) struct TreeWriter<'a> {
    pub(crate) state: &'a mut StoreState,
    pub(crate) src: &'a PageSource,
    pub(crate) layout: Layout,
    pub(crate) freed: &'a mut Freed,
    pub(crate) touched: Option<&'a mut Touched>,
}

impl TreeWriter<'_> {
    /// The current value of `key` in `tree`, copied (for an undo log).
    pub(crate) fn get_owned(&self, tree: TreeId, key: &[u8]) -> Result<Option<Bytes>> {
        Ok(self
            .state
            .tree(tree)
            .get(self.src, key)?
            .map(|value| Bytes::copy_from_slice(value.bytes)))
    }

    /// Applies `undo` (newest first).
    pub(crate) fn undo(&mut self, undo: Vec<UndoOp>) -> Result<()> {
        for op in undo.into_iter().rev() {
            match op.old {
                Some(old) => {
                    self.insert(op.tree, op.key, old)?;
                }
                None => {
                    self.remove(op.tree, &op.key)?;
                }
            }
        }
        Ok(())
    }
}

impl TreeWriter<'_> {
    /// Stores `value` under `key` in `tree`; returns whether it replaced one.
    pub(crate) fn insert(&mut self, tree: TreeId, key: Bytes, value: Bytes) -> Result<bool> {
        if let Some(touched) = self.touched.as_deref_mut() {
            touched.insert((tree, key.clone()));
        }
        let mut cx = WriteCx {
            src: self.src,
            layout: self.layout,
            freed: self.freed,
        };
        self.state.trees[tree.index()].insert(&mut cx, key, value)
    }

    /// Removes `key` from `tree`; returns whether it was there.
    pub(crate) fn remove(&mut self, tree: TreeId, key: &[u8]) -> Result<bool> {
        if let Some(touched) = self.touched.as_deref_mut() {
            touched.insert((tree, Bytes::copy_from_slice(key)));
        }
        let mut cx = WriteCx {
            src: self.src,
            layout: self.layout,
            freed: self.freed,
        };
        self.state.trees[tree.index()].remove(&mut cx, key)
    }
}
