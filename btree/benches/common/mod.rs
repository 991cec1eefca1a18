//! Shared by the benches: the store and keys the brief measures against (16-byte keys,
//! 256-byte values), built in a seeded random order.

#![allow(dead_code)] // Each bench uses a different part.

use bytes::Bytes;
use keel_btree::MvccStore;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

pub const KEY_SIZE_BYTES: usize = 16;
pub const VALUE_SIZE_BYTES: usize = 256;
pub const SEED: u64 = 0x6b65_656c_6265_6e63;

/// Key number `i` as 16 bytes ("key/" + 12 hex digits): sorts like `i`.
pub fn key(i: u64) -> Bytes {
    let key = format!("key/{i:012x}");
    assert_eq!(key.len(), KEY_SIZE_BYTES);
    // One exact-size allocation, as a caller that owns its keys would pass them.
    Bytes::copy_from_slice(key.as_bytes())
}

pub fn value(rng: &mut StdRng) -> Bytes {
    let mut value = vec![0u8; VALUE_SIZE_BYTES];
    rng.fill(&mut value[..]);
    Bytes::from(value)
}

/// `key_count` keys, each put once, in random order, `batch_puts` puts per transaction.
pub fn store_with_keys(key_count: u64, batch_puts: usize) -> MvccStore {
    store_with_rounds(key_count, batch_puts, 1)
}

/// `key_count` keys, each put `rounds` times (each round in a new random order).
pub fn store_with_rounds(key_count: u64, batch_puts: usize, rounds: usize) -> MvccStore {
    let mut rng = StdRng::seed_from_u64(SEED);
    let mut order: Vec<u64> = (0..key_count).collect();
    let mut store = MvccStore::new();
    for _ in 0..rounds {
        order.shuffle(&mut rng);
        for chunk in order.chunks(batch_puts) {
            let mut txn = store.write_txn();
            for &i in chunk {
                txn.put(key(i), value(&mut rng), 0);
            }
            txn.commit();
        }
    }
    store
}
