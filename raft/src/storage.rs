//! The read side of the durable log ([`LogStorage`]), implemented by the server over its WAL,
//! and [`MemStorage`], an in-memory implementation for tests, benches and examples.

mod mem_storage;

pub use mem_storage::MemStorage;

use crate::errors::StorageError;
use crate::types::{ConfState, Entry, HardState, LogIndex, Snapshot, Term};

/// Read access to what the server has made durable. Raft never writes through this trait:
/// the server writes what each `Ready` asks for, then calls `RawNode::on_persisted`.
///
/// The log is `[first_index, last_index]`; the entry at `first_index - 1` is the last one
/// covered by the latest snapshot (or index 0, term 0 for a fresh log) and its term must stay
/// readable via [`LogStorage::term`].
pub trait LogStorage {
    /// The durable hard state and membership, read once by `RawNode::new`.
    fn initial_state(&self) -> Result<(HardState, ConfState), StorageError>;

    /// Entries in `[low, high_exclusive)`, at most `size_bytes_max` bytes counted with
    /// [`Entry::size_bytes`] but always at least one entry if the range is non-empty.
    /// `Compacted` if `low < first_index`, `Unavailable` if `high_exclusive > last_index + 1`.
    fn entries(
        &self,
        low: LogIndex,
        high_exclusive: LogIndex,
        size_bytes_max: Option<u64>,
    ) -> Result<Vec<Entry>, StorageError>;

    /// Term of the entry at `index`, for `index` in `[first_index - 1, last_index]`.
    fn term(&self, index: LogIndex) -> Result<Term, StorageError>;

    /// First index still available (snapshot index + 1).
    fn first_index(&self) -> Result<LogIndex, StorageError>;

    /// Last index in the log (`first_index - 1` when empty).
    fn last_index(&self) -> Result<LogIndex, StorageError>;

    /// The most recent snapshot. If it does not cover at least `request_index`, return
    /// `SnapshotTemporarilyUnavailable` (the leader retries later).
    ///
    /// A follower ignores a snapshot whose membership does not include it, so a snapshot
    /// taken before the recipient was added would be sent again and again. Serve (or let the
    /// transport substitute, as etcd's merged snapshot does) the current applied state, whose
    /// membership includes every member the leader replicates to.
    fn snapshot(&self, request_index: LogIndex) -> Result<Snapshot, StorageError>;
}

/// Cuts `entries` so their total [`Entry::size_bytes`] stays within `size_bytes_max`, keeping
/// at least the first entry.
pub(crate) fn limit_size(entries: &mut Vec<Entry>, size_bytes_max: Option<u64>) {
    let Some(size_bytes_max) = size_bytes_max else {
        return;
    };
    let mut total_bytes = 0u64;
    let mut keep = 0usize;
    for entry in entries.iter() {
        total_bytes = total_bytes.saturating_add(entry.size_bytes());
        if keep > 0 && total_bytes > size_bytes_max {
            break;
        }
        keep += 1;
    }
    entries.truncate(keep);
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn entry_of_payload(index: u64, payload_bytes: usize) -> Entry {
        Entry {
            term: Term(1),
            index: LogIndex(index),
            data: Bytes::from(vec![0u8; payload_bytes]),
            ..Entry::default()
        }
    }

    // Size limits must never starve replication: one oversized entry still goes out.
    #[test]
    fn limit_size_keeps_at_least_one_entry() {
        let mut entries = vec![entry_of_payload(1, 1000), entry_of_payload(2, 1)];
        limit_size(&mut entries, Some(10));
        assert_eq!(entries.len(), 1);
    }

    // The cut happens at the first entry that would exceed the limit.
    #[test]
    fn limit_size_cuts_at_the_first_entry_over_the_limit() {
        let mut entries: Vec<Entry> = (1..=5).map(|i| entry_of_payload(i, 76)).collect();
        // Each entry is 100 bytes with overhead.
        limit_size(&mut entries, Some(250));
        assert_eq!(entries.len(), 2);
        let mut all = entries.clone();
        limit_size(&mut all, None);
        assert_eq!(all.len(), 2);
    }
}
