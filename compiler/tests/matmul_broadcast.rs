//! `@` with NumPy's batch broadcasting, on the reference interpreter: `[B, N, K] @ [K, M]`
//! (the batch folded into the rows) and `[H, 1, N, K] @ [G, K, M]` (batch axes broadcast)
//! against the products computed directly.

#![allow(clippy::unwrap_used)]

use genc_compiler::check::{self, UnitKind};
use genc_compiler::interp::{self, Leaves, Value};

const SPEC: &str = r#"
dims B, N = 3, K = 4, M = 2, H = 2, G = 3

loss folded(x: [B, N, K], w: [K, M]) = sum(x @ w)

loss broadcast(x: [H, 1, N, K], w: [G, K, M]) = sum(x @ w)
"#;

/// Deterministic values, a different pattern per input.
fn values(shape: &[usize], salt: usize) -> Value {
    let n: usize = shape.iter().product();
    let data: Vec<f64> = (0..n).map(|i| ((i * 7 + salt * 13) % 11) as f64 / 5.0 - 1.0).collect();
    Value::f32(shape, &data).unwrap()
}

/// The loss unit `name` evaluated on `inputs` with the batch dim at 2.
fn loss(name: &str, inputs: &[Value]) -> f64 {
    let (ast, errors) = genc_grammar::parse(SPEC);
    assert!(errors.is_empty(), "{errors:?}");
    let c = check::check(&ast, &[]);
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    let unit = c.units.iter().find(|u| u.kind == UnitKind::Loss && u.name == name).unwrap();
    let graph = unit.graph.bind_dims(&|d| (d == "B").then_some(2)).unwrap();
    let leaves = Leaves { seed: 1, inputs, params: &[], buffers: &[] };
    interp::eval_outputs(&graph, &leaves).unwrap()[0].data[0]
}

/// `sum(a @ b)` for `a` [n, k] and `b` [k, m] given as flat rows.
fn product_sum(a: &[f64], b: &[f64], n: usize, k: usize, m: usize) -> f64 {
    (0..n)
        .flat_map(|i| (0..m).map(move |j| (i, j)))
        .map(|(i, j)| (0..k).map(|t| a[i * k + t] * b[t * m + j]).sum::<f64>())
        .sum()
}

#[test]
fn a_batch_of_rows_times_a_matrix() {
    let (x, w) = (values(&[2, 3, 4], 1), values(&[4, 2], 2));
    let want: f64 = x.data.chunks(12).map(|xb| product_sum(xb, &w.data, 3, 4, 2)).sum();
    let got = loss("folded", &[x, w]);
    assert!((got - want).abs() < 1e-9, "got {got}, want {want}");
}

#[test]
fn batch_axes_broadcast_where_one_is_1() {
    let (x, w) = (values(&[2, 1, 3, 4], 3), values(&[3, 4, 2], 4));
    // Every (h, g) pair: x[h, 0] @ w[g].
    let mut want = 0.0;
    for h in 0..2 {
        for g in 0..3 {
            want += product_sum(&x.data[h * 12..][..12], &w.data[g * 8..][..8], 3, 4, 2);
        }
    }
    let got = loss("broadcast", &[x, w]);
    assert!((got - want).abs() < 1e-9, "got {got}, want {want}");
}
