//! Planning a unit with host control flow into a [`SamplerProgram`].
//!
//! The pipeline: bind the free dims → expand `grad`s over the whole graph (a gradient may
//! reach across segments; its nodes join the segment of their `grad`) → find what the host
//! needs (outputs, branch conditions, the sources of copies into live placeholders) and
//! what that needs → give a variable to every value that crosses a segment boundary → cut
//! each segment's nodes into a graph of its own (crossing values become its inputs and
//! outputs) → plan each one like a forward phase (simplify, fuse, lower).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::{HostStep, SamplerProgram, Segment, Var, VarKind};
use crate::autodiff;
use crate::check::{Checked, Unit};
use crate::graph::{Graph, Node, NodeId, Output};
use crate::host::{HostBody, HostStmt};
use crate::plan::{PlanError, plan_graph};
use crate::prim::{DType, Prim};
use crate::program::TensorSpec;

/// Plans `unit` (a sampler, or a `sample` expression that calls one) with its free dims
/// bound by `bind`. A unit without host control flow becomes a single segment.
pub fn plan_sampler(
    checked: &Checked,
    unit: &Unit,
    bind: &dyn Fn(&str) -> Option<i64>,
) -> Result<SamplerProgram, PlanError> {
    if !checked.errors.is_empty() {
        return Err(PlanError::Unchecked);
    }
    let fail = |message: String| PlanError::Phase { phase: unit.name.clone(), message };
    let host = unit.host.clone().unwrap_or_else(|| HostBody {
        stmts: vec![HostStmt::Segment { start: 0, end: unit.graph.len() }],
        unsupported: None,
    });
    if let Some(why) = &host.unsupported {
        return Err(fail(format!("the host cannot run it: {why}")));
    }
    let bound = unit.graph.bind_dims(bind).map_err(fail)?;
    let expanded = autodiff::expand_grads_traced(&bound).map_err(|e| fail(e.to_string()))?;
    let g = &expanded.graph;
    let map = |n: NodeId| expanded.map[n.index()];

    // Each old node's segment, numbered in program order; new nodes follow their maker.
    let mut segment_of_old = vec![None; bound.len()];
    let mut count = 0;
    number_segments(&host.stmts, &mut segment_of_old, &mut count);
    let home: Vec<Option<usize>> = expanded.made_by.iter().map(|&old| segment_of_old[old]).collect();

    let live = host_liveness(g, &host, &map);
    let shape_of =
        |n: NodeId| g.ty(n).concrete().ok_or_else(|| fail(format!("the shape {} is not concrete", g.ty(n))));

    // Which nodes each segment computes, reads from the host and hands back to it.
    let mut members: Vec<BTreeSet<NodeId>> = vec![BTreeSet::new(); count];
    let mut imports: Vec<BTreeSet<NodeId>> = vec![BTreeSet::new(); count];
    let mut exports: Vec<BTreeSet<NodeId>> = vec![BTreeSet::new(); count];
    let home_of = |n: NodeId| {
        home[n.index()]
            .ok_or_else(|| fail(format!("node {} (`{}`) is in no segment", n.index(), g.node(n).prim)))
    };
    for &n in &live.nodes {
        if is_input(g, n) || is_leaf(g, n) {
            continue;
        }
        let s = home_of(n)?;
        members[s].insert(n);
        for i in g.inputs(n) {
            if is_input(g, i) {
                imports[s].insert(i);
            } else if !is_leaf(g, i) {
                let si = home_of(i)?;
                if si != s {
                    imports[s].insert(i);
                    exports[si].insert(i);
                }
            }
        }
    }
    for &r in &live.roots {
        if is_input(g, r) {
            continue;
        }
        let s = home_of(r)?;
        members[s].insert(r);
        exports[s].insert(r);
    }

    // Variables: every `Input` node (unit inputs, loop counters, placeholders) and every value
    // handed from one segment to another, in node order.
    let (loops, carries) = host_inputs(&host.stmts, &map);
    let mut crossing: BTreeSet<NodeId> = exports.iter().flatten().copied().collect();
    let unit_input = |n: NodeId| !loops.contains(&n) && !carries.contains(&n);
    crossing.extend(
        g.dag.node_indices().filter(|&n| is_input(g, n) && (live.is_live[n.index()] || unit_input(n))),
    );
    let mut vars = Vec::new();
    let mut var_of: BTreeMap<NodeId, usize> = BTreeMap::new();
    let mut inputs = Vec::new();
    for n in crossing {
        let (kind, name) = match g.node(n).prim {
            Prim::Input { index } => {
                let label = g.input_names.get(index).cloned().unwrap_or_default();
                let kind = if loops.contains(&n) {
                    VarKind::Loop
                } else if carries.contains(&n) {
                    VarKind::Carry
                } else {
                    VarKind::Input
                };
                let name = match label.split_once(' ') {
                    Some(("loop" | "carry" | "branch", rest)) if kind != VarKind::Input => rest.to_string(),
                    _ => label,
                };
                (kind, name)
            }
            _ => (VarKind::Value, format!("%{}", n.index())),
        };
        if kind == VarKind::Input {
            inputs.push(vars.len());
        }
        var_of.insert(n, vars.len());
        vars.push(Var { name, kind, dtype: g.ty(n).dtype, shape: shape_of(n)? });
    }

    // Each segment as a graph of its own, planned like a forward phase.
    let mut segments = Vec::new();
    let mut planned: Vec<Option<usize>> = vec![None; count];
    for s in 0..count {
        if exports[s].is_empty() {
            continue;
        }
        let mut sub = Graph::default();
        let mut sub_of: HashMap<NodeId, NodeId> = HashMap::new();
        let mut reads = Vec::new();
        for (k, &i) in imports[s].iter().enumerate() {
            let v = var_of[&i];
            sub.input_names.push(vars[v].name.clone());
            let node = Node { prim: Prim::Input { index: k }, ..g.node(i).clone() };
            sub_of.insert(i, sub.add(node, &[]));
            reads.push(v);
        }
        for &n in &members[s] {
            let mut ins = Vec::new();
            for i in g.inputs(n) {
                let id = match sub_of.get(&i) {
                    Some(&id) => id,
                    // A parameter or buffer made elsewhere: the segment reads it directly.
                    None if is_leaf(g, i) => {
                        let id = sub.add(g.node(i).clone(), &[]);
                        sub_of.insert(i, id);
                        id
                    }
                    None => {
                        return Err(fail(format!("segment {s} reads node {} before it exists", i.index())));
                    }
                };
                ins.push(id);
            }
            sub_of.insert(n, sub.add(g.node(n).clone(), &ins));
        }
        let writes: Vec<usize> = exports[s].iter().map(|e| var_of[e]).collect();
        sub.outputs = exports[s]
            .iter()
            .map(|e| Output { name: vars[var_of[e]].name.clone(), node: sub_of[e] })
            .collect();
        let phase = plan_graph(&sub, &format!("{} segment {}", unit.name, segments.len())).map_err(fail)?;
        planned[s] = Some(segments.len());
        segments.push(Segment { phase, reads, writes });
    }

    let var = |n: NodeId| var_of.get(&map(n)).copied();
    let mut next = 0;
    let body = steps(&host.stmts, &live, &planned, &var, &map, &mut next).map_err(fail)?;
    let outputs = g
        .outputs
        .iter()
        .map(|o| {
            var_of
                .get(&o.node)
                .map(|&v| (o.name.clone(), v))
                .ok_or_else(|| fail(format!("output `{}` has no variable", o.name)))
        })
        .collect::<Result<_, _>>()?;
    let spec = |e: &crate::params::Entry| TensorSpec {
        name: e.name.clone(),
        dtype: DType::F32,
        shape: e.shape.clone(),
    };
    Ok(SamplerProgram {
        name: unit.name.clone(),
        params: checked.table.params.iter().map(spec).collect(),
        buffers: checked.table.buffers.iter().map(spec).collect(),
        vars,
        inputs,
        segments,
        body,
        outputs,
        index_guards: crate::plan::index_guards(&bound),
    })
}

