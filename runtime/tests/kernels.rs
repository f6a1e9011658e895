//! Every device kernel against the reference interpreter (`genc_compiler::interp`) on random
//! inputs, on lavapipe in CI: awkward shapes (size 1, odd extents, sizes that are not a
//! multiple of the vector width, zero-size tensors), non-contiguous views, large values for
//! exp/log, and determinism (same seed, same bits).
//!
//! One test binary shares one device: opening it and compiling shaders is the expensive part.
//!
//! Tolerances (|device - reference| <= atol + rtol * |reference|, NaN matches NaN):
//! - exact ops (movement, comparisons, select, casts, max/min, abs, neg, floor/ceil/round,
//!   relu, iota, fill, uniform draws, i32 arithmetic): 0 beyond the f32 rounding of the input;
//! - +, -, *, /, recip, sqrt: rtol 1e-6 (one f32 rounding against the f64 reference); f32
//!   `Rem` atol 1e-6 (cancellation in `a - b * floor(a / b)` for |a| <= 4);
//! - transcendental ops (exp, log, log1p, tanh, sigmoid, erf, sin, cos, pow, rsqrt, normal
//!   draws): rtol 2e-5, atol 2e-6 (lavapipe's libm-like approximations);
//! - reductions: atol 1e-5 * (sum of |x| over the reduced elements), i.e. f32 accumulation;
//! - matmul and convolutions: atol 1e-5 * K (the contraction length) on inputs in [-1, 1].

// `&[x.clone()]` reads better than `std::slice::from_ref(&x)` in a table of checks.
#![allow(clippy::cloned_ref_to_slice_refs)]

use genc_compiler::interp::{self, Value};
use genc_compiler::prim::*;
use genc_runtime::device::{Device, DeviceChoice, DeviceError, DeviceTensor};
use genc_runtime::kernels::{self, Leaves};

#[path = "common/devices.rs"]
mod devices;
use devices::{device, device_choice, on_every_device};

/// A small deterministic generator for test inputs.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
    fn uniform(&mut self, n: usize, lo: f64, hi: f64) -> Vec<f64> {
        (0..n).map(|_| lo + (hi - lo) * self.next()).map(|x| x as f32 as f64).collect()
    }
    fn ints(&mut self, n: usize, lo: i64, hi: i64) -> Vec<f64> {
        (0..n).map(|_| (lo + ((hi - lo + 1) as f64 * self.next()) as i64).min(hi) as f64).collect()
    }
}

fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

fn f32v(rng: &mut Rng, shape: &[usize], lo: f64, hi: f64) -> Value {
    Value { dtype: DType::F32, shape: shape.to_vec(), data: rng.uniform(numel(shape), lo, hi) }
}

fn i32v(rng: &mut Rng, shape: &[usize], lo: i64, hi: i64) -> Value {
    Value { dtype: DType::I32, shape: shape.to_vec(), data: rng.ints(numel(shape), lo, hi) }
}

fn boolv(rng: &mut Rng, shape: &[usize]) -> Value {
    Value { dtype: DType::Bool, shape: shape.to_vec(), data: rng.ints(numel(shape), 0, 1) }
}

#[derive(Clone, Copy, Debug)]
struct Tol {
    atol: f64,
    rtol: f64,
}
const EXACT: Tol = Tol { atol: 0.0, rtol: 0.0 };
const ARITH: Tol = Tol { atol: 1e-30, rtol: 1e-6 };
const TRANSC: Tol = Tol { atol: 2e-6, rtol: 2e-5 };

/// Uploads `v`; with `strided`, as a non-contiguous view (data stored with axes reversed,
/// then permuted back), so kernels see real strides.
fn upload(v: &Value, strided: bool) -> DeviceTensor {
    let rank = v.shape.len();
    if !strided || rank < 2 || numel(&v.shape) == 0 {
        return DeviceTensor::from_value(device(), v).unwrap_or_else(|e| panic!("{e}"));
    }
    let rev: Vec<usize> = v.shape.iter().rev().copied().collect();
    let src_strides = contiguous(&v.shape);
    let mut data = vec![0.0; v.data.len()];
    for (i, slot) in data.iter_mut().enumerate() {
        // i is a row-major index into the reversed shape.
        let mut rem = i;
        let mut off = 0;
        for d in (0..rank).rev() {
            let c = rem % rev[d];
            rem /= rev[d];
            off += c * src_strides[rank - 1 - d];
        }
        *slot = v.data[off];
    }
    let stored = DeviceTensor::from_f64(device(), v.dtype, &rev, &data).unwrap_or_else(|e| panic!("{e}"));
    let perm: Vec<usize> = (0..rank).rev().collect();
    stored.permuted(&perm)
}

fn contiguous(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        s[d] = s[d + 1] * shape[d + 1];
    }
    s
}

fn compare(what: &str, got: &Value, want: &Value, tol: Tol) {
    assert_eq!(got.shape, want.shape, "{what}: shape");
    assert_eq!(got.dtype, want.dtype, "{what}: dtype");
    let mut worst = (0.0, 0usize);
    for (i, (&g, &w)) in got.data.iter().zip(&want.data).enumerate() {
        let w32 = match want.dtype {
            DType::F32 => w as f32 as f64,
            _ => w,
        };
        if g.is_nan() && w32.is_nan() || g == w32 {
            continue;
        }
        let err = (g - w32).abs();
        let bound = tol.atol + tol.rtol * w32.abs();
        if err > bound || err.is_nan() {
            panic!(
                "{what}: element {i} of {:?}: device {g}, reference {w32} (err {err:e} > {bound:e})",
                got.shape
            );
        }
        if err > worst.0 {
            worst = (err, i);
        }
    }
}

/// Runs `prim` on the device and in the interpreter, both with contiguous and with strided
/// inputs, and compares.
fn check(prim: &Prim, inputs: &[Value], out_shape: &[usize], out_dtype: DType, tol: Tol) {
    check_with(device(), prim, inputs, out_shape, out_dtype, tol, &Leaves::default());
}

fn check_with(
    dev: &Device,
    prim: &Prim,
    inputs: &[Value],
    out_shape: &[usize],
    out_dtype: DType,
    tol: Tol,
    leaves: &Leaves,
) {
    let refs: Vec<&Value> = inputs.iter().collect();
    let want = match interp::eval(prim, &refs, out_shape, out_dtype, &interp::Leaves::default()) {
        Ok(v) => v,
        Err(e) => panic!(
            "interpreter rejected {prim} {:?}: {e}",
            inputs.iter().map(|v| &v.shape).collect::<Vec<_>>()
        ),
    };
    for strided in [false, true] {
        let ts: Vec<DeviceTensor> = inputs.iter().map(|v| upload(v, strided)).collect();
        let trefs: Vec<&DeviceTensor> = ts.iter().collect();
        let got = kernels::eval(dev, prim, &trefs, out_shape, out_dtype, leaves)
            .and_then(|t| t.to_value(dev))
            .unwrap_or_else(|e| panic!("{prim}: {e}"));
        compare(&format!("{prim} (strided inputs: {strided})"), &got, &want, tol);
    }
}

/// Output shape of a numpy broadcast of equal-rank shapes.
fn bshape(shapes: &[&[usize]]) -> Vec<usize> {
    (0..shapes[0].len())
        .map(|d| {
            if shapes.iter().any(|s| s[d] == 0) { 0 } else { shapes.iter().map(|s| s[d]).max().unwrap_or(1) }
        })
        .collect()
}

