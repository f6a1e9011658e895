//! Graph-to-graph passes, each pure: dead-code elimination, common-subexpression
//! elimination, constant folding and algebraic simplification. [`simplify`] runs them to a
//! fixed point in one place, so the pipeline is readable in one function.

use std::collections::HashMap;

use crate::graph::{Graph, Node, NodeId, Output};
use crate::prim::{BinaryOp, DType, F64, Prim, ReduceOp, UnaryOp};
use crate::types::TensorType;

/// What a rewrite does with one node, given its already-rewritten inputs.
enum Rewrite {
    /// Keep the node (with the new inputs).
    Keep,
    /// Use an existing node of the new graph instead.
    Use(NodeId),
    /// Replace the node by another op over the new inputs' graph.
    Make(Node, Vec<NodeId>),
}

/// Rebuilds `g` node by node through `rule`, keeping outputs and input names.
fn rebuild(g: &Graph, mut rule: impl FnMut(&Graph, &Node, &[NodeId]) -> Rewrite) -> Graph {
    let mut out = Graph::with_inputs_of(g);
    let mut map: Vec<NodeId> = Vec::with_capacity(g.len());
    for n in g.dag.node_indices() {
        let node = g.node(n);
        let inputs: Vec<NodeId> = g.inputs(n).iter().map(|i| map[i.index()]).collect();
        let new = match rule(&out, node, &inputs) {
            Rewrite::Keep => out.add(node.clone(), &inputs),
            Rewrite::Use(existing) => existing,
            Rewrite::Make(made, ins) => out.add(made, &ins),
        };
        map.push(new);
    }
    out.outputs =
        g.outputs.iter().map(|o| Output { name: o.name.clone(), node: map[o.node.index()] }).collect();
    out
}

/// Dead-code elimination: only nodes some output depends on survive.
pub fn dce(g: &Graph) -> Graph {
    let live = g.live_nodes();
    let mut keep = vec![false; g.len()];
    for n in live {
        keep[n.index()] = true;
    }
    let mut out = Graph::with_inputs_of(g);
    let mut map: Vec<Option<NodeId>> = vec![None; g.len()];
    for n in g.dag.node_indices() {
        if !keep[n.index()] {
            continue;
        }
        let inputs: Vec<NodeId> = g.inputs(n).iter().filter_map(|i| map[i.index()]).collect();
        map[n.index()] = Some(out.add(g.node(n).clone(), &inputs));
    }
    out.outputs = g
        .outputs
        .iter()
        .filter_map(|o| map[o.node.index()].map(|node| Output { name: o.name.clone(), node }))
        .collect();
    out
}

/// Common-subexpression elimination: an op applied to the same inputs with the same type is
/// computed once. Random draws are distinct by their stream, so they are never merged.
pub fn cse(g: &Graph) -> Graph {
    let mut seen: HashMap<(Prim, Vec<NodeId>, TensorType), NodeId> = HashMap::new();
    let mut out = Graph::with_inputs_of(g);
    let mut map: Vec<NodeId> = Vec::with_capacity(g.len());
    for n in g.dag.node_indices() {
        let node = g.node(n);
        let inputs: Vec<NodeId> = g.inputs(n).iter().map(|i| map[i.index()]).collect();
        let key = (node.prim.clone(), inputs.clone(), node.ty.clone());
        let new = match seen.get(&key) {
            Some(&existing) => existing,
            None => {
                let id = out.add(node.clone(), &inputs);
                seen.insert(key, id);
                id
            }
        };
        map.push(new);
    }
    out.outputs =
        g.outputs.iter().map(|o| Output { name: o.name.clone(), node: map[o.node.index()] }).collect();
    out
}

/// The value of a node that is a uniform constant (a `Fill`, possibly reshaped).
fn uniform_value(g: &Graph, n: NodeId) -> Option<f64> {
    match &g.node(n).prim {
        Prim::Fill { value } => Some(value.0),
        _ => None,
    }
}

/// Constant folding: element-wise ops, casts, reshapes, broadcasts and reductions of uniform
/// constants become one `Fill` of the result's type.
pub fn fold_constants(g: &Graph) -> Graph {
    rebuild(g, |out, node, inputs| {
        let values: Option<Vec<f64>> = inputs.iter().map(|&i| uniform_value(out, i)).collect();
        let Some(values) = values else { return Rewrite::Keep };
        if inputs.is_empty() {
            return Rewrite::Keep;
        }
        let folded = match &node.prim {
            Prim::Unary(op) => fold_unary(*op, values[0]),
            Prim::Binary(op) => fold_binary(*op, values[0], values[1], node.ty.dtype),
            Prim::Select => Some(if values[0] != 0.0 { values[1] } else { values[2] }),
            Prim::Cast { to } => Some(match to {
                DType::F32 => values[0],
                DType::I32 => values[0].trunc(),
                DType::Bool => f64::from(u8::from(values[0] != 0.0)),
            }),
            Prim::Reshape | Prim::Broadcast | Prim::StopGrad => Some(values[0]),
            Prim::Reduce { op, axes } => {
                let shape = &out.ty(inputs[0]).shape;
                let extents: Option<Vec<i64>> = axes.iter().map(|&a| shape.get(a)?.as_const()).collect();
                extents.and_then(|e| fold_reduce(*op, values[0], e.iter().product()))
            }
            _ => None,
        };
        match folded {
            Some(v) if v.is_finite() => Rewrite::Make(
                Node {
                    prim: Prim::Fill { value: F64(v) },
                    ty: node.ty.clone(),
                    span: node.span,
                    origin: node.origin.clone(),
                },
                Vec::new(),
            ),
            _ => Rewrite::Keep,
        }
    })
}

