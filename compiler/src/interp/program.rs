//! Running a planned phase on the host: every step of a `PhaseProgram` through the reference
//! evaluator, fused kernels instruction by instruction. It also checks the plan's memory
//! reuse: a value read after another value took over its slot is an error.

use super::{ErrorKind, EvalError, Leaves, Value, eval};
use crate::prim::{DType, Prim};
use crate::program::{FusedInstr, Operand, PhaseProgram, Step};

fn malformed(message: impl Into<String>) -> EvalError {
    EvalError { op: "program".into(), kind: ErrorKind::Malformed(message.into()) }
}

/// Where a fused instruction sits in a phase: the step's index and the instruction's index
/// in that step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct InstrAt {
    pub step: usize,
    pub instr: usize,
}

/// Runs `phase`, returning its named outputs.
pub fn run_phase(phase: &PhaseProgram, leaves: &Leaves) -> Result<Vec<(String, Value)>, EvalError> {
    run_phase_observed(phase, leaves, &mut |_, _, _| {})
}

/// [`run_phase`] that shows every fused instruction's operands and result to `observe`,
/// which may change the result: a device test uses it to settle comparisons that f32 cannot
/// decide the way the device settled them.
pub fn run_phase_observed(
    phase: &PhaseProgram,
    leaves: &Leaves,
    observe: &mut dyn FnMut(InstrAt, &[&Value], &mut Value),
) -> Result<Vec<(String, Value)>, EvalError> {
    let no_leaves = Leaves { seed: leaves.seed, ..Leaves::default() };
    let constants: Vec<Value> = phase
        .constants
        .iter()
        .map(|c| eval(&c.prim, &[], &c.shape, c.dtype, &no_leaves))
        .collect::<Result<_, _>>()?;
    let mut values: Vec<Option<Value>> = vec![None; phase.values.len()];
    // Which value each slot holds now; views read through their root.
    let mut holder: Vec<Option<usize>> = vec![None; phase.slots.len()];
    let mut root: Vec<usize> = (0..phase.values.len()).collect();
    let read = |o: &Operand,
                values: &[Option<Value>],
                holder: &[Option<usize>],
                root: &[usize]|
     -> Result<Value, EvalError> {
        match *o {
            Operand::Input(i) => {
                leaves.inputs.get(i).cloned().ok_or_else(|| malformed(format!("no input {i}")))
            }
            Operand::Param(i) => {
                leaves.params.get(i).cloned().ok_or_else(|| malformed(format!("no param {i}")))
            }
            Operand::Buffer(i) => {
                leaves.buffers.get(i).cloned().ok_or_else(|| malformed(format!("no buffer {i}")))
            }
            Operand::Const(i) => constants.get(i).cloned().ok_or_else(|| malformed(format!("no const {i}"))),
            Operand::Value(v) => {
                let r = root[v];
                if let Some(slot) = phase.values[r].slot
                    && holder[slot] != Some(r)
                {
                    return Err(malformed(format!("%{v} is read after its slot {slot} was reused")));
                }
                values[v].clone().ok_or_else(|| malformed(format!("%{v} is read before it is computed")))
            }
        }
    };
    for (s, step) in phase.steps.iter().enumerate() {
        match step {
            Step::Op { prim, inputs, output } => {
                let args: Vec<Value> =
                    inputs.iter().map(|o| read(o, &values, &holder, &root)).collect::<Result<_, _>>()?;
                let refs: Vec<&Value> = args.iter().collect();
                let spec = &phase.values[*output];
                let v = eval(prim, &refs, &spec.shape, spec.dtype, leaves)?;
                if let Some(slot) = spec.slot {
                    holder[slot] = Some(*output);
                }
                values[*output] = Some(v);
            }
            Step::View { input, output } => {
                let mut v = read(input, &values, &holder, &root)?;
                v.shape = phase.values[*output].shape.clone();
                if let Operand::Value(src) = input {
                    root[*output] = root[*src];
                }
                values[*output] = Some(v);
            }
            Step::Fused { shape, inputs, instrs, outputs, .. }
            | Step::FusedReduce { shape, inputs, instrs, outputs, .. }
            | Step::OpEpilogue { shape, inputs, instrs, outputs, .. } => {
                let mut args: Vec<Value> =
                    inputs.iter().map(|o| read(o, &values, &holder, &root)).collect::<Result<_, _>>()?;
                // An epilogue's op result is its register 0.
                if let Step::OpEpilogue { prim, op_inputs, .. } = step {
                    let ops: Vec<Value> = op_inputs
                        .iter()
                        .map(|o| read(o, &values, &holder, &root))
                        .collect::<Result<_, _>>()?;
                    let refs: Vec<&Value> = ops.iter().collect();
                    args.insert(0, eval(prim, &refs, shape, DType::F32, leaves)?);
                }
                let regs = registers(shape, args, instrs, &mut |i, a, v| {
                    observe(InstrAt { step: s, instr: i }, a, v)
                })?;
                for &(r, out) in outputs {
                    if let Some(slot) = phase.values[out].slot {
                        holder[slot] = Some(out);
                    }
                    values[out] = Some(register(&regs, r)?);
                }
                let Step::FusedReduce { axes, reductions, .. } = step else { continue };
                // Reductions read registers, not values: their inputs never have a slot.
                for red in reductions {
                    let spec = &phase.values[red.output];
                    let prim = Prim::Reduce { op: red.op, axes: axes.clone() };
                    let v = eval(&prim, &[&register(&regs, red.arg)?], &spec.shape, spec.dtype, &no_leaves)?;
                    if let Some(slot) = spec.slot {
                        holder[slot] = Some(red.output);
                    }
                    values[red.output] = Some(v);
                }
            }
            Step::Release { .. } => {}
        }
    }
    phase.outputs.iter().map(|(name, o)| Ok((name.clone(), read(o, &values, &holder, &root)?))).collect()
}

