//! Element-wise ops: unary and binary arithmetic, `select` and `cast`, with numpy-style
//! broadcasting over equal-rank operands.
//!
//! Dtype rules (prim.rs fixes the results of comparisons and logic; the rest is decided here):
//! - unary: every op applies to f32 except `Not`, which is bool only; on i32 only `Neg`,
//!   `Abs`, `Sign`, `Relu` and the identities `Floor`, `Ceil`, `Round` apply (take a cast
//!   first for the others).
//! - binary: both operands have one dtype. f32 takes everything but `And`/`Or`; i32 takes
//!   arithmetic (wrapping; floor `Div`/`Rem`; `Pow` with a non-negative exponent), `Max`,
//!   `Min` and comparisons; bool takes `And`, `Or` and comparisons (false < true).
//! - NaN propagates through `Max`, `Min` and `Relu` (as PyTorch's `maximum` and `relu`).

use super::{ErrorKind, Res, Value, alloc, numel, offset_of, wrap_i32};
use crate::prim::{BinaryOp, DType, UnaryOp};

pub(super) fn unary(op: UnaryOp, x: &Value) -> Res<Value> {
    use UnaryOp::*;
    let f: fn(f64) -> f64 = match (x.dtype, op) {
        (DType::F32, Neg) => |x| -x,
        (DType::F32, Abs) => f64::abs,
        (DType::F32 | DType::I32, Sign) => |x| {
            if x > 0.0 {
                1.0
            } else if x < 0.0 {
                -1.0
            } else {
                x // ±0 and NaN
            }
        },
        (DType::F32, Recip) => |x| 1.0 / x,
        (DType::F32, Sqrt) => f64::sqrt,
        (DType::F32, Rsqrt) => |x| 1.0 / x.sqrt(),
        (DType::F32, Exp) => f64::exp,
        (DType::F32, Log) => f64::ln,
        (DType::F32, Log1p) => f64::ln_1p,
        (DType::F32, Tanh) => f64::tanh,
        (DType::F32, Sigmoid) => sigmoid,
        (DType::F32 | DType::I32, Relu) => |x| if x.is_nan() || x > 0.0 { x } else { 0.0 },
        (DType::F32, Erf) => erf,
        (DType::F32, Sin) => f64::sin,
        (DType::F32, Cos) => f64::cos,
        (DType::F32, Floor) => f64::floor,
        (DType::F32, Ceil) => f64::ceil,
        // `f64::round` rounds half away from zero.
        (DType::F32, Round) => f64::round,
        (DType::I32, Floor | Ceil | Round) => |x| x,
        (DType::I32, Neg) => |x| wrap_i32(-(x as i64)),
        (DType::I32, Abs) => |x| wrap_i32((x as i64).abs()),
        (DType::Bool, Not) => |x| 1.0 - x,
        (dtype, op) => {
            return Err(ErrorKind::DType(format!("`{}` does not apply to {dtype}", op.name())));
        }
    };
    let mut data = alloc(x.numel(), 0.0)?;
    for (d, &v) in data.iter_mut().zip(&x.data) {
        *d = f(v);
    }
    Ok(Value { dtype: x.dtype, shape: x.shape.clone(), data })
}

fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// The error function, to within a few units in the last place of f64 (|error| < 1e-15).
///
/// For |x| ≤ 3 it sums the everywhere-positive series (Abramowitz & Stegun 7.1.6)
/// `erf(x) = 2/√π · e^(−x²) · Σₙ 2ⁿ x^(2n+1) / (1·3·5···(2n+1))`, which has no cancellation;
/// beyond, `erf(x) = 1 − erfc(x)` with erfc from its continued fraction (A&S 7.1.14)
/// `erfc(x) = e^(−x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + …)))))`, evaluated
/// bottom-up with enough terms to converge for x > 3. Odd, `erf(±∞) = ±1`, NaN stays NaN.
pub fn erf(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    if x < 0.0 {
        return -erf(-x);
    }
    if x <= 3.0 { erf_series(x) } else { 1.0 - erfc_continued_fraction(x) }
}

