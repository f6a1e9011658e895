//! Convolutions on the host: im2col of each image feeding [`gemm`], the transposed
//! convolution as a product followed by col2im, and the weight gradient as one product per
//! chunk of images (contraction over the chunk's output pixels), accumulated chunk by chunk.
//!
//! Images run in parallel (each product on one thread) when there are enough of them; chunk
//! sizes depend on the shapes and the scratch budget only, so results do not depend on the
//! thread count.

use std::cell::RefCell;

use genc_compiler::prim::ConvGeometry;
use rayon::prelude::*;

use super::gemm::{Mat, Threads, gemm};

thread_local! {
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's scratch buffer of at least `len` elements.
fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    SCRATCH.with(|cell| {
        let mut s = cell.borrow_mut();
        if s.len() < len {
            s.resize(len, 0.0);
        }
        f(&mut s[..len])
    })
}

/// The extents of one convolution: input `[n, c, h, w]`, output `[n, co, oh, ow]`, kernel
/// `kh x kw`, and its geometry.
#[derive(Clone, Copy, Debug)]
pub struct ConvDims {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub co: usize,
    pub oh: usize,
    pub ow: usize,
    pub kh: usize,
    pub kw: usize,
    pub g: ConvGeometry,
}

impl ConvDims {
    fn groups(&self) -> usize {
        self.g.groups.max(1)
    }
    /// Input channels per group.
    fn cg(&self) -> usize {
        self.c / self.groups()
    }
    /// Output channels per group.
    fn cog(&self) -> usize {
        self.co / self.groups()
    }
    /// Rows of a group's im2col matrix.
    fn k(&self) -> usize {
        self.cg() * self.kh * self.kw
    }
    /// Output pixels per image.
    fn p(&self) -> usize {
        self.oh * self.ow
    }
    /// The input position read by output `o` through kernel tap `t` on axis 0 (rows) or 1.
    fn source(&self, axis: usize, o: usize, t: usize) -> Option<usize> {
        let pos = (o * self.g.stride[axis] + t * self.g.dilation[axis]) as isize - self.g.pad[axis] as isize;
        let extent = if axis == 0 { self.h } else { self.w };
        (pos >= 0 && (pos as usize) < extent).then_some(pos as usize)
    }
}

/// Writes group `gi` of image `x` (`[c, h, w]`, contiguous) as im2col: element `(kk, p)`
/// (kernel tap `kk = (ci * kh + ki) * kw + kj`, output pixel `p`) goes to `col[kk * rs + p * cs]`.
fn im2col(d: &ConvDims, x: &[f32], gi: usize, col: &mut [f32], rs: usize, cs: usize) {
    let cg = d.cg();
    for ci in 0..cg {
        let plane = &x[(gi * cg + ci) * d.h * d.w..][..d.h * d.w];
        for ki in 0..d.kh {
            for kj in 0..d.kw {
                let kk = (ci * d.kh + ki) * d.kw + kj;
                for oy in 0..d.oh {
                    let row = d.source(0, oy, ki);
                    for ox in 0..d.ow {
                        let v = match (row, d.source(1, ox, kj)) {
                            (Some(iy), Some(ix)) => plane[iy * d.w + ix],
                            _ => 0.0,
                        };
                        col[kk * rs + (oy * d.ow + ox) * cs] = v;
                    }
                }
            }
        }
    }
}

/// `out [n, co, oh, ow] = conv2d(x [n, c, h, w], w [co, c / g, kh, kw])`, all contiguous.
pub fn conv2d(d: &ConvDims, x: &[f32], w: &[f32], out: &mut [f32]) {
    let (k, p, cog) = (d.k(), d.p(), d.cog());
    let image = |(ni, y): (usize, &mut [f32]), threads: Threads| {
        let xi = &x[ni * d.c * d.h * d.w..][..d.c * d.h * d.w];
        for gi in 0..d.groups() {
            let wg = Mat::row_major(&w[gi * cog * k..], cog, k);
            let yg = &mut y[gi * cog * p..][..cog * p];
            let direct = d.kh == 1 && d.kw == 1 && d.g.stride == [1, 1] && d.g.pad == [0, 0];
            if direct {
                // A 1x1 convolution reads the image itself as its im2col matrix.
                gemm(yg, wg, Mat { offset: gi * d.cg() * p, ..Mat::row_major(xi, k, p) }, false, threads);
            } else {
                with_scratch(k * p, |col| {
                    im2col(d, xi, gi, col, p, 1);
                    gemm(yg, wg, Mat::row_major(col, k, p), false, threads);
                });
            }
        }
    };
    per_image(out, d.n, d.co * p, image);
}

