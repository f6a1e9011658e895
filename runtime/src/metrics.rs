//! Generative-model metrics on a classifier's outputs: the Fréchet distance between Gaussians
//! fitted to two sets of features (FID's formula, on whatever network gave the features), the
//! kernel inception distance (KID: an unbiased MMD² with a cubic polynomial kernel, over
//! random subsets), the classifier score (the Inception-score formula), and the class
//! histogram of samples. Plain f64 arithmetic on the host: the sets are a few thousand
//! vectors of a hundred-odd features.

/// A Gaussian fitted to `n` feature vectors of dimension `dim`: the mean and the unbiased
/// covariance (row-major `dim x dim`).
#[derive(Clone, Debug, PartialEq)]
pub struct Gaussian {
    pub dim: usize,
    pub mean: Vec<f64>,
    pub cov: Vec<f64>,
}

impl Gaussian {
    /// Fits `features` (`n` rows of `dim`); `None` with fewer than two rows.
    pub fn fit(features: &[f32], dim: usize) -> Option<Gaussian> {
        let n = features.len().checked_div(dim)?;
        if n < 2 || n * dim != features.len() {
            return None;
        }
        let mut mean = vec![0.0; dim];
        for row in features.chunks_exact(dim) {
            for (m, &x) in mean.iter_mut().zip(row) {
                *m += f64::from(x);
            }
        }
        mean.iter_mut().for_each(|m| *m /= n as f64);
        let mut cov = vec![0.0; dim * dim];
        let mut centred = vec![0.0; dim];
        for row in features.chunks_exact(dim) {
            for ((c, &x), m) in centred.iter_mut().zip(row).zip(&mean) {
                *c = f64::from(x) - m;
            }
            for i in 0..dim {
                let ci = centred[i];
                for j in i..dim {
                    cov[i * dim + j] += ci * centred[j];
                }
            }
        }
        for i in 0..dim {
            for j in i..dim {
                let v = cov[i * dim + j] / (n - 1) as f64;
                cov[i * dim + j] = v;
                cov[j * dim + i] = v;
            }
        }
        Some(Gaussian { dim, mean, cov })
    }
}

/// `‖μa − μb‖² + tr(Σa + Σb − 2 (Σa Σb)^½)`, the Fréchet distance between two Gaussians.
/// The trace of the square root is `Σ √λ` over the eigenvalues of `Σa^½ Σb Σa^½` (symmetric,
/// so no complex parts to drop), negative rounding noise clamped to 0.
/// `None` when the dimensions differ.
pub fn frechet_distance(a: &Gaussian, b: &Gaussian) -> Option<f64> {
    let d = a.dim;
    if d != b.dim {
        return None;
    }
    let mean_term: f64 = a.mean.iter().zip(&b.mean).map(|(x, y)| (x - y) * (x - y)).sum();
    let (values, vectors) = symmetric_eigen(&a.cov, d);
    // Σa^½ = V diag(√λ) Vᵀ.
    let mut root = vec![0.0; d * d];
    for (k, &l) in values.iter().enumerate() {
        let s = l.max(0.0).sqrt();
        for i in 0..d {
            let vik = vectors[i * d + k] * s;
            for j in 0..d {
                root[i * d + j] += vik * vectors[j * d + k];
            }
        }
    }
    let middle = matmul(&matmul(&root, &b.cov, d), &root, d);
    let (inner, _) = symmetric_eigen(&middle, d);
    let trace_root: f64 = inner.iter().map(|l| l.max(0.0).sqrt()).sum();
    let trace = |m: &[f64]| (0..d).map(|i| m[i * d + i]).sum::<f64>();
    Some((mean_term + trace(&a.cov) + trace(&b.cov) - 2.0 * trace_root).max(0.0))
}

fn matmul(a: &[f64], b: &[f64], d: usize) -> Vec<f64> {
    let mut out = vec![0.0; d * d];
    for i in 0..d {
        for k in 0..d {
            let aik = a[i * d + k];
            for j in 0..d {
                out[i * d + j] += aik * b[k * d + j];
            }
        }
    }
    out
}

