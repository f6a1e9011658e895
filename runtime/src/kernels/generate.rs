//! Kernels that create tensors from nothing: fill, iota and the counter-based random draws.
//!
//! The random kernel computes exactly `genc_compiler::random` (PCG hash, wrapping u32
//! arithmetic), so a device draw equals the host's: uniform draws bit for bit, normal draws
//! within float tolerance (the device's `ln`/`cos`/`sqrt` may differ in the last ulps). This
//! is deliberately not cubek's random: host/device reproducibility from one seed matters more.

use cubecl::prelude::*;
use genc_compiler::prim::DType;

use super::{cube_launch_dims, info_arg, params_arg};
use crate::device::{CubeDevice, DeviceError, DeviceTensor};

#[cube(launch_unchecked)]
fn fill_kernel<F: Float>(output: &mut [F], params: &[F], info: &[u32]) {
    if ABSOLUTE_POS < usize::cast_from(info[0]) {
        output[ABSOLUTE_POS] = params[0];
    }
}

pub fn fill(
    device: &CubeDevice,
    dtype: DType,
    shape: &[usize],
    value: f32,
) -> Result<DeviceTensor, DeviceError> {
    let out = DeviceTensor::cube_empty(device, dtype, shape)?;
    let n = out.numel();
    if n == 0 {
        return Ok(out);
    }
    let client = device.client();
    let (count, dim) = cube_launch_dims(client, n);
    let (oh, ol) = super::buffer_of(&out)?;
    // SAFETY: writes only below n, the output's element count.
    unsafe {
        fill_kernel::launch_unchecked::<f32>(
            client,
            count,
            dim,
            BufferArg::from_raw_parts(oh, ol),
            params_arg(device, &[value]),
            info_arg(device, &[n as u32]),
        );
    }
    Ok(out)
}

/// info = [n, inner, extent]: `out[pos] = (pos / inner) % extent`.
#[cube(launch_unchecked)]
fn iota_kernel<F: Float>(output: &mut [F], info: &[u32]) {
    if ABSOLUTE_POS < usize::cast_from(info[0]) {
        let inner = usize::cast_from(info[1]);
        let extent = usize::cast_from(info[2]);
        output[ABSOLUTE_POS] = F::cast_from((ABSOLUTE_POS / inner) % extent);
    }
}

pub fn iota(
    device: &CubeDevice,
    dtype: DType,
    shape: &[usize],
    axis: usize,
) -> Result<DeviceTensor, DeviceError> {
    let out = DeviceTensor::cube_empty(device, dtype, shape)?;
    let n = out.numel();
    if n == 0 {
        return Ok(out);
    }
    let inner: usize = shape[axis + 1..].iter().product();
    let client = device.client();
    let (count, dim) = cube_launch_dims(client, n);
    let (oh, ol) = super::buffer_of(&out)?;
    // SAFETY: writes only below n.
    unsafe {
        iota_kernel::launch_unchecked::<f32>(
            client,
            count,
            dim,
            BufferArg::from_raw_parts(oh, ol),
            info_arg(device, &[n as u32, inner as u32, shape[axis] as u32]),
        );
    }
    Ok(out)
}

/// `genc_compiler::random::pcg_hash`.
#[cube]
fn pcg_hash(x: u32) -> u32 {
    let state = x * 747_796_405u32 + 2_891_336_453u32;
    let word = ((state >> ((state >> 28u32) + 4u32)) ^ state) * 277_803_737u32;
    (word >> 22u32) ^ word
}

/// `genc_compiler::random::uniform`.
#[cube]
fn uniform<F: Float>(key: u32, index: u32) -> F {
    let bits = pcg_hash(pcg_hash(index ^ key) + key);
    F::cast_from(bits >> 8u32) * F::new(1.0 / 16_777_216.0)
}

/// info = [n, key]. `normal` selects Box–Muller on the counters 2i and 2i + 1.
#[cube(launch_unchecked)]
fn random_kernel<F: Float>(output: &mut [F], info: &[u32], #[comptime] normal: bool) {
    if ABSOLUTE_POS < usize::cast_from(info[0]) {
        let key = info[1];
        let index = u32::cast_from(ABSOLUTE_POS);
        if normal {
            let u1 = F::new(1.0) - uniform::<F>(key, index * 2u32);
            let u2 = uniform::<F>(key, index * 2u32 + 1u32);
            let radius = (F::new(-2.0) * u1.ln()).sqrt();
            output[ABSOLUTE_POS] = radius * (F::new(std::f32::consts::TAU) * u2).cos();
        } else {
            output[ABSOLUTE_POS] = uniform::<F>(key, index);
        }
    }
}

pub fn random(
    device: &CubeDevice,
    shape: &[usize],
    seed: u64,
    stream: u32,
    normal: bool,
) -> Result<DeviceTensor, DeviceError> {
    let out = DeviceTensor::cube_empty(device, DType::F32, shape)?;
    let n = out.numel();
    if n == 0 {
        return Ok(out);
    }
    let key = genc_compiler::random::stream_key(seed, stream);
    let client = device.client();
    let (count, dim) = cube_launch_dims(client, n);
    let (oh, ol) = super::buffer_of(&out)?;
    // SAFETY: writes only below n.
    unsafe {
        random_kernel::launch_unchecked::<f32>(
            client,
            count,
            dim,
            BufferArg::from_raw_parts(oh, ol),
            info_arg(device, &[n as u32, key]),
            normal,
        );
    }
    Ok(out)
}
