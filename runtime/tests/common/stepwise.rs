//! Kernel-by-kernel comparison of a planned phase with the reference interpreter.
//!
//! A whole-phase mismatch does not say where it starts: an error made by one kernel grows
//! through every later one. Here each kernel step runs alone, on the device and on the
//! interpreter, from the *same* f32 operands (the interpreter's own values of the phase,
//! rounded to f32), so its error is the kernel's own. Chaining the isolated steps on the host
//! also gives the interpreter with f32 storage: what an exact f32 device would compute.

use genc_compiler::interp::{self, Value};
use genc_compiler::program::{ConstSpec, Operand, PhaseProgram, Step, TensorSpec, ValueSpec};
use genc_runtime::device::DeviceTensor;
use genc_runtime::executor::LoadedPhase;
use genc_runtime::kernels::Leaves;

use super::device;

/// The leaves of a phase on the host: inputs, parameters, buffers and the seed.
pub struct HostLeaves<'a> {
    pub inputs: &'a [Value],
    pub params: &'a [Value],
    pub buffers: &'a [Value],
    pub seed: u64,
}

impl HostLeaves<'_> {
    fn interp(&self) -> interp::Leaves<'_> {
        interp::Leaves { seed: self.seed, inputs: self.inputs, params: self.params, buffers: self.buffers }
    }
}

/// One kernel step's own error: the largest |device - interpreter| of its outputs, over the
/// largest |interpreter| of that output or of its operands, whichever is larger (a sum that
/// cancels to nearly 0 cannot be more exact than its terms).
#[derive(Clone, Debug)]
pub struct StepError {
    pub step: usize,
    pub text: String,
    pub relative: f64,
    pub absolute: f64,
    /// The largest |interpreter| of the output.
    pub scale: f64,
    /// The largest |operand|.
    pub operands: f64,
}

/// Rounds every f32 element to f32 (i32 and bool values are exact already).
pub fn round_f32(v: &Value) -> Value {
    Value { data: v.data.iter().map(|&x| x as f32 as f64).collect(), ..v.clone() }
}

/// A step made to run alone: value operands become inputs, constants are copied, and its
/// outputs are the phase's outputs (named `%v` after the values of the original phase).
struct Isolated {
    phase: PhaseProgram,
    /// For each input of `phase`: where the original step read it.
    feeds: Vec<Operand>,
}

fn isolate(phase: &PhaseProgram, step: &Step) -> Option<Isolated> {
    let (inputs, outs): (&[Operand], Vec<usize>) = match step {
        Step::Op { inputs, output, .. } => (inputs, vec![*output]),
        Step::Fused { inputs, outputs, .. } => (inputs, outputs.iter().map(|(_, v)| *v).collect()),
        Step::View { .. } | Step::Release { .. } => return None,
    };
    let mut feeds: Vec<Operand> = Vec::new();
    let mut constants: Vec<ConstSpec> = Vec::new();
    let mut remap = |o: &Operand| match *o {
        Operand::Value(_) | Operand::Input(_) => {
            feeds.push(*o);
            Operand::Input(feeds.len() - 1)
        }
        Operand::Const(c) => {
            constants.push(phase.constants[c].clone());
            Operand::Const(constants.len() - 1)
        }
        Operand::Param(_) | Operand::Buffer(_) => *o,
    };
    let new_inputs: Vec<Operand> = inputs.iter().map(&mut remap).collect();
    let values: Vec<ValueSpec> = outs
        .iter()
        .enumerate()
        .map(|(k, &v)| ValueSpec { slot: Some(k), ..phase.values[v].clone() })
        .collect();
    let step = match step {
        Step::Op { prim, .. } => Step::Op { prim: prim.clone(), inputs: new_inputs, output: 0 },
        Step::Fused { shape, instrs, outputs, .. } => Step::Fused {
            shape: shape.clone(),
            inputs: new_inputs,
            instrs: instrs.clone(),
            outputs: outputs.iter().enumerate().map(|(k, (r, _))| (*r, k)).collect(),
        },
        Step::View { .. } | Step::Release { .. } => return None,
    };
    let spec_of = |o: &Operand| match *o {
        Operand::Value(v) => TensorSpec {
            name: format!("%{v}"),
            dtype: phase.values[v].dtype,
            shape: phase.values[v].shape.clone(),
        },
        Operand::Input(i) => phase.inputs[i].clone(),
        _ => unreachable!("only values and inputs are fed"),
    };
    let isolated = PhaseProgram {
        name: format!("{} step", phase.name),
        inputs: feeds.iter().map(spec_of).collect(),
        constants,
        slots: values.iter().map(|v| v.shape.iter().product::<usize>() as u64 * 4).collect(),
        values,
        steps: vec![step],
        outputs: outs.iter().enumerate().map(|(k, v)| (format!("%{v}"), Operand::Value(k))).collect(),
        peak_bytes: 0,
        primitive_ops: 1,
        kernels: 1,
    };
    Some(Isolated { phase: isolated, feeds })
}