/// The eigenvalues and eigenvectors (columns of the row-major `d x d` result) of a symmetric
/// matrix, by cyclic Jacobi rotations until the off-diagonal part is negligible.
pub fn symmetric_eigen(m: &[f64], d: usize) -> (Vec<f64>, Vec<f64>) {
    let mut a = m.to_vec();
    let mut v = vec![0.0; d * d];
    (0..d).for_each(|i| v[i * d + i] = 1.0);
    let scale: f64 = a.iter().map(|x| x * x).sum::<f64>().max(f64::MIN_POSITIVE);
    for _sweep in 0..100 {
        let off: f64 = (0..d)
            .flat_map(|i| (0..d).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * d + j] * a[i * d + j])
            .sum();
        if off <= 1e-24 * scale {
            break;
        }
        for p in 0..d {
            for q in p + 1..d {
                let apq = a[p * d + q];
                if apq == 0.0 {
                    continue;
                }
                // The rotation that zeroes a[p][q] (Golub & Van Loan, symmetric Schur).
                let theta = (a[q * d + q] - a[p * d + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..d {
                    let (akp, akq) = (a[k * d + p], a[k * d + q]);
                    a[k * d + p] = c * akp - s * akq;
                    a[k * d + q] = s * akp + c * akq;
                }
                for k in 0..d {
                    let (apk, aqk) = (a[p * d + k], a[q * d + k]);
                    a[p * d + k] = c * apk - s * aqk;
                    a[q * d + k] = s * apk + c * aqk;
                }
                for k in 0..d {
                    let (vkp, vkq) = (v[k * d + p], v[k * d + q]);
                    v[k * d + p] = c * vkp - s * vkq;
                    v[k * d + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..d).map(|i| a[i * d + i]).collect(), v)
}

/// KID: the unbiased MMD² between features `a` and `b` (rows of `dim`) with the kernel
/// `k(x, y) = (x·y / dim + 1)³`, averaged over `subsets` random subsets of `size` rows of
/// each (drawn from `seed`, with replacement across subsets as in the reference code); the
/// mean and the standard deviation over the subsets.
pub fn kid(a: &[f32], b: &[f32], dim: usize, subsets: usize, size: usize, seed: u64) -> Option<(f64, f64)> {
    let (na, nb) = (a.len() / dim.max(1), b.len() / dim.max(1));
    let m = size.min(na).min(nb);
    if m < 2 || subsets == 0 {
        return None;
    }
    let kernel = |x: &[f32], y: &[f32]| {
        let dot: f64 = x.iter().zip(y).map(|(&p, &q)| f64::from(p) * f64::from(q)).sum();
        (dot / dim as f64 + 1.0).powi(3)
    };
    let mut state = seed ^ 0x4B49_445F_5345_4544;
    let mut pick = |n: usize| -> Vec<usize> {
        // A partial Fisher–Yates shuffle: `m` distinct rows.
        let mut idx: Vec<usize> = (0..n).collect();
        for i in 0..m {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            let j = i + (state >> 33) as usize % (n - i);
            idx.swap(i, j);
        }
        idx.truncate(m);
        idx
    };
    fn row(s: &[f32], dim: usize, i: usize) -> &[f32] {
        &s[i * dim..(i + 1) * dim]
    }
    let mut values = Vec::with_capacity(subsets);
    for _ in 0..subsets {
        let (ia, ib) = (pick(na), pick(nb));
        let (mut kxx, mut kyy, mut kxy) = (0.0, 0.0, 0.0);
        for (p, &i) in ia.iter().enumerate() {
            for (q, &j) in ia.iter().enumerate() {
                if p != q {
                    kxx += kernel(row(a, dim, i), row(a, dim, j));
                }
            }
        }
        for (p, &i) in ib.iter().enumerate() {
            for (q, &j) in ib.iter().enumerate() {
                if p != q {
                    kyy += kernel(row(b, dim, i), row(b, dim, j));
                }
            }
        }
        for &i in &ia {
            for &j in &ib {
                kxy += kernel(row(a, dim, i), row(b, dim, j));
            }
        }
        let mf = m as f64;
        values.push(kxx / (mf * (mf - 1.0)) + kyy / (mf * (mf - 1.0)) - 2.0 * kxy / (mf * mf));
    }
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    let var = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / values.len() as f64;
    Some((mean, var.sqrt()))
}

/// The classifier score `exp(E_x KL(p(y|x) ‖ p(y)))` of class probabilities (rows of `k`),
/// the Inception-score formula: from 1 (every sample alike or every prediction uncertain) to
/// `k` (confident predictions spread evenly over the classes).
pub fn classifier_score(probs: &[f32], k: usize) -> Option<f64> {
    let n = probs.len().checked_div(k)?;
    if n == 0 {
        return None;
    }
    let mut marginal = vec![0.0; k];
    for row in probs.chunks_exact(k) {
        for (m, &p) in marginal.iter_mut().zip(row) {
            *m += f64::from(p) / n as f64;
        }
    }
    let mut kl = 0.0;
    for row in probs.chunks_exact(k) {
        for (&p, &m) in row.iter().zip(&marginal) {
            let p = f64::from(p);
            if p > 0.0 && m > 0.0 {
                kl += p * (p.ln() - m.ln());
            }
        }
    }
    Some((kl / n as f64).exp())
}

/// How many rows of `probs` each class is the most likely one for (the first on ties).
pub fn class_histogram(probs: &[f32], k: usize) -> Vec<usize> {
    let mut counts = vec![0; k];
    for row in probs.chunks_exact(k.max(1)) {
        let best = row.iter().enumerate().fold(0, |b, (i, &p)| if p > row[b] { i } else { b });
        counts[best] += 1;
    }
    counts
}

/// The fraction of images whose most probable class is the one asked for: image `k` asked for
/// class `k % k_classes` (a conditional generator's `arange(n) % classes` labels). `None`
/// without images.
pub fn cyclic_class_agreement(probs: &[f32], k_classes: usize) -> Option<f64> {
    let rows = probs.chunks_exact(k_classes.max(1));
    let n = rows.len();
    let agree = rows
        .enumerate()
        .filter(|(i, row)| {
            row.iter().enumerate().fold(0, |b, (c, &p)| if p > row[b] { c } else { b }) == i % k_classes
        })
        .count();
    (n > 0).then(|| agree as f64 / n as f64)
}

/// The classes a histogram covers: those holding at least a tenth of an even share.
pub fn modes_covered(histogram: &[usize]) -> usize {
    let total: usize = histogram.iter().sum();
    let even = total as f64 / histogram.len().max(1) as f64;
    histogram.iter().filter(|&&c| c as f64 >= 0.1 * even && c > 0).count()
}

#[cfg(test)]
mod tests;
