//! Fusion on small hand-built graphs: which reduces join their producer's kernel, which
//! matmuls take their consumers as an epilogue, what each kernel still writes, that backward
//! work stays out of forward kernels, and that the planned steps compute what the graph
//! computes on the reference interpreter.

#![allow(clippy::unwrap_used)]

use genc_compiler::dim::Dim;
use genc_compiler::fuse::{self, MAX_REDUCTIONS, Role};
use genc_compiler::graph::{Graph, Node, NodeId, Output};
use genc_compiler::interp::{self, Leaves, Value};
use genc_compiler::prim::{BinaryOp, Prim, ReduceOp, UnaryOp};
use genc_compiler::program::Step;
use genc_compiler::types::TensorType;

fn node(g: &mut Graph, prim: Prim, shape: &[i64], inputs: &[NodeId]) -> NodeId {
    let ty = TensorType::f32(shape.iter().map(|&d| Dim::constant(d)).collect());
    g.add(Node { prim, ty, span: Default::default(), origin: String::new() }, inputs)
}

fn reduce(g: &mut Graph, op: ReduceOp, axes: &[usize], x: NodeId) -> NodeId {
    let mut shape: Vec<i64> = g.ty(x).concrete().unwrap().iter().map(|&d| d as i64).collect();
    for &a in axes {
        shape[a] = 1;
    }
    node(g, Prim::Reduce { op, axes: axes.to_vec() }, &shape, &[x])
}

fn output(g: &mut Graph, name: &str, node: NodeId) {
    g.outputs.push(Output { name: name.into(), node });
}

/// `x` [4, 6] and `m` [1, 6], inputs 0 and 1; `d = x - m` (through a broadcast), `sq = d * d`.
fn base() -> (Graph, NodeId, NodeId) {
    let mut g = Graph { input_names: vec!["x".into(), "m".into()], ..Graph::default() };
    let x = node(&mut g, Prim::Input { index: 0 }, &[4, 6], &[]);
    let m = node(&mut g, Prim::Input { index: 1 }, &[1, 6], &[]);
    let mb = node(&mut g, Prim::Broadcast, &[4, 6], &[m]);
    let d = node(&mut g, Prim::Binary(BinaryOp::Sub), &[4, 6], &[x, mb]);
    let sq = node(&mut g, Prim::Binary(BinaryOp::Mul), &[4, 6], &[d, d]);
    (g, d, sq)
}

/// Plans `g` as one phase and checks its steps against the graph on the interpreter.
fn planned_steps_match(g: &Graph) -> Vec<Step> {
    let x = Value::f32(&[4, 6], &(0..24).map(|i| f64::from(i) * 0.25 - 2.0).collect::<Vec<_>>()).unwrap();
    let m = Value::f32(&[1, 6], &[0.5, -1.0, 0.25, 2.0, 0.0, 1.5]).unwrap();
    steps_match_on(g, &[x, m])
}

/// Plans `g` as one phase, runs it and the graph on `inputs`, and compares every output.
fn steps_match_on(g: &Graph, inputs: &[Value]) -> Vec<Step> {
    let phase = genc_compiler::plan::lower_graph(g, "test").unwrap();
    let leaves = Leaves { seed: 1, inputs, params: &[], buffers: &[] };
    let want = interp::eval_outputs(g, &leaves).unwrap();
    let got = interp::run_phase(&phase, &leaves).unwrap();
    for (w, (name, h)) in want.iter().zip(&got) {
        assert_eq!(w.shape, h.shape, "{name}");
        for (a, b) in w.data.iter().zip(&h.data) {
            assert!((a - b).abs() <= 1e-12 * (1.0 + a.abs()), "{name}: {a} vs {b}");
        }
    }
    phase.steps
}

fn fused_reduces(steps: &[Step]) -> Vec<&Step> {
    steps.iter().filter(|s| matches!(s, Step::FusedReduce { .. })).collect()
}

/// `sum(d * d)`: the reduce is the group's tail and nothing of the group is written.
#[test]
fn a_reduce_read_only_by_itself_writes_nothing_else() {
    let (mut g, _, sq) = base();
    let s = reduce(&mut g, ReduceOp::Sum, &[0], sq);
    output(&mut g, "s", s);
    let part = fuse::partition(&g);
    assert!(matches!(part.roles[s.index()], Role::Reduced(_)));
    assert_eq!(part.kernel_count(&g), 1);
    let steps = planned_steps_match(&g);
    let fused = fused_reduces(&steps);
    assert_eq!(fused.len(), 1);
    let Step::FusedReduce { outputs, reductions, axes, .. } = fused[0] else { unreachable!() };
    assert!(outputs.is_empty(), "{outputs:?}");
    assert_eq!((axes.as_slice(), reductions.len()), (&[0usize][..], 1));
}

