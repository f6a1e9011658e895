//! Reverse-mode automatic differentiation as a graph-to-graph transform.
//!
//! The gradient of a graph is more nodes of the same primitives appended to it, so a gradient
//! can itself be differentiated (WGAN-GP's penalty differentiates `grad(D(x̂), x̂)` again).
//! The derivative rules are one exhaustive `match` over [`Prim`], each arm stating its
//! calculus. `StopGrad` cuts the flow; integer and bool values carry no gradient.

use std::collections::HashMap;

use genc_grammar::Span;

use crate::dim::Dim;
use crate::graph::{Graph, Node, NodeId};
use crate::prim::{BinaryOp, DType, F64, Prim, ReduceOp, ScanOp, UnaryOp};
use crate::shape_rules;
use crate::types::TensorType;

/// Why a gradient could not be built.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum AdError {
    #[error("the derivative of `{0}` with respect to this input is not available")]
    Unsupported(String),
    #[error("internal: a gradient node does not type-check: {0}")]
    Internal(String),
    #[error("`{0}` must be a scalar to be differentiated")]
    NotScalar(String),
}

type Res<T> = Result<T, AdError>;

/// The `origin` of every node differentiation creates: the backward pass.
pub const ORIGIN: &str = "grad";

/// Appends to `g` the gradient of the scalar `output` with respect to each node of `wrt`.
/// A node the output does not depend on gets a zero gradient.
pub fn grad(g: &mut Graph, output: NodeId, wrt: &[NodeId]) -> Res<Vec<NodeId>> {
    if g.ty(output).rank() != 0 {
        return Err(AdError::NotScalar(g.ty(output).to_string()));
    }
    let mut b = Builder { g, span: Span::default() };
    b.span = b.g.node(output).span;
    let mut adjoint: HashMap<NodeId, NodeId> = HashMap::new();
    let one = b.fill(1.0, TensorType::scalar(DType::F32));
    adjoint.insert(output, one);
    // Nodes are appended in topological order, so a descending walk visits every consumer
    // of a node before the node itself.
    let needed = b.needs_gradient(output, wrt);
    for index in (0..=output.index()).rev() {
        let n = NodeId::new(index);
        let Some(&dy) = adjoint.get(&n) else { continue };
        if !needed[index] {
            continue;
        }
        let inputs = b.g.inputs(n);
        let contributions = b.rule(n, &inputs, dy)?;
        for (input, d) in inputs.into_iter().zip(contributions) {
            let Some(d) = d else { continue };
            if !needed[input.index()] || b.g.ty(input).dtype != DType::F32 {
                continue;
            }
            let total = match adjoint.get(&input) {
                Some(&prev) => b.bin(BinaryOp::Add, prev, d)?,
                None => d,
            };
            adjoint.insert(input, total);
        }
    }
    wrt.iter()
        .map(|&x| match adjoint.get(&x) {
            Some(&d) => Ok(d),
            None => {
                let ty = TensorType::f32(b.g.ty(x).shape.clone());
                Ok(b.fill(0.0, ty))
            }
        })
        .collect()
}

/// Replaces every `Grad` node by its gradient graph, innermost first, returning a graph in
/// which no `Grad` remains (what every evaluator needs). Nested `grad(grad(..))` works
/// because the inner one is expanded before the outer one is differentiated.
pub fn expand_grads(g: &Graph) -> Res<Graph> {
    expand_grads_traced(g).map(|t| t.graph)
}

/// [`expand_grads`], saying where each node came from.
#[derive(Clone, Debug)]
pub struct Expanded {
    pub graph: Graph,
    /// The new node standing for each old node.
    pub map: Vec<NodeId>,
    /// For each new node, the old node whose expansion made it (a gradient's nodes come from
    /// its `Grad`).
    pub made_by: Vec<usize>,
}

