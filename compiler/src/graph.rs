//! The graph IR: a petgraph DAG of primitive ops, each node typed and tied to the span of
//! the spec it came from, plus the stable text forms of the `graph`, `typed` and `dot` stages.

use std::fmt::Write as _;

use genc_grammar::Span;
use petgraph::Direction;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;

use crate::prim::Prim;
use crate::types::TensorType;

pub type NodeId = NodeIndex<u32>;

#[derive(Clone, Debug)]
pub struct Node {
    pub prim: Prim,
    pub ty: TensorType,
    /// The spec text this node was built from.
    pub span: Span,
    /// The layer or function that produced it, e.g. `G.conv_transpose2d0` or `bce_logits`.
    pub origin: String,
}

/// A named value a graph hands back (a loss, a logged metric, a net output).
#[derive(Clone, Debug)]
pub struct Output {
    pub name: String,
    pub node: NodeId,
}

/// An input whose values index something: class labels fed to `one_hot`, `embedding` or
/// `cross_entropy`. Nothing on a device can stop a kernel, so the data feed checks the
/// values against `classes` before a step runs (PyTorch raises where these would clamp).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexUse {
    pub input: usize,
    pub classes: i64,
    /// The op that reads the indices, as the spec names it (`one_hot`).
    pub op: String,
    pub span: Span,
}

/// A DAG of primitives. Edges carry the operand position, so `inputs` returns operands in
/// order; nodes are only ever appended, so node order is a topological order.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    pub dag: DiGraph<Node, usize>,
    pub outputs: Vec<Output>,
    /// Names of the `Input { index }` leaves, by index.
    pub input_names: Vec<String>,
    /// Inputs read as indices, with the range they must lie in.
    pub index_uses: Vec<IndexUse>,
    /// Indices the graph computes, each with the output that counts its out-of-range values.
    pub index_guards: Vec<IndexGuard>,
}

/// Output `output` counts the values of an index the graph computes that lie outside
/// `0..classes`; the runtime reads it after the phase (`check/index_guard.rs`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexGuard {
    pub output: String,
    pub classes: i64,
    pub op: String,
    pub span: Span,
}

impl Graph {
    /// An empty graph with `g`'s inputs: what a pass that rebuilds a graph starts from.
    pub fn with_inputs_of(g: &Graph) -> Graph {
        Graph {
            input_names: g.input_names.clone(),
            index_uses: g.index_uses.clone(),
            index_guards: g.index_guards.clone(),
            ..Graph::default()
        }
    }

    pub fn add(&mut self, node: Node, inputs: &[NodeId]) -> NodeId {
        let id = self.dag.add_node(node);
        for (pos, &input) in inputs.iter().enumerate() {
            self.dag.add_edge(input, id, pos);
        }
        id
    }

    pub fn node(&self, id: NodeId) -> &Node {
        &self.dag[id]
    }

    pub fn ty(&self, id: NodeId) -> &TensorType {
        &self.dag[id].ty
    }

    pub fn inputs(&self, id: NodeId) -> Vec<NodeId> {
        let mut edges: Vec<(usize, NodeId)> =
            self.dag.edges_directed(id, Direction::Incoming).map(|e| (*e.weight(), e.source())).collect();
        edges.sort();
        edges.into_iter().map(|(_, n)| n).collect()
    }

    pub fn len(&self) -> usize {
        self.dag.node_count()
    }

    pub fn is_empty(&self) -> bool {
        self.dag.node_count() == 0
    }

    /// The same graph with free dims bound (`B = 64`), so every shape is concrete.
    pub fn bind_dims(&self, bind: &dyn Fn(&str) -> Option<i64>) -> Result<Graph, String> {
        let mut out = self.clone();
        for n in self.dag.node_indices() {
            let node = &mut out.dag[n];
            let mut shape = Vec::with_capacity(node.ty.shape.len());
            for d in &node.ty.shape {
                match d.eval(bind) {
                    Some(v) if v >= 0 => shape.push(crate::dim::Dim::constant(v)),
                    _ => return Err(format!("cannot bind the dims of {} (`{}`)", node.ty, node.prim)),
                }
            }
            node.ty.shape = shape;
        }
        // What held for every value of a dim may fail for this one (a slice `x[0:32]` of a
        // batch bound to 16): every node's shape rule is checked again at the bound sizes.
        for n in out.dag.node_indices() {
            let inputs: Vec<&crate::types::TensorType> =
                out.inputs(n).into_iter().map(|i| &out.dag[i].ty).collect();
            let node = &out.dag[n];
            if let Err(e) = crate::shape_rules::infer(&node.prim, &inputs, Some(&node.ty)) {
                let at =
                    if node.origin.is_empty() { String::new() } else { format!(" in `{}`", node.origin) };
                return Err(format!("`{}`{at} at these sizes: {}", node.prim, e.message));
            }
        }
        Ok(out)
    }