/// `d` is also a graph output: the fused kernel writes it on the way (no second launch).
#[test]
fn members_read_elsewhere_are_written_by_the_fused_kernel() {
    let (mut g, d, sq) = base();
    let s = reduce(&mut g, ReduceOp::Mean, &[0, 1], sq);
    output(&mut g, "s", s);
    output(&mut g, "d", d);
    assert_eq!(fuse::partition(&g).kernel_count(&g), 1);
    let steps = planned_steps_match(&g);
    let Step::FusedReduce { outputs, .. } = fused_reduces(&steps)[0] else { unreachable!() };
    assert_eq!(outputs.len(), 1);
}

/// Reduces over the same axes share the pass (up to the cap); other axes get their own kernel.
#[test]
fn reduces_over_the_same_axes_share_one_pass() {
    let (mut g, d, sq) = base();
    let a = reduce(&mut g, ReduceOp::Sum, &[0], sq);
    let b = reduce(&mut g, ReduceOp::Max, &[0], d);
    let c = reduce(&mut g, ReduceOp::Sum, &[1], d);
    for (name, n) in [("a", a), ("b", b), ("c", c)] {
        output(&mut g, name, n);
    }
    let part = fuse::partition(&g);
    assert!(matches!(part.roles[a.index()], Role::Reduced(_)));
    assert!(matches!(part.roles[b.index()], Role::Reduced(_)));
    assert_eq!(part.roles[c.index()], Role::Kernel);
    assert_eq!(part.kernel_count(&g), 2);
    let steps = planned_steps_match(&g);
    let Step::FusedReduce { outputs, reductions, .. } = fused_reduces(&steps)[0] else { unreachable!() };
    assert_eq!(reductions.len(), 2);
    // `d` is read by the unfused reduce over axis 1.
    assert_eq!(outputs.len(), 1);

    let (mut g, _, sq) = base();
    let many: Vec<NodeId> = (0..=MAX_REDUCTIONS).map(|_| reduce(&mut g, ReduceOp::Sum, &[0], sq)).collect();
    for (i, &n) in many.iter().enumerate() {
        output(&mut g, &format!("r{i}"), n);
    }
    let part = fuse::partition(&g);
    let folded = many.iter().filter(|n| matches!(part.roles[n.index()], Role::Reduced(_))).count();
    assert_eq!(folded, MAX_REDUCTIONS);
    planned_steps_match(&g);
}

/// `exp(d - sum(d))`: the element-wise use of a reduce's result cannot join the reduce's own
/// group (that would need the whole reduction before any element): it is a kernel after it.
#[test]
fn a_reduce_result_never_feeds_its_own_group() {
    let (mut g, d, _) = base();
    let s = reduce(&mut g, ReduceOp::Sum, &[1], d);
    let sb = node(&mut g, Prim::Broadcast, &[4, 6], &[s]);
    let e = node(&mut g, Prim::Binary(BinaryOp::Sub), &[4, 6], &[d, sb]);
    let y = node(&mut g, Prim::Unary(UnaryOp::Exp), &[4, 6], &[e]);
    output(&mut g, "y", y);
    let part = fuse::partition(&g);
    let Role::Reduced(k) = part.roles[s.index()] else { panic!("{:?}", part.roles[s.index()]) };
    assert_ne!(part.roles[y.index()], Role::Fused(k));
    assert_eq!(part.kernel_count(&g), 2);
    planned_steps_match(&g);
}

/// A reduce of a library kernel's output (here a matmul) has no prologue to take.
#[test]
fn a_reduce_of_a_library_kernel_stays_a_kernel() {
    let mut g = Graph { input_names: vec!["x".into()], ..Graph::default() };
    let x = node(&mut g, Prim::Input { index: 0 }, &[4, 6], &[]);
    let p = node(&mut g, Prim::MatMul { transpose_a: true, transpose_b: false }, &[6, 6], &[x, x]);
    let s = reduce(&mut g, ReduceOp::Sum, &[0], p);
    output(&mut g, "s", s);
    let part = fuse::partition(&g);
    assert_eq!(part.roles[s.index()], Role::Kernel);
    planned_steps_match(&g);
}

/// `x` [4, 6] @ `w` [6, 5] + `b` [1, 5] then tanh (inputs 0, 1, 2): a dense layer.
fn dense() -> (Graph, NodeId, NodeId) {
    let mut g = Graph { input_names: vec!["x".into(), "w".into(), "b".into()], ..Graph::default() };
    let x = node(&mut g, Prim::Input { index: 0 }, &[4, 6], &[]);
    let w = node(&mut g, Prim::Input { index: 1 }, &[6, 5], &[]);
    let b = node(&mut g, Prim::Input { index: 2 }, &[1, 5], &[]);
    let z = node(&mut g, Prim::MatMul { transpose_a: false, transpose_b: false }, &[4, 5], &[x, w]);
    let bb = node(&mut g, Prim::Broadcast, &[4, 5], &[b]);
    let pre = node(&mut g, Prim::Binary(BinaryOp::Add), &[4, 5], &[z, bb]);
    let h = node(&mut g, Prim::Unary(UnaryOp::Tanh), &[4, 5], &[pre]);
    (g, z, h)
}

