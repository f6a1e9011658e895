//! Windows and resampling: 2-D pooling and its gradient, upsampling and its gradient.
//!
//! Decisions beyond prim.rs: operands are f32 `[N, C, H, W]`; pooling windows have kernel
//! and stride ≥ 1 and padding at most half the kernel (PyTorch's rule, so every window holds
//! an element unless the input is empty), output extent `⌊(H + 2p − k) / s⌋ + 1` (no ceil
//! mode). Max pooling takes the first maximum in row-major window order, NaN counting as the
//! largest value; its gradient goes to that same element. Bilinear upsampling follows
//! PyTorch's `align_corners=False`: output `o` reads source coordinate
//! `max((o + ½) / s − ½, 0)` between `i0 = ⌊·⌋` and `i1 = min(i0 + 1, H − 1)`.

use super::{ErrorKind, Res, Value, alloc, numel, small, want_dtype, want_rank};
use crate::prim::{DType, PoolKind, UpsampleMode, Window};

fn dims4(v: &Value, what: &str) -> Res<[usize; 4]> {
    want_dtype(v, &[DType::F32], what)?;
    want_rank(v, 4, what)?;
    for &e in &v.shape {
        small(e, "an extent")?;
    }
    Ok([v.shape[0], v.shape[1], v.shape[2], v.shape[3]])
}

/// The output extents of a pooling window over `[h, w]`, after checking the window.
fn pool_out(window: &Window, hw: [usize; 2]) -> Res<[usize; 2]> {
    let mut out = [0; 2];
    for axis in 0..2 {
        let (k, s, p) = (window.kernel[axis], window.stride[axis], window.pad[axis]);
        small(k, "a kernel extent")?;
        small(s, "a stride")?;
        small(p, "a padding")?;
        if k == 0 || s == 0 || p > k / 2 {
            return Err(ErrorKind::Attribute(format!(
                "window {window:?}: kernel and stride must be ≥ 1 and padding at most half the kernel"
            )));
        }
        let padded = hw[axis] + 2 * p;
        if padded < k {
            return Err(ErrorKind::Shape(format!("a kernel of {k} over a padded extent of {padded}")));
        }
        out[axis] = (padded - k) / s + 1;
    }
    Ok(out)
}

/// The in-bounds input positions `(ih, iw)` of window `(oh, ow)`, in row-major window order.
fn window_positions(window: &Window, hw: [usize; 2], oh: usize, ow: usize, out: &mut Vec<(usize, usize)>) {
    out.clear();
    let [kh, kw] = window.kernel;
    for ki in 0..kh {
        let Some(ih) = (oh * window.stride[0] + ki).checked_sub(window.pad[0]).filter(|&i| i < hw[0]) else {
            continue;
        };
        for kj in 0..kw {
            if let Some(iw) = (ow * window.stride[1] + kj).checked_sub(window.pad[1]).filter(|&i| i < hw[1]) {
                out.push((ih, iw));
            }
        }
    }
}

/// The first maximum among `positions` of one `[h, w]` plane (NaN counts as the largest).
fn first_max(plane: &[f64], w: usize, positions: &[(usize, usize)]) -> Option<(usize, f64)> {
    let mut best: Option<(usize, f64)> = None;
    for &(ih, iw) in positions {
        let (at, v) = (ih * w + iw, plane[ih * w + iw]);
        let better = match best {
            None => true,
            Some((_, b)) => !b.is_nan() && (v.is_nan() || v > b),
        };
        if better {
            best = Some((at, v));
        }
    }
    best
}

pub(super) fn pool2d(kind: PoolKind, window: &Window, x: &Value) -> Res<Value> {
    let [n, c, h, w] = dims4(x, "pool2d's input")?;
    let [ho, wo] = pool_out(window, [h, w])?;
    let shape = vec![n, c, ho, wo];
    let mut data = alloc(numel(&shape)?, 0.0)?;
    let area = (window.kernel[0] * window.kernel[1]) as f64;
    let mut positions = Vec::new();
    for plane_index in 0..n * c {
        let plane = &x.data[plane_index * h * w..(plane_index + 1) * h * w];
        for oh in 0..ho {
            for ow in 0..wo {
                window_positions(window, [h, w], oh, ow, &mut positions);
                data[(plane_index * ho + oh) * wo + ow] = match kind {
                    PoolKind::Max => first_max(plane, w, &positions).map_or(f64::NEG_INFINITY, |(_, v)| v),
                    PoolKind::Avg => positions.iter().map(|&(ih, iw)| plane[ih * w + iw]).sum::<f64>() / area,
                };
            }
        }
    }
    Ok(Value { dtype: DType::F32, shape, data })
}

