//! Oracle test: `MvccStore` against a dumb model — a `Vec` of every change ever made
//! (key, revision, value or tombstone, lease) plus the compaction revision — over random
//! multi-op transactions (puts, range deletes, reads that see the transaction's own writes),
//! commits and rollbacks, compactions (valid and not; at once, or started and advanced in
//! steps between other operations), checkpoints, restarts (the state of the last checkpoint
//! comes back, a running compaction resumes), defragmentation in steps, reads at random
//! revisions from current and older read views, and watch history with and without prev_kv.
//! Every answer must be equal, errors included; the store's own consistency check runs along
//! the way. Pages are 512 bytes so that trees are deep.
//!
//! The model derives everything from the full history: a read at R takes each key's newest
//! change <= R; versions count puts since the key's last delete. Compaction at C only hides
//! history: a change at or below C survives iff it is its key's newest change <= C and a put.
//!
//! proptest prints the failing case (and records it under `proptest-regressions/`). The seeded
//! soak test prints its seed (rerun: `KEEL_TEST_SEED=<seed>`; longer: `KEEL_LONG_TESTS=1`).

use std::collections::BTreeSet;

use std::sync::Arc;

use bytes::Bytes;
use keel_btree::{
    DefragProgress, Event, EventKind, KeyRange, KeyValue, MemPageIo, MvccError, MvccStore,
    RangeOptions, RangeResult, ReadView, Revision, StoreOptions,
};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRng, TestRunner};

/// Short keys (stored inline by the index) and long ones (over 23 bytes, stored as `Bytes`)
/// sharing a prefix, interleaved in key order.
const KEYS: &[&[u8]] = &[
    b"a",
    b"ab",
    b"b",
    b"b\0",
    b"c",
    b"c/registry/pods/default/x",
    b"c/registry/pods/default/y",
    b"cc",
    b"d",
    b"e",
];
const BOUNDS: &[&[u8]] = &[
    b"",
    b"a",
    b"ab",
    b"b",
    b"b\0",
    b"c",
    b"c/registry/pods/default/y",
    b"d",
    b"e",
    b"f",
    b"z",
];

#[derive(Debug, Clone)]
enum TxnOp {
    Put {
        key: Bytes,
        value: Bytes,
        lease: i64,
    },
    Delete(KeyRange),
    Range {
        range: KeyRange,
        limit: usize,
        revision_pick: u16,
        count_only: bool,
    },
}

#[derive(Debug, Clone)]
enum Op {
    Txn {
        ops: Vec<TxnOp>,
        commit: bool,
    },
    Range {
        view_pick: u8,
        range: KeyRange,
        limit: usize,
        revision_pick: u16,
        count_only: bool,
    },
    Events {
        view_pick: u8,
        range: KeyRange,
        start_pick: u16,
        end_pick: u16,
        max: usize,
        prev: bool,
    },
    Compact {
        revision_pick: u16,
    },
    CompactStart {
        revision_pick: u16,
    },
    CompactStep(usize),
    Checkpoint,
    Restart,
    DefragStart,
    DefragStep(usize),
    TakeView,
}

fn key() -> impl Strategy<Value = Bytes> {
    prop::sample::select(KEYS).prop_map(Bytes::from_static)
}

fn bound() -> impl Strategy<Value = Bytes> {
    prop::sample::select(BOUNDS).prop_map(Bytes::from_static)
}

fn key_range() -> impl Strategy<Value = KeyRange> {
    prop_oneof![
        3 => key().prop_map(KeyRange::Key),
        3 => (bound(), bound()).prop_map(|(start, end)| KeyRange::Range { start, end }),
        1 => bound().prop_map(KeyRange::FromKey),
    ]
}

fn value() -> impl Strategy<Value = Bytes> {
    prop::collection::vec(any::<u8>(), 0..4).prop_map(Bytes::from)
}

