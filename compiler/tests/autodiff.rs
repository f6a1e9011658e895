//! Every primitive's derivative against central finite differences in f64 on the reference
//! interpreter (broadcasting included), and a second-order case: the gradient of a WGAN-GP
//! gradient penalty on a small convolutional critic.

#![allow(clippy::unwrap_used)]

use genc_compiler::autodiff;
use genc_compiler::dim::Dim;
use genc_compiler::graph::{Graph, Node, NodeId, Output};
use genc_compiler::interp::{self, Leaves, Value};
use genc_compiler::prim::*;
use genc_compiler::shape_rules;
use genc_compiler::types::TensorType;

/// A graph under construction with the values of its inputs.
struct Case {
    g: Graph,
    inputs: Vec<Value>,
    rng: u64,
}

/// How to draw an input's values.
#[derive(Clone, Copy)]
enum Domain {
    /// Uniform in (-1, 1), kept away from 0 by 0.05 (kinks of relu, abs).
    Signed,
    /// Uniform in (0.5, 1.5): logs, roots, divisors.
    Positive,
}

impl Case {
    fn new() -> Case {
        Case { g: Graph::default(), inputs: Vec::new(), rng: 0x2545_F491_4F6C_DD1D }
    }

    fn uniform(&mut self) -> f64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng >> 11) as f64 / (1u64 << 53) as f64
    }

    fn input(&mut self, shape: &[usize], domain: Domain) -> NodeId {
        let n: usize = shape.iter().product();
        let data: Vec<f64> = (0..n)
            .map(|_| {
                let u = self.uniform();
                match domain {
                    Domain::Signed => {
                        let v = 2.0 * u - 1.0;
                        if v.abs() < 0.05 { v.signum() * 0.05 + v } else { v }
                    }
                    Domain::Positive => 0.5 + u,
                }
            })
            .collect();
        self.leaf(Value::f32(shape, &data).unwrap())
    }

    fn leaf(&mut self, v: Value) -> NodeId {
        let index = self.inputs.len();
        let ty = TensorType::new(v.dtype, v.shape.iter().map(|&d| Dim::constant(d as i64)).collect());
        self.inputs.push(v);
        self.g.input_names.push(format!("x{index}"));
        self.g.add(
            Node { prim: Prim::Input { index }, ty, span: Default::default(), origin: String::new() },
            &[],
        )
    }

    fn op(&mut self, prim: Prim, inputs: &[NodeId]) -> NodeId {
        self.op_to(prim, inputs, None)
    }

    fn op_to(&mut self, prim: Prim, inputs: &[NodeId], shape: Option<&[usize]>) -> NodeId {
        let declared = shape.map(|s| {
            let dtype = match prim {
                Prim::Iota { .. } => DType::I32,
                _ => DType::F32,
            };
            TensorType::new(dtype, s.iter().map(|&d| Dim::constant(d as i64)).collect())
        });
        let types: Vec<&TensorType> = inputs.iter().map(|&i| self.g.ty(i)).collect();
        let ty = shape_rules::infer(&prim, &types, declared.as_ref())
            .unwrap_or_else(|e| panic!("{prim}: {}", e.message));
        self.g.add(Node { prim, ty, span: Default::default(), origin: String::new() }, inputs)
    }

    /// `sum(out * r)` for a fixed random `r`, so every output element matters.
    fn scalar_loss(&mut self, out: NodeId) -> NodeId {
        let shape: Vec<usize> = self.g.ty(out).concrete().unwrap();
        let r = self.input(&shape, Domain::Signed);
        let p = self.op(Prim::Binary(BinaryOp::Mul), &[out, r]);
        let axes: Vec<usize> = (0..shape.len()).collect();
        let s = if axes.is_empty() { p } else { self.op(Prim::Reduce { op: ReduceOp::Sum, axes }, &[p]) };
        self.op_to(Prim::Reshape, &[s], Some(&[]))
    }

    fn eval(&self, g: &Graph, inputs: &[Value], node: NodeId) -> Value {
        let leaves = Leaves { seed: 7, inputs, params: &[], buffers: &[] };
        let values = interp::eval_graph(g, &leaves).unwrap_or_else(|e| panic!("{e}"));
        values[node.index()].clone()
    }

    /// Checks ∂loss/∂x for each `x` in `wrt` against central differences.
    fn check(mut self, loss: NodeId, wrt: &[NodeId], what: &str) {
        let grads = autodiff::grad(&mut self.g, loss, wrt).unwrap_or_else(|e| panic!("{what}: {e}"));
        let g = self.g.clone();
        for (&x, &d) in wrt.iter().zip(&grads) {
            let analytic = self.eval(&g, &self.inputs, d);
            let Prim::Input { index } = g.node(x).prim else { panic!("wrt must be inputs") };
            let eps = 1e-6;
            for k in 0..self.inputs[index].data.len() {
                let mut plus = self.inputs.clone();
                plus[index].data[k] += eps;
                let mut minus = self.inputs.clone();
                minus[index].data[k] -= eps;
                let fd =
                    (self.eval(&g, &plus, loss).data[0] - self.eval(&g, &minus, loss).data[0]) / (2.0 * eps);
                let ad = analytic.data[k];
                assert!(
                    (ad - fd).abs() <= 1e-6 + 1e-5 * fd.abs(),
                    "{what}: d/dx{index}[{k}]: autodiff {ad}, finite differences {fd}"
                );
            }
        }
    }
}