const SHAPES: &[&[usize]] = &[&[0], &[1], &[7], &[64], &[3, 5], &[2, 3, 4], &[2, 0, 3]];

#[test]
fn unary_ops_match_the_interpreter() {
    on_every_device(|| {
        use UnaryOp::*;
        let mut rng = Rng(1);
        for op in [
            Neg, Abs, Sign, Recip, Sqrt, Rsqrt, Exp, Log, Log1p, Tanh, Sigmoid, Relu, Erf, Sin, Cos, Floor,
            Ceil, Round,
        ] {
            let (lo, hi, tol) = match op {
                Sqrt | Rsqrt | Log => (1e-3, 50.0, if op == Sqrt { ARITH } else { TRANSC }),
                Recip => (0.1, 4.0, ARITH),
                Log1p => (-0.5, 3.0, TRANSC),
                Exp => (-20.0, 20.0, TRANSC),
                Neg | Abs | Sign | Relu | Floor | Ceil | Round => (-4.0, 4.0, EXACT),
                _ => (-4.0, 4.0, TRANSC),
            };
            for shape in SHAPES {
                let mut x = f32v(&mut rng, shape, lo, hi);
                if matches!(op, Round | Sign | Relu) && !x.data.is_empty() {
                    x.data[0] = 0.5; // a tie for Round, a zero-ish edge for the rest
                    if x.data.len() > 1 {
                        x.data[1] = -2.5;
                    }
                }
                check(&Prim::Unary(op), &[x], shape, DType::F32, tol);
            }
        }
        // Logical not on bools.
        check(&Prim::Unary(Not), &[boolv(&mut rng, &[5, 3])], &[5, 3], DType::Bool, EXACT);
        // Large values: exp near f32 overflow, log of huge and tiny numbers, log1p near zero.
        let big =
            Value { dtype: DType::F32, shape: vec![6], data: vec![80.0, 88.0, -80.0, -100.0, 0.0, 1e-3] };
        check(&Prim::Unary(Exp), &[big], &[6], DType::F32, TRANSC);
        let huge = Value { dtype: DType::F32, shape: vec![5], data: vec![1e30, 3e38, 1e-30, 1.0, 7.5] };
        check(&Prim::Unary(Log), &[huge], &[5], DType::F32, TRANSC);
        let tiny = Value { dtype: DType::F32, shape: vec![4], data: vec![1e-7, -1e-7, 1e-10, 0.0] };
        check(&Prim::Unary(Log1p), &[tiny], &[4], DType::F32, TRANSC);
        let sat = Value { dtype: DType::F32, shape: vec![4], data: vec![50.0, -50.0, 20.0, -20.0] };
        check(&Prim::Unary(Tanh), &[sat.clone()], &[4], DType::F32, TRANSC);
        check(&Prim::Unary(Sigmoid), &[sat], &[4], DType::F32, TRANSC);
    });
}

#[test]
fn binary_ops_match_the_interpreter_with_broadcasting() {
    on_every_device(|| {
        use BinaryOp::*;
        let mut rng = Rng(2);
        let pairs: &[(&[usize], &[usize])] = &[
            (&[7], &[7]),
            (&[64], &[64]),
            (&[3, 1, 5], &[1, 4, 5]),
            (&[2, 3], &[2, 1]),
            (&[1], &[1]),
            (&[0, 3], &[1, 3]),
        ];
        for op in [Add, Sub, Mul, Div, Rem, Pow, Max, Min, Eq, Ne, Lt, Le, Gt, Ge] {
            for (sa, sb) in pairs {
                let out = bshape(&[sa, sb]);
                let (a, b, tol) = match op {
                    Pow => {
                        let mut a = f32v(&mut rng, sa, -3.0, 3.0);
                        let b = Value { data: rng.ints(numel(sb), -3, 3), ..f32v(&mut rng, sb, 0.0, 1.0) };
                        if let Some(x) = a.data.first_mut() {
                            *x = 0.0;
                        }
                        (a, b, TRANSC)
                    }
                    Div => (f32v(&mut rng, sa, -4.0, 4.0), f32v(&mut rng, sb, 0.5, 3.0), ARITH),
                    // a - b * floor(a / b): cancellation costs up to an ulp of |a| <= 4.
                    Rem => (
                        f32v(&mut rng, sa, -4.0, 4.0),
                        f32v(&mut rng, sb, 0.5, 3.0),
                        Tol { atol: 1e-6, rtol: 1e-6 },
                    ),
                    // Integer-valued operands so comparisons see ties.
                    Eq | Ne | Lt | Le | Gt | Ge | Max | Min => {
                        let a = Value { data: rng.ints(numel(sa), -2, 2), ..f32v(&mut rng, sa, 0.0, 1.0) };
                        let b = Value { data: rng.ints(numel(sb), -2, 2), ..f32v(&mut rng, sb, 0.0, 1.0) };
                        (a, b, EXACT)
                    }
                    _ => (f32v(&mut rng, sa, -4.0, 4.0), f32v(&mut rng, sb, -4.0, 4.0), ARITH),
                };
                let dtype = if op.is_comparison() { DType::Bool } else { DType::F32 };
                check(&Prim::Binary(op), &[a, b], &out, dtype, tol);
            }
        }
        // i32 arithmetic: floor division and floor modulo.
        for op in [Add, Sub, Mul, Div, Rem, Max, Min] {
            let a = i32v(&mut rng, &[4, 5], -50, 50);
            let mut b = i32v(&mut rng, &[1, 5], 1, 7);
            b.data[1] = -3.0;
            check(&Prim::Binary(op), &[a, b], &[4, 5], DType::I32, EXACT);
        }
        for op in [And, Or, Eq, Ne] {
            check(
                &Prim::Binary(op),
                &[boolv(&mut rng, &[3, 4]), boolv(&mut rng, &[3, 1])],
                &[3, 4],
                DType::Bool,
                EXACT,
            );
        }
    });
}

#[test]
fn select_and_casts_match_the_interpreter() {
    on_every_device(|| {
        let mut rng = Rng(3);
        let c = boolv(&mut rng, &[3, 1, 5]);
        let a = f32v(&mut rng, &[1, 4, 5], -1.0, 1.0);
        let b = f32v(&mut rng, &[3, 4, 1], -1.0, 1.0);
        check(&Prim::Select, &[c, a, b], &[3, 4, 5], DType::F32, EXACT);
        let x = f32v(&mut rng, &[6, 7], -100.0, 100.0);
        check(&Prim::Cast { to: DType::I32 }, &[x.clone()], &[6, 7], DType::I32, EXACT);
        let mut z = x.clone();
        z.data[3] = 0.0;
        check(&Prim::Cast { to: DType::Bool }, &[z], &[6, 7], DType::Bool, EXACT);
        check(&Prim::Cast { to: DType::F32 }, &[i32v(&mut rng, &[9], -9, 9)], &[9], DType::F32, EXACT);
        check(&Prim::Cast { to: DType::F32 }, &[boolv(&mut rng, &[2, 9])], &[2, 9], DType::F32, EXACT);
        check(&Prim::Cast { to: DType::I32 }, &[boolv(&mut rng, &[2, 9])], &[2, 9], DType::I32, EXACT);
    });
}

