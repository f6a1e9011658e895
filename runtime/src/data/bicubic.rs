//! Anti-aliased bicubic downsampling, as PyTorch's
//! `interpolate(mode="bicubic", antialias=True, align_corners=False)` and PIL's `BICUBIC`
//! resize: the low-resolution input of super-resolution pairs, made the way the SR papers
//! make it (a plain r x r average is a box filter, blurrier and without the cubic's ringing).
//!
//! Separable: rows, then columns. Output pixel `i` is centred at `(i + 0.5) * r` in the input;
//! the cubic (a = -0.5) is stretched by `r`, so it covers `4r` input pixels, and its weights
//! are normalised to sum to 1 (at the borders too, where the window is cut).

use super::transform::Images;

/// The cubic convolution kernel with a = -0.5 (Keys 1981; PIL's and PyTorch's antialias).
fn cubic(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// For each output index, the first input index it reads and the weights of its window.
fn windows(size: usize, r: usize) -> Vec<(usize, Vec<f64>)> {
    let scale = r as f64;
    let support = 2.0 * scale;
    (0..size / r)
        .map(|i| {
            let center = scale * (i as f64 + 0.5);
            let lo = ((center - support + 0.5).floor().max(0.0)) as usize;
            let hi = ((center + support + 0.5).floor() as usize).min(size);
            let mut weights: Vec<f64> = (lo..hi).map(|j| cubic((j as f64 - center + 0.5) / scale)).collect();
            let total: f64 = weights.iter().sum();
            if total != 0.0 {
                weights.iter_mut().for_each(|w| *w /= total);
            }
            (lo, weights)
        })
        .collect()
}

/// Each plane of `x` reduced by `r` in height and width; `r` must divide both.
pub fn downsample_bicubic(x: &Images, r: usize) -> Images {
    let r = r.max(1);
    let (h2, w2) = (x.h / r, x.w / r);
    let (across, down) = (windows(x.w, r), windows(x.h, r));
    let mut data = Vec::with_capacity(x.n * x.c * h2 * w2);
    let mut rows = vec![0.0f64; x.h * w2];
    for plane in x.data.chunks_exact((x.h * x.w).max(1)) {
        for y in 0..x.h {
            let line = &plane[y * x.w..(y + 1) * x.w];
            for (j, (lo, weights)) in across.iter().enumerate() {
                rows[y * w2 + j] = weights.iter().zip(&line[*lo..]).map(|(w, &v)| w * f64::from(v)).sum();
            }
        }
        for (lo, weights) in &down {
            for j in 0..w2 {
                let v: f64 = weights.iter().enumerate().map(|(k, w)| w * rows[(lo + k) * w2 + j]).sum();
                data.push(v as f32);
            }
        }
    }
    Images { data, n: x.n, c: x.c, h: h2, w: w2 }
}
