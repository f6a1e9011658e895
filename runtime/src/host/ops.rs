//! The element-wise ops of a fused program on blocks of f32 registers: one tight loop per op,
//! which the compiler vectorises. The semantics are those of the CubeCL kernel's `eval_op`
//! (every dtype stored as f32, booleans as 0/1), so both devices compute the same thing.
//! The transcendental ops (`exp`, `log`, `tanh`, ...) would be one libm call per element, which
//! no compiler vectorises: they run on `wide`'s 8-lane polynomial versions instead (about one
//! ulp from libm; the device tests hold them to the interpreter like the Vulkan kernels).

use genc_compiler::interp::erf;
use wide::f32x8;

use crate::kernels::elementwise::EwOp;

fn b(c: bool) -> f32 {
    if c { 1.0 } else { 0.0 }
}

fn unary(out: &mut [f32], a: &[f32], f: impl Fn(f32) -> f32) {
    for (o, &x) in out.iter_mut().zip(a) {
        *o = f(x);
    }
}

/// `out[i] = f(a[i])`, eight lanes at a time with `wide`'s `f`, the tail padded to eight.
fn unary_x8(out: &mut [f32], a: &[f32], f: impl Fn(f32x8) -> f32x8) {
    let mut outs = out.chunks_exact_mut(8);
    let mut ins = a.chunks_exact(8);
    for (o, x) in (&mut outs).zip(&mut ins) {
        let x: [f32; 8] = x.try_into().unwrap_or_default();
        o.copy_from_slice(&f(f32x8::from(x)).to_array());
    }
    let (o, x) = (outs.into_remainder(), ins.remainder());
    if !o.is_empty() {
        let mut lanes = [0.0f32; 8];
        lanes[..x.len()].copy_from_slice(x);
        o.copy_from_slice(&f(f32x8::from(lanes)).to_array()[..o.len()]);
    }
}

fn binary(out: &mut [f32], a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) {
    for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
        *o = f(x, y);
    }
}

/// `out[i] = op(a[i], b[i], c[i])` (operands an op does not use are ignored).
pub fn apply(op: EwOp, out: &mut [f32], a: &[f32], bb: &[f32], c: &[f32]) {
    match op {
        EwOp::Neg => unary(out, a, |x| -x),
        EwOp::Abs => unary(out, a, f32::abs),
        EwOp::Sign => unary(out, a, |x| b(x > 0.0) - b(x < 0.0)),
        EwOp::Recip => unary(out, a, |x| 1.0 / x),
        EwOp::Sqrt => unary(out, a, f32::sqrt),
        EwOp::Rsqrt => unary(out, a, |x| 1.0 / x.sqrt()),
        EwOp::Exp => unary_x8(out, a, f32x8::exp),
        EwOp::Log => unary_x8(out, a, f32x8::ln),
        EwOp::Log1p => unary_x8(out, a, f32x8::ln_1p),
        EwOp::Tanh => unary_x8(out, a, f32x8::tanh),
        EwOp::Sigmoid => unary_x8(out, a, |x| f32x8::ONE / (f32x8::ONE + (-x).exp())),
        EwOp::Relu => unary(out, a, |x| if x > 0.0 { x } else { 0.0 }),
        EwOp::Erf => unary(out, a, |x| erf(f64::from(x)) as f32),
        EwOp::Sin => unary(out, a, f32::sin),
        EwOp::Cos => unary(out, a, f32::cos),
        EwOp::Floor => unary(out, a, f32::floor),
        EwOp::Ceil => unary(out, a, f32::ceil),
        // Half away from zero.
        EwOp::Round => unary(out, a, f32::round),
        EwOp::Not => unary(out, a, |x| b(x == 0.0)),
        EwOp::Trunc => unary(out, a, f32::trunc),
        EwOp::NonZero => unary(out, a, |x| b(x != 0.0)),
        EwOp::Add => binary(out, a, bb, |x, y| x + y),
        EwOp::Sub => binary(out, a, bb, |x, y| x - y),
        EwOp::Mul => binary(out, a, bb, |x, y| x * y),
        EwOp::Div => binary(out, a, bb, |x, y| x / y),
        EwOp::FloorDiv => binary(out, a, bb, |x, y| (x / y).floor()),
        EwOp::Rem => binary(out, a, bb, |x, y| x - y * (x / y).floor()),
        EwOp::Pow => binary(out, a, bb, pow_real),
        EwOp::Max => binary(out, a, bb, |x, y| if x >= y { x } else { y }),
        EwOp::Min => binary(out, a, bb, |x, y| if x <= y { x } else { y }),
        EwOp::Eq => binary(out, a, bb, |x, y| b(x == y)),
        EwOp::Ne => binary(out, a, bb, |x, y| b(x != y)),
        EwOp::Lt => binary(out, a, bb, |x, y| b(x < y)),
        EwOp::Le => binary(out, a, bb, |x, y| b(x <= y)),
        EwOp::Gt => binary(out, a, bb, |x, y| b(x > y)),
        EwOp::Ge => binary(out, a, bb, |x, y| b(x >= y)),
        EwOp::And => binary(out, a, bb, |x, y| b(x != 0.0 && y != 0.0)),
        EwOp::Or => binary(out, a, bb, |x, y| b(x != 0.0 || y != 0.0)),
        EwOp::Select => {
            for (((o, &cond), &x), &y) in out.iter_mut().zip(a).zip(bb).zip(c) {
                *o = if cond != 0.0 { x } else { y };
            }
        }
    }
}

/// `a ^ b` with `f64::powf`'s real-number conventions (the kernel's `pow_real`).
fn pow_real(a: f32, e: f32) -> f32 {
    if e == 0.0 {
        return 1.0;
    }
    if a == 0.0 {
        return if e > 0.0 { 0.0 } else { f32::INFINITY };
    }
    let mag = a.abs().powf(e);
    if a > 0.0 || a.is_nan() {
        return mag;
    }
    if e.floor() != e {
        return f32::NAN;
    }
    let odd = e - 2.0 * (e / 2.0).floor() == 1.0;
    if odd { -mag } else { mag }
}
