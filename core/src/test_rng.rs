//! The one generator of the core's randomized tests (xorshift64): deterministic, seeded, no
//! crate needed.

/// A xorshift64 generator; the state must not be zero.
pub(crate) struct Rng(pub u64);

impl Rng {
    /// The next number.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number below `n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}
