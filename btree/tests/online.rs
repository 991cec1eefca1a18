//! Maintenance while the store serves: compaction in steps between writes, defragmentation in
//! steps between writes and reads (old views stay valid; the file shrinks to about the live
//! size; on real files the new file is renamed into place), `hash_kv` independent of how far a
//! compaction got, and a failed checkpoint poisoning only checkpoints.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use keel_btree::{
    BtreeError, DefragProgress, Faults, KeyRange, MemPageIo, MvccError, MvccStore, RangeOptions,
    ReadView, StoreOptions,
};

fn key(i: u32) -> Bytes {
    Bytes::from(format!("key/{i:05}"))
}

fn value(i: u32, round: u32) -> Bytes {
    Bytes::from(vec![
        (i.wrapping_mul(31) ^ round) as u8;
        100 + (i % 50) as usize
    ])
}

fn all() -> KeyRange {
    KeyRange::FromKey(Bytes::new())
}

fn live(view: &ReadView) -> BTreeMap<Bytes, Bytes> {
    view.try_range(&all(), &RangeOptions::default())
        .expect("read")
        .kvs
        .into_iter()
        .map(|kv| (kv.key, kv.value))
        .collect()
}

/// `keys` keys written `rounds` times, one transaction per 100 puts, a checkpoint after each
/// round (so the file holds each round's pages before later rounds supersede them).
fn history(store: &mut MvccStore, keys: u32, rounds: u32) -> BTreeMap<Bytes, Bytes> {
    let mut model = BTreeMap::new();
    for round in 0..rounds {
        for chunk in (0..keys).collect::<Vec<_>>().chunks(100) {
            let mut txn = store.write_txn();
            for &i in chunk {
                txn.try_put(key(i), value(i, round), 0).expect("put");
                model.insert(key(i), value(i, round));
            }
            txn.try_commit().expect("commit");
        }
        let applied_index = store.applied_index() + 1;
        store.checkpoint(applied_index, b"").expect("checkpoint");
    }
    model
}

fn memory_store() -> (MemPageIo, MvccStore) {
    let io = MemPageIo::new("/online");
    let (store, _) =
        MvccStore::open_with(Arc::new(io.clone()), "online.db", &StoreOptions::default())
            .expect("create");
    (io, store)
}

// Guards the online compaction contract: reads below the revision fail from the start, reads
// at or above it never change while steps and writes interleave, and the end state equals
// compacting at once and then writing.
#[test]
fn compaction_in_steps_between_writes_keeps_every_read_at_or_above_it() {
    let (_, mut store) = memory_store();
    let mut model = history(&mut store, 1500, 3);
    let at = store.revision();
    let before_at = store.read_view();
    store.start_compaction(at).expect("start");
    let view = store.read_view();
    let below = RangeOptions {
        revision: at - 1,
        ..RangeOptions::default()
    };
    assert!(matches!(
        view.try_range(&all(), &below),
        Err(BtreeError::Mvcc(MvccError::Compacted { compacted_revision })) if compacted_revision == at
    ));
    let at_opts = RangeOptions {
        revision: at,
        ..RangeOptions::default()
    };
    let expected_at = before_at.try_range(&all(), &at_opts).expect("read");
    let mut steps = 0;
    let mut extra = 0u32;
    loop {
        let progress = store.compact_step(97).expect("step");
        steps += 1;
        let mut txn = store.write_txn();
        txn.try_put(key(extra % 1500), value(extra, 9), 0)
            .expect("put");
        model.insert(key(extra % 1500), value(extra, 9));
        txn.try_commit().expect("commit");
        extra += 1;
        let now = store.read_view();
        assert_eq!(
            now.try_range(&all(), &at_opts).expect("read"),
            RangeResult_at(&expected_at, now.revision())
        );
        if progress.done {
            assert_eq!(progress.outcome.revisions_removed_count, 3000);
            break;
        }
    }
    assert!(steps >= 15, "1500 keys in steps of 97: {steps} steps");
    store.check().expect("consistent once done");
    assert_eq!(live(&store.read_view()), model);
    assert_eq!(store.record_count(), 1500 + extra as usize);
}

#[allow(non_snake_case)]
fn RangeResult_at(result: &keel_btree::RangeResult, revision: i64) -> keel_btree::RangeResult {
    keel_btree::RangeResult {
        revision,
        ..result.clone()
    }
}

