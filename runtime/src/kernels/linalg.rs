//! Linear algebra on small square matrices `[.., n, n]`: one unit per matrix, the
//! interpreter's steps in f32 (LU with partial pivoting for `log |det|`, Gauss-Jordan with
//! partial pivoting for the inverse). Meant for the few small matrices a flow's invertible
//! 1x1 convolutions hold (n up to a few dozen), not for large systems.

// Kernel bodies compile to GPU code, where slices have no `swap` or `copy_from_slice`, and
// `zero / zero` is how WGSL spells NaN.
#![allow(clippy::manual_swap, clippy::manual_memcpy, clippy::eq_op)]

use cubecl::prelude::*;

use super::{cube_launch_dims, info_arg, movement};
use crate::device::{CubeDevice, DeviceError, DeviceTensor};

/// Swaps rows `a` and `b` of the n-wide matrix at `base`.
#[cube]
fn swap_rows<F: Float>(m: &mut [F], base: usize, a: usize, b: usize, n: usize) {
    for j in 0..n {
        let t = m[base + a * n + j];
        m[base + a * n + j] = m[base + b * n + j];
        m[base + b * n + j] = t;
    }
}

/// The row at or below `k` with the largest magnitude in column `k`, and that magnitude.
#[cube]
fn pivot_row<F: Float>(m: &mut [F], base: usize, k: usize, n: usize) -> (usize, F) {
    let mut p = k;
    let mut best = m[base + k * n + k].abs();
    for i in k + 1..n {
        let v = m[base + i * n + k].abs();
        if v > best {
            best = v;
            p = i;
        }
    }
    (p, best)
}

/// info = [count, n]; `work` receives a copy of each matrix, factored in place.
#[cube(launch_unchecked)]
fn logabsdet_kernel<F: Float>(input: &[F], work: &mut [F], output: &mut [F], info: &[u32]) {
    let count = usize::cast_from(info[0]);
    let n = usize::cast_from(info[1]);
    if ABSOLUTE_POS < count {
        let base = ABSOLUTE_POS * n * n;
        for i in 0..n * n {
            work[base + i] = input[base + i];
        }
        let mut total = F::new(0.0);
        let mut singular = false;
        // WGSL has no infinity literal: log of the zero pivot computes it.
        let mut zero = F::new(1.0);
        for k in 0..n {
            if !singular {
                let (p, best) = pivot_row::<F>(work, base, k, n);
                if best == F::new(0.0) {
                    singular = true;
                    zero = best;
                } else {
                    swap_rows::<F>(work, base, k, p, n);
                    let d = work[base + k * n + k];
                    total += d.abs().ln();
                    for i in k + 1..n {
                        let f = work[base + i * n + k] / d;
                        for j in k + 1..n {
                            work[base + i * n + j] -= f * work[base + k * n + j];
                        }
                    }
                }
            }
        }
        if singular {
            output[ABSOLUTE_POS] = zero.ln();
        } else {
            output[ABSOLUTE_POS] = total;
        }
    }
}

/// info = [count, n]; `work` receives a copy of each matrix, reduced to the identity while
/// `output` goes from the identity to the inverse.
#[cube(launch_unchecked)]
fn inverse_kernel<F: Float>(input: &[F], work: &mut [F], output: &mut [F], info: &[u32]) {
    let count = usize::cast_from(info[0]);
    let n = usize::cast_from(info[1]);
    if ABSOLUTE_POS < count {
        let base = ABSOLUTE_POS * n * n;
        for i in 0..n * n {
            work[base + i] = input[base + i];
            if i / n == i % n {
                output[base + i] = F::new(1.0);
            } else {
                output[base + i] = F::new(0.0);
            }
        }
        let mut singular = false;
        // WGSL has no NaN literal: the zero pivot divided by itself computes it.
        let mut zero = F::new(1.0);
        for k in 0..n {
            if !singular {
                let (p, best) = pivot_row::<F>(work, base, k, n);
                if best == F::new(0.0) {
                    singular = true;
                    zero = best;
                } else {
                    swap_rows::<F>(work, base, k, p, n);
                    swap_rows::<F>(output, base, k, p, n);
                    let d = work[base + k * n + k];
                    for j in 0..n {
                        work[base + k * n + j] /= d;
                        output[base + k * n + j] /= d;
                    }
                    for i in 0..n {
                        let f = work[base + i * n + k];
                        if i != k && f != F::new(0.0) {
                            for j in 0..n {
                                work[base + i * n + j] -= f * work[base + k * n + j];
                                output[base + i * n + j] -= f * output[base + k * n + j];
                            }
                        }
                    }
                }
            }
        }
        if singular {
            for i in 0..n * n {
                output[base + i] = zero / zero;
            }
        }
    }
}

/// Launches `kernel`-style per-matrix work over the matrices of `x`, into `out`.
fn per_matrix(
    device: &CubeDevice,
    x: &DeviceTensor,
    out: &DeviceTensor,
    inverse: bool,
) -> Result<(), DeviceError> {
    let x = movement::contiguous(device, x)?;
    let r = x.shape.len();
    let n = x.shape[r - 1];
    let count = x.numel() / (n * n).max(1);
    if count == 0 {
        return Ok(());
    }
    let work = DeviceTensor::cube_empty(device, x.dtype, &x.shape)?;
    let client = device.client();
    let (cubes, dim) = cube_launch_dims(client, count);
    let (xh, xl) = super::buffer_of(&x)?;
    let (wh, wl) = super::buffer_of(&work)?;
    let (oh, ol) = super::buffer_of(out)?;
    let info = [count as u32, n as u32];
    // SAFETY: unit m < count touches elements m * n * n .. (m + 1) * n * n of the input, the
    // work buffer (same shape) and, for the inverse, the output (same shape); for log|det|
    // one output element m < count.
    unsafe {
        let (input, work, output) = (
            BufferArg::from_raw_parts(xh, xl),
            BufferArg::from_raw_parts(wh, wl),
            BufferArg::from_raw_parts(oh, ol),
        );
        if inverse {
            inverse_kernel::launch_unchecked::<f32>(
                client,
                cubes,
                dim,
                input,
                work,
                output,
                info_arg(device, &info),
            );
        } else {
            logabsdet_kernel::launch_unchecked::<f32>(
                client,
                cubes,
                dim,
                input,
                work,
                output,
                info_arg(device, &info),
            );
        }
    }
    Ok(())
}

/// `log |det|` of each matrix of `x` `[.., n, n]`, shaped `out_shape` (`[..]`).
pub fn logabsdet(
    device: &CubeDevice,
    x: &DeviceTensor,
    out_shape: &[usize],
) -> Result<DeviceTensor, DeviceError> {
    let out = DeviceTensor::cube_empty(device, x.dtype, out_shape)?;
    per_matrix(device, x, &out, false)?;
    Ok(out)
}

/// The inverse of each matrix of `x` `[.., n, n]`.
pub fn inverse(device: &CubeDevice, x: &DeviceTensor) -> Result<DeviceTensor, DeviceError> {
    let out = DeviceTensor::cube_empty(device, x.dtype, &x.shape)?;
    per_matrix(device, x, &out, true)?;
    Ok(out)
}
