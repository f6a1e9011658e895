//! The `Program`: the plain, serialisable hand-over from the compiler to the runtime. It
//! names the parameters and buffers, and for each phase the kernels in execution order, the
//! values they produce and the memory slots those values live in.

use serde::{Deserialize, Serialize};

use crate::prim::{DType, Prim, ReduceOp};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Program {
    pub params: Vec<TensorSpec>,
    pub buffers: Vec<TensorSpec>,
    pub phases: Vec<PhaseProgram>,
    /// The step's weight updates, planned like the phases.
    #[serde(default)]
    pub updates: Updates,
}

/// The weight updates of a training step (`update::plan_updates`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Updates {
    /// Per optimizer of the run, in declaration order: its update of the weights it trains.
    pub optimizers: Vec<PhaseProgram>,
    /// Per `ema` entry: the averages' update.
    pub ema: Vec<PhaseProgram>,
    /// Per clip of the step, in the order `update::clips` lists them.
    pub clips: Vec<PhaseProgram>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TensorSpec {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
}

/// Where a kernel reads an operand from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Operand {
    Input(usize),
    Param(usize),
    Buffer(usize),
    /// A constant of the phase, computed once when the program loads.
    Const(usize),
    /// An intermediate value of the phase.
    Value(usize),
}

/// A constant: a `Fill` or `Iota` of a fixed type.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConstSpec {
    pub prim: Prim,
    pub dtype: DType,
    pub shape: Vec<usize>,
}

/// An intermediate value: its type, and the memory slot it occupies (views share their
/// source's memory and have none).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ValueSpec {
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub slot: Option<usize>,
    /// The source of the node that computes it (`G.conv2d1`, `loss neg_elbo`), for diagnostics.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub origin: String,
}

/// One instruction of a fused kernel: registers `0..inputs` hold the inputs (broadcast to the
/// kernel's shape); each instruction appends one register.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FusedInstr {
    /// `Unary`, `Binary`, `Select` or `Cast`.
    pub prim: Prim,
    /// The element type of the operands (integer division and casts depend on it).
    pub dtype: DType,
    pub args: Vec<usize>,
}

/// A reduction a fused kernel folds its register `arg` into: value `output` is `op` of the
/// register over the step's axes, kept with extent 1 (the `Reduce` primitive's rule).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FusedReduction {
    pub op: ReduceOp,
    pub arg: usize,
    pub output: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Step {
    /// One fused element-wise kernel over `shape`; `outputs` are `(register, value)` pairs.
    /// `in_place` pairs `(output, input)` (indices into `outputs` and `inputs`): that output
    /// is written over that input's memory, which dies here and is read only at the
    /// positions being written.
    Fused {
        shape: Vec<usize>,
        inputs: Vec<Operand>,
        instrs: Vec<FusedInstr>,
        outputs: Vec<(usize, usize)>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        in_place: Vec<(usize, usize)>,
    },
    /// One kernel that evaluates a fused element-wise program over `shape` (the reductions'
    /// prologue) and reduces some of its registers over `axes` as it goes: reduced registers
    /// never go to memory. `outputs` are the registers that are also written, as in `Fused`.
    FusedReduce {
        shape: Vec<usize>,
        inputs: Vec<Operand>,
        instrs: Vec<FusedInstr>,
        outputs: Vec<(usize, usize)>,
        axes: Vec<usize>,
        reductions: Vec<FusedReduction>,
    },
    /// A library kernel (`MatMul`, `Conv2d`) whose result, element by element, goes through a
    /// fused program before it is stored: register 0 is the op's result over `shape`,
    /// registers `1..=inputs.len()` are `inputs`, each instruction appends one. `outputs` are
    /// `(register, value)` pairs as in `Fused`; the op's own result is written only if one of
    /// them names register 0.
    OpEpilogue {
        prim: Prim,
        op_inputs: Vec<Operand>,
        shape: Vec<usize>,
        inputs: Vec<Operand>,
        instrs: Vec<FusedInstr>,
        outputs: Vec<(usize, usize)>,
    },
    /// One library kernel computing value `output`.
    Op { prim: Prim, inputs: Vec<Operand>, output: usize },
    /// Value `output` is `input` with another shape (no kernel, no copy).
    View { input: Operand, output: usize },
    /// The slots of these values are free from here on (their last reader has run).
    Release { values: Vec<usize> },
}

