//! Evaluating a whole graph on the host: every node in order, each through [`eval`].

use super::{ErrorKind, EvalError, Leaves, Value, eval};
use crate::graph::Graph;

/// Evaluates every node of `g` (whose shapes must all be concrete) and returns the value of
/// each node, indexed like the graph. `Grad` nodes must have been expanded first.
pub fn eval_graph(g: &Graph, leaves: &Leaves) -> Result<Vec<Value>, EvalError> {
    let mut values: Vec<Value> = Vec::with_capacity(g.len());
    for n in g.dag.node_indices() {
        let node = g.node(n);
        let shape = node.ty.concrete().ok_or_else(|| EvalError {
            op: node.prim.to_string(),
            kind: ErrorKind::Shape(format!("the node's shape {} is not concrete", node.ty)),
        })?;
        let inputs: Vec<&Value> = g.inputs(n).iter().map(|i| &values[i.index()]).collect();
        let v = eval(&node.prim, &inputs, &shape, node.ty.dtype, leaves)?;
        values.push(v);
    }
    Ok(values)
}

/// The values of the graph's outputs, in order.
pub fn eval_outputs(g: &Graph, leaves: &Leaves) -> Result<Vec<Value>, EvalError> {
    let values = eval_graph(g, leaves)?;
    Ok(g.outputs.iter().map(|o| values[o.node.index()].clone()).collect())
}