/// A fused program of several ops with two outputs, against the ops run one by one.
#[test]
fn a_fused_program_equals_its_ops_one_by_one() {
    on_every_device(|| {
        use genc_runtime::kernels::elementwise::{EwOp, FusedProgram, Instr, run_fused};
        let mut rng = Rng(4);
        for shape in [&[0usize][..], &[5], &[1024], &[3, 7]] {
            let a = f32v(&mut rng, shape, -2.0, 2.0);
            let b = f32v(&mut rng, shape, -2.0, 2.0);
            let c = f32v(&mut rng, &vec![1; shape.len()], -1.0, 1.0);
            // r3 = a * b; r4 = r3 + c; r5 = tanh(r4); outputs r5 and r3.
            let program = FusedProgram {
                n_inputs: 3,
                instrs: vec![
                    Instr { op: EwOp::Mul, a: 0, b: 1, c: 0 },
                    Instr { op: EwOp::Add, a: 3, b: 2, c: 0 },
                    Instr { op: EwOp::Tanh, a: 4, b: 0, c: 0 },
                ],
                outputs: vec![5, 3],
            };
            let ta = DeviceTensor::from_value(device(), &a).unwrap_or_else(|e| panic!("{e}"));
            let tb = DeviceTensor::from_value(device(), &b).unwrap_or_else(|e| panic!("{e}"));
            let tc = DeviceTensor::from_value(device(), &c).unwrap_or_else(|e| panic!("{e}"));
            let outs = run_fused(device(), &program, &[&ta, &tb, &tc], shape, &[DType::F32, DType::F32])
                .unwrap_or_else(|e| panic!("{e}"));
            let l = interp::Leaves::default();
            let ev = |p: Prim, ins: &[&Value]| {
                interp::eval(&p, ins, shape, DType::F32, &l).unwrap_or_else(|e| panic!("{e}"))
            };
            let ab = ev(Prim::Binary(BinaryOp::Mul), &[&a, &b]);
            let cb = ev(Prim::Broadcast, &[&c]);
            let s = ev(Prim::Binary(BinaryOp::Add), &[&ab, &cb]);
            let y = ev(Prim::Unary(UnaryOp::Tanh), &[&s]);
            let got0 = outs[0].to_value(device()).unwrap_or_else(|e| panic!("{e}"));
            let got1 = outs[1].to_value(device()).unwrap_or_else(|e| panic!("{e}"));
            compare("fused tanh(a*b+c)", &got0, &y, TRANSC);
            compare("fused a*b", &got1, &ab, ARITH);
        }
    });
}

fn reduce_tol(x: &Value, len: usize) -> Tol {
    let max = x.data.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    Tol { atol: 1e-6 * max * len as f64 + 1e-30, rtol: 1e-5 }
}

#[test]
fn reductions_match_the_interpreter() {
    on_every_device(|| {
        use ReduceOp::*;
        let mut rng = Rng(5);
        let cases: &[(&[usize], &[usize])] = &[
            (&[3, 4, 5], &[1]),
            (&[3, 4, 5], &[0, 2]),
            (&[3, 4, 5], &[0, 1, 2]),
            (&[7], &[0]),
            (&[1], &[0]),
            (&[2, 9], &[0]),
            (&[0, 3], &[1]),
            (&[3, 0], &[1]),
            (&[2, 20000], &[1]),
        ];
        for op in [Sum, Mean, Max, Min, Prod, ArgMax, ArgMin] {
            for (shape, axes) in cases {
                if matches!(op, ArgMax | ArgMin) && axes.len() != 1 {
                    continue;
                }
                if matches!(op, Max | Min | ArgMax | ArgMin | Mean) && axes.iter().any(|&a| shape[a] == 0) {
                    continue; // no identity (the interpreter rejects these)
                }
                let (lo, hi) = if op == Prod { (0.8, 1.2) } else { (-1.0, 1.0) };
                let mut x = f32v(&mut rng, shape, lo, hi);
                if matches!(op, ArgMax | ArgMin | Max | Min) {
                    // Ties: the first index must win.
                    x.data = x.data.iter().map(|v| (v * 3.0).round()).collect();
                }
                let mut out: Vec<usize> = shape.to_vec();
                for &a in axes.iter() {
                    out[a] = 1;
                }
                let len: usize = axes.iter().map(|&a| shape[a]).product();
                let dtype = if matches!(op, ArgMax | ArgMin) { DType::I32 } else { DType::F32 };
                let tol = if matches!(op, Sum | Mean | Prod) { reduce_tol(&x, len) } else { EXACT };
                check(&Prim::Reduce { op, axes: axes.to_vec() }, &[x], &out, dtype, tol);
            }
        }
    });
}

