//! Kernel lowering: one exhaustive `match` over [`Prim`] that runs each primitive on the
//! device, plus the small helpers every kernel module shares.
//!
//! | primitive | kernel |
//! | --- | --- |
//! | `Unary`, `Binary`, `Select`, `Cast` | [`elementwise`]: the fused kernel with a one-op program |
//! | `Reduce` | [`reduce`]: deterministic row reduction (two stages for long rows) |
//! | `Scan` | [`movement::scan`] |
//! | `Reshape`, `Permute`, `Broadcast`, `Slice` | views: no launch |
//! | `Pad`, `Concat`, `Gather`, `ScatterAdd` | [`movement`] |
//! | `MatMul` | [`matmul`]: register-tiled kernel or cubek |
//! | `Conv2d`, `ConvTranspose2d`, `Conv2dWeightGrad` | [`conv`]: im2col / col2im + matmul |
//! | `Pool2d`, `Pool2dGrad`, `Upsample`, `UpsampleGrad` | [`conv`]: direct gather kernels |
//! | `LogAbsDet`, `Inverse` | [`linalg`]: one unit per small matrix, pivoted elimination |
//! | `Fill`, `Iota`, `Random` | [`generate`] |
//! | `Input`, `Param`, `Buffer` | the tensors of [`Leaves`] |
//!
//! Zero-size outputs never launch a kernel.

#[allow(unsafe_code)]
pub mod conv;
#[allow(unsafe_code)]
pub mod elementwise;
#[allow(unsafe_code)]
pub mod generate;
#[allow(unsafe_code)]
pub mod linalg;
#[allow(unsafe_code)]
pub mod matmul;
#[allow(unsafe_code)]
pub mod movement;
#[allow(unsafe_code)]
pub mod reduce;

use cubecl::prelude::*;
use cubecl::server::Handle;
use genc_compiler::prim::{BinaryOp, DType, Distribution, Prim, ReduceOp, ScanOp, UnaryOp};

use crate::device::{Buffer, CubeDevice, Device, DeviceError, DeviceTensor};
use elementwise::{EwOp, FusedProgram, Instr};

/// A contiguous copy of `t` (itself when it already is one).
pub fn materialize(device: &Device, t: &DeviceTensor) -> Result<DeviceTensor, DeviceError> {
    match device {
        Device::Cube(d) => movement::materialize(d, t),
        Device::Host(h) => h.materialize(t),
    }
}

/// The tensors leaves read: fed inputs, parameters, buffers, and the run seed for `Random`.
#[derive(Clone, Debug, Default)]
pub struct Leaves {
    pub inputs: Vec<DeviceTensor>,
    pub params: Vec<DeviceTensor>,
    pub buffers: Vec<DeviceTensor>,
    pub seed: u64,
}

/// Runs one primitive on the device. `out_shape`/`out_dtype` are the node's type.
pub fn eval(
    device: &Device,
    prim: &Prim,
    inputs: &[&DeviceTensor],
    out_shape: &[usize],
    out_dtype: DType,
    leaves: &Leaves,
) -> Result<DeviceTensor, DeviceError> {
    match device {
        Device::Cube(d) => eval_cube(d, prim, inputs, out_shape, out_dtype, leaves),
        Device::Host(h) => h.eval(prim, inputs, out_shape, out_dtype, leaves),
    }
}

