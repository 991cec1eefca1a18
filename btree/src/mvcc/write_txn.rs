//! `WriteTxn`: the single writer's transaction (etcd's storeTxnWrite). Every MVCC change it
//! makes shares one main revision (the store's + 1) with sub revisions 0, 1, 2, ...; its reads
//! see its own changes; bucket changes ride along; `commit` publishes everything as one
//! version, and dropping it undoes everything.
//!
//! The transaction changes the store's trees in place, copying only the nodes a read view or a
//! checkpoint shares, and keeps an undo log: for each tree change, the value the key had
//! before. Undo replays it backwards (each step idempotent, so a change that failed half-way
//! on a corrupt page is repaired too). An undo that itself fails leaves the writer's trees
//! unknown: the store then refuses writes and checkpoints until reopened.

use bytes::Bytes;

use super::event::{Event, EventKind};
use super::key_index::KeyIndex;
use super::key_range::KeyRange;
use super::key_value::KeyValue;
use super::range::{RangeOptions, RangeResult};
use super::record;
use super::revision::Revision;
use super::state::UndoOp;
use super::store::MvccStore;
use crate::bucket::{self, Bucket};
use crate::error::{BtreeError, Corruption, MvccError, Result};
use crate::meta::TreeId;
use crate::page::PageId;
use crate::pager::{aligned_copy, PageSource};
use crate::tree::Freed;

/// A write transaction on an [`crate::MvccStore`]; see the module docs.
///
/// After any operation returns an error the transaction is failed: further operations return
/// [`BtreeError::TxnFailed`], [`WriteTxn::try_commit`] undoes it and returns that error.
pub struct WriteTxn<'a> {
    store: &'a mut MvccStore,
    /// How to undo the tree changes made so far, oldest first.
    undo: Vec<UndoOp>,
    /// Whether the transaction committed (no undo on drop).
    committed: bool,
    /// Pages the changes (and any undo) released; given to the store at the end.
    freed: Freed,
    /// The store's revision when the transaction began; its changes are at `begin_revision + 1`.
    begin_revision: i64,
    /// One per MVCC change, in order; `events.len()` is the next sub revision.
    events: Vec<Event>,
    buckets_changed: bool,
    /// The first error an operation met.
    failed: Option<String>,
}

/// The outcome of [`WriteTxn::commit`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Committed {
    /// The store's revision after the commit: the transaction's revision if it changed
    /// anything, else the unchanged current revision.
    pub revision: i64,
    /// The transaction's changes in order, each with the key's version before it.
    pub events: Vec<Event>,
}

/// Panics with a storage error met by one of the compatibility methods, which have no way to
/// return it.
fn storage_failure(error: BtreeError) -> ! {
    panic!(
        "keel-btree: storage error where the API cannot return it (use the try_ method): {error}"
    )
}

impl<'a> WriteTxn<'a> {
    pub(crate) fn new(store: &'a mut MvccStore) -> Self {
        let begin_revision = store.state.revision;
        WriteTxn {
            store,
            undo: Vec::new(),
            committed: false,
            freed: Vec::new(),
            begin_revision,
            events: Vec::new(),
            buckets_changed: false,
            failed: None,
        }
    }

    /// The revision this transaction's reads see: the store's, or its own (`+ 1`) once it has
    /// changed something (etcd's `storeTxnWrite.Range`).
    pub fn revision(&self) -> i64 {
        self.begin_revision + i64::from(!self.events.is_empty())
    }

