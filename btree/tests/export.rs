//! Snapshot export (`ReadView::export`): the exported file, opened, must read exactly like the
//! view it came from (every range at every readable revision, watch history, `hash_kv`, every
//! bucket), carry the caller's applied index and metadata as its checkpoint, resume a
//! compaction that was running at the view, pass the full store check (page accounting
//! included) and be compact. An export runs on another thread while the writer applies,
//! checkpoints, compacts and defragments. A crash at any point of an export leaves either no
//! file under the target name or a complete one.
//!
//! The randomized tests print their seed; rerun one with `KEEL_TEST_SEED=<seed>`;
//! `KEEL_LONG_TESTS=1` runs them longer.

mod common;

use common::value;

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use keel_btree::{
    Bucket, ExportStats, Faults, KeyRange, MemPageIo, MvccStore, Opened, RangeOptions, ReadView,
    StoreOptions,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const SNAPSHOT: &str = "snap.db";
const TEMP: &str = "snap.db.export.tmp";

fn options() -> StoreOptions {
    StoreOptions {
        page_size_bytes: 512,
        growth_bytes_min: 2048,
        ..StoreOptions::default()
    }
}

fn seed(default: u64) -> u64 {
    match std::env::var("KEEL_TEST_SEED") {
        Ok(text) => text.parse().expect("KEEL_TEST_SEED is a u64"),
        Err(_) => default,
    }
}

fn long() -> bool {
    std::env::var("KEEL_LONG_TESTS").is_ok_and(|v| v == "1")
}

fn all() -> KeyRange {
    KeyRange::FromKey(Bytes::new())
}

/// Keys of this test: `150` of them.
fn key(rng: &mut StdRng) -> Bytes {
    common::key(rng, 150)
}

/// One random transaction: puts, range deletes and bucket writes.
fn random_txn(store: &mut MvccStore, rng: &mut StdRng) {
    let mut txn = store.write_txn();
    for _ in 0..rng.random_range(1..6) {
        match rng.random_range(0..10) {
            0..=5 => {
                txn.try_put(key(rng), value(rng), rng.random_range(0..3))
                    .expect("put");
            }
            6 | 7 => {
                let start = key(rng);
                let end = key(rng);
                txn.try_delete_range(&KeyRange::Range { start, end })
                    .expect("delete");
            }
            8 => {
                let bucket = Bucket::ALL[rng.random_range(0..Bucket::ALL.len())];
                txn.bucket_put(bucket, key(rng), value(rng))
                    .expect("bucket put");
            }
            _ => {
                let bucket = Bucket::ALL[rng.random_range(0..Bucket::ALL.len())];
                txn.bucket_delete(bucket, &key(rng)).expect("bucket delete");
            }
        }
    }
    txn.try_commit().expect("commit");
}

/// Maintenance a server interleaves with applies: compaction starts and steps, defragmentation
/// steps, checkpoints.
fn random_maintenance(store: &mut MvccStore, rng: &mut StdRng, applied_index: u64) {
    if rng.random_ratio(1, 12) {
        let revision = store.revision() - rng.random_range(0..8);
        if revision > store.compacted_revision() {
            store.start_compaction(revision).expect("start compaction");
        }
    }
    if store.compaction_running().is_some() && rng.random_ratio(1, 3) {
        store
            .compact_step(rng.random_range(1..20))
            .expect("compact step");
    }
    if rng.random_ratio(1, 40) {
        store.start_defrag().expect("start defrag");
    }
    if store.defrag_running() && rng.random_ratio(1, 2) {
        store
            .defrag_step(rng.random_range(1..100))
            .expect("defrag step");
    }
    if rng.random_ratio(1, 6) {
        store
            .checkpoint(applied_index, &applied_index.to_le_bytes())
            .expect("checkpoint");
    }
}

/// Everything a reader can observe of `view`, for comparing two views entry by entry:
/// ranges at readable revisions (all of them, or 12 spread out), the watch history with
/// previous values, `hash_kv` at the same revisions, and every bucket.
#[derive(Debug, PartialEq, Eq)]
struct Observed {
    revision: i64,
    compacted_revision: i64,
    ranges: BTreeMap<i64, (usize, Vec<keel_btree::KeyValue>)>,
    events: Vec<keel_btree::Event>,
    hashes: BTreeMap<i64, (u32, i64)>,
    buckets: BTreeMap<Bucket, Vec<(Bytes, Bytes)>>,
}

fn readable_revisions(view: &ReadView) -> Vec<i64> {
    let low = view.compacted_revision().max(1);
    let high = view.revision();
    let span = high - low + 1;
    let step = (span / 12).max(1);
    let mut revisions: Vec<i64> = (0..span).step_by(step as usize).map(|i| low + i).collect();
    revisions.push(high);
    revisions.dedup();
    revisions
}

fn observe(view: &ReadView) -> Observed {
    let mut ranges = BTreeMap::new();
    let mut hashes = BTreeMap::new();
    for revision in readable_revisions(view) {
        let opts = RangeOptions {
            revision,
            ..RangeOptions::default()
        };
        let result = view.try_range(&all(), &opts).expect("range");
        ranges.insert(revision, (result.count, result.kvs));
        // HashKV refuses exactly the compacted revision; every one above it is hashed.
        if revision > view.compacted_revision() {
            hashes.insert(revision, view.hash_kv(revision).expect("hash_kv"));
        }
    }
    hashes.insert(0, view.hash_kv(0).expect("hash_kv"));
    let start = view.compacted_revision().max(1);
    let events = view
        .try_events(&all(), start, i64::MAX, 0, true)
        .expect("events");
    let buckets = Bucket::ALL
        .iter()
        .map(|&bucket| {
            let entries = view.bucket_range(bucket, &all(), 0).expect("bucket range");
            (bucket, entries)
        })
        .collect();
    Observed {
        revision: view.revision(),
        compacted_revision: view.compacted_revision(),
        ranges,
        events,
        hashes,
        buckets,
    }
}

/// Opens the export `name` in `io` and checks it against `expected` (observed from the source
/// view), `stats` and the checkpoint fields; returns the opened store.
fn open_and_compare(
    io: &MemPageIo,
    expected: &Observed,
    compaction_running: Option<i64>,
    stats: &ExportStats,
    applied_index: u64,
    metadata: &[u8],
) -> MvccStore {
    let (store, opened) =
        MvccStore::open_with(Arc::new(io.clone()), SNAPSHOT, &options()).expect("export opens");
    check_opened(
        &store,
        &opened,
        expected,
        compaction_running,
        applied_index,
        metadata,
    );
    let file_len = io.file_bytes(SNAPSHOT).expect("export exists").len() as u64;
    assert_eq!(file_len, stats.size_bytes, "the file is exactly its pages");
    assert_eq!(store.size_bytes(), stats.size_bytes);
    assert_eq!(stats.revision, expected.revision);
    assert_eq!(stats.compacted_revision, expected.compacted_revision);
    assert_eq!(stats.applied_index, applied_index);
    store
}

fn check_opened(
    store: &MvccStore,
    opened: &Opened,
    expected: &Observed,
    compaction_running: Option<i64>,
    applied_index: u64,
    metadata: &[u8],
) {
    assert!(!opened.created, "the export is a complete file");
    assert_eq!(opened.applied_index, applied_index);
    assert_eq!(&opened.checkpoint_metadata[..], metadata);
    assert_eq!(opened.compaction_pending, compaction_running);
    assert_eq!(store.compaction_running(), compaction_running);
    store.check().expect("the export passes the full check");
    let observed = observe(&store.read_view());
    assert_eq!(&observed, expected, "the export reads like its source view");
}

// Guards the export contract against the source view as the oracle: at random points of a
// workload of transactions, compactions in steps (running or not at the export),
// defragmentation and checkpoints, the exported file reads exactly like the view, carries
// the caller's checkpoint fields, resumes a running compaction to the same hash, and takes
// writes and checkpoints of its own.
#[test]
fn exports_at_random_points_of_a_workload_read_exactly_like_their_views() {
    let seed = seed(0x6578_706f_7274);
    let rounds = if long() { 400 } else { 25 };
    println!("export workload seed={seed} rounds={rounds} (rerun: KEEL_TEST_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut store = MvccStore::with_options(options());
    let mut applied_index = 0;
    let (mut exports, mut with_compaction, mut with_flushes) = (0, 0, 0);
    for _ in 0..rounds {
        for _ in 0..rng.random_range(1..40) {
            random_txn(&mut store, &mut rng);
            applied_index += 1;
            random_maintenance(&mut store, &mut rng, applied_index);
        }
        let view = store.read_view();
        let compaction_running = store.compaction_running();
        let expected = observe(&view);
        let target = MemPageIo::new("/export");
        let metadata = format!("raft state at {applied_index}").into_bytes();
        let stats = view
            .export_with(Arc::new(target.clone()), SNAPSHOT, applied_index, &metadata)
            .expect("export");
        assert_eq!(
            target.file_names(),
            vec![SNAPSHOT.to_string()],
            "no leftovers"
        );
        let mut copy = open_and_compare(
            &target,
            &expected,
            compaction_running,
            &stats,
            applied_index,
            &metadata,
        );
        exports += 1;
        with_compaction += usize::from(compaction_running.is_some());
        with_flushes += usize::from(stats.page_count > 1024);
        // A running compaction resumes in the copy; the data hash does not change by it.
        if compaction_running.is_some() {
            while !copy.compact_step(7).expect("resumed compaction step").done {}
            copy.check().expect("check after the resumed compaction");
            assert_eq!(
                copy.read_view().hash_kv(0).expect("hash"),
                expected.hashes[&0]
            );
        }
        // The copy is a store like any other: it takes writes and checkpoints.
        random_txn(&mut copy, &mut rng);
        copy.checkpoint(applied_index + 1, b"after")
            .expect("checkpoint of the copy");
        copy.check().expect("check after writing to the copy");
    }
    println!(
        "exports={exports} with_compaction_running={with_compaction} with_flushes={with_flushes}"
    );
    assert!(
        with_compaction > 0,
        "some exports caught a running compaction"
    );
}

/// A store of `keys` keys with values of 100 to 600 bytes written `rounds` times, checkpointed.
fn big_store(store: &mut MvccStore, keys: u32, rounds: u32) {
    for round in 0..rounds {
        for chunk in (0..keys).collect::<Vec<_>>().chunks(200) {
            let mut txn = store.write_txn();
            for &i in chunk {
                let len = 100 + (i.wrapping_mul(7919) % 500) as usize;
                let value = vec![(i ^ round) as u8; len];
                txn.try_put(Bytes::from(format!("big/{i:06}")), Bytes::from(value), 0)
                    .expect("put");
            }
            txn.try_commit().expect("commit");
        }
        let applied_index = store.applied_index() + 1;
        store.checkpoint(applied_index, b"").expect("checkpoint");
    }
}

// Guards "runs on any thread while the writer keeps applying" and "bounded memory": a view of
// a store larger than the export's flush threshold (so the export writes in several
// flushes) is exported to a real file on another thread while the writer overwrites every
// key, compacts past the view, checkpoints and defragments; the export still reads exactly
// like the view, and is compact (nearly every page in use, no preallocated tail).
#[test]
fn export_on_another_thread_while_writes_compaction_and_checkpoints_continue() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut store, _) = MvccStore::open(dir.path().join("live.db"), &options()).expect("open");
    big_store(&mut store, 2500, 2);
    let view = store.read_view();
    let expected = observe(&view);
    let out = dir.path().join(SNAPSHOT);
    let exporter = {
        let view = view.clone();
        let out = out.clone();
        std::thread::spawn(move || view.export(&out, 42, b"snapshot metadata"))
    };
    // The writer goes on meanwhile; every change lands on pages the view does not reach.
    let mut rng = StdRng::seed_from_u64(seed(0x7468_7265_6164));
    let mut applied_index = store.applied_index();
    for round in 0..6 {
        for _ in 0..20 {
            random_txn(&mut store, &mut rng);
            applied_index += 1;
        }
        big_store(&mut store, 400, 1);
        if round == 2 {
            store
                .compact(store.revision())
                .expect("compact past the view");
        }
        if round == 3 {
            store.start_defrag().expect("start defrag");
        }
        if store.defrag_running() {
            store.defrag_step(2000).expect("defrag step");
        }
        applied_index += 1;
        store
            .checkpoint(applied_index, b"live")
            .expect("checkpoint");
    }
    let stats = exporter
        .join()
        .expect("export thread")
        .expect("export succeeds");
    assert!(
        stats.page_count > 2 * 1024,
        "the store is large enough for several flushes: {stats:?}"
    );
    drop(view);
    let (copy, opened) = MvccStore::open(&out, &options()).expect("open the export");
    check_opened(&copy, &opened, &expected, None, 42, b"snapshot metadata");
    let file_len = std::fs::metadata(&out).expect("export file").len();
    assert_eq!(file_len, stats.size_bytes, "no preallocated tail");
    assert!(
        copy.size_in_use_bytes() * 100 >= stats.size_bytes * 95,
        "compact: {} of {} bytes in use",
        copy.size_in_use_bytes(),
        stats.size_bytes
    );
    assert!(
        !dir.path().join(TEMP).exists(),
        "the temporary file is gone"
    );
    store.check().expect("the live store is unaffected");
}

