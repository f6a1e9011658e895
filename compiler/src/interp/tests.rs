//! Tests of the reference interpreter: hand-computed cases for each op group, adjoint
//! identities that pin the backward ops to their forward ops, determinism of `Random`, and
//! bad or empty inputs that must give errors or empty results, never panics.

use super::elementwise::{erf_series, erfc_continued_fraction};
use super::*;
use crate::prim::{
    BinaryOp, ConvGeometry, DType, Distribution, F64, PoolKind, Prim, ReduceOp, ScanOp, UnaryOp,
    UpsampleMode, Window,
};

// ---- helpers -------------------------------------------------------------------------

fn try_ev(prim: &Prim, inputs: &[&Value], shape: &[usize], dtype: DType) -> Result<Value, EvalError> {
    eval(prim, inputs, shape, dtype, &Leaves::default())
}

fn ev(prim: &Prim, inputs: &[&Value], shape: &[usize], dtype: DType) -> Value {
    try_ev(prim, inputs, shape, dtype).unwrap_or_else(|e| panic!("{e}"))
}

fn kind(r: Result<Value, EvalError>) -> ErrorKind {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.kind,
    }
}

fn f(shape: &[usize], data: &[f64]) -> Value {
    Value::f32(shape, data).unwrap_or_else(|e| panic!("{e}"))
}

fn i(shape: &[usize], data: &[i32]) -> Value {
    Value::i32(shape, data).unwrap_or_else(|e| panic!("{e}"))
}

fn b(shape: &[usize], data: &[bool]) -> Value {
    Value::bool(shape, data).unwrap_or_else(|e| panic!("{e}"))
}

/// Deterministic test data in `[-1, 1)`.
fn rand(shape: &[usize], stream: u32) -> Value {
    let n: usize = shape.iter().product();
    let key = random::stream_key(12345, stream);
    let data: Vec<f64> = (0..n as u32).map(|k| 2.0 * f64::from(random::uniform(key, k)) - 1.0).collect();
    f(shape, &data)
}

fn inner(a: &Value, b: &Value) -> f64 {
    assert_eq!(a.shape, b.shape, "inner product of different shapes");
    a.data.iter().zip(&b.data).map(|(x, y)| x * y).sum()
}

fn assert_close(a: f64, b: f64, tol: f64) {
    assert!((a - b).abs() <= tol * a.abs().max(b.abs()).max(1.0), "{a} != {b} (tolerance {tol})");
}

fn assert_all_close(got: &Value, want: &[f64], tol: f64) {
    assert_eq!(got.data.len(), want.len(), "{got:?}");
    for (g, w) in got.data.iter().zip(want) {
        assert_close(*g, *w, tol);
    }
}

fn unary(op: UnaryOp, x: &Value) -> Value {
    ev(&Prim::Unary(op), &[x], &x.shape.clone(), x.dtype)
}

fn binary(op: BinaryOp, a: &Value, c: &Value, shape: &[usize], dtype: DType) -> Value {
    ev(&Prim::Binary(op), &[a, c], shape, dtype)
}

fn geometry(stride: [usize; 2], pad: [usize; 2], dilation: [usize; 2], groups: usize) -> ConvGeometry {
    ConvGeometry { stride, pad, dilation, groups }
}

fn conv(x: &Value, w: &Value, g: ConvGeometry) -> Value {
    let out = |axis: usize| {
        (x.shape[2 + axis] + 2 * g.pad[axis] - g.dilation[axis] * (w.shape[2 + axis] - 1) - 1)
            / g.stride[axis]
            + 1
    };
    ev(&Prim::Conv2d(g), &[x, w], &[x.shape[0], w.shape[0], out(0), out(1)], DType::F32)
}

// ---- leaves ----------------------------------------------------------------------------

#[test]
fn leaves_read_their_tables_and_check_the_type() {
    let a = f(&[2], &[1.0, 2.0]);
    let c = i(&[1], &[7]);
    let tables = [a.clone(), c.clone()];
    let leaves = Leaves { seed: 0, inputs: &tables, params: &tables[1..], buffers: &[] };
    let got = eval(&Prim::Input { index: 1 }, &[], &[1], DType::I32, &leaves);
    assert_eq!(got, Ok(c.clone()));
    assert_eq!(eval(&Prim::Param { index: 0 }, &[], &[1], DType::I32, &leaves), Ok(c));
    let missing = eval(&Prim::Buffer { index: 0 }, &[], &[2], DType::F32, &leaves);
    assert_eq!(kind(missing), ErrorKind::MissingLeaf { table: "buffer", index: 0, len: 0 });
    assert!(matches!(
        kind(eval(&Prim::Input { index: 0 }, &[], &[3], DType::F32, &leaves)),
        ErrorKind::Shape(_)
    ));
    assert!(matches!(
        kind(eval(&Prim::Input { index: 0 }, &[], &[2], DType::I32, &leaves)),
        ErrorKind::DType(_)
    ));
}

