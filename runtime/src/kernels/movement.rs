//! Movement kernels: strided copies (materialising views, concat), pad, gather and its
//! deterministic adjoint scatter-add, and the scan along an axis.

use cubecl::prelude::*;

use super::{cube_launch_dims, info_arg, params_arg, strided_at};
use crate::device::{CubeDevice, DeviceError, DeviceTensor};

/// `out[out view at pos] = input[in view at pos]` for every row-major position of `shape`.
/// info = [n, shape_info[3 * rank], in_offset, in_strides[rank], out_offset, out_strides[rank]].
#[cube(launch_unchecked)]
fn copy_kernel<F: Float>(input: &[F], output: &mut [F], info: &[u32], #[comptime] rank: usize) {
    let n = usize::cast_from(info[0]);
    if ABSOLUTE_POS < n {
        let i = 1 + 3 * rank;
        let src = strided_at(ABSOLUTE_POS, info, 1, i + 1, usize::cast_from(info[i]), rank);
        let o = i + 1 + rank;
        let dst = strided_at(ABSOLUTE_POS, info, 1, o + 1, usize::cast_from(info[o]), rank);
        output[dst] = input[src];
    }
}

/// Copies the elements of view `src` into view `dst` (same shape).
pub fn copy_into(device: &CubeDevice, src: &DeviceTensor, dst: &DeviceTensor) -> Result<(), DeviceError> {
    let n = src.numel();
    if n == 0 {
        return Ok(());
    }
    let rank = src.shape.len();
    let mut info: Vec<u32> = vec![n as u32];
    info.extend(super::shape_info(&src.shape));
    info.push(src.offset as u32);
    info.extend(src.strides.iter().map(|&s| s as u32));
    info.push(dst.offset as u32);
    info.extend(dst.strides.iter().map(|&s| s as u32));
    let client = device.client();
    let (count, dim) = cube_launch_dims(client, n);
    let (src_h, src_len) = super::buffer_of(src)?;
    let (dst_h, dst_len) = super::buffer_of(dst)?;
    // SAFETY: both views index inside their buffers (valid shapes/strides/offsets); the info
    // buffer holds exactly the 3 + 5 * rank words the kernel reads.
    unsafe {
        copy_kernel::launch_unchecked::<f32>(
            client,
            count,
            dim,
            BufferArg::from_raw_parts(src_h, src_len),
            BufferArg::from_raw_parts(dst_h, dst_len),
            info_arg(device, &info),
            rank,
        );
    }
    Ok(())
}

/// A contiguous copy of any view.
pub fn materialize(device: &CubeDevice, t: &DeviceTensor) -> Result<DeviceTensor, DeviceError> {
    let out = DeviceTensor::cube_empty(device, t.dtype, &t.shape)?;
    copy_into(device, t, &out)?;
    Ok(out)
}

/// A contiguous tensor: the input itself when it already is one.
pub fn contiguous(device: &CubeDevice, t: &DeviceTensor) -> Result<DeviceTensor, DeviceError> {
    if t.is_contiguous() { Ok(t.clone()) } else { materialize(device, t) }
}

/// info = [n, out_shape[rank], before[rank], in_shape[rank], in_offset, in_strides[rank]];
/// params = [value].
#[cube(launch_unchecked)]
fn pad_kernel<F: Float>(input: &[F], output: &mut [F], params: &[F], info: &[u32], #[comptime] rank: usize) {
    let n = usize::cast_from(info[0]);
    if ABSOLUTE_POS < n {
        let mut rem = ABSOLUTE_POS;
        let mut at = usize::cast_from(info[1 + 3 * rank]);
        let mut inside = true.runtime();
        #[unroll]
        for k in 0..rank {
            let d = rank - 1 - k;
            let extent = usize::cast_from(info[1 + d]);
            let coord = rem % extent;
            rem /= extent;
            let before = usize::cast_from(info[1 + rank + d]);
            let in_extent = usize::cast_from(info[1 + 2 * rank + d]);
            if coord < before || coord >= before + in_extent {
                inside = false;
            } else {
                at += (coord - before) * usize::cast_from(info[2 + 3 * rank + d]);
            }
        }
        if inside {
            output[ABSOLUTE_POS] = input[at];
        } else {
            output[ABSOLUTE_POS] = params[0];
        }
    }
}

