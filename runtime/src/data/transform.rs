//! Per-batch transforms of images in [0, 1].
//!
//! [`Transforms::apply`] runs them in one fixed order, whatever order a spec names them in:
//!
//! 1. **flip** — each image is mirrored left-right with probability 1/2;
//! 2. **binarise** — [`Binarize::Threshold`]: a pixel becomes 1 when it is above 0.5, else 0
//!    (deterministic); [`Binarize::Sample`]: 1 with probability equal to the pixel's value
//!    (dynamic binarisation, a fresh draw each time an image is seen);
//! 3. **pair** — [`Pair::Downsample`]`(r)` makes the low-resolution input by r×r average
//!    pooling, [`Pair::Bicubic`]`(r)` by anti-aliased bicubic downsampling; [`Pair::Edges`] makes a one-channel Sobel edge map (see [`sobel`]);
//! 4. **range** — every value `v` in [0, 1] becomes `lo + v·(hi − lo)`, in the images and in
//!    their pair.
//!
//! The random draws come from the batch's own stream ([`super::rng`]): flips first, one draw
//! per image in batch order, then binarisation samples, one per value in N×C×H×W order.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::error::DataError;
use super::rng::{STREAM_FIXED, SplitMix64};

/// A batch of images: `data` is N×C×H×W, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Images {
    pub data: Vec<f32>,
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
}

impl Images {
    /// `[n, c, h, w]`.
    pub fn shape(&self) -> [usize; 4] {
        [self.n, self.c, self.h, self.w]
    }
}

/// How to make images binary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Binarize {
    /// `v > 0.5` → 1, else 0.
    Threshold,
    /// 1 with probability `v`, drawn from the batch's stream.
    Sample,
}

/// An edge detector for [`Pair::Edges`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EdgeFilter {
    Sobel,
}

impl FromStr for EdgeFilter {
    type Err = DataError;

    fn from_str(s: &str) -> Result<Self, DataError> {
        match s {
            "sobel" => Ok(EdgeFilter::Sobel),
            _ => Err(DataError::Setting { reason: format!("unknown edge filter `{s}` (known: `sobel`)") }),
        }
    }
}

/// A second image made from each image: the model's input, the image its target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pair {
    /// Average pooling by this factor (super-resolution).
    Downsample(usize),
    /// Anti-aliased bicubic downsampling by this factor (super-resolution as the papers make
    /// their inputs; see `bicubic.rs`).
    Bicubic(usize),
    /// An edge map (pix2pix-style edges → image).
    Edges(EdgeFilter),
}

/// The transforms of a data pipeline; see the module documentation for their order.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Transforms {
    #[serde(default)]
    pub flip: bool,
    #[serde(default)]
    pub binarize: Option<Binarize>,
    #[serde(default)]
    pub pair: Option<Pair>,
    /// Final value range `(lo, hi)`; `None` keeps [0, 1].
    #[serde(default)]
    pub range: Option<(f32, f32)>,
}

impl Transforms {
    /// Checks the settings against images of shape `(c, h, w)`.
    pub fn check(&self, shape: (usize, usize, usize)) -> Result<(), DataError> {
        let setting = |reason: String| Err(DataError::Setting { reason });
        if let Some((lo, hi)) = self.range.filter(|(lo, hi)| !(lo.is_finite() && hi.is_finite() && lo < hi)) {
            return setting(format!("the range [{lo}, {hi}] must be finite with lo < hi"));
        }
        if let Some(Pair::Downsample(r) | Pair::Bicubic(r)) = self.pair {
            let (_, h, w) = shape;
            if r == 0 || h % r != 0 || w % r != 0 {
                return setting(format!("downsample({r}) must divide the image size {h}×{w}"));
            }
        }
        Ok(())
    }

    /// Transforms a batch; returns the images and their pair, if any. The settings must have
    /// passed [`Transforms::check`].
    pub fn apply(&self, mut x: Images, rng: &mut SplitMix64) -> (Images, Option<Images>) {
        if self.flip {
            flip_horizontal(&mut x, rng);
        }
        match self.binarize {
            Some(Binarize::Threshold) => binarize_threshold(&mut x),
            Some(Binarize::Sample) => binarize_sample(&mut x, rng),
            None => {}
        }
        self.pair_and_scale(x)
    }

    /// As [`Transforms::apply`], with each image's random draws fixed by its index in the data
    /// set alone (`indices`, one per image): a test set is binarised (and flipped) the same way
    /// by every run, seed, batch size and step, so its NLL compares across them.
    pub fn apply_fixed(&self, mut x: Images, indices: &[usize]) -> (Images, Option<Images>) {
        let (c, h, w) = (x.c, x.h, x.w);
        let per = c * h * w;
        for (k, &index) in indices.iter().enumerate().take(x.n) {
            let mut rng = SplitMix64::derive(0, &[STREAM_FIXED, index as u64]);
            let mut one = Images { data: x.data[k * per..(k + 1) * per].to_vec(), n: 1, c, h, w };
            if self.flip {
                flip_horizontal(&mut one, &mut rng);
            }
            if self.binarize == Some(Binarize::Sample) {
                binarize_sample(&mut one, &mut rng);
            }
            x.data[k * per..(k + 1) * per].copy_from_slice(&one.data);
        }
        if self.binarize == Some(Binarize::Threshold) {
            binarize_threshold(&mut x);
        }
        self.pair_and_scale(x)
    }

