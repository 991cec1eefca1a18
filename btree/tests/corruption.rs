//! Damaged files: bytes that fail verification are reported as `BtreeError::Corrupt` naming the
//! file and the page, never read as data; a torn or damaged meta page falls back to the other
//! one; and seeded random mutations of a valid file (flipped bytes, zeroed ranges, truncation,
//! pages copied over others, and pages damaged then re-sealed with a valid checksum, which
//! reach the decoders behind the checksum) only ever give errors, never a panic or a hang.
//! The cargo-fuzz targets in `btree/fuzz/` explore the same space without bounds.
//!
//! Seeded: prints its seed; rerun with `KEEL_TEST_SEED=<seed>`; `KEEL_LONG_TESTS=1` runs 20x
//! more mutations.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use keel_btree::{
    BtreeError, Bucket, Corruption, KeyRange, MemPageIo, MvccStore, PageId, RangeOptions,
    StoreOptions,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const FILE: &str = "damaged.db";
const PAGE_SIZE_BYTES: usize = 512;

fn options() -> StoreOptions {
    StoreOptions {
        page_size_bytes: PAGE_SIZE_BYTES,
        growth_bytes_min: 0,
        ..StoreOptions::default()
    }
}

/// A store with history (puts, deletes, a compaction), bucket entries and, if `blobs`, values
/// long enough to be blobs; checkpointed twice. Returns the file's bytes and its contents.
fn build(blobs: bool) -> (Vec<u8>, BTreeMap<Bytes, Bytes>) {
    let io = MemPageIo::new("/damage");
    let (mut store, _) =
        MvccStore::open_with(Arc::new(io.clone()), FILE, &options()).expect("create");
    for round in 0..3u32 {
        let mut txn = store.write_txn();
        for i in 0..150u32 {
            let key = Bytes::from(format!("key/{i:04}"));
            let len = if blobs && i % 10 == 0 { 1500 } else { 20 };
            let value = Bytes::from(vec![(round * 7 + i) as u8 | 1; len]);
            txn.try_put(key, value, 0).expect("put");
        }
        txn.bucket_put(
            Bucket::Alarm,
            Bytes::from(format!("alarm/{round}")),
            Bytes::from_static(b"x"),
        )
        .expect("bucket put");
        txn.try_commit().expect("commit");
        if round == 1 {
            store.checkpoint(1, b"first").expect("checkpoint");
        }
    }
    let mut txn = store.write_txn();
    txn.try_delete_range(&KeyRange::Range {
        start: Bytes::from_static(b"key/0100"),
        end: Bytes::from_static(b"key/0120"),
    })
    .expect("delete");
    txn.try_commit().expect("commit");
    store.compact(3).expect("compact");
    store.checkpoint(2, b"second").expect("checkpoint");
    let contents = contents(&store).expect("reads");
    drop(store);
    (io.file_bytes(FILE).expect("file"), contents)
}

fn contents(store: &MvccStore) -> Result<BTreeMap<Bytes, Bytes>, BtreeError> {
    let view = store.read_view();
    let all = KeyRange::FromKey(Bytes::new());
    let mut out: BTreeMap<Bytes, Bytes> = view
        .try_range(&all, &RangeOptions::default())?
        .kvs
        .into_iter()
        .map(|kv| (kv.key, kv.value))
        .collect();
    for (key, value) in view.bucket_range(Bucket::Alarm, &all, 0)? {
        out.insert([&b"bucket:"[..], &key].concat().into(), value);
    }
    Ok(out)
}

/// Opens `bytes` and reads everything every way there is; returns what a full read found.
fn open_and_read_all(bytes: Vec<u8>) -> Result<BTreeMap<Bytes, Bytes>, BtreeError> {
    let io = MemPageIo::new("/damage");
    io.put_file(FILE, bytes);
    let (store, _) = MvccStore::open_with(Arc::new(io), FILE, &options())?;
    let found = contents(&store)?;
    let view = store.read_view();
    let all = KeyRange::FromKey(Bytes::new());
    view.try_events(&all, view.compacted_revision(), i64::MAX, 0, true)?;
    view.hash_kv(0)?;
    for revision in 0..=store.revision() {
        let opts = RangeOptions {
            revision,
            ..RangeOptions::default()
        };
        match view.try_range(&all, &opts) {
            Ok(_) | Err(BtreeError::Mvcc(_)) => {}
            Err(error) => return Err(error),
        }
    }
    store.check()?;
    Ok(found)
}

