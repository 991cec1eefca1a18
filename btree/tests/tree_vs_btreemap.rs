//! Oracle tests: `BTree` against `std::collections::BTreeMap` over random insert, remove,
//! get_mut, point and range reads (forward, backward and interleaved), with snapshots taken
//! mid-way that must stay unchanged by every later write. Small fanouts (4, 5) reach deep trees
//! and every borrow/merge case with few keys; the default fanout runs with more keys.
//!
//! proptest prints the failing case and records it under `proptest-regressions/`. The seeded
//! soak test prints its seed; rerun one with `KEEL_TEST_SEED=<seed>`, and run longer with
//! `KEEL_LONG_TESTS=1`.

use std::collections::BTreeMap;
use std::ops::Bound;

use keel_btree::BTree;
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[derive(Debug, Clone)]
enum Op {
    Insert(u16, u32),
    Remove(u16),
    Get(u16),
    GetMut(u16, u32),
    Range {
        start: Bound<u16>,
        end: Bound<u16>,
        ends_pattern: u64,
    },
    FirstLast,
    Snapshot,
    Clear,
}

fn bound(key_max: u16) -> impl Strategy<Value = Bound<u16>> {
    prop_oneof![
        (0..=key_max).prop_map(Bound::Included),
        (0..=key_max).prop_map(Bound::Excluded),
        Just(Bound::Unbounded),
    ]
}

fn op(key_max: u16) -> impl Strategy<Value = Op> {
    prop_oneof![
        300 => (0..=key_max, any::<u32>()).prop_map(|(k, v)| Op::Insert(k, v)),
        200 => (0..=key_max).prop_map(Op::Remove),
        50 => (0..=key_max).prop_map(Op::Get),
        50 => (0..=key_max, any::<u32>()).prop_map(|(k, v)| Op::GetMut(k, v)),
        40 => (bound(key_max), bound(key_max), any::<u64>())
            .prop_map(|(start, end, ends_pattern)| Op::Range { start, end, ends_pattern }),
        10 => Just(Op::FirstLast),
        10 => Just(Op::Snapshot),
        // Rare: most runs should grow deep trees.
        1 => Just(Op::Clear),
    ]
}

/// Whether `BTree::range` yields nothing for these bounds (where `BTreeMap::range` panics or
/// yields nothing).
fn bounds_empty(start: Bound<u16>, end: Bound<u16>) -> bool {
    match (start, end) {
        (Bound::Included(s), Bound::Included(e)) => s > e,
        (Bound::Included(s) | Bound::Excluded(s), Bound::Excluded(e))
        | (Bound::Excluded(s), Bound::Included(e)) => s >= e,
        _ => false,
    }
}

/// Consumes `iter` taking from the front or back as the bits of `pattern` say (1 = back).
fn drain_both_ends<I: DoubleEndedIterator<Item = T>, T>(mut iter: I, pattern: u64) -> Vec<T> {
    let mut front = Vec::new();
    let mut back = Vec::new();
    for step in 0.. {
        let from_back = pattern.rotate_right(step % 64) & 1 == 1;
        let item = if from_back {
            iter.next_back()
        } else {
            iter.next()
        };
        match item {
            Some(item) if from_back => back.push(item),
            Some(item) => front.push(item),
            None => break,
        }
    }
    // The iterator is fused: both ends stay exhausted.
    assert!(
        iter.next().is_none() && iter.next_back().is_none(),
        "range iterator is fused"
    );
    front.extend(back.into_iter().rev());
    front
}

struct Harness<const F: usize> {
    tree: BTree<u16, u32, F>,
    model: BTreeMap<u16, u32>,
    snapshots: Vec<(BTree<u16, u32, F>, BTreeMap<u16, u32>)>,
}