/// Plans `g` and checks it against the graph on the interpreter, with dense-layer inputs.
fn dense_steps_match(g: &Graph) -> Vec<Step> {
    let ramp = |n: usize, scale: f64| (0..n).map(|i| (i as f64 * 0.37).sin() * scale).collect::<Vec<_>>();
    let inputs = [
        Value::f32(&[4, 6], &ramp(24, 1.0)).unwrap(),
        Value::f32(&[6, 5], &ramp(30, 0.5)).unwrap(),
        Value::f32(&[1, 5], &ramp(5, 0.1)).unwrap(),
    ];
    steps_match_on(g, &inputs)
}

/// A dense layer is one kernel: the bias and activation are the matmul's epilogue, and the
/// matmul's own result is not written when nothing else reads it.
#[test]
fn a_dense_layer_is_one_kernel() {
    let (mut g, z, h) = dense();
    output(&mut g, "h", h);
    let part = fuse::partition(&g);
    assert!(matches!(part.roles[z.index()], Role::Head(_)));
    assert_eq!(part.kernel_count(&g), 1);
    let steps = dense_steps_match(&g);
    let epilogues: Vec<&Step> = steps.iter().filter(|s| matches!(s, Step::OpEpilogue { .. })).collect();
    assert_eq!(epilogues.len(), 1);
    let Step::OpEpilogue { outputs, .. } = epilogues[0] else { unreachable!() };
    assert!(outputs.iter().all(|&(r, _)| r != 0), "the pre-bias product is not written");
}

/// The epilogue also writes the op's result when a later kernel reads it.
#[test]
fn an_epilogue_writes_the_op_result_read_elsewhere() {
    let (mut g, z, h) = dense();
    let s = reduce(&mut g, ReduceOp::Sum, &[0, 1], z);
    output(&mut g, "h", h);
    output(&mut g, "s", s);
    let part = fuse::partition(&g);
    assert!(matches!(part.roles[z.index()], Role::Head(_)));
    let steps = dense_steps_match(&g);
    let Some(Step::OpEpilogue { outputs, .. }) = steps.iter().find(|s| matches!(s, Step::OpEpilogue { .. }))
    else {
        panic!("no epilogue")
    };
    assert!(outputs.iter().any(|&(r, _)| r == 0));
}

/// An op read by a kernel that runs before its group would begin stays a kernel of its own:
/// as a head it would run only when the group does.
#[test]
fn an_op_read_before_its_group_begins_is_not_a_head() {
    let mut g = Graph { input_names: vec!["x".into(), "w".into(), "b".into()], ..Graph::default() };
    let x = node(&mut g, Prim::Input { index: 0 }, &[4, 6], &[]);
    let w = node(&mut g, Prim::Input { index: 1 }, &[6, 5], &[]);
    let b = node(&mut g, Prim::Input { index: 2 }, &[1, 5], &[]);
    let z = node(&mut g, Prim::MatMul { transpose_a: false, transpose_b: false }, &[4, 5], &[x, w]);
    // A reduction of z, then a group that reads z and that reduction: it begins after both.
    let s = reduce(&mut g, ReduceOp::Sum, &[0], z);
    let sb = node(&mut g, Prim::Broadcast, &[4, 5], &[s]);
    let bb = node(&mut g, Prim::Broadcast, &[4, 5], &[b]);
    let d = node(&mut g, Prim::Binary(BinaryOp::Sub), &[4, 5], &[z, sb]);
    let e = node(&mut g, Prim::Binary(BinaryOp::Add), &[4, 5], &[d, bb]);
    output(&mut g, "e", e);
    let part = fuse::partition(&g);
    assert_eq!(part.roles[z.index()], Role::Kernel);
    dense_steps_match(&g);
}

/// A node of the backward pass does not join a forward group: `1 - tanh(x)^2` is computed by
/// the backward kernel that needs it, not written by the forward one.
#[test]
fn backward_nodes_stay_out_of_forward_groups() {
    let (mut g, _, h) = dense();
    let grad = |g: &mut Graph, prim: Prim, inputs: &[NodeId]| {
        let ty = g.ty(inputs[0]).clone();
        g.add(
            Node { prim, ty, span: Default::default(), origin: genc_compiler::autodiff::ORIGIN.into() },
            inputs,
        )
    };
    let sq = grad(&mut g, Prim::Binary(BinaryOp::Mul), &[h, h]);
    output(&mut g, "h", h);
    output(&mut g, "sq", sq);
    let part = fuse::partition(&g);
    let (Role::Fused(fwd), Role::Fused(bwd)) = (part.roles[h.index()], part.roles[sq.index()]) else {
        panic!("{:?} {:?}", part.roles[h.index()], part.roles[sq.index()])
    };
    assert_ne!(fwd, bwd);
    dense_steps_match(&g);
}
