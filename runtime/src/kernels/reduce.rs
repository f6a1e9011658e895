//! Reductions over any set of axes, deterministic.
//!
//! The input view is permuted so the reduced axes come last and made contiguous (no copy when
//! it already is), which turns every reduction into rows: `rows x len`. One unit reduces one
//! row in index order, so results are bit-identical run to run and ArgMax/ArgMin keep the
//! first (lowest-index) extreme. Long rows with few outputs (a loss's mean over a batch) are
//! split in two stages: partial results over fixed chunks, then a reduction of the partials —
//! still a fixed order.
//!
//! cubek's reduce is not used: it reduces one axis per launch, and this kernel gives the exact
//! tie rule and the summation order the reference interpreter is compared against.

use cubecl::prelude::*;
use genc_compiler::prim::{DType, ReduceOp};

use super::{cube_launch_dims, info_arg, movement};
use crate::device::{Device, DeviceError, DeviceTensor};

/// The comptime form of a reduction.
#[derive(CubeType, Clone, Copy, Debug, Hash, PartialEq, Eq)]
enum RedOp {
    Sum,
    Prod,
    Max,
    Min,
    ArgMax,
    ArgMin,
}

/// info = [rows, len, chunk]: output `row * chunks + c` reduces elements
/// `row * len + c * chunk .. min(+chunk, len)`; `chunks = ceil(len / chunk)`.
/// params = [scale]: the result is multiplied by it (1/len for a mean).
#[cube(launch_unchecked)]
fn reduce_kernel<F: Float>(input: &[F], output: &mut [F], params: &[F], info: &[u32], #[comptime] op: RedOp) {
    let rows = usize::cast_from(info[0]);
    let len = usize::cast_from(info[1]);
    let chunk = usize::cast_from(info[2]);
    #[allow(clippy::manual_div_ceil)]
    let chunks = (len + chunk - 1) / chunk;
    if ABSOLUTE_POS < rows * chunks {
        let row = ABSOLUTE_POS / chunks;
        let c = ABSOLUTE_POS % chunks;
        let start = c * chunk;
        let end = min(start + chunk, len);
        let base = row * len;
        let mut acc = input[base + start];
        let mut best = start;
        for k in start + 1..end {
            let v = input[base + k];
            match op {
                RedOp::Sum => acc += v,
                RedOp::Prod => acc *= v,
                RedOp::Max => acc = max(acc, v),
                RedOp::Min => acc = min(acc, v),
                RedOp::ArgMax => {
                    if v > acc {
                        acc = v;
                        best = k;
                    }
                }
                RedOp::ArgMin => {
                    if v < acc {
                        acc = v;
                        best = k;
                    }
                }
            }
        }
        match op {
            RedOp::ArgMax => output[ABSOLUTE_POS] = F::cast_from(best),
            RedOp::ArgMin => output[ABSOLUTE_POS] = F::cast_from(best),
            _ => output[ABSOLUTE_POS] = acc * params[0],
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn launch_rows(
    device: &Device,
    input: &DeviceTensor,
    rows: usize,
    len: usize,
    chunk: usize,
    op: RedOp,
    scale: f32,
    out: &DeviceTensor,
) -> Result<(), DeviceError> {
    let units = rows * len.div_ceil(chunk);
    let client = device.client();
    let (count, dim) = cube_launch_dims(client, units);
    let (ih, il) = super::buffer_of(input)?;
    let (oh, ol) = super::buffer_of(out)?;
    // SAFETY: each unit reads row * len + [start, end) with end <= len, and writes one slot
    // below rows * chunks, the output's size.
    unsafe {
        reduce_kernel::launch_unchecked::<f32>(
            client,
            count,
            dim,
            BufferArg::from_raw_parts(ih, il),
            BufferArg::from_raw_parts(oh, ol),
            super::params_arg(device, &[scale]),
            info_arg(device, &[rows as u32, len as u32, chunk as u32]),
            op,
        );
    }
    Ok(())
}

/// Reduces `x` over `axes` (sorted, distinct), keeping them with extent 1.
pub fn reduce(
    device: &Device,
    x: &DeviceTensor,
    op: ReduceOp,
    axes: &[usize],
    out_shape: &[usize],
    out_dtype: DType,
) -> Result<DeviceTensor, DeviceError> {
    let rank = x.shape.len();
    let rows: usize = out_shape.iter().product();
    let len: usize = axes.iter().map(|&a| x.shape[a]).product();
    if rows == 0 {
        return DeviceTensor::empty(device, out_dtype, out_shape);
    }
    if len == 0 {
        // An empty reduction gives the op's identity (argmax of nothing: index 0).
        let v = match op {
            ReduceOp::Sum | ReduceOp::ArgMax | ReduceOp::ArgMin => 0.0,
            ReduceOp::Mean => f32::NAN,
            ReduceOp::Prod => 1.0,
            ReduceOp::Max => f32::NEG_INFINITY,
            ReduceOp::Min => f32::INFINITY,
        };
        return super::generate::fill(device, out_dtype, out_shape, v);
    }
    let mut perm: Vec<usize> = (0..rank).filter(|a| !axes.contains(a)).collect();
    perm.extend_from_slice(axes);
    let input = movement::contiguous(device, &x.permuted(&perm))?;
    let (red, scale) = match op {
        ReduceOp::Sum => (RedOp::Sum, 1.0),
        ReduceOp::Mean => (RedOp::Sum, 1.0 / len as f32),
        ReduceOp::Max => (RedOp::Max, 1.0),
        ReduceOp::Min => (RedOp::Min, 1.0),
        ReduceOp::Prod => (RedOp::Prod, 1.0),
        ReduceOp::ArgMax => (RedOp::ArgMax, 1.0),
        ReduceOp::ArgMin => (RedOp::ArgMin, 1.0),
    };
    let out = DeviceTensor::empty(device, out_dtype, out_shape)?;
    let two_stage = rows < 512 && len >= 8192 && !matches!(red, RedOp::ArgMax | RedOp::ArgMin);
    if two_stage {
        let chunk = 1024;
        let chunks = len.div_ceil(chunk);
        let partial = DeviceTensor::empty(device, DType::F32, &[rows, chunks])?;
        launch_rows(device, &input, rows, len, chunk, red, 1.0, &partial)?;
        launch_rows(device, &partial, rows, chunks, chunks, red, scale, &out)?;
    } else {
        launch_rows(device, &input, rows, len, len, red, scale, &out)?;
    }
    Ok(out)
}