    /// The deterministic tail of both: the pair, then the range.
    fn pair_and_scale(&self, mut x: Images) -> (Images, Option<Images>) {
        let mut pair = match self.pair {
            Some(Pair::Downsample(r)) => Some(downsample(&x, r)),
            Some(Pair::Bicubic(r)) => Some(super::bicubic::downsample_bicubic(&x, r)),
            Some(Pair::Edges(EdgeFilter::Sobel)) => Some(sobel(&x)),
            None => None,
        };
        if let Some(range) = self.range {
            scale(&mut x, range);
            if let Some(p) = &mut pair {
                scale(p, range);
            }
        }
        (x, pair)
    }
}

/// Maps [0, 1] to `[lo, hi]`: `v ↦ lo + v·(hi − lo)`.
pub fn scale(x: &mut Images, (lo, hi): (f32, f32)) {
    let span = hi - lo;
    for v in &mut x.data {
        *v = lo + *v * span;
    }
}

/// `v > 0.5` → 1, else 0.
pub fn binarize_threshold(x: &mut Images) {
    for v in &mut x.data {
        *v = if *v > 0.5 { 1.0 } else { 0.0 };
    }
}

/// 1 with probability `v` (a uniform draw `u` in [0, 1) per value; 1 when `u < v`).
pub fn binarize_sample(x: &mut Images, rng: &mut SplitMix64) {
    for v in &mut x.data {
        *v = if rng.next_f32() < *v { 1.0 } else { 0.0 };
    }
}

/// Mirrors each image left-right when its draw's top bit is set (probability 1/2).
pub fn flip_horizontal(x: &mut Images, rng: &mut SplitMix64) {
    let (w, rows_per_image) = (x.w, x.c * x.h);
    let per_image = rows_per_image * w;
    if per_image == 0 {
        return;
    }
    for image in x.data.chunks_exact_mut(per_image) {
        if rng.next_u64() >> 63 == 1 {
            for row in image.chunks_exact_mut(w) {
                row.reverse();
            }
        }
    }
}

/// r×r average pooling; `r` must divide the height and width.
pub fn downsample(x: &Images, r: usize) -> Images {
    let r = r.max(1);
    let (h2, w2) = (x.h / r, x.w / r);
    let mut data = Vec::with_capacity(x.n * x.c * h2 * w2);
    let inv = 1.0 / (r * r) as f32;
    for plane in x.data.chunks_exact((x.h * x.w).max(1)) {
        for i in 0..h2 {
            for j in 0..w2 {
                let mut sum = 0.0;
                for di in 0..r {
                    let row = &plane[(i * r + di) * x.w + j * r..][..r];
                    sum += row.iter().sum::<f32>();
                }
                data.push(sum * inv);
            }
        }
    }
    Images { data, n: x.n, c: x.c, h: h2, w: w2 }
}

/// A one-channel Sobel edge map per image, in [0, 1].
///
/// The channels are averaged to one intensity plane; the 3×3 Sobel kernels
/// `gx = [[-1,0,1],[-2,0,2],[-1,0,1]]` and `gy = gxᵀ` are applied with the border replicated;
/// the magnitude `√(gx² + gy²)` is divided by its largest value in the image (an image
/// without edges gives zeros).
pub fn sobel(x: &Images) -> Images {
    let (c, h, w) = (x.c, x.h, x.w);
    if c * h * w == 0 {
        return Images { data: Vec::new(), n: x.n, c: 1, h, w };
    }
    let mut data = Vec::with_capacity(x.n * h * w);
    let per_image = c * h * w;
    let mut gray = vec![0.0f32; h * w];
    for image in x.data.chunks_exact(per_image) {
        gray.iter_mut().for_each(|g| *g = 0.0);
        for plane in image.chunks_exact(h * w) {
            gray.iter_mut().zip(plane).for_each(|(g, v)| *g += v / c as f32);
        }
        let at = |i: isize, j: isize| {
            let i = i.clamp(0, h as isize - 1) as usize;
            let j = j.clamp(0, w as isize - 1) as usize;
            gray[i * w + j]
        };
        let start = data.len();
        let mut max = 0.0f32;
        for i in 0..h as isize {
            for j in 0..w as isize {
                let gx = (at(i - 1, j + 1) + 2.0 * at(i, j + 1) + at(i + 1, j + 1))
                    - (at(i - 1, j - 1) + 2.0 * at(i, j - 1) + at(i + 1, j - 1));
                let gy = (at(i + 1, j - 1) + 2.0 * at(i + 1, j) + at(i + 1, j + 1))
                    - (at(i - 1, j - 1) + 2.0 * at(i - 1, j) + at(i - 1, j + 1));
                let m = (gx * gx + gy * gy).sqrt();
                max = max.max(m);
                data.push(m);
            }
        }
        if max > 0.0 {
            data[start..].iter_mut().for_each(|m| *m /= max);
        }
    }
    Images { data, n: x.n, c: 1, h, w }
}
