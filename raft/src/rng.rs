//! A tiny seeded PRNG (xorshift64*), so that randomized election timeouts are reproducible
//! from `Config::seed` and never touch a global RNG.

/// xorshift64* generator. Not cryptographic; only spreads election timeouts.
#[derive(Clone, Debug)]
pub(crate) struct Rng {
    state: u64,
}

impl Rng {
    /// Seeds from `seed` and `salt` (the node id) through splitmix64, so nodes sharing a
    /// seed still draw different timeouts. The state is never zero.
    pub(crate) fn new(seed: u64, salt: u64) -> Rng {
        let mut z = seed ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        Rng {
            state: if z == 0 { 0x2545_F491_4F6C_DD1D } else { z },
        }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-enough value in `[0, bound)`; `bound` must be > 0.
    pub(crate) fn below(&mut self, bound: u32) -> u32 {
        assert!(bound > 0, "rng: bound must be > 0");
        (self.next_u64() % u64::from(bound)) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Determinism: the same seed and salt give the same sequence; different salts differ.
    #[test]
    fn same_seed_gives_same_sequence() {
        let mut a = Rng::new(7, 1);
        let mut b = Rng::new(7, 1);
        let mut c = Rng::new(7, 2);
        let seq_a: Vec<u32> = (0..8).map(|_| a.below(10)).collect();
        let seq_b: Vec<u32> = (0..8).map(|_| b.below(10)).collect();
        let seq_c: Vec<u32> = (0..8).map(|_| c.below(10)).collect();
        assert_eq!(seq_a, seq_b);
        assert_ne!(seq_a, seq_c);
        assert!(seq_a.iter().all(|&v| v < 10));
    }
}
