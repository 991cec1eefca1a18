//! A node's simulated disk: an ordered log of records (snapshot, entry, hard state) of which
//! a prefix is durable. Writes append records; a sync makes every record written before it
//! durable; a crash keeps the durable prefix plus, for a torn crash, some further prefix of
//! the unsynced records (the drive may have flushed part of the last write), and loses the
//! rest. This models a WAL with group commit and torn-tail truncation (keel-wal's contract).
//!
//! The application checkpoint (the applied KV state, as the B+tree commit would hold it) is
//! written synchronously and durably by the node loop, as the server's checkpoint does.
//!
//! Invariants:
//! 1. `durable_records <= written_records`; records are made durable in write order.
//! 2. The durable image's entries are contiguous and follow its snapshot index.

use crate::sim::kv::KvStore;
use crate::storage::MemStorage;
use crate::types::{ConfState, Entry, HardState, LogIndex, Snapshot};

/// One WAL record.
#[derive(Clone, Debug)]
pub(crate) enum Record {
    /// A snapshot replacing the whole log (installed from a leader).
    Snapshot(Snapshot),
    /// One log entry, replacing any stored entry at or after its index.
    Entry(Entry),
    /// The hard state.
    HardState(HardState),
}

/// What survives a crash.
#[derive(Clone, Debug, Default)]
pub(crate) struct DiskImage {
    pub(crate) hard_state: HardState,
    /// The latest snapshot (empty: index 0).
    pub(crate) snapshot: Snapshot,
    /// Entries after `snapshot.meta.index`, contiguous.
    pub(crate) entries: Vec<Entry>,
}

impl DiskImage {
    fn apply(&mut self, record: Record) {
        match record {
            Record::Snapshot(snapshot) => {
                if snapshot.meta.index > self.snapshot.meta.index {
                    self.entries.clear();
                    self.snapshot = snapshot;
                }
            }
            Record::Entry(entry) => self.apply_entry(entry),
            Record::HardState(hard_state) => self.hard_state = hard_state,
        }
    }

    fn apply_entry(&mut self, entry: Entry) {
        let snapshot_index = self.snapshot.meta.index;
        if entry.index <= snapshot_index {
            return;
        }
        let keep = (entry.index.0 - snapshot_index.0 - 1) as usize;
        assert!(
            keep <= self.entries.len(),
            "disk: entry {} leaves a gap after {} (invariant 2)",
            entry.index,
            self.last_index()
        );
        self.entries.truncate(keep);
        self.entries.push(entry);
    }

    /// Last index held (the snapshot's when there are no entries).
    pub(crate) fn last_index(&self) -> LogIndex {
        self.entries
            .last()
            .map_or(self.snapshot.meta.index, |e| e.index)
    }

    /// The entry at `index`, if held.
    pub(crate) fn entry(&self, index: LogIndex) -> Option<&Entry> {
        let snapshot_index = self.snapshot.meta.index;
        if index <= snapshot_index {
            return None;
        }
        self.entries.get((index.0 - snapshot_index.0 - 1) as usize)
    }
}

/// The application's durable checkpoint: its state as of `applied`.
#[derive(Clone, Debug, Default)]
pub(crate) struct AppCheckpoint {
    /// Last applied index (inclusive).
    pub(crate) applied: LogIndex,
    pub(crate) kv: KvStore,
    pub(crate) conf_state: ConfState,
}

/// One node's disk.
#[derive(Debug, Default)]
pub(crate) struct SimDisk {
    durable: DiskImage,
    /// Written, not yet synced, in write order.
    pending: Vec<Record>,
    /// Records made durable since the disk was created (monotonic).
    durable_records: u64,
    checkpoint: AppCheckpoint,
    /// Lowest index whose durable entry changed since the durability checker last looked.
    changed_from: Option<LogIndex>,
}

impl SimDisk {
    pub(crate) fn image(&self) -> &DiskImage {
        &self.durable
    }

