//! Adding primitive nodes to the graph being built: the shape rule runs on each, and a
//! failure becomes a diagnostic that shows the shapes of the inputs and where they came from.

use genc_grammar::Span;

use super::{Checker, Val};
use crate::diag::TypeError;
use crate::dim::Dim;
use crate::graph::{IndexUse, Node, NodeId};
use crate::prim::{BinaryOp, DType, F64, Prim, ReduceOp, UnaryOp};
use crate::shape_rules::{self, RuleError};
use crate::types::TensorType;

impl<'a> Checker<'a> {
    pub(super) fn ty(&self, n: NodeId) -> &TensorType {
        self.graph.ty(n)
    }

    /// Adds a node after checking its shape rule; on failure reports E0106 (E0122 for element
    /// types) at `span`, with a secondary label on each input's origin.
    pub(super) fn node(
        &mut self,
        prim: Prim,
        inputs: &[NodeId],
        declared: Option<TensorType>,
        span: Span,
    ) -> Result<NodeId, ()> {
        let types: Vec<&TensorType> = inputs.iter().map(|&n| self.graph.ty(n)).collect();
        match shape_rules::infer(&prim, &types, declared.as_ref()) {
            Ok(ty) => Ok(self.push_node(prim, ty, inputs, span)),
            Err(RuleError { message, help, dtype }) => {
                let code = if dtype { "E0122" } else { "E0106" };
                let what = self.origin.clone();
                let label =
                    if what.is_empty() { "in this expression".to_string() } else { format!("in `{what}`") };
                let mut e = TypeError::new(code, span, message).label(label);
                for &i in inputs {
                    let node = self.graph.node(i);
                    if node.span != span && !node.span.is_empty() {
                        e = e.note(node.span, format!("this is {}", node.ty));
                    }
                }
                if let Some(h) = help {
                    e = e.help(h);
                }
                self.error(e);
                Err(())
            }
        }
    }

    pub(super) fn push_node(&mut self, prim: Prim, ty: TensorType, inputs: &[NodeId], span: Span) -> NodeId {
        let origin = self.origin.clone();
        self.graph.add(Node { prim, ty, span, origin }, inputs)
    }

    /// `node` with a poison result on failure.
    pub(super) fn val(
        &mut self,
        prim: Prim,
        inputs: &[NodeId],
        declared: Option<TensorType>,
        span: Span,
    ) -> Val {
        match self.node(prim, inputs, declared, span) {
            Ok(n) => Val::Tensor(n),
            Err(()) => Val::Poison,
        }
    }

    /// A constant tensor of rank `rank` with every extent 1, so it broadcasts against anything.
    pub(super) fn splat(&mut self, value: f64, dtype: DType, rank: usize, span: Span) -> NodeId {
        let ty = TensorType::new(dtype, vec![Dim::constant(1); rank]);
        self.push_node(Prim::Fill { value: F64(value) }, ty, &[], span)
    }

    pub(super) fn fill(&mut self, value: f64, ty: TensorType, span: Span) -> NodeId {
        self.push_node(Prim::Fill { value: F64(value) }, ty, &[], span)
    }

    /// Reshapes `x` to `shape` (element counts are checked by the rule).
    pub(super) fn reshape(&mut self, x: NodeId, shape: Vec<Dim>, span: Span) -> Result<NodeId, ()> {
        if self.ty(x).shape == shape {
            return Ok(x);
        }
        let ty = TensorType::new(self.ty(x).dtype, shape);
        self.node(Prim::Reshape, &[x], Some(ty), span)
    }

    /// Inserts leading extent-1 axes so `x` has rank `rank` (numpy's right alignment).
    pub(super) fn lift_rank(&mut self, x: NodeId, rank: usize, span: Span) -> Result<NodeId, ()> {
        let have = self.ty(x).rank();
        if have >= rank {
            return Ok(x);
        }
        let mut shape = vec![Dim::constant(1); rank - have];
        shape.extend(self.ty(x).shape.iter().cloned());
        self.reshape(x, shape, span)
    }

