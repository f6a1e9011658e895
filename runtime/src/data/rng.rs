//! The data pipeline's random numbers: SplitMix64 (Steele, Lea and Flood, 2014), small,
//! fast and fully specified, so an order or a flip is the same on every machine.
//!
//! Every stream is derived from `(seed, purpose, epoch, batch)` by [`SplitMix64::derive`], so
//! the randomness of a batch depends only on where it is, never on how many numbers were
//! drawn before it: a resumed run draws exactly what the uninterrupted run drew.

/// SplitMix64: `state += 0x9E3779B97F4A7C15`, then the state is mixed into the output.
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    state: u64,
}

/// The purpose of a stream, mixed into its seed.
pub(crate) const STREAM_SHUFFLE: u64 = 0x5348_5546; // "SHUF"
pub(crate) const STREAM_TRANSFORM: u64 = 0x5452_4E53; // "TRNS"
/// Per-example draws of an in-order (evaluation) walk, from the example's index alone.
pub(crate) const STREAM_FIXED: u64 = 0x4649_5844; // "FIXD"

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    /// A stream for `parts` (e.g. purpose, epoch, batch) under `seed`: each part is folded in
    /// with one SplitMix64 step.
    pub fn derive(seed: u64, parts: &[u64]) -> Self {
        let mut state = mix(seed);
        for &p in parts {
            state = mix(state ^ mix(p.wrapping_add(0x9E37_79B9_7F4A_7C15)));
        }
        SplitMix64::new(state)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.state)
    }

    /// Uniform in [0, 1) with 24 bits (every value exact in f32).
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// An integer in `[0, n)` by Lemire's multiply-shift (bias below 2^-32 for any `n` that
    /// fits a data set). `n` must be positive.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Fisher–Yates shuffle, from the last element down.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
