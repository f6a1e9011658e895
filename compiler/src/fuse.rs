//! Fusion: partitions a concrete graph into kernels.
//!
//! Element-wise ops (and broadcasts feeding them) of one output shape are grouped into one
//! fused kernel; every other op is one kernel of its own (the kernel library's); reshapes are
//! views and cost nothing; fills and iotas are constants computed once.
//!
//! **No recomputation, by construction.** Each node belongs to exactly one group, and a group
//! only holds nodes of its own shape: a value of a smaller shape (a per-sample norm feeding a
//! per-pixel expression) is materialised once and read with broadcasting, never recomputed per
//! output element. That is the cost cap that keeps a gradient-penalty norm from being fused
//! over a whole convolution backward (the tinygrad #16228 failure mode).
//!
//! A node joins its producer's group only if every other input it reads from outside the group
//! was computed before the group began (node order is topological), so no group ever waits on
//! a kernel that itself waits on the group.
//!
//! **Reduction prologues.** A `Reduce` whose input is a member of a fused group becomes that
//! group's tail (`Role::Reduced`): one kernel evaluates the group's program at every element of
//! the reduce's input, once, and folds the element into the reduction instead of writing it.
//! Members read from outside the group are still written by that kernel, as they would be by
//! the standalone group, so fusing never costs a launch or a recomputation; it saves the
//! reduce's launch and the round trip of its input through memory. A group takes up to
//! [`MAX_REDUCTIONS`] reduces over the same axes (batch-norm's backward sums `dy` and
//! `dy * x̂` per channel), all folded in the same pass; a reduce over other axes, or one too
//! many, reads the written value in a kernel of its own.
//! The reduce's result is not a member, so nothing that reads it can join the group (that
//! would be a reduce-then-broadcast inside one kernel, which this kernel does not do).

use crate::graph::{Graph, NodeId};
use crate::prim::Prim;

/// What a node becomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A leaf read from outside: input, parameter, buffer.
    Leaf,
    /// A constant computed once when the program loads (`Fill`, `Iota`).
    Constant,
    /// An alias of its input's memory (`Reshape` of a contiguous buffer).
    View,
    /// A member of fused element-wise group `n`.
    Fused(usize),
    /// A reduction that group `n` feeds, computed by the group's kernel (its prologue).
    Reduced(usize),
    /// A kernel of its own.
    Kernel,
}

/// The partition of a graph.
#[derive(Clone, Debug)]
pub struct Partition {
    pub roles: Vec<Role>,
    pub groups: usize,
}

/// The most reductions one fused kernel folds (its accumulators live in registers).
pub const MAX_REDUCTIONS: usize = 4;

/// True for the ops a fused element-wise kernel evaluates.
fn fusible(prim: &Prim) -> bool {
    prim.is_elementwise() || matches!(prim, Prim::Broadcast | Prim::StopGrad)
}

pub fn partition(g: &Graph) -> Partition {
    let mut roles: Vec<Role> = Vec::with_capacity(g.len());
    // For each group: its shape and the index of its first node.
    let mut groups: Vec<(Vec<crate::dim::Dim>, usize)> = Vec::new();
    // Per group: the axes and count of the reductions it feeds so far.
    let mut reduced: Vec<(Vec<usize>, usize)> = Vec::new();
    let mut live = vec![false; g.len()];
    for n in g.live_nodes() {
        live[n.index()] = true;
    }
    for n in g.dag.node_indices() {
        let node = g.node(n);
        let role = match &node.prim {
            Prim::Input { .. } | Prim::Param { .. } | Prim::Buffer { .. } => Role::Leaf,
            Prim::Fill { .. } | Prim::Iota { .. } => Role::Constant,
            Prim::Reshape => Role::View,
            Prim::Reduce { axes, .. } => match prologue_group(g, n, &roles) {
                Some(k) if live[n.index()] && joins_reductions(&reduced[k], axes) => {
                    reduced[k] = (axes.clone(), reduced[k].1 + 1);
                    Role::Reduced(k)
                }
                _ => Role::Kernel,
            },
            prim if fusible(prim) => {
                let inputs = g.inputs(n);
                let join = inputs.iter().find_map(|&p| match roles[p.index()] {
                    Role::Fused(k) if groups[k].0 == node.ty.shape => {
                        let start = groups[k].1;
                        let ok = inputs.iter().all(|&q| match roles[q.index()] {
                            Role::Fused(j) if j == k => true,
                            _ => q.index() < start,
                        });
                        ok.then_some(k)
                    }
                    _ => None,
                });
                match join {
                    Some(k) => Role::Fused(k),
                    None => {
                        groups.push((node.ty.shape.clone(), n.index()));
                        reduced.push((Vec::new(), 0));
                        Role::Fused(groups.len() - 1)
                    }
                }
            }
            _ => Role::Kernel,
        };
        roles.push(role);
    }
    Partition { roles, groups: groups.len() }
}

