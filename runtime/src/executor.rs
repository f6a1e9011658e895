//! The executor: runs a phase of the compiler's `Program` on a device.
//!
//! Constants are computed once when a phase loads; each run feeds inputs, parameters and
//! buffers, launches the phase's kernels in order, drops every value at its `Release` step
//! (CubeCL's memory pool then reuses the buffer) and returns the named outputs.

use genc_compiler::prim::{DType, Prim};
use genc_compiler::program::{FusedInstr, Operand, PhaseProgram, Step};

use crate::device::{Device, DeviceError, DeviceTensor};
use crate::kernels::elementwise::{EwOp, FusedProgram, Instr, run_fused_in_place};
use crate::kernels::reduce::{FusedReduce, Reduction, run_fused_reduce};
use crate::kernels::{self, Leaves, binary_op, unary_op};
use crate::profile::Profile;

/// Where a non-finite number first appeared in a phase ([`LoadedPhase::first_non_finite`]).
#[derive(Clone, Debug, PartialEq)]
pub struct NonFiniteValue {
    /// The value's index in the phase.
    pub value: usize,
    /// The kernel that wrote it (`matmul`, `fused kernel [log, mul]`).
    pub kernel: String,
    /// Where in the spec it comes from (`E.linear0`).
    pub origin: String,
    pub shape: Vec<usize>,
    /// How many of its elements are NaN or infinite, and the first of them.
    pub count: usize,
    pub first: f32,
}

impl std::fmt::Display for NonFiniteValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n: usize = self.shape.iter().product();
        write!(
            f,
            "{} of {n} elements of %{} {:?} are non-finite (first: {}), written by {}",
            self.count, self.value, self.shape, self.first, self.kernel
        )?;
        if !self.origin.is_empty() {
            write!(f, " from `{}`", self.origin)?;
        }
        Ok(())
    }
}

/// A phase ready to run: its program and its constants on the device.
pub struct LoadedPhase {
    pub phase: PhaseProgram,
    constants: Vec<DeviceTensor>,
}

fn malformed(phase: &PhaseProgram, reason: impl Into<String>) -> DeviceError {
    DeviceError::Kernel { op: format!("phase {}", phase.name), reason: reason.into() }
}

impl LoadedPhase {
    /// Computes the phase's constants on `device`.
    pub fn load(device: &Device, phase: &PhaseProgram) -> Result<Self, DeviceError> {
        let none = Leaves::default();
        let constants = phase
            .constants
            .iter()
            .map(|c| kernels::eval(device, &c.prim, &[], &c.shape, c.dtype, &none))
            .collect::<Result<_, _>>()?;
        Ok(LoadedPhase { phase: phase.clone(), constants })
    }

    /// Runs the phase once, returning its outputs by name.
    pub fn run(&self, device: &Device, leaves: &Leaves) -> Result<Vec<(String, DeviceTensor)>, DeviceError> {
        self.run_profiled(device, leaves, &mut Profile::off())
    }

    /// Runs the phase once, charging each step's time to `profile` by its kind.
    pub fn run_profiled(
        &self,
        device: &Device,
        leaves: &Leaves,
        profile: &mut Profile,
    ) -> Result<Vec<(String, DeviceTensor)>, DeviceError> {
        let values = self.execute(device, leaves, profile, &mut |_, _| Ok(true))?;
        let phase = &self.phase;
        phase.outputs.iter().map(|(name, o)| Ok((name.clone(), self.operand(*o, &values, leaves)?))).collect()
    }

    /// Runs the phase until a kernel writes a NaN or an infinity, and says which: the first
    /// place a non-finite number appears. Slow (it reads every value back); for diagnosing a
    /// failed step, with the same leaves.
    pub fn first_non_finite(
        &self,
        device: &Device,
        leaves: &Leaves,
    ) -> Result<Option<NonFiniteValue>, DeviceError> {
        let mut found = None;
        self.execute(device, leaves, &mut Profile::off(), &mut |v, t| {
            let data = t.to_f32(device)?;
            let bad = data.iter().filter(|x| !x.is_finite()).count();
            if bad > 0 {
                let spec = &self.phase.values[v];
                found = Some(NonFiniteValue {
                    value: v,
                    kernel: self.describe_writer(v),
                    origin: spec.origin.clone(),
                    shape: spec.shape.clone(),
                    count: bad,
                    first: data.iter().copied().find(|x| !x.is_finite()).unwrap_or(f32::NAN),
                });
            }
            Ok(bad == 0)
        })?;
        Ok(found)
    }

