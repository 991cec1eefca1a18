//! `WriteTxn`: the single writer's transaction (etcd's storeTxnWrite). Every change it makes
//! shares one main revision (the store's + 1) with sub revisions 0, 1, 2, ...; its reads see its
//! own changes; `commit` publishes them as one revision, and dropping it undoes them.
//!
//! The transaction changes the store's trees in place (copying only nodes a read view still
//! shares) and keeps an undo log, rather than working on a private clone: a clone would make
//! every node shared and force a path copy per transaction even when no reader holds a view.

use std::mem;
use std::sync::Arc;

use bytes::Bytes;

use super::event::{Event, EventKind};
use super::index_key::IndexKey;
use super::key_index::KeyIndex;
use super::key_range::KeyRange;
use super::key_value::KeyValue;
use super::range::{RangeOptions, RangeResult};
use super::record::Record;
use super::revision::Revision;
use super::state::StoreState;
use crate::error::MvccError;

/// A write transaction on an [`crate::MvccStore`]; see the module docs.
pub struct WriteTxn<'a> {
    state: &'a mut StoreState,
    /// The store's revision when the transaction began; its changes are at `begin_revision + 1`.
    begin_revision: i64,
    /// One per change, in order; `events.len()` is the next sub revision.
    events: Vec<Event>,
    /// How to restore the store as it was at the beginning, newest last.
    undo: Vec<Undo>,
    committed: bool,
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

enum Undo {
    /// Remove the record added at this revision.
    Record(Revision),
    /// Put back this key's index entry (`None`: the key had none).
    Index {
        key: Bytes,
        previous: Option<KeyIndex>,
    },
}

impl<'a> WriteTxn<'a> {
    pub(crate) fn new(state: &'a mut StoreState) -> Self {
        let begin_revision = state.revision;
        WriteTxn {
            state,
            begin_revision,
            events: Vec::new(),
            undo: Vec::new(),
            committed: false,
        }
    }

    /// The revision this transaction's reads see: the store's, or its own (`+ 1`) once it has
    /// changed something (etcd's `storeTxnWrite.Range`).
    pub fn revision(&self) -> i64 {
        self.begin_revision + i64::from(!self.events.is_empty())
    }

    /// Reads as [`crate::ReadView::range`] does, seeing this transaction's changes.
    pub fn range(&self, range: &KeyRange, opts: &RangeOptions) -> Result<RangeResult, MvccError> {
        self.state.range(range, opts, self.revision())
    }

    /// The revision the next change gets.
    fn next_revision(&self) -> Revision {
        let sub = i64::try_from(self.events.len()).expect("fewer than 2^63 changes");
        Revision::new(self.begin_revision + 1, sub)
    }

    /// Writes `value` under `key` with `lease` (0 = none). Returns the key's version before the
    /// put, if it existed. A put on a deleted or new key starts a generation: version 1,
    /// `create_revision` = this transaction's revision.
    pub fn put(&mut self, key: Bytes, value: Bytes, lease: i64) -> Option<KeyValue> {
        let revision = self.next_revision();
        let state = &mut *self.state;
        let (record, previous) = match state.index.tree.get_mut(&key[..]) {
            Some(index) => {
                self.undo.push(Undo::Index {
                    key: key.clone(),
                    previous: Some(index.clone()),
                });
                let previous = index
                    .live()
                    .map(|(live, record)| record.to_key_value(live.main));
                let (create_revision, version) = match &previous {
                    Some(previous) => (previous.create_revision, previous.version + 1),
                    None => (revision.main, 1),
                };
                let record = Arc::new(Record::put(key, value, create_revision, version, lease));
                index.put(revision, Arc::clone(&record));
                (record, previous)
            }
            None => {
                self.undo.push(Undo::Index {
                    key: key.clone(),
                    previous: None,
                });
                let index_key = IndexKey::new(&key);
                let record = Arc::new(Record::put(key, value, revision.main, 1, lease));
                let index = KeyIndex::with_put(revision, Arc::clone(&record));
                state.index.tree.insert(index_key, index);
                (record, None)
            }
        };
        let kv = record.to_key_value(revision.main);
        self.add_record(revision, record);
        self.events.push(Event {
            kind: EventKind::Put,
            kv,
            prev_kv: previous.clone(),
        });
        previous
    }

    /// Deletes every key in `range` that exists now (including keys this transaction put).
    /// Returns their versions before the delete, in key order; deleting nothing changes nothing.
    pub fn delete_range(&mut self, range: &KeyRange) -> Vec<KeyValue> {
        let live = self.state.index.live_in(range);
        let mut deleted = Vec::with_capacity(live.len());
        for (live_revision, live_record) in live {
            let revision = self.next_revision();
            let previous = live_record.to_key_value(live_revision.main);
            let key = live_record.key.clone();
            let index = self
                .state
                .index
                .tree
                .get_mut(&key[..])
                .expect("a live key is indexed");
            self.undo.push(Undo::Index {
                key: key.clone(),
                previous: Some(index.clone()),
            });
            let record = Arc::new(Record::tombstone(key.clone()));
            index.tombstone(revision, Arc::clone(&record));
            self.add_record(revision, record);
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
        deleted
    }

    fn add_record(&mut self, revision: Revision, record: Arc<Record>) {
        // Crate invariant 1: one record per revision.
        let replaced = self.state.records.insert(revision, record);
        assert!(replaced.is_none(), "revision {revision} written twice");
        self.undo.push(Undo::Record(revision));
    }

    /// Publishes the changes as one revision. A transaction without changes leaves the
    /// revision as it was and reports no events.
    pub fn commit(mut self) -> Committed {
        self.committed = true;
        self.undo.clear();
        let events = mem::take(&mut self.events);
        if !events.is_empty() {
            // Readers see the new revision only from here on: read views are taken from the
            // store, which cannot be borrowed while this transaction lives.
            self.state.revision = self.begin_revision + 1;
        }
        Committed {
            revision: self.state.revision,
            events,
        }
    }

    fn rollback(&mut self) {
        let state = &mut *self.state;
        while let Some(undo) = self.undo.pop() {
            match undo {
                Undo::Record(revision) => {
                    let removed = state.records.remove(&revision);
                    assert!(
                        removed.is_some(),
                        "undo of record {revision} that is not there"
                    );
                }
                Undo::Index {
                    key,
                    previous: Some(previous),
                } => {
                    state.index.tree.insert(IndexKey::new(&key), previous);
                }
                Undo::Index {
                    key,
                    previous: None,
                } => {
                    let removed = state.index.tree.remove(&key[..]);
                    assert!(
                        removed.is_some(),
                        "undo of a new key index that is not there"
                    );
                }
            }
        }
        assert_eq!(
            state.revision, self.begin_revision,
            "an uncommitted txn never moves the revision"
        );
    }
}

impl Drop for WriteTxn<'_> {
    /// Undoes the changes of a transaction that was not committed. Not while unwinding from a
    /// panic: that is a bug in this crate, after which the store is not to be trusted anyway,
    /// and a second panic in the undo would abort the process.
    fn drop(&mut self) {
        if !self.committed && !std::thread::panicking() {
            self.rollback();
        }
    }
}

impl std::fmt::Debug for WriteTxn<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteTxn")
            .field("begin_revision", &self.begin_revision)
            .field("changes", &self.events.len())
            .finish_non_exhaustive()
    }
}
