//! RaftLog: the durable log (read through [`LogStorage`]) plus the unstable tail, with the
//! matching, conflict and commit rules of the Raft paper (§5.3, §5.4).
//!
//! Positions, all inclusive: `first_index - 1` (snapshot) <= applied <= applying <= committed
//! <= last_index; committed entries go to the application only up to `durable_last_index`.

use tracing::debug;

use crate::errors::{RaftError, StorageError};
use crate::log_unstable::Unstable;
use crate::storage::{limit_size, LogStorage};
use crate::types::{Entry, LogIndex, NodeId, Snapshot, Term};

/// The log as Raft sees it.
pub(crate) struct RaftLog<S: LogStorage> {
    pub(crate) storage: S,
    pub(crate) unstable: Unstable,
    /// Highest index known committed on a quorum (inclusive).
    pub(crate) committed: LogIndex,
    /// Highest index handed to the application in a Ready (inclusive).
    pub(crate) applying: LogIndex,
    /// Highest index the application confirmed applied (inclusive).
    pub(crate) applied: LogIndex,
}

impl<S: LogStorage> RaftLog<S> {
    /// Opens the log over `storage`; committed/applied start at the snapshot index.
    pub(crate) fn new(storage: S) -> Result<RaftLog<S>, StorageError> {
        let first_index = storage.first_index()?;
        let last_index = storage.last_index()?;
        let snapshot_index = first_index.prev();
        Ok(RaftLog {
            storage,
            unstable: Unstable::new(last_index.next()),
            committed: snapshot_index,
            applying: snapshot_index,
            applied: snapshot_index,
        })
    }

    pub(crate) fn first_index(&self) -> LogIndex {
        if let Some(index) = self.unstable.maybe_first_index() {
            return index;
        }
        self.storage
            .first_index()
            .unwrap_or_else(|e| storage_failed("first_index", &e))
    }

    pub(crate) fn last_index(&self) -> LogIndex {
        if let Some(index) = self.unstable.maybe_last_index() {
            return index;
        }
        self.storage
            .last_index()
            .unwrap_or_else(|e| storage_failed("last_index", &e))
    }

    /// Last index whose entry is durable and consistent with this log: the application may be
    /// given committed entries up to here.
    pub(crate) fn durable_last_index(&self) -> LogIndex {
        if self.unstable.entries.is_empty() && self.unstable.snapshot.is_none() {
            return self.last_index();
        }
        self.unstable.offset.prev()
    }

    /// Term at `index`; `Compacted`/`Unavailable` outside `[first_index - 1, last_index]`.
    pub(crate) fn term(&self, index: LogIndex) -> Result<Term, StorageError> {
        let dummy_index = self.first_index().prev();
        if index < dummy_index {
            return Err(StorageError::Compacted);
        }
        if index > self.last_index() {
            return Err(StorageError::Unavailable);
        }
        if let Some(term) = self.unstable.maybe_term(index) {
            return Ok(term);
        }
        self.storage.term(index)
    }

    pub(crate) fn last_term(&self) -> Term {
        self.term(self.last_index())
            .unwrap_or_else(|e| storage_failed("term(last_index)", &e))
    }

    /// Term at `index`, or 0 when it is compacted or beyond the log (for hints and probes).
    pub(crate) fn term_or_zero(&self, index: LogIndex) -> Term {
        self.term(index).unwrap_or(Term(0))
    }

    pub(crate) fn match_term(&self, index: LogIndex, term: Term) -> bool {
        self.term(index) == Ok(term)
    }

    /// §5.4.1: a candidate's log (last entry `(last_index, last_term)`) is at least as up to
    /// date as ours.
    pub(crate) fn is_up_to_date(&self, last_index: LogIndex, last_term: Term) -> bool {
        let our_term = self.last_term();
        last_term > our_term || (last_term == our_term && last_index >= self.last_index())
    }

    /// First entry of `entries` whose index exists here with another term, or whose index is
    /// beyond the log; None when every entry is already present.
    fn find_conflict(&self, entries: &[Entry]) -> Option<LogIndex> {
        for entry in entries {
            if !self.match_term(entry.index, entry.term) {
                if entry.index <= self.last_index() {
                    debug!(
                        index = entry.index.0,
                        existing_term = self.term_or_zero(entry.index).0,
                        conflicting_term = entry.term.0,
                        "raft.log conflict"
                    );
                }
                return Some(entry.index);
            }
        }
        None
    }

