#![allow(dead_code)] // Each target uses a different part.
//! Shared by the targets: a valid page file to mutate, and "open it and read everything".

use std::sync::Arc;

use bytes::Bytes;
use keel_btree::{Bucket, KeyRange, MemPageIo, MvccStore, RangeOptions, StoreOptions};

pub const FILE: &str = "fuzz.db";
pub const PAGE_SIZE_BYTES: usize = 512;

pub fn options() -> StoreOptions {
    StoreOptions {
        page_size_bytes: PAGE_SIZE_BYTES,
        growth_bytes_min: 0,
        ..StoreOptions::default()
    }
}

/// A small valid file with history, a compaction, buckets, blob keys and blob values, two
/// checkpoints.
pub fn valid_file() -> Vec<u8> {
    let io = MemPageIo::new("/fuzz");
    let (mut store, _) =
        MvccStore::open_with(Arc::new(io.clone()), FILE, &options()).expect("create");
    for round in 0..3u8 {
        let mut txn = store.write_txn();
        for i in 0..60u32 {
            let mut key = format!("k/{i:03}").into_bytes();
            if i % 13 == 0 {
                key.extend([b'x'; 150]);
            }
            let len = if i % 11 == 0 { 900 } else { 12 };
            txn.try_put(Bytes::from(key), Bytes::from(vec![round; len]), 0)
                .expect("put");
        }
        txn.bucket_put(
            Bucket::Lease,
            Bytes::from(vec![round]),
            Bytes::from_static(b"l"),
        )
        .expect("bucket");
        txn.try_commit().expect("commit");
        if round == 1 {
            store.checkpoint(1, b"one").expect("checkpoint");
        }
    }
    store.compact(3).expect("compact");
    store.checkpoint(2, b"two").expect("checkpoint");
    drop(store);
    io.file_bytes(FILE).expect("file")
}

/// Opens `bytes` as a page file and reads everything every way there is. Errors are fine; a
/// panic or a hang is a bug.
pub fn open_and_read_all(bytes: Vec<u8>) {
    let io = MemPageIo::new("/fuzz");
    io.put_file(FILE, bytes);
    let Ok((mut store, _)) = MvccStore::open_with(Arc::new(io), FILE, &options()) else {
        return;
    };
    let view = store.read_view();
    let all = KeyRange::FromKey(Bytes::new());
    let _ = view.try_range(&all, &RangeOptions::default());
    let _ = view.try_events(&all, view.compacted_revision(), i64::MAX, 0, true);
    let _ = view.hash_kv(0);
    for bucket in Bucket::ALL {
        let _ = view.bucket_range(bucket, &all, 0);
    }
    let _ = store.check();
    // Writing on a damaged file must fail cleanly too.
    let mut txn = store.write_txn();
    let _ = txn.try_put(Bytes::from_static(b"k/001"), Bytes::from_static(b"v"), 0);
    let _ = txn.try_delete_range(&KeyRange::Key(Bytes::from_static(b"k/002")));
    let _ = txn.try_commit();
    let _ = store.compact_step(100);
}
