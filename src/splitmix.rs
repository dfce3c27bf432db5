//! SplitMix64 (Steele, Lea and Flood 2014): a seeded, repeatable stream of 64-bit values, for
//! the places that need draws that repeat from a seed (the replay's bootstrap, the crash
//! tests' workloads) and no statistical quality beyond picking uniformly.

/// The generator's state.
pub(crate) struct SplitMix64(pub(crate) u64);

impl SplitMix64 {
    /// The next value.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0), by Lemire's multiply-shift (bias below n / 2^64).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        #[expect(
            clippy::cast_possible_truncation,
            reason = "the high half of a 64x64 product by n < 2^64 is below n"
        )]
        let r = ((u128::from(self.next_u64()) * n as u128) >> 64) as usize;
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_are_uniform_enough_and_repeat_from_a_seed() {
        let mut r = SplitMix64(1);
        let mut counts = [0u32; 7];
        for _ in 0..70_000 {
            counts[r.below(7)] += 1;
        }
        assert!(
            counts.iter().all(|&c| (9_000..11_000).contains(&c)),
            "{counts:?}"
        );
        let (mut a, mut b) = (SplitMix64(42), SplitMix64(42));
        assert!((0..100).all(|_| a.next_u64() == b.next_u64()));
    }
}
