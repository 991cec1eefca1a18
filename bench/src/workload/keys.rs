//! Keys and values as etcd's benchmark makes them: key number `n` is written with Go's
//! `binary.PutVarint` (zigzag varint) at the start of a zeroed `--key-size` buffer, so the
//! same flags give the same keys in etcd's tool and in keel-bench.

use bytes::Bytes;
use rand::{Rng as _, RngCore as _};

/// etcd's `--key-size` and `--key-space-size`.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct KeySpace {
    /// Key size of the requests (bytes).
    #[arg(long, default_value_t = 8)]
    pub(crate) key_size: usize,
    /// Maximum possible keys (key numbers 0 to this - 1).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) key_space_size: u64,
}

impl KeySpace {
    /// Checks that every key number fits in `--key-size` bytes (etcd's tool panics instead).
    pub(crate) fn validate(&self) -> anyhow::Result<()> {
        let needed_bytes = varint_size_bytes(self.key_space_size - 1);
        anyhow::ensure!(
            self.key_size >= needed_bytes,
            "--key-size {} cannot hold key numbers up to {} ({needed_bytes} bytes as a varint)",
            self.key_size,
            self.key_space_size - 1
        );
        Ok(())
    }

    /// The key of key number `n % --key-space-size`.
    pub(crate) fn key(&self, n: u64) -> Bytes {
        encode_key(n % self.key_space_size, self.key_size)
    }

    /// A uniformly random key of the key space.
    pub(crate) fn random_key(&self) -> Bytes {
        self.key(rand::rng().random_range(0..self.key_space_size))
    }
}

/// Zigzag varint of `n` (as Go's `binary.PutVarint(int64(n))`) in a zeroed buffer of
/// `size_bytes` bytes. The caller has checked that the varint fits.
pub(crate) fn encode_key(n: u64, size_bytes: usize) -> Bytes {
    let mut key = vec![0u8; size_bytes];
    let mut zigzag = n << 1;
    let mut at = 0;
    // Bounded: a u64 takes at most 10 varint bytes.
    loop {
        let byte = (zigzag & 0x7f) as u8;
        zigzag >>= 7;
        assert!(
            at < size_bytes,
            "key number {n} does not fit in {size_bytes} bytes"
        );
        if zigzag == 0 {
            key[at] = byte;
            break;
        }
        key[at] = byte | 0x80;
        at += 1;
    }
    Bytes::from(key)
}

/// Bytes of the zigzag varint of `n`.
pub(crate) fn varint_size_bytes(n: u64) -> usize {
    let bits = 64 - (n << 1).leading_zeros() as usize;
    bits.div_ceil(7).max(1)
}

/// `size_bytes` random bytes (etcd's `mustRandBytes`), the value of every put of a run.
pub(crate) fn random_value(size_bytes: usize) -> Bytes {
    let mut value = vec![0u8; size_bytes];
    rand::rng().fill_bytes(&mut value);
    Bytes::from(value)
}

/// A value of `size_bytes` (at least 8) that starts with `number` (big-endian), so that a
/// watcher can tell which put an event belongs to.
pub(crate) fn numbered_value(number: u64, size_bytes: usize) -> Bytes {
    let mut value = vec![b'v'; size_bytes.max(8)];
    value[..8].copy_from_slice(&number.to_be_bytes());
    Bytes::from(value)
}

/// The put number carried by a [`numbered_value`], if the value is one.
pub(crate) fn value_number(value: &[u8]) -> Option<u64> {
    let head: [u8; 8] = value.get(..8)?.try_into().ok()?;
    Some(u64::from_be_bytes(head))
}

#[cfg(test)]
mod tests {
    use super::*;

    // The bytes Go's binary.PutVarint writes: zigzag (n << 1 for n >= 0), then 7 bits per byte,
    // low group first, high bit = more bytes follow.
    #[test]
    fn keys_are_gos_put_varint_in_a_zeroed_buffer() {
        assert_eq!(&encode_key(0, 8)[..], &[0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&encode_key(1, 4)[..], &[2, 0, 0, 0]);
        assert_eq!(&encode_key(63, 2)[..], &[126, 0]);
        assert_eq!(&encode_key(64, 3)[..], &[0x80, 0x01, 0]);
        assert_eq!(&encode_key(300, 3)[..], &[0xd8, 0x04, 0]);
    }

    #[test]
    fn varint_sizes_match_the_encoding() {
        for n in [0, 1, 63, 64, 8191, 8192, 1 << 40, u64::MAX >> 1] {
            let size = varint_size_bytes(n);
            let key = encode_key(n, 10);
            let used = key.iter().rposition(|b| *b != 0).map_or(1, |i| i + 1);
            assert_eq!(size, used, "n = {n}");
        }
    }

    #[test]
    fn a_key_space_too_large_for_the_key_size_is_rejected() {
        let space = KeySpace {
            key_size: 1,
            key_space_size: 65,
        };
        assert!(space.validate().is_err());
        let space = KeySpace {
            key_size: 1,
            key_space_size: 64,
        };
        assert!(space.validate().is_ok());
        assert_eq!(space.key(64 + 5), encode_key(5, 1));
    }

    #[test]
    fn numbered_values_round_trip_and_keep_their_size() {
        let value = numbered_value(123_456, 32);
        assert_eq!(value.len(), 32);
        assert_eq!(value_number(&value), Some(123_456));
        assert_eq!(numbered_value(7, 2).len(), 8);
        assert_eq!(value_number(b"short"), None);
    }
}