// Guards the defragmentation contract: while it copies and catches up in steps, writes and
// reads go on; views taken before keep their data after the swap; the next checkpoint makes
// the new file durable; the file shrinks to about the live size and reopens to the same data.
#[test]
fn defrag_in_steps_between_writes_shrinks_the_file_and_keeps_old_views() {
    let (io, mut store) = memory_store();
    let mut model = history(&mut store, 3000, 6);
    store.compact(store.revision()).expect("compact");
    store.checkpoint(100, b"before").expect("checkpoint");
    let size_before = store.size_bytes();
    let in_use_before = store.size_in_use_bytes();
    assert!(
        in_use_before < size_before / 2,
        "history then compaction leaves most pages free: {in_use_before} of {size_before}"
    );
    let old_view = store.read_view();
    let old_model = model.clone();
    assert!(store.start_defrag().expect("start"));
    assert!(
        !store.start_defrag().expect("second start"),
        "one at a time"
    );
    let mut round = 0u32;
    let (size_bytes_before, size_bytes_after) = loop {
        let progress = store.defrag_step(500).expect("step");
        let mut txn = store.write_txn();
        for i in (round * 37..round * 37 + 20).map(|i| i % 3000) {
            txn.try_put(key(i), value(i, 100 + round), 0).expect("put");
            model.insert(key(i), value(i, 100 + round));
        }
        txn.try_delete_range(&KeyRange::Key(key(round * 13 % 3000)))
            .expect("delete");
        model.remove(&key(round * 13 % 3000));
        txn.try_commit().expect("commit");
        round += 1;
        assert_eq!(live(&old_view), old_model, "an old view during the defrag");
        if let DefragProgress::Swapped {
            size_bytes_before,
            size_bytes_after,
        } = progress
        {
            break (size_bytes_before, size_bytes_after);
        }
        assert!(round < 1000, "the defragmentation converges");
    };
    assert_eq!(size_bytes_before, size_before);
    assert_eq!(live(&store.read_view()), model);
    assert_eq!(live(&old_view), old_model, "an old view after the swap");
    store
        .checkpoint(101, b"after")
        .expect("checkpoint renames the new file in place");
    let size_after = store.size_bytes();
    println!(
        "defrag: {size_before} -> {size_bytes_after} bytes at the swap, {size_after} after the \
         checkpoint; {} in use",
        store.size_in_use_bytes()
    );
    assert!(
        size_after < size_before / 2,
        "{size_after} vs {size_before}"
    );
    assert!(
        size_after <= store.size_in_use_bytes() * 13 / 10 + (1 << 20),
        "about the live size"
    );
    assert_eq!(io.file_names(), vec!["online.db".to_string()]);
    drop(store);
    let (reopened, opened) = MvccStore::open_with(
        Arc::new(io.restart_image()),
        "online.db",
        &StoreOptions::default(),
    )
    .expect("reopen");
    assert_eq!(opened.applied_index, 101);
    assert_eq!(live(&reopened.read_view()), model);
    reopened.check().expect("consistent, pages accounted");
    assert_eq!(
        live(&old_view),
        old_model,
        "an old view after the old file is gone"
    );
}

// The same on the file system: the new file is renamed over the old one, and a defrag file
// left by a crash before its first checkpoint is removed on open.
#[test]
fn defrag_on_real_files_renames_into_place_and_leftovers_are_removed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("real.db");
    let (mut store, _) = MvccStore::open(&path, &StoreOptions::default()).expect("create");
    let model = history(&mut store, 2000, 4);
    store.compact(store.revision()).expect("compact");
    store.checkpoint(70, b"m").expect("checkpoint");
    let before = std::fs::metadata(&path).expect("stat").len();
    assert_eq!(
        before,
        store.size_bytes(),
        "size_bytes is the real file size"
    );
    store.start_defrag().expect("start");
    while !matches!(
        store.defrag_step(10_000).expect("step"),
        DefragProgress::Swapped { .. }
    ) {}
    assert!(dir.path().join("real.db.defrag").exists());
    store.checkpoint(80, b"m2").expect("checkpoint");
    assert!(!dir.path().join("real.db.defrag").exists());
    let after = std::fs::metadata(&path).expect("stat").len();
    assert_eq!(after, store.size_bytes());
    assert!(after < before / 2, "{after} vs {before}");
    // A second defrag that swaps but never checkpoints: the old file stays the durable one.
    store.start_defrag().expect("start");
    while !matches!(
        store.defrag_step(10_000).expect("step"),
        DefragProgress::Swapped { .. }
    ) {}
    drop(store);
    assert!(dir.path().join("real.db.defrag").exists());
    let (store, opened) = MvccStore::open(&path, &StoreOptions::default()).expect("reopen");
    assert_eq!(opened.applied_index, 80);
    assert!(
        !dir.path().join("real.db.defrag").exists(),
        "the leftover is removed"
    );
    assert_eq!(live(&store.read_view()), model);
    store.check().expect("consistent");
}

