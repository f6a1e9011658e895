//! The fused element-wise kernel: one generic CubeCL kernel whose op list is a `#[comptime]`
//! argument (the burn-fusion pattern). Each distinct program (ops, input count, rank, layout
//! mode) compiles once; CubeCL caches it by its comptime key.
//!
//! A program is a register machine: registers `0..n_inputs` hold the inputs at the current
//! element, each instruction appends one register, and each output names a register.
//! Inputs are read through strided views (broadcast axes have stride 0) unless every input is
//! a contiguous tensor of the output's shape, in which case the kernel reads and writes
//! vectors of up to 4 elements.

use cubecl::prelude::*;
use genc_compiler::prim::DType;

use super::{cube_launch_dims, info_arg, strided_at};
use crate::device::{CubeDevice, Device, DeviceError, DeviceTensor};

/// One element-wise operation on f32 registers (every dtype is stored as f32 on the device).
#[derive(CubeType, Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum EwOp {
    Neg,
    Abs,
    Sign,
    Recip,
    Sqrt,
    Rsqrt,
    Exp,
    Log,
    Log1p,
    Tanh,
    Sigmoid,
    Relu,
    Erf,
    Sin,
    Cos,
    Floor,
    Ceil,
    /// Half away from zero.
    Round,
    /// Logical not of 0/1.
    Not,
    /// Truncation toward zero (cast to i32).
    Trunc,
    /// `x != 0` as 0/1 (cast to bool).
    NonZero,
    Add,
    Sub,
    Mul,
    Div,
    /// Floor division (i32 `Div`).
    FloorDiv,
    /// Floor modulo: the sign of the divisor.
    Rem,
    Pow,
    Max,
    Min,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
    /// `select(c, a, b)`.
    Select,
}

/// One instruction: `regs.push(op(regs[a], regs[b], regs[c]))` (unused operands ignored).
#[derive(CubeType, Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct Instr {
    pub op: EwOp,
    pub a: usize,
    pub b: usize,
    pub c: usize,
}

/// A fused element-wise program.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct FusedProgram {
    pub n_inputs: usize,
    pub instrs: Vec<Instr>,
    /// The register each output takes.
    pub outputs: Vec<usize>,
}

/// The comptime key of one compiled variant.
#[derive(CubeType, Clone, Debug, Hash, PartialEq, Eq)]
pub struct FusedConfig {
    instrs: Sequence<Instr>,
    outputs: Sequence<usize>,
    /// 0 for the contiguous (vectorised) mode; the output rank in strided mode.
    rank: usize,
    strided: bool,
}

#[cube]
fn b2f<F: Float, N: Size>(c: Vector<bool, N>) -> Vector<F, N> {
    select_many(c, Vector::new(F::new(1.0)), Vector::new(F::new(0.0)))
}

#[cube]
fn eval_op<F: Float, N: Size>(
    a: Vector<F, N>,
    b: Vector<F, N>,
    c: Vector<F, N>,
    runtime_zero: Vector<F, N>,
    #[comptime] op: EwOp,
) -> Vector<F, N> {
    let zero = Vector::<F, N>::new(F::new(0.0));
    let one = Vector::<F, N>::new(F::new(1.0));
    match op {
        EwOp::Neg => -a,
        EwOp::Abs => a.abs(),
        EwOp::Sign => b2f::<F, N>(a.greater_than(&zero)) - b2f::<F, N>(a.less_than(&zero)),
        EwOp::Recip => one / a,
        EwOp::Sqrt => a.sqrt(),
        EwOp::Rsqrt => one / a.sqrt(),
        EwOp::Exp => a.exp(),
        EwOp::Log => a.ln(),
        EwOp::Log1p => log1p_exact::<F, N>(a),
        EwOp::Tanh => a.tanh(),
        EwOp::Sigmoid => one / (one + (-a).exp()),
        EwOp::Relu => select_many(a.greater_than(&zero), a, zero),
        EwOp::Erf => a.erf(),
        EwOp::Sin => a.sin(),
        EwOp::Cos => a.cos(),
        EwOp::Floor => a.floor(),
        EwOp::Ceil => a.ceil(),
        EwOp::Round => {
            let t = a.trunc();
            let half = Vector::<F, N>::new(F::new(0.5));
            let sign = b2f::<F, N>(a.greater_than(&zero)) - b2f::<F, N>(a.less_than(&zero));
            select_many((a - t).abs().greater_equal(&half), t + sign, t)
        }
        EwOp::Not => one - b2f::<F, N>(a.not_equal(&zero)),
        EwOp::Trunc => a.trunc(),
        EwOp::NonZero => b2f::<F, N>(a.not_equal(&zero)),
        EwOp::Add => a + b,
        EwOp::Sub => a - b,
        EwOp::Mul => a * b,
        EwOp::Div => a / b,
        EwOp::FloorDiv => (a / b).floor(),
        EwOp::Rem => a - b * (a / b).floor(),
        EwOp::Pow => pow_real::<F, N>(a, b, runtime_zero),
        EwOp::Max => select_many(a.greater_equal(&b), a, b),
        EwOp::Min => select_many(a.less_equal(&b), a, b),
        EwOp::Eq => b2f::<F, N>(a.equal(&b)),
        EwOp::Ne => b2f::<F, N>(a.not_equal(&b)),
        EwOp::Lt => b2f::<F, N>(a.less_than(&b)),
        EwOp::Le => b2f::<F, N>(a.less_equal(&b)),
        EwOp::Gt => b2f::<F, N>(a.greater_than(&b)),
        EwOp::Ge => b2f::<F, N>(a.greater_equal(&b)),
        EwOp::And => b2f::<F, N>(a.not_equal(&zero)) * b2f::<F, N>(b.not_equal(&zero)),
        EwOp::Or => {
            let x = b2f::<F, N>(a.not_equal(&zero)) + b2f::<F, N>(b.not_equal(&zero));
            b2f::<F, N>(x.greater_than(&zero))
        }
        EwOp::Select => select_many(a.not_equal(&zero), b, c),
    }
}

