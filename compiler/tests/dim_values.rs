//! A symbolic size used as a value (`sum(k) / (B * (B - 1))`, WAE-MMD's U-statistic): its
//! value at each batch size on the reference interpreter, its gradient, and its folding to a
//! constant once the batch is bound (no per-step work for a number the plan knows).

#![allow(clippy::unwrap_used)]

use genc_compiler::check::{self, UnitKind};
use genc_compiler::graph::Graph;
use genc_compiler::interp::{self, Leaves, Value};
use genc_compiler::passes;
use genc_compiler::prim::Prim;

const SPEC: &str = r#"
dims B, K = 3

loss pairs(x: [B, K]) = sum(x) / (B * (B - 1))

loss shifted(x: [B, K]) = mean(x) * (B - 10) + B / 2
"#;

fn unit(name: &str) -> Graph {
    let (ast, errors) = genc_grammar::parse(SPEC);
    assert!(errors.is_empty(), "{errors:?}");
    let c = check::check(&ast, &[]);
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    c.units.iter().find(|u| u.kind == UnitKind::Loss && u.name == name).unwrap().graph.clone()
}

fn at_batch(g: &Graph, b: i64) -> Graph {
    g.bind_dims(&|d| (d == "B").then_some(b)).unwrap()
}

fn input(b: usize) -> (Value, f64) {
    let data: Vec<f64> = (0..b * 3).map(|i| (i % 5) as f64 * 0.5 - 1.0).collect();
    let sum = data.iter().sum();
    (Value::f32(&[b, 3], &data).unwrap(), sum)
}

fn eval(g: &Graph, x: Value) -> f64 {
    let inputs = [x];
    let leaves = Leaves { seed: 1, inputs: &inputs, params: &[], buffers: &[] };
    interp::eval_outputs(g, &leaves).unwrap()[0].data[0]
}

#[test]
fn the_batch_size_is_a_value_at_every_batch() {
    for b in [2, 5, 16] {
        let (x, sum) = input(b);
        let got = eval(&at_batch(&unit("pairs"), b as i64), x);
        let want = sum / (b * (b - 1)) as f64;
        assert!((got - want).abs() < 1e-6 * want.abs().max(1.0), "B = {b}: got {got}, want {want}");
    }
}

#[test]
fn a_size_may_be_negative_and_sizes_divide_as_sizes() {
    // B - 10 < 0 at B = 4; `B / 2` is a size, so floor division (2 at B = 5), as `H / 4` in a
    // shape: a size becomes a real only where it meets a tensor.
    for b in [4, 5] {
        let (x, sum) = input(b);
        let got = eval(&at_batch(&unit("shifted"), b as i64), x);
        let want = sum / (b * 3) as f64 * (b as f64 - 10.0) + (b / 2) as f64;
        assert!((got - want).abs() < 1e-5, "B = {b}: got {got}, want {want}");
    }
}

#[test]
fn a_bound_size_folds_to_a_constant() {
    let g = passes::simplify(&at_batch(&unit("pairs"), 8));
    let live: Vec<_> = g.live_nodes().into_iter().map(|id| g.node(id)).collect();
    let eight = genc_compiler::dim::Dim::constant(8);
    let fills_of_b =
        live.iter().filter(|n| matches!(n.prim, Prim::Fill { .. }) && n.ty.shape == [eight.clone()]).count();
    let reductions = live.iter().filter(|n| matches!(n.prim, Prim::Reduce { .. })).count();
    assert_eq!(fills_of_b, 0, "the size's tensor of ones is folded away");
    assert_eq!(reductions, 1, "only the loss's own sum is left");
}