/// The values of input `input` must lie in `0..classes`: class labels read by `op` at
/// `span` (a byte range of the spec). The data feed checks them before the phase runs,
/// since a kernel cannot stop a step (see `graph::IndexUse`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IndexCheck {
    pub input: usize,
    pub classes: u64,
    pub op: String,
    pub span: (usize, usize),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PhaseProgram {
    pub name: String,
    pub inputs: Vec<TensorSpec>,
    pub constants: Vec<ConstSpec>,
    pub values: Vec<ValueSpec>,
    /// Sizes in bytes of the physical memory slots values are assigned to.
    pub slots: Vec<u64>,
    pub steps: Vec<Step>,
    pub outputs: Vec<(String, Operand)>,
    /// The most bytes of intermediate values alive at once.
    pub peak_bytes: u64,
    /// Primitive ops before fusion (leaves and constants excluded).
    pub primitive_ops: usize,
    /// Kernel launches per run of the phase.
    pub kernels: usize,
    /// Inputs whose values index something, checked by the feed.
    #[serde(default)]
    pub index_checks: Vec<IndexCheck>,
    /// Indices the phase computes: each output named here counts the values that fell
    /// outside `0..classes`, read by the runtime after the phase.
    #[serde(default)]
    pub index_guards: Vec<IndexGuardSpec>,
}

/// A computed index's guard: output `output` counts its values outside `0..classes`, read
/// by `op` at `span` (a byte range of the spec).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IndexGuardSpec {
    pub output: String,
    pub classes: u64,
    pub op: String,
    pub span: (usize, usize),
}

impl Program {
    /// The stable text form of `--emit program`.
    pub fn to_text(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        for (i, p) in self.params.iter().enumerate() {
            let _ = writeln!(out, "param[{i}] {} : {}{:?}", p.name, p.dtype, p.shape);
        }
        for (i, b) in self.buffers.iter().enumerate() {
            let _ = writeln!(out, "buffer[{i}] {} : {}{:?}", b.name, b.dtype, b.shape);
        }
        for phase in &self.phases {
            out.push_str(&phase.to_text());
        }
        let updates = &self.updates;
        for update in updates.optimizers.iter().chain(&updates.ema).chain(&updates.clips) {
            out.push_str(&update.to_text_headed("update"));
        }
        out
    }
}

impl PhaseProgram {
    /// The stable text form of one phase (`--emit program`, and each sampler segment).
    pub fn to_text(&self) -> String {
        self.to_text_headed("phase")
    }

