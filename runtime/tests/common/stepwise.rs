//! Kernel-by-kernel comparison of a planned phase with the reference interpreter.
//!
//! A whole-phase mismatch does not say where it starts: an error made by one kernel grows
//! through every later one. Here each kernel step runs alone, on the device and on the
//! interpreter, from the *same* f32 operands (the interpreter's own values of the phase,
//! rounded to f32), so its error is the kernel's own. Chaining the isolated steps on the host
//! also gives the interpreter with f32 storage: what an exact f32 device would compute.

use genc_compiler::interp::{self, Value};
use genc_compiler::plan;
use genc_compiler::program::{ConstSpec, FusedReduction, Operand, PhaseProgram, Step, TensorSpec, ValueSpec};
use genc_runtime::executor::LoadedPhase;
use genc_runtime::kernels::Leaves;

use super::{checked, device, leaves, upload};

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
    let epilogue_inputs: Vec<Operand>;
    let (inputs, outs): (&[Operand], Vec<usize>) = match step {
        Step::Op { inputs, output, .. } => (inputs, vec![*output]),
        Step::OpEpilogue { op_inputs, inputs, outputs, .. } => {
            epilogue_inputs = op_inputs.iter().chain(inputs).copied().collect();
            (&epilogue_inputs, outputs.iter().map(|(_, v)| *v).collect())
        }
        Step::Fused { inputs, outputs, .. } => (inputs, outputs.iter().map(|(_, v)| *v).collect()),
        Step::FusedReduce { inputs, outputs, reductions, .. } => {
            (inputs, outputs.iter().map(|(_, v)| *v).chain(reductions.iter().map(|r| r.output)).collect())
        }
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
        Step::OpEpilogue { prim, op_inputs, shape, instrs, outputs, .. } => {
            let mut op_ins = new_inputs;
            let inputs = op_ins.split_off(op_inputs.len());
            Step::OpEpilogue {
                prim: prim.clone(),
                op_inputs: op_ins,
                shape: shape.clone(),
                inputs,
                instrs: instrs.clone(),
                outputs: outputs.iter().enumerate().map(|(k, (r, _))| (*r, k)).collect(),
            }
        }
        Step::Fused { shape, instrs, outputs, in_place, .. } => Step::Fused {
            shape: shape.clone(),
            inputs: new_inputs,
            instrs: instrs.clone(),
            outputs: outputs.iter().enumerate().map(|(k, (r, _))| (*r, k)).collect(),
            in_place: in_place.clone(),
        },
        Step::FusedReduce { shape, instrs, outputs, axes, reductions, .. } => Step::FusedReduce {
            shape: shape.clone(),
            inputs: new_inputs,
            instrs: instrs.clone(),
            outputs: outputs.iter().enumerate().map(|(k, (r, _))| (*r, k)).collect(),
            axes: axes.clone(),
            reductions: reductions
                .iter()
                .enumerate()
                .map(|(j, r)| FusedReduction { output: outputs.len() + j, ..r.clone() })
                .collect(),
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
        index_checks: Vec::new(),
        index_guards: Vec::new(),
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
    let program = genc_compiler::program::Program {
        params: vec![],
        buffers: vec![],
        phases: vec![p.clone()],
        updates: Default::default(),
    };
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
    let scale = max_abs(b);
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

/// Prints, for each phase of `name` at `batch` (whose name contains `only`, if given): each
/// output's error, device vs f64 interpreter and f32-storage interpreter vs f64 (how much
/// rounding every stored value to f32 alone explains); the first values of the whole device
/// run that differ from the f64 interpreter by more than 1e-4 of their scale, with their first
/// bad elements; the kernels with the largest error of their own (each run alone from the same
/// f32 operands on both sides), relative to the larger of their output's and operands' scale.
pub fn locate_divergence(name: &str, batch: u64, only: Option<&str>) {
    let (program, _) = plan::plan(&checked(name), Some(batch)).unwrap_or_else(|e| panic!("{e}"));
    for (k, phase) in program.phases.iter().enumerate() {
        if only.is_some_and(|o| !phase.name.contains(o)) {
            continue;
        }
        let (inputs, params, buffers) = leaves(&program, k);
        let host = HostLeaves { inputs: &inputs, params: &params, buffers: &buffers, seed: 5 };
        let fed =
            Leaves { inputs: upload(&inputs), params: upload(&params), buffers: upload(&buffers), seed: 5 };
        let exact = host_chain(phase, &host, false);
        let every = run_keeping_everything(phase, &fed);
        eprintln!("phase {}", phase.name);
        print_outputs(phase, &exact, &host_chain(phase, &host, true), &every);
        print_first_divergence(phase, &exact, &every);
        print_worst_kernels(phase, &host, &exact);
    }
}

/// Every value of one device run of the phase.
fn run_keeping_everything(phase: &PhaseProgram, fed: &Leaves) -> Vec<Value> {
    let loaded = LoadedPhase::load(device(), &keep_everything(phase)).unwrap_or_else(|e| panic!("{e}"));
    let got = loaded.run(device(), fed).unwrap_or_else(|e| panic!("{e}"));
    got.iter().map(|(_, t)| t.to_value(device()).unwrap_or_else(|e| panic!("{e}"))).collect()
}

fn print_outputs(phase: &PhaseProgram, exact: &[Option<Value>], rounded: &[Option<Value>], every: &[Value]) {
    eprintln!("  output: device vs f64, f32 storage vs f64 (max |diff| / max |f64|)");
    for (out, o) in &phase.outputs {
        let Operand::Value(v) = *o else { continue };
        let (Some(want), Some(stored)) = (&exact[v], &rounded[v]) else { continue };
        let (d, s) = (relative_diff(&every[v], want), relative_diff(stored, want));
        eprintln!("    {out}: {d:.2e} {s:.2e}");
    }
}

fn print_first_divergence(phase: &PhaseProgram, exact: &[Option<Value>], every: &[Value]) {
    let diverging = (0..every.len()).filter_map(|v| {
        let want = exact[v].as_ref()?;
        let d = relative_diff(&every[v], want);
        (d > 1e-4).then_some((v, d, want))
    });
    for (n, (v, d, want)) in diverging.take(8).enumerate() {
        let step = phase.steps.iter().position(|s| defines(s, v));
        eprintln!("  diverging: %{v} by {d:.2e}, shape {:?}, from step {step:?}", want.shape);
        if n == 0 {
            let tol = 1e-4 * max_abs(want);
            let pairs = want.data.iter().zip(&every[v].data).enumerate();
            let bad: Vec<_> = pairs.filter(|(_, (a, b))| (*a - *b).abs() > tol).take(6).collect();
            eprintln!("    first bad elements (index, (f64, device)): {bad:?}");
        }
    }
}

fn print_worst_kernels(phase: &PhaseProgram, host: &HostLeaves, exact: &[Option<Value>]) {
    let mut errors = step_errors(phase, host, exact);
    errors.sort_by(|a, b| b.relative.total_cmp(&a.relative));
    eprintln!("  kernels with the largest own error (of {}):", errors.len());
    for e in errors.iter().take(8) {
        let (s, r, a, o, m) = (e.step, e.relative, e.absolute, e.scale, e.operands);
        eprintln!("    step {s}: {r:.2e} (abs {a:.2e}, max |out| {o:.2e}, max |in| {m:.2e}): {}", e.text);
    }
}

fn defines(step: &Step, v: usize) -> bool {
    match step {
        Step::Op { output, .. } | Step::View { output, .. } => *output == v,
        Step::Fused { outputs, .. } | Step::OpEpilogue { outputs, .. } => {
            outputs.iter().any(|(_, o)| *o == v)
        }
        Step::FusedReduce { outputs, reductions, .. } => {
            outputs.iter().any(|(_, o)| *o == v) || reductions.iter().any(|r| r.output == v)
        }
        Step::Release { .. } => false,
    }
}