pub fn pad(
    device: &CubeDevice,
    x: &DeviceTensor,
    pads: &[(usize, usize)],
    value: f32,
    out_shape: &[usize],
) -> Result<DeviceTensor, DeviceError> {
    let out = DeviceTensor::cube_empty(device, x.dtype, out_shape)?;
    let n = out.numel();
    if n == 0 {
        return Ok(out);
    }
    if x.numel() == 0 {
        return super::generate::fill(device, x.dtype, out_shape, value);
    }
    let rank = out_shape.len();
    let mut info: Vec<u32> = vec![n as u32];
    info.extend(out_shape.iter().map(|&d| d as u32));
    info.extend(pads.iter().map(|p| p.0 as u32));
    info.extend(x.shape.iter().map(|&d| d as u32));
    info.push(x.offset as u32);
    info.extend(x.strides.iter().map(|&s| s as u32));
    let client = device.client();
    let (count, dim) = cube_launch_dims(client, n);
    let (xh, xl) = super::buffer_of(x)?;
    let (oh, ol) = super::buffer_of(&out)?;
    // SAFETY: reads happen only for coordinates inside the input view; writes are below n.
    unsafe {
        pad_kernel::launch_unchecked::<f32>(
            client,
            count,
            dim,
            BufferArg::from_raw_parts(xh, xl),
            BufferArg::from_raw_parts(oh, ol),
            params_arg(device, &[value]),
            info_arg(device, &info),
            rank,
        );
    }
    Ok(out)
}

/// Contiguous `x` as `[outer, extent, inner]`, `idx` of `m` elements:
/// `out[(o * m + j) * inner + r] = x[(o * extent + idx[j]) * inner + r]`.
/// info = [n, m, extent, inner]. Indices are clamped into range.
#[cube(launch_unchecked)]
fn gather_kernel<F: Float>(x: &[F], idx: &[F], output: &mut [F], info: &[u32]) {
    let n = usize::cast_from(info[0]);
    if ABSOLUTE_POS < n {
        let m = usize::cast_from(info[1]);
        let extent = usize::cast_from(info[2]);
        let inner = usize::cast_from(info[3]);
        let r = ABSOLUTE_POS % inner;
        let j = (ABSOLUTE_POS / inner) % m;
        let o = ABSOLUTE_POS / (inner * m);
        let raw = i32::cast_from(idx[j]);
        let i = usize::cast_from(clamp(raw, 0, i32::cast_from(extent) - 1));
        output[ABSOLUTE_POS] = x[(o * extent + i) * inner + r];
    }
}

pub fn gather(
    device: &CubeDevice,
    x: &DeviceTensor,
    idx: &DeviceTensor,
    axis: usize,
    out_shape: &[usize],
) -> Result<DeviceTensor, DeviceError> {
    let out = DeviceTensor::cube_empty(device, x.dtype, out_shape)?;
    let n = out.numel();
    if n == 0 {
        return Ok(out);
    }
    let x = contiguous(device, x)?;
    let idx = contiguous(device, idx)?;
    let extent = x.shape[axis];
    let inner: usize = x.shape[axis + 1..].iter().product();
    let m = idx.numel();
    let info = [n as u32, m as u32, extent as u32, inner as u32];
    let client = device.client();
    let (count, dim) = cube_launch_dims(client, n);
    let (xh, xl) = super::buffer_of(&x)?;
    let (ih, il) = super::buffer_of(&idx)?;
    let (oh, ol) = super::buffer_of(&out)?;
    // SAFETY: indices are clamped to [0, extent); o < outer and r < inner by construction.
    unsafe {
        gather_kernel::launch_unchecked::<f32>(
            client,
            count,
            dim,
            BufferArg::from_raw_parts(xh, xl),
            BufferArg::from_raw_parts(ih, il),
            BufferArg::from_raw_parts(oh, ol),
            info_arg(device, &info),
        );
    }
    Ok(out)
}