impl<const F: usize> Harness<F> {
    fn new() -> Self {
        Harness {
            tree: BTree::with_fanout(),
            model: BTreeMap::new(),
            snapshots: Vec::new(),
        }
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Insert(k, v) => assert_eq!(self.tree.insert(k, v), self.model.insert(k, v)),
            Op::Remove(k) => assert_eq!(self.tree.remove(&k), self.model.remove(&k)),
            Op::Get(k) => assert_eq!(self.tree.get(&k), self.model.get(&k)),
            Op::GetMut(k, v) => {
                let got = self.tree.get_mut(&k).map(|slot| std::mem::replace(slot, v));
                let want = self
                    .model
                    .get_mut(&k)
                    .map(|slot| std::mem::replace(slot, v));
                assert_eq!(got, want);
            }
            Op::Range {
                start,
                end,
                ends_pattern,
            } => self.check_range(start, end, ends_pattern),
            Op::FirstLast => {
                assert_eq!(self.tree.first_key_value(), self.model.first_key_value());
                assert_eq!(self.tree.last_key_value(), self.model.last_key_value());
            }
            Op::Snapshot => self.snapshots.push((self.tree.clone(), self.model.clone())),
            Op::Clear => {
                self.tree.clear();
                self.model.clear();
            }
        }
        assert_eq!(self.tree.len(), self.model.len());
    }

    fn check_range(&self, start: Bound<u16>, end: Bound<u16>, ends_pattern: u64) {
        let want: Vec<(u16, u32)> = if bounds_empty(start, end) {
            Vec::new()
        } else {
            self.model
                .range((start, end))
                .map(|(k, v)| (*k, *v))
                .collect()
        };
        let forward: Vec<(u16, u32)> = self
            .tree
            .range((start, end))
            .map(|(k, v)| (*k, *v))
            .collect();
        assert_eq!(forward, want, "forward range {start:?}..{end:?}");
        let mut backward: Vec<(u16, u32)> = self
            .tree
            .range((start, end))
            .rev()
            .map(|(k, v)| (*k, *v))
            .collect();
        backward.reverse();
        assert_eq!(backward, want, "backward range {start:?}..{end:?}");
        let mixed: Vec<(u16, u32)> = drain_both_ends(self.tree.range((start, end)), ends_pattern)
            .into_iter()
            .map(|(k, v)| (*k, *v))
            .collect();
        assert_eq!(
            mixed, want,
            "interleaved range {start:?}..{end:?} pattern {ends_pattern:#x}"
        );
    }

    fn check_all(&self) {
        self.tree.check().expect("tree invariants hold");
        assert!(self
            .tree
            .iter()
            .map(|(k, v)| (*k, *v))
            .eq(self.model.iter().map(|(k, v)| (*k, *v))));
        for (snapshot, model) in &self.snapshots {
            snapshot.check().expect("snapshot invariants hold");
            assert_eq!(
                snapshot.len(),
                model.len(),
                "snapshot len unchanged by later writes"
            );
            let same = snapshot
                .iter()
                .map(|(k, v)| (*k, *v))
                .eq(model.iter().map(|(k, v)| (*k, *v)));
            assert!(same, "snapshot contents unchanged by later writes");
        }
    }
}

fn run<const F: usize>(ops: &[Op]) {
    let mut harness = Harness::<F>::new();
    for (i, op) in ops.iter().enumerate() {
        harness.apply(op);
        if i % 97 == 0 {
            harness.check_all();
        }
    }
    harness.check_all();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// Fanout 4 (fill 2..=4): depth 5+ within a few hundred keys; every borrow and merge path.
    #[test]
    fn fanout_4_tree_matches_btreemap(ops in prop::collection::vec(op(400), 1..1500)) {
        run::<4>(&ops);
    }

    /// An odd fanout (fill 2..=5) guards the split arithmetic against even-only assumptions.
    #[test]
    fn fanout_5_tree_matches_btreemap(ops in prop::collection::vec(op(400), 1..1500)) {
        run::<5>(&ops);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    /// The production fanout, with enough keys for a three-level tree.
    #[test]
    fn default_fanout_tree_matches_btreemap(ops in prop::collection::vec(op(12_000), 1..12_000)) {
        run::<{ keel_btree::FANOUT_MAX_DEFAULT }>(&ops);
    }
}

fn seed() -> u64 {
    match std::env::var("KEEL_TEST_SEED") {
        Ok(text) => text.parse().expect("KEEL_TEST_SEED is a u64"),
        Err(_) => 0x6b65_656c_7472_6565,
    }
}

fn long_tests() -> bool {
    std::env::var("KEEL_LONG_TESTS").is_ok_and(|v| v == "1")
}

/// Grow to many thousands of keys, then shrink to empty, with snapshots along the way: guards the
/// root split and root collapse across several levels at the default fanout.
#[test]
fn grow_and_shrink_soak_matches_btreemap() {
    let seed = seed();
    println!("grow_and_shrink_soak_matches_btreemap seed={seed} (rerun: KEEL_TEST_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);
    let key_count = if long_tests() { 400_000 } else { 40_000 };
    let mut harness = Harness::<{ keel_btree::FANOUT_MAX_DEFAULT }>::new();
    let key_max = u16::MAX;
    let mut ops = Vec::new();
    for _ in 0..key_count {
        ops.push(Op::Insert(rng.random_range(0..=key_max), rng.random()));
    }
    ops.push(Op::Snapshot);
    for _ in 0..key_count * 2 {
        ops.push(Op::Remove(rng.random_range(0..=key_max)));
        if rng.random_ratio(1, 4000) {
            ops.push(Op::Snapshot);
        }
    }
    for k in 0..=key_max {
        ops.push(Op::Remove(k));
    }
    for (i, op) in ops.iter().enumerate() {
        harness.apply(op);
        if i % 5000 == 0 {
            harness.tree.check().expect("tree invariants hold");
        }
    }
    harness.check_all();
    assert!(harness.tree.is_empty());
    assert_eq!(harness.tree.depth(), 0);
}