fn txn_op() -> impl Strategy<Value = TxnOp> {
    prop_oneof![
        6 => (key(), value(), 0..3i64)
            .prop_map(|(key, value, lease)| TxnOp::Put { key, value, lease }),
        2 => key_range().prop_map(TxnOp::Delete),
        2 => (key_range(), 0..4usize, any::<u16>(), any::<bool>()).prop_map(
            |(range, limit, revision_pick, count_only)|
                TxnOp::Range { range, limit, revision_pick, count_only }
        ),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => (prop::collection::vec(txn_op(), 0..5), prop::bool::weighted(0.9))
            .prop_map(|(ops, commit)| Op::Txn { ops, commit }),
        4 => (any::<u8>(), key_range(), 0..4usize, any::<u16>(), any::<bool>()).prop_map(
            |(view_pick, range, limit, revision_pick, count_only)|
                Op::Range { view_pick, range, limit, revision_pick, count_only }
        ),
        3 => (any::<u8>(), key_range(), any::<u16>(), any::<u16>(), 0..5usize, any::<bool>())
            .prop_map(|(view_pick, range, start_pick, end_pick, max, prev)| {
                Op::Events { view_pick, range, start_pick, end_pick, max, prev }
            }),
        1 => any::<u16>().prop_map(|revision_pick| Op::Compact { revision_pick }),
        1 => any::<u16>().prop_map(|revision_pick| Op::CompactStart { revision_pick }),
        2 => (1usize..4).prop_map(Op::CompactStep),
        2 => Just(Op::Checkpoint),
        1 => Just(Op::Restart),
        1 => Just(Op::DefragStart),
        2 => (1usize..40).prop_map(Op::DefragStep),
        1 => Just(Op::TakeView),
    ]
}

/// A revision in `-1..=current + 2`: invalid, compacted, current and future ones included.
fn pick_revision(pick: u16, current: i64) -> i64 {
    i64::from(pick) % (current + 4) - 1
}

#[derive(Debug, Clone)]
struct Change {
    key: Bytes,
    revision: Revision,
    /// `None`: a delete.
    value: Option<Bytes>,
    lease: i64,
}

/// What a reader sees: changes up to `revision`, history hidden by compaction at `compacted`.
#[derive(Debug, Clone, Copy)]
struct Horizon {
    revision: i64,
    compacted: Option<i64>,
}

#[derive(Default, Clone)]
struct Model {
    changes: Vec<Change>,
}

impl Model {
    /// Index of `key`'s newest change with main revision <= `at`.
    fn newest_at(&self, key: &[u8], at: i64) -> Option<usize> {
        (0..self.changes.len())
            .rev()
            .find(|&i| self.changes[i].key == key && self.changes[i].revision.main <= at)
    }

    /// The key-value a put wrote: its generation starts after the key's previous delete.
    fn kv_of(&self, i: usize) -> KeyValue {
        let change = &self.changes[i];
        let value = change.value.clone().expect("kv_of a put");
        let mut version = 0;
        let mut create_revision = change.revision.main;
        for earlier in self.changes[..=i]
            .iter()
            .rev()
            .filter(|c| c.key == change.key)
        {
            if earlier.value.is_none() {
                break;
            }
            version += 1;
            create_revision = earlier.revision.main;
        }
        KeyValue {
            key: change.key.clone(),
            create_revision,
            mod_revision: change.revision.main,
            version,
            value,
            lease: change.lease,
        }
    }

    fn get(&self, key: &[u8], at: i64) -> Option<KeyValue> {
        let i = self.newest_at(key, at)?;
        self.changes[i].value.is_some().then(|| self.kv_of(i))
    }

    fn keys(&self) -> BTreeSet<Bytes> {
        self.changes.iter().map(|c| c.key.clone()).collect()
    }

    fn range(
        &self,
        range: &KeyRange,
        opts: &RangeOptions,
        horizon: Horizon,
    ) -> Result<RangeResult, MvccError> {
        let current = horizon.revision;
        if opts.revision > current {
            return Err(MvccError::FutureRevision {
                requested: opts.revision,
                current,
            });
        }
        let at = if opts.revision <= 0 {
            current
        } else {
            opts.revision
        };
        if let Some(compacted) = horizon.compacted.filter(|&c| at < c) {
            return Err(MvccError::Compacted {
                compacted_revision: compacted,
            });
        }
        let all: Vec<KeyValue> = self
            .keys()
            .iter()
            .filter(|k| range.contains(k))
            .filter_map(|k| self.get(k, at))
            .collect();
        let count = all.len();
        let limit = if opts.limit == 0 {
            usize::MAX
        } else {
            opts.limit
        };
        let kvs = if opts.count_only {
            Vec::new()
        } else {
            all.into_iter().take(limit).collect()
        };
        Ok(RangeResult {
            kvs,
            count,
            revision: current,
        })
    }

    fn removed(&self, i: usize, compacted: Option<i64>) -> bool {
        let Some(compacted) = compacted else {
            return false;
        };
        let change = &self.changes[i];
        change.revision.main <= compacted
            && !(self.newest_at(&change.key, compacted) == Some(i) && change.value.is_some())
    }