fn eval_cube(
    device: &CubeDevice,
    prim: &Prim,
    inputs: &[&DeviceTensor],
    out_shape: &[usize],
    out_dtype: DType,
    leaves: &Leaves,
) -> Result<DeviceTensor, DeviceError> {
    let arg = |i: usize| -> Result<&DeviceTensor, DeviceError> {
        inputs.get(i).copied().ok_or_else(|| DeviceError::Kernel {
            op: prim.to_string(),
            reason: format!("expected at least {} inputs, got {}", i + 1, inputs.len()),
        })
    };
    let leaf = |table: &[DeviceTensor], index: usize, what: &str| {
        table.get(index).cloned().ok_or_else(|| DeviceError::Kernel {
            op: prim.to_string(),
            reason: format!("no {what} #{index}"),
        })
    };
    let single = |op: EwOp, n: usize| -> Result<DeviceTensor, DeviceError> {
        let program = FusedProgram {
            n_inputs: n,
            instrs: vec![Instr { op, a: 0, b: 1.min(n - 1), c: 2.min(n - 1) }],
            outputs: vec![n],
        };
        let ins: Vec<&DeviceTensor> = inputs.iter().take(n).copied().collect();
        let mut outs = elementwise::run_fused_cube(device, &program, &ins, out_shape, &[out_dtype])?;
        outs.pop().ok_or_else(|| DeviceError::Kernel { op: prim.to_string(), reason: "no output".into() })
    };
    let retyped = |t: &DeviceTensor| DeviceTensor { dtype: out_dtype, ..t.clone() };
    match prim {
        Prim::Input { index } => leaf(&leaves.inputs, *index, "input"),
        Prim::Param { index } => leaf(&leaves.params, *index, "parameter"),
        Prim::Buffer { index } => leaf(&leaves.buffers, *index, "buffer"),
        Prim::Fill { value } => generate::fill(device, out_dtype, out_shape, value.0 as f32),
        Prim::Iota { axis } => generate::iota(device, out_dtype, out_shape, *axis),
        Prim::Random { dist, stream } => {
            generate::random(device, out_shape, leaves.seed, *stream, *dist == Distribution::Normal)
        }
        Prim::Unary(op) => single(unary_op(*op), 1),
        Prim::Binary(op) => single(binary_op(*op, arg(0)?.dtype), 2),
        Prim::Select => single(EwOp::Select, 3),
        // The identity on the device: stop_grad only matters to autodiff.
        Prim::StopGrad => Ok(arg(0)?.clone()),
        Prim::Grad => Err(DeviceError::Kernel {
            op: prim.to_string(),
            reason: "`grad` must be expanded by autodiff before a graph runs".into(),
        }),
        Prim::Cast { to } => {
            let x = arg(0)?;
            match (x.dtype, to) {
                (DType::F32, DType::I32) => single(EwOp::Trunc, 1),
                (DType::F32 | DType::I32, DType::Bool) => single(EwOp::NonZero, 1),
                (_, _) => Ok(retyped(&x.broadcast_to(out_shape))),
            }
        }
        Prim::Reduce { op, axes } => reduce::reduce(device, arg(0)?, *op, axes, out_shape, out_dtype),
        Prim::Scan { op, axis } => movement::scan(device, arg(0)?, *axis, *op == ScanOp::Prod),
        Prim::Reshape => arg(0)?.cube_reshaped(device, out_shape),
        Prim::Permute { perm } => Ok(arg(0)?.permuted(perm)),
        Prim::Broadcast => Ok(arg(0)?.broadcast_to(out_shape)),
        Prim::Slice { axis, start, step } => Ok(arg(0)?.sliced(*axis, *start, *step, out_shape[*axis])),
        Prim::Pad { pads, value } => movement::pad(device, arg(0)?, pads, value.0 as f32, out_shape),
        Prim::Concat { axis } => {
            let out = DeviceTensor::cube_empty(device, out_dtype, out_shape)?;
            let mut start = 0;
            for t in inputs {
                let len = t.shape[*axis];
                if len > 0 {
                    movement::copy_into(device, t, &out.sliced(*axis, start, 1, len))?;
                }
                start += len;
            }
            Ok(out)
        }
        Prim::Gather { axis } => movement::gather(device, arg(0)?, arg(1)?, *axis, out_shape),
        Prim::ScatterAdd { axis } => movement::scatter_add(device, arg(0)?, arg(1)?, *axis, out_shape),
        Prim::MatMul { transpose_a, transpose_b } => {
            let a = transposed(arg(0)?, *transpose_a);
            let b = transposed(arg(1)?, *transpose_b);
            matmul::matmul_cube(device, &a, &b, out_shape, matmul::default_path())
        }
        Prim::Conv2d(g) => conv::conv2d(device, arg(0)?, arg(1)?, g, out_shape),
        Prim::ConvTranspose2d { geometry, output_padding: _ } => {
            conv::conv_transpose2d(device, arg(0)?, arg(1)?, geometry, out_shape)
        }
        Prim::Conv2dWeightGrad(g) => conv::conv2d_weight_grad(device, arg(0)?, arg(1)?, g, out_shape),
        Prim::Pool2d { kind, window } => conv::pool2d(device, arg(0)?, *kind, window, out_shape),
        Prim::Pool2dGrad { kind, window } => conv::pool2d_grad(device, arg(0)?, arg(1)?, *kind, window),
        Prim::Upsample { mode, scale } => conv::upsample(device, arg(0)?, *mode, *scale, out_shape),
        Prim::UpsampleGrad { mode, scale } => conv::upsample_grad(device, arg(0)?, *mode, *scale, out_shape),
        Prim::LogAbsDet => linalg::logabsdet(device, arg(0)?, out_shape),
        Prim::Inverse => linalg::inverse(device, arg(0)?),
    }
}