/// The adjoint of gather, without atomics: each output element sums, in index order, every
/// source element whose index names it. info = [n, m, extent, inner].
#[cube(launch_unchecked)]
fn scatter_add_kernel<F: Float>(idx: &[F], src: &[F], output: &mut [F], info: &[u32]) {
    let n = usize::cast_from(info[0]);
    if ABSOLUTE_POS < n {
        let m = usize::cast_from(info[1]);
        let extent = usize::cast_from(info[2]);
        let inner = usize::cast_from(info[3]);
        let r = ABSOLUTE_POS % inner;
        let a = (ABSOLUTE_POS / inner) % extent;
        let o = ABSOLUTE_POS / (inner * extent);
        let target = i32::cast_from(a);
        let mut acc = F::new(0.0);
        for j in 0..m {
            let raw = clamp(i32::cast_from(idx[j]), 0, i32::cast_from(extent) - 1);
            if raw == target {
                acc += src[(o * m + j) * inner + r];
            }
        }
        output[ABSOLUTE_POS] = acc;
    }
}

pub fn scatter_add(
    device: &CubeDevice,
    idx: &DeviceTensor,
    src: &DeviceTensor,
    axis: usize,
    out_shape: &[usize],
) -> Result<DeviceTensor, DeviceError> {
    let n: usize = out_shape.iter().product();
    if n == 0 {
        return DeviceTensor::cube_empty(device, src.dtype, out_shape);
    }
    if idx.numel() == 0 || src.numel() == 0 {
        return super::generate::fill(device, src.dtype, out_shape, 0.0);
    }
    let out = DeviceTensor::cube_empty(device, src.dtype, out_shape)?;
    let idx = contiguous(device, idx)?;
    let src = contiguous(device, src)?;
    let extent = out_shape[axis];
    let inner: usize = out_shape[axis + 1..].iter().product();
    let info = [n as u32, idx.numel() as u32, extent as u32, inner as u32];
    let client = device.client();
    let (count, dim) = cube_launch_dims(client, n);
    let (ih, il) = super::buffer_of(&idx)?;
    let (sh, sl) = super::buffer_of(&src)?;
    let (oh, ol) = super::buffer_of(&out)?;
    // SAFETY: j < m indexes idx; (o * m + j) * inner + r < outer * m * inner = src.numel().
    unsafe {
        scatter_add_kernel::launch_unchecked::<f32>(
            client,
            count,
            dim,
            BufferArg::from_raw_parts(ih, il),
            BufferArg::from_raw_parts(sh, sl),
            BufferArg::from_raw_parts(oh, ol),
            info_arg(device, &info),
        );
    }
    Ok(out)
}

/// Inclusive scan along the middle axis of a contiguous `[outer, extent, inner]`; one unit per
/// line, in order, so it is deterministic. info = [lines, extent, inner].
#[cube(launch_unchecked)]
fn scan_kernel<F: Float>(input: &[F], output: &mut [F], info: &[u32], #[comptime] product: bool) {
    let lines = usize::cast_from(info[0]);
    if ABSOLUTE_POS < lines {
        let extent = usize::cast_from(info[1]);
        let inner = usize::cast_from(info[2]);
        let r = ABSOLUTE_POS % inner;
        let o = ABSOLUTE_POS / inner;
        let mut acc = F::new(0.0);
        if product {
            acc = F::new(1.0);
        }
        for k in 0..extent {
            let at = (o * extent + k) * inner + r;
            if product {
                acc *= input[at];
            } else {
                acc += input[at];
            }
            output[at] = acc;
        }
    }
}

pub fn scan(
    device: &CubeDevice,
    x: &DeviceTensor,
    axis: usize,
    product: bool,
) -> Result<DeviceTensor, DeviceError> {
    let out = DeviceTensor::cube_empty(device, x.dtype, &x.shape)?;
    if out.numel() == 0 {
        return Ok(out);
    }
    let x = contiguous(device, x)?;
    let extent = x.shape[axis];
    let inner: usize = x.shape[axis + 1..].iter().product();
    let lines = x.numel() / extent;
    let info = [lines as u32, extent as u32, inner as u32];
    let client = device.client();
    let (count, dim) = cube_launch_dims(client, lines);
    let (xh, xl) = super::buffer_of(&x)?;
    let (oh, ol) = super::buffer_of(&out)?;
    // SAFETY: every index is (o * extent + k) * inner + r < numel for o < outer, r < inner.
    unsafe {
        scan_kernel::launch_unchecked::<f32>(
            client,
            count,
            dim,
            BufferArg::from_raw_parts(xh, xl),
            BufferArg::from_raw_parts(oh, ol),
            info_arg(device, &info),
            product,
        );
    }
    Ok(out)
}