    /// A tensor for an operand: tensors as they are, numbers as splatted constants.
    fn operand(&mut self, v: &Val, dtype: DType, rank: usize, span: Span) -> Result<NodeId, ()> {
        match v {
            Val::Tensor(n) => {
                let n = *n;
                // Integer tensors meet floats as floats, as in PyTorch.
                let n = if self.ty(n).dtype == DType::I32 && dtype == DType::F32 {
                    self.node(Prim::Cast { to: DType::F32 }, &[n], None, span)?
                } else {
                    n
                };
                self.lift_rank(n, rank, span)
            }
            Val::Int(d) => match d.as_const() {
                Some(c) => Ok(self.splat(c as f64, dtype, rank, span)),
                None => {
                    let value = self.dim_value(d, span)?;
                    let value = match dtype {
                        DType::F32 => value,
                        to => self.node(Prim::Cast { to }, &[value], None, span)?,
                    };
                    self.lift_rank(value, rank, span)
                }
            },
            Val::Float(f) => Ok(self.splat(*f, dtype, rank, span)),
            Val::Bool(b) => Ok(self.splat(f64::from(u8::from(*b)), DType::Bool, rank, span)),
            Val::Poison => Err(()),
            other => {
                self.error(
                    TypeError::new(
                        "E0105",
                        span,
                        format!("expected a tensor or a number, found {}", other.kind_name()),
                    )
                    .label("not a tensor"),
                );
                Err(())
            }
        }
    }

    /// The value of a symbolic size (`B * (B - 1)` in a loss) as an f32 scalar. Each atom's
    /// value is the element count of a tensor of ones of that extent (`sum(ones([B]))`),
    /// which constant folding turns into a number once planning binds the batch; the
    /// polynomial is then evaluated on those scalars, so `B - 100` may be negative.
    fn dim_value(&mut self, d: &Dim, span: Span) -> Result<NodeId, ()> {
        let mut total: Option<NodeId> = None;
        for (coeff, atoms) in d.monomials() {
            let mut term = self.splat(coeff as f64, DType::F32, 0, span);
            for (atom, power) in atoms {
                let ones = self.fill(1.0, TensorType::f32(vec![atom]), span);
                let count = self.reduce(ReduceOp::Sum, ones, &[0], false, span)?;
                for _ in 0..power {
                    term = self.binary(BinaryOp::Mul, term, count, span)?;
                }
            }
            total = Some(match total {
                Some(sum) => self.binary(BinaryOp::Add, sum, term, span)?,
                None => term,
            });
        }
        Ok(total.unwrap_or_else(|| self.splat(0.0, DType::F32, 0, span)))
    }

    /// Records that `indices` pick one of `classes` things for `op` when they come straight
    /// from an input (labels from the data), so that the feed checks their values before each
    /// step and the train block can compare them with the data's classes.
    pub(super) fn index_use(&mut self, indices: NodeId, classes: &Dim, op: &str, span: Span) {
        let Some(classes) = classes.as_const() else { return };
        if let Some((lo, hi)) = self.int_range(indices) {
            if lo >= 0 && hi <= classes {
                return;
            }
        }
        let mut n = indices;
        loop {
            match self.graph.node(n).prim {
                Prim::Input { index } => {
                    let op = op.to_string();
                    self.graph.index_uses.push(IndexUse { input: index, classes, op, span });
                    return;
                }
                Prim::Reshape | Prim::Cast { .. } | Prim::Broadcast | Prim::StopGrad => {
                    n = self.graph.inputs(n)[0];
                }
                // Computed here: counted out of range at run time.
                _ => {
                    let guard =
                        super::index_guard::PendingGuard { node: indices, classes, op: op.to_string(), span };
                    self.guards.push(guard);
                    return;
                }
            }
        }
    }