fn is_input(g: &Graph, n: NodeId) -> bool {
    matches!(g.node(n).prim, Prim::Input { .. })
}

fn is_leaf(g: &Graph, n: NodeId) -> bool {
    matches!(g.node(n).prim, Prim::Param { .. } | Prim::Buffer { .. })
}

/// Numbers the segments in program order and marks each old node with its segment.
fn number_segments(stmts: &[HostStmt], segment_of: &mut [Option<usize>], count: &mut usize) {
    for s in stmts {
        match s {
            HostStmt::Segment { start, end } => {
                for slot in segment_of.iter_mut().take(*end).skip(*start) {
                    *slot = Some(*count);
                }
                *count += 1;
            }
            HostStmt::Copy { .. } => {}
            HostStmt::Loop { body, .. } => number_segments(body, segment_of, count),
            HostStmt::If { then, otherwise, .. } => {
                number_segments(then, segment_of, count);
                number_segments(otherwise, segment_of, count);
            }
        }
    }
}

/// What the host needs: `roots` (outputs, branch conditions, sources of copies into live
/// placeholders) and `nodes`, everything they depend on; `is_live` per node.
struct Liveness {
    roots: Vec<NodeId>,
    nodes: Vec<NodeId>,
    is_live: Vec<bool>,
}

