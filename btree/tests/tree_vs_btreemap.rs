//! Oracle test of the page file's B+tree, through the bucket API, against
//! `std::collections::BTreeMap`: random puts, deletes, gets and ranges in transactions that
//! commit or roll back, checkpoints (whole, or begun with writes going on before the finish),
//! restarts (the state of the last checkpoint comes back), defragmentation driven in steps
//! between other operations, and views taken along the way that must keep answering as of
//! their time. 512-byte pages make trees deep; keys and values long enough to become blobs mix
//! with short ones. After every restart the store check also verifies the page accounting
//! (every page used once or free).
//!
//! proptest prints the failing case; the seeded soak test prints its seed (rerun:
//! `KEEL_TEST_SEED=<seed>`; longer: `KEEL_LONG_TESTS=1`).

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use keel_btree::{
    Bucket, CheckpointJob, DefragProgress, KeyRange, MemPageIo, MvccStore, ReadView, StoreOptions,
};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRng, TestRunner};

type Model = BTreeMap<Bytes, Bytes>;

const BUCKET: Bucket = Bucket::Lease;
const FILE: &str = "tree.db";

#[derive(Debug, Clone)]
enum TxnOp {
    Put(Bytes, Bytes),
    Delete(Bytes),
    Get(Bytes),
    Range(Bytes, Bytes, usize),
}

#[derive(Debug, Clone)]
enum Op {
    Txn {
        ops: Vec<TxnOp>,
        commit: bool,
    },
    Checkpoint,
    /// Begin a checkpoint, run the given txns, then finish it.
    CheckpointAround(Vec<TxnOp>),
    Restart,
    DefragStart,
    DefragStep(usize),
    TakeView,
    CheckView(u8),
}

/// Keys share prefixes (so separators compare long common parts) and come in three lengths:
/// short, medium, and over the 512-byte page's inline limit (blob keys).
fn key() -> impl Strategy<Value = Bytes> {
    (0u16..400, prop::sample::select(vec![0usize, 10, 140])).prop_map(|(n, pad)| {
        let mut key = format!("k/{:04}", n * 7 % 400).into_bytes();
        key.extend(std::iter::repeat_n(b'x', pad));
        Bytes::from(key)
    })
}

fn value() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        6 => (0usize..40, any::<u8>()).prop_map(|(len, b)| Bytes::from(vec![b; len])),
        1 => (100usize..3000, any::<u8>()).prop_map(|(len, b)| Bytes::from(vec![b; len])),
    ]
}

fn txn_op() -> impl Strategy<Value = TxnOp> {
    prop_oneof![
        6 => (key(), value()).prop_map(|(k, v)| TxnOp::Put(k, v)),
        3 => key().prop_map(TxnOp::Delete),
        1 => key().prop_map(TxnOp::Get),
        1 => (key(), key(), 0usize..5).prop_map(|(a, b, limit)| TxnOp::Range(a, b, limit)),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        20 => (prop::collection::vec(txn_op(), 1..12), prop::bool::weighted(0.9))
            .prop_map(|(ops, commit)| Op::Txn { ops, commit }),
        3 => Just(Op::Checkpoint),
        1 => prop::collection::vec(txn_op(), 1..6).prop_map(Op::CheckpointAround),
        1 => Just(Op::Restart),
        1 => Just(Op::DefragStart),
        3 => (1usize..200).prop_map(Op::DefragStep),
        1 => Just(Op::TakeView),
        2 => any::<u8>().prop_map(Op::CheckView),
    ]
}

