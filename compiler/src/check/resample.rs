//! Bicubic upsampling (PyTorch's `interpolate(mode="bicubic", align_corners=False)`: the
//! cubic convolution kernel with a = -0.75, half-pixel centres, borders clamped) as two
//! products with interpolation matrices, `M_h @ x @ M_w^T`. The matrices are built from index
//! arithmetic in the graph, so the op needs no kernel of its own, differentiates as products
//! do and runs the same on every device.

use genc_grammar::Span;

use super::{Checker, Val};
use crate::diag::TypeError;
use crate::dim::Dim;
use crate::graph::NodeId;
use crate::prim::{BinaryOp, DType, Prim, UnaryOp};
use crate::types::TensorType;

/// The cubic convolution kernel's `a` (PyTorch's and OpenCV's).
const A: f64 = -0.75;

impl Checker<'_> {
    /// `x` `[.., h, w]` upsampled `scale` times on its last two axes.
    pub(super) fn bicubic(&mut self, x: NodeId, scale: usize, span: Span) -> Result<NodeId, ()> {
        let t = self.ty(x).clone();
        let r = t.rank();
        let extents = (r >= 2).then(|| (t.shape[r - 2].as_const(), t.shape[r - 1].as_const()));
        let Some((Some(h), Some(w))) = extents else {
            self.error(
                TypeError::new(
                    "E0106",
                    span,
                    format!("bicubic upsampling needs images of a known size, found {t}"),
                )
                .label("the last two axes are the image's rows and columns"),
            );
            return Err(());
        };
        let rows = self.interpolation(h, scale, span)?;
        let cols = self.interpolation(w, scale, span)?;
        let y = match self.matmul_val(&Val::Tensor(rows), &Val::Tensor(x), span) {
            Val::Tensor(y) => y,
            _ => return Err(()),
        };
        let cols_t = self.node(Prim::Permute { perm: vec![1, 0] }, &[cols], None, span)?;
        match self.matmul_val(&Val::Tensor(y), &Val::Tensor(cols_t), span) {
            Val::Tensor(y) => Ok(y),
            _ => Err(()),
        }
    }

    /// The `[n * scale, n]` matrix whose row `o` holds the weights of output position `o` on
    /// the input positions: taps `i0 - 1 ..= i0 + 2` around `src = (o + 0.5) / scale - 0.5`,
    /// `i0 = floor(src)`, each clamped into `[0, n)` (so a border position gathers the weights
    /// of the taps beyond it).
    fn interpolation(&mut self, n: i64, scale: usize, span: Span) -> Result<NodeId, ()> {
        let out = n * scale as i64;
        let o = self.push_node(
            Prim::Iota { axis: 0 },
            TensorType::new(DType::I32, vec![Dim::constant(out), Dim::constant(1)]),
            &[],
            span,
        );
        let j = self.push_node(
            Prim::Iota { axis: 1 },
            TensorType::new(DType::I32, vec![Dim::constant(1), Dim::constant(n)]),
            &[],
            span,
        );
        let o = self.cast(o, DType::F32, span)?;
        let j = self.cast(j, DType::F32, span)?;
        let src = self.binary_const(BinaryOp::Add, o, 0.5, span)?;
        let src = self.binary_const(BinaryOp::Div, src, scale as f64, span)?;
        let src = self.binary_const(BinaryOp::Sub, src, 0.5, span)?;
        let i0 = self.unary(UnaryOp::Floor, src, span)?;
        let frac = self.binary(BinaryOp::Sub, src, i0, span)?;
        let mut matrix: Option<NodeId> = None;
        for k in -1i32..=2 {
            // The tap's distance from src, and its weight.
            let d = if k <= 0 {
                self.binary_const(BinaryOp::Add, frac, f64::from(-k), span)?
            } else {
                let neg = self.unary(UnaryOp::Neg, frac, span)?;
                self.binary_const(BinaryOp::Add, neg, f64::from(k), span)?
            };
            let weight = if k == 0 || k == 1 { self.cubic_near(d, span)? } else { self.cubic_far(d, span)? };
            let at = self.binary_const(BinaryOp::Add, i0, f64::from(k), span)?;
            let at = self.binary_const(BinaryOp::Max, at, 0.0, span)?;
            let at = self.binary_const(BinaryOp::Min, at, (n - 1) as f64, span)?;
            let hit = self.binary(BinaryOp::Eq, at, j, span)?;
            let hit = self.cast(hit, DType::F32, span)?;
            let term = self.binary(BinaryOp::Mul, hit, weight, span)?;
            matrix = Some(match matrix {
                Some(m) => self.binary(BinaryOp::Add, m, term, span)?,
                None => term,
            });
        }
        matrix.ok_or(())
    }

    /// `(a + 2) d^3 - (a + 3) d^2 + 1` for a distance `d` in [0, 1].
    fn cubic_near(&mut self, d: NodeId, span: Span) -> Result<NodeId, ()> {
        let inner = self.binary_const(BinaryOp::Mul, d, A + 2.0, span)?;
        let inner = self.binary_const(BinaryOp::Sub, inner, A + 3.0, span)?;
        let inner = self.binary(BinaryOp::Mul, inner, d, span)?;
        let inner = self.binary(BinaryOp::Mul, inner, d, span)?;
        self.binary_const(BinaryOp::Add, inner, 1.0, span)
    }

    /// `a d^3 - 5a d^2 + 8a d - 4a` for a distance `d` in [1, 2].
    fn cubic_far(&mut self, d: NodeId, span: Span) -> Result<NodeId, ()> {
        let p = self.binary_const(BinaryOp::Mul, d, A, span)?;
        let p = self.binary_const(BinaryOp::Sub, p, 5.0 * A, span)?;
        let p = self.binary(BinaryOp::Mul, p, d, span)?;
        let p = self.binary_const(BinaryOp::Add, p, 8.0 * A, span)?;
        let p = self.binary(BinaryOp::Mul, p, d, span)?;
        self.binary_const(BinaryOp::Sub, p, 4.0 * A, span)
    }
}