    fn alive(&self) -> Result<()> {
        if let Some(error) = self.store.writes_poisoned_error() {
            return Err(error);
        }
        match &self.failed {
            Some(reason) => Err(BtreeError::TxnFailed {
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Runs a change; an error fails the transaction.
    fn change<R>(&mut self, change: impl FnOnce(&mut Self) -> Result<R>) -> Result<R> {
        self.alive()?;
        let outcome = change(self);
        if let Err(error) = &outcome {
            self.failed = Some(error.to_string());
        }
        outcome
    }

    /// Reads as [`crate::ReadView::try_range`] does, seeing this transaction's changes.
    pub fn try_range(&self, range: &KeyRange, opts: &RangeOptions) -> Result<RangeResult> {
        self.alive()?;
        let src = self.store.db.src();
        self.store.state.range(src, range, opts, self.revision())
    }

    /// [`WriteTxn::try_range`] for callers that handle only MVCC errors. Panics on a storage
    /// error (a corrupt page).
    pub fn range(&self, range: &KeyRange, opts: &RangeOptions) -> Result<RangeResult, MvccError> {
        self.try_range(range, opts).map_err(|error| match error {
            BtreeError::Mvcc(error) => error,
            other => storage_failure(other),
        })
    }

    /// The revision the next change gets.
    fn next_revision(&self) -> Revision {
        let sub = i64::try_from(self.events.len()).expect("fewer than 2^63 changes");
        Revision::new(self.begin_revision + 1, sub)
    }

    /// Writes `value` under `key` with `lease` (0 = none). Returns the key's version before the
    /// put, if it existed. A put on a deleted or new key starts a generation: version 1,
    /// `create_revision` = this transaction's revision.
    pub fn try_put(&mut self, key: Bytes, value: Bytes, lease: i64) -> Result<Option<KeyValue>> {
        self.change(|txn| txn.put_inner(key, value, lease))
    }

    /// [`WriteTxn::try_put`]; panics on a storage error (a corrupt page).
    pub fn put(&mut self, key: Bytes, value: Bytes, lease: i64) -> Option<KeyValue> {
        self.try_put(key, value, lease)
            .unwrap_or_else(|error| storage_failure(error))
    }

    fn put_inner(&mut self, key: Bytes, value: Bytes, lease: i64) -> Result<Option<KeyValue>> {
        let revision = self.next_revision();
        let src = self.store.db.src().clone();
        let state = &self.store.state;
        // The stored bytes serve the undo log as they are (no re-encoding).
        let (index, old_index) = match state.tree(TreeId::Index).get(&src, &key)? {
            Some(value) => {
                let index = KeyIndex::decode(value.bytes)
                    .map_err(|reason| src.corrupt(value.page, reason))?;
                (Some(index), Some(aligned_copy(value.bytes)))
            }
            None => (None, None),
        };
        let previous = match index.as_ref().and_then(KeyIndex::live) {
            Some((live, ..)) => Some(state.key_value(&src, live, &key)?),
            None => None,
        };
        let (index, create_revision, version) = match index {
            Some(mut index) => {
                newer_than_stored(&src, &index, revision)?;
                let (create_revision, version) = index.put(revision);
                (index, create_revision, version)
            }
            None => (KeyIndex::with_put(revision), revision.main, 1),
        };
        let stored = record::put_encode(&key, &value, create_revision, version, lease);
        self.log(TreeId::Records, revision_key(revision), None);
        self.log(TreeId::Index, key.clone(), old_index);
        let mut writer = self.store.writer(&mut self.freed);
        let replaced = writer.insert(TreeId::Records, revision_key(revision), stored)?;
        record_was_new(&src, replaced, revision)?;
        writer.insert(TreeId::Index, key.clone(), index.encode())?;
        let kv = KeyValue {
            key,
            create_revision,
            mod_revision: revision.main,
            version,
            value,
            lease,
        };
        self.events.push(Event {
            kind: EventKind::Put,
            kv,
            prev_kv: previous.clone(),
        });
        Ok(previous)
    }

    /// Deletes every key in `range` that exists now (including keys this transaction put).
    /// Returns their versions before the delete, in key order; deleting nothing changes nothing.
    pub fn try_delete_range(&mut self, range: &KeyRange) -> Result<Vec<KeyValue>> {
        self.change(|txn| txn.delete_range_inner(range))
    }

    /// [`WriteTxn::try_delete_range`]; panics on a storage error (a corrupt page).
    pub fn delete_range(&mut self, range: &KeyRange) -> Vec<KeyValue> {
        self.try_delete_range(range)
            .unwrap_or_else(|error| storage_failure(error))
    }

    fn delete_range_inner(&mut self, range: &KeyRange) -> Result<Vec<KeyValue>> {
        let src = self.store.db.src().clone();
        let state = &self.store.state;
        // Each live key's index, its stored bytes (for the undo log, as they are: no
        // re-encoding) and its version before the delete.
        let mut live: Vec<(Bytes, KeyIndex, Bytes, KeyValue)> = Vec::new();
        state.for_each_stored_index(&src, range, |key, value| {
            let index =
                KeyIndex::decode(value.bytes).map_err(|reason| src.corrupt(value.page, reason))?;
            if let Some((revision, ..)) = index.live() {
                let previous = state.key_value(&src, revision, key)?;
                let stored = aligned_copy(value.bytes);
                live.push((Bytes::copy_from_slice(key), index, stored, previous));
            }
            Ok(true)
        })?;
        let mut deleted = Vec::with_capacity(live.len());
        for (key, mut index, stored_index, previous) in live {
            let revision = self.next_revision();
            newer_than_stored(&src, &index, revision)?;
            self.log(TreeId::Records, revision_key(revision), None);
            self.log(TreeId::Index, key.clone(), Some(stored_index));
            index.tombstone(revision);
            let mut writer = self.store.writer(&mut self.freed);
            let stored = record::tombstone_encode(&key);
            let replaced = writer.insert(TreeId::Records, revision_key(revision), stored)?;
            record_was_new(&src, replaced, revision)?;
            writer.insert(TreeId::Index, key.clone(), index.encode())?;
            let kv = KeyValue {
                key,
                mod_revision: revision.main,
                ..KeyValue::default()
            };
            self.events.push(Event {
                kind: EventKind::Delete,
                kv,
                prev_kv: Some(previous.clone()),
            });
            deleted.push(previous);
        }
        Ok(deleted)
    }

    /// Notes how to undo a change of `key` in `tree`, whose value is `old` before it.
    fn log(&mut self, tree: TreeId, key: Bytes, old: Option<Bytes>) {
        self.undo.push(UndoOp { tree, key, old });
    }

    /// Stores `value` under `key` in `bucket`.
    pub fn bucket_put(&mut self, bucket: Bucket, key: Bytes, value: Bytes) -> Result<()> {
        self.change(|txn| {
            let old = txn
                .store
                .writer(&mut txn.freed)
                .get_owned(bucket.tree(), &key)?;
            txn.log(bucket.tree(), key.clone(), old);
            txn.store
                .writer(&mut txn.freed)
                .insert(bucket.tree(), key, value)?;
            txn.buckets_changed = true;
            Ok(())
        })
    }

    /// Removes `key` from `bucket`; returns whether it was there.
    pub fn bucket_delete(&mut self, bucket: Bucket, key: &[u8]) -> Result<bool> {
        self.change(|txn| {
            let old = txn
                .store
                .writer(&mut txn.freed)
                .get_owned(bucket.tree(), key)?;
            let Some(old) = old else {
                return Ok(false);
            };
            let key = Bytes::copy_from_slice(key);
            txn.log(bucket.tree(), key.clone(), Some(old));
            let removed = txn
                .store
                .writer(&mut txn.freed)
                .remove(bucket.tree(), &key)?;
            txn.buckets_changed |= removed;
            Ok(removed)
        })
    }

    /// The value under `key` in `bucket`, seeing this transaction's changes.
    pub fn bucket_get(&self, bucket: Bucket, key: &[u8]) -> Result<Option<Bytes>> {
        self.alive()?;
        let tree = self.store.state.tree(bucket.tree());
        bucket::get(tree, self.store.db.src(), key)
    }

    /// Entries of `bucket` in `range`, ascending, at most `limit` (0 = no limit), seeing this
    /// transaction's changes.
    pub fn bucket_range(
        &self,
        bucket: Bucket,
        range: &KeyRange,
        limit: usize,
    ) -> Result<Vec<(Bytes, Bytes)>> {
        self.alive()?;
        let tree = self.store.state.tree(bucket.tree());
        bucket::range(tree, self.store.db.src(), range, limit)
    }

    /// Publishes the changes as one version (one revision if any MVCC change was made; a
    /// transaction that changed only buckets keeps the revision). After an operation failed,
    /// undoes everything and returns [`BtreeError::TxnFailed`].
    pub fn try_commit(mut self) -> Result<Committed> {
        self.alive()?;
        self.committed = true;
        self.undo.clear();
        let events = std::mem::take(&mut self.events);
        if !events.is_empty() {
            // Readers see the new revision only from here on: read views are taken from the
            // store, which cannot be borrowed while this transaction lives.
            self.store.state.revision = self.begin_revision + 1;
        }
        if !events.is_empty() || self.buckets_changed || !self.freed.is_empty() {
            let freed = std::mem::take(&mut self.freed);
            self.store.publish(freed);
        }
        Ok(Committed {
            revision: self.store.state.revision,
            events,
        })
    }

    /// [`WriteTxn::try_commit`]; panics if an operation failed (only the compatibility methods
    /// panic before, so this is a caller that ignored an error).
    pub fn commit(self) -> Committed {
        self.try_commit()
            .unwrap_or_else(|error| storage_failure(error))
    }
}

/// A stored key index never holds a revision at or above the one being written (crate
/// invariant 3); a file that says otherwise is corrupt, and the change must not go on.
fn newer_than_stored(src: &PageSource, index: &KeyIndex, revision: Revision) -> Result<()> {
    if index.newest() >= revision {
        let reason = Corruption::Value(format!(
            "a key index holds {}, at or above the revision being written, {revision}",
            index.newest()
        ));
        return Err(src.corrupt(PageId(0), reason));
    }
    Ok(())
}

/// Crate invariant 1: one record per revision. A record already there came from a corrupt
/// file (its revision above the store's).
fn record_was_new(src: &PageSource, replaced: bool, revision: Revision) -> Result<()> {
    if replaced {
        let reason = Corruption::Value(format!("a record of {revision} existed before its write"));
        return Err(src.corrupt(PageId(0), reason));
    }
    Ok(())
}

/// The record tree key of `revision`.
fn revision_key(revision: Revision) -> Bytes {
    Bytes::copy_from_slice(&revision.to_bytes())
}

impl Drop for WriteTxn<'_> {
    /// Undoes a transaction that was not committed (or failed): the undo log is replayed
    /// newest first. The pages the changes and the undo released go to the store either way
    /// (the trees now hold memory copies where the pages were); readers of the current version
    /// may still reach them, which the release records.
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        let undo = std::mem::take(&mut self.undo);
        let mut freed = std::mem::take(&mut self.freed);
        let undone = self.store.writer(&mut freed).undo(undo);
        if let Err(error) = undone {
            self.store
                .poison_writes(format!("undo of a write transaction failed: {error}"));
        }
        assert_eq!(
            self.store.state.revision, self.begin_revision,
            "an uncommitted txn never moves the revision"
        );
        self.store.release_unpublished(freed);
    }
}

impl std::fmt::Debug for WriteTxn<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteTxn")
            .field("begin_revision", &self.begin_revision)
            .field("changes", &self.events.len())
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}