/// `log(1 + x)`, accurate near zero (the classic `log(u) * x / (u - 1)` correction).
#[cube]
fn log1p_exact<F: Float, N: Size>(x: Vector<F, N>) -> Vector<F, N> {
    let one = Vector::<F, N>::new(F::new(1.0));
    let u = one + x;
    let d = u - one;
    let corrected = u.ln() * x / select_many(d.equal(&Vector::new(F::new(0.0))), one, d);
    select_many(d.equal(&Vector::new(F::new(0.0))), x, corrected)
}

/// `a ^ b` with the real-number conventions of `f64::powf`: negative bases with integer
/// exponents, `x ^ 0 = 1`, `0 ^ b` for positive `b`.
#[cube]
fn pow_real<F: Float, N: Size>(a: Vector<F, N>, b: Vector<F, N>, runtime_zero: Vector<F, N>) -> Vector<F, N> {
    let zero = Vector::<F, N>::new(F::new(0.0));
    let one = Vector::<F, N>::new(F::new(1.0));
    let two = Vector::<F, N>::new(F::new(2.0));
    let mag = a.abs().powf(b);
    let is_int = b.floor().equal(&b);
    let odd = (b - two * (b / two).floor()).equal(&one);
    // From a zero the compiler cannot fold: WGSL has no literal for NaN or infinity.
    #[allow(clippy::eq_op)]
    let nan = runtime_zero / runtime_zero;
    let inf = one / runtime_zero;
    let neg = select_many(is_int, select_many(odd, -mag, mag), nan);
    let r = select_many(a.less_than(&zero), neg, mag);
    let r = select_many(a.equal(&zero), select_many(b.greater_than(&zero), zero, inf), r);
    select_many(b.equal(&zero), one, r)
}

/// Applies instruction `j` and the ones after it (comptime recursion: unrolled at expansion).
#[cube]
pub(crate) fn exec_from<F: Float, N: Size>(
    regs: &mut Sequence<Vector<F, N>>,
    runtime_zero: Vector<F, N>,
    #[comptime] instrs: Sequence<Instr>,
    #[comptime] j: usize,
) {
    if comptime!(j < instrs.len()) {
        let ins = comptime!(*instrs.index(j));
        let v =
            eval_op::<F, N>(*regs.index(ins.a), *regs.index(ins.b), *regs.index(ins.c), runtime_zero, ins.op);
        regs.push(v);
        exec_from::<F, N>(regs, runtime_zero, instrs, comptime!(j + 1));
    }
}

#[cube(launch_unchecked)]
fn fused_kernel<F: Float, N: Size>(
    inputs: &Sequence<Box<[Vector<F, N>]>>,
    outputs: &mut Sequence<Box<[Vector<F, N>]>>,
    info: &[u32],
    #[comptime] config: FusedConfig,
) {
    let n = usize::cast_from(info[0]);
    if ABSOLUTE_POS < n {
        let mut regs = Sequence::<Vector<F, N>>::new();
        let rank = comptime!(config.rank);
        #[unroll]
        for i in 0..inputs.len() {
            let input = inputs.index(i);
            if comptime!(config.strided) {
                // info = [n, shape_info[3 * rank], then per input: offset, strides[rank]]
                let base = 1 + 3 * rank + i * (rank + 1);
                let at = strided_at(ABSOLUTE_POS, info, 1, base + 1, usize::cast_from(info[base]), rank);
                regs.push(input[at]);
            } else {
                regs.push(input[ABSOLUTE_POS]);
            }
        }
        // info[0] < 2^31, so this is 0 at run time but not a constant.
        let runtime_zero = Vector::<F, N>::new(F::cast_from(info[0] >> 31u32));
        exec_from::<F, N>(&mut regs, runtime_zero, config.instrs.clone(), 0usize);
        #[unroll]
        for o in 0..outputs.len() {
            let r = comptime!(*config.outputs.index(o));
            let out = outputs.index_mut(o);
            out[ABSOLUTE_POS] = *regs.index(r);
        }
    }
}

