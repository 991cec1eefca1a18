//! Backward compatibility: a page file written by format version 1 (`tests/data/format-v1.keel`,
//! 512-byte pages: MVCC history with a compaction, a blob key, a blob value, bucket entries, a
//! free list, two checkpoints) must keep opening with the same contents. A later format
//! version keeps this file and this test. `KEEL_REWRITE=1` regenerates the file: only for
//! version 1 itself, never to paper over a format change.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use keel_btree::{Bucket, KeyRange, MemPageIo, MvccStore, RangeOptions, StoreOptions};

const FILE: &str = "format-v1.keel";

fn options() -> StoreOptions {
    StoreOptions {
        page_size_bytes: 512,
        growth_bytes_min: 0,
        ..StoreOptions::default()
    }
}

fn golden_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(FILE)
}

fn long_key() -> Bytes {
    Bytes::from([&b"blob-key/"[..], &[b'k'; 200][..]].concat())
}

fn build() -> Vec<u8> {
    let io = MemPageIo::new("/golden");
    let (mut store, _) =
        MvccStore::open_with(Arc::new(io.clone()), FILE, &options()).expect("create");
    for round in 0..3u8 {
        let mut txn = store.write_txn();
        for i in 0..40u8 {
            let key = Bytes::from(format!("key/{i:02}"));
            txn.try_put(key, Bytes::from(vec![b'a' + round; 10]), i64::from(i % 3))
                .expect("put");
        }
        txn.try_commit().expect("commit");
    }
    let mut txn = store.write_txn();
    txn.try_put(long_key(), Bytes::from(vec![b'v'; 1000]), 0)
        .expect("put");
    txn.try_delete_range(&KeyRange::Range {
        start: Bytes::from_static(b"key/10"),
        end: Bytes::from_static(b"key/20"),
    })
    .expect("delete");
    txn.bucket_put(
        Bucket::Members,
        Bytes::from_static(b"m1"),
        Bytes::from_static(b"peer"),
    )
    .expect("bucket");
    txn.try_commit().expect("commit");
    store.checkpoint(10, b"first").expect("checkpoint");
    store.compact(3).expect("compact");
    store.checkpoint(11, b"second").expect("checkpoint");
    drop(store);
    io.file_bytes(FILE).expect("file")
}

// Guards STYLE's format rule: every version keeps opening the files of the versions before.
#[test]
fn a_version_1_file_opens_with_its_contents() {
    if std::env::var("KEEL_REWRITE").is_ok_and(|v| v == "1") {
        std::fs::write(golden_path(), build()).expect("write the golden file");
    }
    let bytes = std::fs::read(golden_path()).expect("tests/data/format-v1.keel exists");
    let io = MemPageIo::new("/golden");
    io.put_file(FILE, bytes);
    let (store, opened) =
        MvccStore::open_with(Arc::new(io), FILE, &options()).expect("a v1 file opens");
    assert_eq!(opened.applied_index, 11);
    assert_eq!(&opened.checkpoint_metadata[..], b"second");
    assert_eq!(store.page_size_bytes(), 512);
    assert_eq!((store.revision(), store.compacted_revision()), (5, 3));
    store.check().expect("consistent, pages accounted");
    let view = store.read_view();
    let all = view
        .try_range(&KeyRange::FromKey(Bytes::new()), &RangeOptions::default())
        .expect("read");
    assert_eq!(all.count, 31, "40 keys, 10 deleted, one blob key");
    let blob = &all.kvs[0];
    assert_eq!(
        (&blob.key, blob.value.len(), blob.mod_revision),
        (&long_key(), 1000, 5)
    );
    let k05 = all
        .kvs
        .iter()
        .find(|kv| kv.key == "key/05")
        .expect("key/05");
    assert_eq!(
        (&k05.value[..], k05.version, k05.create_revision, k05.lease),
        (&[b'c'; 10][..], 3, 2, 2)
    );
    let at_3 = RangeOptions {
        revision: 3,
        ..RangeOptions::default()
    };
    let old = view
        .try_range(&KeyRange::Key(Bytes::from_static(b"key/15")), &at_3)
        .expect("read at the compacted revision");
    assert_eq!(&old.kvs[0].value[..], &[b'b'; 10][..]);
    assert_eq!(
        view.bucket_get(Bucket::Members, b"m1")
            .expect("bucket")
            .as_deref(),
        Some(&b"peer"[..])
    );
}