/// The registers of a fused program over `shape`: the inputs read broadcast to the kernel's
/// shape, then one register per instruction, each shown to `observe` (by its index).
fn registers(
    shape: &[usize],
    inputs: Vec<Value>,
    instrs: &[FusedInstr],
    observe: &mut dyn FnMut(usize, &[&Value], &mut Value),
) -> Result<Vec<Value>, EvalError> {
    let none = Leaves::default();
    let mut regs: Vec<Value> = Vec::with_capacity(inputs.len() + instrs.len());
    for v in inputs {
        let v = if v.shape == shape {
            v
        } else {
            let lifted = lift(&v, shape.len());
            eval(&Prim::Broadcast, &[&lifted], shape, v.dtype, &none)?
        };
        regs.push(v);
    }
    for (i, ins) in instrs.iter().enumerate() {
        let args: Vec<&Value> = ins
            .args
            .iter()
            .map(|&a| regs.get(a).ok_or_else(|| malformed(format!("no register r{a}"))))
            .collect::<Result<_, _>>()?;
        let dtype = match &ins.prim {
            Prim::Binary(op) if op.is_comparison() => DType::Bool,
            Prim::Cast { to } => *to,
            Prim::Select => args.get(1).map_or(ins.dtype, |a| a.dtype),
            _ => ins.dtype,
        };
        let mut v = eval(&ins.prim, &args, shape, dtype, &none)?;
        observe(i, &args, &mut v);
        regs.push(v);
    }
    Ok(regs)
}

fn register(regs: &[Value], r: usize) -> Result<Value, EvalError> {
    regs.get(r).cloned().ok_or_else(|| malformed(format!("no register r{r}")))
}

/// Inserts leading extent-1 axes up to `rank`.
fn lift(v: &Value, rank: usize) -> Value {
    let mut shape = vec![1; rank.saturating_sub(v.shape.len())];
    shape.extend(&v.shape);
    Value { dtype: v.dtype, shape, data: v.data.clone() }
}
