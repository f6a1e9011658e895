//! A small builder of concrete graphs for the update programs: leaves, constants and
//! element-wise arithmetic with numpy broadcasting, every node of one origin. The checker
//! builds graphs from the language; this one builds them from a `train` block's settings.

use genc_grammar::Span;

use crate::dim::Dim;
use crate::graph::{Graph, Node, NodeId, Output};
use crate::prim::{BinaryOp, DType, F64, Prim, ReduceOp, UnaryOp};
use crate::types::TensorType;

pub struct Builder {
    pub graph: Graph,
    /// The origin of every node (`update opt_d`), for the program's diagnostics.
    origin: String,
}

impl Builder {
    pub fn new(origin: &str) -> Builder {
        Builder { graph: Graph::default(), origin: origin.to_string() }
    }

    pub fn shape(&self, n: NodeId) -> Vec<usize> {
        self.graph.ty(n).concrete().unwrap_or_default()
    }

    fn node(&mut self, prim: Prim, dtype: DType, shape: &[usize], inputs: &[NodeId]) -> NodeId {
        let ty = TensorType::new(dtype, shape.iter().map(|&d| Dim::constant(d as i64)).collect());
        let node = Node { prim, ty, span: Span::default(), origin: self.origin.clone() };
        self.graph.add(node, inputs)
    }

    /// A value fed on each run, named `name`.
    pub fn input(&mut self, name: &str, shape: &[usize]) -> NodeId {
        let index = self.graph.input_names.len();
        self.graph.input_names.push(name.to_string());
        self.node(Prim::Input { index }, DType::F32, shape, &[])
    }

    /// A per-run scalar (a learning rate), fed as a one-element input.
    pub fn scalar_input(&mut self, name: &str) -> NodeId {
        self.input(name, &[1])
    }

    pub fn param(&mut self, index: usize, shape: &[usize]) -> NodeId {
        self.node(Prim::Param { index }, DType::F32, shape, &[])
    }

    /// The constant `value` as a one-element tensor; it broadcasts against anything once
    /// [`Builder::like`] gives it the other operand's rank.
    pub fn constant(&mut self, value: f64) -> NodeId {
        self.node(Prim::Fill { value: F64(value) }, DType::F32, &[1], &[])
    }

    /// A one-element `x` reshaped to rank `rank` (a view), to broadcast in element-wise ops.
    pub fn like(&mut self, x: NodeId, rank: usize) -> NodeId {
        if self.graph.ty(x).rank() == rank {
            return x;
        }
        self.node(Prim::Reshape, DType::F32, &vec![1; rank], &[x])
    }

    pub fn unary(&mut self, op: UnaryOp, a: NodeId) -> NodeId {
        let shape = self.shape(a);
        self.node(Prim::Unary(op), DType::F32, &shape, &[a])
    }

    /// `a op b`, with a one-element operand reshaped to the other's rank and broadcast.
    pub fn binary(&mut self, op: BinaryOp, a: NodeId, b: NodeId) -> NodeId {
        let rank = self.graph.ty(a).rank().max(self.graph.ty(b).rank());
        let (a, b) = (self.like(a, rank), self.like(b, rank));
        let shape: Vec<usize> = self.shape(a).iter().zip(self.shape(b)).map(|(&x, y)| x.max(y)).collect();
        self.node(Prim::Binary(op), DType::F32, &shape, &[a, b])
    }

    pub fn add(&mut self, a: NodeId, b: NodeId) -> NodeId {
        self.binary(BinaryOp::Add, a, b)
    }

    pub fn sub(&mut self, a: NodeId, b: NodeId) -> NodeId {
        self.binary(BinaryOp::Sub, a, b)
    }

    pub fn mul(&mut self, a: NodeId, b: NodeId) -> NodeId {
        self.binary(BinaryOp::Mul, a, b)
    }

    pub fn div(&mut self, a: NodeId, b: NodeId) -> NodeId {
        self.binary(BinaryOp::Div, a, b)
    }

    /// `a * value`.
    pub fn scale(&mut self, a: NodeId, value: f64) -> NodeId {
        let c = self.constant(value);
        self.mul(a, c)
    }

    /// The sum of `a` over `axes`, the axes kept with extent 1.
    pub fn sum(&mut self, a: NodeId, axes: Vec<usize>) -> NodeId {
        let mut shape = self.shape(a);
        for &axis in &axes {
            shape[axis] = 1;
        }
        self.node(Prim::Reduce { op: ReduceOp::Sum, axes }, DType::F32, &shape, &[a])
    }

    /// The sum of every element of `a`, as a one-element tensor.
    pub fn sum_all(&mut self, a: NodeId) -> NodeId {
        let rank = self.graph.ty(a).rank();
        let s = self.sum(a, (0..rank).collect());
        if rank == 1 { s } else { self.node(Prim::Reshape, DType::F32, &[1], &[s]) }
    }

    pub fn output(&mut self, name: String, node: NodeId) {
        self.graph.outputs.push(Output { name, node });
    }
}