    pub(crate) fn checkpoint(&self) -> &AppCheckpoint {
        &self.checkpoint
    }

    /// Number of records written so far (durable or not); a sync to this number covers them.
    pub(crate) fn written_records(&self) -> u64 {
        self.durable_records + self.pending.len() as u64
    }

    pub(crate) fn durable_records(&self) -> u64 {
        self.durable_records
    }

    pub(crate) fn pending_records(&self) -> usize {
        self.pending.len()
    }

    /// Appends records (not durable until a sync covers them).
    pub(crate) fn write(&mut self, records: impl IntoIterator<Item = Record>) {
        self.pending.extend(records);
    }

    /// A sync issued after `written_records` records completed: they are durable.
    pub(crate) fn sync_to(&mut self, written_records: u64) {
        if written_records <= self.durable_records {
            return;
        }
        let count = (written_records - self.durable_records) as usize;
        assert!(
            count <= self.pending.len(),
            "disk: sync to record {written_records} beyond the {} written (invariant 1)",
            self.written_records()
        );
        self.make_durable(count);
    }

    fn make_durable(&mut self, count: usize) {
        let records: Vec<Record> = self.pending.drain(..count).collect();
        for record in records {
            self.note_change(&record);
            self.durable.apply(record);
        }
        self.durable_records += count as u64;
    }

    fn note_change(&mut self, record: &Record) {
        let from = match record {
            Record::Snapshot(_) => LogIndex(0),
            Record::Entry(entry) => entry.index,
            Record::HardState(_) => return,
        };
        self.changed_from = Some(self.changed_from.map_or(from, |old| old.min(from)));
    }

    /// Power loss: the first `kept` unsynced records reached the media (a torn write keeps a
    /// prefix); the rest are gone.
    pub(crate) fn crash(&mut self, kept: usize) {
        let kept = kept.min(self.pending.len());
        self.make_durable(kept);
        self.pending.clear();
    }

    /// Takes the lowest index whose durable entry changed since the last call.
    pub(crate) fn take_changed_from(&mut self) -> Option<LogIndex> {
        self.changed_from.take()
    }

    /// Durably records the application's state (the server's checkpoint commit).
    pub(crate) fn write_checkpoint(&mut self, checkpoint: AppCheckpoint) {
        assert!(
            checkpoint.applied >= self.checkpoint.applied,
            "disk: checkpoint going back from {} to {}",
            self.checkpoint.applied,
            checkpoint.applied
        );
        self.checkpoint = checkpoint;
    }

    /// Durably replaces the log prefix up to `snapshot`'s index with the snapshot (log
    /// compaction after a local snapshot). Like etcd's snapshot save, it first syncs
    /// everything written: the snapshot record follows them in the log.
    pub(crate) fn compact(&mut self, snapshot: Snapshot) {
        let index = snapshot.meta.index;
        self.sync_to(self.written_records());
        // The sync may have made a newer snapshot (received from a leader) durable.
        if index <= self.durable.snapshot.meta.index {
            return;
        }
        assert!(
            index <= self.durable.last_index(),
            "disk: compacting to {index} beyond the durable log ({})",
            self.durable.last_index()
        );
        let drop = (index.0 - self.durable.snapshot.meta.index.0) as usize;
        self.durable.entries.drain(..drop);
        self.durable.snapshot = snapshot;
    }