/// Reductions fused behind an element-wise program (`(a - m) * s` reduced with each op and
/// `a - m` summed in the same pass, `a - m` also written) equal the program's ops and then the
/// reductions on the interpreter: several axis sets (leading, trailing, split, all, two-stage
/// rows), a broadcast `m` and `s`, contiguous and strided inputs, zero-size shapes.
#[test]
fn fused_reductions_equal_the_program_then_the_reduction() {
    on_every_device(|| {
        use ReduceOp::*;
        use genc_runtime::kernels::elementwise::{EwOp, FusedProgram, Instr};
        use genc_runtime::kernels::reduce::{FusedReduce, Reduction, run_fused_reduce};
        let mut rng = Rng(11);
        let cases: &[(&[usize], &[usize])] = &[
            (&[3, 4, 5], &[1]),
            (&[3, 4, 5], &[0, 2]),
            (&[3, 4, 5], &[0, 1, 2]),
            (&[6, 7], &[0]),
            (&[6, 7], &[1]),
            (&[2, 3, 4, 5], &[1, 3]),
            (&[1], &[0]),
            (&[0, 3], &[1]),
            (&[3, 0], &[1]),
            (&[2, 20000], &[1]),
            (&[40, 1, 300], &[0, 2]),
        ];
        let program = FusedProgram {
            n_inputs: 3,
            instrs: vec![
                Instr { op: EwOp::Sub, a: 0, b: 1, c: 0 },
                Instr { op: EwOp::Mul, a: 3, b: 2, c: 0 },
            ],
            outputs: vec![3],
        };
        let l = interp::Leaves::default();
        for op in [Sum, Mean, Max, Min, Prod, ArgMax, ArgMin] {
            for (case, (shape, axes)) in cases.iter().enumerate() {
                if matches!(op, ArgMax | ArgMin) && axes.len() != 1 {
                    continue;
                }
                if matches!(op, Max | Min | ArgMax | ArgMin | Mean) && axes.iter().any(|&a| shape[a] == 0) {
                    continue; // no identity (the interpreter rejects these)
                }
                let ev = |p: Prim, ins: &[&Value], dtype: DType, out: &[usize]| {
                    interp::eval(&p, ins, out, dtype, &l).unwrap_or_else(|e| panic!("{p}: {e}"))
                };
                let mut m_shape = shape.to_vec();
                m_shape[0] = 1;
                let ones = vec![1; shape.len()];
                let constant = |x: f64| Value { dtype: DType::F32, shape: ones.clone(), data: vec![x] };
                let (a, m, s) = if matches!(op, ArgMax | ArgMin | Max | Min) {
                    // Integer values keep ties: the first index must win.
                    (i32v(&mut rng, shape, -3, 3), i32v(&mut rng, &m_shape, -1, 1), constant(2.0))
                } else if op == Prod {
                    let a = f32v(&mut rng, shape, 0.9, 1.1);
                    (a, f32v(&mut rng, &m_shape, -0.05, 0.05), constant(1.0))
                } else {
                    (
                        f32v(&mut rng, shape, -1.0, 1.0),
                        f32v(&mut rng, &m_shape, -1.0, 1.0),
                        f32v(&mut rng, &ones, 0.5, 2.0),
                    )
                };
                let (a, m) = (Value { dtype: DType::F32, ..a }, Value { dtype: DType::F32, ..m });
                let diff = ev(
                    Prim::Binary(BinaryOp::Sub),
                    &[&a, &ev(Prim::Broadcast, &[&m], DType::F32, shape)],
                    DType::F32,
                    shape,
                );
                let y = ev(
                    Prim::Binary(BinaryOp::Mul),
                    &[&diff, &ev(Prim::Broadcast, &[&s], DType::F32, shape)],
                    DType::F32,
                    shape,
                );
                let mut out: Vec<usize> = shape.to_vec();
                for &ax in axes.iter() {
                    out[ax] = 1;
                }
                let dtype = if matches!(op, ArgMax | ArgMin) { DType::I32 } else { DType::F32 };
                let want = ev(Prim::Reduce { op, axes: axes.to_vec() }, &[&y], dtype, &out);
                let len: usize = axes.iter().map(|&ax| shape[ax]).product();
                let tol = if matches!(op, Sum | Mean | Prod) { reduce_tol(&y, len) } else { EXACT };
                let strided = case % 2 == 1;
                let (ta, tm, ts) = (upload(&a, strided), upload(&m, strided), upload(&s, false));
                let reductions =
                    [Reduction { arg: 4, op, dtype }, Reduction { arg: 3, op: Sum, dtype: DType::F32 }];
                let spec = FusedReduce { program: &program, axes, reductions: &reductions };
                let (outs, reduced) =
                    run_fused_reduce(device(), &spec, &[&ta, &tm, &ts], shape, &[DType::F32])
                        .unwrap_or_else(|e| panic!("{e}"));
                let what = format!("fused {op:?} over {axes:?} of {shape:?} (strided: {strided})");
                let got = reduced[0].to_value(device()).unwrap_or_else(|e| panic!("{e}"));
                compare(&what, &got, &want, tol);
                let diff_sum = ev(Prim::Reduce { op: Sum, axes: axes.to_vec() }, &[&diff], DType::F32, &out);
                let got = reduced[1].to_value(device()).unwrap_or_else(|e| panic!("{e}"));
                compare(&format!("{what}: sum of a - m beside it"), &got, &diff_sum, reduce_tol(&diff, len));
                let written = outs[0].to_value(device()).unwrap_or_else(|e| panic!("{e}"));
                compare(&format!("{what}: written a - m"), &written, &diff, ARITH);
            }
        }
    });
}

#[test]
fn scans_match_the_interpreter() {
    on_every_device(|| {
        let mut rng = Rng(6);
        for (shape, axis) in
            [(&[5usize, 7][..], 1usize), (&[5, 7], 0), (&[1], 0), (&[0, 4], 1), (&[2, 3, 4], 1)]
        {
            let x = f32v(&mut rng, shape, 0.5, 1.5);
            let tol = Tol { atol: 1e-5, rtol: 1e-5 };
            check(&Prim::Scan { op: ScanOp::Sum, axis }, &[x.clone()], shape, DType::F32, tol);
            check(&Prim::Scan { op: ScanOp::Prod, axis }, &[x], shape, DType::F32, tol);
        }
    });
}

#[test]
fn small_matrix_algebra_matches_the_interpreter() {
    on_every_device(|| {
        let mut rng = Rng(11);
        // Random matrices (pivoting swaps rows), a 1x1, a batch of 16x16, an empty batch, and a
        // singular matrix (-inf, NaN rows).
        for shape in [&[4usize, 3, 3][..], &[1, 1], &[2, 16, 16], &[0, 2, 2]] {
            let x = f32v(&mut rng, shape, -1.0, 1.0);
            let tol = Tol { atol: 1e-4, rtol: 1e-3 };
            let batch = &shape[..shape.len() - 2];
            check(&Prim::LogAbsDet, &[x.clone()], batch, DType::F32, tol);
            check(&Prim::Inverse, &[x], shape, DType::F32, tol);
        }
        let singular = Value::f32(&[2, 2], &[1.0, 2.0, 2.0, 4.0]).expect("a valid value");
        let tol = Tol { atol: 0.0, rtol: 0.0 };
        check(&Prim::LogAbsDet, &[singular.clone()], &[], DType::F32, tol);
        check(&Prim::Inverse, &[singular], &[2, 2], DType::F32, tol);
    });
}

#[test]
fn movement_matches_the_interpreter() {
    on_every_device(|| {
        let mut rng = Rng(7);
        let x = f32v(&mut rng, &[2, 3, 4], -1.0, 1.0);
        check(&Prim::Reshape, &[x.clone()], &[6, 4], DType::F32, EXACT);
        check(&Prim::Reshape, &[x.clone()], &[24], DType::F32, EXACT);
        check(&Prim::Permute { perm: vec![2, 0, 1] }, &[x.clone()], &[4, 2, 3], DType::F32, EXACT);
        let y = f32v(&mut rng, &[2, 1, 4], -1.0, 1.0);
        check(&Prim::Broadcast, &[y], &[2, 5, 4], DType::F32, EXACT);
        check(&Prim::Slice { axis: 2, start: 1, step: 2 }, &[x.clone()], &[2, 3, 2], DType::F32, EXACT);
        check(&Prim::Slice { axis: 1, start: 2, step: 1 }, &[x.clone()], &[2, 1, 4], DType::F32, EXACT);
        check(&Prim::Slice { axis: 0, start: 0, step: 1 }, &[x.clone()], &[0, 3, 4], DType::F32, EXACT);
        let pad = Prim::Pad { pads: vec![(1, 0), (0, 2), (3, 1)], value: F64(-0.5) };
        check(&pad, &[x.clone()], &[3, 5, 8], DType::F32, EXACT);
        let pad0 = Prim::Pad { pads: vec![(1, 1)], value: F64(2.0) };
        check(&pad0, &[f32v(&mut rng, &[0], 0.0, 1.0)], &[2], DType::F32, EXACT);
        let parts = [
            f32v(&mut rng, &[2, 1, 4], -1.0, 1.0),
            f32v(&mut rng, &[2, 0, 4], -1.0, 1.0),
            f32v(&mut rng, &[2, 3, 4], -1.0, 1.0),
        ];
        check(&Prim::Concat { axis: 1 }, &parts, &[2, 4, 4], DType::F32, EXACT);
        check(&Prim::Concat { axis: 0 }, &[x.clone(), x.clone()], &[4, 3, 4], DType::F32, EXACT);
        // Gather (embedding lookups) and its adjoint, with repeated indices.
        let table = f32v(&mut rng, &[10, 3], -1.0, 1.0);
        let idx = i32v(&mut rng, &[4, 5], 0, 9);
        check(&Prim::Gather { axis: 0 }, &[table, idx.clone()], &[4, 5, 3], DType::F32, EXACT);
        check(
            &Prim::Gather { axis: 1 },
            &[x.clone(), i32v(&mut rng, &[6], 0, 2)],
            &[2, 6, 4],
            DType::F32,
            EXACT,
        );
        let src = f32v(&mut rng, &[4, 5, 3], -1.0, 1.0);
        check(&Prim::ScatterAdd { axis: 0 }, &[idx, src], &[10, 3], DType::F32, ARITH);
        let idx1 = i32v(&mut rng, &[7], 0, 2);
        let src1 = f32v(&mut rng, &[2, 7, 4], -1.0, 1.0);
        check(&Prim::ScatterAdd { axis: 1 }, &[idx1, src1], &[2, 3, 4], DType::F32, ARITH);
    });
}

