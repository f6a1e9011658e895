//! Optimizers as fused update kernels: SGD (with momentum), Adam, AdamW, RMSprop and Adagrad,
//! with PyTorch's update rules and defaults, global-norm gradient clipping and learning-rate
//! schedules.
//!
//! Each parameter's update is one launch of the fused element-wise kernel: inputs are the
//! parameter, its gradient, its state tensors and per-step scalars (read as broadcast views
//! into one small uploaded buffer); outputs are the new parameter and the new state.

use genc_compiler::lr_schedule::LrSchedule;
use genc_compiler::optimizer::OptimizerKind;
use genc_compiler::prim::{DType, ReduceOp};
use genc_compiler::train_spec::OptimizerSpec;

use crate::device::{Device, DeviceError, DeviceTensor};
use crate::kernels::elementwise::{EwOp, FusedProgram, Instr, run_fused};

/// Why an optimizer cannot be built (its options were checked with the spec).
#[derive(Clone, Debug, PartialEq, thiserror::Error, miette::Diagnostic)]
pub enum OptimError {
    /// The state tensors could not be allocated (a parameter larger than a device buffer).
    #[error("optimizer `{name}`: {reason}")]
    #[diagnostic(code(E0909), help("lower the model's size, or use a GPU"))]
    State { name: String, reason: String },
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Sgd { momentum: f64, nesterov: bool },
    Adam { b1: f64, b2: f64, decoupled: bool },
    RmsProp { alpha: f64 },
    Adagrad,
}

/// One optimizer: its rule, hyper-parameters, parameters and state.
pub struct Optimizer {
    pub name: String,
    kind: Kind,
    lr: f64,
    eps: f64,
    weight_decay: f64,
    grad_clip: Option<f64>,
    schedule: Option<LrSchedule>,
    /// The updates this optimizer makes in the whole run: the length of `linear` and
    /// `cosine` schedules that give none.
    run_updates: u64,
    /// Indices into the program's parameters.
    pub params: Vec<usize>,
    /// Per parameter, the state tensors (momentum buffer; Adam's m and v; ...).
    pub state: Vec<Vec<DeviceTensor>>,
    /// Updates so far, the ones skipped at a zero rate included: the schedule's position.
    pub steps: u64,
    /// Updates that changed the weights: Adam's bias-correction count (a stage that starts
    /// after a zero-rate stretch starts its moments afresh).
    pub applied: u64,
}

impl Optimizer {
    /// Builds an optimizer with zeroed state for parameters of the given shapes, making
    /// `run_updates` updates in the whole run.
    pub fn new(
        device: &Device,
        spec: &OptimizerSpec,
        shapes: &[Vec<usize>],
        run_updates: u64,
    ) -> Result<Optimizer, OptimError> {
        let c = &spec.config;
        let (kind, slots) = match c.kind {
            OptimizerKind::Sgd { momentum, nesterov } => {
                (Kind::Sgd { momentum, nesterov }, usize::from(momentum != 0.0))
            }
            OptimizerKind::Adam { betas: (b1, b2), decoupled } => (Kind::Adam { b1, b2, decoupled }, 2),
            OptimizerKind::RmsProp { alpha } => (Kind::RmsProp { alpha }, 1),
            OptimizerKind::Adagrad => (Kind::Adagrad, 1),
        };
        let state = shapes
            .iter()
            .map(|s| {
                let n: usize = s.iter().product();
                (0..slots).map(|_| DeviceTensor::from_f32(device, DType::F32, s, &vec![0.0; n])).collect()
            })
            .collect::<Result<_, _>>()
            .map_err(|e: DeviceError| OptimError::State { name: spec.name.clone(), reason: e.to_string() })?;
        Ok(Optimizer {
            name: spec.name.clone(),
            kind,
            lr: c.lr,
            eps: c.eps,
            weight_decay: c.weight_decay,
            grad_clip: c.grad_clip,
            schedule: spec.schedule.clone(),
            run_updates,
            params: spec.params.clone(),
            state,
            steps: 0,
            applied: 0,
        })
    }