#[test]
fn fill_and_iota() {
    let v = ev(&Prim::Fill { value: F64(2.5) }, &[], &[2, 2], DType::F32);
    assert_eq!(v.data, [2.5; 4]);
    assert!(try_ev(&Prim::Fill { value: F64(2.5) }, &[], &[2], DType::I32).is_err());
    assert!(try_ev(&Prim::Fill { value: F64(2.0) }, &[], &[2], DType::Bool).is_err());
    let v = ev(&Prim::Iota { axis: 1 }, &[], &[2, 3], DType::I32);
    assert_eq!(v.data, [0.0, 1.0, 2.0, 0.0, 1.0, 2.0]);
    let v = ev(&Prim::Iota { axis: 0 }, &[], &[2, 3], DType::F32);
    assert_eq!(v.data, [0.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
    assert!(try_ev(&Prim::Iota { axis: 2 }, &[], &[2, 3], DType::F32).is_err());
}

#[test]
fn random_is_the_shared_counter_based_generator() {
    let leaves = |seed| Leaves { seed, ..Leaves::default() };
    let uniform = Prim::Random { dist: Distribution::Uniform, stream: 3 };
    let a = eval(&uniform, &[], &[4, 5], DType::F32, &leaves(9)).unwrap_or_else(|e| panic!("{e}"));
    let key = random::stream_key(9, 3);
    for (k, &x) in a.data.iter().enumerate() {
        assert_eq!(x, f64::from(random::uniform(key, k as u32)));
    }
    assert_eq!(eval(&uniform, &[], &[4, 5], DType::F32, &leaves(9)), Ok(a.clone()));
    let other_stream = Prim::Random { dist: Distribution::Uniform, stream: 4 };
    let c = eval(&other_stream, &[], &[4, 5], DType::F32, &leaves(9)).unwrap_or_else(|e| panic!("{e}"));
    assert!(a.data.iter().zip(&c.data).all(|(x, y)| x != y));
    let d = eval(&uniform, &[], &[4, 5], DType::F32, &leaves(10)).unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(a.data, d.data);

    let normal = Prim::Random { dist: Distribution::Normal, stream: 0 };
    let n = eval(&normal, &[], &[100, 100], DType::F32, &leaves(1)).unwrap_or_else(|e| panic!("{e}"));
    let key = random::stream_key(1, 0);
    assert_eq!(n.data[4321], f64::from(random::normal(key, 4321)));
    let mean = n.data.iter().sum::<f64>() / 1e4;
    let var = n.data.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 1e4;
    assert!(mean.abs() < 0.03 && (var - 1.0).abs() < 0.05, "mean {mean}, variance {var}");
    assert!(try_ev(&normal, &[], &[2], DType::I32).is_err());
}

// ---- element-wise ----------------------------------------------------------------------

#[test]
fn erf_matches_known_values() {
    // math.erf of CPython (the C library's erf, correctly rounded or within an ulp).
    let known = [
        (1e-08, 1.1283791670955126e-08),
        (0.01, 0.011283415555849616),
        (0.1, 0.1124629160182849),
        (0.3, 0.3286267594591274),
        (0.5, 0.5204998778130465),
        (0.8, 0.7421009647076605),
        (1.0, 0.8427007929497149),
        (1.3, 0.9340079449406524),
        (2.0, 0.9953222650189527),
        (2.2, 0.9981371537020182),
        (2.9, 0.9999589021219005),
        (3.0, 0.9999779095030014),
        (3.1, 0.9999883513426328),
        (3.5, 0.9999992569016276),
        (4.5, 0.9999999998033839),
        (5.9, 0.9999999999999999),
    ];
    for (x, want) in known {
        let got = erf(x);
        assert!((got - want).abs() <= 1e-15 * want, "erf({x}) = {got}, want {want}");
        assert_eq!(erf(-x), -got);
    }
    // math.erfc: the continued fraction is accurate in relative terms where it is used.
    for (x, want) in
        [(3.0, 2.2090496998585438e-05), (3.3, 3.0577097964381654e-06), (5.0, 1.5374597944280351e-12)]
    {
        let got = erfc_continued_fraction(x);
        assert!((got - want).abs() <= 1e-13 * want, "erfc({x}) = {got}, want {want}");
    }
    // The two methods agree where they meet.
    assert!((erf_series(3.0) - (1.0 - erfc_continued_fraction(3.0))).abs() < 1e-15);
    assert_eq!(erf(f64::INFINITY), 1.0);
    assert_eq!(erf(f64::NEG_INFINITY), -1.0);
    assert_eq!(erf(0.0), 0.0);
    assert!(erf(f64::NAN).is_nan());
    // Through eval:
    let v = unary(UnaryOp::Erf, &f(&[2], &[1.0, -2.0]));
    assert_all_close(&v, &[0.8427007929497149, -0.9953222650189527], 1e-15);
}

#[test]
fn float_unary_ops() {
    let x = f(&[5], &[0.5, 1.5, 2.5, -0.5, -2.5]);
    assert_eq!(unary(UnaryOp::Round, &x).data, [1.0, 2.0, 3.0, -1.0, -3.0]);
    assert_eq!(unary(UnaryOp::Floor, &x).data, [0.0, 1.0, 2.0, -1.0, -3.0]);
    assert_eq!(unary(UnaryOp::Ceil, &x).data, [1.0, 2.0, 3.0, -0.0, -2.0]);
    assert_eq!(unary(UnaryOp::Relu, &x).data, [0.5, 1.5, 2.5, 0.0, 0.0]);
    assert_eq!(unary(UnaryOp::Sign, &f(&[3], &[-3.0, 0.0, 2.0])).data, [-1.0, 0.0, 1.0]);
    assert_eq!(unary(UnaryOp::Sigmoid, &f(&[3], &[0.0, -800.0, 800.0])).data, [0.5, 0.0, 1.0]);
    assert_eq!(unary(UnaryOp::Log1p, &f(&[1], &[1e-20])).data, [1e-20]);
    assert_eq!(unary(UnaryOp::Rsqrt, &f(&[1], &[4.0])).data, [0.5]);
    assert_eq!(unary(UnaryOp::Recip, &f(&[1], &[-4.0])).data, [-0.25]);
    assert!(unary(UnaryOp::Relu, &f(&[1], &[f64::NAN])).data[0].is_nan());
    assert!(unary(UnaryOp::Log, &f(&[1], &[-1.0])).data[0].is_nan());
}

#[test]
fn unary_dtype_rules() {
    let x = i(&[4], &[-3, 0, 5, i32::MIN]);
    assert_eq!(unary(UnaryOp::Neg, &x).data, [3.0, 0.0, -5.0, f64::from(i32::MIN)]);
    assert_eq!(unary(UnaryOp::Abs, &x).data, [3.0, 0.0, 5.0, f64::from(i32::MIN)]);
    assert_eq!(unary(UnaryOp::Sign, &x).data, [-1.0, 0.0, 1.0, -1.0]);
    assert_eq!(unary(UnaryOp::Relu, &x).data, [0.0, 0.0, 5.0, 0.0]);
    assert_eq!(unary(UnaryOp::Not, &b(&[2], &[true, false])).data, [0.0, 1.0]);
    assert!(matches!(kind(try_ev(&Prim::Unary(UnaryOp::Exp), &[&x], &[4], DType::I32)), ErrorKind::DType(_)));
    assert!(try_ev(&Prim::Unary(UnaryOp::Not), &[&f(&[1], &[1.0])], &[1], DType::F32).is_err());
    assert!(try_ev(&Prim::Unary(UnaryOp::Neg), &[&b(&[1], &[true])], &[1], DType::Bool).is_err());
}

#[test]
fn integer_division_floors() {
    let a = i(&[5], &[7, -7, 7, -7, 0]);
    let d = i(&[5], &[2, 2, -2, -2, 3]);
    assert_eq!(binary(BinaryOp::Div, &a, &d, &[5], DType::I32).data, [3.0, -4.0, -4.0, 3.0, 0.0]);
    assert_eq!(binary(BinaryOp::Rem, &a, &d, &[5], DType::I32).data, [1.0, 1.0, -1.0, -1.0, 0.0]);
    let zero = i(&[5], &[1, 1, 0, 1, 1]);
    assert_eq!(
        kind(try_ev(&Prim::Binary(BinaryOp::Div), &[&a, &zero], &[5], DType::I32)),
        ErrorKind::DivisionByZero
    );
    assert_eq!(
        kind(try_ev(&Prim::Binary(BinaryOp::Rem), &[&a, &zero], &[5], DType::I32)),
        ErrorKind::DivisionByZero
    );
    // Wrapping, as on a device.
    let max = i(&[1], &[i32::MAX]);
    let one = i(&[1], &[1]);
    assert_eq!(binary(BinaryOp::Add, &max, &one, &[1], DType::I32).data, [f64::from(i32::MIN)]);
    let min = i(&[1], &[i32::MIN]);
    let minus_one = i(&[1], &[-1]);
    assert_eq!(binary(BinaryOp::Div, &min, &minus_one, &[1], DType::I32).data, [f64::from(i32::MIN)]);
    let p = binary(BinaryOp::Pow, &i(&[3], &[3, -2, 0]), &i(&[3], &[4, 3, 0]), &[3], DType::I32);
    assert_eq!(p.data, [81.0, -8.0, 1.0]);
    assert!(try_ev(&Prim::Binary(BinaryOp::Pow), &[&one, &minus_one], &[1], DType::I32).is_err());
    // Floats: true division, floor modulo with the divisor's sign.
    let x = f(&[3], &[-7.5, 7.5, 1.0]);
    let y = f(&[3], &[2.0, -2.0, 0.0]);
    let r = binary(BinaryOp::Rem, &x, &y, &[3], DType::F32);
    assert_eq!(&r.data[..2], [0.5, -0.5]);
    assert!(r.data[2].is_nan());
    assert_eq!(binary(BinaryOp::Div, &x, &y, &[3], DType::F32).data, [-3.75, -3.75, f64::INFINITY]);
}

#[test]
fn binary_ops_broadcast_and_compare() {
    let col = f(&[2, 1], &[1.0, 2.0]);
    let row = f(&[1, 3], &[10.0, 20.0, 30.0]);
    let s = binary(BinaryOp::Add, &col, &row, &[2, 3], DType::F32);
    assert_eq!(s.data, [11.0, 21.0, 31.0, 12.0, 22.0, 32.0]);
    let s = binary(BinaryOp::Sub, &row, &col, &[2, 3], DType::F32);
    assert_eq!(s.data, [9.0, 19.0, 29.0, 8.0, 18.0, 28.0]);
    let lt = binary(BinaryOp::Lt, &f(&[3], &[1.0, 2.0, 3.0]), &f(&[1], &[2.0]), &[3], DType::Bool);
    assert_eq!((lt.dtype, lt.data), (DType::Bool, vec![1.0, 0.0, 0.0]));
    let ge = binary(BinaryOp::Ge, &i(&[3], &[1, 2, 3]), &i(&[1], &[2]), &[3], DType::Bool);
    assert_eq!(ge.data, [0.0, 1.0, 1.0]);
    let p = b(&[4], &[true, true, false, false]);
    let q = b(&[4], &[true, false, true, false]);
    assert_eq!(binary(BinaryOp::And, &p, &q, &[4], DType::Bool).data, [1.0, 0.0, 0.0, 0.0]);
    assert_eq!(binary(BinaryOp::Or, &p, &q, &[4], DType::Bool).data, [1.0, 1.0, 1.0, 0.0]);
    let m = binary(BinaryOp::Max, &f(&[2], &[1.0, f64::NAN]), &f(&[2], &[3.0, 0.0]), &[2], DType::F32);
    assert_eq!(m.data[0], 3.0);
    assert!(m.data[1].is_nan());
    assert_eq!(
        binary(BinaryOp::Pow, &f(&[1], &[2.0]), &f(&[1], &[0.5]), &[1], DType::F32).data,
        [2f64.sqrt()]
    );
    // Not broadcastable, ranks differ, dtypes differ, logic on floats.
    let bad = [
        try_ev(
            &Prim::Binary(BinaryOp::Add),
            &[&f(&[2, 3], &[0.0; 6]), &f(&[3, 2], &[0.0; 6])],
            &[2, 3],
            DType::F32,
        ),
        try_ev(
            &Prim::Binary(BinaryOp::Add),
            &[&f(&[3], &[0.0; 3]), &f(&[1, 3], &[0.0; 3])],
            &[1, 3],
            DType::F32,
        ),
        try_ev(&Prim::Binary(BinaryOp::Add), &[&f(&[1], &[0.0]), &i(&[1], &[0])], &[1], DType::F32),
        try_ev(&Prim::Binary(BinaryOp::And), &[&f(&[1], &[0.0]), &f(&[1], &[0.0])], &[1], DType::F32),
        try_ev(&Prim::Binary(BinaryOp::Add), &[&b(&[1], &[true]), &b(&[1], &[true])], &[1], DType::Bool),
    ];
    for r in bad {
        assert!(r.is_err(), "{r:?}");
    }
}

#[test]
fn select_and_cast() {
    let cond = b(&[2, 1], &[true, false]);
    let a = f(&[1, 2], &[1.0, 2.0]);
    let c = f(&[2, 2], &[5.0, 6.0, 7.0, 8.0]);
    assert_eq!(ev(&Prim::Select, &[&cond, &a, &c], &[2, 2], DType::F32).data, [1.0, 2.0, 7.0, 8.0]);
    assert!(try_ev(&Prim::Select, &[&a, &a, &c], &[2, 2], DType::F32).is_err());
    let x = f(&[6], &[-1.7, 1.7, 2.5, f64::NAN, 1e10, 0.0]);
    let to_i = ev(&Prim::Cast { to: DType::I32 }, &[&x], &[6], DType::I32);
    assert_eq!(to_i.data, [-1.0, 1.0, 2.0, 0.0, f64::from(i32::MAX), 0.0]);
    let to_b = ev(&Prim::Cast { to: DType::Bool }, &[&x], &[6], DType::Bool);
    assert_eq!(to_b.data, [1.0, 1.0, 1.0, 1.0, 1.0, 0.0]);
    let back = ev(&Prim::Cast { to: DType::F32 }, &[&to_b], &[6], DType::F32);
    assert_eq!(back.data, [1.0, 1.0, 1.0, 1.0, 1.0, 0.0]);
    assert!(try_ev(&Prim::Cast { to: DType::I32 }, &[&x], &[6], DType::F32).is_err());
}

// ---- reductions and scans --------------------------------------------------------------

#[test]
fn reductions_keep_axes() {
    let x = f(&[2, 3], &[1.0, 5.0, 3.0, 4.0, 2.0, 6.0]);
    let red = |op, axes: &[usize], shape: &[usize], dtype| {
        ev(&Prim::Reduce { op, axes: axes.to_vec() }, &[&x], shape, dtype).data
    };
    assert_eq!(red(ReduceOp::Sum, &[1], &[2, 1], DType::F32), [9.0, 12.0]);
    assert_eq!(red(ReduceOp::Sum, &[0], &[1, 3], DType::F32), [5.0, 7.0, 9.0]);
    assert_eq!(red(ReduceOp::Mean, &[0, 1], &[1, 1], DType::F32), [3.5]);
    assert_eq!(red(ReduceOp::Max, &[0], &[1, 3], DType::F32), [4.0, 5.0, 6.0]);
    assert_eq!(red(ReduceOp::Min, &[1], &[2, 1], DType::F32), [1.0, 2.0]);
    assert_eq!(red(ReduceOp::Prod, &[1], &[2, 1], DType::F32), [15.0, 48.0]);
    assert_eq!(red(ReduceOp::ArgMax, &[1], &[2, 1], DType::I32), [1.0, 2.0]);
    assert_eq!(red(ReduceOp::ArgMin, &[0], &[1, 3], DType::I32), [0.0, 1.0, 0.0]);
    // Ties go to the lowest index.
    let t = f(&[2, 3], &[3.0, 1.0, 3.0, 2.0, 1.0, 1.0]);
    let arg = |op| ev(&Prim::Reduce { op, axes: vec![1] }, &[&t], &[2, 1], DType::I32).data;
    assert_eq!(arg(ReduceOp::ArgMax), [0.0, 0.0]);
    assert_eq!(arg(ReduceOp::ArgMin), [1.0, 1.0]);
    // i32 and bool reductions.
    let n = i(&[3], &[2, -3, 4]);
    assert_eq!(ev(&Prim::Reduce { op: ReduceOp::Sum, axes: vec![0] }, &[&n], &[1], DType::I32).data, [3.0]);
    let m = b(&[3], &[false, true, false]);
    assert_eq!(ev(&Prim::Reduce { op: ReduceOp::Max, axes: vec![0] }, &[&m], &[1], DType::Bool).data, [1.0]);
    assert_eq!(ev(&Prim::Reduce { op: ReduceOp::Min, axes: vec![0] }, &[&m], &[1], DType::Bool).data, [0.0]);
    // Bad axes, two axes for an arg-reduction, mean of i32, wrong kept shape.
    assert!(
        try_ev(&Prim::Reduce { op: ReduceOp::Sum, axes: vec![1, 0] }, &[&x], &[1, 1], DType::F32).is_err()
    );
    assert!(try_ev(&Prim::Reduce { op: ReduceOp::Sum, axes: vec![2] }, &[&x], &[2, 3], DType::F32).is_err());
    assert!(
        try_ev(&Prim::Reduce { op: ReduceOp::ArgMax, axes: vec![0, 1] }, &[&x], &[1, 1], DType::I32).is_err()
    );
    assert!(try_ev(&Prim::Reduce { op: ReduceOp::Mean, axes: vec![0] }, &[&n], &[1], DType::I32).is_err());
    assert!(try_ev(&Prim::Reduce { op: ReduceOp::Sum, axes: vec![1] }, &[&x], &[2], DType::F32).is_err());
}

#[test]
fn empty_reductions_give_identities() {
    let x = f(&[2, 0], &[]);
    let red = |op| try_ev(&Prim::Reduce { op, axes: vec![1] }, &[&x], &[2, 1], DType::F32);
    assert_eq!(red(ReduceOp::Sum).map(|v| v.data), Ok(vec![0.0, 0.0]));
    assert_eq!(red(ReduceOp::Prod).map(|v| v.data), Ok(vec![1.0, 1.0]));
    assert_eq!(red(ReduceOp::Max).map(|v| v.data), Ok(vec![f64::NEG_INFINITY; 2]));
    assert!(red(ReduceOp::Mean).is_ok_and(|v| v.data.iter().all(|x| x.is_nan())));
    assert!(
        try_ev(&Prim::Reduce { op: ReduceOp::ArgMax, axes: vec![1] }, &[&x], &[2, 1], DType::I32).is_err()
    );
    // Reducing the non-empty axis of an empty tensor is an empty result.
    let v = ev(&Prim::Reduce { op: ReduceOp::ArgMax, axes: vec![0] }, &[&x], &[1, 0], DType::I32);
    assert!(v.data.is_empty());
}

#[test]
fn scans_are_inclusive() {
    let x = f(&[2, 2], &[1.0, 2.0, 3.0, 4.0]);
    assert_eq!(
        ev(&Prim::Scan { op: ScanOp::Sum, axis: 1 }, &[&x], &[2, 2], DType::F32).data,
        [1.0, 3.0, 3.0, 7.0]
    );
    assert_eq!(
        ev(&Prim::Scan { op: ScanOp::Prod, axis: 0 }, &[&x], &[2, 2], DType::F32).data,
        [1.0, 2.0, 3.0, 8.0]
    );
    let x = f(&[4], &[0.9, 0.8, 0.5, 0.5]);
    assert_all_close(
        &ev(&Prim::Scan { op: ScanOp::Prod, axis: 0 }, &[&x], &[4], DType::F32),
        &[0.9, 0.72, 0.36, 0.18],
        1e-15,
    );
    assert!(try_ev(&Prim::Scan { op: ScanOp::Sum, axis: 1 }, &[&x], &[4], DType::F32).is_err());
}

// ---- movement --------------------------------------------------------------------------

#[test]
fn reshape_permute_broadcast() {
    let x = f(&[2, 3], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    assert_eq!(ev(&Prim::Reshape, &[&x], &[3, 2], DType::F32).data, x.data);
    assert!(try_ev(&Prim::Reshape, &[&x], &[4, 2], DType::F32).is_err());
    let t = ev(&Prim::Permute { perm: vec![1, 0] }, &[&x], &[3, 2], DType::F32);
    assert_eq!(t.data, [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
    let y = rand(&[2, 3, 4], 1);
    let p = ev(&Prim::Permute { perm: vec![2, 0, 1] }, &[&y], &[4, 2, 3], DType::F32);
    for (a, c, d) in [(0, 0, 0), (3, 1, 2), (1, 0, 2), (2, 1, 1)] {
        assert_eq!(p.get(&[a, c, d]), y.get(&[c, d, a]));
    }
    assert!(try_ev(&Prim::Permute { perm: vec![0, 0] }, &[&x], &[2, 2], DType::F32).is_err());
    assert!(try_ev(&Prim::Permute { perm: vec![0] }, &[&x], &[2], DType::F32).is_err());
    let r = f(&[1, 3], &[1.0, 2.0, 3.0]);
    assert_eq!(ev(&Prim::Broadcast, &[&r], &[2, 3], DType::F32).data, [1.0, 2.0, 3.0, 1.0, 2.0, 3.0]);
    assert!(try_ev(&Prim::Broadcast, &[&x], &[4, 3], DType::F32).is_err());
    assert!(try_ev(&Prim::Broadcast, &[&r], &[2, 1, 3], DType::F32).is_err());
}

#[test]
fn slice_pad_concat() {
    let x = f(&[2, 5], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]);
    let s = ev(&Prim::Slice { axis: 1, start: 1, step: 2 }, &[&x], &[2, 2], DType::F32);
    assert_eq!(s.data, [1.0, 3.0, 6.0, 8.0]);
    let s = ev(&Prim::Slice { axis: 0, start: 1, step: 1 }, &[&x], &[1, 5], DType::F32);
    assert_eq!(s.data, [5.0, 6.0, 7.0, 8.0, 9.0]);
    assert!(try_ev(&Prim::Slice { axis: 1, start: 1, step: 2 }, &[&x], &[2, 3], DType::F32).is_err());
    assert!(
        try_ev(&Prim::Slice { axis: 1, start: usize::MAX, step: 1 }, &[&x], &[2, 1], DType::F32).is_err()
    );
    assert!(try_ev(&Prim::Slice { axis: 1, start: 0, step: 0 }, &[&x], &[2, 1], DType::F32).is_err());
    assert!(
        try_ev(&Prim::Slice { axis: 1, start: 1, step: usize::MAX }, &[&x], &[2, 2], DType::F32).is_err()
    );
    let empty = ev(&Prim::Slice { axis: 1, start: 9, step: 1 }, &[&x], &[2, 0], DType::F32);
    assert!(empty.data.is_empty());

    let y = f(&[1, 2], &[1.0, 2.0]);
    let p = ev(&Prim::Pad { pads: vec![(1, 0), (0, 2)], value: F64(9.0) }, &[&y], &[2, 4], DType::F32);
    assert_eq!(p.data, [9.0, 9.0, 9.0, 9.0, 1.0, 2.0, 9.0, 9.0]);
    assert!(try_ev(&Prim::Pad { pads: vec![(1, 0)], value: F64(0.0) }, &[&y], &[2, 2], DType::F32).is_err());
    let iy = i(&[1], &[1]);
    assert!(try_ev(&Prim::Pad { pads: vec![(1, 0)], value: F64(0.5) }, &[&iy], &[2], DType::I32).is_err());

    let a = f(&[2, 1], &[1.0, 2.0]);
    let c = f(&[2, 2], &[3.0, 4.0, 5.0, 6.0]);
    let e = f(&[2, 0], &[]);
    let cat = ev(&Prim::Concat { axis: 1 }, &[&a, &e, &c, &a], &[2, 4], DType::F32);
    assert_eq!(cat.data, [1.0, 3.0, 4.0, 1.0, 2.0, 5.0, 6.0, 2.0]);
    let cat = ev(&Prim::Concat { axis: 0 }, &[&c, &c], &[4, 2], DType::F32);
    assert_eq!(cat.data, [3.0, 4.0, 5.0, 6.0, 3.0, 4.0, 5.0, 6.0]);
    assert!(try_ev(&Prim::Concat { axis: 0 }, &[&a, &c], &[4, 1], DType::F32).is_err());
    assert!(try_ev(&Prim::Concat { axis: 0 }, &[], &[0], DType::F32).is_err());
}

#[test]
fn gather_takes_and_scatter_add_sums_duplicates() {
    let x = f(&[3, 2], &[0.0, 1.0, 10.0, 11.0, 20.0, 21.0]);
    let idx = i(&[3], &[2, 0, 2]);
    let g = ev(&Prim::Gather { axis: 0 }, &[&x, &idx], &[3, 2], DType::F32);
    assert_eq!(g.data, [20.0, 21.0, 0.0, 1.0, 20.0, 21.0]);
    let idx2 = i(&[2, 2], &[1, 1, 0, 1]);
    let g = ev(&Prim::Gather { axis: 1 }, &[&x, &idx2], &[3, 2, 2], DType::F32);
    assert_eq!(g.data, [1.0, 1.0, 0.0, 1.0, 11.0, 11.0, 10.0, 11.0, 21.0, 21.0, 20.0, 21.0]);
    let s = ev(
        &Prim::ScatterAdd { axis: 0 },
        &[&idx, &f(&[3, 2], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0])],
        &[3, 2],
        DType::F32,
    );
    assert_eq!(s.data, [3.0, 4.0, 0.0, 0.0, 6.0, 8.0]);
    // Out-of-range and negative indices, float indices, a source of the wrong shape.
    let oob = kind(try_ev(&Prim::Gather { axis: 0 }, &[&x, &i(&[1], &[3])], &[1, 2], DType::F32));
    assert_eq!(oob, ErrorKind::IndexOutOfRange { index: 3, extent: 3 });
    assert!(try_ev(&Prim::Gather { axis: 0 }, &[&x, &i(&[1], &[-1])], &[1, 2], DType::F32).is_err());
    assert!(try_ev(&Prim::Gather { axis: 0 }, &[&x, &f(&[1], &[0.0])], &[1, 2], DType::F32).is_err());
    assert!(try_ev(&Prim::ScatterAdd { axis: 0 }, &[&i(&[3], &[2, 0, 3]), &x], &[3, 2], DType::F32).is_err());
    assert!(
        try_ev(&Prim::ScatterAdd { axis: 0 }, &[&idx, &f(&[2, 2], &[0.0; 4])], &[3, 2], DType::F32).is_err()
    );
}

// ---- contractions ----------------------------------------------------------------------

#[test]
fn matmul_by_hand_and_by_permute() {
    let a = f(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let c = f(&[3, 2], &[7.0, 8.0, 9.0, 10.0, 11.0, 12.0]);
    let mm = |ta, tb| Prim::MatMul { transpose_a: ta, transpose_b: tb };
    assert_eq!(ev(&mm(false, false), &[&a, &c], &[2, 2], DType::F32).data, [58.0, 64.0, 139.0, 154.0]);
    assert_eq!(
        ev(&mm(true, true), &[&a, &c], &[3, 3], DType::F32).data,
        [39.0, 49.0, 59.0, 54.0, 68.0, 82.0, 69.0, 87.0, 105.0]
    );
    assert!(try_ev(&mm(false, true), &[&a, &c], &[2, 3], DType::F32).is_err());

    // Each transpose flag equals a Permute of the last two axes, batched.
    let (bt, m, k, n) = (3, 4, 5, 2);
    let x = rand(&[bt, m, k], 1);
    let y = rand(&[bt, k, n], 2);
    let swap = |v: &Value| {
        let s = &v.shape;
        ev(&Prim::Permute { perm: vec![0, 2, 1] }, &[v], &[s[0], s[2], s[1]], DType::F32)
    };
    let (xt, yt) = (swap(&x), swap(&y));
    let plain = ev(&mm(false, false), &[&x, &y], &[bt, m, n], DType::F32);
    assert_eq!(ev(&mm(true, false), &[&xt, &y], &[bt, m, n], DType::F32), plain);
    assert_eq!(ev(&mm(false, true), &[&x, &yt], &[bt, m, n], DType::F32), plain);
    assert_eq!(ev(&mm(true, true), &[&xt, &yt], &[bt, m, n], DType::F32), plain);
    // (x y)ᵀ = yᵀ xᵀ.
    let transposed = ev(&mm(true, true), &[&y, &x], &[bt, n, m], DType::F32);
    assert_eq!(swap(&plain), transposed);
    // Batch axes must be equal.
    assert!(try_ev(&mm(false, false), &[&x, &rand(&[1, k, n], 3)], &[bt, m, n], DType::F32).is_err());
    // An empty contraction is zeros.
    let z = ev(&mm(false, false), &[&f(&[2, 0], &[]), &f(&[0, 3], &[])], &[2, 3], DType::F32);
    assert_eq!(z.data, [0.0; 6]);
}

#[test]
fn conv2d_by_hand() {
    let x = f(&[1, 1, 3, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]);
    let w = f(&[1, 1, 2, 2], &[1.0, 2.0, 3.0, 4.0]);
    assert_eq!(conv(&x, &w, geometry([1, 1], [0, 0], [1, 1], 1)).data, [37.0, 47.0, 67.0, 77.0]);
    let ones = f(&[1, 1, 3, 3], &[1.0; 9]);
    let same = conv(&x, &ones, geometry([1, 1], [1, 1], [1, 1], 1));
    assert_eq!(same.data, [12.0, 21.0, 16.0, 27.0, 45.0, 33.0, 24.0, 39.0, 28.0]);
    let strided = conv(&x, &ones, geometry([2, 2], [1, 1], [1, 1], 1));
    assert_eq!(strided.data, [12.0, 16.0, 24.0, 28.0]);
    // Dilation 2: the 2×2 kernel reads the corners.
    assert_eq!(conv(&x, &w, geometry([1, 1], [0, 0], [2, 2], 1)).data, [1.0 + 6.0 + 21.0 + 36.0]);
    // Groups: each output channel sees its own input channel.
    let x2 = f(&[1, 2, 1, 1], &[2.0, 3.0]);
    assert_eq!(
        conv(&x2, &f(&[2, 1, 1, 1], &[10.0, 100.0]), geometry([1, 1], [0, 0], [1, 1], 2)).data,
        [20.0, 300.0]
    );
    assert_eq!(
        conv(&x2, &f(&[2, 2, 1, 1], &[1.0, 1.0, 1.0, -1.0]), geometry([1, 1], [0, 0], [1, 1], 1)).data,
        [5.0, -1.0]
    );
}

#[test]
fn conv_transpose2d_by_hand() {
    let x = f(&[1, 1, 2, 2], &[1.0, 2.0, 3.0, 4.0]);
    let w = f(&[1, 1, 2, 2], &[1.0; 4]);
    let ct = |g: ConvGeometry, shape: &[usize]| {
        ev(&Prim::ConvTranspose2d { geometry: g, output_padding: [0, 0] }, &[&x, &w], shape, DType::F32)
    };
    let up = ct(geometry([2, 2], [0, 0], [1, 1], 1), &[1, 1, 4, 4]);
    let want = [1.0, 1.0, 2.0, 2.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 4.0, 4.0, 3.0, 3.0, 4.0, 4.0];
    assert_eq!(up.data, want);
    let full = ct(geometry([1, 1], [0, 0], [1, 1], 1), &[1, 1, 3, 3]);
    assert_eq!(full.data, [1.0, 3.0, 2.0, 4.0, 10.0, 6.0, 3.0, 7.0, 4.0]);
    // output_padding must be below the stride or the dilation.
    let bad = Prim::ConvTranspose2d { geometry: geometry([1, 1], [0, 0], [1, 1], 1), output_padding: [1, 0] };
    assert!(try_ev(&bad, &[&x, &w], &[1, 1, 4, 3], DType::F32).is_err());
}

/// `<conv(x, w), y> == <x, conv_transpose(y, w)> == <w, weight_grad(x, y)>`.
fn check_conv_adjoints(x_shape: [usize; 4], w_shape: [usize; 4], g: ConvGeometry) {
    let x = rand(&x_shape, 10);
    let w = rand(&w_shape, 11);
    let y_val = conv(&x, &w, g);
    let y = rand(&y_val.shape, 12);
    let mut output_padding = [0; 2];
    for axis in 0..2 {
        let base = (y.shape[2 + axis] - 1) * g.stride[axis] + g.dilation[axis] * (w_shape[2 + axis] - 1) + 1
            - 2 * g.pad[axis];
        output_padding[axis] = x_shape[2 + axis] - base;
    }
    let ct = Prim::ConvTranspose2d { geometry: g, output_padding };
    let dx = ev(&ct, &[&y, &w], &x_shape, DType::F32);
    let dw = ev(&Prim::Conv2dWeightGrad(g), &[&x, &y], &w_shape, DType::F32);
    let forward = inner(&y_val, &y);
    assert!(forward.abs() > 1e-3, "a degenerate test");
    assert_close(forward, inner(&x, &dx), 1e-12);
    assert_close(forward, inner(&w, &dw), 1e-12);
}

#[test]
fn conv_adjoint_identities() {
    check_conv_adjoints([2, 3, 7, 6], [4, 3, 3, 2], geometry([1, 1], [1, 1], [1, 1], 1));
    check_conv_adjoints([2, 4, 9, 8], [6, 2, 3, 3], geometry([2, 2], [1, 1], [1, 1], 2));
    check_conv_adjoints([1, 2, 10, 7], [2, 2, 3, 2], geometry([2, 1], [2, 0], [2, 2], 1));
    check_conv_adjoints([2, 6, 8, 9], [6, 2, 2, 3], geometry([3, 2], [1, 1], [2, 1], 3));
    check_conv_adjoints([1, 1, 5, 5], [1, 1, 5, 5], geometry([1, 1], [2, 2], [1, 1], 1));
}

#[test]
fn conv_shape_errors() {
    let x = rand(&[1, 4, 5, 5], 1);
    let g1 = geometry([1, 1], [0, 0], [1, 1], 1);
    // Channels do not match; groups do not divide; kernel larger than the input; zero stride.
    let cases = [
        (rand(&[2, 3, 3, 3], 2), g1),
        (rand(&[3, 2, 3, 3], 2), geometry([1, 1], [0, 0], [1, 1], 2)),
        (rand(&[2, 4, 6, 1], 2), g1),
        (rand(&[2, 4, 3, 3], 2), geometry([0, 1], [0, 0], [1, 1], 1)),
        (rand(&[2, 4, 3, 3], 2), geometry([1, 1], [0, 0], [1, 1], 0)),
        (rand(&[2, 4, 3, 3], 2), geometry([1, 1], [usize::MAX, 0], [1, 1], 1)),
        (rand(&[2, 4, 3, 3], 2), geometry([1, 1], [0, 0], [usize::MAX, 1], 1)),
    ];
    for (w, g) in cases {
        assert!(
            try_ev(&Prim::Conv2d(g), &[&x, &w], &[1, 2, 3, 3], DType::F32).is_err(),
            "{g:?} {:?}",
            w.shape
        );
        let ct = Prim::ConvTranspose2d { geometry: g, output_padding: [0, 0] };
        assert!(try_ev(&ct, &[&x, &w], &[1, 2, 7, 7], DType::F32).is_err(), "{g:?} {:?}", w.shape);
    }
    let dy = rand(&[1, 2, 3, 3], 3);
    assert!(try_ev(&Prim::Conv2dWeightGrad(g1), &[&x, &dy], &[2, 4, 2, 2], DType::F32).is_err());
    assert!(try_ev(&Prim::Conv2dWeightGrad(g1), &[&x, &dy], &[2, 4, 3], DType::F32).is_err());
}

// ---- windows and resampling ------------------------------------------------------------

fn window(kernel: [usize; 2], stride: [usize; 2], pad: [usize; 2]) -> Window {
    Window { kernel, stride, pad }
}

#[test]
fn pooling_by_hand() {
    let x = f(&[1, 1, 4, 4], &(0..16).map(f64::from).collect::<Vec<_>>());
    let w = window([2, 2], [2, 2], [0, 0]);
    let max = ev(&Prim::Pool2d { kind: PoolKind::Max, window: w }, &[&x], &[1, 1, 2, 2], DType::F32);
    assert_eq!(max.data, [5.0, 7.0, 13.0, 15.0]);
    let avg = ev(&Prim::Pool2d { kind: PoolKind::Avg, window: w }, &[&x], &[1, 1, 2, 2], DType::F32);
    assert_eq!(avg.data, [2.5, 4.5, 10.5, 12.5]);
    // Padding counts as zeros for the average, and is ignored by the maximum.
    let y = f(&[1, 1, 3, 3], &[-1.0, -2.0, -3.0, -4.0, -5.0, -6.0, -7.0, -8.0, -9.0]);
    let w = window([3, 3], [2, 2], [1, 1]);
    let avg = ev(&Prim::Pool2d { kind: PoolKind::Avg, window: w }, &[&y], &[1, 1, 2, 2], DType::F32);
    assert_eq!(avg.data, [-12.0 / 9.0, -16.0 / 9.0, -24.0 / 9.0, -28.0 / 9.0]);
    let max = ev(&Prim::Pool2d { kind: PoolKind::Max, window: w }, &[&y], &[1, 1, 2, 2], DType::F32);
    assert_eq!(max.data, [-1.0, -2.0, -4.0, -5.0]);
    // Padding beyond half the kernel, a zero stride.
    for w in [window([2, 2], [1, 1], [2, 0]), window([2, 2], [0, 1], [0, 0])] {
        assert!(
            try_ev(&Prim::Pool2d { kind: PoolKind::Max, window: w }, &[&y], &[1, 1, 2, 2], DType::F32)
                .is_err()
        );
    }
}

#[test]
fn max_pool_grad_goes_to_the_first_maximum() {
    // Windows (k2 s2): [[1,1],[1,1]] ties four ways; [[2,0],[0,2]] ties two ways.
    let x = f(&[1, 1, 2, 4], &[1.0, 1.0, 2.0, 0.0, 1.0, 1.0, 0.0, 2.0]);
    let dy = f(&[1, 1, 1, 2], &[10.0, 20.0]);
    let w = window([2, 2], [2, 2], [0, 0]);
    let dx = ev(&Prim::Pool2dGrad { kind: PoolKind::Max, window: w }, &[&x, &dy], &[1, 1, 2, 4], DType::F32);
    assert_eq!(dx.data, [10.0, 0.0, 20.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
    // Overlapping windows (k2 s1) add into a shared maximum.
    let x = f(&[1, 1, 1, 3], &[0.0, 5.0, 5.0]);
    let dy = f(&[1, 1, 1, 2], &[1.0, 2.0]);
    let w = window([1, 2], [1, 1], [0, 0]);
    let dx = ev(&Prim::Pool2dGrad { kind: PoolKind::Max, window: w }, &[&x, &dy], &[1, 1, 1, 3], DType::F32);
    assert_eq!(dx.data, [0.0, 3.0, 0.0]);
    // The gradient's shape must be the pooled shape.
    let bad = f(&[1, 1, 1, 3], &[0.0; 3]);
    assert!(
        try_ev(&Prim::Pool2dGrad { kind: PoolKind::Max, window: w }, &[&x, &bad], &[1, 1, 1, 3], DType::F32)
            .is_err()
    );
}

#[test]
fn pool_adjoint_identities() {
    let x = rand(&[2, 3, 7, 6], 20);
    for (kind, w) in [
        (PoolKind::Avg, window([3, 3], [2, 2], [1, 1])),
        (PoolKind::Avg, window([2, 3], [1, 2], [1, 0])),
        (PoolKind::Max, window([3, 2], [2, 1], [1, 1])),
        (PoolKind::Max, window([2, 2], [2, 2], [0, 0])),
    ] {
        let out = |axis: usize| (x.shape[2 + axis] + 2 * w.pad[axis] - w.kernel[axis]) / w.stride[axis] + 1;
        let shape = [2, 3, out(0), out(1)];
        let pooled = ev(&Prim::Pool2d { kind, window: w }, &[&x], &shape, DType::F32);
        let y = rand(&shape, 21);
        let dx = ev(&Prim::Pool2dGrad { kind, window: w }, &[&x, &y], &x.shape.clone(), DType::F32);
        // Max pooling is linear near x (no ties in random data): it selects one element.
        assert_close(inner(&pooled, &y), inner(&x, &dx), 1e-12);
    }
}

#[test]
fn upsample_by_hand() {
    let x = f(&[1, 1, 2, 2], &[1.0, 2.0, 3.0, 4.0]);
    let near =
        ev(&Prim::Upsample { mode: UpsampleMode::Nearest, scale: [2, 2] }, &[&x], &[1, 1, 4, 4], DType::F32);
    let want = [1.0, 1.0, 2.0, 2.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 4.0, 4.0, 3.0, 3.0, 4.0, 4.0];
    assert_eq!(near.data, want);
    // PyTorch: F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False).
    let bil =
        ev(&Prim::Upsample { mode: UpsampleMode::Bilinear, scale: [2, 2] }, &[&x], &[1, 1, 4, 4], DType::F32);
    let want = [
        1.0, 1.25, 1.75, 2.0, //
        1.5, 1.75, 2.25, 2.5, //
        2.5, 2.75, 3.25, 3.5, //
        3.0, 3.25, 3.75, 4.0,
    ];
    assert_all_close(&bil, &want, 1e-15);
    // Scale 3 along one axis: source coordinates max((o + ½)/3 − ½, 0) = 0, 0, 1/3, 2/3, 1, 1.
    let r = f(&[1, 1, 1, 2], &[0.0, 3.0]);
    let bil =
        ev(&Prim::Upsample { mode: UpsampleMode::Bilinear, scale: [1, 3] }, &[&r], &[1, 1, 1, 6], DType::F32);
    assert_all_close(&bil, &[0.0, 0.0, 1.0, 2.0, 3.0, 3.0], 1e-15);
    assert!(
        try_ev(
            &Prim::Upsample { mode: UpsampleMode::Nearest, scale: [0, 1] },
            &[&x],
            &[1, 1, 0, 2],
            DType::F32
        )
        .is_err()
    );
    let ug = Prim::UpsampleGrad { mode: UpsampleMode::Nearest, scale: [2, 2] };
    assert!(try_ev(&ug, &[&near], &[1, 1, 2, 3], DType::F32).is_err());
}

#[test]
fn upsample_adjoint_identities() {
    for mode in [UpsampleMode::Nearest, UpsampleMode::Bilinear] {
        for scale in [[2, 2], [3, 2], [1, 4]] {
            let x = rand(&[2, 3, 5, 4], 30);
            let big = [2, 3, 5 * scale[0], 4 * scale[1]];
            let up = ev(&Prim::Upsample { mode, scale }, &[&x], &big, DType::F32);
            let y = rand(&big, 31);
            let down = ev(&Prim::UpsampleGrad { mode, scale }, &[&y], &x.shape.clone(), DType::F32);
            assert_close(inner(&up, &y), inner(&x, &down), 1e-12);
        }
    }
}

#[test]
fn gather_scatter_adjoint_identity() {
    let x = rand(&[3, 5, 2], 40);
    let raw = [4, 0, 0, 2, 3, 4, 4, 1];
    for axis in 0..3 {
        let extent = x.shape[axis] as i32;
        let idx = i(&[2, 4], &raw.map(|k| k % extent));
        let mut shape = x.shape[..axis].to_vec();
        shape.extend([2, 4]);
        shape.extend_from_slice(&x.shape[axis + 1..]);
        let g = ev(&Prim::Gather { axis }, &[&x, &idx], &shape, DType::F32);
        let y = rand(&shape, 41);
        let s = ev(&Prim::ScatterAdd { axis }, &[&idx, &y], &x.shape.clone(), DType::F32);
        assert_close(inner(&g, &y), inner(&x, &s), 1e-12);
    }
}

#[test]
fn pad_slice_adjoint_identity() {
    let x = rand(&[3, 4], 50);
    let pads = vec![(1, 2), (0, 3)];
    let p = ev(&Prim::Pad { pads, value: F64(0.0) }, &[&x], &[6, 7], DType::F32);
    let y = rand(&[6, 7], 51);
    let rows = ev(&Prim::Slice { axis: 0, start: 1, step: 1 }, &[&y], &[3, 7], DType::F32);
    let s = ev(&Prim::Slice { axis: 1, start: 0, step: 1 }, &[&rows], &[3, 4], DType::F32);
    assert_close(inner(&p, &y), inner(&x, &s), 1e-12);
}

// ---- empty and bad inputs --------------------------------------------------------------

#[test]
fn zero_size_tensors_give_empty_results() {
    let e = f(&[0, 3], &[]);
    let r = ev(&Prim::Binary(BinaryOp::Add), &[&e, &f(&[1, 3], &[1.0, 2.0, 3.0])], &[0, 3], DType::F32);
    assert!(r.data.is_empty());
    assert!(ev(&Prim::Unary(UnaryOp::Exp), &[&e], &[0, 3], DType::F32).data.is_empty());
    let imgs = f(&[0, 2, 5, 5], &[]);
    let g = geometry([1, 1], [1, 1], [1, 1], 1);
    assert!(
        ev(&Prim::Conv2d(g), &[&imgs, &rand(&[4, 2, 3, 3], 1)], &[0, 4, 5, 5], DType::F32).data.is_empty()
    );
    let dw = ev(&Prim::Conv2dWeightGrad(g), &[&imgs, &f(&[0, 4, 5, 5], &[])], &[4, 2, 3, 3], DType::F32);
    assert_eq!(dw.data, [0.0; 72]);
    let pool = Prim::Pool2d { kind: PoolKind::Max, window: window([2, 2], [2, 2], [0, 0]) };
    assert!(ev(&pool, &[&imgs], &[0, 2, 2, 2], DType::F32).data.is_empty());
    let up = Prim::Upsample { mode: UpsampleMode::Bilinear, scale: [2, 2] };
    assert!(ev(&up, &[&imgs], &[0, 2, 10, 10], DType::F32).data.is_empty());
    let x = rand(&[3, 2], 1);
    assert!(ev(&Prim::Gather { axis: 0 }, &[&x, &i(&[0], &[])], &[0, 2], DType::F32).data.is_empty());
    assert_eq!(
        ev(&Prim::ScatterAdd { axis: 0 }, &[&i(&[0], &[]), &f(&[0, 2], &[])], &[3, 2], DType::F32).data,
        [0.0; 6]
    );
    assert!(ev(&Prim::Fill { value: F64(1.0) }, &[], &[0], DType::F32).data.is_empty());
    let rnd = Prim::Random { dist: Distribution::Normal, stream: 0 };
    assert!(ev(&rnd, &[], &[2, 0], DType::F32).data.is_empty());
}

#[test]
fn bad_inputs_are_errors() {
    let x = f(&[2], &[1.0, 2.0]);
    assert!(matches!(
        kind(try_ev(&Prim::Binary(BinaryOp::Add), &[&x], &[2], DType::F32)),
        ErrorKind::Arity { .. }
    ));
    assert!(matches!(
        kind(try_ev(&Prim::Fill { value: F64(0.0) }, &[&x], &[2], DType::F32)),
        ErrorKind::Arity { .. }
    ));
    let malformed = Value { dtype: DType::F32, shape: vec![3], data: vec![1.0] };
    assert!(matches!(
        kind(try_ev(&Prim::Unary(UnaryOp::Neg), &[&malformed], &[3], DType::F32)),
        ErrorKind::Malformed(_)
    ));
    let not_bool = Value { dtype: DType::Bool, shape: vec![1], data: vec![2.0] };
    assert!(matches!(
        kind(try_ev(&Prim::Unary(UnaryOp::Not), &[&not_bool], &[1], DType::Bool)),
        ErrorKind::Malformed(_)
    ));
    assert!(Value::new(DType::I32, vec![1], vec![0.5]).is_err());
    assert!(Value::new(DType::F32, vec![2, 2], vec![0.0; 3]).is_err());
    // The node's type must be what the op computes.
    assert!(matches!(kind(try_ev(&Prim::Unary(UnaryOp::Neg), &[&x], &[3], DType::F32)), ErrorKind::Shape(_)));
    assert!(matches!(kind(try_ev(&Prim::Unary(UnaryOp::Neg), &[&x], &[2], DType::I32)), ErrorKind::DType(_)));
    // Too large to hold.
    let huge = try_ev(&Prim::Fill { value: F64(0.0) }, &[], &[1 << 40], DType::F32);
    assert!(matches!(kind(huge), ErrorKind::TooLarge(_)));
    let overflow = try_ev(&Prim::Fill { value: F64(0.0) }, &[], &[usize::MAX, 2], DType::F32);
    assert!(matches!(kind(overflow), ErrorKind::TooLarge(_)));
    let e = EvalError { op: "neg".into(), kind: ErrorKind::DivisionByZero };
    assert_eq!(e.to_string(), "neg: i32 division by zero");
}

/// Every op on every combination of a pool of small, mostly ill-fitting operands and node
/// types: errors are fine, panics are not, and a success has exactly the node's type.
#[test]
fn no_combination_of_operands_panics() {
    let g = geometry([1, 1], [1, 1], [1, 1], 1);
    let w = window([2, 2], [2, 2], [0, 0]);
    let prims = vec![
        Prim::Input { index: 0 },
        Prim::Fill { value: F64(1.0) },
        Prim::Iota { axis: 1 },
        Prim::Random { dist: Distribution::Normal, stream: 1 },
        Prim::Unary(UnaryOp::Sqrt),
        Prim::Unary(UnaryOp::Neg),
        Prim::Unary(UnaryOp::Not),
        Prim::Binary(BinaryOp::Div),
        Prim::Binary(BinaryOp::Rem),
        Prim::Binary(BinaryOp::Pow),
        Prim::Binary(BinaryOp::Lt),
        Prim::Binary(BinaryOp::And),
        Prim::Select,
        Prim::Cast { to: DType::I32 },
        Prim::Reduce { op: ReduceOp::Mean, axes: vec![0, 1] },
        Prim::Reduce { op: ReduceOp::ArgMin, axes: vec![1] },
        Prim::Reduce { op: ReduceOp::Max, axes: vec![3] },
        Prim::Scan { op: ScanOp::Prod, axis: 1 },
        Prim::Reshape,
        Prim::Permute { perm: vec![1, 0] },
        Prim::Broadcast,
        Prim::Slice { axis: 1, start: 1, step: 2 },
        Prim::Slice { axis: 0, start: usize::MAX, step: usize::MAX },
        Prim::Pad { pads: vec![(1, 0), (0, 1)], value: F64(0.0) },
        Prim::Pad { pads: vec![(usize::MAX, 1), (0, 1)], value: F64(0.0) },
        Prim::Concat { axis: 1 },
        Prim::Gather { axis: 1 },
        Prim::ScatterAdd { axis: 0 },
        Prim::MatMul { transpose_a: true, transpose_b: false },
        Prim::Conv2d(g),
        Prim::Conv2d(geometry([usize::MAX, 1], [usize::MAX, 0], [0, usize::MAX], usize::MAX)),
        Prim::ConvTranspose2d { geometry: geometry([2, 2], [1, 1], [1, 1], 1), output_padding: [1, 1] },
        Prim::ConvTranspose2d {
            geometry: geometry([1, 1], [usize::MAX, 0], [1, 1], 2),
            output_padding: [0, 0],
        },
        Prim::Conv2dWeightGrad(g),
        Prim::Pool2d { kind: PoolKind::Max, window: w },
        Prim::Pool2d {
            kind: PoolKind::Avg,
            window: window([usize::MAX, 1], [1, usize::MAX], [usize::MAX, 0]),
        },
        Prim::Pool2dGrad { kind: PoolKind::Max, window: w },
        Prim::Pool2dGrad { kind: PoolKind::Avg, window: w },
        Prim::Upsample { mode: UpsampleMode::Bilinear, scale: [2, 2] },
        Prim::Upsample { mode: UpsampleMode::Nearest, scale: [usize::MAX, 2] },
        Prim::UpsampleGrad { mode: UpsampleMode::Bilinear, scale: [2, 2] },
    ];
    let pool = [
        rand(&[2, 3], 1),
        f(&[0, 3], &[]),
        i(&[3], &[0, 1, 2]),
        i(&[2, 3], &[-5, 0, 7, i32::MAX, i32::MIN, 2]),
        b(&[2, 1], &[true, false]),
        Value::scalar(0.5),
        rand(&[1, 2, 4, 4], 2),
        rand(&[2, 2, 3, 3], 3),
    ];
    let shapes: [&[usize]; 6] = [&[], &[2, 3], &[0, 3], &[3, 2], &[1, 2, 4, 4], &[1, 2, 2, 2]];
    let leaves = Leaves { seed: 7, inputs: &pool, params: &[], buffers: &[] };
    let mut runs = 0;
    for prim in &prims {
        let arity = match prim.arity() {
            crate::prim::Arity::Exactly(n) => n,
            crate::prim::Arity::AtLeast(n) => n + 1,
        };
        let mut choice = vec![0; arity];
        loop {
            let inputs: Vec<&Value> = choice.iter().map(|&k| &pool[k]).collect();
            for shape in shapes {
                for dtype in [DType::F32, DType::I32, DType::Bool] {
                    runs += 1;
                    if let Ok(v) = eval(prim, &inputs, shape, dtype, &leaves) {
                        assert_eq!((v.shape.as_slice(), v.dtype), (shape, dtype), "{prim}");
                        assert_eq!(v.data.len(), v.shape.iter().product::<usize>(), "{prim}");
                    }
                }
            }
            // The next tuple of operands, odometer-style.
            let Some(pos) = choice.iter().rposition(|&k| k + 1 < pool.len()) else { break };
            choice[pos] += 1;
            choice[pos + 1..].iter_mut().for_each(|k| *k = 0);
        }
    }
    assert!(runs > 10_000, "{runs}");
}

/// The size the brief asks the interpreter to handle in a few seconds in a debug build:
/// `cargo test -p genc-compiler big_conv -- --ignored --nocapture`.
#[test]
#[ignore = "a timing check, not a correctness test"]
fn big_conv_is_fast_enough() {
    let x = rand(&[64, 64, 14, 14], 1);
    let w = rand(&[128, 64, 4, 4], 2);
    for g in [geometry([1, 1], [0, 0], [1, 1], 1), geometry([2, 2], [1, 1], [1, 1], 1)] {
        let start = std::time::Instant::now();
        let y = conv(&x, &w, g);
        let forward = start.elapsed();
        let start = std::time::Instant::now();
        let ct = Prim::ConvTranspose2d { geometry: g, output_padding: [0, 0] };
        let dx = ev(&ct, &[&y, &w], &x.shape.clone(), DType::F32);
        let transposed = start.elapsed();
        let start = std::time::Instant::now();
        let dw = ev(&Prim::Conv2dWeightGrad(g), &[&x, &y], &w.shape.clone(), DType::F32);
        let weight = start.elapsed();
        println!("{g}: y {:?} in {forward:?}, dx in {transposed:?}, dw in {weight:?}", y.shape);
        assert_eq!((dx.shape.as_slice(), dw.shape.as_slice()), (x.shape.as_slice(), w.shape.as_slice()));
    }
}

#[test]
fn log_abs_det_and_inverse_of_small_matrices() {
    // det [[0, 2], [3, 1]] = -6 (the elimination swaps rows); a singular matrix gives -inf.
    let m = Value::f32(&[3, 2, 2], &[0.0, 2.0, 3.0, 1.0, 2.0, 0.0, 0.0, 0.5, 1.0, 2.0, 2.0, 4.0])
        .expect("a valid value");
    let d = ev(&Prim::LogAbsDet, &[&m], &[3], DType::F32);
    assert!((d.data[0] - 6f64.ln()).abs() < 1e-12 && d.data[1].abs() < 1e-12, "{:?}", d.data);
    assert_eq!(d.data[2], f64::NEG_INFINITY);
    let inv = ev(&Prim::Inverse, &[&m], &[3, 2, 2], DType::F32);
    // [[0, 2], [3, 1]]^-1 = [[-1/6, 1/3], [1/2, 0]]; diag(2, 0.5)^-1 = diag(0.5, 2).
    let want = [-1.0 / 6.0, 1.0 / 3.0, 0.5, 0.0, 0.5, 0.0, 0.0, 2.0];
    for (k, w) in want.iter().enumerate() {
        assert!((inv.data[k] - w).abs() < 1e-12, "inverse[{k}] = {}, want {w}", inv.data[k]);
    }
    assert!(inv.data[8..].iter().all(|v| v.is_nan()), "a singular matrix has no inverse");
}