#[test]
fn matmul_matches_the_interpreter() {
    on_every_device(|| {
        let mut rng = Rng(8);
        let cases: &[(&[usize], usize, usize, usize)] = &[
            (&[], 1, 1, 1),
            (&[], 5, 7, 3),
            (&[], 33, 65, 17),
            (&[], 64, 64, 64),
            (&[2, 3], 9, 11, 6),
            (&[], 0, 4, 3),
            (&[], 4, 0, 3),
            (&[], 70, 130, 1),
            (&[], 200, 37, 100),
            (&[2], 70, 20, 99),
        ];
        for (batch, m, k, n) in cases {
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                let mut sa = batch.to_vec();
                sa.extend(if ta { [*k, *m] } else { [*m, *k] });
                let mut sb = batch.to_vec();
                sb.extend(if tb { [*n, *k] } else { [*k, *n] });
                let mut so = batch.to_vec();
                so.extend([*m, *n]);
                let a = f32v(&mut rng, &sa, -1.0, 1.0);
                let b = f32v(&mut rng, &sb, -1.0, 1.0);
                let tol = Tol { atol: 1e-5 * (*k as f64 + 1.0), rtol: 1e-5 };
                check(&Prim::MatMul { transpose_a: ta, transpose_b: tb }, &[a, b], &so, DType::F32, tol);
            }
        }
    });
}

/// The other matmul paths (cubek, explicit tiles) agree with the interpreter too.
#[test]
fn every_matmul_path_matches_the_interpreter() {
    on_every_device(|| {
        use genc_runtime::kernels::matmul::{MatmulPath, matmul};
        let mut rng = Rng(12);
        let paths =
            [MatmulPath::Cubek, MatmulPath::Tiled { tm: 8, tn: 8 }, MatmulPath::Tiled { tm: 1, tn: 1 }];
        for (batch, m, k, n) in [(1, 45, 33, 70), (3, 17, 64, 5)] {
            for (ta, tb) in [(false, false), (true, true)] {
                let sa = if ta { [batch, k, m] } else { [batch, m, k] };
                let sb = if tb { [batch, n, k] } else { [batch, k, n] };
                let (a, b) = (f32v(&mut rng, &sa, -1.0, 1.0), f32v(&mut rng, &sb, -1.0, 1.0));
                let prim = Prim::MatMul { transpose_a: ta, transpose_b: tb };
                let want =
                    interp::eval(&prim, &[&a, &b], &[batch, m, n], DType::F32, &interp::Leaves::default())
                        .unwrap_or_else(|e| panic!("{e}"));
                let swap = |t: DeviceTensor, flag: bool| if flag { t.permuted(&[0, 2, 1]) } else { t };
                let da = swap(DeviceTensor::from_value(device(), &a).unwrap_or_else(|e| panic!("{e}")), ta);
                let db = swap(DeviceTensor::from_value(device(), &b).unwrap_or_else(|e| panic!("{e}")), tb);
                for path in paths {
                    let got = matmul(device(), &da, &db, &[batch, m, n], path)
                        .and_then(|t| t.to_value(device()))
                        .unwrap_or_else(|e| panic!("{path:?}: {e}"));
                    compare(
                        &format!("matmul {path:?}"),
                        &got,
                        &want,
                        Tol { atol: 1e-5 * k as f64, rtol: 1e-5 },
                    );
                }
            }
        }
    });
}

fn conv_out(h: usize, k: usize, s: usize, p: usize, d: usize) -> usize {
    (h + 2 * p - d * (k - 1) - 1) / s + 1
}

#[test]
fn convolutions_match_the_interpreter() {
    on_every_device(|| {
        check_convolutions(device(), &mut Rng(9));
        // DCGAN generator layer: conv_transpose2d(64 -> 1, k4 s2 p1) from 14x14 to 28x28.
        let mut rng = Rng(13);
        let geo = ConvGeometry { stride: [2, 2], pad: [1, 1], dilation: [1, 1], groups: 1 };
        let x = f32v(&mut rng, &[2, 8, 14, 14], -1.0, 1.0);
        let wt = f32v(&mut rng, &[8, 1, 4, 4], -1.0, 1.0);
        let prim = Prim::ConvTranspose2d { geometry: geo, output_padding: [0, 0] };
        check(&prim, &[x, wt], &[2, 1, 28, 28], DType::F32, Tol { atol: 1e-4, rtol: 1e-5 });
    });
}

/// A convolution whose scratch (im2col columns) outgrows the device's budget runs a few
/// images at a time: srgan's 9x9 conv at batch 16 wanted 260 MB of columns, more than
/// lavapipe's largest buffer. Tiny budgets exercise the slicing on small shapes: 1 byte (one
/// image per slice) and 6000 bytes (a few images per slice, the last one short).
#[test]
fn convolutions_slice_the_batch_when_scratch_is_short() {
    on_every_device(|| {
        for scratch in [1, 6000] {
            check_convolutions(&device().with_scratch_bytes(scratch), &mut Rng(14));
        }
    });
}

/// Conv2d, its weight gradient and the transposed convolution against the interpreter.
fn check_convolutions(dev: &Device, rng: &mut Rng) {
    // (N, C_in, H, W, C_out, k, stride, pad, dilation, groups)
    let cases = [
        (2, 3, 9, 8, 4, 3, 1, 1, 1, 1),
        (2, 4, 14, 14, 6, 4, 2, 1, 1, 1),
        (1, 4, 7, 9, 4, 3, 2, 2, 2, 2),
        (3, 2, 5, 5, 3, 1, 1, 0, 1, 1),
        (1, 1, 1, 1, 1, 1, 1, 0, 1, 1),
        (5, 4, 7, 6, 6, 3, 2, 1, 1, 2),
    ];
    let check = |prim: &Prim, inputs: &[Value], out_shape: &[usize], tol: Tol| {
        check_with(dev, prim, inputs, out_shape, DType::F32, tol, &Leaves::default());
    };
    for (nb, ci, h, w, co, k, s, p, d, g) in cases {
        let geo = ConvGeometry { stride: [s, s], pad: [p, p], dilation: [d, d], groups: g };
        let (oh, ow) = (conv_out(h, k, s, p, d), conv_out(w, k, s, p, d));
        let x = f32v(rng, &[nb, ci, h, w], -1.0, 1.0);
        let wt = f32v(rng, &[co, ci / g, k, k], -1.0, 1.0);
        let dy = f32v(rng, &[nb, co, oh, ow], -1.0, 1.0);
        let kk = (ci / g * k * k) as f64;
        let tol = |len: f64| Tol { atol: 1e-5 * (len + 1.0), rtol: 1e-5 };
        check(&Prim::Conv2d(geo), &[x.clone(), wt.clone()], &[nb, co, oh, ow], tol(kk));
        check(
            &Prim::Conv2dWeightGrad(geo),
            &[x, dy.clone()],
            &[co, ci / g, k, k],
            tol((nb * oh * ow) as f64),
        );
        // The input gradient is the transposed convolution of dy with the same weight.
        let wt_t = f32v(rng, &[co, ci / g, k, k], -1.0, 1.0);
        let op = (h + 2 * p - d * (k - 1) - 1) % s;
        let prim =
            Prim::ConvTranspose2d { geometry: geo, output_padding: [op, (w + 2 * p - d * (k - 1) - 1) % s] };
        check(&prim, &[dy, wt_t], &[nb, ci, h, w], tol((co * k * k) as f64));
    }
}

