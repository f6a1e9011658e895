//! Planning: each training phase of a checked spec becomes a `PhaseProgram`.
//!
//! The pipeline, in one place: bind the batch dim → expand `grad` → differentiate the loss
//! with respect to the optimizer's parameters → simplify → fuse → lower to steps → assign
//! memory slots by liveness.

use std::collections::HashMap;

use crate::autodiff;
use crate::check::{Checked, UnitKind};
use crate::fuse::{self, Partition, Role};
use crate::graph::{Graph, IndexUse, NodeId, Output};
use crate::passes;
use crate::prim::{DType, Prim};
use crate::program::{
    ConstSpec, FusedInstr, FusedReduction, IndexCheck, Operand, PhaseProgram, Program, Step, TensorSpec,
    ValueSpec,
};

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum PlanError {
    #[error("the spec has type errors; run `genc check` first")]
    Unchecked,
    #[error("the spec has no `train` block with a `batch`, so phases have no concrete shapes")]
    NoBatch,
    #[error("phase `{phase}`: {message}")]
    Phase { phase: String, message: String },
}

/// The intermediate stages of one phase, for `--emit grad|fused`.
#[derive(Clone, Debug)]
pub struct PhaseStages {
    pub name: String,
    /// Forward and backward, before simplification.
    pub grad: Graph,
    /// After simplification: what the partition and the program describe.
    pub simplified: Graph,
    pub partition: Partition,
}

/// Plans a forward-only unit (a `sample` or `eval` expression): no gradients, at `batch`
/// for the free batch dim. Random draws use the seed the runtime feeds, so a fixed seed gives
/// fixed samples.
pub fn plan_forward(
    checked: &Checked,
    kind: UnitKind,
    index: usize,
    batch: u64,
) -> Result<PhaseProgram, PlanError> {
    if !checked.errors.is_empty() {
        return Err(PlanError::Unchecked);
    }
    let unit = checked.units.iter().filter(|u| u.kind == kind).nth(index).ok_or_else(|| {
        PlanError::Phase { phase: format!("{} #{index}", kind.name()), message: "no such unit".into() }
    })?;
    let fail = |message: String| PlanError::Phase { phase: unit.name.clone(), message };
    if unit.host.is_some() {
        return Err(fail("it has host loops or branches: plan it with `sampler::plan_sampler`".into()));
    }
    let batch_name = batch_dim(checked);
    let bound = unit.graph.bind_dims(&|s| (s == batch_name).then_some(batch as i64)).map_err(fail)?;
    let g = autodiff::expand_grads(&bound).map_err(|e| fail(e.to_string()))?;
    plan_graph(&g, &unit.name).map_err(fail)
}

/// The name of the free batch dim (`B` unless the `train` block's `batch` names another).
pub fn batch_dim(checked: &Checked) -> String {
    checked.schedule.as_ref().and_then(|s| s.batch.as_ref()).map_or("B".to_string(), |b| b.0.clone())
}

/// Plans a forward graph with concrete shapes and no `grad` left: simplify, fuse, lower.
pub fn plan_graph(g: &Graph, name: &str) -> Result<PhaseProgram, String> {
    let simplified = strip_stop_grad(&passes::simplify(g));
    let partition = fuse::partition(&simplified);
    let mut lowered = lower(&simplified, &partition, name)?;
    lowered.inputs = input_specs(g)?;
    lowered.index_checks = index_checks(g);
    lowered.index_guards = index_guards(g);
    lowered.primitive_ops = passes::op_count(g);
    Ok(lowered)
}