/// [`expand_grads`], keeping the old-to-new node map (a sampler's segments are ranges of
/// the old graph's nodes).
pub fn expand_grads_traced(g: &Graph) -> Res<Expanded> {
    let mut out = Graph::with_inputs_of(g);
    let mut map: Vec<NodeId> = Vec::with_capacity(g.len());
    let mut made_by: Vec<usize> = Vec::with_capacity(g.len());
    for n in g.dag.node_indices() {
        let node = g.node(n).clone();
        let inputs: Vec<NodeId> = g.inputs(n).iter().map(|i| map[i.index()]).collect();
        let new = match node.prim {
            Prim::Grad => {
                let d = grad(&mut out, inputs[0], &[inputs[1]])?;
                d[0]
            }
            _ => out.add(node, &inputs),
        };
        made_by.resize(out.len(), n.index());
        map.push(new);
    }
    out.outputs = g
        .outputs
        .iter()
        .map(|o| crate::graph::Output { name: o.name.clone(), node: map[o.node.index()] })
        .collect();
    Ok(Expanded { graph: out, map, made_by })
}

struct Builder<'g> {
    g: &'g mut Graph,
    span: Span,
}

impl Builder<'_> {
    /// Marks the nodes on some path from a `wrt` node to `output`: only they need adjoints.
    fn needs_gradient(&self, output: NodeId, wrt: &[NodeId]) -> Vec<bool> {
        let n = output.index() + 1;
        let mut from_wrt = vec![false; n];
        for &x in wrt {
            if x.index() < n {
                from_wrt[x.index()] = true;
            }
        }
        for i in 0..n {
            let id = NodeId::new(i);
            if matches!(self.g.node(id).prim, Prim::StopGrad) {
                continue;
            }
            if !from_wrt[i] && self.g.inputs(id).iter().any(|p| p.index() < n && from_wrt[p.index()]) {
                from_wrt[i] = true;
            }
        }
        // Also reachable backwards from the output.
        let mut to_out = vec![false; n];
        let mut stack = vec![output];
        while let Some(x) = stack.pop() {
            if !std::mem::replace(&mut to_out[x.index()], true) {
                stack.extend(self.g.inputs(x));
            }
        }
        (0..n).map(|i| from_wrt[i] && to_out[i]).collect()
    }

    fn add(&mut self, prim: Prim, inputs: &[NodeId], declared: Option<TensorType>) -> Res<NodeId> {
        let types: Vec<&TensorType> = inputs.iter().map(|&i| self.g.ty(i)).collect();
        let ty = shape_rules::infer(&prim, &types, declared.as_ref())
            .map_err(|e| AdError::Internal(format!("{prim}: {}", e.message)))?;
        let node = Node { prim, ty, span: self.span, origin: ORIGIN.into() };
        Ok(self.g.add(node, inputs))
    }

    fn fill(&mut self, value: f64, ty: TensorType) -> NodeId {
        let node =
            Node { prim: Prim::Fill { value: F64(value) }, ty, span: self.span, origin: ORIGIN.into() };
        self.g.add(node, &[])
    }

    /// A constant of rank `rank` with extents 1.
    fn constant(&mut self, value: f64, rank: usize) -> NodeId {
        self.fill(value, TensorType::f32(vec![Dim::constant(1); rank]))
    }

    fn un(&mut self, op: UnaryOp, x: NodeId) -> Res<NodeId> {
        self.add(Prim::Unary(op), &[x], None)
    }

    fn bin(&mut self, op: BinaryOp, a: NodeId, b: NodeId) -> Res<NodeId> {
        self.add(Prim::Binary(op), &[a, b], None)
    }

    fn mul_const(&mut self, x: NodeId, c: f64) -> Res<NodeId> {
        let k = self.constant(c, self.g.ty(x).rank());
        self.bin(BinaryOp::Mul, x, k)
    }

    fn select(&mut self, c: NodeId, a: NodeId, b: NodeId) -> Res<NodeId> {
        self.add(Prim::Select, &[c, a, b], None)
    }

    fn zeros_like(&mut self, x: NodeId) -> NodeId {
        let ty = TensorType::f32(self.g.ty(x).shape.clone());
        self.fill(0.0, ty)
    }

    fn reshape(&mut self, x: NodeId, shape: Vec<Dim>) -> Res<NodeId> {
        if self.g.ty(x).shape == shape {
            return Ok(x);
        }
        let ty = TensorType::new(self.g.ty(x).dtype, shape);
        self.add(Prim::Reshape, &[x], Some(ty))
    }

    fn broadcast_to(&mut self, x: NodeId, shape: &[Dim]) -> Res<NodeId> {
        if self.g.ty(x).shape == shape {
            return Ok(x);
        }
        let ty = TensorType::new(self.g.ty(x).dtype, shape.to_vec());
        self.add(Prim::Broadcast, &[x], Some(ty))
    }

    /// Sums a gradient of the output's shape down to an input's (the adjoint of numpy
    /// broadcasting: reduce over the axes the input had as extent 1).
    fn unbroadcast(&mut self, d: NodeId, to: &[Dim]) -> Res<NodeId> {
        let from = self.g.ty(d).shape.clone();
        if from == to {
            return Ok(d);
        }
        let axes: Vec<usize> =
            (0..to.len()).filter(|&i| to[i].as_const() == Some(1) && from[i].as_const() != Some(1)).collect();
        if axes.is_empty() {
            return Ok(d);
        }
        let r = self.add(Prim::Reduce { op: ReduceOp::Sum, axes }, &[d], None)?;
        self.reshape(r, to.to_vec())
    }

    /// The number of elements a reduction over `axes` combines, as a constant node.
    fn count(&mut self, shape: &[Dim], axes: &[usize]) -> Res<Option<NodeId>> {
        let mut n = 1i64;
        for &a in axes {
            match shape[a].as_const() {
                Some(v) => n *= v,
                None => return Ok(None),
            }
        }
        Ok(Some(self.constant(n as f64, shape.len())))
    }

    /// `∂L/∂input_i` for each input of node `n`, given `dy = ∂L/∂n`; `None` where an input
    /// gets no gradient.
    fn rule(&mut self, n: NodeId, inputs: &[NodeId], dy: NodeId) -> Res<Vec<Option<NodeId>>> {
        let node = self.g.node(n).clone();
        let y = n;
        let x = |i: usize| inputs[i];
        let shape = |b: &Self, i: usize| b.g.ty(inputs[i]).shape.clone();
        Ok(match &node.prim {
            // Leaves have no inputs.
            Prim::Input { .. }
            | Prim::Param { .. }
            | Prim::Buffer { .. }
            | Prim::Fill { .. }
            | Prim::Iota { .. }
            | Prim::Random { .. } => vec![],
            Prim::Unary(op) => {
                let d = match op {
                    // d(-x) = -1
                    UnaryOp::Neg => Some(self.un(UnaryOp::Neg, dy)?),
                    // d|x| = sign(x)
                    UnaryOp::Abs => {
                        let s = self.un(UnaryOp::Sign, x(0))?;
                        Some(self.bin(BinaryOp::Mul, dy, s)?)
                    }
                    // piecewise constant: zero almost everywhere
                    UnaryOp::Sign | UnaryOp::Floor | UnaryOp::Ceil | UnaryOp::Round | UnaryOp::Not => None,
                    // d(1/x) = -1/x² = -y²
                    UnaryOp::Recip => {
                        let y2 = self.bin(BinaryOp::Mul, y, y)?;
                        let t = self.bin(BinaryOp::Mul, dy, y2)?;
                        Some(self.un(UnaryOp::Neg, t)?)
                    }
                    // d√x = 1 / (2√x) = 0.5 / y
                    UnaryOp::Sqrt => {
                        let t = self.bin(BinaryOp::Div, dy, y)?;
                        Some(self.mul_const(t, 0.5)?)
                    }
                    // d(x^-½) = -½ x^-3/2 = -½ y³
                    UnaryOp::Rsqrt => {
                        let y2 = self.bin(BinaryOp::Mul, y, y)?;
                        let y3 = self.bin(BinaryOp::Mul, y2, y)?;
                        let t = self.bin(BinaryOp::Mul, dy, y3)?;
                        Some(self.mul_const(t, -0.5)?)
                    }
                    // d eˣ = eˣ = y
                    UnaryOp::Exp => Some(self.bin(BinaryOp::Mul, dy, y)?),
                    // d log x = 1/x
                    UnaryOp::Log => Some(self.bin(BinaryOp::Div, dy, x(0))?),
                    // d log(1+x) = 1/(1+x)
                    UnaryOp::Log1p => {
                        let one = self.constant(1.0, self.g.ty(x(0)).rank());
                        let t = self.bin(BinaryOp::Add, x(0), one)?;
                        Some(self.bin(BinaryOp::Div, dy, t)?)
                    }
                    // d tanh x = 1 - y²
                    UnaryOp::Tanh => {
                        let y2 = self.bin(BinaryOp::Mul, y, y)?;
                        let one = self.constant(1.0, self.g.ty(y).rank());
                        let t = self.bin(BinaryOp::Sub, one, y2)?;
                        Some(self.bin(BinaryOp::Mul, dy, t)?)
                    }
                    // d σ(x) = y (1 - y)
                    UnaryOp::Sigmoid => {
                        let one = self.constant(1.0, self.g.ty(y).rank());
                        let t = self.bin(BinaryOp::Sub, one, y)?;
                        let t = self.bin(BinaryOp::Mul, y, t)?;
                        Some(self.bin(BinaryOp::Mul, dy, t)?)
                    }
                    // d relu x = [x > 0]
                    UnaryOp::Relu => {
                        let zero = self.constant(0.0, self.g.ty(x(0)).rank());
                        let pos = self.bin(BinaryOp::Gt, x(0), zero)?;
                        let z = self.zeros_like(dy);
                        Some(self.select(pos, dy, z)?)
                    }
                    // d erf x = 2/√π e^(-x²)
                    UnaryOp::Erf => {
                        let x2 = self.bin(BinaryOp::Mul, x(0), x(0))?;
                        let n2 = self.un(UnaryOp::Neg, x2)?;
                        let e = self.un(UnaryOp::Exp, n2)?;
                        let t = self.mul_const(e, std::f64::consts::FRAC_2_SQRT_PI)?;
                        Some(self.bin(BinaryOp::Mul, dy, t)?)
                    }
                    // d sin x = cos x
                    UnaryOp::Sin => {
                        let c = self.un(UnaryOp::Cos, x(0))?;
                        Some(self.bin(BinaryOp::Mul, dy, c)?)
                    }
                    // d cos x = -sin x
                    UnaryOp::Cos => {
                        let s = self.un(UnaryOp::Sin, x(0))?;
                        let t = self.bin(BinaryOp::Mul, dy, s)?;
                        Some(self.un(UnaryOp::Neg, t)?)
                    }
                };
                vec![d]
            }
            Prim::Binary(op) => {
                let (a, b) = (x(0), x(1));
                let (sa, sb) = (shape(self, 0), shape(self, 1));
                let (da, db) = match op {
                    // ∂(a+b) = (1, 1)
                    BinaryOp::Add => (Some(dy), Some(dy)),
                    // ∂(a-b) = (1, -1)
                    BinaryOp::Sub => (Some(dy), Some(self.un(UnaryOp::Neg, dy)?)),
                    // ∂(ab) = (b, a)
                    BinaryOp::Mul => {
                        (Some(self.bin(BinaryOp::Mul, dy, b)?), Some(self.bin(BinaryOp::Mul, dy, a)?))
                    }
                    // ∂(a/b) = (1/b, -a/b²) = (1/b, -y/b)
                    BinaryOp::Div => {
                        let da = self.bin(BinaryOp::Div, dy, b)?;
                        let t = self.bin(BinaryOp::Mul, da, y)?;
                        (Some(da), Some(self.un(UnaryOp::Neg, t)?))
                    }
                    // a mod b = a - b⌊a/b⌋: ∂ = (1, -⌊a/b⌋)
                    BinaryOp::Rem => {
                        let q = self.bin(BinaryOp::Div, a, b)?;
                        let q = self.un(UnaryOp::Floor, q)?;
                        let t = self.bin(BinaryOp::Mul, dy, q)?;
                        (Some(dy), Some(self.un(UnaryOp::Neg, t)?))
                    }
                    // ∂(aᵇ) = (b aᵇ⁻¹, aᵇ log a)
                    BinaryOp::Pow => {
                        // b aᵇ⁻¹ without dividing by a (a = 0 with b ≥ 1 is common: x ^ 2).
                        let one = self.constant(1.0, self.g.ty(b).rank());
                        let bm1 = self.bin(BinaryOp::Sub, b, one)?;
                        let p = self.bin(BinaryOp::Pow, a, bm1)?;
                        let bt = self.bin(BinaryOp::Mul, dy, b)?;
                        let da = self.bin(BinaryOp::Mul, bt, p)?;
                        let db = if self.constant_node(b) {
                            None
                        } else {
                            let l = self.un(UnaryOp::Log, a)?;
                            let t = self.bin(BinaryOp::Mul, dy, y)?;
                            Some(self.bin(BinaryOp::Mul, t, l)?)
                        };
                        (Some(da), db)
                    }
                    // ∂max(a, b) goes to the larger (to a on ties); min likewise
                    BinaryOp::Max | BinaryOp::Min => {
                        let cmp = if *op == BinaryOp::Max { BinaryOp::Ge } else { BinaryOp::Le };
                        let c = self.bin(cmp, a, b)?;
                        let c = self.broadcast_to(c, &self.g.ty(dy).shape.clone())?;
                        let z = self.zeros_like(dy);
                        (Some(self.select(c, dy, z)?), Some(self.select(c, z, dy)?))
                    }
                    // comparisons and logic are piecewise constant
                    BinaryOp::Eq
                    | BinaryOp::Ne
                    | BinaryOp::Lt
                    | BinaryOp::Le
                    | BinaryOp::Gt
                    | BinaryOp::Ge
                    | BinaryOp::And
                    | BinaryOp::Or => (None, None),
                };
                let da = match da {
                    Some(d) => Some(self.unbroadcast(d, &sa)?),
                    None => None,
                };
                let db = match db {
                    Some(d) => Some(self.unbroadcast(d, &sb)?),
                    None => None,
                };
                vec![da, db]
            }
            // select(c, a, b): the gradient goes to the branch taken
            Prim::Select => {
                let c = self.broadcast_to(x(0), &self.g.ty(dy).shape.clone())?;
                let z = self.zeros_like(dy);
                let da = self.select(c, dy, z)?;
                let db = self.select(c, z, dy)?;
                let (sa, sb) = (shape(self, 1), shape(self, 2));
                vec![None, Some(self.unbroadcast(da, &sa)?), Some(self.unbroadcast(db, &sb)?)]
            }
            // a float-to-float cast is the identity; casts from or to integers carry nothing
            Prim::Cast { .. } => vec![(self.g.ty(x(0)).dtype == DType::F32).then_some(dy)],
            // stop_grad is a constant to autodiff
            Prim::StopGrad => vec![None],
            Prim::Grad => return Err(AdError::Unsupported("grad (expand it first)".into())),
            Prim::Reduce { op, axes } => {
                let sx = shape(self, 0);
                let d = match op {
                    // ∂Σ = 1, spread back over the reduced axes
                    ReduceOp::Sum => Some(self.broadcast_to(dy, &sx)?),
                    // ∂mean = 1/n
                    ReduceOp::Mean => {
                        let b = self.broadcast_to(dy, &sx)?;
                        match self.count(&sx, axes)? {
                            Some(n) => Some(self.bin(BinaryOp::Div, b, n)?),
                            None => return Err(AdError::Unsupported("mean over a symbolic extent".into())),
                        }
                    }
                    // ∂max: shared equally by the elements equal to the max
                    ReduceOp::Max | ReduceOp::Min => {
                        let yb = self.broadcast_to(y, &sx)?;
                        let eq = self.bin(BinaryOp::Eq, x(0), yb)?;
                        let m = self.add(Prim::Cast { to: DType::F32 }, &[eq], None)?;
                        let cnt =
                            self.add(Prim::Reduce { op: ReduceOp::Sum, axes: axes.clone() }, &[m], None)?;
                        let share = self.bin(BinaryOp::Div, dy, cnt)?;
                        let share = self.broadcast_to(share, &sx)?;
                        Some(self.bin(BinaryOp::Mul, share, m)?)
                    }
                    // ∂Π = Π / x (x ≠ 0)
                    ReduceOp::Prod => {
                        let t = self.bin(BinaryOp::Mul, dy, y)?;
                        let t = self.broadcast_to(t, &sx)?;
                        Some(self.bin(BinaryOp::Div, t, x(0))?)
                    }
                    ReduceOp::ArgMax | ReduceOp::ArgMin => None,
                };
                vec![d]
            }
            Prim::Scan { op, axis } => {
                // cumsum: ∂x_i = Σ_{j ≥ i} g_j, the reversed running sum = total - cumsum(g) + g
                let g = match op {
                    ScanOp::Sum => dy,
                    // cumprod: ∂x_i = Σ_{j ≥ i} g_j y_j / x_i
                    ScanOp::Prod => self.bin(BinaryOp::Mul, dy, y)?,
                };
                let total = self.add(Prim::Reduce { op: ReduceOp::Sum, axes: vec![*axis] }, &[g], None)?;
                let total = self.broadcast_to(total, &self.g.ty(g).shape.clone())?;
                let cs = self.add(Prim::Scan { op: ScanOp::Sum, axis: *axis }, &[g], None)?;
                let r = self.bin(BinaryOp::Sub, total, cs)?;
                let r = self.bin(BinaryOp::Add, r, g)?;
                let d = match op {
                    ScanOp::Sum => r,
                    ScanOp::Prod => self.bin(BinaryOp::Div, r, x(0))?,
                };
                vec![Some(d)]
            }
            // movement: the adjoint movement
            Prim::Reshape => vec![Some(self.reshape(dy, shape(self, 0))?)],
            Prim::Permute { perm } => {
                let mut inverse = vec![0; perm.len()];
                for (i, &p) in perm.iter().enumerate() {
                    inverse[p] = i;
                }
                vec![Some(self.add(Prim::Permute { perm: inverse }, &[dy], None)?)]
            }
            Prim::Broadcast => vec![Some(self.unbroadcast(dy, &shape(self, 0))?)],
            Prim::Slice { axis, start, step } => {
                let sx = shape(self, 0);
                let len = self.g.ty(dy).shape[*axis].clone();
                let n = sx[*axis].clone();
                let d = match (step, n.as_const(), len.as_const()) {
                    // a contiguous slice's adjoint pads with zeros
                    (1, Some(n), Some(len)) => {
                        let mut pads = vec![(0, 0); sx.len()];
                        pads[*axis] = (*start, (n as usize).saturating_sub(start + len as usize));
                        self.add(Prim::Pad { pads, value: F64(0.0) }, &[dy], None)?
                    }
                    // a strided slice's adjoint scatters to start + i·step
                    _ => {
                        let idx_ty = TensorType::new(DType::I32, vec![len]);
                        let iota = self.g.add(
                            Node {
                                prim: Prim::Iota { axis: 0 },
                                ty: idx_ty,
                                span: self.span,
                                origin: ORIGIN.into(),
                            },
                            &[],
                        );
                        let k = self.fill(*step as f64, TensorType::new(DType::I32, vec![Dim::constant(1)]));
                        let s = self.fill(*start as f64, TensorType::new(DType::I32, vec![Dim::constant(1)]));
                        let idx = self.bin(BinaryOp::Mul, iota, k)?;
                        let idx = self.bin(BinaryOp::Add, idx, s)?;
                        self.add(Prim::ScatterAdd { axis: *axis }, &[idx, dy], Some(TensorType::f32(sx)))?
                    }
                };
                vec![Some(d)]
            }
            // pad's adjoint slices the padding away
            Prim::Pad { pads, .. } => {
                let sx = shape(self, 0);
                let mut d = dy;
                for (axis, &(before, _)) in pads.iter().enumerate() {
                    let mut s = self.g.ty(d).shape.clone();
                    if s[axis] == sx[axis] {
                        continue;
                    }
                    s[axis] = sx[axis].clone();
                    d = self.add(
                        Prim::Slice { axis, start: before, step: 1 },
                        &[d],
                        Some(TensorType::f32(s)),
                    )?;
                }
                vec![Some(d)]
            }
            // concat's adjoint slices each part back out
            Prim::Concat { axis } => {
                let mut out = Vec::new();
                let mut offset = 0usize;
                for i in 0..inputs.len() {
                    let si = shape(self, i);
                    let Some(len) = si[*axis].as_const() else {
                        return Err(AdError::Unsupported("concat along a symbolic axis".into()));
                    };
                    let d = if self.g.ty(x(i)).dtype == DType::F32 {
                        Some(self.add(
                            Prim::Slice { axis: *axis, start: offset, step: 1 },
                            &[dy],
                            Some(TensorType::f32(si)),
                        )?)
                    } else {
                        None
                    };
                    out.push(d);
                    offset += len as usize;
                }
                out
            }
            // gather's adjoint adds each slot's gradient back where it came from
            Prim::Gather { axis } => {
                let sx = shape(self, 0);
                let d = self.add(Prim::ScatterAdd { axis: *axis }, &[x(1), dy], Some(TensorType::f32(sx)))?;
                vec![Some(d), None]
            }
            // scatter_add's adjoint gathers
            Prim::ScatterAdd { axis } => {
                vec![None, Some(self.add(Prim::Gather { axis: *axis }, &[dy, x(0)], None)?)]
            }
            // C = A'B': ∂A' = g B'ᵀ, ∂B' = A'ᵀ g, transposed back where A or B was
            Prim::MatMul { transpose_a: ta, transpose_b: tb } => {
                let (a, b) = (x(0), x(1));
                let da = if *ta {
                    self.add(Prim::MatMul { transpose_a: *tb, transpose_b: true }, &[b, dy], None)?
                } else {
                    self.add(Prim::MatMul { transpose_a: false, transpose_b: !tb }, &[dy, b], None)?
                };
                let db = if *tb {
                    self.add(Prim::MatMul { transpose_a: true, transpose_b: *ta }, &[dy, a], None)?
                } else {
                    self.add(Prim::MatMul { transpose_a: !ta, transpose_b: false }, &[a, dy], None)?
                };
                vec![Some(da), Some(db)]
            }
            // y = conv(x, w): ∂x = conv_transpose(g, w), ∂w = weight_grad(x, g)
            Prim::Conv2d(geo) => {
                let (sx, sw) = (shape(self, 0), shape(self, 1));
                let dx = self.conv_transpose_to(dy, x(1), geo, &sx)?;
                let dw = self.add(Prim::Conv2dWeightGrad(*geo), &[x(0), dy], Some(TensorType::f32(sw)))?;
                vec![Some(dx), Some(dw)]
            }
            // y = conv_transpose(x, w), the adjoint of z ↦ conv(z, w):
            // ∂x = conv(g, w), ∂w = weight_grad(g, x)
            Prim::ConvTranspose2d { geometry, .. } => {
                let sw = shape(self, 1);
                let dx = self.add(Prim::Conv2d(*geometry), &[dy, x(1)], None)?;
                let dw =
                    self.add(Prim::Conv2dWeightGrad(*geometry), &[dy, x(0)], Some(TensorType::f32(sw)))?;
                vec![Some(dx), Some(dw)]
            }
            // W = weight_grad(x, e) is bilinear with <W, v> = <conv(x, v), e>:
            // ∂x = conv_transpose(e, g), ∂e = conv(x, g)
            Prim::Conv2dWeightGrad(geo) => {
                let sx = shape(self, 0);
                let dx = self.conv_transpose_to(x(1), dy, geo, &sx)?;
                let de = self.add(Prim::Conv2d(*geo), &[x(0), dy], None)?;
                vec![Some(dx), Some(de)]
            }
            Prim::Pool2d { kind, window } => {
                vec![Some(self.add(Prim::Pool2dGrad { kind: *kind, window: *window }, &[x(0), dy], None)?)]
            }
            // avg pooling's gradient is linear in dy with adjoint avg pooling; max pooling's
            // second derivative would need the argmax positions as a primitive
            Prim::Pool2dGrad { kind, window } => match kind {
                crate::prim::PoolKind::Avg => {
                    vec![None, Some(self.add(Prim::Pool2d { kind: *kind, window: *window }, &[dy], None)?)]
                }
                crate::prim::PoolKind::Max => {
                    return Err(AdError::Unsupported("max_pool2d's gradient (a second derivative)".into()));
                }
            },
            Prim::Upsample { mode, scale } => {
                let sx = shape(self, 0);
                vec![Some(self.add(
                    Prim::UpsampleGrad { mode: *mode, scale: *scale },
                    &[dy],
                    Some(TensorType::f32(sx)),
                )?)]
            }
            Prim::UpsampleGrad { mode, scale } => {
                vec![Some(self.add(Prim::Upsample { mode: *mode, scale: *scale }, &[dy], None)?)]
            }
            // ∂ log|det A| = A^-T, scaled by each matrix's incoming gradient
            Prim::LogAbsDet => {
                let sx = shape(self, 0);
                let inv = self.add(Prim::Inverse, &[x(0)], None)?;
                let r = sx.len();
                let mut perm: Vec<usize> = (0..r).collect();
                perm.swap(r - 2, r - 1);
                let inv_t = self.add(Prim::Permute { perm }, &[inv], None)?;
                let mut kept = self.g.ty(dy).shape.clone();
                kept.extend([Dim::constant(1), Dim::constant(1)]);
                let g = self.reshape(dy, kept)?;
                let g = self.broadcast_to(g, &sx)?;
                vec![Some(self.bin(BinaryOp::Mul, g, inv_t)?)]
            }
            // Y = A^-1: ∂A = -Y^T dY Y^T
            Prim::Inverse => {
                let t = self.add(Prim::MatMul { transpose_a: true, transpose_b: false }, &[y, dy], None)?;
                let u = self.add(Prim::MatMul { transpose_a: false, transpose_b: true }, &[t, y], None)?;
                vec![Some(self.un(UnaryOp::Neg, u)?)]
            }
        })
    }

    /// True for a node with no path from any leaf that varies (fills and their arithmetic).
    fn constant_node(&self, n: NodeId) -> bool {
        match &self.g.node(n).prim {
            Prim::Fill { .. } | Prim::Iota { .. } => true,
            Prim::Reshape | Prim::Broadcast | Prim::Cast { .. } => {
                self.g.inputs(n).iter().all(|&i| self.constant_node(i))
            }
            _ => false,
        }
    }

    /// `conv_transpose(e, w)` with the output padding that lands exactly on `target`'s shape.
    fn conv_transpose_to(
        &mut self,
        e: NodeId,
        w: NodeId,
        geo: &crate::prim::ConvGeometry,
        target: &[Dim],
    ) -> Res<NodeId> {
        let se = self.g.ty(e).shape.clone();
        let sw = self.g.ty(w).shape.clone();
        let mut op = [0usize; 2];
        for axis in 0..2 {
            let base = shape_rules::conv_transpose_out(&se[2 + axis], &sw[2 + axis], geo, 0, axis)
                .map_err(|r| AdError::Internal(r.message))?;
            let diff = target[2 + axis].sub(&base).map_err(|_| AdError::Internal("overflow".into()))?;
            op[axis] = diff.as_const().and_then(|v| usize::try_from(v).ok()).ok_or_else(|| {
                AdError::Unsupported("a convolution gradient over a symbolic extent".into())
            })?;
        }
        self.add(Prim::ConvTranspose2d { geometry: *geo, output_padding: op }, &[e, w], None)
    }
}