/// `bias_add -> relu -> * y`, and `relu's input > op result`, as an epilogue of `prim`:
/// register 0 the op's result, 1 the bias, 2 a tensor of the output's shape.
fn epilogue_program() -> kernels::elementwise::FusedProgram {
    use kernels::elementwise::{EwOp, FusedProgram, Instr};
    let instr = |op, a, b| Instr { op, a, b, c: 0 };
    FusedProgram {
        n_inputs: 3,
        instrs: vec![
            instr(EwOp::Add, 0, 1),
            instr(EwOp::Relu, 3, 3),
            instr(EwOp::Mul, 4, 2),
            instr(EwOp::Gt, 3, 0),
        ],
        // The activation into the op's own buffer, then the op's result, the product and
        // the comparison.
        outputs: vec![4, 0, 5, 6],
    }
}

/// What [`epilogue_program`] computes, on the interpreter.
fn epilogue_reference(op: &Value, bias: &Value, y: &Value) -> Vec<Value> {
    let none = interp::Leaves::default();
    let shape = op.shape.clone();
    let mut lifted = bias.clone();
    lifted.shape = [vec![1; shape.len() - bias.shape.len()], bias.shape.clone()].concat();
    let run = |prim: Prim, args: &[&Value], dtype: DType| {
        interp::eval(&prim, args, &shape, dtype, &none).unwrap_or_else(|e| panic!("{prim}: {e}"))
    };
    let b = run(Prim::Broadcast, &[&lifted], DType::F32);
    // The device rounds the op's result to f32 before the program reads it.
    let op32 = Value { data: op.data.iter().map(|&x| x as f32 as f64).collect(), ..op.clone() };
    let pre = run(Prim::Binary(BinaryOp::Add), &[&op32, &b], DType::F32);
    let pre = Value { data: pre.data.iter().map(|&x| x as f32 as f64).collect(), ..pre };
    let act = run(Prim::Unary(UnaryOp::Relu), &[&pre], DType::F32);
    let prod = run(Prim::Binary(BinaryOp::Mul), &[&act, y], DType::F32);
    let gt = run(Prim::Binary(BinaryOp::Gt), &[&pre, &op32], DType::Bool);
    vec![act, op32, prod, gt]
}

/// Runs `prim` with [`epilogue_program`] on `dev` (inputs contiguous and strided) and checks
/// every output against the op then the program on the interpreter.
fn check_epilogue(dev: &Device, prim: &Prim, args: &[Value], bias: &Value, shape: &[usize], tol: Tol) {
    let refs: Vec<&Value> = args.iter().collect();
    let op = interp::eval(prim, &refs, shape, DType::F32, &interp::Leaves::default())
        .unwrap_or_else(|e| panic!("{prim}: {e}"));
    let y = f32v(&mut Rng(21), shape, -1.0, 1.0);
    let want = epilogue_reference(&op, bias, &y);
    let dtypes = [DType::F32, DType::F32, DType::F32, DType::Bool];
    for strided in [false, true] {
        let ts: Vec<DeviceTensor> = args.iter().map(|v| upload(v, strided)).collect();
        let trefs: Vec<&DeviceTensor> = ts.iter().collect();
        let (b, yt) = (upload(bias, false), upload(&y, strided));
        let got = kernels::eval_epilogue(
            dev,
            prim,
            &trefs,
            shape,
            epilogue_program(),
            &[&b, &yt],
            &dtypes,
            &Leaves::default(),
        )
        .unwrap_or_else(|e| panic!("{prim} with an epilogue: {e}"));
        for (k, (g, w)) in got.iter().zip(&want).enumerate() {
            let g = g.to_value(dev).unwrap_or_else(|e| panic!("{e}"));
            // The comparison decides on values within rounding of each other.
            let tol = if k == 3 { EXACT } else { tol };
            compare(&format!("{prim} epilogue output {k} (strided: {strided})"), &g, w, tol);
        }
    }
}

/// Matmul and convolution store through an element-wise epilogue (bias, activation, several
/// outputs, strided and broadcast inputs): each output equals the op followed by the program.
#[test]
fn matmul_and_conv_epilogues_equal_the_op_then_the_program() {
    on_every_device(|| {
        let mut rng = Rng(20);
        for (batch, m, k, n) in [(0, 5, 7, 3), (0, 70, 33, 130), (2, 9, 11, 6), (0, 4, 0, 3), (0, 0, 3, 5)] {
            for (ta, tb) in [(false, false), (true, true)] {
                let lead: Vec<usize> = if batch > 0 { vec![batch] } else { vec![] };
                let sa = [lead.clone(), if ta { vec![k, m] } else { vec![m, k] }].concat();
                let sb = [lead.clone(), if tb { vec![n, k] } else { vec![k, n] }].concat();
                let so = [lead, vec![m, n]].concat();
                let (a, b) = (f32v(&mut rng, &sa, -1.0, 1.0), f32v(&mut rng, &sb, -1.0, 1.0));
                let bias = f32v(&mut rng, &[n], -1.0, 1.0);
                let tol = Tol { atol: 1e-5 * (k as f64 + 1.0), rtol: 1e-5 };
                let prim = Prim::MatMul { transpose_a: ta, transpose_b: tb };
                check_epilogue(device(), &prim, &[a, b], &bias, &so, tol);
            }
        }
        // Convolutions, also with the batch sliced (one image, then a few, per matmul).
        for scratch in [None, Some(1), Some(6000)] {
            let dev = scratch.map(|s| device().with_scratch_bytes(s));
            let dev = dev.as_ref().unwrap_or(device());
            for (nb, ci, h, co, kk, s, p, g) in
                [(2, 3, 9, 4, 3, 1, 1, 1), (5, 4, 7, 6, 3, 2, 1, 2), (3, 2, 5, 3, 1, 1, 0, 1)]
            {
                let geo = ConvGeometry { stride: [s, s], pad: [p, p], dilation: [1, 1], groups: g };
                let o = conv_out(h, kk, s, p, 1);
                let x = f32v(&mut rng, &[nb, ci, h, h], -1.0, 1.0);
                let wt = f32v(&mut rng, &[co, ci / g, kk, kk], -1.0, 1.0);
                let bias = f32v(&mut rng, &[co, 1, 1], -1.0, 1.0);
                let tol = Tol { atol: 1e-5 * ((ci / g * kk * kk) as f64 + 1.0), rtol: 1e-5 };
                check_epilogue(dev, &Prim::Conv2d(geo), &[x, wt], &bias, &[nb, co, o, o], tol);
            }
        }
    });
}