/// Plans every training phase of a checked spec, at its declared batch size or at `batch`.
pub fn plan(checked: &Checked, batch: Option<u64>) -> Result<(Program, Vec<PhaseStages>), PlanError> {
    if !checked.errors.is_empty() {
        return Err(PlanError::Unchecked);
    }
    let schedule = checked.schedule.as_ref().ok_or(PlanError::NoBatch)?;
    let (batch_name, declared) = schedule.batch.clone().ok_or(PlanError::NoBatch)?;
    let batch = batch.unwrap_or(declared);
    let spec = |e: &crate::params::Entry| TensorSpec {
        name: e.name.clone(),
        dtype: DType::F32,
        shape: e.shape.clone(),
    };
    let mut program = Program {
        params: checked.table.params.iter().map(spec).collect(),
        buffers: checked.table.buffers.iter().map(spec).collect(),
        phases: Vec::new(),
        updates: crate::program::Updates::default(),
    };
    let mut stages = Vec::new();
    let phases: Vec<_> = checked.units.iter().filter(|u| u.kind == UnitKind::Phase).collect();
    for (unit, phase) in phases.iter().zip(&schedule.phases) {
        let fail = |message: String| PlanError::Phase { phase: unit.name.clone(), message };
        if unit.host.is_some() {
            return Err(fail(
                "its loss calls a sampler with host loops or branches, which cannot be trained".into(),
            ));
        }
        let bound = unit.graph.bind_dims(&|s| (s == batch_name).then_some(batch as i64)).map_err(fail)?;
        let mut g = autodiff::expand_grads(&bound).map_err(|e| fail(e.to_string()))?;
        let loss = g
            .outputs
            .iter()
            .find(|o| o.name == "loss")
            .map(|o| o.node)
            .ok_or_else(|| fail("no loss".into()))?;
        let trained: Vec<usize> = schedule
            .optimizers
            .iter()
            .find(|(n, _)| *n == phase.optimizer)
            .map(|(_, p)| p.clone())
            .unwrap_or_default();
        // The parameter leaves of the trained set that the loss reads.
        let leaves: Vec<(usize, NodeId)> = g
            .dag
            .node_indices()
            .filter_map(|n| match g.node(n).prim {
                Prim::Param { index } if trained.contains(&index) => Some((index, n)),
                _ => None,
            })
            .collect();
        let mut by_param: HashMap<usize, Vec<NodeId>> = HashMap::new();
        for (index, n) in &leaves {
            by_param.entry(*index).or_default().push(*n);
        }
        let wrt: Vec<NodeId> = leaves.iter().map(|(_, n)| *n).collect();
        let grads = autodiff::grad(&mut g, loss, &wrt).map_err(|e| fail(e.to_string()))?;
        // A parameter read by several leaf nodes (a net called twice) sums their gradients.
        let mut outputs: Vec<Output> = g.outputs.clone();
        let mut params: Vec<usize> = by_param.keys().copied().collect();
        params.sort_unstable();
        for index in params {
            let mut total: Option<NodeId> = None;
            for (k, (i, _)) in leaves.iter().enumerate() {
                if *i != index {
                    continue;
                }
                total = Some(match total {
                    None => grads[k],
                    Some(t) => add(&mut g, t, grads[k]),
                });
            }
            if let Some(node) = total {
                outputs.push(Output { name: format!("grad.{}", checked.table.params[index].name), node });
            }
        }
        g.outputs = outputs;
        let simplified = strip_stop_grad(&passes::simplify(&g));
        let partition = fuse::partition(&simplified);
        let mut lowered = lower(&simplified, &partition, &unit.name).map_err(fail)?;
        lowered.inputs = input_specs(&g).map_err(fail)?;
        lowered.index_checks = index_checks(&g);
        lowered.index_guards = index_guards(&g);
        lowered.primitive_ops = passes::op_count(&g);
        program.phases.push(lowered);
        stages.push(PhaseStages { name: unit.name.clone(), grad: g, simplified, partition });
    }
    if let Some(run) = &checked.run {
        program.updates = crate::update::plan_updates(run, &checked.table.params)?;
    }
    Ok((program, stages))
}

fn add(g: &mut Graph, a: NodeId, b: NodeId) -> NodeId {
    let node = crate::graph::Node {
        prim: Prim::Binary(crate::prim::BinaryOp::Add),
        ty: g.ty(a).clone(),
        span: g.node(a).span,
        origin: autodiff::ORIGIN.into(),
    };
    g.add(node, &[a, b])
}

