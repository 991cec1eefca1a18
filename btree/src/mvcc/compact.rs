//! Compaction (etcd's `store.compact` + `scheduleCompaction`): removes every revision superseded
//! at or before the compaction revision, except the newest one of each live key.
//!
//! Two passes, as etcd does it (index first, then the key bucket in revision order):
//!
//! 1. Keys, in key order: each key's index entry is compacted (`KeyIndex::compact`); keys with
//!    nothing to drop are not written, so their pages stay shared with read views.
//! 2. Records up to the compaction revision, in revision order: a record its (compacted) index
//!    no longer names is removed. Removals are sequential in the record tree, so one leaf is
//!    decoded once for all its removals (a pass by key would hit a random leaf per revision).
//!
//! The first pass counts the records it drops from the index. The second pass ends once it
//! removed that many (it does not visit the records after the last one), and is skipped when
//! there are none (a store where no key has a superseded revision). A job resumed from its
//! stored cursor (after a restart, or in an exported snapshot) does not know the count and
//! visits every record up to the compaction revision; so does a job replacing one that did
//! not know it. The count is not stored: the on-disk cursor is unchanged.
//!
//! Between the passes the record tree holds records no index names; reads never see them
//! (reads at or above the compaction revision go through the index; history reads hide what
//! compaction removes). A `CompactionJob` stops after any batch and resumes later, with writes
//! in between (new writes are above the compaction revision and untouched). The job is driven
//! by the caller ([`crate::MvccStore::compact_step`]), never by a thread of its own, so the same
//! calls give the same store on every member.

use std::ops::Bound;

use bytes::Bytes;

use super::key_index::KeyIndex;
use super::record;
use super::revision::Revision;
use super::state::TreeWriter;
use crate::error::{Corruption, Result};
use crate::meta::TreeId;
use crate::page::PageId;

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

/// Where a running compaction stands, after a [`crate::MvccStore::compact_step`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompactProgress {
    /// What it removed so far (since it started, or since the store was opened if it was
    /// resumed after a restart).
    pub outcome: CompactOutcome,
    /// Keys (first pass) or records (second pass) visited by this step.
    pub entries_visited: usize,
    /// Whether the compaction is complete (the store holds no compaction job any more).
    pub done: bool,
}

/// Which pass a compaction is in, and how far it got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Cursor {
    /// Compacting index entries; keys up to and including this one are done (`None`: none).
    Keys(Option<Bytes>),
    /// Removing records; revisions up to and including this one are done (`None`: none).
    Records(Option<Revision>),
}

impl Cursor {
    /// The stored form (system tree, `compaction/cursor`): `[0]` = first pass not started,
    /// `[1] ++ key` = first pass done through `key`, `[2]` = second pass not started,
    /// `[3] ++ revision (16 bytes BE)` = second pass done through it.
    pub(crate) fn encode(&self) -> Bytes {
        match self {
            Cursor::Keys(None) => Bytes::from_static(&[0]),
            Cursor::Keys(Some(key)) => Bytes::from([&[1u8][..], key].concat()),
            Cursor::Records(None) => Bytes::from_static(&[2]),
            Cursor::Records(Some(revision)) => {
                Bytes::from([&[3u8][..], &revision.to_bytes()].concat())
            }
        }
    }

    pub(crate) fn decode(bytes: &[u8]) -> Option<Cursor> {
        match bytes {
            [0] => Some(Cursor::Keys(None)),
            [1, key @ ..] => Some(Cursor::Keys(Some(Bytes::copy_from_slice(key)))),
            [2] => Some(Cursor::Records(None)),
            [3, revision @ ..] => Revision::from_bytes(revision)
                .ok()
                .map(|r| Cursor::Records(Some(r))),
            _ => None,
        }
    }
}

/// A compaction in progress: a bounded batch of keys or records per step.
#[derive(Clone, Debug)]
pub(crate) struct CompactionJob {
    outcome: CompactOutcome,
    cursor: Cursor,
    /// Records no index names that the second pass has to remove: those the first pass
    /// dropped from the index so far, plus those a replaced job left. `None`: unknown (the job
    /// was resumed from a stored cursor, or replaced one that was), so the second pass visits
    /// every record up to the compaction revision.
    unnamed: Option<usize>,
}

impl CompactionJob {
    /// Keys (or records) per step of [`crate::MvccStore::compact`] (etcd's
    /// `defaultCompactBatchLimit`).
    pub(crate) const BATCH_KEYS_MAX: usize = 1000;

    /// A new compaction at `revision`, replacing `previous` (a job still running: the records
    /// it dropped from the index and did not remove yet are this job's to remove).
    pub(crate) fn new(revision: i64, previous: Option<&CompactionJob>) -> Self {
        let outcome = CompactOutcome {
            compacted_revision: revision,
            ..CompactOutcome::default()
        };
        let unnamed = match previous {
            None => Some(0),
            Some(job) => job.unnamed_left(),
        };
        CompactionJob {
            outcome,
            cursor: Cursor::Keys(None),
            unnamed,
        }
    }

    /// A compaction at `revision` resumed from its stored `cursor`.
    pub(crate) fn resumed(revision: i64, cursor: Cursor) -> Self {
        let outcome = CompactOutcome {
            compacted_revision: revision,
            ..CompactOutcome::default()
        };
        CompactionJob {
            outcome,
            cursor,
            unnamed: None,
        }
    }

