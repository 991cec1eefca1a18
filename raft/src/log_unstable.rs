//! The tail of the log that is not yet known durable: entries (and possibly a snapshot) that
//! Ready handed out or will hand out, until `on_persisted` confirms them.
//!
//! Worked example: offset = 5, entries = [5, 6, 7], offset_in_progress = 7. Entries 5 and 6
//! went out in a Ready that is not yet persisted; entry 7 goes out in the next Ready. When
//! that first Ready is persisted, `stable_to(6, term)` drops 5 and 6: offset = 7.

use crate::types::{Entry, LogIndex, Snapshot, Term};

/// Unstable log tail. Invariants:
/// 1. `entries[k].index == offset + k`.
/// 2. if `snapshot` is set, `offset == snapshot.meta.index + 1`.
/// 3. `offset <= offset_in_progress <= offset + entries.len()`.
#[derive(Debug, Default)]
pub(crate) struct Unstable {
    /// Snapshot received from a leader, not yet durable.
    pub(crate) snapshot: Option<Snapshot>,
    /// Whether `snapshot` was handed out in a Ready.
    pub(crate) snapshot_in_progress: bool,
    /// Entries not yet durable, starting at `offset`.
    pub(crate) entries: Vec<Entry>,
    /// Index of `entries[0]` (or where the next entry goes when `entries` is empty).
    pub(crate) offset: LogIndex,
    /// First index not yet handed out in a Ready (exclusive end of the in-progress prefix).
    pub(crate) offset_in_progress: LogIndex,
}

impl Unstable {
    pub(crate) fn new(offset: LogIndex) -> Unstable {
        Unstable {
            offset,
            offset_in_progress: offset,
            ..Unstable::default()
        }
    }

    /// First index if only a snapshot pins it.
    pub(crate) fn maybe_first_index(&self) -> Option<LogIndex> {
        self.snapshot.as_ref().map(|s| s.meta.index.next())
    }

    /// Last index held here, if any.
    pub(crate) fn maybe_last_index(&self) -> Option<LogIndex> {
        if let Some(last) = self.entries.last() {
            return Some(last.index);
        }
        self.snapshot.as_ref().map(|s| s.meta.index)
    }

    /// Term of `index` if held here (including the snapshot's own last entry).
    pub(crate) fn maybe_term(&self, index: LogIndex) -> Option<Term> {
        if index < self.offset {
            let snapshot = self.snapshot.as_ref()?;
            return (snapshot.meta.index == index).then_some(snapshot.meta.term);
        }
        let last = self.maybe_last_index()?;
        if index > last {
            return None;
        }
        Some(self.entries[(index.0 - self.offset.0) as usize].term)
    }

    /// Entries not yet handed out in a Ready.
    pub(crate) fn entries_to_persist(&self) -> &[Entry] {
        let start = (self.offset_in_progress.0 - self.offset.0) as usize;
        &self.entries[start..]
    }

    /// The snapshot, if not yet handed out in a Ready.
    pub(crate) fn snapshot_to_persist(&self) -> Option<&Snapshot> {
        if self.snapshot_in_progress {
            return None;
        }
        self.snapshot.as_ref()
    }

    /// Marks everything current as handed out.
    pub(crate) fn accept_in_progress(&mut self) {
        self.offset_in_progress = LogIndex(self.offset.0 + self.entries.len() as u64);
        if self.snapshot.is_some() {
            self.snapshot_in_progress = true;
        }
    }

    /// Entries up to `index` with term `term` are durable: drop them. Ignored when the entry
    /// at `index` changed since (a newer leader overwrote it) or was already dropped.
    pub(crate) fn stable_to(&mut self, index: LogIndex, term: Term) {
        if index < self.offset || self.maybe_term(index) != Some(term) {
            return;
        }
        if self.snapshot.is_some() {
            // The snapshot precedes these entries and is persisted first; wait for it.
            return;
        }
        let drop = (index.0 + 1 - self.offset.0) as usize;
        self.entries.drain(..drop);
        self.offset = index.next();
        self.offset_in_progress = self.offset_in_progress.max(self.offset);
    }

    /// The snapshot at `index` is durable: drop it.
    pub(crate) fn stable_snap_to(&mut self, index: LogIndex) {
        if self
            .snapshot
            .as_ref()
            .is_some_and(|s| s.meta.index == index)
        {
            self.snapshot = None;
            self.snapshot_in_progress = false;
        }
    }

    /// Replaces everything with `snapshot` (installing a leader's snapshot).
    pub(crate) fn restore(&mut self, snapshot: Snapshot) {
        self.offset = snapshot.meta.index.next();
        self.offset_in_progress = self.offset;
        self.entries.clear();
        self.snapshot = Some(snapshot);
        self.snapshot_in_progress = false;
    }