/// Whether a reduction over `axes` can join a group's `(axes, count)` reductions: they share
/// one pass over the rows, so the axes must be the same.
fn joins_reductions(reduced: &(Vec<usize>, usize), axes: &[usize]) -> bool {
    let (have, count) = reduced;
    *count == 0 || (*count < MAX_REDUCTIONS && have.as_slice() == axes)
}

/// The fused group whose member reduce node `n` reads, if any: the group can be its prologue.
/// Every member has the group's shape, so the group runs over the reduce's input shape.
fn prologue_group(g: &Graph, n: NodeId, roles: &[Role]) -> Option<usize> {
    match g.inputs(n).as_slice() {
        [x] => match roles[x.index()] {
            Role::Fused(k) => Some(k),
            Role::Leaf | Role::Constant | Role::View | Role::Reduced(_) | Role::Kernel => None,
        },
        _ => None,
    }
}

impl Partition {
    /// Kernel launches: fused groups plus library kernels (views and constants are free).
    pub fn kernel_count(&self, g: &Graph) -> usize {
        let live = g.live_nodes();
        let mut groups = std::collections::BTreeSet::new();
        let mut kernels = 0;
        for n in live {
            match self.roles[n.index()] {
                Role::Fused(k) => {
                    groups.insert(k);
                }
                Role::Kernel => kernels += 1,
                // Computed by its group's kernel.
                Role::Reduced(_) | Role::Leaf | Role::Constant | Role::View => {}
            }
        }
        groups.len() + kernels
    }

    /// The reductions group `k` feeds, in order.
    pub fn reductions(&self, k: usize) -> Vec<NodeId> {
        self.roles
            .iter()
            .enumerate()
            .filter(|(_, r)| **r == Role::Reduced(k))
            .map(|(i, _)| NodeId::new(i))
            .collect()
    }

    /// The members of group `k`, in order.
    pub fn members(&self, k: usize) -> Vec<NodeId> {
        self.roles
            .iter()
            .enumerate()
            .filter(|(_, r)| **r == Role::Fused(k))
            .map(|(i, _)| NodeId::new(i))
            .collect()
    }

    /// The stable text form: one line per kernel with its ops.
    pub fn to_text(&self, g: &Graph) -> String {
        use std::fmt::Write as _;
        let live: std::collections::HashSet<NodeId> = g.live_nodes().into_iter().collect();
        let mut out = String::new();
        let mut done = std::collections::HashSet::new();
        let mut kernel = 0;
        for n in g.dag.node_indices() {
            if !live.contains(&n) {
                continue;
            }
            match self.roles[n.index()] {
                Role::Fused(k) if done.insert(k) => {
                    let ops: Vec<String> = self
                        .members(k)
                        .iter()
                        .filter(|m| live.contains(m))
                        .map(|&m| g.node(m).prim.to_string())
                        .collect();
                    let folds: Vec<String> = self
                        .reductions(k)
                        .into_iter()
                        .filter(|r| live.contains(r))
                        .map(|r| format!("{} -> {}", g.node(r).prim, g.node(r).ty))
                        .collect();
                    let tail =
                        if folds.is_empty() { String::new() } else { format!(" |> {}", folds.join(", ")) };
                    let _ = writeln!(out, "  k{kernel} fused {} [{}]{tail}", g.node(n).ty, ops.join(", "));
                    kernel += 1;
                }
                Role::Kernel => {
                    let _ = writeln!(out, "  k{kernel} {} -> {}", g.node(n).prim, g.node(n).ty);
                    kernel += 1;
                }
                _ => {}
            }
        }
        out
    }
}