    /// The state tensors' names for checkpoints (`m`, `v`, `momentum`, ...).
    pub fn slot_names(&self) -> &'static [&'static str] {
        match self.kind {
            Kind::Sgd { momentum, .. } if momentum != 0.0 => &["momentum"],
            Kind::Sgd { .. } => &[],
            Kind::Adam { .. } => &["m", "v"],
            Kind::RmsProp { .. } => &["square_avg"],
            Kind::Adagrad => &["sum"],
        }
    }

    /// The learning rate at update `t` (0-based) after the schedule.
    pub fn lr_at(&self, t: u64) -> f64 {
        match &self.schedule {
            Some(s) => s.lr(self.lr, t, self.run_updates),
            None => self.lr,
        }
    }

    /// Whether a schedule changes the rate (then the run logs it as `lr.<name>`).
    pub fn is_scheduled(&self) -> bool {
        self.schedule.is_some()
    }

    /// The base rate and the last update's, when the schedule ends above the base without a
    /// warm-up (a `gamma` above 1 is an easy slip for a decay factor that divides).
    pub fn rising_rate(&self) -> Option<(f64, f64)> {
        let factor = self.schedule.as_ref()?.rises(self.run_updates)?;
        Some((self.lr, self.lr * factor))
    }

    /// Applies one update. `grads[i]` is the gradient of `self.params[i]`,
    /// `params` the program's parameter tensors (updated in place); `maximize` ascends.
    pub fn step(
        &mut self,
        device: &Device,
        params: &mut [DeviceTensor],
        grads: &[DeviceTensor],
        maximize: bool,
    ) -> Result<(), DeviceError> {
        let t = self.applied + 1;
        let lr = self.lr_at(self.steps);
        let gscale = match self.grad_clip {
            Some(max) => {
                let norm = global_norm(device, grads)?;
                if norm > max { max / (norm + 1e-6) } else { 1.0 }
            }
            None => 1.0,
        };
        // `maximize` ascends: the gradient's sign flips.
        let gscale = if maximize { -gscale } else { gscale };
        // Per-step scalars, in one buffer: [gscale, lr, c0, c1, c2, c3, c4, c5].
        let (c, program) = self.program(lr, t, gscale);
        let scalars = DeviceTensor::from_f32(
            device,
            DType::F32,
            &[c.len()],
            &c.iter().map(|&x| x as f32).collect::<Vec<_>>(),
        )?;
        for (k, &p) in self.params.iter().enumerate() {
            let param = &params[p];
            let rank = param.shape.len();
            let mut inputs: Vec<DeviceTensor> = vec![param.clone(), grads[k].clone()];
            inputs.extend(self.state[k].iter().cloned());
            for i in 0..c.len() {
                inputs.push(DeviceTensor {
                    dtype: DType::F32,
                    shape: vec![1; rank],
                    strides: vec![0; rank],
                    offset: i,
                    buffer: scalars.buffer.clone(),
                });
            }
            let refs: Vec<&DeviceTensor> = inputs.iter().collect();
            let n_out = 1 + self.state[k].len();
            let mut outs =
                run_fused(device, &program, &refs, &param.shape, &vec![DType::F32; n_out])?.into_iter();
            if let Some(new_param) = outs.next() {
                params[p] = new_param;
            }
            self.state[k] = outs.collect();
        }
        self.steps += 1;
        self.applied = t;
        Ok(())
    }

    /// Whether this update's rate is zero: the phase it would follow changes nothing, so the
    /// trainer skips it ([`Optimizer::skip`]).
    pub fn idle(&self) -> bool {
        self.lr_at(self.steps) == 0.0
    }

    /// An update at a zero rate, not computed: the schedule moves on, the state stays.
    pub fn skip(&mut self) {
        self.steps += 1;
    }

    /// The update as a register program over inputs `[p, g, state.., scalars..]`, and the
    /// scalars' values.
    fn program(&self, lr: f64, t: u64, gscale: f64) -> (Vec<f64>, FusedProgram) {
        let n_state = match self.kind {
            Kind::Sgd { momentum, .. } => usize::from(momentum != 0.0),
            Kind::Adam { .. } => 2,
            Kind::RmsProp { .. } | Kind::Adagrad => 1,
        };
        let mut b = Prog { instrs: Vec::new() };
        let (p, g0) = (0, 1);
        let s = |i: usize| 2 + i;
        let base = 2 + n_state;
        let k = |i: usize| base + i;
        let wd = self.weight_decay;
        let decoupled = matches!(self.kind, Kind::Adam { decoupled: true, .. });
        // scalars: 0 gscale, 1 lr, 2 wd, then rule-specific
        let mut c = vec![gscale, lr, wd];
        let g1 = b.op(EwOp::Mul, g0, k(0));
        let g = if wd != 0.0 && !decoupled {
            let pw = b.op(EwOp::Mul, p, k(2));
            b.op(EwOp::Add, g1, pw)
        } else {
            g1
        };
        let outputs = match self.kind {
            Kind::Sgd { momentum, nesterov } => {
                if momentum == 0.0 {
                    let d = b.op(EwOp::Mul, g, k(1));
                    vec![b.op(EwOp::Sub, p, d)]
                } else {
                    c.push(momentum);
                    let mb = b.op(EwOp::Mul, s(0), k(3));
                    let buf = b.op(EwOp::Add, mb, g);
                    let dir = if nesterov {
                        let mb2 = b.op(EwOp::Mul, buf, k(3));
                        b.op(EwOp::Add, g, mb2)
                    } else {
                        buf
                    };
                    let d = b.op(EwOp::Mul, dir, k(1));
                    vec![b.op(EwOp::Sub, p, d), buf]
                }
            }
            Kind::Adam { b1, b2, .. } => {
                let bc1 = 1.0 - b1.powi(t as i32);
                let bc2 = 1.0 - b2.powi(t as i32);
                // 3 b1, 4 1-b1, 5 b2, 6 1-b2, 7 lr/bc1, 8 1/sqrt(bc2), 9 eps, 10 1 - lr wd
                c.extend([b1, 1.0 - b1, b2, 1.0 - b2, lr / bc1, 1.0 / bc2.sqrt(), self.eps, 1.0 - lr * wd]);
                let m1 = b.op(EwOp::Mul, s(0), k(3));
                let m2 = b.op(EwOp::Mul, g, k(4));
                let m = b.op(EwOp::Add, m1, m2);
                let v1 = b.op(EwOp::Mul, s(1), k(5));
                let gg = b.op(EwOp::Mul, g, g);
                let v2 = b.op(EwOp::Mul, gg, k(6));
                let v = b.op(EwOp::Add, v1, v2);
                let sv = b.op(EwOp::Sqrt, v, v);
                let sv = b.op(EwOp::Mul, sv, k(8));
                let den = b.op(EwOp::Add, sv, k(9));
                let q = b.op(EwOp::Div, m, den);
                let step = b.op(EwOp::Mul, q, k(7));
                let p0 = if decoupled { b.op(EwOp::Mul, p, k(10)) } else { p };
                vec![b.op(EwOp::Sub, p0, step), m, v]
            }
            Kind::RmsProp { alpha } => {
                // 3 alpha, 4 1-alpha, 5 eps
                c.extend([alpha, 1.0 - alpha, self.eps]);
                let a1 = b.op(EwOp::Mul, s(0), k(3));
                let gg = b.op(EwOp::Mul, g, g);
                let a2 = b.op(EwOp::Mul, gg, k(4));
                let sq = b.op(EwOp::Add, a1, a2);
                let r = b.op(EwOp::Sqrt, sq, sq);
                let den = b.op(EwOp::Add, r, k(5));
                let q = b.op(EwOp::Div, g, den);
                let d = b.op(EwOp::Mul, q, k(1));
                vec![b.op(EwOp::Sub, p, d), sq]
            }
            Kind::Adagrad => {
                // 3 eps
                c.push(self.eps);
                let gg = b.op(EwOp::Mul, g, g);
                let sum = b.op(EwOp::Add, s(0), gg);
                let r = b.op(EwOp::Sqrt, sum, sum);
                let den = b.op(EwOp::Add, r, k(3));
                let q = b.op(EwOp::Div, g, den);
                let d = b.op(EwOp::Mul, q, k(1));
                vec![b.op(EwOp::Sub, p, d), sum]
            }
        };
        // The scalars are inputs too: instruction results follow them.
        let n_inputs = base + c.len();
        let renumber = |r: usize| if r >= RESERVED { r - RESERVED + n_inputs } else { r };
        let instrs = b
            .instrs
            .iter()
            .map(|i| Instr { op: i.op, a: renumber(i.a), b: renumber(i.b), c: renumber(i.c) })
            .collect();
        let outputs = outputs.into_iter().map(renumber).collect();
        (c, FusedProgram { n_inputs, instrs, outputs })
    }
}