    /// Fast back-off: the largest index <= `index` whose term is <= `term`, with its term.
    /// Entries in between cannot match a log whose entry at `index` has term `term`.
    pub(crate) fn find_conflict_by_term(&self, index: LogIndex, term: Term) -> (LogIndex, Term) {
        let mut index = index.min(self.last_index());
        loop {
            match self.term(index) {
                Ok(found) if found > term && index > LogIndex(0) => index = index.prev(),
                Ok(found) => return (index, found),
                Err(_) => return (index, Term(0)),
            }
        }
    }

    /// The follower side of Append: if our entry at `index` has `log_term`, merges `entries`
    /// (which follow it) and advances commit to min(`commit`, last new index). Returns the
    /// last new index, or None when the log does not match at `index`.
    pub(crate) fn maybe_append(
        &mut self,
        from: NodeId,
        index: LogIndex,
        log_term: Term,
        commit: LogIndex,
        entries: &[Entry],
    ) -> Result<Option<LogIndex>, RaftError> {
        if !self.match_term(index, log_term) {
            return Ok(None);
        }
        let last_new = LogIndex(index.0 + entries.len() as u64);
        if let Some(conflict_index) = self.find_conflict(entries) {
            if conflict_index <= self.committed {
                return Err(RaftError::ConflictBelowCommit {
                    from,
                    conflict_index,
                    commit: self.committed,
                });
            }
            let start = (conflict_index.0 - index.0 - 1) as usize;
            self.append(&entries[start..]);
        }
        self.commit_to(commit.min(last_new));
        Ok(Some(last_new))
    }

    /// Appends after checking the append does not touch committed entries (invariant 2).
    pub(crate) fn append(&mut self, entries: &[Entry]) -> LogIndex {
        let Some(first) = entries.first() else {
            return self.last_index();
        };
        assert!(
            first.index > self.committed,
            "append at {} would overwrite committed entries (commit {})",
            first.index,
            self.committed
        );
        self.unstable.truncate_and_append(entries);
        self.last_index()
    }

    /// Raises the commit index (never lowers it).
    pub(crate) fn commit_to(&mut self, commit: LogIndex) {
        if commit <= self.committed {
            return;
        }
        assert!(
            commit <= self.last_index(),
            "commit {commit} beyond last index {}",
            self.last_index()
        );
        self.committed = commit;
    }

    /// Leader commit rule (§5.4.2): commit `index` only if its entry is from `term`.
    pub(crate) fn maybe_commit(&mut self, index: LogIndex, term: Term) -> bool {
        if index > self.committed && self.term_or_zero(index) == term {
            self.commit_to(index);
            return true;
        }
        false
    }

    /// Committed entries that are durable and not yet handed out, within `size_bytes_max`.
    pub(crate) fn has_next_committed_entries(&self) -> bool {
        self.unstable.snapshot.is_none() && self.next_committed_end() > self.applying.next()
    }

    fn next_committed_end(&self) -> LogIndex {
        self.committed.min(self.durable_last_index()).next()
    }

    pub(crate) fn next_committed_entries(&self, size_bytes_max: u64) -> Vec<Entry> {
        if !self.has_next_committed_entries() {
            return Vec::new();
        }
        let low = self.applying.next().max(self.first_index());
        self.slice(low, self.next_committed_end(), Some(size_bytes_max))
            .unwrap_or_else(|e| storage_failed("committed entries", &e))
    }

    /// Entries from `low` to the end, within `size_bytes_max` (for Append messages).
    pub(crate) fn entries_from(
        &self,
        low: LogIndex,
        size_bytes_max: u64,
    ) -> Result<Vec<Entry>, StorageError> {
        if low > self.last_index() {
            return Ok(Vec::new());
        }
        self.slice(low, self.last_index().next(), Some(size_bytes_max))
    }