    /// The values `lo..hi` an int tensor is known to take: a `randint`, an `arange`, a
    /// constant, `% c` with `c > 0` (floor modulo: `0..c`), and sums, differences, minima and
    /// maxima of those; `None` when the checker cannot tell.
    fn int_range(&self, n: NodeId) -> Option<(i64, i64)> {
        if let Some(&range) = self.int_ranges.get(&n) {
            return Some(range);
        }
        let node = self.graph.node(n);
        let inputs = self.graph.inputs(n);
        let range = |k: usize| inputs.get(k).and_then(|&i| self.int_range(i));
        match &node.prim {
            Prim::Iota { axis } => node.ty.shape.get(*axis)?.as_const().map(|e| (0, e.max(1))),
            Prim::Fill { value } if value.0.fract() == 0.0 && value.0.abs() < 2f64.powi(31) => {
                Some((value.0 as i64, value.0 as i64 + 1))
            }
            Prim::Reshape | Prim::Broadcast | Prim::StopGrad => range(0),
            Prim::Cast { to: DType::I32 } if self.ty(inputs[0]).dtype == DType::I32 => range(0),
            Prim::Binary(BinaryOp::Rem) => match range(1)? {
                (c, d) if d == c + 1 && c > 0 => Some((0, c)),
                _ => None,
            },
            Prim::Binary(op @ (BinaryOp::Add | BinaryOp::Sub | BinaryOp::Min | BinaryOp::Max)) => {
                let ((a, b), (c, d)) = (range(0)?, range(1)?);
                // Closed bounds [a, b - 1] and [c, d - 1].
                let (lo, hi) = match op {
                    BinaryOp::Add => (a + c, b - 1 + d - 1),
                    BinaryOp::Sub => (a - (d - 1), b - 1 - c),
                    BinaryOp::Min => (a.min(c), (b - 1).min(d - 1)),
                    _ => (a.max(c), (b - 1).max(d - 1)),
                };
                Some((lo, hi + 1))
            }
            _ => None,
        }
    }

    /// An element-wise binary op where at least one side is a tensor.
    pub(super) fn tensor_binary(&mut self, op: BinaryOp, a: &Val, b: &Val, span: Span) -> Val {
        let tensor_ty = |v: &Val, c: &Checker| match v {
            Val::Tensor(n) => Some(c.ty(*n).clone()),
            _ => None,
        };
        let (ta, tb) = (tensor_ty(a, self), tensor_ty(b, self));
        let rank = ta.as_ref().map_or(0, TensorType::rank).max(tb.as_ref().map_or(0, TensorType::rank));
        let float = |t: &Option<TensorType>| t.as_ref().is_some_and(|t| t.dtype == DType::F32);
        let dtype = if float(&ta) || float(&tb) || matches!(a, Val::Float(_)) || matches!(b, Val::Float(_)) {
            DType::F32
        } else if let Some(t) = ta.as_ref().or(tb.as_ref()) {
            t.dtype
        } else {
            DType::F32
        };
        let (Ok(x), Ok(y)) = (self.operand(a, dtype, rank, span), self.operand(b, dtype, rank, span)) else {
            return Val::Poison;
        };
        if let (Some(ta), Some(tb)) = (&ta, &tb)
            && ta.rank() != tb.rank()
            && shape_rules::broadcast_shapes(&self.ty(x).shape, &self.ty(y).shape).is_err()
        {
            return self.rank_alignment_error(ta, tb, span);
        }
        self.val(Prim::Binary(op), &[x, y], None, span)
    }

    /// Operands of different ranks line up on their last axes (numpy's rule); when that fails
    /// but aligning the shorter one on the leading axes would work, say how to reshape it.
    fn rank_alignment_error(&mut self, ta: &TensorType, tb: &TensorType, span: Span) -> Val {
        let (low, high) = if ta.rank() < tb.rank() { (ta, tb) } else { (tb, ta) };
        let mut lead = low.shape.clone();
        lead.resize(high.rank(), Dim::constant(1));
        let mut e = TypeError::new(
            "E0106",
            span,
            format!("cannot broadcast {low} with {high}: the shorter shape lines up with the last axes"),
        )
        .label(format!(
            "{low} is treated as {}",
            TensorType::new(low.dtype, {
                let mut s = vec![Dim::constant(1); high.rank() - low.rank()];
                s.extend(low.shape.iter().cloned());
                s
            })
        ));
        if shape_rules::broadcast_shapes(&lead, &high.shape).is_ok() {
            e = e.help(format!(
                "to line it up with the leading axes, reshape it: reshape(.., {})",
                crate::types::shape_text(&lead)
            ));
        }
        self.error(e)
    }

