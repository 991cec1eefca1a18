//! In-memory [`LogStorage`] with the write operations a server performs on its durable log.

use bytes::Bytes;

use super::{limit_size, LogStorage};
use crate::errors::StorageError;
use crate::types::{ConfState, Entry, HardState, LogIndex, Snapshot, SnapshotMeta, Term};

/// An in-memory log. `entries[0]` is a placeholder for the entry at `first_index - 1` (the
/// snapshot's last entry): only its index and term are meaningful.
#[derive(Clone, Debug)]
pub struct MemStorage {
    hard_state: HardState,
    conf_state: ConfState,
    snapshot: Snapshot,
    /// `entries[k].index == entries[0].index + k` for every k (contiguous, never empty).
    entries: Vec<Entry>,
}

impl Default for MemStorage {
    fn default() -> Self {
        MemStorage::new()
    }
}

impl MemStorage {
    /// Empty storage: no entries, zero hard state, no members.
    pub fn new() -> MemStorage {
        MemStorage {
            hard_state: HardState::default(),
            conf_state: ConfState::default(),
            snapshot: Snapshot::default(),
            entries: vec![Entry::default()],
        }
    }

    /// Storage that starts with `conf_state` as its membership (a new node joining a group
    /// whose members the application already knows).
    pub fn new_with_conf_state(conf_state: ConfState) -> MemStorage {
        let mut storage = MemStorage::new();
        storage.set_conf_state(conf_state.clone());
        storage.snapshot.meta.conf_state = conf_state;
        storage
    }

    fn offset(&self) -> LogIndex {
        self.entries[0].index
    }

    fn last(&self) -> LogIndex {
        LogIndex(self.offset().0 + self.entries.len() as u64 - 1)
    }

    /// Records the durable hard state.
    pub fn set_hard_state(&mut self, hard_state: HardState) {
        self.hard_state = hard_state;
    }

    /// The durable hard state.
    pub fn hard_state(&self) -> HardState {
        self.hard_state
    }

    /// Records the durable membership.
    pub fn set_conf_state(&mut self, conf_state: ConfState) {
        self.conf_state = conf_state;
    }

    /// Appends `entries` (contiguous), first dropping any stored suffix from
    /// `entries[0].index` on (a conflicting tail the leader overwrote). Entries below
    /// `first_index` are skipped. A gap after the last index is an error.
    pub fn append(&mut self, entries: &[Entry]) -> Result<(), StorageError> {
        let Some(first_new) = entries.first() else {
            return Ok(());
        };
        for pair in entries.windows(2) {
            if pair[1].index != pair[0].index.next() {
                return Err(StorageError::Other(format!(
                    "append: entries not contiguous at {} -> {}",
                    pair[0].index, pair[1].index
                )));
            }
        }
        let first_index = self.offset().next();
        let last_new = entries[entries.len() - 1].index;
        if last_new < first_index {
            return Ok(());
        }
        if first_new.index > self.last().next() {
            return Err(StorageError::Other(format!(
                "append: gap, last index {} but entries start at {}",
                self.last(),
                first_new.index
            )));
        }
        let skip = first_index.0.saturating_sub(first_new.index.0) as usize;
        let entries = &entries[skip..];
        let keep = (entries[0].index.0 - self.offset().0) as usize;
        self.entries.truncate(keep);
        self.entries.extend_from_slice(entries);
        Ok(())
    }

    /// Replaces the whole log with `snapshot` (installing a snapshot received from a leader).
    pub fn apply_snapshot(&mut self, snapshot: Snapshot) -> Result<(), StorageError> {
        if snapshot.meta.index < self.snapshot.meta.index {
            return Err(StorageError::SnapshotOutOfDate);
        }
        self.entries = vec![Entry {
            term: snapshot.meta.term,
            index: snapshot.meta.index,
            ..Entry::default()
        }];
        self.conf_state = snapshot.meta.conf_state.clone();
        self.snapshot = snapshot;
        Ok(())
    }

    /// Records a snapshot of the application state at `index` (which must be in the log).
    /// Entries stay until [`MemStorage::compact`] releases them.
    pub fn create_snapshot(
        &mut self,
        index: LogIndex,
        conf_state: ConfState,
        data: Bytes,
    ) -> Result<Snapshot, StorageError> {
        if index <= self.snapshot.meta.index {
            return Err(StorageError::SnapshotOutOfDate);
        }
        if index > self.last() {
            return Err(StorageError::Unavailable);
        }
        let term = self.term(index)?;
        self.snapshot = Snapshot {
            meta: SnapshotMeta {
                index,
                term,
                conf_state,
            },
            data,
        };
        Ok(self.snapshot.clone())
    }

    /// Drops every entry below `index`; afterwards `first_index() == index`. Releasing past
    /// the last index + 1 is an error; releasing below the first index is a no-op.
    pub fn compact(&mut self, index: LogIndex) -> Result<(), StorageError> {
        if index <= self.offset().next() {
            return Ok(());
        }
        if index > self.last().next() {
            return Err(StorageError::Unavailable);
        }
        let drop = (index.0 - 1 - self.offset().0) as usize;
        let placeholder = &self.entries[drop];
        let placeholder = Entry {
            term: placeholder.term,
            index: placeholder.index,
            ..Entry::default()
        };
        self.entries.drain(..=drop);
        self.entries.insert(0, placeholder);
        Ok(())
    }
}