fn unary(op: UnaryOp, domain: Domain) {
    let mut c = Case::new();
    let x = c.input(&[2, 3], domain);
    let y = c.op(Prim::Unary(op), &[x]);
    let l = c.scalar_loss(y);
    c.check(l, &[x], op.name());
}

#[test]
fn unary_ops() {
    use UnaryOp::*;
    for op in [Neg, Abs, Tanh, Sigmoid, Relu, Erf, Sin, Cos, Exp] {
        unary(op, Domain::Signed);
    }
    for op in [Recip, Sqrt, Rsqrt, Log, Log1p] {
        unary(op, Domain::Positive);
    }
}

#[test]
fn binary_ops_with_broadcasting() {
    use BinaryOp::*;
    for op in [Add, Sub, Mul, Div, Pow, Max, Min] {
        let mut c = Case::new();
        let a = c.input(&[2, 3], Domain::Positive);
        let b = c.input(&[1, 3], Domain::Positive);
        let y = c.op(Prim::Binary(op), &[a, b]);
        let l = c.scalar_loss(y);
        c.check(l, &[a, b], op.name());
    }
}

#[test]
fn select_routes_the_gradient_to_the_branch_taken() {
    let mut c = Case::new();
    let cond = c.leaf(Value::bool(&[2, 3], &[true, false, true, false, false, true]).unwrap());
    let a = c.input(&[2, 3], Domain::Signed);
    let b = c.input(&[1, 3], Domain::Signed);
    let y = c.op(Prim::Select, &[cond, a, b]);
    let l = c.scalar_loss(y);
    c.check(l, &[a, b], "select");
}

#[test]
fn reductions_and_scans() {
    for op in [ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max, ReduceOp::Min, ReduceOp::Prod] {
        for axes in [vec![1], vec![0, 2]] {
            let mut c = Case::new();
            let x = c.input(&[2, 3, 2], Domain::Positive);
            let y = c.op(Prim::Reduce { op, axes: axes.clone() }, &[x]);
            let l = c.scalar_loss(y);
            c.check(l, &[x], &format!("{} over {axes:?}", op.name()));
        }
    }
    for op in [ScanOp::Sum, ScanOp::Prod] {
        let mut c = Case::new();
        let x = c.input(&[2, 4], Domain::Positive);
        let y = c.op(Prim::Scan { op, axis: 1 }, &[x]);
        let l = c.scalar_loss(y);
        c.check(l, &[x], "scan");
    }
}