/// `x` with its last two axes swapped when `flag` is set (a view).
pub(crate) fn transposed(x: &DeviceTensor, flag: bool) -> DeviceTensor {
    if !flag {
        return x.clone();
    }
    let r = x.shape.len();
    let mut perm: Vec<usize> = (0..r).collect();
    perm.swap(r - 2, r - 1);
    x.permuted(&perm)
}

/// Runs a library op whose result goes through `program` before it is stored (a
/// `Step::OpEpilogue`): register 0 is the op's result over `shape`, `inputs` follow; returns
/// one tensor per program output, with `dtypes`. `MatMul` and `Conv2d` run the program in
/// their tiled matmul's store; any other op (or a kernel past the device's binding limit)
/// runs, and the program follows as a fused kernel of its own.
#[allow(clippy::too_many_arguments)]
pub fn eval_epilogue(
    device: &Device,
    prim: &Prim,
    op_inputs: &[&DeviceTensor],
    shape: &[usize],
    program: FusedProgram,
    inputs: &[&DeviceTensor],
    dtypes: &[DType],
    leaves: &Leaves,
) -> Result<Vec<DeviceTensor>, DeviceError> {
    match device {
        Device::Cube(d) => eval_epilogue_cube(d, prim, op_inputs, shape, program, inputs, dtypes, leaves),
        Device::Host(h) => h.eval_epilogue(prim, op_inputs, shape, &program, inputs, dtypes, leaves),
    }
}

#[allow(clippy::too_many_arguments)]
fn eval_epilogue_cube(
    device: &CubeDevice,
    prim: &Prim,
    op_inputs: &[&DeviceTensor],
    shape: &[usize],
    program: FusedProgram,
    inputs: &[&DeviceTensor],
    dtypes: &[DType],
    leaves: &Leaves,
) -> Result<Vec<DeviceTensor>, DeviceError> {
    let epi = matmul::Epilogue {
        program,
        inputs: inputs.iter().map(|&t| t.clone()).collect(),
        dtypes: dtypes.to_vec(),
    };
    let fits = epi.bindings() <= device.info().max_kernel_buffers as usize;
    match (prim, op_inputs) {
        (Prim::MatMul { transpose_a, transpose_b }, [a, b]) if fits => {
            let (a, b) = (transposed(a, *transpose_a), transposed(b, *transpose_b));
            matmul::matmul_with(device, &a, &b, shape, matmul::default_path(), &epi)
        }
        (Prim::Conv2d(g), [x, w]) if fits => conv::conv2d_with(device, x, w, g, shape, &epi),
        _ => epi.apply(device, eval_cube(device, prim, op_inputs, shape, DType::F32, leaves)?),
    }
}

