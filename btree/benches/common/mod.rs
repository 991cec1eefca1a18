//! Shared by the benches: the store and keys the brief measures against (16-byte keys,
//! 256-byte values), built in a seeded random order into a page file on disk.

#![allow(dead_code)] // Each bench uses a different part.

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use keel_btree::{KeyRange, MvccStore, StoreOptions};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

pub const KEY_SIZE_BYTES: usize = 16;
pub const VALUE_SIZE_BYTES: usize = 256;
pub const SEED: u64 = 0x6b65_656c_6265_6e63;
/// Puts per checkpoint while building: bounds the memory of uncheckpointed changes.
const BUILD_CHECKPOINT_EVERY_PUTS: usize = 100_000;
/// Timed puts between the untimed compactions + checkpoints of a [`Workload`].
const MAINTAIN_EVERY_PUTS: usize = 50_000;
/// Keys (or ranges) drawn in advance for the read benches.
pub const READ_KEYS_POOL_LEN: usize = 1 << 16;

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

/// A store of `key_count` keys built by [`build`] in a temporary directory, and the random
/// (key, value) puts the write benches time against it. Every 50k puts the store is compacted
/// and checkpointed (untimed) so history does not pile up.
pub struct Workload {
    _dir: tempfile::TempDir,
    pub store: MvccStore,
    pub key_count: u64,
    rng: StdRng,
    puts_since_maintenance: usize,
}

impl Workload {
    /// Builds the store with `options`; the puts are drawn from `seed`.
    pub fn new(key_count: u64, options: &StoreOptions, seed: u64) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = MvccStore::open(dir.path().join("bench.db"), options)
            .expect("open")
            .0;
        build(&mut store, key_count, 1000, 1);
        Workload {
            _dir: dir,
            store,
            key_count,
            rng: StdRng::seed_from_u64(seed),
            puts_since_maintenance: 0,
        }
    }

    /// `puts` random (existing key, fresh value) pairs.
    pub fn inputs(&mut self, puts: usize) -> Vec<(Bytes, Bytes)> {
        (0..puts)
            .map(|_| {
                let key = key(self.rng.random_range(0..self.key_count));
                (key, value(&mut self.rng))
            })
            .collect()
    }

    /// Counts `puts` more; compacts and checkpoints once 50k accumulated.
    pub fn maintain(&mut self, puts: usize) {
        self.puts_since_maintenance += puts;
        if self.puts_since_maintenance >= MAINTAIN_EVERY_PUTS {
            let revision = self.store.revision();
            self.store.compact(revision).expect("compact to current");
            checkpoint(&mut self.store);
            self.puts_since_maintenance = 0;
        }
    }

    /// Runs `iters` rounds of `round` over `puts_per_round` fresh (key, value) pairs each;
    /// only `round` is timed.
    pub fn time_rounds(
        &mut self,
        iters: u64,
        puts_per_round: usize,
        round: impl Fn(&mut MvccStore, Vec<(Bytes, Bytes)>),
    ) -> Duration {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            let inputs = self.inputs(puts_per_round);
            let started = Instant::now();
            round(&mut self.store, inputs);
            total += started.elapsed();
            self.maintain(puts_per_round);
        }
        total
    }
}

/// The read benches' inputs over `key_count` keys, drawn from `seed`: single keys, and
/// ranges of 100 keys.
pub fn read_pools(key_count: u64, seed: u64) -> (Vec<KeyRange>, Vec<KeyRange>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let points = (0..READ_KEYS_POOL_LEN)
        .map(|_| KeyRange::Key(key(rng.random_range(0..key_count))))
        .collect();
    let ranges = (0..READ_KEYS_POOL_LEN)
        .map(|_| {
            let start = rng.random_range(0..key_count - 200);
            KeyRange::Range {
                start: key(start),
                end: key(start + 100),
            }
        })
        .collect();
    (points, ranges)
}