/// After autodiff `stop_grad` is the identity: remove it.
fn strip_stop_grad(g: &Graph) -> Graph {
    let mut out = Graph::with_inputs_of(g);
    let mut map: Vec<NodeId> = Vec::with_capacity(g.len());
    for n in g.dag.node_indices() {
        let inputs: Vec<NodeId> = g.inputs(n).iter().map(|i| map[i.index()]).collect();
        let new = match g.node(n).prim {
            Prim::StopGrad => inputs[0],
            _ => out.add(g.node(n).clone(), &inputs),
        };
        map.push(new);
    }
    out.outputs =
        g.outputs.iter().map(|o| Output { name: o.name.clone(), node: map[o.node.index()] }).collect();
    out
}

/// Every input of the phase by index, dead ones included (the runtime feeds data by name).
fn input_specs(g: &Graph) -> Result<Vec<TensorSpec>, String> {
    let mut specs = Vec::new();
    for (i, name) in g.input_names.iter().enumerate() {
        let node =
            g.dag.node_indices().find(|&n| matches!(g.node(n).prim, Prim::Input { index } if index == i));
        let node = node.ok_or_else(|| format!("input `{name}` has no node"))?;
        let shape =
            g.ty(node).concrete().ok_or_else(|| format!("input `{name}` has the shape {}", g.ty(node)))?;
        specs.push(TensorSpec { name: name.clone(), dtype: g.ty(node).dtype, shape });
    }
    Ok(specs)
}

/// The ranges the feed checks: one per input read as indices, the tightest use first.
fn index_checks(g: &Graph) -> Vec<IndexCheck> {
    let mut uses = g.index_uses.clone();
    uses.sort_by_key(|u| (u.input, u.classes, u.span.start));
    uses.dedup_by_key(|u| u.input);
    let check = |u: IndexUse| IndexCheck {
        input: u.input,
        classes: u.classes.max(0) as u64,
        op: u.op,
        span: (u.span.start, u.span.end),
    };
    uses.into_iter().map(check).collect()
}

/// The guards of the indices a graph computes (`check/index_guard.rs`).
pub(crate) fn index_guards(g: &Graph) -> Vec<crate::program::IndexGuardSpec> {
    g.index_guards
        .iter()
        .map(|guard| crate::program::IndexGuardSpec {
            output: guard.output.clone(),
            classes: guard.classes.max(0) as u64,
            op: guard.op.clone(),
            span: (guard.span.start, guard.span.end),
        })
        .collect()
}

/// Fuses and lowers one concrete graph (already differentiated and simplified) to a phase named
/// `name`: what `plan` does per phase after autodiff. Its `inputs` are left empty.
pub fn lower_graph(g: &Graph, name: &str) -> Result<PhaseProgram, PlanError> {
    let partition = fuse::partition(g);
    lower(g, &partition, name).map_err(|message| PlanError::Phase { phase: name.into(), message })
}