/// Inputs `(x, dy)`; windows add their gradients in row-major window order.
pub(super) fn pool2d_grad(kind: PoolKind, window: &Window, x: &Value, dy: &Value) -> Res<Value> {
    let [n, c, h, w] = dims4(x, "pool2d_grad's input")?;
    let [ho, wo] = pool_out(window, [h, w])?;
    want_dtype(dy, &[DType::F32], "pool2d_grad's output gradient")?;
    if dy.shape != [n, c, ho, wo] {
        return Err(ErrorKind::Shape(format!(
            "pooling {:?} gives {:?}, not the gradient's {:?}",
            x.shape,
            [n, c, ho, wo],
            dy.shape
        )));
    }
    let mut dx = alloc(x.numel(), 0.0)?;
    let area = (window.kernel[0] * window.kernel[1]) as f64;
    let mut positions = Vec::new();
    for plane_index in 0..n * c {
        let base = plane_index * h * w;
        let plane = &x.data[base..base + h * w];
        for oh in 0..ho {
            for ow in 0..wo {
                let g = dy.data[(plane_index * ho + oh) * wo + ow];
                window_positions(window, [h, w], oh, ow, &mut positions);
                match kind {
                    PoolKind::Max => {
                        if let Some((at, _)) = first_max(plane, w, &positions) {
                            dx[base + at] += g;
                        }
                    }
                    PoolKind::Avg => {
                        for &(ih, iw) in &positions {
                            dx[base + ih * w + iw] += g / area;
                        }
                    }
                }
            }
        }
    }
    Ok(Value { dtype: DType::F32, shape: x.shape.clone(), data: dx })
}

/// For each output coordinate along an axis of `len` inputs upsampled by `scale`, the input
/// coordinates it reads and their weights.
fn taps(mode: UpsampleMode, len: usize, scale: usize) -> Vec<Vec<(usize, f64)>> {
    (0..len * scale)
        .map(|o| match mode {
            UpsampleMode::Nearest => vec![(o / scale, 1.0)],
            UpsampleMode::Bilinear => {
                let src = ((o as f64 + 0.5) / scale as f64 - 0.5).max(0.0);
                let i0 = (src.floor() as usize).min(len - 1);
                let i1 = (i0 + 1).min(len - 1);
                let l1 = src - i0 as f64;
                vec![(i0, 1.0 - l1), (i1, l1)]
            }
        })
        .collect()
}

fn check_scale(scale: [usize; 2]) -> Res<()> {
    if scale.contains(&0) {
        return Err(ErrorKind::Attribute(format!("scale {scale:?} must be ≥ 1")));
    }
    small(scale[0], "a scale")?;
    small(scale[1], "a scale")?;
    Ok(())
}

pub(super) fn upsample(mode: UpsampleMode, scale: [usize; 2], x: &Value) -> Res<Value> {
    check_scale(scale)?;
    let [n, c, h, w] = dims4(x, "upsample's input")?;
    let (ho, wo) = (h * scale[0], w * scale[1]);
    let shape = vec![n, c, ho, wo];
    let mut data = alloc(numel(&shape)?, 0.0)?;
    let (th, tw) = (taps(mode, h, scale[0]), taps(mode, w, scale[1]));
    for plane_index in 0..n * c {
        let plane = &x.data[plane_index * h * w..(plane_index + 1) * h * w];
        for (oh, hs) in th.iter().enumerate() {
            for (ow, ws) in tw.iter().enumerate() {
                // PyTorch's order: Σ_h λ_h · (Σ_w λ_w · x[h, w]).
                let mut acc = 0.0;
                for &(ih, lh) in hs {
                    let mut row = 0.0;
                    for &(iw, lw) in ws {
                        row += lw * plane[ih * w + iw];
                    }
                    acc += lh * row;
                }
                data[(plane_index * ho + oh) * wo + ow] = acc;
            }
        }
    }
    Ok(Value { dtype: DType::F32, shape, data })
}

/// Input `dy [N, C, H·sh, W·sw]`, output the node's `[N, C, H, W]`: each `dy` element adds
/// into the inputs it was read from, with the same weights.
pub(super) fn upsample_grad(
    mode: UpsampleMode,
    scale: [usize; 2],
    dy: &Value,
    shape: &[usize],
) -> Res<Value> {
    check_scale(scale)?;
    let [n, c, ho, wo] = dims4(dy, "upsample_grad's input")?;
    let out: [usize; 4] = shape
        .try_into()
        .map_err(|_| ErrorKind::Shape(format!("an upsample gradient of shape {shape:?} (rank 4 needed)")))?;
    let [_, _, h, w] = out;
    if out[..2] != [n, c] || h.checked_mul(scale[0]) != Some(ho) || w.checked_mul(scale[1]) != Some(wo) {
        return Err(ErrorKind::Shape(format!(
            "upsampling {shape:?} by {scale:?} does not give the gradient's {:?}",
            dy.shape
        )));
    }
    let mut dx = alloc(numel(shape)?, 0.0)?;
    let (th, tw) = (taps(mode, h, scale[0]), taps(mode, w, scale[1]));
    for plane_index in 0..n * c {
        let base = plane_index * h * w;
        for (oh, hs) in th.iter().enumerate() {
            for (ow, ws) in tw.iter().enumerate() {
                let g = dy.data[(plane_index * ho + oh) * wo + ow];
                for &(ih, lh) in hs {
                    for &(iw, lw) in ws {
                        dx[base + ih * w + iw] += lh * lw * g;
                    }
                }
            }
        }
    }
    Ok(Value { dtype: DType::F32, shape: shape.to_vec(), data: dx })
}