    fn event(&self, i: usize, with_prev_kv: bool, compacted: Option<i64>) -> Event {
        let change = &self.changes[i];
        let (kind, kv) = match change.value {
            Some(_) => (EventKind::Put, self.kv_of(i)),
            None => (
                EventKind::Delete,
                KeyValue {
                    key: change.key.clone(),
                    mod_revision: change.revision.main,
                    ..KeyValue::default()
                },
            ),
        };
        let prev_kv = with_prev_kv
            .then(|| (0..i).rev().find(|&j| self.changes[j].key == change.key))
            .flatten()
            .filter(|&j| self.changes[j].value.is_some() && !self.removed(j, compacted))
            .map(|j| self.kv_of(j));
        Event { kind, kv, prev_kv }
    }

    fn events(
        &self,
        range: &KeyRange,
        (start, end): (i64, i64),
        max: usize,
        with_prev_kv: bool,
        horizon: Horizon,
    ) -> Result<Vec<Event>, MvccError> {
        if let Some(compacted) = horizon.compacted.filter(|&c| start < c) {
            return Err(MvccError::Compacted {
                compacted_revision: compacted,
            });
        }
        let end = end.min(horizon.revision + 1);
        let max = if max == 0 { usize::MAX } else { max };
        Ok((0..self.changes.len())
            .filter(|&i| {
                let c = &self.changes[i];
                (start..end).contains(&c.revision.main)
                    && range.contains(&c.key)
                    && !self.removed(i, horizon.compacted)
            })
            .take(max)
            .map(|i| self.event(i, with_prev_kv, horizon.compacted))
            .collect())
    }

    fn stored(&self, compacted: Option<i64>) -> (usize, usize) {
        let kept: Vec<usize> = (0..self.changes.len())
            .filter(|&i| !self.removed(i, compacted))
            .collect();
        let keys: BTreeSet<&Bytes> = kept.iter().map(|&i| &self.changes[i].key).collect();
        (kept.len(), keys.len())
    }
}

/// What the last checkpoint made durable.
#[derive(Clone)]
struct Durable {
    changes: Vec<Change>,
    revision: i64,
    compacted: Option<i64>,
    compaction_running: bool,
}

const FILE: &str = "mvcc.db";

fn options() -> StoreOptions {
    StoreOptions {
        page_size_bytes: 512,
        growth_bytes_min: 4096,
        ..StoreOptions::default()
    }
}

struct Harness {
    io: MemPageIo,
    store: MvccStore,
    model: Model,
    revision: i64,
    compacted: Option<i64>,
    /// Whether a stepped compaction runs (the stored counts match the model only when not).
    compaction_running: bool,
    durable: Durable,
    applied_index: u64,
    /// Saved views, each with the history it was taken from (a restart rewrites history
    /// after the last checkpoint; old views keep answering from theirs).
    views: Vec<(ReadView, Horizon, Arc<Model>)>,
}

impl Harness {
    fn new() -> Self {
        let io = MemPageIo::new("/test");
        let (store, _) =
            MvccStore::open_with(Arc::new(io.clone()), FILE, &options()).expect("create");
        Harness {
            io,
            store,
            model: Model::default(),
            revision: 1,
            compacted: None,
            compaction_running: false,
            durable: Durable {
                changes: Vec::new(),
                revision: 1,
                compacted: None,
                compaction_running: false,
            },
            applied_index: 0,
            views: Vec::new(),
        }
    }

    fn horizon(&self) -> Horizon {
        Horizon {
            revision: self.revision,
            compacted: self.compacted,
        }
    }

