//! The image-quality built-ins `psnr` and `ssim`, expanded into primitives like the losses, so
//! an `eval` entry can score a paired model (super-resolution, translation, inpainting) on the
//! test set on every device.
//!
//! Both compare images `[N, C, H, W]` whose values span `range` (1 for [0, 1], 2 for [-1, 1])
//! and return the mean over the images of a per-image score, so an eval's weighted mean over
//! the test set's batches is the per-image mean over the whole set.

use genc_grammar::Span;

use super::calls::Args;
use super::{Checker, Val};
use crate::graph::NodeId;
use crate::prim::{BinaryOp, PoolKind, Prim, ReduceOp, UnaryOp, Window};

/// SSIM's window (scikit-image's `structural_similarity` defaults: a uniform 7x7 window over
/// the positions where it fits, sample covariances, K1 = 0.01, K2 = 0.03).
const SSIM_WINDOW: usize = 7;
const SSIM_K1: f64 = 0.01;
const SSIM_K2: f64 = 0.03;
/// PSNR's mean squared error is floored at this fraction of `range^2`, so identical images
/// score 100 dB instead of infinity.
const PSNR_FLOOR: f64 = 1e-10;

impl Checker<'_> {
    /// `psnr(x, y, range: R)`: per image 10 log10(R^2 / mse), averaged over the images.
    pub(super) fn psnr(&mut self, a: &mut Args) -> Result<Val, ()> {
        let (x, y, s) = self.images_pair(a, "psnr")?;
        let range = self.positive_range(a, s)?;
        let d = self.binary(BinaryOp::Sub, x, y, s)?;
        let d2 = self.binary(BinaryOp::Mul, d, d, s)?;
        let mse = self.reduce(ReduceOp::Mean, d2, &[1, 2, 3], false, s)?;
        let mse = self.binary_const(BinaryOp::Max, mse, PSNR_FLOOR * range * range, s)?;
        // 10 log10(R^2 / mse) = (10 / ln 10) (2 ln R - ln mse)
        let ln = self.unary(UnaryOp::Log, mse, s)?;
        let db = self.binary_const(BinaryOp::Mul, ln, -10.0 / std::f64::consts::LN_10, s)?;
        let db = self.binary_const(BinaryOp::Add, db, 20.0 * range.log10(), s)?;
        self.mean_all(db, s).map(Val::Tensor)
    }

    /// `ssim(x, y, range: R)`: the structural similarity (Wang et al. 2004) of each channel
    /// over every 7x7 window, averaged over windows, channels and images.
    pub(super) fn ssim(&mut self, a: &mut Args) -> Result<Val, ()> {
        let (x, y, s) = self.images_pair(a, "ssim")?;
        let range = self.positive_range(a, s)?;
        for (axis, what) in [(2, "height"), (3, "width")] {
            if self.ty(x).shape[axis].as_const().is_some_and(|e| e < SSIM_WINDOW as i64) {
                let t = self.ty(x).clone();
                return self.fail(
                    s,
                    &format!(
                        "ssim needs images at least {SSIM_WINDOW} pixels in {what} (its window), found {t}"
                    ),
                );
            }
        }
        let (c1, c2) = ((SSIM_K1 * range).powi(2), (SSIM_K2 * range).powi(2));
        let window = SSIM_WINDOW * SSIM_WINDOW;
        // Sample (not population) covariances, as scikit-image computes them.
        let cov_norm = window as f64 / (window - 1) as f64;
        let xx = self.binary(BinaryOp::Mul, x, x, s)?;
        let yy = self.binary(BinaryOp::Mul, y, y, s)?;
        let xy = self.binary(BinaryOp::Mul, x, y, s)?;
        let [mx, my, mxx, myy, mxy] = [x, y, xx, yy, xy].map(|t| self.window_mean(t, s));
        let (mx, my, mxx, myy, mxy) = (mx?, my?, mxx?, myy?, mxy?);
        let mx2 = self.binary(BinaryOp::Mul, mx, mx, s)?;
        let my2 = self.binary(BinaryOp::Mul, my, my, s)?;
        let mxmy = self.binary(BinaryOp::Mul, mx, my, s)?;
        let vx = self.binary(BinaryOp::Sub, mxx, mx2, s)?;
        let vy = self.binary(BinaryOp::Sub, myy, my2, s)?;
        let vxy = self.binary(BinaryOp::Sub, mxy, mxmy, s)?;
        // numerator (2 mx my + C1)(2 cov_norm vxy + C2)
        let a1 = self.binary_const(BinaryOp::Mul, mxmy, 2.0, s)?;
        let a1 = self.binary_const(BinaryOp::Add, a1, c1, s)?;
        let a2 = self.binary_const(BinaryOp::Mul, vxy, 2.0 * cov_norm, s)?;
        let a2 = self.binary_const(BinaryOp::Add, a2, c2, s)?;
        let num = self.binary(BinaryOp::Mul, a1, a2, s)?;
        // denominator (mx^2 + my^2 + C1)(cov_norm (vx + vy) + C2)
        let b1 = self.binary(BinaryOp::Add, mx2, my2, s)?;
        let b1 = self.binary_const(BinaryOp::Add, b1, c1, s)?;
        let b2 = self.binary(BinaryOp::Add, vx, vy, s)?;
        let b2 = self.binary_const(BinaryOp::Mul, b2, cov_norm, s)?;
        let b2 = self.binary_const(BinaryOp::Add, b2, c2, s)?;
        let den = self.binary(BinaryOp::Mul, b1, b2, s)?;
        let map = self.binary(BinaryOp::Div, num, den, s)?;
        self.mean_all(map, s).map(Val::Tensor)
    }

    /// Two images `[N, C, H, W]` of the same shape.
    fn images_pair(&mut self, a: &mut Args, what: &str) -> Result<(NodeId, NodeId, Span), ()> {
        let (x, y, s) = self.two_tensors(a, what)?;
        if self.ty(x).rank() != 4 {
            let t = self.ty(x).clone();
            return self.fail(s, &format!("{what} compares images [N, C, H, W], found {t}"));
        }
        Ok((x, y, s))
    }

    /// The `range` option: the span of the image values (max - min), 1 by default.
    fn positive_range(&mut self, a: &mut Args, s: Span) -> Result<f64, ()> {
        let range = self.float_arg(a, 2, "range", Some(1.0))?;
        if range.is_finite() && range > 0.0 {
            return Ok(range);
        }
        self.fail(s, &format!("`range` is the span of the image values and must be positive, found {range}"))
    }

    /// The mean of each 7x7 window that fits in the image (stride 1, no padding).
    fn window_mean(&mut self, x: NodeId, s: Span) -> Result<NodeId, ()> {
        let window = Window { kernel: [SSIM_WINDOW; 2], stride: [1, 1], pad: [0, 0] };
        self.node(Prim::Pool2d { kind: PoolKind::Avg, window }, &[x], None, s)
    }
}