pub(super) fn erf_series(x: f64) -> f64 {
    let x2 = x * x;
    let mut term = x; // 2^n x^(2n+1) / (1·3···(2n+1)) at n = 0
    let mut sum = x;
    let mut n = 0.0;
    while term > sum * 1e-18 && n < 500.0 {
        n += 1.0;
        term *= 2.0 * x2 / (2.0 * n + 1.0);
        sum += term;
    }
    2.0 / std::f64::consts::PI.sqrt() * (-x2).exp() * sum
}

pub(super) fn erfc_continued_fraction(x: f64) -> f64 {
    if x.is_infinite() {
        return 0.0;
    }
    let mut tail = x;
    for k in (1..=200).rev() {
        tail = x + (f64::from(k) / 2.0) / tail;
    }
    (-x * x).exp() / std::f64::consts::PI.sqrt() / tail
}

pub(super) fn binary(op: BinaryOp, a: &Value, b: &Value) -> Res<Value> {
    use BinaryOp::*;
    if a.dtype != b.dtype {
        return Err(ErrorKind::DType(format!(
            "`{}` of {} and {}: the operands must have one dtype",
            op.name(),
            a.dtype,
            b.dtype
        )));
    }
    let dtype = a.dtype;
    let f: fn(f64, f64) -> Res<f64> = match (dtype, op) {
        (_, Eq) => |a, b| Ok(bool01(a == b)),
        (_, Ne) => |a, b| Ok(bool01(a != b)),
        (_, Lt) => |a, b| Ok(bool01(a < b)),
        (_, Le) => |a, b| Ok(bool01(a <= b)),
        (_, Gt) => |a, b| Ok(bool01(a > b)),
        (_, Ge) => |a, b| Ok(bool01(a >= b)),
        (DType::Bool, And) => |a, b| Ok(bool01(a != 0.0 && b != 0.0)),
        (DType::Bool, Or) => |a, b| Ok(bool01(a != 0.0 || b != 0.0)),
        (DType::F32, Add) => |a, b| Ok(a + b),
        (DType::F32, Sub) => |a, b| Ok(a - b),
        (DType::F32, Mul) => |a, b| Ok(a * b),
        (DType::F32, Div) => |a, b| Ok(a / b),
        (DType::F32, Rem) => |a, b| Ok(float_floor_mod(a, b)),
        (DType::F32, Pow) => |a, b| Ok(a.powf(b)),
        (DType::F32 | DType::I32, Max) => {
            |a, b| Ok(if a.is_nan() || b.is_nan() { f64::NAN } else { a.max(b) })
        }
        (DType::F32 | DType::I32, Min) => {
            |a, b| Ok(if a.is_nan() || b.is_nan() { f64::NAN } else { a.min(b) })
        }
        (DType::I32, Add) => |a, b| Ok(wrap_i32(a as i64 + b as i64)),
        (DType::I32, Sub) => |a, b| Ok(wrap_i32(a as i64 - b as i64)),
        (DType::I32, Mul) => |a, b| Ok(wrap_i32(a as i64 * b as i64)),
        (DType::I32, Div) => |a, b| int_floor_div(a as i64, b as i64).map(wrap_i32),
        (DType::I32, Rem) => |a, b| int_floor_mod(a as i64, b as i64).map(wrap_i32),
        (DType::I32, Pow) => |a, b| int_pow(a as i64, b as i64),
        (dtype, op) => {
            return Err(ErrorKind::DType(format!("`{}` does not apply to {dtype}", op.name())));
        }
    };
    let out_dtype = if op.is_comparison() { DType::Bool } else { dtype };
    let shape = broadcast_shape(&[&a.shape, &b.shape])?;
    let (sa, sb) = (broadcast_strides(&a.shape, &shape), broadcast_strides(&b.shape, &shape));
    let n = numel(&shape)?;
    let mut data = alloc(n, 0.0)?;
    for (i, d) in data.iter_mut().enumerate() {
        let (ia, ib) = (offset_of(i, &shape, &sa), offset_of(i, &shape, &sb));
        *d = f(a.data[ia], b.data[ib])?;
    }
    Ok(Value { dtype: out_dtype, shape, data })
}

