//! The interpreter's run of a planned phase, with its branch decisions checked against the
//! device's and settled the device's way where f32 cannot decide them.
//!
//! A gradient is discontinuous at a comparison's threshold: leaky relu's slope is 1 on one
//! side and 0.2 on the other. When an operand lies within f32 rounding of the threshold (a
//! pre-activation of -7e-9 made of terms of 0.07, say), an exact f32 device may land on either
//! side, and the two gradients differ by far more than rounding. So the device reports every
//! comparison of its fused kernels; where it disagrees with the f64 interpreter and the
//! operands are within `delta` (relative to the operand's largest magnitude) of a tie, the
//! interpreter takes the device's side; a disagreement farther from a tie is a device bug.

use std::collections::HashMap;

use genc_compiler::interp::{self, InstrAt, Value};
use genc_compiler::prim::{DType, Prim, UnaryOp};
use genc_compiler::program::{Operand, PhaseProgram, Step, ValueSpec};

/// What settling found: decisions taken from the device, and disagreements that are not
/// near a tie (bugs).
#[derive(Debug, Default)]
pub struct Settled {
    /// Elements where the device's decision replaced the interpreter's.
    pub adopted: usize,
    /// The largest |a - b| / scale among the adopted elements.
    pub worst_adopted: f64,
    /// `(where, element, a, b, scale)` of each disagreement outside the tie band.
    pub disagreements: Vec<(InstrAt, usize, f64, f64, f64)>,
}

/// A fused instruction whose result jumps as its operands move: a comparison or `sign`.
fn is_decision(prim: &Prim) -> bool {
    match prim {
        Prim::Binary(op) => op.is_comparison(),
        Prim::Unary(op) => *op == UnaryOp::Sign,
        _ => false,
    }
}

/// The phase with every decision of its fused kernels as an extra output, after the
/// original outputs; the second result says which instruction each extra output is.
pub fn with_decisions(phase: &PhaseProgram) -> (PhaseProgram, Vec<InstrAt>) {
    let mut p = phase.clone();
    let mut at = Vec::new();
    for (s, step) in p.steps.iter_mut().enumerate() {
        // The first instruction's register: an epilogue's op result comes before its inputs.
        let (shape, first, instrs, outputs) = match step {
            Step::Fused { shape, inputs, instrs, outputs, .. }
            | Step::FusedReduce { shape, inputs, instrs, outputs, .. } => {
                (shape, inputs.len(), instrs, outputs)
            }
            Step::OpEpilogue { shape, inputs, instrs, outputs, .. } => {
                (shape, 1 + inputs.len(), instrs, outputs)
            }
            Step::Op { .. } | Step::View { .. } | Step::Release { .. } => continue,
        };
        for (i, ins) in instrs.iter().enumerate() {
            if !is_decision(&ins.prim) {
                continue;
            }
            let dtype = if matches!(ins.prim, Prim::Binary(_)) { DType::Bool } else { ins.dtype };
            p.slots.push(shape.iter().product::<usize>() as u64 * 4);
            let slot = Some(p.slots.len() - 1);
            let origin = format!("decision {s}.{i}");
            p.values.push(ValueSpec { dtype, shape: shape.clone(), slot, origin });
            let v = p.values.len() - 1;
            outputs.push((first + i, v));
            p.outputs.push((format!("decision {s}.{i}"), Operand::Value(v)));
            at.push(InstrAt { step: s, instr: i });
        }
    }
    (p, at)
}

fn max_abs(v: &Value) -> f64 {
    v.data.iter().fold(0.0f64, |m, x| m.max(x.abs()))
}

/// Runs `phase` on the interpreter, settling near-ties the way `device` (the decisions of
/// [`with_decisions`], by instruction) did.
pub fn settle(
    phase: &PhaseProgram,
    leaves: &interp::Leaves,
    device: &HashMap<InstrAt, Value>,
    delta: f64,
) -> Result<(Vec<(String, Value)>, Settled), interp::EvalError> {
    let mut settled = Settled::default();
    let mut observe = |at: InstrAt, args: &[&Value], result: &mut Value| {
        let Some(theirs) = device.get(&at) else { return };
        let zero = Value::zeros(DType::F32, &args[0].shape);
        let (a, b) = (args[0], args.get(1).copied().unwrap_or(&zero));
        let scale = max_abs(a).max(max_abs(b));
        for (k, (mine, their)) in result.data.iter_mut().zip(&theirs.data).enumerate() {
            if mine == their {
                continue;
            }
            let margin = (a.data[k] - b.data[k]).abs();
            if margin <= delta * scale {
                *mine = *their;
                settled.adopted += 1;
                settled.worst_adopted = settled.worst_adopted.max(margin / scale);
            } else {
                settled.disagreements.push((at, k, a.data[k], b.data[k], scale));
            }
        }
    };
    let outputs = interp::run_phase_observed(phase, leaves, &mut observe)?;
    Ok((outputs, settled))
}
