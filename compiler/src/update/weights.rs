//! The updates of weights that are not an optimizer's: an exponential moving average
//! (`ema G(decay: 0.9999)`), clamping (`clip D to [-0.01, 0.01]`, WGAN) and a per-unit norm
//! bound (`clip D to norm(1.9365)`, pylearn2's `max_col_norm`).

use crate::graph::Graph;
use crate::params::Entry;
use crate::prim::{BinaryOp, UnaryOp};

use super::builder::Builder;

/// `decay * avg + (1 - decay) * p` for each parameter: inputs `ema.P` (the averages),
/// outputs `ema.P`.
pub fn ema_graph(params: &[(usize, &Entry)], decay: f64) -> Graph {
    let mut b = Builder::new("ema");
    let averages: Vec<_> =
        params.iter().map(|(_, e)| b.input(&format!("ema.{}", e.name), &e.shape)).collect();
    for ((index, entry), avg) in params.iter().zip(averages) {
        let p = b.param(*index, &entry.shape);
        let kept = b.scale(avg, decay);
        let new = b.scale(p, 1.0 - decay);
        let next = b.add(kept, new);
        b.output(format!("ema.{}", entry.name), next);
    }
    b.graph
}

/// `min(max(p, lo), hi)` for each parameter: outputs `param.P`.
pub fn clamp_graph(params: &[(usize, &Entry)], lo: f64, hi: f64) -> Graph {
    let mut b = Builder::new("clip");
    let (lo, hi) = (b.constant(lo), b.constant(hi));
    for (index, entry) in params {
        let p = b.param(*index, &entry.shape);
        let above = b.binary(BinaryOp::Max, p, lo);
        let clamped = b.binary(BinaryOp::Min, above, hi);
        b.output(format!("param.{}", entry.name), clamped);
    }
    b.graph
}

/// Each output unit's weights (the slices along axis 0: a `linear` row, a convolution
/// filter) scaled down to a norm of at most `max`, `w * min(1, max / |w_unit|)`: outputs
/// `param.P`.
pub fn clip_norm_graph(params: &[(usize, &Entry)], max: f64) -> Graph {
    let mut b = Builder::new("clip");
    let (maxc, tiny, one) = (b.constant(max), b.constant(1e-24), b.constant(1.0));
    for (index, entry) in params {
        let p = b.param(*index, &entry.shape);
        let squares = b.mul(p, p);
        let rank = entry.shape.len();
        let per_unit = if rank > 1 { b.sum(squares, (1..rank).collect()) } else { squares };
        // |w_unit|², never 0, so a zero unit stays zero.
        let safe = b.binary(BinaryOp::Max, per_unit, tiny);
        let inv = b.unary(UnaryOp::Rsqrt, safe);
        let factor = b.mul(maxc, inv);
        let factor = b.binary(BinaryOp::Min, factor, one);
        let scaled = b.mul(p, factor);
        b.output(format!("param.{}", entry.name), scaled);
    }
    b.graph
}