#[test]
fn movement() {
    let mut c = Case::new();
    let x = c.input(&[2, 3, 4], Domain::Signed);
    let y = c.op_to(Prim::Reshape, &[x], Some(&[6, 4]));
    let l = c.scalar_loss(y);
    c.check(l, &[x], "reshape");

    let mut c = Case::new();
    let x = c.input(&[2, 3, 4], Domain::Signed);
    let y = c.op(Prim::Permute { perm: vec![2, 0, 1] }, &[x]);
    let l = c.scalar_loss(y);
    c.check(l, &[x], "permute");

    let mut c = Case::new();
    let x = c.input(&[2, 1, 4], Domain::Signed);
    let y = c.op_to(Prim::Broadcast, &[x], Some(&[2, 3, 4]));
    let l = c.scalar_loss(y);
    c.check(l, &[x], "broadcast");

    for (start, step, len) in [(1, 1, 3), (0, 2, 3), (1, 3, 2)] {
        let mut c = Case::new();
        let x = c.input(&[2, 6], Domain::Signed);
        let y = c.op_to(Prim::Slice { axis: 1, start, step }, &[x], Some(&[2, len]));
        let l = c.scalar_loss(y);
        c.check(l, &[x], "slice");
    }

    let mut c = Case::new();
    let x = c.input(&[2, 3], Domain::Signed);
    let y = c.op(Prim::Pad { pads: vec![(1, 0), (2, 1)], value: F64(0.5) }, &[x]);
    let l = c.scalar_loss(y);
    c.check(l, &[x], "pad");

    let mut c = Case::new();
    let a = c.input(&[2, 3], Domain::Signed);
    let b = c.input(&[2, 1], Domain::Signed);
    let y = c.op(Prim::Concat { axis: 1 }, &[a, b]);
    let l = c.scalar_loss(y);
    c.check(l, &[a, b], "concat");

    let mut c = Case::new();
    let table = c.input(&[4, 3], Domain::Signed);
    let idx = c.leaf(Value::i32(&[5], &[3, 0, 3, 1, 3]).unwrap());
    let y = c.op(Prim::Gather { axis: 0 }, &[table, idx]);
    let l = c.scalar_loss(y);
    c.check(l, &[table], "gather");

    let mut c = Case::new();
    let idx = c.leaf(Value::i32(&[5], &[3, 0, 3, 1, 3]).unwrap());
    let src = c.input(&[2, 5], Domain::Signed);
    let y = c.op_to(Prim::ScatterAdd { axis: 1 }, &[idx, src], Some(&[2, 4]));
    let l = c.scalar_loss(y);
    c.check(l, &[src], "scatter_add");
}

#[test]
fn matmul_with_every_transpose() {
    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
        let mut c = Case::new();
        let a_shape = if ta { [2, 4, 3] } else { [2, 3, 4] };
        let b_shape = if tb { [2, 5, 4] } else { [2, 4, 5] };
        let a = c.input(&a_shape, Domain::Signed);
        let b = c.input(&b_shape, Domain::Signed);
        let y = c.op(Prim::MatMul { transpose_a: ta, transpose_b: tb }, &[a, b]);
        let l = c.scalar_loss(y);
        c.check(l, &[a, b], &format!("matmul ta={ta} tb={tb}"));
    }
}

fn geometry(stride: usize, pad: usize, dilation: usize, groups: usize) -> ConvGeometry {
    ConvGeometry { stride: [stride, stride], pad: [pad, pad], dilation: [dilation, dilation], groups }
}