    /// `pick` chooses a saved view, or (often) a fresh view of the store.
    fn view(&self, pick: u8) -> (ReadView, Horizon, Arc<Model>) {
        let saved = usize::from(pick) % (self.views.len() + 2);
        match self.views.get(saved) {
            Some((view, horizon, model)) => (view.clone(), *horizon, Arc::clone(model)),
            None => (
                self.store.read_view(),
                self.horizon(),
                Arc::new(self.model.clone()),
            ),
        }
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::Txn { ops, commit } => self.txn(ops, *commit),
            Op::Range {
                view_pick,
                range,
                limit,
                revision_pick,
                count_only,
            } => {
                let (view, horizon, model) = self.view(*view_pick);
                let revision = pick_revision(*revision_pick, horizon.revision);
                let opts = RangeOptions {
                    limit: *limit,
                    revision,
                    count_only: *count_only,
                };
                let want = model.range(range, &opts, horizon);
                assert_eq!(
                    view.range(range, &opts),
                    want,
                    "view range {range:?} {opts:?}"
                );
            }
            Op::Events {
                view_pick,
                range,
                start_pick,
                end_pick,
                max,
                prev,
            } => {
                let (view, horizon, model) = self.view(*view_pick);
                let start = pick_revision(*start_pick, horizon.revision);
                let end = pick_revision(*end_pick, horizon.revision);
                let want = model.events(range, (start, end), *max, *prev, horizon);
                let got = view.events(range, start, end, *max, *prev);
                assert_eq!(
                    got, want,
                    "events {range:?} {start}..{end} max {max} prev {prev}"
                );
            }
            Op::Compact { revision_pick } => {
                self.compact(pick_revision(*revision_pick, self.revision))
            }
            Op::CompactStart { revision_pick } => {
                self.compact_start(pick_revision(*revision_pick, self.revision))
            }
            Op::CompactStep(keys) => {
                let progress = self.store.compact_step(*keys).expect("compact step");
                if progress.done {
                    self.compaction_running = false;
                }
                assert_eq!(
                    self.store.compaction_running().is_some(),
                    self.compaction_running
                );
            }
            Op::Checkpoint => {
                self.applied_index += 1;
                self.store
                    .checkpoint(self.applied_index, b"meta")
                    .expect("checkpoint");
                self.durable = Durable {
                    changes: self.model.changes.clone(),
                    revision: self.revision,
                    compacted: self.compacted,
                    compaction_running: self.compaction_running,
                };
            }
            Op::Restart => {
                let io = self.io.restart_image();
                let (store, opened) =
                    MvccStore::open_with(Arc::new(io.clone()), FILE, &options()).expect("reopen");
                assert_eq!(opened.applied_index, self.store.applied_index());
                self.io = io;
                self.store = store;
                self.model.changes = self.durable.changes.clone();
                self.revision = self.durable.revision;
                self.compacted = self.durable.compacted;
                self.compaction_running = self.durable.compaction_running;
                assert_eq!(
                    opened.compaction_pending.is_some(),
                    self.compaction_running,
                    "a running compaction resumes"
                );
                self.check();
            }
            Op::DefragStart => {
                self.store.start_defrag().expect("start defrag");
            }
            Op::DefragStep(budget) => {
                let progress = self.store.defrag_step(*budget).expect("defrag step");
                if matches!(progress, DefragProgress::Swapped { .. }) {
                    self.check();
                }
            }
            Op::TakeView => {
                let view = self.store.read_view();
                assert_eq!(view.revision(), self.revision);
                assert_eq!(view.compacted_revision(), self.compacted.unwrap_or(0));
                self.views
                    .push((view, self.horizon(), Arc::new(self.model.clone())));
            }
        }
        assert_eq!(self.store.revision(), self.revision);
        assert_eq!(self.store.compacted_revision(), self.compacted.unwrap_or(0));
        if !self.compaction_running {
            let (records, keys) = self.model.stored(self.compacted);
            assert_eq!(
                (self.store.record_count(), self.store.key_count()),
                (records, keys)
            );
        }
    }

    fn compact_start(&mut self, revision: i64) {
        let got = self.store.start_compaction(revision);
        let compacted_revision = self.compacted.unwrap_or(0);
        if revision <= self.compacted.unwrap_or(-1) {
            assert_eq!(got, Err(MvccError::Compacted { compacted_revision }));
            return;
        }
        if revision > self.revision {
            assert_eq!(
                got,
                Err(MvccError::FutureRevision {
                    requested: revision,
                    current: self.revision
                })
            );
            return;
        }
        got.expect("a valid compaction starts");
        self.compacted = Some(revision);
        self.compaction_running = true;
    }

    fn txn(&mut self, ops: &[TxnOp], commit: bool) {
        let begin = self.revision;
        let history_len = self.model.changes.len();
        let mut want_events = Vec::new();
        let mut txn = self.store.write_txn();
        for op in ops {
            let sub = i64::try_from(want_events.len()).expect("few changes");
            let revision = Revision::new(begin + 1, sub);
            match op {
                TxnOp::Put { key, value, lease } => {
                    let previous = self.model.get(key, i64::MAX);
                    let got = txn.put(key.clone(), value.clone(), *lease);
                    assert_eq!(got, previous, "put {key:?} returns the previous version");
                    let change = Change {
                        key: key.clone(),
                        revision,
                        value: Some(value.clone()),
                        lease: *lease,
                    };
                    self.model.changes.push(change);
                    let kv = self.model.kv_of(self.model.changes.len() - 1);
                    want_events.push(Event {
                        kind: EventKind::Put,
                        kv,
                        prev_kv: previous,
                    });
                }
                TxnOp::Delete(range) => {
                    let live: Vec<KeyValue> = self
                        .model
                        .keys()
                        .iter()
                        .filter(|k| range.contains(k))
                        .filter_map(|k| self.model.get(k, i64::MAX))
                        .collect();
                    assert_eq!(txn.delete_range(range), live, "delete_range {range:?}");
                    for (i, previous) in live.into_iter().enumerate() {
                        let revision =
                            Revision::new(begin + 1, sub + i64::try_from(i).expect("few"));
                        let key = previous.key.clone();
                        self.model.changes.push(Change {
                            key: key.clone(),
                            revision,
                            value: None,
                            lease: 0,
                        });
                        let kv = KeyValue {
                            key,
                            mod_revision: revision.main,
                            ..KeyValue::default()
                        };
                        want_events.push(Event {
                            kind: EventKind::Delete,
                            kv,
                            prev_kv: Some(previous),
                        });
                    }
                }
                TxnOp::Range {
                    range,
                    limit,
                    revision_pick,
                    count_only,
                } => {
                    let current = begin + i64::from(!want_events.is_empty());
                    let revision = pick_revision(*revision_pick, current);
                    let opts = RangeOptions {
                        limit: *limit,
                        revision,
                        count_only: *count_only,
                    };
                    let horizon = Horizon {
                        revision: current,
                        compacted: self.compacted,
                    };
                    let want = self.model.range(range, &opts, horizon);
                    assert_eq!(
                        txn.range(range, &opts),
                        want,
                        "txn range {range:?} {opts:?}"
                    );
                }
            }
        }
        if commit {
            let committed = txn.commit();
            if !want_events.is_empty() {
                self.revision = begin + 1;
            }
            assert_eq!(committed.revision, self.revision);
            assert_eq!(committed.events, want_events);
        } else {
            drop(txn);
            self.model.changes.truncate(history_len);
        }
    }

    fn compact(&mut self, revision: i64) {
        if self.compaction_running {
            // Finish the running one first, so the counts below compare.
            while !self.store.compact_step(1000).expect("step").done {}
            self.compaction_running = false;
        }
        let before = self.model.stored(self.compacted);
        let got = self.store.compact(revision);
        let compacted_revision = self.compacted.unwrap_or(0);
        if revision <= self.compacted.unwrap_or(-1) {
            assert_eq!(got, Err(MvccError::Compacted { compacted_revision }));
            return;
        }
        if revision > self.revision {
            assert_eq!(
                got,
                Err(MvccError::FutureRevision {
                    requested: revision,
                    current: self.revision
                })
            );
            return;
        }
        self.compacted = Some(revision);
        let after = self.model.stored(self.compacted);
        let outcome = got.expect("a valid compaction succeeds");
        assert_eq!(outcome.compacted_revision, revision);
        assert_eq!(outcome.revisions_removed_count, before.0 - after.0);
        assert_eq!(outcome.keys_removed_count, before.1 - after.1);
    }

    fn check(&self) {
        self.store.check().expect("store invariants hold");
    }
}