    /// The nodes some output depends on, in order.
    pub fn live_nodes(&self) -> Vec<NodeId> {
        self.live_from(self.outputs.iter().map(|o| o.node))
    }

    /// The nodes some of `roots` depend on, in order.
    pub fn live_from(&self, roots: impl IntoIterator<Item = NodeId>) -> Vec<NodeId> {
        let mut live = vec![false; self.len()];
        let mut stack: Vec<NodeId> = roots.into_iter().collect();
        while let Some(n) = stack.pop() {
            if !std::mem::replace(&mut live[n.index()], true) {
                stack.extend(self.inputs(n));
            }
        }
        self.dag.node_indices().filter(|n| live[n.index()]).collect()
    }

    /// The text form: one line per live node, `%7 = conv2d[s=2,2 p=1,1 d=1,1](%3, %6)`, with
    /// its type when `typed`. Numbering is dense over live nodes, so it is stable.
    pub fn to_text(&self, typed: bool) -> String {
        self.to_text_rooted(typed, &[]).0
    }

    /// The text form with `roots` kept alive besides the outputs (what a sampler's host
    /// program reads), and the printed number of every node (`usize::MAX` when not shown).
    pub fn to_text_rooted(&self, typed: bool, roots: &[NodeId]) -> (String, Vec<usize>) {
        let live = self.live_from(self.outputs.iter().map(|o| o.node).chain(roots.iter().copied()));
        let mut number = vec![usize::MAX; self.len()];
        for (i, n) in live.iter().enumerate() {
            number[n.index()] = i;
        }
        let mut out = String::new();
        for &n in &live {
            let node = self.node(n);
            let args: Vec<String> =
                self.inputs(n).iter().map(|i| format!("%{}", number[i.index()])).collect();
            let _ = write!(out, "  %{} = {}", number[n.index()], self.describe(n));
            if !args.is_empty() {
                let _ = write!(out, "({})", args.join(", "));
            }
            if typed {
                let _ = write!(out, " : {}", node.ty);
            }
            if !node.origin.is_empty() {
                let _ = write!(out, "  // {}", node.origin);
            }
            out.push('\n');
        }
        for o in &self.outputs {
            let _ = writeln!(out, "  return {} = %{}", o.name, number[o.node.index()]);
        }
        (out, number)
    }

    fn describe(&self, n: NodeId) -> String {
        match &self.node(n).prim {
            Prim::Input { index } => {
                format!("input[{}]", self.input_names.get(*index).map(String::as_str).unwrap_or("?"))
            }
            other => other.to_string(),
        }
    }

    /// Graphviz source: one box per live node labelled with its op and type; `roots` stay
    /// alive besides the outputs (what a sampler's host program reads).
    pub fn to_dot(&self, name: &str, roots: &[NodeId]) -> String {
        let live = self.live_from(self.outputs.iter().map(|o| o.node).chain(roots.iter().copied()));
        let mut out = format!("digraph \"{name}\" {{\n  node [shape=box, fontname=monospace];\n");
        for &n in &live {
            let label = format!("{}\\n{}", self.describe(n), self.node(n).ty).replace('"', "\\\"");
            let _ = writeln!(out, "  n{} [label=\"{label}\"];", n.index());
        }
        for &n in &live {
            for (pos, input) in self.inputs(n).into_iter().enumerate() {
                let _ = writeln!(out, "  n{} -> n{} [label=\"{pos}\"];", input.index(), n.index());
            }
        }
        for o in &self.outputs {
            let _ = writeln!(
                out,
                "  \"{}\" [shape=plaintext];\n  n{} -> \"{}\";",
                o.name,
                o.node.index(),
                o.name
            );
        }
        out.push_str("}\n");
        out
    }
}