#[test]
fn convolutions_and_their_gradients() {
    for geo in [geometry(1, 0, 1, 1), geometry(2, 1, 1, 1), geometry(1, 1, 2, 2)] {
        let mut c = Case::new();
        let x = c.input(&[2, 2, 5, 5], Domain::Signed);
        let w = c.input(&[4, 2 / geo.groups, 3, 3], Domain::Signed);
        let y = c.op(Prim::Conv2d(geo), &[x, w]);
        let l = c.scalar_loss(y);
        c.check(l, &[x, w], &format!("conv2d {geo}"));
    }
    for (geo, op) in [(geometry(2, 1, 1, 1), [1, 1]), (geometry(1, 0, 1, 1), [0, 0])] {
        let mut c = Case::new();
        let x = c.input(&[1, 2, 3, 3], Domain::Signed);
        let w = c.input(&[2, 3, 3, 3], Domain::Signed);
        let y = c.op(Prim::ConvTranspose2d { geometry: geo, output_padding: op }, &[x, w]);
        let l = c.scalar_loss(y);
        c.check(l, &[x, w], &format!("conv_transpose2d {geo}"));
    }
    let geo = geometry(2, 1, 1, 1);
    let mut c = Case::new();
    let x = c.input(&[2, 2, 5, 5], Domain::Signed);
    let e = c.input(&[2, 3, 3, 3], Domain::Signed);
    let y = c.op_to(Prim::Conv2dWeightGrad(geo), &[x, e], Some(&[3, 2, 3, 3]));
    let l = c.scalar_loss(y);
    c.check(l, &[x, e], "conv2d_weight_grad");
}

#[test]
fn pooling_and_resampling() {
    let window = Window { kernel: [2, 2], stride: [2, 2], pad: [0, 0] };
    for kind in [PoolKind::Max, PoolKind::Avg] {
        let mut c = Case::new();
        let x = c.input(&[1, 2, 4, 4], Domain::Signed);
        let y = c.op(Prim::Pool2d { kind, window }, &[x]);
        let l = c.scalar_loss(y);
        c.check(l, &[x], "pool2d");
    }
    let mut c = Case::new();
    let x = c.input(&[1, 2, 4, 4], Domain::Signed);
    let dy = c.input(&[1, 2, 2, 2], Domain::Signed);
    let y = c.op(Prim::Pool2dGrad { kind: PoolKind::Avg, window }, &[x, dy]);
    let l = c.scalar_loss(y);
    c.check(l, &[dy], "avg_pool2d_grad");
    for mode in [UpsampleMode::Nearest, UpsampleMode::Bilinear] {
        let mut c = Case::new();
        let x = c.input(&[1, 2, 3, 3], Domain::Signed);
        let y = c.op(Prim::Upsample { mode, scale: [2, 2] }, &[x]);
        let l = c.scalar_loss(y);
        c.check(l, &[x], "upsample");

        let mut c = Case::new();
        let dy = c.input(&[1, 2, 6, 6], Domain::Signed);
        let y = c.op_to(Prim::UpsampleGrad { mode, scale: [2, 2] }, &[dy], Some(&[1, 2, 3, 3]));
        let l = c.scalar_loss(y);
        c.check(l, &[dy], "upsample_grad");
    }
}

#[test]
fn stop_grad_cuts_and_integers_carry_nothing() {
    let mut c = Case::new();
    let x = c.input(&[3], Domain::Signed);
    let s = c.op(Prim::StopGrad, &[x]);
    let y = c.op(Prim::Binary(BinaryOp::Mul), &[x, s]);
    let l = c.scalar_loss(y);
    // d/dx (x · stop(x)) = stop(x), not 2x.
    let grads = autodiff::grad(&mut c.g, l, &[x]).unwrap();
    let g = c.g.clone();
    let dx = c.eval(&g, &c.inputs, grads[0]);
    let r = &c.inputs[1];
    for k in 0..3 {
        assert!((dx.data[k] - c.inputs[0].data[k] * r.data[k]).abs() < 1e-12);
    }
}

