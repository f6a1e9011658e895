//! An optimizer's update as a graph: `torch.optim`'s rules (SGD with momentum or Nesterov,
//! Adam, AdamW, RMSprop, Adagrad) with weight decay, global-norm gradient clipping and
//! maximization, over every parameter the optimizer trains at once.
//!
//! The graph's inputs, in order: each parameter's gradient (`grad.P`), each parameter's state
//! tensors (`m.P`, `v.P`, ...: [`slot_names`]), then the scalars that change from update to
//! update ([`step_scalars`]: the sign, the rate and Adam's bias corrections), each a
//! one-element tensor. Everything fixed for the run (betas, eps, decay, the clip norm) is a
//! constant of the program. Its outputs, in order (the runtime reads them by position):
//! `grad_norm2`, the squared global norm of the gradients, which the runtime reads back to
//! refuse a non-finite update before it replaces anything; then, per parameter, `param.P` and
//! its new state tensors.

use crate::graph::{Graph, NodeId};
use crate::optimizer::{OptimizerConfig, OptimizerKind};
use crate::params::Entry;
use crate::prim::{BinaryOp, UnaryOp};

use super::builder::Builder;

/// The state tensors an optimizer keeps per parameter, by the names checkpoints give them.
pub fn slot_names(kind: &OptimizerKind) -> &'static [&'static str] {
    match kind {
        OptimizerKind::Sgd { momentum, .. } if *momentum != 0.0 => &["momentum"],
        OptimizerKind::Sgd { .. } => &[],
        OptimizerKind::Adam { .. } => &["m", "v"],
        OptimizerKind::RmsProp { .. } => &["square_avg"],
        OptimizerKind::Adagrad => &["sum"],
    }
}

/// The per-update scalars of `config`'s program at rate `lr` for its `t`-th applied update
/// (1-based: Adam's bias corrections), in the order the program reads them. A maximizing
/// phase ascends: the gradient's sign flips, as `torch.optim`'s `maximize=True`.
pub fn step_scalars(config: &OptimizerConfig, lr: f64, t: u64, maximize: bool) -> Vec<(&'static str, f64)> {
    let mut scalars = vec![("sign", if maximize { -1.0 } else { 1.0 }), ("lr", lr)];
    if let OptimizerKind::Adam { betas: (b1, b2), decoupled } = config.kind {
        let t = i32::try_from(t).unwrap_or(i32::MAX);
        scalars.push(("step_size", lr / (1.0 - b1.powi(t))));
        scalars.push(("inv_sqrt_bc2", 1.0 / (1.0 - b2.powi(t)).sqrt()));
        if decoupled && config.weight_decay != 0.0 {
            scalars.push(("decay", 1.0 - lr * config.weight_decay));
        }
    }
    scalars
}

/// The update of `params` (index into the parameter table, entry) by optimizer `name`.
pub fn update_graph(name: &str, config: &OptimizerConfig, params: &[(usize, &Entry)]) -> Graph {
    let mut b = Builder::new(&format!("update {name}"));
    let grads: Vec<NodeId> =
        params.iter().map(|(_, e)| b.input(&format!("grad.{}", e.name), &e.shape)).collect();
    let slots = slot_names(&config.kind);
    let state: Vec<Vec<NodeId>> = params
        .iter()
        .map(|(_, e)| slots.iter().map(|s| b.input(&format!("{s}.{}", e.name), &e.shape)).collect())
        .collect();
    let names = step_scalars(config, 0.0, 1, false);
    let inputs: Vec<NodeId> = names.iter().map(|(n, _)| b.scalar_input(n)).collect();
    let scalars = Scalars { names: names.iter().map(|(n, _)| *n).collect(), inputs };
    let sign = scalars.get("sign").unwrap_or_else(|| b.constant(1.0));
    // Σ g² over every gradient: the finiteness check, and the clip's norm.
    let squares = |b: &mut Builder, g: NodeId| {
        let g2 = b.mul(g, g);
        b.sum_all(g2)
    };
    let total = |b: &mut Builder, sums: &[NodeId]| match sums.split_first() {
        Some((&first, rest)) => rest.iter().fold(first, |t, &s| b.add(t, s)),
        None => b.constant(0.0),
    };
    let mut updates = Vec::new();
    match config.grad_clip {
        // `torch.nn.utils.clip_grad_norm_`: g * min(1, max / (|g| + 1e-6)), so every sum
        // comes before any update.
        Some(max) => {
            let sums: Vec<NodeId> = grads.iter().map(|&g| squares(&mut b, g)).collect();
            let norm2 = total(&mut b, &sums);
            b.output("grad_norm2".into(), norm2);
            let norm = b.unary(UnaryOp::Sqrt, norm2);
            let eps = b.constant(1e-6);
            let den = b.add(norm, eps);
            let maxc = b.constant(max);
            let coef = b.div(maxc, den);
            let one = b.constant(1.0);
            let coef = b.binary(BinaryOp::Min, coef, one);
            let gscale = b.mul(coef, sign);
            for (k, param) in params.iter().enumerate() {
                updates.push(rule(&mut b, config, &scalars, *param, grads[k], gscale, &state[k]));
            }
        }
        // Each gradient's sum beside its update: one kernel reads the gradient once for both.
        None => {
            let mut sums = Vec::new();
            for (k, param) in params.iter().enumerate() {
                sums.push(squares(&mut b, grads[k]));
                updates.push(rule(&mut b, config, &scalars, *param, grads[k], sign, &state[k]));
            }
            let norm2 = total(&mut b, &sums);
            b.output("grad_norm2".into(), norm2);
        }
    }
    for ((_, entry), (new_p, new_state)) in params.iter().zip(updates) {
        b.output(format!("param.{}", entry.name), new_p);
        for (slot, node) in slots.iter().zip(new_state) {
            b.output(format!("{slot}.{}", entry.name), node);
        }
    }
    b.graph
}