    /// Records no index names still to remove, if known. Unknown also when more were removed
    /// than counted: the file held records no index named before the job (crate invariant 1
    /// broken on disk), so the second pass visits every record up to the compaction revision.
    fn unnamed_left(&self) -> Option<usize> {
        let removed = self.outcome.revisions_removed_count;
        self.unnamed
            .and_then(|unnamed| unnamed.checked_sub(removed))
    }

    pub(crate) fn target(&self) -> i64 {
        self.outcome.compacted_revision
    }

    pub(crate) fn outcome(&self) -> CompactOutcome {
        self.outcome
    }

    pub(crate) fn cursor(&self) -> &Cursor {
        &self.cursor
    }

    /// Advances by up to `entries_max` keys or records (at least 1). Returns the entries
    /// visited and whether the compaction is done. On error the job is unchanged; the caller
    /// restores the trees.
    pub(crate) fn step(
        &mut self,
        writer: &mut TreeWriter<'_>,
        entries_max: usize,
    ) -> Result<(usize, bool)> {
        assert!(entries_max > 0, "a compaction step makes progress");
        match self.cursor.clone() {
            Cursor::Keys(after) => {
                let (visited, last, outcome, dropped) =
                    self.keys_step(writer, after, entries_max)?;
                self.outcome = outcome;
                self.unnamed = self.unnamed.map(|unnamed| unnamed + dropped);
                if visited < entries_max {
                    self.cursor = Cursor::Records(None);
                    // Nothing to remove: the second pass would only visit records.
                    return Ok((visited, self.unnamed == Some(0)));
                }
                self.cursor = Cursor::Keys(last);
                Ok((visited, false))
            }
            Cursor::Records(after) => {
                let (visited, last, outcome) = self.records_step(writer, after, entries_max)?;
                self.outcome = outcome;
                self.cursor = Cursor::Records(last);
                // Done at the end of the records, or once every unnamed one is removed.
                let all_removed = self.unnamed_left() == Some(0);
                Ok((visited, visited < entries_max || all_removed))
            }
        }
    }

    /// First pass: compacts the index entries of the keys after `after`.
    fn keys_step(
        &self,
        writer: &mut TreeWriter<'_>,
        after: Option<Bytes>,
        keys_max: usize,
    ) -> Result<(usize, Option<Bytes>, CompactOutcome, usize)> {
        let at = self.outcome.compacted_revision;
        let mut visited = 0usize;
        let mut dropped = 0usize;
        let mut last = after.clone();
        let mut plans: Vec<(Bytes, Option<KeyIndex>)> = Vec::new();
        {
            let start = match &after {
                Some(key) => Bound::Excluded(&key[..]),
                None => Bound::Unbounded,
            };
            let index = writer.state.tree(TreeId::Index);
            for entry in index
                .range(writer.src, start, Bound::Unbounded)
                .take(keys_max)
            {
                let (key, value) = entry?;
                visited += 1;
                last = Some(Bytes::copy_from_slice(key));
                let index = KeyIndex::decode(value.bytes)
                    .map_err(|reason| writer.src.corrupt(value.page, reason))?;
                if let Some(plan) = index.compact(at) {
                    dropped += plan.removed.len();
                    plans.push((Bytes::copy_from_slice(key), plan.remaining));
                }
            }
        }
        let mut outcome = self.outcome;
        for (key, remaining) in plans {
            match remaining {
                Some(index) => {
                    writer.insert(TreeId::Index, key, index.encode())?;
                }
                None => {
                    writer.remove(TreeId::Index, &key)?;
                    outcome.keys_removed_count += 1;
                }
            }
        }
        Ok((visited, last, outcome, dropped))
    }

    /// Second pass: removes the records after `after`, up to the compaction revision, that
    /// their key's index no longer names.
    fn records_step(
        &self,
        writer: &mut TreeWriter<'_>,
        after: Option<Revision>,
        records_max: usize,
    ) -> Result<(usize, Option<Revision>, CompactOutcome)> {
        let at = self.outcome.compacted_revision;
        let mut visited = 0usize;
        let mut last = after;
        let mut removed: Vec<Revision> = Vec::new();
        {
            let after_bytes = after.map(Revision::to_bytes);
            let start = match &after_bytes {
                Some(encoded) => Bound::Excluded(&encoded[..]),
                None => Bound::Unbounded,
            };
            let end = Bytes::copy_from_slice(&Revision::new(at + 1, 0).to_bytes());
            let records = writer.state.tree(TreeId::Records);
            for entry in records
                .range(writer.src, start, Bound::Excluded(end))
                .take(records_max)
            {
                let (encoded, value) = entry?;
                let page = value.page;
                let corrupt = |reason| writer.src.corrupt(page, reason);
                let revision = Revision::from_bytes(encoded)
                    .map_err(|error| corrupt(Corruption::Value(format!("record key: {error}"))))?;
                visited += 1;
                last = Some(revision);
                let key = record::with_record(value.bytes, |r| Bytes::copy_from_slice(r.key()))
                    .map_err(corrupt)?;
                let named = writer
                    .state
                    .key_index(writer.src, &key)?
                    .is_some_and(|index| index.names(revision));
                if !named {
                    removed.push(revision);
                }
            }
        }
        let mut outcome = self.outcome;
        for revision in removed {
            if !writer.remove(TreeId::Records, &revision.to_bytes())? {
                let reason = Corruption::Value(format!("record {revision} vanished"));
                return Err(writer.src.corrupt(PageId(0), reason));
            }
            outcome.revisions_removed_count += 1;
        }
        Ok((visited, last, outcome))
    }
}