// Guards that the cursor of a running compaction is exported in both passes: the copy resumes
// from where the view's compaction stood (the same steps visit the same entries as the
// source's) and ends in the same store as the source finishing it (every read at or above
// the compaction, the records kept, the hash). The source knows how many records its second
// pass removes and stops after the last; the copy does not (the count is not stored) and
// visits the records after it too: its steps start with the source's.
#[test]
fn a_compaction_running_at_the_view_resumes_in_the_export_and_ends_the_same() {
    for steps in [0, 1, 3, 40, 200] {
        let mut store = MvccStore::with_options(options());
        let mut rng = StdRng::seed_from_u64(seed(0x636f_6d70) + steps);
        for _ in 0..120 {
            random_txn(&mut store, &mut rng);
        }
        let target_revision = store.revision() - 30;
        store.start_compaction(target_revision).expect("start");
        for _ in 0..steps {
            if store.compact_step(3).expect("step").done {
                break;
            }
        }
        let running = store.compaction_running();
        let view = store.read_view();
        let expected = observe(&view);
        let target = MemPageIo::new("/export");
        let stats = view
            .export_with(Arc::new(target.clone()), SNAPSHOT, 9, b"m")
            .expect("export");
        let mut copy = open_and_compare(&target, &expected, running, &stats, 9, b"m");
        if steps < 200 {
            assert_eq!(
                running,
                Some(target_revision),
                "still running after {steps} steps"
            );
        }
        // Same steps from the same cursor: the same work (a lost cursor would start over).
        let finish = |store: &mut MvccStore| {
            let mut visits = Vec::new();
            loop {
                let progress = store.compact_step(5).expect("step");
                visits.push(progress.entries_visited);
                if progress.done {
                    return visits;
                }
            }
        };
        let (copy_visits, source_visits) = (finish(&mut copy), finish(&mut store));
        assert!(
            copy_visits.starts_with(&source_visits),
            "steps={steps}: copy {copy_visits:?}, source {source_visits:?}"
        );
        assert_eq!(copy.record_count(), store.record_count(), "steps={steps}");
        assert_eq!(copy.key_count(), store.key_count(), "steps={steps}");
        let source_after = observe(&store.read_view());
        let copy_after = observe(&copy.read_view());
        assert_eq!(copy_after, source_after, "steps={steps}");
        copy.check().expect("check");
    }
}