/// The per-update scalar inputs by name.
struct Scalars {
    names: Vec<&'static str>,
    inputs: Vec<NodeId>,
}

impl Scalars {
    fn get(&self, name: &str) -> Option<NodeId> {
        self.names.iter().position(|n| *n == name).map(|i| self.inputs[i])
    }
}

/// One parameter's update by `config`'s rule from its gradient `grad` scaled by `gscale`:
/// the new value and the new state tensors.
fn rule(
    b: &mut Builder,
    config: &OptimizerConfig,
    scalars: &Scalars,
    (index, entry): (usize, &Entry),
    grad: NodeId,
    gscale: NodeId,
    state: &[NodeId],
) -> (NodeId, Vec<NodeId>) {
    let p = b.param(index, &entry.shape);
    let lr = scalars.get("lr").unwrap_or(gscale);
    let mut g = b.mul(grad, gscale);
    let decoupled = matches!(config.kind, OptimizerKind::Adam { decoupled: true, .. });
    if config.weight_decay != 0.0 && !decoupled {
        let decay = b.scale(p, config.weight_decay);
        g = b.add(g, decay);
    }
    match config.kind {
        OptimizerKind::Sgd { momentum, nesterov } if momentum != 0.0 => {
            let kept = b.scale(state[0], momentum);
            let buf = b.add(kept, g);
            let dir = if nesterov {
                let ahead = b.scale(buf, momentum);
                b.add(g, ahead)
            } else {
                buf
            };
            let step = b.mul(dir, lr);
            (b.sub(p, step), vec![buf])
        }
        OptimizerKind::Sgd { .. } => {
            let step = b.mul(g, lr);
            (b.sub(p, step), vec![])
        }
        OptimizerKind::Adam { betas: (b1, b2), .. } => {
            let m_kept = b.scale(state[0], b1);
            let m_new = b.scale(g, 1.0 - b1);
            let m = b.add(m_kept, m_new);
            let v_kept = b.scale(state[1], b2);
            let gg = b.mul(g, g);
            let v_new = b.scale(gg, 1.0 - b2);
            let v = b.add(v_kept, v_new);
            let root = b.unary(UnaryOp::Sqrt, v);
            let corrected = match scalars.get("inv_sqrt_bc2") {
                Some(inv) => b.mul(root, inv),
                None => root,
            };
            let eps = b.constant(config.eps);
            let den = b.add(corrected, eps);
            let ratio = b.div(m, den);
            let step = b.mul(ratio, scalars.get("step_size").unwrap_or(lr));
            let p0 = match scalars.get("decay") {
                Some(decay) => b.mul(p, decay),
                None => p,
            };
            (b.sub(p0, step), vec![m, v])
        }
        OptimizerKind::RmsProp { alpha } => {
            let kept = b.scale(state[0], alpha);
            let gg = b.mul(g, g);
            let new = b.scale(gg, 1.0 - alpha);
            let sq = b.add(kept, new);
            let step = scaled_step(b, g, sq, config.eps, lr);
            (b.sub(p, step), vec![sq])
        }
        OptimizerKind::Adagrad => {
            let gg = b.mul(g, g);
            let sum = b.add(state[0], gg);
            let step = scaled_step(b, g, sum, config.eps, lr);
            (b.sub(p, step), vec![sum])
        }
    }
}

/// `lr * g / (sqrt(acc) + eps)`: RMSprop's and Adagrad's step.
fn scaled_step(b: &mut Builder, g: NodeId, acc: NodeId, eps: f64, lr: NodeId) -> NodeId {
    let root = b.unary(UnaryOp::Sqrt, acc);
    let eps = b.constant(eps);
    let den = b.add(root, eps);
    let ratio = b.div(g, den);
    b.mul(ratio, lr)
}