    /// Entries in `[low, high_exclusive)` from storage and/or the unstable tail.
    pub(crate) fn slice(
        &self,
        low: LogIndex,
        high_exclusive: LogIndex,
        size_bytes_max: Option<u64>,
    ) -> Result<Vec<Entry>, StorageError> {
        if low < self.first_index() {
            return Err(StorageError::Compacted);
        }
        if high_exclusive > self.last_index().next() {
            return Err(StorageError::Unavailable);
        }
        if low >= high_exclusive {
            return Ok(Vec::new());
        }
        let offset = self.unstable.offset;
        let mut entries = Vec::new();
        if low < offset {
            let stored_end = high_exclusive.min(offset);
            entries = self.storage.entries(low, stored_end, size_bytes_max)?;
            if (entries.len() as u64) < stored_end.0 - low.0 {
                return Ok(entries);
            }
        }
        if high_exclusive > offset {
            entries.extend_from_slice(self.unstable.slice(low.max(offset), high_exclusive));
        }
        limit_size(&mut entries, size_bytes_max);
        Ok(entries)
    }

    /// The snapshot a leader sends: the pending one, or storage's covering `request_index`.
    pub(crate) fn snapshot(&self, request_index: LogIndex) -> Result<Snapshot, StorageError> {
        if let Some(snapshot) = &self.unstable.snapshot {
            return Ok(snapshot.clone());
        }
        self.storage.snapshot(request_index)
    }

    /// Replaces the log with `snapshot` (follower installing a leader's snapshot).
    pub(crate) fn restore(&mut self, snapshot: Snapshot) {
        debug!(
            index = snapshot.meta.index.0,
            term = snapshot.meta.term.0,
            "raft.log restore"
        );
        self.committed = snapshot.meta.index;
        self.unstable.restore(snapshot);
    }

    /// The application confirmed it applied up to `applied`.
    pub(crate) fn applied_to(&mut self, applied: LogIndex) {
        assert!(
            applied <= self.committed,
            "applied {applied} beyond commit {}",
            self.committed
        );
        if applied > self.applied {
            self.applied = applied;
        }
        self.applying = self.applying.max(applied);
    }
}