    /// Appends `entries` (contiguous), truncating any tail from `entries[0].index`. Appending
    /// below `offset` moves `offset` back: the durable entries from there on are superseded,
    /// and the server overwrites them when it persists these.
    pub(crate) fn truncate_and_append(&mut self, entries: &[Entry]) {
        let Some(first) = entries.first() else { return };
        let from = first.index;
        let after = LogIndex(self.offset.0 + self.entries.len() as u64);
        if from == after {
            self.entries.extend_from_slice(entries);
        } else if from <= self.offset {
            // Replaces the whole unstable tail (and some durable entries, which the server
            // overwrites when it persists these).
            self.offset = from;
            self.entries = entries.to_vec();
        } else {
            let keep = (from.0 - self.offset.0) as usize;
            self.entries.truncate(keep);
            self.entries.extend_from_slice(entries);
        }
        self.offset_in_progress = self.offset_in_progress.min(from).max(self.offset);
    }

    /// Entries in `[low, high_exclusive)`, which the caller checked lie inside `entries`.
    pub(crate) fn slice(&self, low: LogIndex, high_exclusive: LogIndex) -> &[Entry] {
        assert!(
            low >= self.offset,
            "unstable slice: low {low} below offset {}",
            self.offset
        );
        let end = LogIndex(self.offset.0 + self.entries.len() as u64);
        assert!(
            high_exclusive <= end,
            "unstable slice: high {high_exclusive} beyond {end}"
        );
        &self.entries[(low.0 - self.offset.0) as usize..(high_exclusive.0 - self.offset.0) as usize]
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::types::SnapshotMeta;

    fn entries(range: std::ops::RangeInclusive<u64>, term: u64) -> Vec<Entry> {
        range
            .map(|i| Entry {
                term: Term(term),
                index: LogIndex(i),
                ..Entry::default()
            })
            .collect()
    }

    fn snapshot(index: u64, term: u64) -> Snapshot {
        Snapshot {
            meta: SnapshotMeta {
                index: LogIndex(index),
                term: Term(term),
                ..Default::default()
            },
            data: Bytes::new(),
        }
    }

    // The worked example from the module docs.
    #[test]
    fn stable_to_drops_the_persisted_prefix() {
        let mut unstable = Unstable::new(LogIndex(5));
        unstable.truncate_and_append(&entries(5..=6, 1));
        unstable.accept_in_progress();
        unstable.truncate_and_append(&entries(7..=7, 1));
        assert_eq!(unstable.entries_to_persist().len(), 1);
        unstable.stable_to(LogIndex(6), Term(1));
        assert_eq!(unstable.offset, LogIndex(7));
        assert_eq!(unstable.entries.len(), 1);
        assert_eq!(unstable.entries_to_persist().len(), 1);
    }

    // A persisted Ready whose entries a newer leader overwrote must not mark the new ones
    // durable (that would let commit run ahead of durability).
    #[test]
    fn stable_to_ignores_entries_overwritten_since() {
        let mut unstable = Unstable::new(LogIndex(5));
        unstable.truncate_and_append(&entries(5..=7, 1));
        unstable.accept_in_progress();
        unstable.truncate_and_append(&entries(6..=7, 2));
        assert_eq!(unstable.offset_in_progress, LogIndex(6));
        unstable.stable_to(LogIndex(7), Term(1));
        assert_eq!(unstable.offset, LogIndex(5));
        unstable.stable_to(LogIndex(7), Term(2));
        assert_eq!(unstable.offset, LogIndex(8));
        assert!(unstable.entries.is_empty());
    }

    // Appending below offset replaces the whole tail and moves offset back.
    #[test]
    fn truncate_and_append_below_offset_moves_offset_back() {
        let mut unstable = Unstable::new(LogIndex(5));
        unstable.truncate_and_append(&entries(5..=6, 1));
        unstable.truncate_and_append(&entries(3..=4, 2));
        assert_eq!(unstable.offset, LogIndex(3));
        assert_eq!(unstable.maybe_last_index(), Some(LogIndex(4)));
        assert_eq!(unstable.offset_in_progress, LogIndex(3));
    }

    // A snapshot answers term queries for its own index and pins first/last index.
    #[test]
    fn restore_pins_indexes_to_the_snapshot() {
        let mut unstable = Unstable::new(LogIndex(5));
        unstable.truncate_and_append(&entries(5..=6, 1));
        unstable.restore(snapshot(10, 3));
        assert_eq!(unstable.maybe_first_index(), Some(LogIndex(11)));
        assert_eq!(unstable.maybe_last_index(), Some(LogIndex(10)));
        assert_eq!(unstable.maybe_term(LogIndex(10)), Some(Term(3)));
        assert_eq!(unstable.maybe_term(LogIndex(9)), None);
        assert!(unstable.snapshot_to_persist().is_some());
        unstable.accept_in_progress();
        assert!(unstable.snapshot_to_persist().is_none());
        unstable.stable_snap_to(LogIndex(10));
        assert!(unstable.snapshot.is_none());
    }
}