fn host_liveness(g: &Graph, host: &HostBody, map: &dyn Fn(NodeId) -> NodeId) -> Liveness {
    let mut copies = Vec::new();
    let mut conds = Vec::new();
    fn collect(stmts: &[HostStmt], copies: &mut Vec<(NodeId, NodeId)>, conds: &mut Vec<NodeId>) {
        for s in stmts {
            match s {
                HostStmt::Segment { .. } => {}
                HostStmt::Copy { from, to } => copies.push((*from, *to)),
                HostStmt::Loop { body, .. } => collect(body, copies, conds),
                HostStmt::If { cond, then, otherwise } => {
                    conds.push(*cond);
                    collect(then, copies, conds);
                    collect(otherwise, copies, conds);
                }
            }
        }
    }
    collect(&host.stmts, &mut copies, &mut conds);
    let mut roots: Vec<NodeId> = g.outputs.iter().map(|o| o.node).collect();
    roots.extend(conds.iter().map(|&c| map(c)));
    // A copy matters once its placeholder is read: grow the roots to a fixed point.
    loop {
        let nodes = g.live_from(roots.iter().copied());
        let mut is_live = vec![false; g.len()];
        nodes.iter().for_each(|n| is_live[n.index()] = true);
        let before = roots.len();
        for &(from, to) in &copies {
            let (from, to) = (map(from), map(to));
            if is_live[to.index()] && !roots.contains(&from) {
                roots.push(from);
            }
        }
        if roots.len() == before {
            roots.sort();
            roots.dedup();
            return Liveness { roots, nodes, is_live };
        }
    }
}

/// The loop counters and the placeholders (copy targets) among the `Input` nodes.
fn host_inputs(stmts: &[HostStmt], map: &dyn Fn(NodeId) -> NodeId) -> (BTreeSet<NodeId>, BTreeSet<NodeId>) {
    let (mut loops, mut carries) = (BTreeSet::new(), BTreeSet::new());
    fn walk(
        stmts: &[HostStmt],
        map: &dyn Fn(NodeId) -> NodeId,
        loops: &mut BTreeSet<NodeId>,
        carries: &mut BTreeSet<NodeId>,
    ) {
        for s in stmts {
            match s {
                HostStmt::Segment { .. } => {}
                HostStmt::Copy { to, .. } => {
                    carries.insert(map(*to));
                }
                HostStmt::Loop { var, body, .. } => {
                    loops.insert(map(*var));
                    walk(body, map, loops, carries);
                }
                HostStmt::If { then, otherwise, .. } => {
                    walk(then, map, loops, carries);
                    walk(otherwise, map, loops, carries);
                }
            }
        }
    }
    walk(stmts, map, &mut loops, &mut carries);
    (loops, carries)
}

/// The host steps of `stmts`: planned segments run, copies into live placeholders, loops and
/// branches that still do something.
fn steps(
    stmts: &[HostStmt],
    live: &Liveness,
    planned: &[Option<usize>],
    var: &dyn Fn(NodeId) -> Option<usize>,
    map: &dyn Fn(NodeId) -> NodeId,
    next: &mut usize,
) -> Result<Vec<HostStep>, String> {
    let mut out = Vec::new();
    for s in stmts {
        match s {
            HostStmt::Segment { .. } => {
                if let Some(segment) = planned[*next] {
                    out.push(HostStep::Run { segment });
                }
                *next += 1;
            }
            HostStmt::Copy { from, to } => {
                if live.is_live[map(*to).index()] {
                    let from = var(*from).ok_or("a copy's source has no variable")?;
                    let to = var(*to).ok_or("a placeholder has no variable")?;
                    out.push(HostStep::Copy { from, to });
                }
            }
            HostStmt::Loop { var: counter, first, last, body } => {
                let body = steps(body, live, planned, var, map, next)?;
                if !body.is_empty() {
                    let counter = var(*counter).filter(|_| live.is_live[map(*counter).index()]);
                    out.push(HostStep::Loop { var: counter, first: *first, last: *last, body });
                }
            }
            HostStmt::If { cond, then, otherwise } => {
                let then = steps(then, live, planned, var, map, next)?;
                let otherwise = steps(otherwise, live, planned, var, map, next)?;
                if !then.is_empty() || !otherwise.is_empty() {
                    let cond = var(*cond).ok_or("a branch condition has no variable")?;
                    out.push(HostStep::If { cond, then, otherwise });
                }
            }
        }
    }
    Ok(out)
}
