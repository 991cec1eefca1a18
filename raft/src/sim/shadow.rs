//! A node's log as the simulator sees it: every entry the node handed out in a Ready (durable
//! or not yet), as (term, digest) pairs after the latest snapshot. The checkers read it
//! instead of reaching into `RawNode`: it is rebuilt from the disk at restart and follows
//! each Ready's entries and snapshot, exactly as the server's storage would.

use crate::ready::Ready;
use crate::sim::digest::Fnv64;
use crate::sim::disk::DiskImage;
use crate::types::{Entry, EntryKind, LogIndex, Term};

/// Identity of an entry's content: its term plus a digest of kind and payload.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct EntryId {
    pub(crate) term: Term,
    pub(crate) digest: u64,
}

impl EntryId {
    pub(crate) fn of(entry: &Entry) -> EntryId {
        let mut fnv = Fnv64::default();
        fnv.write_bytes(&[match entry.kind {
            EntryKind::Normal => 0,
            EntryKind::ConfChange => 1,
        }]);
        fnv.write_bytes(&entry.data);
        EntryId {
            term: entry.term,
            digest: fnv.finish(),
        }
    }
}

/// The node's log: a snapshot position and the entries after it.
#[derive(Clone, Debug, Default)]
pub(crate) struct ShadowLog {
    snapshot_index: LogIndex,
    snapshot_term: Term,
    /// Entries after `snapshot_index`, contiguous.
    entries: Vec<EntryId>,
}

impl ShadowLog {
    pub(crate) fn from_image(image: &DiskImage) -> ShadowLog {
        ShadowLog {
            snapshot_index: image.snapshot.meta.index,
            snapshot_term: image.snapshot.meta.term,
            entries: image.entries.iter().map(EntryId::of).collect(),
        }
    }

    /// Follows one Ready (snapshot first, then entries). Returns the first index appended.
    pub(crate) fn apply_ready(&mut self, ready: &Ready) -> Option<LogIndex> {
        if let Some(snapshot) = &ready.snapshot {
            self.snapshot_index = snapshot.meta.index;
            self.snapshot_term = snapshot.meta.term;
            self.entries.clear();
        }
        let first = ready.entries.first()?.index;
        for entry in &ready.entries {
            if entry.index <= self.snapshot_index {
                continue;
            }
            let keep = (entry.index.0 - self.snapshot_index.0 - 1) as usize;
            assert!(
                keep <= self.entries.len(),
                "shadow log: Ready entry {} leaves a gap after {}",
                entry.index,
                self.last_index()
            );
            self.entries.truncate(keep);
            self.entries.push(EntryId::of(entry));
        }
        Some(first)
    }

    /// The node released its log up to `index` behind a local snapshot.
    pub(crate) fn compact(&mut self, index: LogIndex, term: Term) {
        if index <= self.snapshot_index {
            return;
        }
        let drop = ((index.0 - self.snapshot_index.0) as usize).min(self.entries.len());
        self.entries.drain(..drop);
        self.snapshot_index = index;
        self.snapshot_term = term;
    }

    pub(crate) fn snapshot_index(&self) -> LogIndex {
        self.snapshot_index
    }

    pub(crate) fn last_index(&self) -> LogIndex {
        LogIndex(self.snapshot_index.0 + self.entries.len() as u64)
    }

    /// The entry at `index`, if held (not at or below the snapshot).
    pub(crate) fn entry(&self, index: LogIndex) -> Option<EntryId> {
        if index <= self.snapshot_index {
            return None;
        }
        self.entries
            .get((index.0 - self.snapshot_index.0 - 1) as usize)
            .copied()
    }

    /// Term at `index`, including the snapshot's own index; None outside the log.
    pub(crate) fn term(&self, index: LogIndex) -> Option<Term> {
        if index == self.snapshot_index {
            return Some(self.snapshot_term);
        }
        self.entry(index).map(|e| e.term)
    }
}