/// `out [n, co, oh, ow] = conv_transpose2d(x [n, c, h, w], w [c, co / g, kh, kw])`: the
/// adjoint of [`conv2d`] from `co` channels of `oh x ow` to `c` channels of `h x w` — here
/// `d` describes that forward convolution (input `out`, output `x`).
pub fn conv_transpose2d(d: &ConvDims, x: &[f32], w: &[f32], out: &mut [f32]) {
    // In `d`'s terms: x is the forward output [n, co, oh, ow], out the forward input.
    let (k, p, cog) = (d.k(), d.p(), d.cog());
    let image = |(ni, y): (usize, &mut [f32]), threads: Threads| {
        y.fill(0.0);
        let xi = &x[ni * d.co * p..][..d.co * p];
        for gi in 0..d.groups() {
            // col [k, p] = w_g^T [k, cog] @ x_g [cog, p], w_g = w[gi * cog..] as [cog, k].
            let wg = Mat::row_major(&w[gi * cog * k..], cog, k).t();
            let xg = Mat { offset: gi * cog * p, ..Mat::row_major(xi, cog, p) };
            with_scratch(k * p, |col| {
                gemm(col, wg, xg, false, threads);
                col2im(d, col, gi, y);
            });
        }
    };
    per_image(out, d.n, d.c * d.h * d.w, image);
}

/// The adjoint of [`im2col`] (rows `kk`, columns `p`, row-major): sums each column entry
/// into the input pixel it was read from, in a fixed order.
fn col2im(d: &ConvDims, col: &[f32], gi: usize, y: &mut [f32]) {
    let (cg, p) = (d.cg(), d.p());
    for ci in 0..cg {
        let plane = &mut y[(gi * cg + ci) * d.h * d.w..][..d.h * d.w];
        for ki in 0..d.kh {
            for kj in 0..d.kw {
                let row = &col[((ci * d.kh + ki) * d.kw + kj) * p..][..p];
                for oy in 0..d.oh {
                    let Some(iy) = d.source(0, oy, ki) else { continue };
                    for ox in 0..d.ow {
                        if let Some(ix) = d.source(1, ox, kj) {
                            plane[iy * d.w + ix] += row[oy * d.ow + ox];
                        }
                    }
                }
            }
        }
    }
}

/// `dw [co, c / g, kh, kw]` of [`conv2d`] from `x [n, c, h, w]` and `dy [n, co, oh, ow]`.
/// Images are taken `chunk` at a time (fixed by the budget): `dw_g += dy_g [cog, chunk * p]
/// @ col_g^T [chunk * p, k]`, each product using every thread.
pub fn conv2d_weight_grad(d: &ConvDims, x: &[f32], dy: &[f32], dw: &mut [f32], budget_elems: usize) {
    let (k, p, cog) = (d.k(), d.p(), d.cog());
    dw.fill(0.0);
    if d.n == 0 || p == 0 {
        return;
    }
    let chunk = (budget_elems / ((k + cog) * p).max(1)).clamp(1, d.n);
    let mut colt = vec![0.0f32; chunk * p * k];
    let mut dyc = vec![0.0f32; cog * chunk * p];
    for gi in 0..d.groups() {
        let dwg = &mut dw[gi * cog * k..][..cog * k];
        for n0 in (0..d.n).step_by(chunk) {
            let nc = chunk.min(d.n - n0);
            // col_g^T of each image: rows (image, pixel), columns kk.
            colt[..nc * p * k].par_chunks_mut(p * k).enumerate().for_each(|(j, rows)| {
                let xi = &x[(n0 + j) * d.c * d.h * d.w..][..d.c * d.h * d.w];
                im2col(d, xi, gi, rows, 1, k);
            });
            // dy_g as [cog, nc * p].
            for co in 0..cog {
                for j in 0..nc {
                    let src = &dy[((n0 + j) * d.co + gi * cog + co) * p..][..p];
                    dyc[co * nc * p + j * p..][..p].copy_from_slice(src);
                }
            }
            let a = Mat::row_major(&dyc, cog, nc * p);
            let b = Mat::row_major(&colt, nc * p, k);
            gemm(dwg, a, b, true, Threads::All);
        }
    }
}

/// Runs `image` on each image's slice of `out` (`per` elements each): in parallel with
/// single-threaded products when there are enough images, else one at a time with
/// multi-threaded products.
fn per_image(out: &mut [f32], n: usize, per: usize, image: impl Fn((usize, &mut [f32]), Threads) + Sync) {
    if per == 0 || n == 0 {
        return;
    }
    if n >= 2 * rayon::current_num_threads() || rayon::current_num_threads() == 1 {
        out.par_chunks_mut(per).enumerate().for_each(|t| image(t, Threads::One));
    } else {
        out.chunks_mut(per).enumerate().for_each(|t| image(t, Threads::All));
    }
}
