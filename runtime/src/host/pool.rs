//! 2-D pooling and its gradient on the host, plane by plane in parallel: the interpreter's
//! rule in f32 (`genc_compiler::interp`'s window module). Max pooling takes the first maximum
//! in row-major window order, NaN counting as the largest; its gradient goes to that element.
//! Average pooling divides by the whole window (padding included). Each plane is one task, so
//! results do not depend on the thread count.

use genc_compiler::prim::{PoolKind, Window};
use rayon::prelude::*;

/// The extents of a pooled plane, or why the window does not fit `[h, w]`.
pub fn out_extents(window: &Window, h: usize, w: usize) -> Result<[usize; 2], String> {
    let mut out = [0; 2];
    for (axis, extent) in [h, w].into_iter().enumerate() {
        let (k, s, p) = (window.kernel[axis], window.stride[axis], window.pad[axis]);
        let padded = extent + 2 * p;
        if k == 0 || s == 0 || p > k / 2 || padded < k {
            return Err(format!("window {window:?} does not fit an extent of {extent}"));
        }
        out[axis] = (padded - k) / s + 1;
    }
    Ok(out)
}

/// The input rows (or columns) of window position `o` on `axis`: `lo..hi`, in bounds.
fn span(window: &Window, axis: usize, o: usize, extent: usize) -> (usize, usize) {
    let start = o * window.stride[axis];
    let lo = start.saturating_sub(window.pad[axis]);
    let hi = (start + window.kernel[axis]).saturating_sub(window.pad[axis]).min(extent);
    (lo, hi.max(lo))
}

/// The first maximum of the window (its index in the plane), NaN counting as the largest.
fn first_max(plane: &[f32], w: usize, rows: (usize, usize), cols: (usize, usize)) -> Option<usize> {
    let mut best: Option<(usize, f32)> = None;
    for ih in rows.0..rows.1 {
        for iw in cols.0..cols.1 {
            let (at, v) = (ih * w + iw, plane[ih * w + iw]);
            let better = match best {
                None => true,
                Some((_, b)) => !b.is_nan() && (v.is_nan() || v > b),
            };
            if better {
                best = Some((at, v));
            }
        }
    }
    best.map(|(at, _)| at)
}

/// `out [planes, ho, wo]` pooled from `x [planes, h, w]`.
pub fn pool2d(kind: PoolKind, window: &Window, x: &[f32], hw: [usize; 2], out: &mut [f32], ohw: [usize; 2]) {
    let ([h, w], [ho, wo]) = (hw, ohw);
    let area = (window.kernel[0] * window.kernel[1]) as f32;
    out.par_chunks_mut((ho * wo).max(1)).zip(x.par_chunks(h * w)).for_each(|(y, plane)| {
        for oh in 0..ho {
            let rows = span(window, 0, oh, h);
            for ow in 0..wo {
                let cols = span(window, 1, ow, w);
                y[oh * wo + ow] = match kind {
                    PoolKind::Max => {
                        first_max(plane, w, rows, cols).map_or(f32::NEG_INFINITY, |at| plane[at])
                    }
                    PoolKind::Avg => {
                        let mut sum = 0.0;
                        for ih in rows.0..rows.1 {
                            for &v in &plane[ih * w + cols.0..ih * w + cols.1] {
                                sum += v;
                            }
                        }
                        sum / area
                    }
                };
            }
        }
    });
}

/// `dx [planes, h, w]` of [`pool2d`] from `x` and `dy [planes, ho, wo]`: windows add their
/// gradients in row-major window order.
pub fn pool2d_grad(
    kind: PoolKind,
    window: &Window,
    x: &[f32],
    dy: &[f32],
    hw: [usize; 2],
    ohw: [usize; 2],
    dx: &mut [f32],
) {
    let ([h, w], [ho, wo]) = (hw, ohw);
    let area = (window.kernel[0] * window.kernel[1]) as f32;
    dx.par_chunks_mut(h * w).zip(x.par_chunks(h * w)).zip(dy.par_chunks((ho * wo).max(1))).for_each(
        |((d, plane), g)| {
            d.fill(0.0);
            for oh in 0..ho {
                let rows = span(window, 0, oh, h);
                for ow in 0..wo {
                    let cols = span(window, 1, ow, w);
                    let gv = g[oh * wo + ow];
                    match kind {
                        PoolKind::Max => {
                            if let Some(at) = first_max(plane, w, rows, cols) {
                                d[at] += gv;
                            }
                        }
                        PoolKind::Avg => {
                            for ih in rows.0..rows.1 {
                                for v in &mut d[ih * w + cols.0..ih * w + cols.1] {
                                    *v += gv / area;
                                }
                            }
                        }
                    }
                }
            }
        },
    );
}