fn seal(page: &mut [u8]) {
    let crc = crc32fast::hash(&page[4..]);
    page[0..4].copy_from_slice(&crc.to_le_bytes());
}

// Guards crate invariant 8 and the error contract: a flipped bit anywhere in a page the
// store uses is reported as that page of that file; a page not in use (free) changes nothing.
#[test]
fn a_checksum_mismatch_names_the_file_and_the_page() {
    let (file, want) = build(false);
    let page_count = file.len() / PAGE_SIZE_BYTES;
    let mut corrupt_pages = 0;
    for page in 2..page_count {
        let mut bytes = file.clone();
        bytes[page * PAGE_SIZE_BYTES + PAGE_SIZE_BYTES / 2] ^= 0x04;
        match open_and_read_all(bytes) {
            Ok(found) => assert_eq!(found, want, "page {page} is free: nothing changes"),
            Err(BtreeError::Corrupt {
                path,
                page_id,
                reason,
            }) => {
                assert_eq!(path, PathBuf::from("/damage").join(FILE));
                assert_eq!(page_id, PageId(page as u64), "{reason}");
                assert!(matches!(reason, Corruption::Checksum { .. }), "{reason}");
                corrupt_pages += 1;
            }
            Err(other) => panic!("page {page}: unexpected {other}"),
        }
    }
    assert!(
        corrupt_pages > page_count / 2,
        "most pages are in use: {corrupt_pages} of {page_count}"
    );
}

// A blob's checksum covers its payload: damage in the middle of a long value is reported as
// the blob's first page.
#[test]
fn a_damaged_blob_is_reported_as_its_first_page() {
    let (file, _) = build(true);
    // The live value of key/0000 (round 2): 1500 bytes of (2 * 7 + 0) | 1.
    let pattern = vec![15u8; 1500];
    let at = file
        .windows(pattern.len())
        .position(|window| window == pattern)
        .expect("the long value of key/0000 is in the file");
    let run_start = (0..=at / PAGE_SIZE_BYTES)
        .rev()
        .find(|&page| file[page * PAGE_SIZE_BYTES + 4] == 5)
        .expect("the blob's first page precedes its payload");
    let mut bytes = file.clone();
    bytes[at + 700] ^= 0x80;
    match open_and_read_all(bytes) {
        Err(BtreeError::Corrupt {
            page_id, reason, ..
        }) => {
            assert_eq!(page_id, PageId(run_start as u64));
            assert!(matches!(reason, Corruption::Checksum { .. }), "{reason}");
        }
        other => panic!("expected the blob to be corrupt, got {other:?}"),
    }
}

// Guards crate invariant 5 from the reader's side: a damaged newest meta page falls back to
// the previous checkpoint; both damaged is an error naming page 0, never an empty store.
#[test]
fn a_damaged_meta_falls_back_to_the_other_and_two_are_an_error() {
    let (file, _) = build(false);
    let newest_slot = 0; // The second checkpoint (txn 2) is in slot 0.
    let mut bytes = file.clone();
    bytes[newest_slot * PAGE_SIZE_BYTES + 100] ^= 1;
    let io = MemPageIo::new("/damage");
    io.put_file(FILE, bytes.clone());
    let (_, opened) = MvccStore::open_with(Arc::new(io), FILE, &options()).expect("falls back");
    assert_eq!(opened.applied_index, 1);
    assert_eq!(&opened.checkpoint_metadata[..], b"first");

    bytes[PAGE_SIZE_BYTES + 100] ^= 1;
    let io = MemPageIo::new("/damage");
    io.put_file(FILE, bytes);
    match MvccStore::open_with(Arc::new(io), FILE, &options()) {
        Err(BtreeError::Corrupt {
            page_id: PageId(0),
            reason: Corruption::NoValidMeta,
            ..
        }) => {}
        other => panic!("expected NoValidMeta, got {other:?}"),
    }
}

