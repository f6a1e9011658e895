//! The autoregressive check for PixelCNN-style nets: computes, for the net's output, which
//! input pixels (as offsets from the output pixel) it can see, through the real receptive
//! field of the convolution stack (masks, kernel sizes, padding), and reports an output that
//! sees its own or a later pixel in raster order. Mask names alone prove nothing: a mask-B
//! first layer, or an unmasked 3x3 convolution in the stack, breaks causality.

use std::collections::BTreeSet;

use genc_grammar::ast;

use super::Checker;
use crate::diag::TypeError;
use crate::graph::{Graph, NodeId};
use crate::params::Init;
use crate::prim::{Prim, ReduceOp};

/// Offsets `(dy, dx)` of input pixels an output pixel depends on; `None` when the analysis
/// cannot follow the op (it then stays silent rather than guess).
type Field = Option<BTreeSet<(i64, i64)>>;

/// Offsets beyond this are clipped: a field that large is far past any image here.
const MAX_OFFSET: i64 = 512;

impl<'a> Checker<'a> {
    pub(super) fn check_causal(&mut self, def: &ast::Def, g: &Graph) {
        let masked = g.dag.node_indices().any(|n| self.mask_kind(g, n).is_some());
        if !masked {
            return;
        }
        let mut fields: Vec<Field> = vec![None; g.len()];
        let mut culprit: Option<NodeId> = None;
        for n in g.dag.node_indices() {
            let field = self.field(g, n, &fields);
            if culprit.is_none()
                && let Some(f) = &field
                && f.iter().any(|&(dy, dx)| dy > 0 || (dy == 0 && dx >= 0))
                && !matches!(g.node(n).prim, Prim::Input { .. })
            {
                culprit = Some(n);
            }
            fields[n.index()] = field;
        }
        let Some(out) = g.outputs.first().map(|o| o.node) else { return };
        let Some(field) = &fields[out.index()] else { return };
        let Some(&(dy, dx)) = field.iter().find(|&&(dy, dx)| dy > 0 || (dy == 0 && dx >= 0)) else { return };
        let what = if (dy, dx) == (0, 0) {
            "its own pixel".to_string()
        } else {
            format!("the later pixel at offset ({dy}, {dx})")
        };
        let span = culprit.map(|c| g.node(c).span).unwrap_or(def.name.span);
        let (label, help) = match culprit.map(|c| (c, self.mask_kind(g, c), &g.node(c).prim)) {
            Some((c, None, Prim::Conv2d(_))) => {
                let w = g.ty(g.inputs(c)[1]);
                (
                    format!("this {}x{} conv2d is unmasked: it sees the pixels below and to the right", w.shape[2], w.shape[3]),
                    "use masked_conv2d(.., mask: \"B\") here; only 1x1 convolutions may stay unmasked".to_string(),
                )
            }
            Some((_, Some('B'), _)) => (
                "mask \"B\" keeps the centre pixel, and nothing before this layer hid it".to_string(),
                "the first masked layer must use mask: \"A\"; later layers use mask: \"B\"".to_string(),
            ),
            _ => (
                "from here on, outputs see the current pixel or later ones".to_string(),
                "the first layer must be a masked_conv2d with mask: \"A\", every later spatial convolution mask \"B\"".to_string(),
            ),
        };
        self.error(
            TypeError::new(
                "E0118",
                span,
                format!("`{}` is not autoregressive: an output pixel sees {what}", def.name.name),
            )
            .label(label)
            .note(def.name.span, "in this net")
            .help(help),
        );
    }

    /// The causal-mask kind of a convolution's weight (`w * mask`), if any.
    fn mask_kind(&self, g: &Graph, conv: NodeId) -> Option<char> {
        if !matches!(g.node(conv).prim, Prim::Conv2d(_)) {
            return None;
        }
        let w = *g.inputs(conv).get(1)?;
        g.inputs(w).into_iter().find_map(|i| match g.node(i).prim {
            Prim::Buffer { index } => match self.table.buffers.get(index)?.init {
                Init::CausalMask { kind } => Some(kind),
                _ => None,
            },
            _ => None,
        })
    }

    fn field(&self, g: &Graph, n: NodeId, fields: &[Field]) -> Field {
        let node = g.node(n);
        let inputs = g.inputs(n);
        let union = |ids: &[NodeId]| -> Field {
            let mut out = BTreeSet::new();
            for i in ids {
                out.extend(fields[i.index()].as_ref()?.iter().copied());
            }
            Some(out)
        };
        // A value computed only from values that see no pixel (weights, biases, constants)
        // sees no pixel either, whatever the op: this keeps bias reshapes and the like from
        // hiding the stack from the analysis.
        if !inputs.is_empty()
            && inputs.iter().all(|i| fields[i.index()].as_ref().is_some_and(|f| f.is_empty()))
        {
            return Some(BTreeSet::new());
        }
        match &node.prim {
            Prim::Input { .. } => {
                Some(if node.ty.rank() == 4 { BTreeSet::from([(0, 0)]) } else { BTreeSet::new() })
            }
            Prim::Param { .. }
            | Prim::Buffer { .. }
            | Prim::Fill { .. }
            | Prim::Iota { .. }
            | Prim::Random { .. } => Some(BTreeSet::new()),
            Prim::Unary(_) | Prim::Binary(_) | Prim::Select | Prim::Cast { .. } | Prim::StopGrad => {
                union(&inputs)
            }
            Prim::Broadcast => union(&inputs),
            Prim::Reshape => {
                let from = &g.ty(inputs[0]).shape;
                let to = &node.ty.shape;
                let spatial = |s: &[crate::dim::Dim]| {
                    s.len() >= 2 && s[s.len() - 2..] == to[to.len().saturating_sub(2)..]
                };
                if from.len() >= 2 && to.len() >= 2 && spatial(from) { union(&inputs) } else { None }
            }
            Prim::Reduce { op: ReduceOp::Sum | ReduceOp::Mean | ReduceOp::Max | ReduceOp::Min, axes } => {
                let rank = node.ty.rank();
                if axes.iter().all(|&a| a + 2 < rank) { union(&inputs) } else { None }
            }
            Prim::Conv2d(geo) => {
                if geo.stride != [1, 1] {
                    return None;
                }
                let x = fields[inputs[0].index()].as_ref()?;
                let w = g.ty(inputs[1]);
                let (kh, kw) = (w.shape[2].as_const()?, w.shape[3].as_const()?);
                let mask = self.mask_kind(g, n);
                let (ch, cw) = (kh / 2, kw / 2);
                let mut out = BTreeSet::new();
                for i in 0..kh {
                    for j in 0..kw {
                        let allowed = match mask {
                            None => true,
                            Some(kind) => i < ch || (i == ch && (j < cw || (j == cw && kind == 'B'))),
                        };
                        if !allowed {
                            continue;
                        }
                        let dy = i * geo.dilation[0] as i64 - geo.pad[0] as i64;
                        let dx = j * geo.dilation[1] as i64 - geo.pad[1] as i64;
                        for &(y, xx) in x {
                            let (a, b) = (y + dy, xx + dx);
                            if a.abs() <= MAX_OFFSET && b.abs() <= MAX_OFFSET {
                                out.insert((a, b));
                            }
                        }
                    }
                }
                // The weight itself carries no pixels.
                Some(out)
            }
            _ => None,
        }
    }
}
