//! Run-time guards for indices the graph computes (`x[to_int(..)]`, `cross_entropy(logits,
//! to_int(round(x * 255)))`): a device kernel cannot stop a step, and a gather clamps what it
//! cannot read, so each such index gets a count of its out-of-range values as an output
//! (`check.index<k>`) that the runtime reads after the phase and reports (E0945). Indices fed
//! from the data are checked before upload instead (`IndexUse`, E0944), and indices whose
//! range the checker knows (`randint(.., lo, hi)` inside the extent) need no guard.

use genc_grammar::Span;

use crate::dim::Dim;
use crate::graph::{Graph, IndexGuard, Node, NodeId, Output};
use crate::prim::{BinaryOp, DType, F64, Prim, ReduceOp};
use crate::types::TensorType;

/// An index the graph computes that must lie in `0..classes`, read by `op` at `span`.
#[derive(Clone, Debug)]
pub(super) struct PendingGuard {
    pub node: NodeId,
    pub classes: i64,
    pub op: String,
    pub span: Span,
}

/// Adds each guard's count of out-of-range indices to `g` as output `check.index<k>`.
pub(super) fn add_guards(g: &mut Graph, guards: Vec<PendingGuard>) {
    for (k, guard) in guards.into_iter().enumerate() {
        let idx_ty = g.ty(guard.node).clone();
        let rank = idx_ty.rank();
        let ones = || vec![Dim::constant(1); rank];
        let add = |g: &mut Graph, prim: Prim, ty: TensorType, inputs: &[NodeId]| {
            g.add(Node { prim, ty, span: guard.span, origin: format!("{} index check", guard.op) }, inputs)
        };
        let bool_ty = TensorType::new(DType::Bool, idx_ty.shape.clone());
        let zero = add(g, Prim::Fill { value: F64(0.0) }, TensorType::new(DType::I32, ones()), &[]);
        let n =
            add(g, Prim::Fill { value: F64(guard.classes as f64) }, TensorType::new(DType::I32, ones()), &[]);
        let below = add(g, Prim::Binary(BinaryOp::Lt), bool_ty.clone(), &[guard.node, zero]);
        let above = add(g, Prim::Binary(BinaryOp::Ge), bool_ty.clone(), &[guard.node, n]);
        let out = add(g, Prim::Binary(BinaryOp::Or), bool_ty, &[below, above]);
        let count =
            add(g, Prim::Cast { to: DType::F32 }, TensorType::new(DType::F32, idx_ty.shape.clone()), &[out]);
        let total = add(
            g,
            Prim::Reduce { op: ReduceOp::Sum, axes: (0..rank).collect() },
            TensorType::new(DType::F32, ones()),
            &[count],
        );
        let name = format!("check.index{k}");
        g.outputs.push(Output { name: name.clone(), node: total });
        g.index_guards.push(IndexGuard {
            output: name,
            classes: guard.classes,
            op: guard.op,
            span: guard.span,
        });
    }
}