fn stores_with_same_history() -> (MvccStore, MvccStore) {
    let (_, mut a) = memory_store();
    let (_, mut b) = memory_store();
    for store in [&mut a, &mut b] {
        history(store, 500, 3);
        let mut txn = store.write_txn();
        txn.try_delete_range(&KeyRange::Range {
            start: key(100),
            end: key(200),
        })
        .expect("delete");
        txn.try_commit().expect("commit");
        history(store, 50, 1);
    }
    (a, b)
}

// Guards HashKV's use (members compare it): same data gives the same hash whatever the
// physical progress of a compaction, across a checkpoint, and different data differs.
#[test]
fn hash_kv_depends_on_the_data_not_on_compaction_progress() {
    let (mut a, mut b) = stores_with_same_history();
    let at = a.revision() - 3;
    let revision = a.revision();
    let before = a.read_view().hash_kv(revision).expect("hash");
    assert_eq!(before, b.read_view().hash_kv(revision).expect("hash"));
    a.compact(at).expect("compact all at once");
    b.start_compaction(at).expect("start");
    b.compact_step(40).expect("some of it");
    let hash_a = a.read_view().hash_kv(revision).expect("hash");
    let hash_b = b.read_view().hash_kv(revision).expect("hash");
    assert_eq!(hash_a, hash_b, "mid-compaction and done agree");
    assert_eq!(hash_a.1, at, "reports the compacted revision");
    assert!(matches!(
        a.read_view().hash_kv(at),
        Err(BtreeError::Mvcc(MvccError::Compacted { .. }))
    ));
    assert!(matches!(
        a.read_view().hash_kv(revision + 1),
        Err(BtreeError::Mvcc(MvccError::FutureRevision { .. }))
    ));
    a.checkpoint(100, b"").expect("checkpoint");
    assert_eq!(a.read_view().hash_kv(revision).expect("hash"), hash_a);
    let mut txn = b.write_txn();
    txn.try_put(key(1), Bytes::from_static(b"different"), 0)
        .expect("put");
    txn.try_commit().expect("commit");
    assert_ne!(
        b.read_view().hash_kv(0).expect("hash").0,
        a.read_view().hash_kv(0).expect("hash").0
    );
}

// Guards contract 4: a failed fsync poisons checkpoints only; what was durable stays so.
#[test]
fn a_failed_checkpoint_poisons_checkpoints_but_reads_and_commits_go_on() {
    let (io, mut store) = memory_store();
    let model = history(&mut store, 300, 1);
    store.checkpoint(10, b"good").expect("checkpoint");
    for i in 0..300 {
        let mut txn = store.write_txn();
        txn.try_put(key(i), value(i, 7), 0).expect("put");
        txn.try_commit().expect("commit");
    }
    io.set_faults(Faults {
        failed_sync: Some(0),
        ..Faults::default()
    });
    let failed = store.checkpoint(11, b"bad");
    assert!(failed.is_err(), "{failed:?}");
    assert!(matches!(
        store.begin_checkpoint(12, b""),
        Err(BtreeError::Poisoned { .. })
    ));
    let mut txn = store.write_txn();
    txn.try_put(key(1), Bytes::from_static(b"still works"), 0)
        .expect("put");
    txn.try_commit().expect("commit");
    assert_eq!(
        live(&store.read_view()).get(&key(1)),
        Some(&Bytes::from_static(b"still works"))
    );
    drop(store);
    // Without a power loss the failed checkpoint's bytes may be there or not; after one,
    // every image reopens at a checkpoint.
    for seed in 0..20 {
        let (reopened, opened) = MvccStore::open_with(
            Arc::new(io.crash_image(seed)),
            "online.db",
            &StoreOptions::default(),
        )
        .expect("reopen");
        if opened.applied_index == 10 {
            assert_eq!(live(&reopened.read_view()), model);
        } else {
            assert_eq!(opened.applied_index, 11);
        }
        reopened.check().expect("consistent");
    }
}

