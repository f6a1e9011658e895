//! Convolutions on the host, in chunks of images: each chunk's im2col as one row-major
//! `[k, images * pixels]` matrix built row by row in parallel, then one [`gemm`] product on
//! every thread per chunk and group (the forward convolution, the transposed one followed by
//! col2im, and the weight gradient contracting over the chunk's pixels). One large product
//! keeps the GEMM's packed panels busy where a product per image re-packs its weights each time.
//!
//! Chunk sizes depend on the shapes and the scratch budget only, and every sum runs in a fixed
//! order, so results do not depend on the thread count.

use std::cell::RefCell;

use genc_compiler::prim::ConvGeometry;
use rayon::prelude::*;

use super::gemm::{Mat, Threads, gemm};

thread_local! {
    /// The calling thread's two chunk buffers, reused across convolutions (a fresh one costs
    /// a page fault per 4 KiB on every call).
    static CHUNKS: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// Runs `f` with two scratch buffers of `a` and `b` elements (contents unspecified): this
/// thread's, or fresh ones if they are in use.
fn with_chunks<R>(a: usize, b: usize, f: impl FnOnce(&mut [f32], &mut [f32]) -> R) -> R {
    CHUNKS.with(|cell| match cell.try_borrow_mut() {
        Ok(mut bufs) => {
            let (x, y) = &mut *bufs;
            if x.len() < a {
                x.resize(a, 0.0);
            }
            if y.len() < b {
                y.resize(b, 0.0);
            }
            f(&mut x[..a], &mut y[..b])
        }
        Err(_) => f(&mut vec![0.0; a], &mut vec![0.0; b]),
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

    /// The output columns `lo..hi` whose tap `t` reads inside the image (the others read the
    /// padding), and the input column read by the first of them: column `lo + i` reads input
    /// column `first + i * stride`.
    fn columns(&self, t: usize) -> (usize, usize, usize) {
        let (s, offset) = (self.g.stride[1], (t * self.g.dilation[1]) as isize - self.g.pad[1] as isize);
        // Smallest o with o * s + offset >= 0; one past the largest with o * s + offset < w.
        let lo = if offset >= 0 { 0 } else { (-offset) as usize }.div_ceil(s).min(self.ow);
        let end = self.w as isize - offset;
        let hi = if end <= 0 { 0 } else { (end as usize).div_ceil(s).min(self.ow) }.max(lo);
        let first = (lo * s) as isize + offset;
        (lo, hi, first.max(0) as usize)
    }
}

/// Row `kk` of group `gi`'s im2col matrix `[k, p]` of image `x` (`[c, h, w]`, contiguous): what
/// kernel tap `kk = (ci * kh + ki) * kw + kj` reads for each output pixel (0 in the padding).
fn im2col_row(d: &ConvDims, x: &[f32], gi: usize, kk: usize, row: &mut [f32]) {
    let (ci, ki, kj) = (kk / (d.kh * d.kw), (kk / d.kw) % d.kh, kk % d.kw);
    let plane = &x[(gi * d.cg() + ci) * d.h * d.w..][..d.h * d.w];
    let (lo, hi, first) = d.columns(kj);
    let stride = d.g.stride[1];
    for oy in 0..d.oh {
        let out = &mut row[oy * d.ow..][..d.ow];
        let Some(iy) = d.source(0, oy, ki) else {
            out.fill(0.0);
            continue;
        };
        out[..lo].fill(0.0);
        out[hi..].fill(0.0);
        let src = &plane[iy * d.w + first..];
        let inside = &mut out[lo..hi];
        if stride == 1 {
            inside.copy_from_slice(&src[..inside.len()]);
        } else {
            for (i, o) in inside.iter_mut().enumerate() {
                *o = src[i * stride];
            }
        }
    }
}

/// Images per chunk: as many as fit `budget_elems` of scratch for `per_image` elements each.
fn chunk_of(d: &ConvDims, per_image: usize, budget_elems: usize) -> usize {
    (budget_elems / per_image.max(1)).clamp(1, d.n.max(1))
}

/// Group `gi`'s im2col of images `n0 .. n0 + nc` as one row-major `[k, nc * p]` matrix: row
/// `kk` holds tap `kk` of every image's pixels, image by image. Rows are built in parallel,
/// every write sequential.
fn im2col_chunk(d: &ConvDims, x: &[f32], gi: usize, n0: usize, col: &mut [f32]) {
    let (p, chw) = (d.p(), d.c * d.h * d.w);
    let width = col.len() / d.k().max(1);
    col.par_chunks_mut(width).enumerate().for_each(|(kk, row)| {
        for (j, pixels) in row.chunks_exact_mut(p).enumerate() {
            im2col_row(d, &x[(n0 + j) * chw..][..chw], gi, kk, pixels);
        }
    });
}

/// Group `gi`'s output channels of images `n0 ..` of `y [n, co, p]` as one row-major
/// `[cog, nc * p]` matrix (`dst`'s length says how many images).
fn gather_group(d: &ConvDims, y: &[f32], gi: usize, n0: usize, dst: &mut [f32]) {
    let (p, cog) = (d.p(), d.cog());
    let width = dst.len() / cog.max(1);
    dst.par_chunks_mut(width).enumerate().for_each(|(co, row)| {
        for (j, pixels) in row.chunks_exact_mut(p).enumerate() {
            pixels.copy_from_slice(&y[((n0 + j) * d.co + gi * cog + co) * p..][..p]);
        }
    });
}

/// The inverse of [`gather_group`]: `src [cog, nc * p]` into group `gi`'s output channels of
/// images `n0 ..` of `y [n, co, p]`, images in parallel.
fn scatter_group(d: &ConvDims, src: &[f32], gi: usize, n0: usize, y: &mut [f32]) {
    let (p, cog) = (d.p(), d.cog());
    let width = src.len() / cog.max(1);
    let images = &mut y[n0 * d.co * p..][..width * d.co];
    images.par_chunks_mut(d.co * p).enumerate().for_each(|(j, image)| {
        for co in 0..cog {
            image[(gi * cog + co) * p..][..p].copy_from_slice(&src[co * width + j * p..][..p]);
        }
    });
}

/// `out [n, co, oh, ow] = conv2d(x [n, c, h, w], w [co, c / g, kh, kw])`, all contiguous.
/// Per chunk of images and group: `y_g [cog, nc * p] = w_g [cog, k] @ col_g [k, nc * p]` in
/// one product on every thread, then each image's rows copied into place.
pub fn conv2d(d: &ConvDims, x: &[f32], w: &[f32], out: &mut [f32], budget_elems: usize) {
    let (k, p, cog) = (d.k(), d.p(), d.cog());
    if d.n == 0 || p == 0 || d.co == 0 {
        return;
    }
    let chunk = chunk_of(d, (k + cog) * p, budget_elems);
    with_chunks(k * chunk * p, cog * chunk * p, |col, y| {
        for n0 in (0..d.n).step_by(chunk) {
            let nc = chunk.min(d.n - n0);
            let width = nc * p;
            for gi in 0..d.groups() {
                let wg = Mat::row_major(&w[gi * cog * k..], cog, k);
                let col = &mut col[..k * width];
                im2col_chunk(d, x, gi, n0, col);
                gemm(&mut y[..cog * width], wg, Mat::row_major(col, k, width), false, Threads::All);
                scatter_group(d, &y[..cog * width], gi, n0, out);
            }
        }
    });
}

/// `out [n, co, oh, ow] = conv_transpose2d(x [n, c, h, w], w [c, co / g, kh, kw])`: the
/// adjoint of [`conv2d`] from `co` channels of `oh x ow` to `c` channels of `h x w` — here
/// `d` describes that forward convolution (input `out`, output `x`). Per chunk of images and
/// group: `col_g [k, nc * p] = w_g^T [k, cog] @ x_g [cog, nc * p]` in one product, then each
/// image's columns summed back into its pixels (col2im), images in parallel.
pub fn conv_transpose2d(d: &ConvDims, x: &[f32], w: &[f32], out: &mut [f32], budget_elems: usize) {
    // In `d`'s terms: x is the forward output [n, co, oh, ow], out the forward input.
    let (k, p, cog) = (d.k(), d.p(), d.cog());
    out.fill(0.0);
    if d.n == 0 || p == 0 || k == 0 {
        return;
    }
    let chunk = chunk_of(d, (k + cog) * p, budget_elems);
    let chw = d.c * d.h * d.w;
    with_chunks(k * chunk * p, cog * chunk * p, |col, xg| {
        for n0 in (0..d.n).step_by(chunk) {
            let nc = chunk.min(d.n - n0);
            let width = nc * p;
            for gi in 0..d.groups() {
                gather_group(d, x, gi, n0, &mut xg[..cog * width]);
                let wg = Mat::row_major(&w[gi * cog * k..], cog, k).t();
                let col = &mut col[..k * width];
                gemm(col, wg, Mat::row_major(&xg[..cog * width], cog, width), false, Threads::All);
                let col = &col[..];
                out[n0 * chw..][..nc * chw].par_chunks_mut(chw).enumerate().for_each(|(j, image)| {
                    col2im(d, col, width, j * p, gi, image);
                });
            }
        }
    });
}

/// The adjoint of [`im2col_row`] for one image: sums column entries `offset .. offset + p` of
/// each row `kk` of `col` (rows `width` apart) into the input pixel they were read from, in a
/// fixed order.
fn col2im(d: &ConvDims, col: &[f32], width: usize, offset: usize, gi: usize, y: &mut [f32]) {
    let (cg, p) = (d.cg(), d.p());
    for ci in 0..cg {
        let plane = &mut y[(gi * cg + ci) * d.h * d.w..][..d.h * d.w];
        for ki in 0..d.kh {
            for kj in 0..d.kw {
                let row = &col[((ci * d.kh + ki) * d.kw + kj) * width + offset..][..p];
                let (lo, hi, first) = d.columns(kj);
                let stride = d.g.stride[1];
                for oy in 0..d.oh {
                    let Some(iy) = d.source(0, oy, ki) else { continue };
                    let dst = &mut plane[iy * d.w + first..];
                    for (i, &v) in row[oy * d.ow + lo..oy * d.ow + hi].iter().enumerate() {
                        dst[i * stride] += v;
                    }
                }
            }
        }
    }
}

/// `dw [co, c / g, kh, kw]` of [`conv2d`] from `x [n, c, h, w]` and `dy [n, co, oh, ow]`.
/// Images are taken `chunk` at a time (fixed by the budget): `dw_g += dy_g [cog, nc * p]
/// @ col_g^T [nc * p, k]`, each product on every thread, reading the chunk's row-major
/// im2col transposed through its strides.
pub fn conv2d_weight_grad(d: &ConvDims, x: &[f32], dy: &[f32], dw: &mut [f32], budget_elems: usize) {
    let (k, p, cog) = (d.k(), d.p(), d.cog());
    dw.fill(0.0);
    if d.n == 0 || p == 0 {
        return;
    }
    let chunk = chunk_of(d, (k + cog) * p, budget_elems);
    with_chunks(k * chunk * p, cog * chunk * p, |col, dyc| {
        for gi in 0..d.groups() {
            let dwg = &mut dw[gi * cog * k..][..cog * k];
            for n0 in (0..d.n).step_by(chunk) {
                let nc = chunk.min(d.n - n0);
                let width = nc * p;
                let col = &mut col[..k * width];
                im2col_chunk(d, x, gi, n0, col);
                gather_group(d, dy, gi, n0, &mut dyc[..cog * width]);
                let a = Mat::row_major(&dyc[..cog * width], cog, width);
                gemm(dwg, a, Mat::row_major(col, k, width).t(), true, Threads::All);
            }
        }
    });
}
