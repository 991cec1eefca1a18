//! Random keys and values shared by the workload tests (crash, export): sizes chosen so that
//! some keys and values overflow into blobs at small page sizes.

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::Rng;

/// One of `key_space` keys `key/NNN`; every 17th padded to 157 bytes (a blob at 512-byte
/// pages).
pub fn key(rng: &mut StdRng, key_space: u32) -> Bytes {
    let n = rng.random_range(0..key_space);
    let pad = if n % 17 == 0 { 150 } else { 0 };
    let mut key = format!("key/{n:03}").into_bytes();
    key.extend(std::iter::repeat_n(b'p', pad));
    Bytes::from(key)
}

/// A value of one repeated byte: usually under 60 bytes, one in 12 of 200-2500 bytes.
pub fn value(rng: &mut StdRng) -> Bytes {
    let len = if rng.random_ratio(1, 12) {
        rng.random_range(200..2500)
    } else {
        rng.random_range(0..60)
    };
    let byte: u8 = rng.random();
    Bytes::from(vec![byte; len])
}