    /// What computes value `v`: the primitive, or the fused kernel's operations.
    fn describe_writer(&self, v: usize) -> String {
        for step in &self.phase.steps {
            match step {
                Step::Op { prim, output, .. } if *output == v => return prim.to_string(),
                Step::Fused { instrs, outputs, .. } if outputs.iter().any(|(_, o)| *o == v) => {
                    let ops: Vec<String> = instrs.iter().map(|i| i.prim.to_string()).collect();
                    return format!("fused kernel [{}]", ops.join(", "));
                }
                Step::OpEpilogue { prim, instrs, outputs, .. } if outputs.iter().any(|(_, o)| *o == v) => {
                    let ops: Vec<String> = instrs.iter().map(|i| i.prim.to_string()).collect();
                    return format!("{prim} with the epilogue [{}]", ops.join(", "));
                }
                Step::FusedReduce { instrs, outputs, axes, reductions, .. }
                    if reductions.iter().any(|r| r.output == v) || outputs.iter().any(|(_, o)| *o == v) =>
                {
                    let ops: Vec<String> = instrs.iter().map(|i| i.prim.to_string()).collect();
                    let folds: Vec<String> = reductions
                        .iter()
                        .map(|r| Prim::Reduce { op: r.op, axes: axes.clone() }.to_string())
                        .collect();
                    return format!("fused kernel [{}] |> {}", ops.join(", "), folds.join(", "));
                }
                _ => {}
            }
        }
        "an input".into()
    }

    /// Launches the phase's kernels in order; after each kernel, `inspect(value, tensor)` sees
    /// every value it wrote and may stop the run by returning `false`. Returns the values.
    fn execute(
        &self,
        device: &Device,
        leaves: &Leaves,
        profile: &mut Profile,
        inspect: &mut dyn FnMut(usize, &DeviceTensor) -> Result<bool, DeviceError>,
    ) -> Result<Vec<Option<DeviceTensor>>, DeviceError> {
        let phase = &self.phase;
        let mut values: Vec<Option<DeviceTensor>> = vec![None; phase.values.len()];
        for step in &phase.steps {
            let started = profile.start();
            let written: Vec<usize> = match step {
                Step::Op { prim, inputs, output } => {
                    let args = self.operands(inputs, &values, leaves)?;
                    let refs: Vec<&DeviceTensor> = args.iter().collect();
                    let spec = &phase.values[*output];
                    values[*output] =
                        Some(kernels::eval(device, prim, &refs, &spec.shape, spec.dtype, leaves)?);
                    vec![*output]
                }
                Step::View { input, output } => {
                    let x = self.operand(*input, &values, leaves)?;
                    values[*output] = Some(x.reshaped(device, &phase.values[*output].shape)?);
                    vec![]
                }
                Step::Fused { shape, inputs, instrs, outputs, in_place } => {
                    let args = self.operands(inputs, &values, leaves)?;
                    let refs: Vec<&DeviceTensor> = args.iter().collect();
                    let regs: Vec<usize> = outputs.iter().map(|(r, _)| *r).collect();
                    let program = fused_program(phase, inputs.len(), instrs, &regs)?;
                    let dtypes: Vec<DType> = outputs.iter().map(|(_, v)| phase.values[*v].dtype).collect();
                    let results = run_fused_in_place(device, &program, &refs, shape, &dtypes, in_place)?;
                    for ((_, v), t) in outputs.iter().zip(results) {
                        values[*v] = Some(t);
                    }
                    outputs.iter().map(|(_, v)| *v).collect()
                }
                Step::OpEpilogue { prim, op_inputs, shape, inputs, instrs, outputs } => {
                    let ops = self.operands(op_inputs, &values, leaves)?;
                    let op_refs: Vec<&DeviceTensor> = ops.iter().collect();
                    let args = self.operands(inputs, &values, leaves)?;
                    let refs: Vec<&DeviceTensor> = args.iter().collect();
                    let regs: Vec<usize> = outputs.iter().map(|(r, _)| *r).collect();
                    // Register 0, the op's result, is one more input to the program.
                    let program = fused_program(phase, 1 + inputs.len(), instrs, &regs)?;
                    let dtypes: Vec<DType> = outputs.iter().map(|(_, v)| phase.values[*v].dtype).collect();
                    let results = kernels::eval_epilogue(
                        device, prim, &op_refs, shape, program, &refs, &dtypes, leaves,
                    )?;
                    for ((_, v), t) in outputs.iter().zip(results) {
                        values[*v] = Some(t);
                    }
                    outputs.iter().map(|(_, v)| *v).collect()
                }
                Step::FusedReduce { shape, inputs, instrs, outputs, axes, reductions } => {
                    let args = self.operands(inputs, &values, leaves)?;
                    let refs: Vec<&DeviceTensor> = args.iter().collect();
                    // The reduced registers are the program's last outputs, split off again.
                    let regs: Vec<usize> =
                        outputs.iter().map(|(r, _)| *r).chain(reductions.iter().map(|r| r.arg)).collect();
                    let mut program = fused_program(phase, inputs.len(), instrs, &regs)?;
                    let args = program.outputs.split_off(outputs.len());
                    let folds: Vec<Reduction> = reductions
                        .iter()
                        .zip(args)
                        .map(|(r, arg)| Reduction { arg, op: r.op, dtype: phase.values[r.output].dtype })
                        .collect();
                    let dtypes: Vec<DType> = outputs.iter().map(|(_, v)| phase.values[*v].dtype).collect();
                    let spec = FusedReduce { program: &program, axes, reductions: &folds };
                    let (results, reduced) = run_fused_reduce(device, &spec, &refs, shape, &dtypes)?;
                    for ((_, v), t) in outputs.iter().zip(results) {
                        values[*v] = Some(t);
                    }
                    for (r, t) in reductions.iter().zip(reduced) {
                        values[r.output] = Some(t);
                    }
                    outputs.iter().map(|(_, v)| *v).chain(reductions.iter().map(|r| r.output)).collect()
                }
                Step::Release { values: dead } => {
                    for &v in dead {
                        // Views keep their own handle; dropping both frees the buffer.
                        values[v] = None;
                    }
                    vec![]
                }
            };
            // The kind's name is only built when profiling.
            if started.is_some() {
                profile.stop(device, &step_kind(step), started)?;
            }
            for v in written {
                if let Some(t) = &values[v] {
                    if !inspect(v, t)? {
                        return Ok(values);
                    }
                }
            }
        }
        Ok(values)
    }