fn mutate(rng: &mut StdRng, file: &[u8]) -> Vec<u8> {
    let mut bytes = file.to_vec();
    let page_count = bytes.len() / PAGE_SIZE_BYTES;
    match rng.random_range(0..6) {
        0 => {
            for _ in 0..rng.random_range(1..8) {
                let at = rng.random_range(0..bytes.len());
                bytes[at] ^= 1 << rng.random_range(0..8);
            }
        }
        1 => {
            let start = rng.random_range(0..bytes.len());
            let end = (start + rng.random_range(1..2000)).min(bytes.len());
            bytes[start..end].fill(0);
        }
        2 => bytes.truncate(rng.random_range(0..bytes.len())),
        3 => {
            let source = rng.random_range(0..page_count) * PAGE_SIZE_BYTES;
            let target = rng.random_range(0..page_count) * PAGE_SIZE_BYTES;
            let page = bytes[source..source + PAGE_SIZE_BYTES].to_vec();
            bytes[target..target + PAGE_SIZE_BYTES].copy_from_slice(&page);
        }
        _ => {
            // Damage one page behind a valid checksum: the decoders must cope.
            let page = rng.random_range(0..page_count) * PAGE_SIZE_BYTES;
            for _ in 0..rng.random_range(1..6) {
                let at = page + rng.random_range(4..PAGE_SIZE_BYTES);
                bytes[at] = rng.random();
            }
            seal(&mut bytes[page..page + PAGE_SIZE_BYTES]);
        }
    }
    bytes
}

fn seed() -> u64 {
    match std::env::var("KEEL_TEST_SEED") {
        Ok(text) => text.parse().expect("KEEL_TEST_SEED is a u64"),
        Err(_) => 0x6d75_7461_7465,
    }
}

// The in-tree companion of the cargo-fuzz target: opening and reading mutated files gives
// errors, never a panic.
#[test]
fn mutated_files_give_errors_never_panics() {
    let seed = seed();
    let long = std::env::var("KEEL_LONG_TESTS").is_ok_and(|v| v == "1");
    let mutations = if long { 20_000 } else { 1_000 };
    println!("mutation test seed={seed} mutations={mutations} (rerun: KEEL_TEST_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);
    let files = [build(false), build(true)];
    let (mut readable, mut refused) = (0, 0);
    for _ in 0..mutations {
        let (file, _) = &files[rng.random_range(0..files.len())];
        match open_and_read_all(mutate(&mut rng, file)) {
            Ok(_) => readable += 1,
            Err(_) => refused += 1,
        }
    }
    println!("mutated files: {readable} read without error, {refused} refused with an error");
    assert!(refused > mutations / 4, "mutations were detected");
}

// Guards the undo contract: a write that fails half-way on a corrupt page fails its
// transaction, and dropping it puts back the transaction's earlier changes; the store goes on.
#[test]
fn a_write_failing_on_a_corrupt_page_undoes_its_transaction() {
    let (file, want) = build(false);
    let page_count = file.len() / PAGE_SIZE_BYTES;
    let first = Bytes::from_static(b"key/0001");
    let second = Bytes::from_static(b"key/0140");
    let all = KeyRange::FromKey(Bytes::new());
    let mut undone = 0;
    for page in 2..page_count {
        let mut bytes = file.clone();
        bytes[page * PAGE_SIZE_BYTES + PAGE_SIZE_BYTES / 2] ^= 0x20;
        let io = MemPageIo::new("/damage");
        io.put_file(FILE, bytes);
        let Ok((mut store, _)) = MvccStore::open_with(Arc::new(io), FILE, &options()) else {
            continue;
        };
        let revision = store.revision();
        let mut txn = store.write_txn();
        if txn
            .try_put(first.clone(), Bytes::from_static(b"new"), 0)
            .is_err()
        {
            continue;
        }
        let bucket = Bytes::from_static(b"x");
        if txn
            .bucket_put(Bucket::Alarm, bucket, Bytes::from_static(b"y"))
            .is_err()
        {
            continue;
        }
        let Err(error) = txn.try_put(second.clone(), Bytes::from_static(b"new"), 0) else {
            continue;
        };
        assert!(matches!(error, BtreeError::Corrupt { .. }), "{error}");
        assert!(matches!(
            txn.try_put(first.clone(), Bytes::new(), 0),
            Err(BtreeError::TxnFailed { .. })
        ));
        drop(txn);
        let view = store.read_view();
        let got = view
            .try_range(&KeyRange::Key(first.clone()), &RangeOptions::default())
            .expect("the first key's path is readable");
        assert_eq!(
            Some(&got.kvs[0].value),
            want.get(&first),
            "page {page}: undone"
        );
        assert_eq!(view.revision(), revision, "no revision was committed");
        let mut txn = store.write_txn();
        txn.try_put(first.clone(), Bytes::from_static(b"after"), 0)
            .expect("the store takes writes after the undo");
        txn.try_commit().expect("commit");
        assert!(
            view.try_range(&all, &RangeOptions::default()).is_err(),
            "page {page} is in use"
        );
        undone += 1;
    }
    assert!(undone > 0, "some page lies on the second key's path only");
}