/// A fused kernel writing its output over a dying input (the planner's in-place update)
/// gives the same result as a fresh output, vectorised or strided, and really reuses the
/// input's buffer; an input it cannot take over (a broadcast view) gets a fresh output.
#[test]
fn in_place_fused_kernels_equal_fresh_ones() {
    on_every_device(|| {
        use kernels::elementwise::{EwOp, FusedProgram, Instr, run_fused, run_fused_in_place};
        let dev = device();
        let mut rng = Rng(30);
        // r3 = x * y + x: output 0 over x (input 0), output 1 (x > y) fresh.
        let program = FusedProgram {
            n_inputs: 2,
            instrs: vec![
                Instr { op: EwOp::Mul, a: 0, b: 1, c: 0 },
                Instr { op: EwOp::Add, a: 2, b: 0, c: 0 },
                Instr { op: EwOp::Gt, a: 0, b: 1, c: 0 },
            ],
            outputs: vec![3, 4],
        };
        for (shape, strided_y) in [(vec![64, 33], false), (vec![7, 5, 3], true), (vec![4096], false)] {
            let x = f32v(&mut rng, &shape, -2.0, 2.0);
            let y = f32v(&mut rng, &shape, -2.0, 2.0);
            let dtypes = [DType::F32, DType::Bool];
            let (xt, yt) = (upload(&x, false), upload(&y, strided_y));
            let fresh =
                run_fused(dev, &program, &[&xt, &yt], &shape, &dtypes).unwrap_or_else(|e| panic!("{e}"));
            let xt2 = upload(&x, false);
            let over = run_fused_in_place(dev, &program, &[&xt2, &yt], &shape, &dtypes, &[(0, 0)])
                .unwrap_or_else(|e| panic!("{e}"));
            // On a Vulkan device output 0 took over x's buffer: x now reads as the output. (The
            // host device writes fresh buffers from its pool: in place is a hint there.)
            if device_choice() != DeviceChoice::Cpu {
                let x_after = xt2.to_value(dev).expect("read back");
                let out0 = Value { dtype: DType::F32, ..fresh[0].to_value(dev).expect("read back") };
                compare("x's buffer holds output 0", &x_after, &out0, EXACT);
            }
            for (a, b) in fresh.iter().zip(&over) {
                let (a, b) = (a.to_value(dev).expect("read back"), b.to_value(dev).expect("read back"));
                compare("in place", &b, &a, EXACT);
            }
        }
        // A broadcast input cannot hold the output.
        let x = f32v(&mut rng, &[1, 8], -1.0, 1.0);
        let y = f32v(&mut rng, &[4, 8], -1.0, 1.0);
        let (xt, yt) = (upload(&x, false), upload(&y, false));
        let out =
            run_fused_in_place(dev, &program, &[&xt, &yt], &[4, 8], &[DType::F32, DType::Bool], &[(0, 0)])
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out[0].shape, [4, 8]);
        compare("the broadcast input is untouched", &xt.to_value(dev).expect("read back"), &x, EXACT);
    });
}

