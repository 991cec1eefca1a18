//! `RevisionIndex`: key -> `KeyIndex` (etcd's treeIndex), a copy-on-write tree so that a read
//! view shares it with the writer. Answers "which revision holds key K at revision R" for one
//! key or a key range.

use std::sync::Arc;

use super::index_key::IndexKey;
use super::key_index::{Found, KeyIndex};
use super::key_range::KeyRange;
use super::record::Record;
use super::revision::Revision;
use crate::BTree;

/// Every key with at least one stored revision, with its generations. Entries are small and
/// cheap to clone (an inline key or a `Bytes`, and a `KeyIndex`), so copying a shared node
/// copies no generations.
#[derive(Clone, Default)]
pub(crate) struct RevisionIndex {
    pub(crate) tree: BTree<IndexKey, KeyIndex>,
}

impl RevisionIndex {
    pub(crate) fn get(&self, key: &[u8]) -> Option<&KeyIndex> {
        self.tree.get(key)
    }

    /// Calls `visit` in ascending key order for each key in `range` that existed at revision
    /// `at`, with the revision holding its version then (and its record when at hand).
    pub(crate) fn for_each_at<'a>(
        &'a self,
        range: &KeyRange,
        at: i64,
        mut visit: impl FnMut(Found<'a>),
    ) {
        if let KeyRange::Key(key) = range {
            // The common point read: one descent, no cursor.
            if let Some(found) = self.get(key).and_then(|index| index.get(at)) {
                visit(found);
            }
            return;
        }
        let Some(bounds) = range.bounds() else { return };
        for (_, index) in self.tree.range::<[u8], _>(bounds) {
            if let Some(found) = index.get(at) {
                visit(found);
            }
        }
    }

    /// Keys in `range` that exist now: the revision and record of each present version.
    pub(crate) fn live_in(&self, range: &KeyRange) -> Vec<(Revision, Arc<Record>)> {
        let mut live = Vec::new();
        let mut push = |index: &KeyIndex| {
            if let Some((revision, record)) = index.live() {
                live.push((revision, Arc::clone(record)));
            }
        };
        if let KeyRange::Key(key) = range {
            if let Some(index) = self.get(key) {
                push(index);
            }
            return live;
        }
        let Some(bounds) = range.bounds() else {
            return live;
        };
        for (_, index) in self.tree.range::<[u8], _>(bounds) {
            push(index);
        }
        live
    }
}