/// 40 keys, each put three times; every third deleted; one revision per transaction.
fn small_history(store: &mut MvccStore) {
    for round in 0..3u32 {
        for i in 0..40 {
            let mut txn = store.write_txn();
            txn.try_put(key(i), Bytes::from(format!("{round}")), 0)
                .expect("put");
            txn.try_commit().expect("commit");
        }
    }
    for i in (0..40).step_by(3) {
        let mut txn = store.write_txn();
        txn.try_delete_range(&KeyRange::Key(key(i)))
            .expect("delete");
        txn.try_commit().expect("commit");
    }
}

fn writes(store: &mut MvccStore, step: u32) {
    let mut txn = store.write_txn();
    txn.try_put(key(step % 40), Bytes::from(format!("w{step}")), 0)
        .expect("put");
    txn.try_delete_range(&KeyRange::Key(key((step * 7 + 1) % 40)))
        .expect("delete");
    txn.try_commit().expect("commit");
}

// Guards the design claim in compact.rs: a compaction stopped after any key and resumed later,
// with writes in between, ends where compacting at once and then writing ends, and readers at
// or above the compacted revision see no difference at any point.
#[test]
fn compaction_in_one_key_steps_with_writes_between_matches_compacting_at_once() {
    let at = 100;
    let (_, mut stepped) = memory_store();
    small_history(&mut stepped);
    let before = stepped.read_view();
    stepped.start_compaction(at).expect("start");
    let mut step = 0;
    let opts = RangeOptions {
        revision: at,
        ..RangeOptions::default()
    };
    let stepped_outcome = loop {
        let progress = stepped.compact_step(1).expect("step");
        if progress.done {
            break progress.outcome;
        }
        writes(&mut stepped, step);
        step += 1;
        assert_eq!(
            stepped
                .read_view()
                .try_range(&all(), &opts)
                .map(|r| r.kvs)
                .expect("read"),
            before
                .try_range(&all(), &opts)
                .map(|r| r.kvs)
                .expect("read")
        );
    };
    // 40 keys one by one (then one step finding none left), then the records one by one up
    // to the last one the index dropped. Of the revisions 2..=100 (all puts) each key keeps
    // its newest: 59 go, 2..=41 (round 0) and 42..=60 (round 1 of the keys round 2 rewrote
    // by 100); the step removing 60 ends the compaction.
    assert_eq!(stepped_outcome.revisions_removed_count, 59);
    assert_eq!(step, 40 + 1 + 58);
    let (_, mut at_once) = memory_store();
    small_history(&mut at_once);
    let outcome = at_once.compact(at).expect("compact");
    for s in 0..step {
        writes(&mut at_once, s);
    }
    stepped.check().expect("consistent once the job is done");
    at_once.check().expect("consistent");
    assert_eq!(stepped_outcome, outcome);
    assert_eq!(
        (stepped.key_count(), stepped.record_count()),
        (at_once.key_count(), at_once.record_count())
    );
    let (a, b) = (stepped.read_view(), at_once.read_view());
    for revision in at..=stepped.revision() {
        let opts = RangeOptions {
            revision,
            ..RangeOptions::default()
        };
        assert_eq!(
            a.try_range(&all(), &opts).expect("read"),
            b.try_range(&all(), &opts).expect("read"),
            "at {revision}"
        );
    }
    assert_eq!(
        a.try_events(&all(), at, i64::MAX, 0, true).expect("events"),
        b.try_events(&all(), at, i64::MAX, 0, true).expect("events")
    );
    assert_eq!(a.hash_kv(0).expect("hash"), b.hash_kv(0).expect("hash"));
}

