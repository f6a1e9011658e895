//! Samplers on the host: the reference run of a unit's host program node by node over its
//! graph (no planning: what a planned sampler must agree with), and a planned
//! [`SamplerProgram`] run segment by segment through [`run_phase`].

use super::{ErrorKind, EvalError, Leaves, Value, eval, run_phase};
use crate::graph::{Graph, NodeId};
use crate::host::{HostBody, HostStmt};
use crate::prim::{DType, Prim};
use crate::random;
use crate::sampler::walk::{self, Evaluator};
use crate::sampler::{SamplerProgram, Segment};

fn malformed(message: impl Into<String>) -> EvalError {
    EvalError { op: "sampler".into(), kind: ErrorKind::Malformed(message.into()) }
}

/// Runs the host program `host` of graph `g` (its dims bound, its `grad`s expanded), every
/// segment's nodes in order. `inputs` are the unit's inputs in node order (every `Input` that
/// is neither a loop counter nor a placeholder). Returns the graph's outputs in order.
pub fn eval_host(
    g: &Graph,
    host: &HostBody,
    params: &[Value],
    buffers: &[Value],
    inputs: &[Value],
    seed: u64,
) -> Result<Vec<Value>, EvalError> {
    if let Some(why) = &host.unsupported {
        return Err(malformed(format!("the host cannot run it: {why}")));
    }
    let mut run = Reference { g, params, buffers, values: vec![None; g.len()] };
    let hosted = hosted_inputs(&host.stmts);
    let mut fed = inputs.iter();
    for n in g.dag.node_indices() {
        if matches!(g.node(n).prim, Prim::Input { .. }) && !hosted.contains(&n) {
            let v = fed.next().ok_or_else(|| malformed("too few inputs"))?;
            run.values[n.index()] = Some(v.clone());
        }
    }
    if fed.next().is_some() {
        return Err(malformed("too many inputs"));
    }
    run.stmts(&host.stmts, seed)?;
    g.outputs.iter().map(|o| run.get(o.node)).collect()
}

/// Loop counters and placeholders: the `Input` nodes the host sets.
fn hosted_inputs(stmts: &[HostStmt]) -> Vec<NodeId> {
    let mut out = Vec::new();
    for s in stmts {
        match s {
            HostStmt::Segment { .. } => {}
            HostStmt::Copy { to, .. } => out.push(*to),
            HostStmt::Loop { var, body, .. } => {
                out.push(*var);
                out.extend(hosted_inputs(body));
            }
            HostStmt::If { then, otherwise, .. } => {
                out.extend(hosted_inputs(then));
                out.extend(hosted_inputs(otherwise));
            }
        }
    }
    out
}

struct Reference<'a> {
    g: &'a Graph,
    params: &'a [Value],
    buffers: &'a [Value],
    values: Vec<Option<Value>>,
}

impl Reference<'_> {
    fn get(&self, n: NodeId) -> Result<Value, EvalError> {
        self.values
            .get(n.index())
            .cloned()
            .flatten()
            .ok_or_else(|| malformed(format!("node {} is read before it is computed", n.index())))
    }

    fn stmts(&mut self, stmts: &[HostStmt], seed: u64) -> Result<(), EvalError> {
        for s in stmts {
            match s {
                HostStmt::Segment { start, end } => {
                    let leaves = Leaves { seed, inputs: &[], params: self.params, buffers: self.buffers };
                    for i in *start..*end {
                        let n = NodeId::new(i);
                        let node = self.g.node(n);
                        if matches!(node.prim, Prim::Input { .. }) {
                            continue;
                        }
                        let args = self
                            .g
                            .inputs(n)
                            .into_iter()
                            .map(|a| self.get(a))
                            .collect::<Result<Vec<_>, _>>()?;
                        let refs: Vec<&Value> = args.iter().collect();
                        let shape = node
                            .ty
                            .concrete()
                            .ok_or_else(|| malformed(format!("{} is not concrete", node.ty)))?;
                        self.values[i] = Some(eval(&node.prim, &refs, &shape, node.ty.dtype, &leaves)?);
                    }
                }
                HostStmt::Copy { from, to } => self.values[to.index()] = Some(self.get(*from)?),
                HostStmt::Loop { var, first, last, body } => {
                    let down = last < first;
                    for k in 0..=first.abs_diff(*last) {
                        let value = if down { first - k as i64 } else { first + k as i64 };
                        self.values[var.index()] =
                            Some(Value::new(DType::I32, Vec::new(), vec![value as f64])?);
                        self.stmts(body, random::iteration_seed(seed, k))?;
                    }
                }
                HostStmt::If { cond, then, otherwise } => {
                    let c = self.get(*cond)?;
                    let truth = c.data.first().is_some_and(|&x| x != 0.0);
                    self.stmts(if truth { then } else { otherwise }, seed)?;
                }
            }
        }
        Ok(())
    }
}

/// Runs a planned sampler on the host, each segment through [`run_phase`].
pub fn run_sampler(
    program: &SamplerProgram,
    params: &[Value],
    buffers: &[Value],
    inputs: Vec<Value>,
    seed: u64,
) -> Result<Vec<(String, Value)>, EvalError> {
    let mut host = Planned { params, buffers };
    walk::run(program, &mut host, inputs, seed)
}

struct Planned<'a> {
    params: &'a [Value],
    buffers: &'a [Value],
}

impl Evaluator for Planned<'_> {
    type Tensor = Value;
    type Error = EvalError;

    fn run_segment(
        &mut self,
        _index: usize,
        segment: &Segment,
        inputs: Vec<Value>,
        seed: u64,
    ) -> Result<Vec<Value>, EvalError> {
        let leaves = Leaves { seed, inputs: &inputs, params: self.params, buffers: self.buffers };
        Ok(run_phase(&segment.phase, &leaves)?.into_iter().map(|(_, v)| v).collect())
    }

    fn counter(&mut self, value: i64) -> Result<Value, EvalError> {
        Value::new(DType::I32, Vec::new(), vec![value as f64])
    }

    fn is_true(&mut self, cond: &Value) -> Result<bool, EvalError> {
        cond.data.first().map(|&x| x != 0.0).ok_or_else(|| malformed("an empty branch condition"))
    }

    fn malformed(&self, message: String) -> EvalError {
        malformed(message)
    }
}