fn bool01(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

/// Python's float `%`: the result takes the divisor's sign (`x % 0` is NaN).
fn float_floor_mod(a: f64, b: f64) -> f64 {
    let r = a % b;
    if r != 0.0 && (r < 0.0) != (b < 0.0) { r + b } else { r }
}

/// Python's `//` on integers.
fn int_floor_div(a: i64, b: i64) -> Res<i64> {
    if b == 0 {
        return Err(ErrorKind::DivisionByZero);
    }
    let q = a / b;
    Ok(if a % b != 0 && ((a < 0) != (b < 0)) { q - 1 } else { q })
}

/// Python's `%` on integers: `a == b * (a // b) + a % b`, the result taking b's sign.
fn int_floor_mod(a: i64, b: i64) -> Res<i64> {
    Ok(a - b * int_floor_div(a, b)?)
}

/// `a^b` for i32 by repeated (wrapping) multiplication; a negative exponent is an error.
fn int_pow(a: i64, b: i64) -> Res<f64> {
    if b < 0 {
        return Err(ErrorKind::DType(format!("i32 `pow` with the negative exponent {b}")));
    }
    let (mut result, mut base, mut e) = (1i32, a as i32, b);
    while e > 0 {
        if e & 1 == 1 {
            result = result.wrapping_mul(base);
        }
        base = base.wrapping_mul(base);
        e >>= 1;
    }
    Ok(f64::from(result))
}

/// `select(cond, a, b)`, broadcasting all three.
pub(super) fn select(cond: &Value, a: &Value, b: &Value) -> Res<Value> {
    super::want_dtype(cond, &[DType::Bool], "select's condition")?;
    if a.dtype != b.dtype {
        return Err(ErrorKind::DType(format!("select between {} and {}", a.dtype, b.dtype)));
    }
    let shape = broadcast_shape(&[&cond.shape, &a.shape, &b.shape])?;
    let sc = broadcast_strides(&cond.shape, &shape);
    let (sa, sb) = (broadcast_strides(&a.shape, &shape), broadcast_strides(&b.shape, &shape));
    let mut data = alloc(numel(&shape)?, 0.0)?;
    for (i, d) in data.iter_mut().enumerate() {
        *d = if cond.data[offset_of(i, &shape, &sc)] != 0.0 {
            a.data[offset_of(i, &shape, &sa)]
        } else {
            b.data[offset_of(i, &shape, &sb)]
        };
    }
    Ok(Value { dtype: a.dtype, shape, data })
}

/// Float → i32 truncates toward zero, saturating at i32's bounds, NaN → 0 (Rust's `as`);
/// anything → bool is `!= 0` (NaN → true); bool and i32 → f32 are exact.
pub(super) fn cast(x: &Value, to: DType) -> Value {
    let data = x
        .data
        .iter()
        .map(|&v| match to {
            DType::F32 => v,
            DType::I32 => f64::from(v as i32),
            DType::Bool => bool01(v != 0.0),
        })
        .collect();
    Value { dtype: to, shape: x.shape.clone(), data }
}

/// The shape that equal-rank operands broadcast to: per axis, extents equal or 1.
pub(super) fn broadcast_shape(shapes: &[&[usize]]) -> Res<Vec<usize>> {
    let rank = shapes.first().map_or(0, |s| s.len());
    if shapes.iter().any(|s| s.len() != rank) {
        return Err(ErrorKind::Shape(format!(
            "operands of ranks {shapes:?} do not broadcast (ranks differ)"
        )));
    }
    let mut out = vec![1; rank];
    for s in shapes {
        for (o, &e) in out.iter_mut().zip(s.iter()) {
            if *o == 1 {
                *o = e;
            } else if e != 1 && e != *o {
                return Err(ErrorKind::Shape(format!("shapes {shapes:?} do not broadcast")));
            }
        }
    }
    Ok(out)
}

/// Strides reading an operand of `shape` at each index of the broadcast `out` shape: 0 along
/// the axes it repeats.
pub(super) fn broadcast_strides(shape: &[usize], out: &[usize]) -> Vec<usize> {
    let mut strides = super::strides(shape);
    for ((s, &e), &o) in strides.iter_mut().zip(shape).zip(out) {
        if e == 1 && o != 1 {
            *s = 0;
        }
    }
    strides
}
