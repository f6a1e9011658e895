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
//! was computed before the group began (node order is topological) or is a leaf, a constant or
//! a view of one, so no group ever waits on a kernel that itself waits on the group. A node of
//! the backward pass (made by autodiff) does not join a group of the forward pass: it would
//! only make the forward kernel write a derivative early and keep it alive until the backward.
//!
//! **Bounded bindings.** A device binds a limited number of buffers to one kernel (lavapipe
//! and Metal about 31), so a group that would read and write more than
//! [`MAX_FUSED_BUFFERS`] is cut into consecutive pieces: a later piece reads what an earlier
//! one wrote, and each still runs after everything it reads.
//!
//! **Reduction prologues.** A `Reduce` whose input is a member of a fused group (a piece, after
//! the cut) becomes that group's tail (`Role::Reduced`): one kernel evaluates the group's
//! program at every element of the reduce's input, once, and folds the element into the
//! reduction instead of writing it. Members read from outside the group are still written by
//! that kernel, as they would be by the standalone group, so fusing never costs a launch or a
//! recomputation; it saves the reduce's launch and the round trip of its input through
//! memory. A group takes up to [`MAX_REDUCTIONS`] reduces over the same axes (batch-norm's
//! backward sums `dy` and `dy * x̂` per channel), all folded in the same pass, as long as the
//! kernel stays within the binding bound; a reduce over other axes, or one too many, reads the
//! written value in a kernel of its own. Reduces are attached after the groups are formed, so
//! they change no group: a reduce's result is not a member, and nothing that reads it can join
//! the group (that would be a reduce-then-broadcast inside one kernel, which this kernel does
//! not do).
//!
//! **Matmul and convolution epilogues.** A `MatMul` or `Conv2d` whose result feeds a group of
//! its own shape (and no reductions) becomes that group's head (`Role::Head`): the library's
//! tiled matmul evaluates the group's program on each accumulator before storing it, so a
//! dense or conv layer's bias and activation cost no launch and no round trip of the
//! pre-activation through memory. The op's result is still written if something outside the
//! group reads it (an activation's backward). The op now runs where the group runs, later
//! than its own place, so it becomes a head only if everything else that reads it runs after
//! that.

use std::collections::HashSet;

use crate::graph::{Graph, NodeId};
use crate::prim::Prim;

/// The most distinct buffers one fused kernel reads and writes, leaving room under the
/// devices' per-kernel limit for the launch metadata.
pub const MAX_FUSED_BUFFERS: usize = 24;

/// The most reductions one fused kernel folds (its accumulators live in registers).
pub const MAX_REDUCTIONS: usize = 4;

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
    /// A matmul or convolution whose result group `n` takes as its first register: the
    /// group is the op's epilogue, one kernel.
    Head(usize),
    /// A kernel of its own.
    Kernel,
}

/// The partition of a graph.
#[derive(Clone, Debug)]
pub struct Partition {
    pub roles: Vec<Role>,
    pub groups: usize,
}

/// True for the ops a fused element-wise kernel evaluates.
fn fusible(prim: &Prim) -> bool {
    prim.is_elementwise() || matches!(prim, Prim::Broadcast | Prim::StopGrad)
}

