//! One module per subcommand.

pub(crate) mod lease_keepalive;
pub(crate) mod put;
pub(crate) mod range;
pub(crate) mod txn_put;
pub(crate) mod watch_latency;

use rand::Rng;

/// How keys are chosen (etcd benchmark's --key-size, --key-space-size,
/// --sequential-keys).
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct KeyArgs {
    /// Key size in bytes.
    #[arg(long, default_value_t = 8)]
    pub(crate) key_size: usize,
    /// Number of distinct keys.
    #[arg(long, default_value_t = 1)]
    pub(crate) key_space_size: u64,
    /// Use keys 0, 1, 2, ... in order instead of random ones.
    #[arg(long)]
    pub(crate) sequential_keys: bool,
}

impl KeyArgs {
    /// The key for request `i`: a number in the key space, big-endian,
    /// padded to --key-size (as etcd's benchmark builds keys).
    pub(crate) fn key(&self, i: u64) -> Vec<u8> {
        let n = if self.sequential_keys {
            i % self.key_space_size.max(1)
        } else {
            rand::rng().random_range(0..self.key_space_size.max(1))
        };
        let mut key = vec![0u8; self.key_size.max(8)];
        key[..8].copy_from_slice(&n.to_be_bytes());
        key.truncate(self.key_size.max(1));
        key
    }
}

/// A value of --val-size bytes.
pub(crate) fn value(size: usize) -> bytes::Bytes {
    bytes::Bytes::from(vec![b'v'; size])
}
