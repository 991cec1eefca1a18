//! Shared by the benches: the store and keys the brief measures against (16-byte keys,
//! 256-byte values), built in a seeded random order into a page file on disk.

#![allow(dead_code)] // Each bench uses a different part.

use std::path::Path;
use std::time::Instant;

use bytes::Bytes;
use keel_btree::{MvccStore, StoreOptions};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

pub const KEY_SIZE_BYTES: usize = 16;
pub const VALUE_SIZE_BYTES: usize = 256;
pub const SEED: u64 = 0x6b65_656c_6265_6e63;
/// Puts per checkpoint while building: bounds the memory of uncheckpointed changes.
const BUILD_CHECKPOINT_EVERY_PUTS: usize = 100_000;

/// Key number `i` as 16 bytes ("key/" + 12 hex digits): sorts like `i`.
pub fn key(i: u64) -> Bytes {
    let key = format!("key/{i:012x}");
    assert_eq!(key.len(), KEY_SIZE_BYTES);
    Bytes::copy_from_slice(key.as_bytes())
}

pub fn value(rng: &mut StdRng) -> Bytes {
    let mut value = vec![0u8; VALUE_SIZE_BYTES];
    rng.fill(&mut value[..]);
    Bytes::from(value)
}

/// Opens (creating) the page file at `path`.
pub fn open(path: &Path) -> MvccStore {
    MvccStore::open(path, &StoreOptions::default())
        .expect("open")
        .0
}

/// Writes `key_count` keys `rounds` times (each round in a new random order), `batch_puts`
/// puts per transaction, checkpointing every 100k puts and at the end. Prints how long it
/// took and the file size.
pub fn build(store: &mut MvccStore, key_count: u64, batch_puts: usize, rounds: usize) {
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(SEED);
    let mut order: Vec<u64> = (0..key_count).collect();
    let mut since_checkpoint = 0;
    for _ in 0..rounds {
        order.shuffle(&mut rng);
        for chunk in order.chunks(batch_puts) {
            let mut txn = store.write_txn();
            for &i in chunk {
                txn.try_put(key(i), value(&mut rng), 0).expect("put");
            }
            txn.try_commit().expect("commit");
            since_checkpoint += chunk.len();
            if since_checkpoint >= BUILD_CHECKPOINT_EVERY_PUTS {
                checkpoint(store);
                since_checkpoint = 0;
            }
        }
    }
    checkpoint(store);
    eprintln!(
        "built {key_count} keys x {rounds} rounds in {:?}: file {} MiB, {} MiB in use",
        started.elapsed(),
        store.size_bytes() >> 20,
        store.size_in_use_bytes() >> 20
    );
}

pub fn checkpoint(store: &mut MvccStore) {
    let index = store.applied_index() + 1;
    store.checkpoint(index, b"bench").expect("checkpoint");
}
