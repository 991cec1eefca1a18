//! `MvccStore`: the single writer's handle on the MVCC store (etcd's `store`): begins write
//! transactions, hands out read views, compacts.

use super::compact::{CompactOutcome, CompactionJob};
use super::read_view::ReadView;
use super::state::StoreState;
use super::write_txn::WriteTxn;
use crate::error::{MvccError, StoreCheckError};

/// The MVCC store; see the crate docs for the model and the contract.
#[derive(Default)]
pub struct MvccStore {
    state: StoreState,
}

impl MvccStore {
    /// An empty store at revision 1 (as etcd starts).
    pub fn new() -> Self {
        MvccStore {
            state: StoreState::new(),
        }
    }

    /// Revision of the last committed write transaction.
    pub fn revision(&self) -> i64 {
        self.state.revision
    }

    /// Revision of the last compaction; 0 if never compacted.
    pub fn compacted_revision(&self) -> i64 {
        self.state.compacted_revision()
    }

    /// Keys in the revision index: live keys, and deleted keys whose history compaction has not
    /// yet removed.
    pub fn key_count(&self) -> usize {
        self.state.index.tree.len()
    }

    /// Stored revisions (records), puts and deletes.
    pub fn record_count(&self) -> usize {
        self.state.records.len()
    }

    /// An O(1) snapshot of the committed state.
    pub fn read_view(&self) -> ReadView {
        ReadView::new(self.state.clone())
    }

    /// Begins the (only) write transaction.
    pub fn write_txn(&mut self) -> WriteTxn<'_> {
        WriteTxn::new(&mut self.state)
    }

    /// etcd's Compact. `revision <= compacted` -> `Compacted`; `revision > current` ->
    /// `FutureRevision`. Before the first compaction, as etcd (whose initial compacted revision
    /// is -1), 0 is accepted and a negative revision is `Compacted`. Removes every revision
    /// superseded at or before `revision` except the newest of each live key; keys whose newest
    /// such revision is a delete leave the store. Read views taken earlier keep their data.
    pub fn compact(&mut self, revision: i64) -> Result<CompactOutcome, MvccError> {
        let compacted = self.state.compacted.unwrap_or(-1);
        if revision <= compacted {
            let compacted_revision = self.state.compacted_revision();
            return Err(MvccError::Compacted { compacted_revision });
        }
        if revision > self.state.revision {
            let current = self.state.revision;
            return Err(MvccError::FutureRevision {
                requested: revision,
                current,
            });
        }
        let _span = tracing::info_span!("mvcc.compact", compact_revision = revision).entered();
        self.state.compacted = Some(revision);
        let mut job = CompactionJob::new(revision);
        // Bounded: each step visits BATCH_KEYS_MAX keys, so this ends after key_count / batch.
        while !job.step(&mut self.state, CompactionJob::BATCH_KEYS_MAX) {}
        let outcome = job.outcome();
        tracing::info!(
            revisions_removed = outcome.revisions_removed_count,
            keys_removed = outcome.keys_removed_count,
            "finished compaction"
        );
        Ok(outcome)
    }

    /// Verifies every invariant of the store (trees, key indexes, index <-> records, versions,
    /// compaction); O(n), for tests and debugging. An error is a bug in this crate.
    pub fn check(&self) -> Result<(), StoreCheckError> {
        self.state.check()
    }
}

impl std::fmt::Debug for MvccStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MvccStore")
            .field("revision", &self.state.revision)
            .field("compacted_revision", &self.state.compacted_revision())
            .field("keys", &self.key_count())
            .field("records", &self.record_count())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::{KeyRange, RangeOptions};

    fn key(i: u32) -> Bytes {
        Bytes::from(format!("key-{i:03}"))
    }

    /// 40 keys, each put three times; every third deleted; one revision per transaction.
    fn history() -> MvccStore {
        let mut store = MvccStore::new();
        for round in 0..3u32 {
            for i in 0..40 {
                let mut txn = store.write_txn();
                txn.put(key(i), Bytes::from(format!("{round}")), 0);
                txn.commit();
            }
        }
        for i in (0..40).step_by(3) {
            let mut txn = store.write_txn();
            txn.delete_range(&KeyRange::Key(key(i)));
            txn.commit();
        }
        store
    }

    fn writes(store: &mut MvccStore, step: u32) {
        let mut txn = store.write_txn();
        txn.put(key(step % 40), Bytes::from(format!("w{step}")), 0);
        txn.delete_range(&KeyRange::Key(key((step * 7 + 1) % 40)));
        txn.commit();
    }

    // Guards the design claim in compact.rs: a compaction can stop after any batch of keys and
    // resume later with writes in between, ending where compacting at once and then writing
    // ends, and readers at or above the compacted revision see no difference at any point.
    #[test]
    fn compaction_in_one_key_steps_with_writes_between_matches_compacting_at_once() {
        let at = 100;
        let mut stepped = history();
        let before = stepped.read_view();
        stepped.state.compacted = Some(at);
        let mut job = CompactionJob::new(at);
        let mut step = 0;
        while !job.step(&mut stepped.state, 1) {
            writes(&mut stepped, step);
            step += 1;
            // Invariant 4 holds only once the job is done: check the reads instead.
            let all = KeyRange::FromKey(Bytes::new());
            let opts = RangeOptions {
                revision: at,
                ..RangeOptions::default()
            };
            assert_eq!(
                stepped.read_view().range(&all, &opts).map(|r| r.kvs),
                before.range(&all, &opts).map(|r| r.kvs)
            );
        }
        assert_eq!(step, 40, "one step per key, then one that finds none left");

        let mut at_once = history();
        let outcome = at_once.compact(at).expect("compact");
        for s in 0..step {
            writes(&mut at_once, s);
        }
        stepped.check().expect("consistent once the job is done");
        at_once.check().expect("consistent");
        assert_eq!(job.outcome(), outcome);
        assert_eq!(
            (stepped.key_count(), stepped.record_count()),
            (at_once.key_count(), at_once.record_count())
        );
        let (a, b) = (stepped.read_view(), at_once.read_view());
        let all = KeyRange::FromKey(Bytes::new());
        for revision in at..=stepped.revision() {
            let opts = RangeOptions {
                revision,
                ..RangeOptions::default()
            };
            assert_eq!(a.range(&all, &opts), b.range(&all, &opts), "at {revision}");
        }
        assert_eq!(
            a.events(&all, at, i64::MAX, 0, true),
            b.events(&all, at, i64::MAX, 0, true)
        );
    }
}