pub fn partition(g: &Graph) -> Partition {
    let mut roles: Vec<Role> = Vec::with_capacity(g.len());
    // For each group: its shape and the index of its first node.
    let mut groups: Vec<(Vec<crate::dim::Dim>, usize)> = Vec::new();
    for n in g.dag.node_indices() {
        let node = g.node(n);
        let role = match &node.prim {
            Prim::Input { .. } | Prim::Param { .. } | Prim::Buffer { .. } => Role::Leaf,
            Prim::Fill { .. } | Prim::Iota { .. } => Role::Constant,
            Prim::Reshape => Role::View,
            prim if fusible(prim) => {
                let inputs = g.inputs(n);
                // Leaves, constants and their views exist before any kernel runs.
                let ready = |q: NodeId| {
                    let mut q = q;
                    loop {
                        match roles[q.index()] {
                            Role::Leaf | Role::Constant => return true,
                            Role::View => q = g.inputs(q)[0],
                            _ => return false,
                        }
                    }
                };
                // Backward work stays out of forward kernels: a derivative computed there would
                // be written by the forward pass and held until the backward reads it.
                let backward = node.origin == crate::autodiff::ORIGIN;
                let join = inputs.iter().find_map(|&p| match roles[p.index()] {
                    Role::Fused(k)
                        if groups[k].0 == node.ty.shape
                            && (!backward || g.node(NodeId::new(groups[k].1)).origin == node.origin) =>
                    {
                        let start = groups[k].1;
                        let ok = inputs.iter().all(|&q| match roles[q.index()] {
                            Role::Fused(j) if j == k => true,
                            _ => q.index() < start || ready(q),
                        });
                        ok.then_some(k)
                    }
                    _ => None,
                });
                // A node that reads only leaves and constants can run anywhere: it joins the
                // group made last if that group has its shape (an optimizer's `m * beta1`
                // beside the `g * (1 - beta1)` it is added to), rather than start a kernel.
                let join = join.or_else(|| {
                    let k = groups.len().checked_sub(1)?;
                    let same_pass = !backward || g.node(NodeId::new(groups[k].1)).origin == node.origin;
                    (groups[k].0 == node.ty.shape && same_pass && inputs.iter().all(|&q| ready(q)))
                        .then_some(k)
                });
                match join {
                    Some(k) => Role::Fused(k),
                    None => {
                        groups.push((node.ty.shape.clone(), n.index()));
                        Role::Fused(groups.len() - 1)
                    }
                }
            }
            _ => Role::Kernel,
        };
        roles.push(role);
    }
    let mut partition = Partition { roles, groups: groups.len() };
    partition.split_wide_groups(g);
    partition.attach_reductions(g);
    partition.attach_epilogues(g);
    partition
}

/// True for the library kernels that store through an epilogue (their tiled matmul does).
fn takes_epilogue(prim: &Prim) -> bool {
    matches!(prim, Prim::MatMul { .. } | Prim::Conv2d(_))
}

/// Whether a reduction over `axes` can join a group's `(axes, count)` reductions: they share
/// one pass over the rows, so the axes must be the same.
fn joins_reductions(reduced: &(Vec<usize>, usize), axes: &[usize]) -> bool {
    let (have, count) = reduced;
    *count == 0 || (*count < MAX_REDUCTIONS && have.as_slice() == axes)
}

/// Who reads each live node, and whether it is a graph output (an outside reader).
struct Readers {
    of: Vec<Vec<NodeId>>,
    output: Vec<bool>,
}

impl Readers {
    fn new(g: &Graph, live: &[NodeId]) -> Readers {
        let mut of = vec![Vec::new(); g.len()];
        for &n in live {
            for i in g.inputs(n) {
                of[i.index()].push(n);
            }
        }
        let mut output = vec![false; g.len()];
        for o in &g.outputs {
            output[o.node.index()] = true;
        }
        Readers { of, output }
    }

    /// The buffers a kernel computing `piece` binds: what it reads from outside the piece,
    /// and the members read outside it.
    fn bindings(&self, g: &Graph, piece: &HashSet<NodeId>) -> usize {
        let mut inputs = HashSet::new();
        let mut outputs = 0;
        for &m in piece {
            inputs.extend(g.inputs(m).into_iter().filter(|i| !piece.contains(i)));
            if self.output[m.index()] || self.of[m.index()].iter().any(|r| !piece.contains(r)) {
                outputs += 1;
            }
        }
        inputs.len() + outputs
    }
}

impl Partition {
    /// Cuts every group that binds more than [`MAX_FUSED_BUFFERS`] into consecutive pieces,
    /// each as long as it stays within the bound (a single node always forms a piece).
    fn split_wide_groups(&mut self, g: &Graph) {
        let live = g.live_nodes();
        let readers = Readers::new(g, &live);
        let mut by_group: Vec<Vec<NodeId>> = vec![Vec::new(); self.groups];
        for &n in &live {
            if let Role::Fused(k) = self.roles[n.index()] {
                by_group[k].push(n);
            }
        }
        for (k, members) in by_group.into_iter().enumerate() {
            let mut piece: HashSet<NodeId> = HashSet::new();
            let mut id = k;
            for m in members {
                piece.insert(m);
                if piece.len() > 1 && readers.bindings(g, &piece) > MAX_FUSED_BUFFERS {
                    piece = HashSet::from([m]);
                    id = self.groups;
                    self.groups += 1;
                }
                self.roles[m.index()] = Role::Fused(id);
            }
        }
    }