fn run(ops: &[Op]) {
    let mut harness = Harness::new();
    for (i, op) in ops.iter().enumerate() {
        harness.apply(op);
        if i % 8 == 0 {
            harness.check();
        }
    }
    harness.check();
    // Old views answer as of their time, after everything that followed.
    for (view, horizon, model) in &harness.views {
        let opts = RangeOptions::default();
        let all = KeyRange::FromKey(Bytes::new());
        assert_eq!(view.range(&all, &opts), model.range(&all, &opts, *horizon));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]

    #[test]
    fn mvcc_store_matches_model(ops in prop::collection::vec(op(), 1..200)) {
        run(&ops);
    }
}

fn seed() -> u64 {
    match std::env::var("KEEL_TEST_SEED") {
        Ok(text) => text.parse().expect("KEEL_TEST_SEED is a u64"),
        Err(_) => 0x6d76_6363_6d6f_6465,
    }
}

/// Longer histories than proptest's cases (many compactions over deep generations), from one
/// printed seed.
#[test]
fn long_histories_match_model() {
    let seed = seed();
    println!("long_histories_match_model seed={seed} (rerun: KEEL_TEST_SEED={seed})");
    let long = std::env::var("KEEL_LONG_TESTS").is_ok_and(|v| v == "1");
    let (runs, ops_per_run) = if long { (200, 1500) } else { (8, 600) };
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(proptest::test_runner::RngAlgorithm::ChaCha, &bytes),
    );
    let strategy = prop::collection::vec(op(), ops_per_run);
    for _ in 0..runs {
        let ops = strategy
            .new_tree(&mut runner)
            .expect("strategy generates")
            .current();
        run(&ops);
    }
}