/// The fused-kernel op of a unary primitive.
pub fn unary_op(op: UnaryOp) -> EwOp {
    match op {
        UnaryOp::Neg => EwOp::Neg,
        UnaryOp::Abs => EwOp::Abs,
        UnaryOp::Sign => EwOp::Sign,
        UnaryOp::Recip => EwOp::Recip,
        UnaryOp::Sqrt => EwOp::Sqrt,
        UnaryOp::Rsqrt => EwOp::Rsqrt,
        UnaryOp::Exp => EwOp::Exp,
        UnaryOp::Log => EwOp::Log,
        UnaryOp::Log1p => EwOp::Log1p,
        UnaryOp::Tanh => EwOp::Tanh,
        UnaryOp::Sigmoid => EwOp::Sigmoid,
        UnaryOp::Relu => EwOp::Relu,
        UnaryOp::Erf => EwOp::Erf,
        UnaryOp::Sin => EwOp::Sin,
        UnaryOp::Cos => EwOp::Cos,
        UnaryOp::Floor => EwOp::Floor,
        UnaryOp::Ceil => EwOp::Ceil,
        UnaryOp::Round => EwOp::Round,
        UnaryOp::Not => EwOp::Not,
    }
}

/// The fused-kernel op of a binary primitive on operands of `dtype`.
pub fn binary_op(op: BinaryOp, dtype: DType) -> EwOp {
    match op {
        BinaryOp::Add => EwOp::Add,
        BinaryOp::Sub => EwOp::Sub,
        BinaryOp::Mul => EwOp::Mul,
        BinaryOp::Div if dtype == DType::I32 => EwOp::FloorDiv,
        BinaryOp::Div => EwOp::Div,
        BinaryOp::Rem => EwOp::Rem,
        BinaryOp::Pow => EwOp::Pow,
        BinaryOp::Max => EwOp::Max,
        BinaryOp::Min => EwOp::Min,
        BinaryOp::Eq => EwOp::Eq,
        BinaryOp::Ne => EwOp::Ne,
        BinaryOp::Lt => EwOp::Lt,
        BinaryOp::Le => EwOp::Le,
        BinaryOp::Gt => EwOp::Gt,
        BinaryOp::Ge => EwOp::Ge,
        BinaryOp::And => EwOp::And,
        BinaryOp::Or => EwOp::Or,
    }
}

/// Whether `ReduceOp` yields indices (its output dtype is i32).
pub fn reduce_gives_index(op: ReduceOp) -> bool {
    matches!(op, ReduceOp::ArgMax | ReduceOp::ArgMin)
}

/// Tensors' buffers as a sequence argument.
#[allow(unsafe_code)]
pub(crate) fn buffers_arg<T: LaunchArg<RuntimeArg = BufferArg>>(
    ts: &[DeviceTensor],
) -> Result<SequenceArg<T>, DeviceError> {
    let mut seq = SequenceArg::new();
    for t in ts {
        let (handle, n) = buffer_of(t)?;
        // SAFETY: `n` is the buffer's size in f32 elements.
        seq.push(unsafe { BufferArg::from_raw_parts(handle, n) });
    }
    Ok(seq)
}

/// The cube count and dim for `units` independent units (256 per cube, 2-D counts when the
/// first dimension would overflow). Kernels guard `ABSOLUTE_POS < units` themselves.
pub(crate) fn cube_launch_dims(client: &cubecl::client::Client, units: usize) -> (CubeCount, CubeDim) {
    let dim = CubeDim::new_1d(256);
    (cubecl::calculate_cube_count_elemwise(client, units.max(1), dim), dim)
}

/// Launch metadata as a `u32` buffer argument (uploaded once per distinct content).
#[allow(unsafe_code)]
pub(crate) fn info_arg(device: &CubeDevice, info: &[u32]) -> BufferArg {
    // SAFETY: the buffer holds exactly `info.len()` u32 elements (cached by content).
    unsafe { BufferArg::from_raw_parts(device.metadata(info), info.len()) }
}