fn model_range(model: &Model, start: &Bytes, end: &Bytes, limit: usize) -> Vec<(Bytes, Bytes)> {
    if end <= start {
        return Vec::new();
    }
    let limit = if limit == 0 { usize::MAX } else { limit };
    model
        .range(start.clone()..end.clone())
        .take(limit)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// What a run exercised, so the soak test can show (and assert) its coverage.
#[derive(Debug, Default)]
struct Coverage {
    checkpoints: usize,
    restarts: usize,
    swaps: usize,
    keys_max: usize,
    size_bytes_max: u64,
}

struct Harness {
    coverage: Coverage,
    io: MemPageIo,
    store: MvccStore,
    model: Model,
    /// The model as of the last durable checkpoint.
    durable: Model,
    applied_index: u64,
    views: Vec<(ReadView, Model)>,
}

fn options() -> StoreOptions {
    StoreOptions {
        page_size_bytes: 512,
        growth_bytes_min: 4096,
        ..StoreOptions::default()
    }
}

impl Harness {
    fn new() -> Self {
        let io = MemPageIo::new("/test");
        let (store, opened) =
            MvccStore::open_with(Arc::new(io.clone()), FILE, &options()).expect("create");
        assert!(opened.created);
        Harness {
            coverage: Coverage::default(),
            io,
            store,
            model: Model::new(),
            durable: Model::new(),
            applied_index: 0,
            views: Vec::new(),
        }
    }

    fn txn(&mut self, ops: &[TxnOp], commit: bool) {
        let mut model = self.model.clone();
        let mut txn = self.store.write_txn();
        for op in ops {
            match op {
                TxnOp::Put(k, v) => {
                    txn.bucket_put(BUCKET, k.clone(), v.clone()).expect("put");
                    model.insert(k.clone(), v.clone());
                }
                TxnOp::Delete(k) => {
                    let removed = txn.bucket_delete(BUCKET, k).expect("delete");
                    assert_eq!(removed, model.remove(k).is_some(), "delete {k:?}");
                }
                TxnOp::Get(k) => {
                    let got = txn.bucket_get(BUCKET, k).expect("get");
                    assert_eq!(got.as_ref(), model.get(k), "get {k:?}");
                }
                TxnOp::Range(a, b, limit) => {
                    let range = KeyRange::Range {
                        start: a.clone(),
                        end: b.clone(),
                    };
                    let got = txn.bucket_range(BUCKET, &range, *limit).expect("range");
                    assert_eq!(got, model_range(&model, a, b, *limit), "range {a:?}..{b:?}");
                }
            }
        }
        if commit {
            txn.try_commit().expect("commit");
            self.model = model;
        }
    }

    fn checkpoint_begin(&mut self) -> (CheckpointJob, Model) {
        self.applied_index += 1;
        let metadata = self.applied_index.to_le_bytes();
        let job = self
            .store
            .begin_checkpoint(self.applied_index, &metadata)
            .expect("begin");
        (job, self.model.clone())
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::Txn { ops, commit } => self.txn(ops, *commit),
            Op::Checkpoint => {
                let (mut job, model) = self.checkpoint_begin();
                job.run().expect("checkpoint I/O");
                self.store.finish_checkpoint(job).expect("finish");
                self.durable = model;
                self.coverage.checkpoints += 1;
                self.coverage.size_bytes_max =
                    self.coverage.size_bytes_max.max(self.store.size_bytes());
            }
            Op::CheckpointAround(ops) => {
                let (mut job, model) = self.checkpoint_begin();
                self.txn(ops, true);
                job.run().expect("checkpoint I/O");
                self.txn(&[], true);
                self.store.finish_checkpoint(job).expect("finish");
                self.durable = model;
            }
            Op::Restart => {
                let io = self.io.restart_image();
                let (store, opened) =
                    MvccStore::open_with(Arc::new(io.clone()), FILE, &options()).expect("reopen");
                assert_eq!(opened.applied_index, self.applied_index_durable());
                self.store = store;
                self.io = io;
                self.model = self.durable.clone();
                self.store
                    .check()
                    .expect("a reopened store is consistent, pages accounted");
                self.coverage.restarts += 1;
            }
            Op::DefragStart => {
                self.store.start_defrag().expect("start defrag");
            }
            Op::DefragStep(budget) => {
                if let DefragProgress::Swapped {
                    size_bytes_before,
                    size_bytes_after,
                } = self.store.defrag_step(*budget).expect("defrag step")
                {
                    assert!(size_bytes_after > 0 && size_bytes_before > 0);
                    self.coverage.swaps += 1;
                }
            }
            Op::TakeView => {
                self.views
                    .push((self.store.read_view(), self.model.clone()));
            }
            Op::CheckView(pick) => {
                let i = usize::from(*pick) % (self.views.len() + 1);
                let (view, model) = match self.views.get(i) {
                    Some((view, model)) => (view.clone(), model.clone()),
                    None => (self.store.read_view(), self.model.clone()),
                };
                let all = KeyRange::FromKey(Bytes::new());
                let got = view.bucket_range(BUCKET, &all, 0).expect("range");
                let want: Vec<(Bytes, Bytes)> =
                    model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                assert_eq!(got, want, "view {i}");
            }
        }
    }

    /// The applied index the last finished checkpoint recorded.
    fn applied_index_durable(&self) -> u64 {
        self.store.applied_index()
    }
}

fn run(ops: &[Op]) -> Coverage {
    let mut harness = Harness::new();
    for (i, op) in ops.iter().enumerate() {
        harness.apply(op);
        harness.coverage.keys_max = harness.coverage.keys_max.max(harness.model.len());
        if i % 16 == 0 {
            harness.store.check().expect("store invariants hold");
        }
    }
    // Finish any defragmentation, checkpoint, restart: everything comes back.
    if harness.store.defrag_running() {
        while !matches!(
            harness.store.defrag_step(1000).expect("defrag step"),
            DefragProgress::Swapped { .. }
        ) {}
    }
    harness.apply(&Op::Checkpoint);
    harness.apply(&Op::Restart);
    harness.apply(&Op::CheckView(u8::MAX));
    for (view, model) in &harness.views {
        let all = KeyRange::FromKey(Bytes::new());
        let got = view
            .bucket_range(BUCKET, &all, 0)
            .expect("old view still reads");
        let want: Vec<(Bytes, Bytes)> = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        assert_eq!(got, want, "an old view answers as of its time");
    }
    harness.coverage
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn buckets_match_btreemap_across_commits_checkpoints_restarts_and_defrag(
        ops in prop::collection::vec(op(), 1..120)
    ) {
        run(&ops);
    }
}

fn seed() -> u64 {
    match std::env::var("KEEL_TEST_SEED") {
        Ok(text) => text.parse().expect("KEEL_TEST_SEED is a u64"),
        Err(_) => 0x7472_6565_6d61_7073,
    }
}

/// Longer runs than proptest's cases, from one printed seed: trees several levels deep, many
/// checkpoints and defragmentations over the same file.
#[test]
fn long_runs_match_btreemap() {
    let seed = seed();
    println!("long_runs_match_btreemap seed={seed} (rerun: KEEL_TEST_SEED={seed})");
    let long = std::env::var("KEEL_LONG_TESTS").is_ok_and(|v| v == "1");
    let (runs, ops_per_run) = if long { (60, 3000) } else { (3, 600) };
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(proptest::test_runner::RngAlgorithm::ChaCha, &bytes),
    );
    let strategy = prop::collection::vec(op(), ops_per_run);
    let mut swaps = 0;
    for _ in 0..runs {
        let ops = strategy
            .new_tree(&mut runner)
            .expect("strategy generates")
            .current();
        let coverage = run(&ops);
        println!("{coverage:?}");
        swaps += coverage.swaps;
    }
    assert!(swaps > 0, "the runs exercised defragmentation swaps");
}