/// A reduction of `count` (> 0) copies of `x`.
fn fold_reduce(op: ReduceOp, x: f64, count: i64) -> Option<f64> {
    if count <= 0 {
        return None;
    }
    Some(match op {
        ReduceOp::Sum => x * count as f64,
        ReduceOp::Prod => x.powi(i32::try_from(count).ok()?),
        ReduceOp::Mean | ReduceOp::Max | ReduceOp::Min => x,
        // Ties break toward the lowest index.
        ReduceOp::ArgMax | ReduceOp::ArgMin => 0.0,
    })
}

fn fold_unary(op: UnaryOp, x: f64) -> Option<f64> {
    Some(match op {
        UnaryOp::Neg => -x,
        UnaryOp::Abs => x.abs(),
        UnaryOp::Sqrt => x.sqrt(),
        UnaryOp::Exp => x.exp(),
        UnaryOp::Log => x.ln(),
        UnaryOp::Recip => 1.0 / x,
        _ => return None,
    })
}

fn fold_binary(op: BinaryOp, a: f64, b: f64, dtype: DType) -> Option<f64> {
    if dtype != DType::F32 && !matches!(op, BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul) {
        return None;
    }
    Some(match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        BinaryOp::Div => a / b,
        BinaryOp::Pow => a.powf(b),
        BinaryOp::Max => a.max(b),
        BinaryOp::Min => a.min(b),
        _ => return None,
    })
}

/// Algebraic simplification: `x * 1`, `x + 0`, `x - 0`, `x / 1` become `x` when `x` already
/// has the result's type; reshapes to the same shape vanish and reshape chains collapse;
/// permutations compose (and vanish when the identity); `stop_grad(stop_grad(x))` is one.
pub fn simplify_algebra(g: &Graph) -> Graph {
    rebuild(g, |out, node, inputs| {
        let same_type = |i: NodeId| out.ty(i) == &node.ty;
        match &node.prim {
            Prim::Binary(op) => {
                let (a, b) = (inputs[0], inputs[1]);
                let (va, vb) = (uniform_value(out, a), uniform_value(out, b));
                let identity = match op {
                    BinaryOp::Mul => (vb == Some(1.0)).then_some(a).or((va == Some(1.0)).then_some(b)),
                    BinaryOp::Add => (vb == Some(0.0)).then_some(a).or((va == Some(0.0)).then_some(b)),
                    BinaryOp::Sub | BinaryOp::Div => {
                        let unit = if *op == BinaryOp::Sub { 0.0 } else { 1.0 };
                        (vb == Some(unit)).then_some(a)
                    }
                    _ => None,
                };
                match identity {
                    Some(x) if same_type(x) => Rewrite::Use(x),
                    _ => Rewrite::Keep,
                }
            }
            Prim::Reshape => {
                let x = inputs[0];
                if same_type(x) {
                    return Rewrite::Use(x);
                }
                // reshape(reshape(y)) = reshape(y)
                if matches!(out.node(x).prim, Prim::Reshape) {
                    let y = out.inputs(x)[0];
                    if same_type(y) {
                        return Rewrite::Use(y);
                    }
                    return Rewrite::Make(node.clone(), vec![y]);
                }
                Rewrite::Keep
            }
            Prim::Broadcast if same_type(inputs[0]) => Rewrite::Use(inputs[0]),
            Prim::Permute { perm } => {
                let x = inputs[0];
                if perm.iter().enumerate().all(|(i, &p)| i == p) {
                    return Rewrite::Use(x);
                }
                if let Prim::Permute { perm: inner } = &out.node(x).prim {
                    let composed: Vec<usize> = perm.iter().map(|&p| inner[p]).collect();
                    let y = out.inputs(x)[0];
                    if composed.iter().enumerate().all(|(i, &p)| i == p) {
                        return Rewrite::Use(y);
                    }
                    let mut made = node.clone();
                    made.prim = Prim::Permute { perm: composed };
                    return Rewrite::Make(made, vec![y]);
                }
                Rewrite::Keep
            }
            Prim::StopGrad if matches!(out.node(inputs[0]).prim, Prim::StopGrad) => Rewrite::Use(inputs[0]),
            _ => Rewrite::Keep,
        }
    })
}

/// The passes in order, to a fixed point (at most a few rounds), then dead code removed.
pub fn simplify(g: &Graph) -> Graph {
    let mut current = dce(g);
    for _ in 0..4 {
        let next = dce(&cse(&simplify_algebra(&fold_constants(&current))));
        let done = next.len() == current.len();
        current = next;
        if done {
            break;
        }
    }
    current
}

/// Counts the primitive ops a graph computes (leaves excluded).
pub fn op_count(g: &Graph) -> usize {
    g.live_nodes()
        .into_iter()
        .filter(|&n| {
            !matches!(
                g.node(n).prim,
                Prim::Input { .. }
                    | Prim::Param { .. }
                    | Prim::Buffer { .. }
                    | Prim::Fill { .. }
                    | Prim::Iota { .. }
            )
        })
        .count()
}
