//! FNV-1a (64-bit): a small, stable hash for trace digests, entry payloads and KV states.
//! `std`'s hashers may change between Rust releases; a digest printed by one build must
//! match the digest of another build of the same code.

const FNV_OFFSET_BASIS: u64 = 0xCBF2_9CE4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01B3;

/// An FNV-1a 64 accumulator.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Fnv64(u64);

impl Default for Fnv64 {
    fn default() -> Self {
        Fnv64(FNV_OFFSET_BASIS)
    }
}

impl Fnv64 {
    pub(crate) fn write_bytes(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 ^= u64::from(byte);
            self.0 = self.0.wrapping_mul(FNV_PRIME);
        }
    }

    pub(crate) fn write_u64(&mut self, value: u64) {
        self.write_bytes(&value.to_le_bytes());
    }

    pub(crate) fn finish(self) -> u64 {
        self.0
    }
}

/// Digest of one byte string.
pub(crate) fn digest_bytes(bytes: &[u8]) -> u64 {
    let mut fnv = Fnv64::default();
    fnv.write_bytes(bytes);
    fnv.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Published FNV-1a 64 test vectors: the digest must never drift between builds.
    #[test]
    fn fnv1a_matches_the_reference_vectors() {
        assert_eq!(digest_bytes(b""), 0xCBF2_9CE4_8422_2325);
        assert_eq!(digest_bytes(b"a"), 0xAF63_DC4C_8601_EC8C);
        assert_eq!(digest_bytes(b"foobar"), 0x8594_4171_F739_67E8);
    }
}