/// A value of the phase, as the host computed it so far (views read their source).
fn host_value(
    o: &Operand,
    values: &[Option<Value>],
    leaves: &HostLeaves,
    phase: &PhaseProgram,
) -> Option<Value> {
    match *o {
        Operand::Value(v) => values[v].clone(),
        Operand::Input(i) => leaves.inputs.get(i).cloned(),
        Operand::Param(i) => leaves.params.get(i).cloned(),
        Operand::Buffer(i) => leaves.buffers.get(i).cloned(),
        Operand::Const(c) => {
            let spec = &phase.constants[c];
            interp::eval(&spec.prim, &[], &spec.shape, spec.dtype, &interp::Leaves::default()).ok()
        }
    }
}

/// Runs the phase's steps in order on the host, each from the previous steps' results,
/// optionally rounded to f32 after every kernel (f32 storage, exact arithmetic inside a
/// kernel). Returns every value of the phase.
pub fn host_chain(phase: &PhaseProgram, leaves: &HostLeaves, f32_storage: bool) -> Vec<Option<Value>> {
    let mut values: Vec<Option<Value>> = vec![None; phase.values.len()];
    for step in &phase.steps {
        if let Step::View { input, output } = step {
            let mut v = host_value(input, &values, leaves, phase).expect("a view's source");
            v.shape = phase.values[*output].shape.clone();
            values[*output] = Some(v);
            continue;
        }
        let Some(iso) = isolate(phase, step) else { continue };
        let fed: Vec<Value> =
            iso.feeds.iter().map(|o| host_value(o, &values, leaves, phase).expect("an operand")).collect();
        let sub = HostLeaves { inputs: &fed, ..*leaves };
        let outs = interp::run_phase(&iso.phase, &sub.interp()).expect("interpreter");
        for (name, v) in outs {
            let index: usize = name[1..].parse().expect("a value name");
            values[index] = Some(if f32_storage { round_f32(&v) } else { v });
        }
    }
    values
}

/// Each kernel step alone on the device and on the interpreter, fed the f32-rounded values
/// of `reference` (a [`host_chain`] result). One entry per kernel step, in phase order.
pub fn step_errors(phase: &PhaseProgram, leaves: &HostLeaves, reference: &[Option<Value>]) -> Vec<StepError> {
    let upload = |vs: &[Value]| {
        vs.iter().map(|v| DeviceTensor::from_value(device(), v).unwrap_or_else(|e| panic!("{e}"))).collect()
    };
    let dev_leaves = Leaves {
        inputs: Vec::new(),
        params: upload(leaves.params),
        buffers: upload(leaves.buffers),
        seed: leaves.seed,
    };
    let mut errors = Vec::new();
    for (s, step) in phase.steps.iter().enumerate() {
        let Some(iso) = isolate(phase, step) else { continue };
        let fed: Vec<Value> = iso
            .feeds
            .iter()
            .map(|o| round_f32(&host_value(o, reference, leaves, phase).expect("an operand")))
            .collect();
        let want = interp::run_phase(&iso.phase, &HostLeaves { inputs: &fed, ..*leaves }.interp())
            .expect("interpreter");
        let dev = Leaves { inputs: upload(&fed), ..dev_leaves.clone() };
        let loaded = LoadedPhase::load(device(), &iso.phase).expect("load");
        let got = loaded.run(device(), &dev).expect("device run");
        let operands = fed.iter().map(max_abs).fold(0.0, f64::max);
        let text = step_text(&iso.phase);
        let mut worst = StepError { step: s, text, relative: 0.0, absolute: 0.0, scale: 0.0, operands };
        for ((_, w), (_, g)) in want.iter().zip(&got) {
            let g = g.to_value(device()).expect("readback");
            let scale = max_abs(w);
            let absolute = w.data.iter().zip(&g.data).fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
            let denominator = scale.max(operands);
            let relative = if denominator > 0.0 { absolute / denominator } else { absolute };
            if relative > worst.relative {
                worst = StepError { relative, absolute, scale, ..worst };
            }
        }
        errors.push(worst);
    }
    errors
}

/// The one-step program's text, without its header and footer.
fn step_text(p: &PhaseProgram) -> String {
    let program =
        genc_compiler::program::Program { params: vec![], buffers: vec![], phases: vec![p.clone()] };
    program
        .to_text()
        .lines()
        .filter(|l| l.starts_with("  ") && !l.starts_with("  input") && !l.starts_with("  return"))
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn max_abs(v: &Value) -> f64 {
    v.data.iter().fold(0.0f64, |m, x| m.max(x.abs()))
}

/// Max |a - b| / max |b| over two values of the same shape.
pub fn relative_diff(a: &Value, b: &Value) -> f64 {
    let scale = b.data.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    let diff = a.data.iter().zip(&b.data).fold(0.0f64, |m, (x, y)| m.max((x - y).abs()));
    if scale > 0.0 { diff / scale } else { diff }
}

/// The phase with every value an output and no `Release`: the device keeps every
/// intermediate, so a whole run can be compared value by value.
pub fn keep_everything(phase: &PhaseProgram) -> PhaseProgram {
    let mut p = phase.clone();
    p.steps.retain(|s| !matches!(s, Step::Release { .. }));
    p.outputs = (0..p.values.len()).map(|v| (format!("%{v}"), Operand::Value(v))).collect();
    p
}