    /// The in-memory log a restarting server rebuilds from this disk.
    pub(crate) fn recover_storage(&self) -> MemStorage {
        let mut storage = MemStorage::new();
        let image = &self.durable;
        if !image.snapshot.is_empty() {
            storage
                .apply_snapshot(image.snapshot.clone())
                .expect("fresh storage accepts any snapshot");
        }
        storage
            .append(&image.entries)
            .expect("disk entries are contiguous after the snapshot (invariant 2)");
        storage.set_hard_state(image.hard_state);
        storage
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::LogStorage;
    use crate::types::{SnapshotMeta, Term};

    fn entry(index: u64, term: u64) -> Record {
        Record::Entry(Entry {
            term: Term(term),
            index: LogIndex(index),
            ..Entry::default()
        })
    }

    // Only synced records survive a crash; a torn crash keeps a prefix of the rest.
    #[test]
    fn a_crash_keeps_the_synced_prefix_and_maybe_a_torn_tail() {
        let mut disk = SimDisk::default();
        disk.write([entry(1, 1), entry(2, 1)]);
        disk.sync_to(disk.written_records());
        disk.write([entry(3, 1), entry(4, 1), entry(5, 1)]);
        disk.crash(0);
        assert_eq!(disk.image().last_index(), LogIndex(2));
        disk.write([entry(3, 2), entry(4, 2)]);
        disk.crash(1);
        assert_eq!(disk.image().last_index(), LogIndex(3));
        assert_eq!(disk.pending_records(), 0);
        assert_eq!(disk.written_records(), disk.durable_records());
    }

    // A record at an existing index replaces the tail (a new leader overwrote it).
    #[test]
    fn an_entry_replaces_the_tail_from_its_index() {
        let mut disk = SimDisk::default();
        disk.write([entry(1, 1), entry(2, 1), entry(3, 1), entry(2, 3)]);
        disk.sync_to(4);
        assert_eq!(disk.image().last_index(), LogIndex(2));
        assert_eq!(
            disk.image().entry(LogIndex(2)).map(|e| e.term),
            Some(Term(3))
        );
        assert_eq!(disk.take_changed_from(), Some(LogIndex(1)));
        assert_eq!(disk.take_changed_from(), None);
    }

    // Compaction and snapshots keep the image consistent for recovery.
    #[test]
    fn recovery_rebuilds_the_storage_from_snapshot_and_entries() {
        let mut disk = SimDisk::default();
        disk.write([entry(1, 1), entry(2, 1), entry(3, 2)]);
        disk.write([Record::HardState(HardState {
            term: Term(2),
            vote: None,
            commit: LogIndex(3),
        })]);
        disk.sync_to(4);
        let snapshot = |index: u64, term: u64| Snapshot {
            meta: SnapshotMeta {
                index: LogIndex(index),
                term: Term(term),
                conf_state: ConfState::default(),
            },
            data: bytes::Bytes::new(),
        };
        disk.compact(snapshot(2, 1));
        let storage = disk.recover_storage();
        assert_eq!(storage.first_index(), Ok(LogIndex(3)));
        assert_eq!(storage.last_index(), Ok(LogIndex(3)));
        assert_eq!(storage.hard_state().commit, LogIndex(3));
        disk.write([Record::Snapshot(snapshot(9, 3))]);
        disk.sync_to(disk.written_records());
        assert_eq!(disk.image().last_index(), LogIndex(9));
        assert_eq!(disk.recover_storage().first_index(), Ok(LogIndex(10)));
    }

    // Found by a long run: a local compaction at the applied index while a newer snapshot
    // from the leader was written but not synced. The compaction's sync made that snapshot
    // durable first, and compacting "up to" the older index then underflowed.
    #[test]
    fn compaction_behind_a_pending_newer_snapshot_is_a_no_op() {
        let snapshot = |index: u64| Snapshot {
            meta: SnapshotMeta {
                index: LogIndex(index),
                term: Term(2),
                conf_state: ConfState::default(),
            },
            data: bytes::Bytes::new(),
        };
        let mut disk = SimDisk::default();
        disk.write([entry(1, 1), entry(2, 1), entry(3, 2)]);
        disk.sync_to(3);
        disk.write([Record::Snapshot(snapshot(9))]);
        disk.compact(snapshot(3));
        assert_eq!(disk.image().snapshot.meta.index, LogIndex(9));
        assert_eq!(disk.image().last_index(), LogIndex(9));
        assert_eq!(disk.pending_records(), 0);
    }
}