#[test]
fn pooling_and_upsampling_match_the_interpreter() {
    on_every_device(|| {
        let mut rng = Rng(10);
        for kind in [PoolKind::Max, PoolKind::Avg] {
            for (k, s, p, h, w) in [(2, 2, 0, 8, 6), (3, 2, 1, 7, 9), (3, 1, 1, 5, 5), (1, 1, 0, 1, 1)] {
                let win = Window { kernel: [k, k], stride: [s, s], pad: [p, p] };
                let (oh, ow) = ((h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1);
                let mut x = f32v(&mut rng, &[2, 3, h, w], -1.0, 1.0);
                x.data.iter_mut().step_by(3).for_each(|v| *v = (*v * 2.0).round()); // ties for max
                let dy = f32v(&mut rng, &[2, 3, oh, ow], -1.0, 1.0);
                let tol = Tol { atol: 1e-6, rtol: 1e-5 };
                check(&Prim::Pool2d { kind, window: win }, &[x.clone()], &[2, 3, oh, ow], DType::F32, tol);
                let tol = Tol { atol: 1e-6, rtol: 1e-5 };
                check(&Prim::Pool2dGrad { kind, window: win }, &[x, dy], &[2, 3, h, w], DType::F32, tol);
            }
        }
        for mode in [UpsampleMode::Nearest, UpsampleMode::Bilinear] {
            for (scale, h, w) in [([2, 2], 4, 5), ([3, 2], 3, 1), ([1, 1], 2, 2), ([2, 3], 1, 1)] {
                let x = f32v(&mut rng, &[2, 2, h, w], -1.0, 1.0);
                let (oh, ow) = (h * scale[0], w * scale[1]);
                let tol = Tol { atol: 1e-6, rtol: 1e-5 };
                check(&Prim::Upsample { mode, scale }, &[x], &[2, 2, oh, ow], DType::F32, tol);
                let dy = f32v(&mut rng, &[2, 2, oh, ow], -1.0, 1.0);
                check(&Prim::UpsampleGrad { mode, scale }, &[dy], &[2, 2, h, w], DType::F32, tol);
            }
        }
    });
}

#[test]
fn generators_match_the_interpreter() {
    on_every_device(|| {
        check(&Prim::Fill { value: F64(1.25) }, &[], &[3, 5], DType::F32, EXACT);
        check(&Prim::Fill { value: F64(0.0) }, &[], &[0, 5], DType::F32, EXACT);
        check(&Prim::Iota { axis: 1 }, &[], &[3, 5, 2], DType::I32, EXACT);
        check(&Prim::Iota { axis: 0 }, &[], &[7], DType::F32, EXACT);
        for seed in [0u64, 42, u64::MAX - 3] {
            for stream in [0u32, 7] {
                let leaves = Leaves { seed, ..Leaves::default() };
                let prim = Prim::Random { dist: Distribution::Uniform, stream };
                let want = interp::eval(
                    &prim,
                    &[],
                    &[1000],
                    DType::F32,
                    &interp::Leaves { seed, ..Default::default() },
                )
                .unwrap_or_else(|e| panic!("{e}"));
                let got = kernels::eval(device(), &prim, &[], &[1000], DType::F32, &leaves)
                    .and_then(|t| t.to_value(device()))
                    .unwrap_or_else(|e| panic!("{e}"));
                // Uniform draws are bit-identical to the host's.
                assert_eq!(got.data, want.data, "uniform draws differ (seed {seed}, stream {stream})");
                let prim = Prim::Random { dist: Distribution::Normal, stream };
                let want = interp::eval(
                    &prim,
                    &[],
                    &[1001],
                    DType::F32,
                    &interp::Leaves { seed, ..Default::default() },
                )
                .unwrap_or_else(|e| panic!("{e}"));
                let got = kernels::eval(device(), &prim, &[], &[1001], DType::F32, &leaves)
                    .and_then(|t| t.to_value(device()))
                    .unwrap_or_else(|e| panic!("{e}"));
                compare("normal draws", &got, &want, Tol { atol: 1e-5, rtol: 1e-5 });
            }
        }
    });
}

#[test]
fn results_are_bit_identical_run_to_run() {
    on_every_device(|| {
        let mut rng = Rng(11);
        let leaves = Leaves { seed: 9, ..Leaves::default() };
        let a = DeviceTensor::from_value(device(), &f32v(&mut rng, &[37, 50], -1.0, 1.0))
            .unwrap_or_else(|e| panic!("{e}"));
        let b = DeviceTensor::from_value(device(), &f32v(&mut rng, &[50, 29], -1.0, 1.0))
            .unwrap_or_else(|e| panic!("{e}"));
        let idx = DeviceTensor::from_value(device(), &i32v(&mut rng, &[300], 0, 4))
            .unwrap_or_else(|e| panic!("{e}"));
        let src = DeviceTensor::from_value(device(), &f32v(&mut rng, &[300, 8], -1.0, 1.0))
            .unwrap_or_else(|e| panic!("{e}"));
        let big = DeviceTensor::from_value(device(), &f32v(&mut rng, &[3, 30000], -1.0, 1.0))
            .unwrap_or_else(|e| panic!("{e}"));
        let run = || -> Vec<Vec<f32>> {
            let d = device();
            let go = |p: Prim, ins: &[&DeviceTensor], shape: &[usize]| {
                kernels::eval(d, &p, ins, shape, DType::F32, &leaves)
                    .and_then(|t| t.to_f32(d))
                    .unwrap_or_else(|e| panic!("{e}"))
            };
            vec![
                go(Prim::Random { dist: Distribution::Normal, stream: 3 }, &[], &[4096]),
                go(Prim::MatMul { transpose_a: false, transpose_b: false }, &[&a, &b], &[37, 29]),
                go(Prim::ScatterAdd { axis: 0 }, &[&idx, &src], &[5, 8]),
                go(Prim::Reduce { op: ReduceOp::Sum, axes: vec![1] }, &[&big], &[3, 1]),
                go(Prim::Reduce { op: ReduceOp::Mean, axes: vec![0, 1] }, &[&big], &[1, 1]),
            ]
        };
        let first = run();
        let second = run();
        for (x, y) in first.iter().zip(&second) {
            let xb: Vec<u32> = x.iter().map(|v| v.to_bits()).collect();
            let yb: Vec<u32> = y.iter().map(|v| v.to_bits()).collect();
            assert_eq!(xb, yb);
        }
    });
}

#[test]
fn zero_size_tensors_launch_nothing_and_do_not_panic() {
    on_every_device(|| {
        let d = device();
        let e = DeviceTensor::from_f32(d, DType::F32, &[0, 3], &[]).unwrap_or_else(|e| panic!("{e}"));
        assert!(e.buffer.is_none());
        let out =
            kernels::eval(d, &Prim::Unary(UnaryOp::Exp), &[&e], &[0, 3], DType::F32, &Leaves::default())
                .unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(out.numel(), 0);
        assert!(out.to_f32(d).unwrap_or_else(|err| panic!("{err}")).is_empty());
    });
}

/// A tensor or scratch buffer larger than the device's largest buffer is refused up front as
/// `TooLarge` (CubeCL would accept the allocation and fail at the next read with "Several
/// failures at once"), and the device works on afterwards.
#[test]
fn oversize_buffers_are_refused_with_a_clear_error() {
    on_every_device(|| {
        let d = device();
        let limit = d.info().max_buffer_bytes;
        let elements = usize::try_from(limit / 4 + 1).unwrap_or(usize::MAX);
        let refused = |r: Result<DeviceTensor, DeviceError>, what: &str| match r {
            Err(DeviceError::TooLarge { limit: l, .. }) => assert_eq!(l, limit, "{what}"),
            other => panic!("{what}: expected TooLarge, got {other:?}"),
        };
        refused(DeviceTensor::empty(d, DType::F32, &[elements]), "empty");
        refused(DeviceTensor::empty(d, DType::F32, &[usize::MAX, 2]), "overflowing shape");
        // One image whose 9x9 im2col columns alone outgrow a buffer: no slicing can help.
        let (h, k) = (128, 9);
        let c = (limit / (4 * (k * k * h * h) as u64) + 1) as usize;
        if c <= 4096 {
            let geo = ConvGeometry { stride: [1, 1], pad: [4, 4], dilation: [1, 1], groups: 1 };
            let x = DeviceTensor::from_f32(d, DType::F32, &[1, c, h, h], &vec![0.5; c * h * h]);
            let w = DeviceTensor::from_f32(d, DType::F32, &[1, c, k, k], &vec![0.5; c * k * k]);
            let (x, w) = (x.unwrap_or_else(|e| panic!("{e}")), w.unwrap_or_else(|e| panic!("{e}")));
            let conv = kernels::eval(
                d,
                &Prim::Conv2d(geo),
                &[&x, &w],
                &[1, 1, h, h],
                DType::F32,
                &Leaves::default(),
            );
            refused(conv, "conv2d");
        }
        let ok = DeviceTensor::from_f32(d, DType::F32, &[3], &[1.0, 2.0, 3.0])
            .and_then(|t| {
                kernels::eval(d, &Prim::Unary(UnaryOp::Neg), &[&t], &[3], DType::F32, &Leaves::default())
            })
            .and_then(|t| t.to_f32(d))
            .unwrap_or_else(|e| panic!("the device failed after a refusal: {e}"));
        assert_eq!(ok, [-1.0, -2.0, -3.0]);
    });
}

/// A fused kernel binding more buffers than the device allows is refused before launch (the
/// planner keeps every group within `fuse::MAX_FUSED_BUFFERS`; past the limit the pipeline
/// would fail and the next read report only "Several failures at once").
#[test]
fn a_fused_kernel_past_the_binding_limit_is_refused() {
    on_every_device(|| {
        use genc_runtime::kernels::elementwise::{EwOp, FusedProgram, Instr, run_fused};
        // The host device binds nothing: it has no such limit.
        if device_choice() == DeviceChoice::Cpu {
            return;
        }
        let d = device();
        let n = d.info().max_kernel_buffers as usize;
        let x = DeviceTensor::from_f32(d, DType::F32, &[4], &[1.0; 4]).unwrap_or_else(|e| panic!("{e}"));
        let inputs: Vec<&DeviceTensor> = vec![&x; n];
        let instrs: Vec<Instr> = (1..n)
            .map(|k| Instr { op: EwOp::Add, a: if k == 1 { 0 } else { n + k - 2 }, b: k, c: 0 })
            .collect();
        let program = FusedProgram { n_inputs: n, instrs, outputs: vec![2 * n - 2] };
        match run_fused(d, &program, &inputs, &[4], &[DType::F32]) {
            Err(DeviceError::Kernel { reason, .. }) => assert!(reason.contains("binds"), "{reason}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
        // Within the limit the same sum runs.
        let m = genc_compiler::fuse::MAX_FUSED_BUFFERS - 1;
        let instrs: Vec<Instr> = (1..m)
            .map(|k| Instr { op: EwOp::Add, a: if k == 1 { 0 } else { m + k - 2 }, b: k, c: 0 })
            .collect();
        let program = FusedProgram { n_inputs: m, instrs, outputs: vec![2 * m - 2] };
        let sum = run_fused(d, &program, &vec![&x; m], &[4], &[DType::F32])
            .and_then(|mut o| o.remove(0).to_f32(d))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(sum, [m as f32; 4]);
    });
}

#[test]
fn the_device_reports_what_it_is() {
    on_every_device(|| {
        let info = device().info();
        assert!(!info.adapter.name.is_empty());
        let compiler = if device_choice() == DeviceChoice::Cpu { "host" } else { "wgpu" };
        assert!(info.compiler.starts_with(compiler), "{}", info.compiler);
        assert!(info.max_buffer_bytes >= 1 << 20, "{info}");
        eprintln!("{info}");
    });
}
