//! Running a [`SamplerProgram`]: the host side (variables, loops, branches, seeds) once, for
//! every evaluator of segments — the reference interpreter and the device — so they cannot
//! disagree on anything but the arithmetic.

use super::{HostStep, SamplerProgram, Segment};
use crate::random;

/// What runs the segments and holds the tensors.
pub trait Evaluator {
    type Tensor: Clone;
    type Error;
    /// Runs segment `index` on `inputs` (in the order of its phase's inputs), returning its
    /// outputs in the order of its phase's outputs.
    fn run_segment(
        &mut self,
        index: usize,
        segment: &Segment,
        inputs: Vec<Self::Tensor>,
        seed: u64,
    ) -> Result<Vec<Self::Tensor>, Self::Error>;
    /// A loop counter's value: an i32 scalar.
    fn counter(&mut self, value: i64) -> Result<Self::Tensor, Self::Error>;
    /// Whether a scalar branch condition is non-zero.
    fn is_true(&mut self, cond: &Self::Tensor) -> Result<bool, Self::Error>;
    /// The error for a program that does not hold together.
    fn malformed(&self, message: String) -> Self::Error;
}

/// Runs `program` with the unit's `inputs` (in the order of `program.inputs`) and `seed`,
/// returning its outputs by name.
pub fn run<E: Evaluator>(
    program: &SamplerProgram,
    evaluator: &mut E,
    inputs: Vec<E::Tensor>,
    seed: u64,
) -> Result<Vec<(String, E::Tensor)>, E::Error> {
    if inputs.len() != program.inputs.len() {
        let message =
            format!("`{}` takes {} inputs, got {}", program.name, program.inputs.len(), inputs.len());
        return Err(evaluator.malformed(message));
    }
    let mut host = Host { program, env: vec![None; program.vars.len()] };
    for (&v, t) in program.inputs.iter().zip(inputs) {
        host.env[v] = Some(t);
    }
    host.steps(evaluator, &program.body, seed)?;
    program.outputs.iter().map(|(name, v)| Ok((name.clone(), host.get(evaluator, *v)?))).collect()
}

/// How many segment runs `steps` make, loops counted out and each branch at its longer side
/// (an upper bound, for progress reports).
pub fn segment_runs(steps: &[HostStep]) -> usize {
    steps
        .iter()
        .map(|s| match s {
            HostStep::Run { .. } => 1,
            HostStep::Copy { .. } => 0,
            HostStep::Loop { first, last, body, .. } => {
                (first.abs_diff(*last) as usize).saturating_add(1).saturating_mul(segment_runs(body))
            }
            HostStep::If { then, otherwise, .. } => segment_runs(then).max(segment_runs(otherwise)),
        })
        .fold(0, usize::saturating_add)
}

/// The host's state: the current value of every variable.
struct Host<'p, T> {
    program: &'p SamplerProgram,
    env: Vec<Option<T>>,
}

impl<T: Clone> Host<'_, T> {
    fn get<E: Evaluator<Tensor = T>>(&self, e: &E, v: usize) -> Result<T, E::Error> {
        self.env.get(v).cloned().flatten().ok_or_else(|| {
            let name = self.program.vars.get(v).map_or("?", |x| x.name.as_str());
            e.malformed(format!("var[{v}] `{name}` is read before it is set"))
        })
    }

    fn set<E: Evaluator<Tensor = T>>(&mut self, e: &E, v: usize, t: T) -> Result<(), E::Error> {
        match self.env.get_mut(v) {
            Some(slot) => {
                *slot = Some(t);
                Ok(())
            }
            None => Err(e.malformed(format!("there is no var[{v}]"))),
        }
    }

    fn steps<E: Evaluator<Tensor = T>>(
        &mut self,
        e: &mut E,
        steps: &[HostStep],
        seed: u64,
    ) -> Result<(), E::Error> {
        for step in steps {
            match step {
                HostStep::Run { segment } => {
                    let program = self.program;
                    let seg = program
                        .segments
                        .get(*segment)
                        .ok_or_else(|| e.malformed(format!("there is no segment[{segment}]")))?;
                    let inputs = seg.reads.iter().map(|&v| self.get(e, v)).collect::<Result<Vec<_>, _>>()?;
                    let outputs = e.run_segment(*segment, seg, inputs, seed)?;
                    if outputs.len() != seg.writes.len() {
                        let message = format!(
                            "segment[{segment}] gave {} outputs for {} variables",
                            outputs.len(),
                            seg.writes.len()
                        );
                        return Err(e.malformed(message));
                    }
                    for (&v, t) in seg.writes.iter().zip(outputs) {
                        self.set(e, v, t)?;
                    }
                }
                HostStep::Copy { from, to } => {
                    let t = self.get(e, *from)?;
                    self.set(e, *to, t)?;
                }
                HostStep::Loop { var, first, last, body } => {
                    let down = last < first;
                    for k in 0..=first.abs_diff(*last) {
                        let value = if down { first - k as i64 } else { first + k as i64 };
                        if let Some(v) = var {
                            let t = e.counter(value)?;
                            self.set(e, *v, t)?;
                        }
                        self.steps(e, body, random::iteration_seed(seed, k))?;
                    }
                }
                HostStep::If { cond, then, otherwise } => {
                    let c = self.get(e, *cond)?;
                    let side = if e.is_true(&c)? { then } else { otherwise };
                    self.steps(e, side, seed)?;
                }
            }
        }
        Ok(())
    }
}