/// Runs `program` over `inputs` (each broadcastable to `out_shape`), producing one tensor per
/// output with the given dtypes. A zero-size output launches nothing.
pub fn run_fused(
    device: &Device,
    program: &FusedProgram,
    inputs: &[&DeviceTensor],
    out_shape: &[usize],
    out_dtypes: &[DType],
) -> Result<Vec<DeviceTensor>, DeviceError> {
    run_fused_in_place(device, program, inputs, out_shape, out_dtypes, &[])
}

/// [`run_fused`] on a Vulkan device.
pub(crate) fn run_fused_cube(
    device: &CubeDevice,
    program: &FusedProgram,
    inputs: &[&DeviceTensor],
    out_shape: &[usize],
    out_dtypes: &[DType],
) -> Result<Vec<DeviceTensor>, DeviceError> {
    run_fused_in_place_cube(device, program, inputs, out_shape, out_dtypes, &[])
}

/// [`run_fused`] writing output `o` over input `i`'s buffer for each `(o, i)` of `in_place`
/// (the planner's in-place updates): each unit reads its element of the input before it
/// writes the same element of the output. An input that is not a whole contiguous tensor of
/// the output's shape gets a fresh output instead. The host device always writes fresh
/// outputs (its pool makes them free), so `in_place` is a hint there.
pub fn run_fused_in_place(
    device: &Device,
    program: &FusedProgram,
    inputs: &[&DeviceTensor],
    out_shape: &[usize],
    out_dtypes: &[DType],
    in_place: &[(usize, usize)],
) -> Result<Vec<DeviceTensor>, DeviceError> {
    match device {
        Device::Cube(d) => run_fused_in_place_cube(d, program, inputs, out_shape, out_dtypes, in_place),
        Device::Host(h) => h.run_fused(program, inputs, out_shape, out_dtypes),
    }
}

fn run_fused_in_place_cube(
    device: &CubeDevice,
    program: &FusedProgram,
    inputs: &[&DeviceTensor],
    out_shape: &[usize],
    out_dtypes: &[DType],
    in_place: &[(usize, usize)],
) -> Result<Vec<DeviceTensor>, DeviceError> {
    // The inputs, the outputs and the launch info are bound; past the device's limit the
    // pipeline would be refused at launch and surface as a vague read failure later.
    let bound = inputs.len() + out_dtypes.len() + 1;
    let limit = device.info().max_kernel_buffers as usize;
    if bound > limit {
        return Err(DeviceError::Kernel {
            op: "fused element-wise kernel".into(),
            reason: format!("it binds {bound} buffers; this device allows {limit} per kernel"),
        });
    }
    let reused = |o: usize| {
        let (_, i) = in_place.iter().find(|&&(k, _)| k == o)?;
        let t = inputs.get(*i)?;
        (t.shape == out_shape && t.is_contiguous() && t.buffer.is_some()).then(|| (*t).clone())
    };
    let outs: Vec<DeviceTensor> = out_dtypes
        .iter()
        .enumerate()
        .map(|(o, &dt)| match reused(o) {
            Some(t) => Ok(DeviceTensor { dtype: dt, ..t }),
            None => DeviceTensor::cube_empty(device, dt, out_shape),
        })
        .collect::<Result<_, _>>()?;
    let n: usize = out_shape.iter().product();
    if n == 0 {
        return Ok(outs);
    }
    let views: Vec<DeviceTensor> = inputs.iter().map(|t| t.broadcast_to(out_shape)).collect();
    let contiguous = views.iter().all(|v| v.is_contiguous());
    let vector = if !contiguous {
        1
    } else if n % 4 == 0 {
        4
    } else if n % 2 == 0 {
        2
    } else {
        1
    };
    let rank = out_shape.len();
    let mut info: Vec<u32> = vec![(n / vector) as u32];
    if !contiguous {
        info.extend(super::shape_info(out_shape));
        for v in &views {
            info.push(v.offset as u32);
            info.extend(v.strides.iter().map(|&s| s as u32));
        }
    }
    let mut instrs = Sequence::new();
    for &instr in &program.instrs {
        instrs.push(instr);
    }
    let mut out_regs = Sequence::new();
    for &r in &program.outputs {
        out_regs.push(r);
    }
    let config = FusedConfig {
        instrs,
        outputs: out_regs,
        rank: if contiguous { 0 } else { rank },
        strided: !contiguous,
    };
    let client = device.client();
    let (count, dim) = cube_launch_dims(client, n / vector);
    // SAFETY: every index the kernel computes is below `n` (outputs, contiguous inputs of `n`
    // elements) or is a strided offset inside its input view, which the shapes and strides of
    // a valid `DeviceTensor` guarantee lies in its buffer.
    unsafe {
        fused_kernel::launch_unchecked::<f32>(
            client,
            count,
            dim,
            vector,
            super::buffers_arg(&views)?,
            super::buffers_arg(&outs)?,
            info_arg(device, &info),
            config,
        );
    }
    Ok(outs)
}