/// A register-program builder: instruction results are numbered from [`RESERVED`] until the
/// number of scalar inputs is known, then renumbered.
struct Prog {
    instrs: Vec<Instr>,
}

impl Prog {
    fn op(&mut self, op: EwOp, a: usize, b: usize) -> usize {
        self.instrs.push(Instr { op, a, b, c: a });
        RESERVED + self.instrs.len() - 1
    }
}

/// Registers at or above this are instruction results (before renumbering).
const RESERVED: usize = 1 << 16;

/// ‖g‖ over every gradient of one optimizer.
fn global_norm(device: &Device, grads: &[DeviceTensor]) -> Result<f64, DeviceError> {
    Ok(squared_norm(device, grads)?.sqrt())
}

/// Σ g² over every element of every tensor, summed on the device: one read-back in all. NaN
/// or infinite if any element is.
pub fn squared_norm(device: &Device, tensors: &[DeviceTensor]) -> Result<f64, DeviceError> {
    let square = FusedProgram {
        n_inputs: 1,
        instrs: vec![Instr { op: EwOp::Mul, a: 0, b: 0, c: 0 }],
        outputs: vec![1],
    };
    let add = FusedProgram {
        n_inputs: 2,
        instrs: vec![Instr { op: EwOp::Add, a: 0, b: 1, c: 0 }],
        outputs: vec![2],
    };
    let mut total: Option<DeviceTensor> = None;
    for g in tensors {
        let sq = run_fused(device, &square, &[g], &g.shape, &[DType::F32])?;
        let axes: Vec<usize> = (0..g.shape.len()).collect();
        let ones = vec![1; g.shape.len()];
        let s = crate::kernels::eval(
            device,
            &genc_compiler::prim::Prim::Reduce { op: ReduceOp::Sum, axes },
            &[&sq[0]],
            &ones,
            DType::F32,
            &crate::kernels::Leaves::default(),
        )?
        .reshaped(device, &[1])?;
        total = Some(match total {
            None => s,
            Some(t) => run_fused(device, &add, &[&t, &s], &[1], &[DType::F32])?
                .pop()
                .ok_or_else(|| DeviceError::Kernel { op: "norm".into(), reason: "no output".into() })?,
        });
    }
    match total {
        Some(t) => Ok(t.to_f64(device)?.first().copied().unwrap_or(0.0)),
        None => Ok(0.0),
    }
}