// Values up to etcd's request limit (1.5 MiB) and long keys are stored as blob runs: they
// survive checkpoints, reopen, replacement, compaction and defragmentation byte for byte.
#[test]
fn values_up_to_the_request_limit_and_long_keys_round_trip_through_the_file() {
    let (io, mut store) = memory_store();
    let big = Bytes::from(
        (0..1536 * 1024)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<u8>>(),
    );
    let long_key = Bytes::from(vec![b'k'; 64 * 1024]);
    let mut txn = store.write_txn();
    txn.try_put(key(1), big.clone(), 0).expect("put");
    txn.try_put(long_key.clone(), Bytes::from_static(b"v"), 0)
        .expect("put");
    txn.try_commit().expect("commit");
    store.checkpoint(1, b"").expect("checkpoint");
    let mut txn = store.write_txn();
    txn.try_put(key(1), big.slice(1..), 0).expect("replace");
    txn.try_commit().expect("commit");
    store.compact(store.revision()).expect("compact");
    store.checkpoint(2, b"").expect("checkpoint");
    store.start_defrag().expect("defrag");
    while !matches!(
        store.defrag_step(100).expect("step"),
        DefragProgress::Swapped { .. }
    ) {}
    store.checkpoint(3, b"").expect("checkpoint");
    drop(store);
    let (store, _) = MvccStore::open_with(
        Arc::new(io.restart_image()),
        "online.db",
        &StoreOptions::default(),
    )
    .expect("reopen");
    let found = live(&store.read_view());
    assert_eq!(found.get(&key(1)), Some(&big.slice(1..)));
    assert_eq!(found.get(&long_key).map(|v| &v[..]), Some(&b"v"[..]));
    store.check().expect("consistent, pages accounted");
    assert!(
        store.size_bytes() < 4 * 1024 * 1024,
        "the replaced 1.5 MiB blob was reused or dropped"
    );
}

/// Runs the running compaction to its end in steps of `entries`; returns each step's visits.
fn finish_compaction(store: &mut MvccStore, entries: usize) -> Vec<usize> {
    let mut visits = Vec::new();
    loop {
        let progress = store.compact_step(entries).expect("step");
        visits.push(progress.entries_visited);
        if progress.done {
            return visits;
        }
    }
}

// Guards the skipped second pass: a compaction that drops nothing from the index visits each
// key once and no record (a store where every key has one revision).
#[test]
fn a_compaction_with_nothing_to_remove_visits_only_the_keys() {
    let (_, mut store) = memory_store();
    history(&mut store, 250, 1);
    let records = store.record_count();
    store.start_compaction(store.revision()).expect("start");
    let visits = finish_compaction(&mut store, 100);
    assert_eq!(visits, vec![100, 100, 50], "the keys, then done");
    assert_eq!(store.record_count(), records);
    store.check().expect("consistent");
}

// Guards the count the second pass stops at, when a compaction replaces one that dropped
// records from the index and had not removed them yet (in either pass), and when that one was
// resumed after a restart (count unknown): no record the index does not name is left.
#[test]
fn a_compaction_replacing_a_running_one_removes_what_that_one_left() {
    // Steps of 10 of the first job before it is replaced (40 keys): mid first pass, at its
    // end, mid second.
    for first_steps in [1, 4, 6] {
        for restart in [false, true] {
            let (io, mut store) = memory_store();
            small_history(&mut store);
            let first = 60;
            store.start_compaction(first).expect("start");
            for _ in 0..first_steps {
                assert!(!store.compact_step(10).expect("step").done);
            }
            if restart {
                store
                    .checkpoint(store.applied_index() + 1, b"")
                    .expect("checkpoint");
                drop(store);
                let (reopened, opened) = MvccStore::open_with(
                    Arc::new(io.clone()),
                    "online.db",
                    &StoreOptions::default(),
                )
                .expect("reopen");
                assert_eq!(opened.compaction_pending, Some(first));
                store = reopened;
            }
            let second = 110;
            store.start_compaction(second).expect("replace");
            finish_compaction(&mut store, 10);
            store
                .check()
                .unwrap_or_else(|e| panic!("first_steps={first_steps} restart={restart}: {e}"));
            let (_, mut at_once) = memory_store();
            small_history(&mut at_once);
            at_once.compact(second).expect("compact at once");
            assert_eq!(store.record_count(), at_once.record_count());
            assert_eq!(live(&store.read_view()), live(&at_once.read_view()));
        }
    }
}