/// WGAN-GP: P(w) = Σ_b (‖∂f/∂x_b‖ - 1)² with f(x) = Σ v · tanh(conv(x, w)); the gradient
/// of P with respect to w differentiates a gradient.
#[test]
fn second_order_gradient_penalty_on_a_conv_critic() {
    let mut c = Case::new();
    let x = c.input(&[2, 1, 5, 5], Domain::Signed);
    let w = c.input(&[3, 1, 3, 3], Domain::Signed);
    let geo = geometry(2, 1, 1, 1);
    let h = c.op(Prim::Conv2d(geo), &[x, w]);
    let h = c.op(Prim::Unary(UnaryOp::Tanh), &[h]);
    let f = c.scalar_loss(h);
    let g = c.op(Prim::Grad, &[f, x]);
    let g2 = c.op(Prim::Binary(BinaryOp::Mul), &[g, g]);
    let s = c.op(Prim::Reduce { op: ReduceOp::Sum, axes: vec![1, 2, 3] }, &[g2]);
    let norm = c.op(Prim::Unary(UnaryOp::Sqrt), &[s]);
    let one = c.op_to(Prim::Fill { value: F64(1.0) }, &[], Some(&[1, 1, 1, 1]));
    let d = c.op(Prim::Binary(BinaryOp::Sub), &[norm, one]);
    let d2 = c.op(Prim::Binary(BinaryOp::Mul), &[d, d]);
    let p = c.op(Prim::Reduce { op: ReduceOp::Sum, axes: vec![0, 1, 2, 3] }, &[d2]);
    let p = c.op_to(Prim::Reshape, &[p], Some(&[]));
    c.g.outputs.push(Output { name: "penalty".into(), node: p });
    // Expand the inner grad, then differentiate the penalty again.
    let expanded = autodiff::expand_grads(&c.g).unwrap();
    let p = expanded.outputs[0].node;
    let Case { inputs, rng, .. } = c;
    let c = Case { g: expanded, inputs, rng };
    c.check(p, &[NodeId::new(1)], "gradient of a gradient penalty");
}

/// Batched well-conditioned matrices (`2I + U(-1, 1)`) and one whose elimination must swap
/// rows (a near-permutation with a negative determinant).
fn matrices(c: &mut Case) -> Vec<NodeId> {
    let noise = c.input(&[2, 3, 3], Domain::Signed);
    let eye: Vec<f64> = (0..18).map(|i| if (i % 9) / 3 == i % 3 { 2.0 } else { 0.0 }).collect();
    let eye = c.leaf(Value::f32(&[2, 3, 3], &eye).unwrap());
    let shifted = c.op(Prim::Binary(BinaryOp::Add), &[noise, eye]);
    let swap = c.leaf(Value::f32(&[3, 3], &[0.1, 1.0, 0.2, 1.0, 0.15, 0.3, 0.2, 0.3, 1.5]).unwrap());
    vec![noise, shifted, swap]
}

#[test]
fn log_abs_det_and_inverse_with_their_second_derivatives() {
    for (prim, name) in [(Prim::LogAbsDet, "logabsdet"), (Prim::Inverse, "inverse")] {
        for pick in [1, 2] {
            let mut c = Case::new();
            let m = matrices(&mut c);
            let (x, wrt) = (m[pick], if pick == 1 { m[0] } else { m[2] });
            let y = c.op(prim.clone(), &[x]);
            let l = c.scalar_loss(y);
            c.check(l, &[wrt], &format!("{name} of matrices {pick}"));
        }
        // Second order: the gradient of a loss of the first gradient.
        let mut c = Case::new();
        let m = matrices(&mut c);
        let y = c.op(prim.clone(), &[m[1]]);
        let l = c.scalar_loss(y);
        let g = autodiff::grad(&mut c.g, l, &[m[0]]).unwrap()[0];
        let l2 = c.scalar_loss(g);
        c.check(l2, &[m[0]], &format!("{name}, second order"));
    }
}