    /// The text form under another heading (`update` for a weight update).
    pub fn to_text_headed(&self, heading: &str) -> String {
        use std::fmt::Write as _;
        let phase = self;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "\n{heading} {} {{  // {} primitive ops, {} kernels, peak {} bytes in {} slots",
            phase.name,
            phase.primitive_ops,
            phase.kernels,
            phase.peak_bytes,
            phase.slots.len()
        );
        for (i, t) in phase.inputs.iter().enumerate() {
            let _ = writeln!(out, "  input[{i}] {} : {}{:?}", t.name, t.dtype, t.shape);
        }
        for (i, c) in phase.constants.iter().enumerate() {
            let _ = writeln!(out, "  const[{i}] = {} : {}{:?}", c.prim, c.dtype, c.shape);
        }
        for step in &phase.steps {
            let v = |o: &Operand| operand_text(o);
            match step {
                Step::Fused { shape, inputs, instrs, outputs, in_place } => {
                    let over: Vec<String> = in_place
                        .iter()
                        .map(|&(o, i)| format!("%{} over {}", outputs[o].1, operand_text(&inputs[i])))
                        .collect();
                    let note = if over.is_empty() {
                        String::new()
                    } else {
                        format!("  // in place: {}", over.join(", "))
                    };
                    let _ = writeln!(out, "  {}{note}", fused_text(shape, inputs, instrs, outputs));
                }
                Step::FusedReduce { shape, inputs, instrs, outputs, axes, reductions } => {
                    let folds: Vec<String> = reductions
                        .iter()
                        .map(|r| {
                            let val = &phase.values[r.output];
                            let prim = Prim::Reduce { op: r.op, axes: axes.clone() };
                            format!(
                                "%{} = {prim}(r{}) : {}{:?} @slot{}",
                                r.output,
                                r.arg,
                                val.dtype,
                                val.shape,
                                val.slot.map_or("-".into(), |s| s.to_string())
                            )
                        })
                        .collect();
                    let sep = if outputs.is_empty() { "" } else { ", " };
                    let _ = writeln!(
                        out,
                        "  {}{sep}{}",
                        fused_text(shape, inputs, instrs, outputs),
                        folds.join(", ")
                    );
                }
                Step::OpEpilogue { prim, op_inputs, shape, inputs, instrs, outputs } => {
                    let ops: Vec<String> = op_inputs.iter().map(v).collect();
                    let head = format!("{prim}({})", ops.join(", "));
                    let _ = writeln!(out, "  {}", epilogue_text(&head, shape, inputs, instrs, outputs));
                }
                Step::Op { prim, inputs, output } => {
                    let ins: Vec<String> = inputs.iter().map(v).collect();
                    let val = &phase.values[*output];
                    let _ = writeln!(
                        out,
                        "  %{output} = {prim}({}) : {}{:?} @slot{}",
                        ins.join(", "),
                        val.dtype,
                        val.shape,
                        val.slot.map_or("-".into(), |s| s.to_string())
                    );
                }
                Step::View { input, output } => {
                    let _ =
                        writeln!(out, "  %{output} = view {} as {:?}", v(input), phase.values[*output].shape);
                }
                Step::Release { values } => {
                    let vals: Vec<String> = values.iter().map(|x| format!("%{x}")).collect();
                    let _ = writeln!(out, "  release {}", vals.join(" "));
                }
            }
        }
        for (name, o) in &phase.outputs {
            let _ = writeln!(out, "  return {name} = {}", operand_text(o));
        }
        out.push_str("}\n");
        out
    }
}

/// `fused [shape] (inputs) { r2 = add(r0, r1); ... } -> %5 = r2`: a fused kernel's program.
fn fused_text(
    shape: &[usize],
    inputs: &[Operand],
    instrs: &[FusedInstr],
    outputs: &[(usize, usize)],
) -> String {
    let ins: Vec<String> = inputs.iter().map(operand_text).collect();
    program_text(shape, &ins, instrs, outputs)
}

/// `fused [shape] (matmul(%1, param[0]), param[1]) { r2 = add(r0, r1) } -> %5 = r2`: an
/// epilogue, its op's result in register 0.
fn epilogue_text(
    head: &str,
    shape: &[usize],
    inputs: &[Operand],
    instrs: &[FusedInstr],
    outputs: &[(usize, usize)],
) -> String {
    let ins: Vec<String> = std::iter::once(head.to_string()).chain(inputs.iter().map(operand_text)).collect();
    program_text(shape, &ins, instrs, outputs)
}

/// A register program whose input registers are shown as `ins`.
fn program_text(
    shape: &[usize],
    ins: &[String],
    instrs: &[FusedInstr],
    outputs: &[(usize, usize)],
) -> String {
    let body: Vec<String> = instrs
        .iter()
        .enumerate()
        .map(|(k, ins_)| {
            let args: Vec<String> = ins_.args.iter().map(|a| format!("r{a}")).collect();
            format!("r{} = {}({})", ins.len() + k, ins_.prim, args.join(", "))
        })
        .collect();
    let outs: Vec<String> = outputs.iter().map(|(r, val)| format!("%{val} = r{r}")).collect();
    format!("fused {shape:?} ({}) {{ {} }} -> {}", ins.join(", "), body.join("; "), outs.join(", "))
}

fn operand_text(o: &Operand) -> String {
    match o {
        Operand::Input(i) => format!("input[{i}]"),
        Operand::Param(i) => format!("param[{i}]"),
        Operand::Buffer(i) => format!("buffer[{i}]"),
        Operand::Const(i) => format!("const[{i}]"),
        Operand::Value(i) => format!("%{i}"),
    }
}
