//! The one deterministic random number generator of the code base: SplitMix64 (Steele, Lea and Flood, 2014).
//!
//! Training, evaluation samples, benchmarks and simulated test data draw from it with an explicit seed, so the
//! same seed gives the same numbers on every platform and in every build. It is not for secrets (keys and
//! tokens use the operating system's generator).

/// SplitMix64: a 64-bit state advanced by a fixed odd constant and mixed by two multiply-xorshift rounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform on [0, 1) with 53 bits of precision.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform on [0, 1) with 24 bits of precision.
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Uniform on `0..n` (0 when `n` is 0), from [`SplitMix64::next_f64`].
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_f64() * n as f64) as usize % n.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sequence_is_splitmix64s() {
        // The first outputs for seed 0, as published with the algorithm.
        let mut random = SplitMix64::new(0);
        assert_eq!(random.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(random.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(SplitMix64::new(7).next_u64(), SplitMix64::new(7).next_u64(), "same seed, same numbers");
    }

    #[test]
    fn draws_stay_in_their_ranges() {
        let mut random = SplitMix64::new(42);
        for _ in 0..10_000 {
            assert!((0.0..1.0).contains(&random.next_f64()));
            assert!((0.0..1.0).contains(&random.next_f32()));
            assert!(random.below(7) < 7);
        }
        assert_eq!(random.below(0), 0);
    }
}
