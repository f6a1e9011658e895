//! The metrics against closed forms (Fréchet distances of known Gaussians, a 3x3 eigenproblem,
//! scores of one-hot and uniform predictions) and against orderings of sampled sets.

use super::*;

/// `n` rows of `dim` features from a fixed generator: uniform in [-1, 1], scaled per column by
/// `scale[j]` and shifted by `shift[j]`.
fn sample(n: usize, scale: &[f32], shift: &[f32], seed: u64) -> Vec<f32> {
    let mut state = seed;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    };
    (0..n).flat_map(|_| scale.iter().zip(shift).map(|(s, m)| s * next() + m).collect::<Vec<_>>()).collect()
}

fn fit(x: &[f32], dim: usize) -> Gaussian {
    Gaussian::fit(x, dim).unwrap_or_else(|| panic!("cannot fit"))
}

#[test]
fn jacobi_finds_the_eigenvalues_and_reconstructs_the_matrix() {
    // A = [[4, 1, 0], [1, 3, 1], [0, 1, 2]]: eigenvalues 3 + √3, 3, 3 − √3.
    let a = [4.0, 1.0, 0.0, 1.0, 3.0, 1.0, 0.0, 1.0, 2.0];
    let (mut values, vectors) = symmetric_eigen(&a, 3);
    let mut rebuilt = [0.0; 9];
    for k in 0..3 {
        for i in 0..3 {
            for j in 0..3 {
                rebuilt[i * 3 + j] += vectors[i * 3 + k] * values[k] * vectors[j * 3 + k];
            }
        }
    }
    assert!(rebuilt.iter().zip(&a).all(|(x, y)| (x - y).abs() < 1e-12), "{rebuilt:?}");
    values.sort_by(f64::total_cmp);
    let r3 = 3f64.sqrt();
    for (got, want) in values.iter().zip([3.0 - r3, 3.0, 3.0 + r3]) {
        assert!((got - want).abs() < 1e-12, "{values:?}");
    }
}

#[test]
fn the_frechet_distance_of_known_gaussians() {
    // 1-D: N(0, 1) against N(2, 4): (0 − 2)² + 1 + 4 − 2·√(1·4) = 5.
    let a = Gaussian { dim: 1, mean: vec![0.0], cov: vec![1.0] };
    let b = Gaussian { dim: 1, mean: vec![2.0], cov: vec![4.0] };
    assert!((frechet_distance(&a, &b).unwrap_or(f64::NAN) - 5.0).abs() < 1e-12);
    // Diagonal 2-D: Σ over axes of (Δμ)² + (σa − σb)².
    let a = Gaussian { dim: 2, mean: vec![1.0, 0.0], cov: vec![1.0, 0.0, 0.0, 9.0] };
    let b = Gaussian { dim: 2, mean: vec![0.0, 0.0], cov: vec![4.0, 0.0, 0.0, 1.0] };
    let want = 1.0 + (1.0f64 - 2.0).powi(2) + (3.0f64 - 1.0).powi(2);
    assert!((frechet_distance(&a, &b).unwrap_or(f64::NAN) - want).abs() < 1e-10);
    assert_eq!(frechet_distance(&a, &Gaussian { dim: 1, mean: vec![0.0], cov: vec![1.0] }), None);
}

#[test]
fn the_frechet_distance_orders_sets_by_how_far_they_differ() {
    let dim = 8;
    let ones = vec![1.0; dim];
    let zeros = vec![0.0; dim];
    let real = fit(&sample(4000, &ones, &zeros, 1), dim);
    let same = fit(&sample(4000, &ones, &zeros, 2), dim);
    let wider = fit(&sample(4000, &vec![1.5; dim], &zeros, 3), dim);
    let moved = fit(&sample(4000, &vec![1.5; dim], &vec![1.0; dim], 4), dim);
    let d = |g: &Gaussian| frechet_distance(&real, g).unwrap_or(f64::NAN);
    let (d_same, d_wider, d_moved) = (d(&same), d(&wider), d(&moved));
    assert!(d_same < 0.02, "{d_same}");
    // Uniform on [-s, s] has σ = s/√3: 8 axes of (1.5 − 1)²/3 = 0.667.
    assert!((d_wider - 8.0 * 0.25 / 3.0).abs() < 0.1, "{d_wider}");
    assert!(d_same < d_wider && d_wider < d_moved && (d_moved - d_wider - 8.0).abs() < 0.3, "{d_moved}");
}

#[test]
fn kid_is_near_zero_for_one_distribution_and_grows_with_the_difference() {
    let dim = 8;
    let ones = vec![1.0; dim];
    let zeros = vec![0.0; dim];
    let real = sample(2000, &ones, &zeros, 1);
    let (same, _) = kid(&real, &sample(2000, &ones, &zeros, 2), dim, 5, 500, 0).unwrap_or((f64::NAN, 0.0));
    let (moved, sd) =
        kid(&real, &sample(2000, &ones, &vec![0.5; dim], 3), dim, 5, 500, 0).unwrap_or((f64::NAN, 0.0));
    assert!(same.abs() < 0.01, "{same}");
    assert!(moved > 0.05 && sd < moved, "{moved} ± {sd}");
    assert_eq!(kid(&real[..dim], &real, dim, 5, 500, 0), None, "one row is no subset");
}

#[test]
fn the_classifier_score_runs_from_one_to_the_class_count() {
    // Confident and spread evenly over 4 classes: 4. All alike: 1. Uncertain: 1.
    let spread: Vec<f32> =
        (0..8).flat_map(|i| (0..4).map(move |c| if c == i % 4 { 1.0 } else { 0.0 })).collect();
    assert!((classifier_score(&spread, 4).unwrap_or(f64::NAN) - 4.0).abs() < 1e-9);
    let alike: Vec<f32> = (0..8).flat_map(|_| [1.0, 0.0, 0.0, 0.0]).collect();
    assert!((classifier_score(&alike, 4).unwrap_or(f64::NAN) - 1.0).abs() < 1e-9);
    let unsure = vec![0.25f32; 32];
    assert!((classifier_score(&unsure, 4).unwrap_or(f64::NAN) - 1.0).abs() < 1e-9);
    assert_eq!(class_histogram(&spread, 4), vec![2, 2, 2, 2]);
    assert_eq!(class_histogram(&alike, 4), vec![8, 0, 0, 0]);
    assert_eq!(modes_covered(&[8, 0, 0, 0]), 1);
    assert_eq!(modes_covered(&[50, 50, 50, 1]), 3, "a class far under a tenth of its share is not covered");
}

#[test]
fn class_agreement_counts_samples_in_the_class_asked_for() {
    // Sample k asked for class k % 4: all right, then the last two of eight wrong.
    let right: Vec<f32> =
        (0..8).flat_map(|i| (0..4).map(move |c| if c == i % 4 { 0.9 } else { 0.03 })).collect();
    assert_eq!(cyclic_class_agreement(&right, 4), Some(1.0));
    let mut wrong = right.clone();
    wrong[6 * 4..].iter_mut().for_each(|p| *p = 0.0);
    wrong[6 * 4] = 1.0;
    wrong[7 * 4] = 1.0;
    assert_eq!(cyclic_class_agreement(&wrong, 4), Some(0.75));
    assert_eq!(cyclic_class_agreement(&[], 4), None);
}