    pub(super) fn unary(&mut self, op: UnaryOp, x: NodeId, span: Span) -> Result<NodeId, ()> {
        self.node(Prim::Unary(op), &[x], None, span)
    }

    pub(super) fn binary(&mut self, op: BinaryOp, x: NodeId, y: NodeId, span: Span) -> Result<NodeId, ()> {
        let rank = self.ty(x).rank().max(self.ty(y).rank());
        let x = self.lift_rank(x, rank, span)?;
        let y = self.lift_rank(y, rank, span)?;
        self.node(Prim::Binary(op), &[x, y], None, span)
    }

    /// `x op c` for a constant `c`.
    pub(super) fn binary_const(&mut self, op: BinaryOp, x: NodeId, c: f64, span: Span) -> Result<NodeId, ()> {
        let rank = self.ty(x).rank();
        let dtype = self.ty(x).dtype;
        let k = self.splat(c, dtype, rank, span);
        self.node(Prim::Binary(op), &[x, k], None, span)
    }

    /// Reduces over `axes`; `keep` keeps them with extent 1, else they are dropped.
    pub(super) fn reduce(
        &mut self,
        op: ReduceOp,
        x: NodeId,
        axes: &[usize],
        keep: bool,
        span: Span,
    ) -> Result<NodeId, ()> {
        let mut axes = axes.to_vec();
        axes.sort_unstable();
        axes.dedup();
        let r = self.node(Prim::Reduce { op, axes: axes.clone() }, &[x], None, span)?;
        if keep {
            return Ok(r);
        }
        let shape: Vec<Dim> = self
            .ty(r)
            .shape
            .iter()
            .enumerate()
            .filter(|(i, _)| !axes.contains(i))
            .map(|(_, d)| d.clone())
            .collect();
        self.reshape(r, shape, span)
    }

    /// Mean over every axis, as a scalar.
    pub(super) fn mean_all(&mut self, x: NodeId, span: Span) -> Result<NodeId, ()> {
        let axes: Vec<usize> = (0..self.ty(x).rank()).collect();
        self.reduce(ReduceOp::Mean, x, &axes, false, span)
    }

    /// Broadcasts `x` (same rank) to `shape`.
    pub(super) fn broadcast(&mut self, x: NodeId, shape: Vec<Dim>, span: Span) -> Result<NodeId, ()> {
        if self.ty(x).shape == shape {
            return Ok(x);
        }
        let ty = TensorType::new(self.ty(x).dtype, shape);
        self.node(Prim::Broadcast, &[x], Some(ty), span)
    }

    pub(super) fn cast(&mut self, x: NodeId, to: DType, span: Span) -> Result<NodeId, ()> {
        if self.ty(x).dtype == to {
            return Ok(x);
        }
        self.node(Prim::Cast { to }, &[x], None, span)
    }

    /// A tensor value or a diagnostic saying one was expected.
    pub(super) fn expect_tensor(&mut self, v: &Val, span: Span, what: &str) -> Result<NodeId, ()> {
        match v {
            Val::Tensor(n) => Ok(*n),
            Val::Poison => Err(()),
            Val::Float(f) => Ok(self.fill(*f, TensorType::scalar(DType::F32), span)),
            other => {
                self.error(
                    TypeError::new(
                        "E0105",
                        span,
                        format!("{what} must be a tensor, found {}", other.kind_name()),
                    )
                    .label("not a tensor"),
                );
                Err(())
            }
        }
    }
}