/// Lowers a simplified, partitioned graph to steps with slots assigned by liveness.
fn lower(g: &Graph, part: &Partition, name: &str) -> Result<PhaseProgram, String> {
    let live: Vec<NodeId> = g.live_nodes();
    let is_live = {
        let mut v = vec![false; g.len()];
        for n in &live {
            v[n.index()] = true;
        }
        v
    };
    let concrete =
        |n: NodeId| g.ty(n).concrete().ok_or_else(|| format!("the shape {} is not concrete", g.ty(n)));
    let mut phase = PhaseProgram {
        name: name.to_string(),
        inputs: Vec::new(),
        constants: Vec::new(),
        values: Vec::new(),
        slots: Vec::new(),
        steps: Vec::new(),
        outputs: Vec::new(),
        peak_bytes: 0,
        primitive_ops: 0,
        kernels: part.kernel_count(g),
        index_checks: Vec::new(),
        index_guards: Vec::new(),
    };
    // Which nodes are read from outside their fused group (so the group must write them). A
    // group's reduction reads its input inside the group's kernel.
    let mut read_outside = vec![false; g.len()];
    for &n in &live {
        for i in g.inputs(n) {
            let inside = match (part.roles[i.index()], part.roles[n.index()]) {
                (Role::Fused(a), Role::Fused(b) | Role::Reduced(b)) | (Role::Head(a), Role::Fused(b)) => {
                    a == b
                }
                _ => false,
            };
            if !inside {
                read_outside[i.index()] = true;
            }
        }
    }
    for o in &g.outputs {
        read_outside[o.node.index()] = true;
    }
    let mut operand: HashMap<NodeId, Operand> = HashMap::new();
    let mut emitted_groups = std::collections::HashSet::new();
    let new_value = |phase: &mut PhaseProgram, n: NodeId, view: bool| -> Result<usize, String> {
        phase.values.push(ValueSpec {
            dtype: g.ty(n).dtype,
            shape: concrete(n)?,
            slot: if view { None } else { Some(0) },
            origin: g.node(n).origin.clone(),
        });
        Ok(phase.values.len() - 1)
    };
    // Leaves, constants and views of them first: a fused group may read one that comes after
    // its first member.
    let mut early_views = std::collections::HashSet::new();
    for &n in &live {
        let node = g.node(n);
        match part.roles[n.index()] {
            Role::View => {
                let Some(&input) = g.inputs(n).first().and_then(|i| operand.get(i)) else { continue };
                let v = new_value(&mut phase, n, true)?;
                phase.steps.push(Step::View { input, output: v });
                operand.insert(n, Operand::Value(v));
                early_views.insert(n);
            }
            Role::Leaf => {
                let o = match node.prim {
                    Prim::Input { index } => Operand::Input(index),
                    Prim::Param { index } => Operand::Param(index),
                    Prim::Buffer { index } => Operand::Buffer(index),
                    _ => return Err("a leaf that is not an input, param or buffer".into()),
                };
                operand.insert(n, o);
            }
            Role::Constant => {
                phase.constants.push(ConstSpec {
                    prim: node.prim.clone(),
                    dtype: node.ty.dtype,
                    shape: concrete(n)?,
                });
                operand.insert(n, Operand::Const(phase.constants.len() - 1));
            }
            _ => {}
        }
    }
    for &n in &live {
        let node = g.node(n);
        let ins: Vec<Operand> = g.inputs(n).iter().filter_map(|i| operand.get(i).copied()).collect();
        match part.roles[n.index()] {
            Role::Leaf | Role::Constant => {}
            Role::View if early_views.contains(&n) => {}
            Role::View => {
                let v = new_value(&mut phase, n, true)?;
                phase.steps.push(Step::View { input: ins[0], output: v });
                operand.insert(n, Operand::Value(v));
            }
            Role::Kernel => {
                let v = new_value(&mut phase, n, false)?;
                phase.steps.push(Step::Op { prim: node.prim.clone(), inputs: ins, output: v });
                operand.insert(n, Operand::Value(v));
            }
            // Emitted with its group, whose first member comes later (a head) or earlier.
            Role::Reduced(_) | Role::Head(_) => {}
            Role::Fused(k) => {
                if !emitted_groups.insert(k) {
                    continue;
                }
                let members: Vec<NodeId> =
                    part.members(k).into_iter().filter(|m| is_live[m.index()]).collect();
                let head = part.head(k).filter(|h| is_live[h.index()]);
                let mut inputs: Vec<Operand> = Vec::new();
                let mut reg: HashMap<NodeId, usize> = HashMap::new();
                // An epilogue's op result is register 0; the external operands follow.
                let first_input = match head {
                    Some(h) => {
                        reg.insert(h, 0);
                        1
                    }
                    None => 0,
                };
                for &m in &members {
                    for i in g.inputs(m) {
                        if part.roles[i.index()] == Role::Fused(k) || Some(i) == head {
                            continue;
                        }
                        let o = *operand.get(&i).ok_or("a fused input was not computed first")?;
                        if !inputs.contains(&o) {
                            inputs.push(o);
                        }
                    }
                }
                let input_reg = |o: &Operand, inputs: &[Operand]| {
                    first_input + inputs.iter().position(|x| x == o).unwrap_or(0)
                };
                let mut instrs: Vec<FusedInstr> = Vec::new();
                for &m in &members {
                    let args: Vec<usize> = g
                        .inputs(m)
                        .iter()
                        .map(|i| match reg.get(i) {
                            Some(&r) => r,
                            None => operand.get(i).map_or(0, |o| input_reg(o, &inputs)),
                        })
                        .collect();
                    let r = match &g.node(m).prim {
                        // A broadcast is the input read with broadcasting; the identity here.
                        Prim::Broadcast | Prim::StopGrad => args[0],
                        prim => {
                            let dtype = g.inputs(m).last().map_or(DType::F32, |&i| g.ty(i).dtype);
                            instrs.push(FusedInstr { prim: prim.clone(), dtype, args });
                            first_input + inputs.len() + instrs.len() - 1
                        }
                    };
                    reg.insert(m, r);
                }
                let mut outputs = Vec::new();
                for &m in head.iter().chain(&members) {
                    if read_outside[m.index()] {
                        let v = new_value(&mut phase, m, false)?;
                        outputs.push((reg[&m], v));
                        operand.insert(m, Operand::Value(v));
                    }
                }
                let shape = concrete(members[0])?;
                let reduces: Vec<NodeId> =
                    part.reductions(k).into_iter().filter(|r| is_live[r.index()]).collect();
                let step = if let Some(h) = head {
                    let op_inputs: Vec<Operand> = g
                        .inputs(h)
                        .iter()
                        .map(|i| {
                            operand.get(i).copied().ok_or("an epilogue's op input was not computed first")
                        })
                        .collect::<Result<_, _>>()?;
                    Step::OpEpilogue {
                        prim: g.node(h).prim.clone(),
                        op_inputs,
                        shape,
                        inputs,
                        instrs,
                        outputs,
                    }
                } else if reduces.is_empty() {
                    Step::Fused { shape, inputs, instrs, outputs, in_place: Vec::new() }
                } else {
                    let mut axes = Vec::new();
                    let mut reductions = Vec::new();
                    for r in reduces {
                        let Prim::Reduce { op, axes: a } = &g.node(r).prim else {
                            return Err("a fused reduction that is not a reduce".into());
                        };
                        let x = g.inputs(r).first().copied().ok_or("a reduce without an input")?;
                        let arg = *reg.get(&x).ok_or("a fused reduction's input is not in its group")?;
                        let output = new_value(&mut phase, r, false)?;
                        operand.insert(r, Operand::Value(output));
                        axes.clone_from(a);
                        reductions.push(FusedReduction { op: *op, arg, output });
                    }
                    Step::FusedReduce { shape, inputs, instrs, outputs, axes, reductions }
                };
                phase.steps.push(step);
            }
        }
    }
    phase.outputs = g
        .outputs
        .iter()
        .map(|o| Ok((o.name.clone(), *operand.get(&o.node).ok_or("an output was never computed")?)))
        .collect::<Result<_, String>>()?;
    assign_slots(&mut phase);
    Ok(phase)
}

