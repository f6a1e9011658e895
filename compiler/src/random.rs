//! The counter-based random generator every evaluator of `Prim::Random` shares.
//!
//! A draw is a pure function of `(seed, stream, element index)`, so the reference interpreter
//! and every device kernel produce the same bits whatever the launch order, and a run is
//! reproducible from its seed alone. Only wrapping 32-bit integer arithmetic is used: WGSL
//! has no 64-bit integers, and a kernel must be able to compute exactly these functions.

/// The PCG-RXS-M-XS output permutation (O'Neill 2014) used as an integer hash: a bijection
/// on `u32` with good avalanche.
pub fn pcg_hash(x: u32) -> u32 {
    let state = x.wrapping_mul(747_796_405).wrapping_add(2_891_336_453);
    let word = ((state >> ((state >> 28) + 4)) ^ state).wrapping_mul(277_803_737);
    (word >> 22) ^ word
}

/// The per-node key: mixes the run seed with the node's stream number.
pub fn stream_key(seed: u64, stream: u32) -> u32 {
    let (lo, hi) = (seed as u32, (seed >> 32) as u32);
    pcg_hash(lo ^ pcg_hash(hi ^ pcg_hash(stream)))
}

/// The seed of iteration `iteration` of a sampler loop whose body would otherwise run with
/// `seed`: SplitMix64's finaliser over both, so every iteration draws afresh (nested loops
/// mix in turn) and a sampler run stays a pure function of its seed. Host-side only.
pub fn iteration_seed(seed: u64, iteration: u64) -> u64 {
    let mut z = seed ^ iteration.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// 32 random bits for element `index` of a stream. For a fixed key it is a bijection of the
/// index, so no two elements of one tensor share their bits.
pub fn bits(key: u32, index: u32) -> u32 {
    pcg_hash(pcg_hash(index ^ key).wrapping_add(key))
}

/// Uniform on `[0, 1)` with 24 bits of resolution (exactly representable in f32).
pub fn uniform(key: u32, index: u32) -> f32 {
    (bits(key, index) >> 8) as f32 * (1.0 / 16_777_216.0)
}

/// Standard normal by Box–Muller on the uniforms of counters `2 * index` and
/// `2 * index + 1`. `1 - u` keeps the logarithm's argument in `(0, 1]`.
pub fn normal(key: u32, index: u32) -> f32 {
    let u1 = 1.0 - uniform(key, index.wrapping_mul(2));
    let u2 = uniform(key, index.wrapping_mul(2).wrapping_add(1));
    let radius = (-2.0 * u1.ln()).sqrt();
    radius * (std::f32::consts::TAU * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_moments_are_right() {
        let key = stream_key(42, 7);
        let n = 100_000u32;
        let draws: Vec<f64> = (0..n).map(|i| f64::from(uniform(key, i))).collect();
        let mean = draws.iter().sum::<f64>() / f64::from(n);
        let var = draws.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / f64::from(n);
        assert!((mean - 0.5).abs() < 0.005, "mean {mean}");
        assert!((var - 1.0 / 12.0).abs() < 0.002, "variance {var}");
        assert!(draws.iter().all(|&x| (0.0..1.0).contains(&x)));
    }

    #[test]
    fn normal_moments_are_right() {
        let key = stream_key(1, 0);
        let n = 100_000u32;
        let draws: Vec<f64> = (0..n).map(|i| f64::from(normal(key, i))).collect();
        let mean = draws.iter().sum::<f64>() / f64::from(n);
        let var = draws.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / f64::from(n);
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.02, "variance {var}");
    }

    #[test]
    fn iterations_get_distinct_seeds() {
        let seeds: std::collections::BTreeSet<u64> =
            (0..1000).map(|k| iteration_seed(7, k)).chain((0..1000).map(|k| iteration_seed(8, k))).collect();
        assert_eq!(seeds.len(), 2000);
        assert_ne!(iteration_seed(0, 0), 0);
    }

    #[test]
    fn streams_and_seeds_differ() {
        let a = stream_key(1, 0);
        assert_ne!(a, stream_key(1, 1));
        assert_ne!(a, stream_key(2, 0));
        assert_ne!(a, stream_key(1 << 32, 0));
        assert_ne!(bits(a, 0), bits(a, 1));
    }
}