/// Uploads f32 launch parameters (fill values, scales) as a buffer argument.
#[allow(unsafe_code)]
pub(crate) fn params_arg(device: &CubeDevice, params: &[f32]) -> BufferArg {
    let words: Vec<u32> = params.iter().map(|v| v.to_bits()).collect();
    // SAFETY: the buffer holds exactly `params.len()` f32 elements (their bits, cached).
    unsafe { BufferArg::from_raw_parts(device.metadata(&words), params.len()) }
}

/// The buffer of a non-empty tensor and its length in elements.
pub(crate) fn buffer_of(t: &DeviceTensor) -> Result<(Handle, usize), DeviceError> {
    let handle = match &t.buffer {
        Some(Buffer::Cube(handle)) => handle.clone(),
        Some(Buffer::Host(_)) => {
            return Err(DeviceError::Kernel {
                op: "launch".into(),
                reason: "a host tensor was passed to a Vulkan kernel".into(),
            });
        }
        None => {
            return Err(DeviceError::Kernel {
                op: "launch".into(),
                reason: "a non-empty tensor has no buffer".into(),
            });
        }
    };
    let len = (handle.size() / 4) as usize;
    Ok((handle, len))
}

/// Host half of the division by an invariant divisor (Granlund–Montgomery, as in ONNX's
/// `fast_divmod`): `(multiplier, shift)` such that `a / d == (mul_hi(a, m) + a) >> s` for
/// every `a < 2^31`. Vector units have no integer division, so kernels divide this way.
pub(crate) fn magic(d: usize) -> [u32; 2] {
    let d = d.max(1) as u64;
    let s = 64 - (d - 1).leading_zeros() as u64; // ceil(log2 d)
    let m = ((1u64 << 32) * ((1u64 << s) - d)) / d + 1;
    [m as u32, s as u32]
}

/// Device half of [`magic`]: `a / d` for `a < 2^31`.
#[cube]
pub(crate) fn fast_div(a: usize, m: u32, s: u32) -> usize {
    let a32 = u32::cast_from(a);
    usize::cast_from((u32::mul_hi(a32, m) + a32) >> s)
}

/// `[extent, multiplier, shift]` per axis: the shape as [`strided_at`] reads it.
pub(crate) fn shape_info(shape: &[usize]) -> Vec<u32> {
    shape
        .iter()
        .flat_map(|&d| {
            let [m, s] = magic(d);
            [d as u32, m, s]
        })
        .collect()
}

/// The buffer offset of row-major position `pos` in a strided view described in `info`:
/// [`shape_info`] triples at `info[shape_at..]`, strides at `info[strides_at..]`.
#[cube]
pub(crate) fn strided_at(
    pos: usize,
    info: &[u32],
    shape_at: usize,
    strides_at: usize,
    offset: usize,
    #[comptime] rank: usize,
) -> usize {
    let mut rem = pos;
    let mut at = offset;
    #[unroll]
    for k in 0..rank {
        let d = rank - 1 - k;
        let extent = usize::cast_from(info[shape_at + 3 * d]);
        let q = fast_div(rem, info[shape_at + 3 * d + 1], info[shape_at + 3 * d + 2]);
        at += (rem - q * extent) * usize::cast_from(info[strides_at + d]);
        rem = q;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::magic;

    #[test]
    fn magic_division_is_exact() {
        for d in [1usize, 2, 3, 5, 7, 10, 49, 196, 255, 256, 1000, 3136, 65537, 1 << 20, 12345677] {
            let [m, s] = magic(d);
            for a in (0u64..2000).chain([(1 << 31) - 1, 1 << 30, 123_456_789, 2_000_000_000]) {
                let t = ((a * u64::from(m)) >> 32) + a;
                assert_eq!((t >> s) as usize, a as usize / d, "{a} / {d}");
            }
        }
    }
}