impl LogStorage for MemStorage {
    fn initial_state(&self) -> Result<(HardState, ConfState), StorageError> {
        Ok((self.hard_state, self.conf_state.clone()))
    }

    fn entries(
        &self,
        low: LogIndex,
        high_exclusive: LogIndex,
        size_bytes_max: Option<u64>,
    ) -> Result<Vec<Entry>, StorageError> {
        if low <= self.offset() {
            return Err(StorageError::Compacted);
        }
        if high_exclusive > self.last().next() {
            return Err(StorageError::Unavailable);
        }
        if low >= high_exclusive {
            return Ok(Vec::new());
        }
        let lo = (low.0 - self.offset().0) as usize;
        let hi = (high_exclusive.0 - self.offset().0) as usize;
        let mut entries = self.entries[lo..hi].to_vec();
        limit_size(&mut entries, size_bytes_max);
        Ok(entries)
    }

    fn term(&self, index: LogIndex) -> Result<Term, StorageError> {
        if index < self.offset() {
            return Err(StorageError::Compacted);
        }
        if index > self.last() {
            return Err(StorageError::Unavailable);
        }
        Ok(self.entries[(index.0 - self.offset().0) as usize].term)
    }

    fn first_index(&self) -> Result<LogIndex, StorageError> {
        Ok(self.offset().next())
    }

    fn last_index(&self) -> Result<LogIndex, StorageError> {
        Ok(self.last())
    }

    fn snapshot(&self, request_index: LogIndex) -> Result<Snapshot, StorageError> {
        if self.snapshot.meta.index < request_index {
            return Err(StorageError::SnapshotTemporarilyUnavailable);
        }
        Ok(self.snapshot.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(range: std::ops::RangeInclusive<u64>, term: u64) -> Vec<Entry> {
        range
            .map(|i| Entry {
                term: Term(term),
                index: LogIndex(i),
                ..Entry::default()
            })
            .collect()
    }

    fn terms(storage: &MemStorage) -> Vec<u64> {
        let first = storage.first_index().expect("mem storage never fails");
        let last = storage.last_index().expect("mem storage never fails");
        (first.0..=last.0)
            .map(|i| storage.term(LogIndex(i)).expect("in range").0)
            .collect()
    }

    // A leader overwriting a follower's divergent tail: the old suffix must go.
    #[test]
    fn append_truncates_the_conflicting_suffix() {
        let mut storage = MemStorage::new();
        storage.append(&entries(1..=5, 1)).expect("contiguous");
        storage.append(&entries(3..=4, 2)).expect("overlapping");
        assert_eq!(terms(&storage), vec![1, 1, 2, 2]);
    }

    // A gap would silently lose entries; it must be refused.
    #[test]
    fn append_with_a_gap_is_an_error() {
        let mut storage = MemStorage::new();
        storage.append(&entries(1..=2, 1)).expect("contiguous");
        assert!(storage.append(&entries(4..=5, 1)).is_err());
    }

    // compact(i) leaves first_index == i and the term of i - 1 readable.
    #[test]
    fn compact_releases_entries_below_the_index() {
        let mut storage = MemStorage::new();
        storage.append(&entries(1..=5, 1)).expect("contiguous");
        storage.compact(LogIndex(4)).expect("in range");
        assert_eq!(storage.first_index(), Ok(LogIndex(4)));
        assert_eq!(storage.term(LogIndex(3)), Ok(Term(1)));
        assert_eq!(storage.term(LogIndex(2)), Err(StorageError::Compacted));
        assert_eq!(
            storage.entries(LogIndex(3), LogIndex(5), None),
            Err(StorageError::Compacted)
        );
        assert_eq!(
            storage
                .entries(LogIndex(4), LogIndex(6), None)
                .map(|e| e.len()),
            Ok(2)
        );
        assert_eq!(storage.compact(LogIndex(9)), Err(StorageError::Unavailable));
        // Appending entries that were already released is a no-op for that part.
        storage.append(&entries(2..=6, 1)).expect("overlapping");
        assert_eq!(storage.last_index(), Ok(LogIndex(6)));
    }

    // Snapshots: create records the term; apply replaces the log; older ones are refused.
    #[test]
    fn snapshots_replace_the_log_and_refuse_older_ones() {
        let mut storage = MemStorage::new();
        storage.append(&entries(1..=3, 2)).expect("contiguous");
        let conf_state = ConfState {
            voters: vec![crate::NodeId(1)],
            learners: vec![],
        };
        let snapshot = storage
            .create_snapshot(LogIndex(2), conf_state.clone(), Bytes::from_static(b"s"))
            .expect("in range");
        assert_eq!(snapshot.meta.term, Term(2));
        assert_eq!(
            storage.snapshot(LogIndex(3)),
            Err(StorageError::SnapshotTemporarilyUnavailable)
        );
        let newer = Snapshot {
            meta: SnapshotMeta {
                index: LogIndex(10),
                term: Term(3),
                conf_state,
            },
            data: Bytes::new(),
        };
        storage.apply_snapshot(newer).expect("newer");
        assert_eq!(storage.first_index(), Ok(LogIndex(11)));
        assert_eq!(storage.last_index(), Ok(LogIndex(10)));
        assert_eq!(storage.term(LogIndex(10)), Ok(Term(3)));
        assert_eq!(
            storage.apply_snapshot(snapshot),
            Err(StorageError::SnapshotOutOfDate)
        );
    }
}