/// Gives every non-view value a memory slot, reusing slots of the same size once their value
/// is dead, inserts `Release` steps, and records the peak.
fn assign_slots(phase: &mut PhaseProgram) {
    let n = phase.values.len();
    // Views alias their source: map every value to the root value that owns memory.
    let mut root: Vec<usize> = (0..n).collect();
    for step in &phase.steps {
        if let Step::View { input: Operand::Value(src), output } = step {
            root[*output] = root[*src];
        }
    }
    let mut last_use = vec![0usize; n];
    let reads = |step: &Step| -> Vec<usize> {
        let ops: Vec<Operand> = match step {
            Step::Fused { inputs, .. } | Step::FusedReduce { inputs, .. } | Step::Op { inputs, .. } => {
                inputs.clone()
            }
            Step::OpEpilogue { op_inputs, inputs, .. } => op_inputs.iter().chain(inputs).copied().collect(),
            Step::View { input, .. } => vec![*input],
            Step::Release { .. } => vec![],
        };
        ops.into_iter().filter_map(|o| if let Operand::Value(v) = o { Some(v) } else { None }).collect()
    };
    for (s, step) in phase.steps.iter().enumerate() {
        for v in reads(step) {
            last_use[root[v]] = last_use[root[v]].max(s);
        }
    }
    for (_, o) in &phase.outputs {
        if let Operand::Value(v) = o {
            last_use[root[*v]] = usize::MAX;
        }
    }
    let bytes = |v: &ValueSpec| v.shape.iter().product::<usize>() as u64 * 4;
    let mut free: Vec<usize> = Vec::new();
    let (mut live_bytes, mut peak) = (0u64, 0u64);
    let mut steps = Vec::with_capacity(phase.steps.len());
    let old = std::mem::take(&mut phase.steps);
    // Roots whose memory an output took over: their release frees nothing.
    let mut taken_over = std::collections::HashSet::new();
    for (s, mut step) in old.into_iter().enumerate() {
        // An element-wise kernel may write an output over an input that dies here and that it
        // reads at the output's own positions (same shape, so no broadcast).
        let mut reusable: Vec<(usize, usize)> = Vec::new();
        if let Step::Fused { shape, inputs, .. } = &step {
            for (i, o) in inputs.iter().enumerate() {
                let Operand::Value(v) = *o else { continue };
                let r = root[v];
                let fresh = !reusable.iter().any(|&(_, q)| q == r) && !taken_over.contains(&r);
                if fresh && last_use[r] == s && phase.values[v].shape == *shape {
                    reusable.push((i, r));
                }
            }
        }
        // The outputs that take over an input's slot.
        let mut over = Vec::new();
        if let Step::Fused { outputs, in_place, .. } = &mut step {
            for (k, &(_, v)) in outputs.iter().enumerate() {
                let size = bytes(&phase.values[v]);
                let fits = reusable.iter().position(|&(_, r)| bytes(&phase.values[r]) == size);
                if let Some(p) = fits {
                    let (i, r) = reusable.swap_remove(p);
                    phase.values[v].slot = phase.values[r].slot;
                    taken_over.insert(r);
                    in_place.push((k, i));
                    over.push(v);
                }
            }
        }
        let defined: Vec<usize> = match &step {
            Step::Fused { outputs, .. } | Step::OpEpilogue { outputs, .. } => {
                outputs.iter().map(|(_, v)| *v).collect()
            }
            Step::FusedReduce { outputs, reductions, .. } => {
                outputs.iter().map(|(_, v)| *v).chain(reductions.iter().map(|r| r.output)).collect()
            }
            Step::Op { output, .. } => vec![*output],
            Step::View { .. } | Step::Release { .. } => vec![],
        };
        for v in defined {
            let size = bytes(&phase.values[v]);
            if over.contains(&v) {
                // Written over a dying input: no new memory. It still dies when unread.
                if last_use[v] == 0 {
                    last_use[v] = s;
                }
                continue;
            }
            let slot = match free.iter().position(|&f| phase.slots[f] == size) {
                Some(k) => free.swap_remove(k),
                None => {
                    phase.slots.push(size);
                    phase.slots.len() - 1
                }
            };
            phase.values[v].slot = Some(slot);
            live_bytes += size;
            // A value nobody reads dies right after its step.
            if last_use[v] == 0 {
                last_use[v] = s;
            }
        }
        peak = peak.max(live_bytes);
        let reads_now = reads(&step);
        steps.push(step);
        let mut dead: Vec<usize> =
            reads_now.into_iter().map(|v| root[v]).filter(|&r| last_use[r] == s).collect();
        dead.sort_unstable();
        dead.dedup();
        if !dead.is_empty() {
            for &v in &dead {
                if taken_over.contains(&v) {
                    continue;
                }
                if let Some(slot) = phase.values[v].slot {
                    free.push(slot);
                    live_bytes -= phase.slots[slot];
                }
            }
            steps.push(Step::Release { values: dead });
        }
    }
    phase.steps = steps;
    phase.peak_bytes = peak;
}