    /// Makes each live reduce of a fused group's member that group's tail, in node order, while
    /// [`joins_reductions`] allows it and the kernel binds at most [`MAX_FUSED_BUFFERS`]
    /// (counting the reduction results it writes, and one more buffer for their parameters).
    fn attach_reductions(&mut self, g: &Graph) {
        let live = g.live_nodes();
        let readers = Readers::new(g, &live);
        let mut kernels: Vec<HashSet<NodeId>> = vec![HashSet::new(); self.groups];
        for &n in &live {
            if let Role::Fused(k) = self.roles[n.index()] {
                kernels[k].insert(n);
            }
        }
        let mut reduced: Vec<(Vec<usize>, usize)> = vec![(Vec::new(), 0); self.groups];
        for &n in &live {
            let Prim::Reduce { axes, .. } = &g.node(n).prim else { continue };
            let group = match g.inputs(n).as_slice() {
                [x] => match self.roles[x.index()] {
                    Role::Fused(k) => Some(k),
                    Role::Leaf
                    | Role::Constant
                    | Role::View
                    | Role::Reduced(_)
                    | Role::Head(_)
                    | Role::Kernel => None,
                },
                _ => None,
            };
            let Some(k) = group else { continue };
            if !joins_reductions(&reduced[k], axes) {
                continue;
            }
            kernels[k].insert(n);
            if readers.bindings(g, &kernels[k]) + 1 > MAX_FUSED_BUFFERS {
                kernels[k].remove(&n);
                continue;
            }
            reduced[k] = (axes.clone(), reduced[k].1 + 1);
            self.roles[n.index()] = Role::Reduced(k);
        }
    }
}

impl Partition {
    /// Makes each live matmul or convolution the head of the first group of its shape that
    /// reads it, when that group has no head and no reductions, the kernel stays within
    /// [`MAX_FUSED_BUFFERS`], and every other reader of the op runs after the group begins
    /// (the op moves there). Runs after the groups and their reductions are settled.
    fn attach_epilogues(&mut self, g: &Graph) {
        let live = g.live_nodes();
        let readers = Readers::new(g, &live);
        let mut kernels: Vec<HashSet<NodeId>> = vec![HashSet::new(); self.groups];
        let mut start = vec![usize::MAX; self.groups];
        let mut taken = vec![false; self.groups];
        for &n in &live {
            match self.roles[n.index()] {
                Role::Fused(k) => {
                    kernels[k].insert(n);
                    start[k] = start[k].min(n.index());
                }
                Role::Reduced(k) => taken[k] = true,
                _ => {}
            }
        }
        for &n in &live {
            if self.roles[n.index()] != Role::Kernel
                || !takes_epilogue(&g.node(n).prim)
                || g.ty(n).dtype != crate::prim::DType::F32
            {
                continue;
            }
            let shape = &g.ty(n).shape;
            let group = readers.of[n.index()]
                .iter()
                .filter_map(|r| match self.roles[r.index()] {
                    Role::Fused(k) if !taken[k] => Some(k),
                    _ => None,
                })
                .filter(|&k| kernels[k].iter().next().is_some_and(|&m| g.ty(m).shape == *shape))
                .min_by_key(|&k| start[k]);
            let Some(k) = group else { continue };
            // Where each reader runs: a group member (or head, or fold) with its group.
            let runs_at = |r: NodeId| match self.roles[r.index()] {
                Role::Fused(j) | Role::Head(j) | Role::Reduced(j) => start[j],
                _ => r.index(),
            };
            let late = readers.of[n.index()]
                .iter()
                .all(|&r| self.roles[r.index()] == Role::Fused(k) || runs_at(r) > start[k]);
            if !late {
                continue;
            }
            kernels[k].insert(n);
            if readers.bindings(g, &kernels[k]) + 1 > MAX_FUSED_BUFFERS {
                kernels[k].remove(&n);
                continue;
            }
            taken[k] = true;
            self.roles[n.index()] = Role::Head(k);
        }
    }

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
                Role::Reduced(_) | Role::Head(_) | Role::Leaf | Role::Constant | Role::View => {}
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

    /// The matmul or convolution group `k` is the epilogue of, if any.
    pub fn head(&self, k: usize) -> Option<NodeId> {
        self.roles.iter().position(|r| *r == Role::Head(k)).map(NodeId::new)
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
                    let head = self
                        .head(k)
                        .filter(|h| live.contains(h))
                        .map(|h| format!("{} -> {} => ", g.node(h).prim, g.node(h).ty))
                        .unwrap_or_default();
                    let _ =
                        writeln!(out, "  k{kernel} {head}fused {} [{}]{tail}", g.node(n).ty, ops.join(", "));
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