/// A source large enough that its export writes finished nodes before its checkpoint (more
/// than the 1024-page flush threshold), with a compaction running in its second half.
fn crash_source(rng: &mut StdRng) -> MvccStore {
    let mut store = MvccStore::with_options(options());
    big_store(&mut store, 1500, 1);
    for i in 0..60 {
        random_txn(&mut store, rng);
        if i == 30 {
            store
                .start_compaction(store.revision() - 5)
                .expect("compaction");
            store.compact_step(2).expect("step");
        }
    }
    store
}

// Guards crash safety of an export: for a power loss before every I/O call of the export
// (and a failed fsync or write at every point), whatever the machine finds after the crash
// (any subset of the unsynced writes, torn writes, any prefix of unsynced renames), the target
// name holds either nothing or the complete export (byte for byte the export made without
// faults, which is checked against the view once), and the temporary file never opens as a
// valid store unless it is that complete file. A failed export without power loss removes its
// temporary file; exporting again afterwards succeeds.
#[test]
fn a_crash_during_export_leaves_no_file_or_the_complete_one() {
    let seed = seed(0x6372_6173_6865);
    let images = if long() { 40 } else { 4 };
    println!("export crash seed={seed} images_per_point={images} (rerun: KEEL_TEST_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);
    let store = crash_source(&mut rng);
    let view = store.read_view();
    let running = store.compaction_running();
    assert!(running.is_some());
    // The reference: an export without faults, checked against the view.
    let reference_io = MemPageIo::new("/reference");
    reference_io.set_faults(Faults::default());
    let stats = view
        .export_with(Arc::new(reference_io.clone()), SNAPSHOT, 5, b"meta")
        .expect("export");
    let ops = reference_io.counts().ops;
    assert!(
        stats.page_count > 1024,
        "the export flushes before its checkpoint: {stats:?}"
    );
    drop(open_and_compare(
        &reference_io,
        &observe(&view),
        running,
        &stats,
        5,
        b"meta",
    ));
    let reference = reference_io.file_bytes(SNAPSHOT).expect("reference file");
    let (mut absent, mut complete, mut temp_left) = (0, 0, 0);
    for point in 0..=ops {
        for fault in 0..3 {
            let faults = match fault {
                0 => Faults {
                    power_loss_at_op: Some(point),
                    ..Faults::default()
                },
                1 => Faults {
                    failed_sync: Some(point),
                    ..Faults::default()
                },
                _ => Faults {
                    failed_write: Some(point),
                    ..Faults::default()
                },
            };
            let io = MemPageIo::new("/crash");
            io.set_faults(faults);
            let outcome = view.export_with(Arc::new(io.clone()), SNAPSHOT, 5, b"meta");
            if fault > 0 && outcome.is_err() {
                let names = io.file_names();
                assert_eq!(
                    names,
                    Vec::<String>::new(),
                    "a failed export removes its file ({faults:?})"
                );
            }
            for _ in 0..images {
                let image = io.crash_image(rng.random::<u64>());
                let names = image.file_names();
                if names.contains(&SNAPSHOT.to_string()) {
                    assert!(
                        image.file_bytes(SNAPSHOT) == Some(reference.clone()),
                        "a present export is the complete one ({faults:?})"
                    );
                    complete += 1;
                } else {
                    absent += 1;
                }
                if names.contains(&TEMP.to_string()) {
                    temp_left += 1;
                    let reopened = MvccStore::open_with(Arc::new(image.clone()), TEMP, &options());
                    match reopened {
                        Err(_) => {}
                        Ok((_, opened)) if opened.created => {}
                        // Power lost between the last fsync and the rename: the complete file
                        // under its temporary name.
                        Ok(_) => assert!(
                            image.file_bytes(TEMP) == Some(reference.clone()),
                            "a temporary file that opens is the complete export ({faults:?})"
                        ),
                    }
                }
            }
            if fault > 0 {
                continue;
            }
            // Exporting again over whatever the power loss left works.
            let image = io.crash_image(rng.random::<u64>());
            view.export_with(Arc::new(image.clone()), SNAPSHOT, 5, b"meta")
                .expect("export after a crash");
            assert!(image.file_bytes(SNAPSHOT) == Some(reference.clone()));
            assert_eq!(image.file_names(), vec![SNAPSHOT.to_string()]);
        }
    }
    println!("export crash points={ops} absent={absent} complete={complete} temp_left={temp_left}");
    assert!(
        absent > 0 && complete > 0,
        "crashes landed on both sides of the rename"
    );
}

// Guards against an export destroying its own source: the store's file is refused.
#[test]
fn export_refuses_to_replace_the_source_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("keel.db");
    let (mut store, _) = MvccStore::open(&path, &options()).expect("open");
    let mut rng = StdRng::seed_from_u64(1);
    random_txn(&mut store, &mut rng);
    store.checkpoint(1, b"").expect("checkpoint");
    let error = store
        .read_view()
        .export(&path, 1, b"")
        .expect_err("refused");
    assert!(error.to_string().contains("cannot replace"), "{error}");
    let error = store
        .read_view()
        .export(dir.path(), 1, b"")
        .expect_err("a directory is not a file path");
    assert!(error.to_string().contains("I/O error"), "{error}");
    drop(store);
    let (store, opened) = MvccStore::open(&path, &options()).expect("reopen");
    assert_eq!(opened.applied_index, 1);
    store.check().expect("intact");
}

// Guards that an export replaces an older file at the target name (a newer snapshot of the
// same member) and that an empty store exports to a valid empty file.
#[test]
fn export_replaces_an_older_snapshot_and_exports_an_empty_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join(SNAPSHOT);
    let mut store = MvccStore::with_options(options());
    let empty = store.read_view();
    let expected_empty = observe(&empty);
    let stats = empty
        .export(&out, 0, b"")
        .expect("export of an empty store");
    assert_eq!(stats.revision, 1);
    let (copy, opened) = MvccStore::open(&out, &options()).expect("open");
    check_opened(&copy, &opened, &expected_empty, None, 0, b"");
    drop(copy);
    let mut rng = StdRng::seed_from_u64(2);
    for _ in 0..30 {
        random_txn(&mut store, &mut rng);
    }
    let view = store.read_view();
    let expected = observe(&view);
    view.export(&out, 31, b"newer")
        .expect("export over the old one");
    let (copy, opened) = MvccStore::open(&out, &options()).expect("open");
    check_opened(&copy, &opened, &expected, None, 31, b"newer");
}