    fn operands(
        &self,
        ops: &[Operand],
        values: &[Option<DeviceTensor>],
        leaves: &Leaves,
    ) -> Result<Vec<DeviceTensor>, DeviceError> {
        ops.iter().map(|o| self.operand(*o, values, leaves)).collect()
    }

    fn operand(
        &self,
        o: Operand,
        values: &[Option<DeviceTensor>],
        leaves: &Leaves,
    ) -> Result<DeviceTensor, DeviceError> {
        let phase = &self.phase;
        let pick = |table: &[DeviceTensor], i: usize, what: &str| {
            table.get(i).cloned().ok_or_else(|| malformed(phase, format!("no {what} #{i} was fed")))
        };
        match o {
            Operand::Input(i) => pick(&leaves.inputs, i, "input"),
            Operand::Param(i) => pick(&leaves.params, i, "parameter"),
            Operand::Buffer(i) => pick(&leaves.buffers, i, "buffer"),
            Operand::Const(i) => pick(&self.constants, i, "constant"),
            Operand::Value(v) => values.get(v).and_then(Clone::clone).ok_or_else(|| {
                malformed(phase, format!("value %{v} is read before it is computed or after release"))
            }),
        }
    }
}

/// The kind of work a step is, for profiles: a library op by its primitive's name.
fn step_kind(step: &Step) -> String {
    let name = |prim: &Prim| {
        let text = prim.to_string();
        text.split('[').next().unwrap_or_default().to_string()
    };
    match step {
        Step::Op { prim, .. } => name(prim),
        Step::OpEpilogue { prim, .. } => format!("{} + epilogue", name(prim)),
        Step::Fused { .. } => "fused element-wise".into(),
        Step::FusedReduce { .. } => "fused reduction".into(),
        Step::View { .. } => "view".into(),
        Step::Release { .. } => "release".into(),
    }
}

/// Translates a planned fused group into the kernel's register program whose outputs are the
/// planned registers `outputs`. Casts to f32 and
/// same-type casts are free (every dtype is stored as f32): they alias their argument.
fn fused_program(
    phase: &PhaseProgram,
    n_inputs: usize,
    instrs: &[FusedInstr],
    outputs: &[usize],
) -> Result<FusedProgram, DeviceError> {
    // Planned register -> kernel register.
    let mut reg: Vec<usize> = (0..n_inputs).collect();
    let mut out: Vec<Instr> = Vec::new();
    for ins in instrs {
        let arg = |k: usize| -> Result<usize, DeviceError> {
            ins.args
                .get(k)
                .and_then(|&a| reg.get(a).copied())
                .ok_or_else(|| malformed(phase, "a fused operand is missing"))
        };
        let op = match &ins.prim {
            Prim::Unary(op) => Some(unary_op(*op)),
            Prim::Binary(op) => Some(binary_op(*op, ins.dtype)),
            Prim::Select => Some(EwOp::Select),
            Prim::Cast { to } => match (ins.dtype, to) {
                (DType::F32, DType::I32) => Some(EwOp::Trunc),
                (DType::F32 | DType::I32, DType::Bool) => Some(EwOp::NonZero),
                _ => None,
            },
            other => return Err(malformed(phase, format!("`{other}` cannot be fused"))),
        };
        match op {
            Some(op) => {
                let a = arg(0)?;
                let b = if ins.args.len() > 1 { arg(1)? } else { a };
                let c = if ins.args.len() > 2 { arg(2)? } else { a };
                out.push(Instr { op, a, b, c });
                reg.push(n_inputs + out.len() - 1);
            }
            None => reg.push(arg(0)?),
        }
    }
    let outputs = outputs
        .iter()
        .map(|r| reg.get(*r).copied().ok_or_else(|| malformed(phase, "a fused output is missing")))
        .collect::<Result<_, _>>()?;
    Ok(FusedProgram { n_inputs, instrs: out, outputs })
}