/// The server's storage failed to return entries it earlier accepted as durable. Raft cannot
/// continue without its log (etcd panics here too); the node must stop and recover.
fn storage_failed(what: &str, error: &StorageError) -> ! {
    panic!("raft log storage failed reading {what}: {error}; the durable log is unreadable")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemStorage;

    fn entries(range: std::ops::RangeInclusive<u64>, term: u64) -> Vec<Entry> {
        range
            .map(|i| Entry {
                term: Term(term),
                index: LogIndex(i),
                ..Entry::default()
            })
            .collect()
    }

    fn log_with(stored: &[Entry]) -> RaftLog<MemStorage> {
        let mut storage = MemStorage::new();
        storage.append(stored).expect("contiguous");
        RaftLog::new(storage).expect("mem storage never fails")
    }

    // §5.3 log matching: a mismatch at (index, log_term) refuses the append.
    #[test]
    fn maybe_append_refuses_when_previous_entry_differs() {
        let mut log = log_with(&entries(1..=3, 1));
        let result = log.maybe_append(NodeId(2), LogIndex(3), Term(2), LogIndex(0), &[]);
        assert_eq!(result, Ok(None));
        let result = log.maybe_append(NodeId(2), LogIndex(5), Term(1), LogIndex(0), &[]);
        assert_eq!(result, Ok(None));
    }

    // A conflicting suffix is replaced; commit follows min(leader commit, last new).
    #[test]
    fn maybe_append_replaces_a_conflicting_suffix_and_commits() {
        let mut log = log_with(&entries(1..=3, 1));
        let result = log.maybe_append(
            NodeId(2),
            LogIndex(1),
            Term(1),
            LogIndex(9),
            &entries(2..=2, 2),
        );
        assert_eq!(result, Ok(Some(LogIndex(2))));
        assert_eq!(log.last_index(), LogIndex(2));
        assert_eq!(log.term(LogIndex(2)), Ok(Term(2)));
        assert_eq!(log.committed, LogIndex(2));
        assert_eq!(log.durable_last_index(), LogIndex(1));
    }

    // Stale, already-present entries must not truncate newer ones (reordered messages).
    #[test]
    fn maybe_append_of_present_entries_keeps_the_tail() {
        let mut log = log_with(&entries(1..=3, 1));
        let result = log.maybe_append(
            NodeId(2),
            LogIndex(0),
            Term(0),
            LogIndex(0),
            &entries(1..=2, 1),
        );
        assert_eq!(result, Ok(Some(LogIndex(2))));
        assert_eq!(log.last_index(), LogIndex(3));
    }

    // §5.3: the leader's commit index covers only what this Append proved to match. A
    // follower whose log runs past the Append's entries (a stale tail of an older term)
    // must not commit that tail. (No simulator seed reached this; kept as a unit rule.)
    #[test]
    fn maybe_append_commits_only_up_to_the_last_new_entry() {
        let mut log = log_with(&entries(1..=4, 1));
        let result = log.maybe_append(
            NodeId(2),
            LogIndex(1),
            Term(1),
            LogIndex(9),
            &entries(2..=2, 1),
        );
        assert_eq!(result, Ok(Some(LogIndex(2))));
        assert_eq!(
            log.last_index(),
            LogIndex(4),
            "matching entries keep the tail"
        );
        assert_eq!(log.committed, LogIndex(2));
    }

    // A peer asking to overwrite a committed entry gets an error, never a panic.
    #[test]
    fn maybe_append_below_commit_is_an_error() {
        let mut log = log_with(&entries(1..=3, 1));
        log.commit_to(LogIndex(3));
        let result = log.maybe_append(
            NodeId(2),
            LogIndex(1),
            Term(1),
            LogIndex(3),
            &entries(2..=2, 2),
        );
        assert!(matches!(result, Err(RaftError::ConflictBelowCommit { .. })));
    }

    // §5.4.2: a leader never commits an entry of an older term by counting replicas.
    #[test]
    fn maybe_commit_needs_an_entry_of_the_current_term() {
        let mut log = log_with(&entries(1..=3, 1));
        assert!(!log.maybe_commit(LogIndex(3), Term(2)));
        assert!(log.maybe_commit(LogIndex(3), Term(1)));
        assert_eq!(log.committed, LogIndex(3));
    }

    // Fast back-off skips whole terms that cannot match.
    #[test]
    fn find_conflict_by_term_skips_higher_terms() {
        let mut stored = entries(1..=2, 1);
        stored.extend(entries(3..=6, 3));
        let log = log_with(&stored);
        assert_eq!(
            log.find_conflict_by_term(LogIndex(6), Term(2)),
            (LogIndex(2), Term(1))
        );
        assert_eq!(
            log.find_conflict_by_term(LogIndex(9), Term(3)),
            (LogIndex(6), Term(3))
        );
        assert_eq!(
            log.find_conflict_by_term(LogIndex(6), Term(0)),
            (LogIndex(0), Term(0))
        );
    }

    // Committed entries go out only once durable, and only once each.
    #[test]
    fn committed_entries_wait_for_durability() {
        let mut log = log_with(&entries(1..=2, 1));
        log.append(&entries(3..=4, 1));
        log.commit_to(LogIndex(4));
        let next = log.next_committed_entries(u64::MAX);
        assert_eq!(next.len(), 2);
        log.applying = LogIndex(2);
        assert!(!log.has_next_committed_entries());
        // The server persists 3..=4 into storage, then Raft learns they are durable.
        log.storage.append(&entries(3..=4, 1)).expect("contiguous");
        log.unstable.stable_to(LogIndex(4), Term(1));
        let next: Vec<u64> = log
            .next_committed_entries(u64::MAX)
            .iter()
            .map(|e| e.index.0)
            .collect();
        assert_eq!(next, vec![3, 4]);
    }

    // §5.4.1 election restriction.
    #[test]
    fn is_up_to_date_compares_term_then_index() {
        let log = log_with(&entries(1..=3, 2));
        assert!(log.is_up_to_date(LogIndex(1), Term(3)));
        assert!(log.is_up_to_date(LogIndex(3), Term(2)));
        assert!(!log.is_up_to_date(LogIndex(2), Term(2)));
        assert!(!log.is_up_to_date(LogIndex(9), Term(1)));
    }

    // Reads spanning storage and the unstable tail return one contiguous run.
    #[test]
    fn slice_spans_storage_and_unstable() {
        let mut log = log_with(&entries(1..=3, 1));
        log.append(&entries(4..=5, 2));
        let got = log.slice(LogIndex(2), LogIndex(6), None).expect("in range");
        let indexes: Vec<u64> = got.iter().map(|e| e.index.0).collect();
        assert_eq!(indexes, vec![2, 3, 4, 5]);
        assert_eq!(
            log.slice(LogIndex(0), LogIndex(2), None),
            Err(StorageError::Compacted)
        );
        assert_eq!(
            log.slice(LogIndex(2), LogIndex(7), None),
            Err(StorageError::Unavailable)
        );
    }
}
