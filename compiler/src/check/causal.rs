//! The autoregressive check for PixelCNN-style nets: computes, for each output pixel, which
//! input pixels it can see (`pixels`: masks, kernels, padding, row slices and row-by-row
//! updates followed position by position) and reports an output that sees its own or a
//! later pixel in raster order, at the first layer that lets it (E0118). Mask names alone
//! prove nothing: a mask-B first layer, or an unmasked 3x3 convolution in the stack, breaks
//! causality. An op the analysis cannot follow is reported as such (W0102), never passed.

mod pixels;

use genc_grammar::ast;

use self::pixels::{Field, Grid, Image};
use super::Checker;
use crate::diag::TypeError;
use crate::graph::{Graph, NodeId};
use crate::params::Init;
use crate::prim::Prim;

impl<'a> Checker<'a> {
    pub(super) fn check_causal(&mut self, def: &ast::Def, g: &Graph) {
        let masked = g.dag.node_indices().any(|n| self.mask_kind(g, n).is_some());
        if !masked {
            return;
        }
        let Some(image) = Image::of(g) else {
            self.cannot_decide(def, def.name.span, "this net reads no image of known size");
            return;
        };
        let mut culprit: Option<NodeId> = None;
        let mask_of = |n: NodeId| self.mask_kind(g, n);
        let mut visit = |n: NodeId, field: &Field| {
            if culprit.is_none()
                && let Field::Grid(grid) = field
                && (grid.h, grid.w) == (image.h, image.w)
                && !matches!(g.node(n).prim, Prim::Input { .. })
                && first_leak(grid).is_some()
            {
                culprit = Some(n);
            }
        };
        let output = pixels::analyse(g, image, &mask_of, &mut visit);
        let grid = match output {
            None | Some(Field::Blind) => return,
            Some(Field::Lost(at)) => {
                let what = format!("the check cannot follow this `{}`", g.node(at).prim);
                self.cannot_decide(def, g.node(at).span, &what);
                return;
            }
            Some(Field::Grid(grid)) if (grid.h, grid.w) != (image.h, image.w) => {
                let what = format!(
                    "the output's last two axes are {}x{}, the image's {}x{}",
                    grid.h, grid.w, image.h, image.w
                );
                self.cannot_decide(def, def.name.span, &what);
                return;
            }
            Some(Field::Grid(grid)) => grid,
        };
        let Some((dy, dx)) = first_leak(&grid) else { return };
        let what = if (dy, dx) == (0, 0) {
            "its own pixel".to_string()
        } else {
            format!("the later pixel at offset ({dy}, {dx})")
        };
        let span = culprit.map(|c| g.node(c).span).unwrap_or(def.name.span);
        let (label, help) = match culprit.map(|c| (c, self.mask_kind(g, c), &g.node(c).prim)) {
            Some((c, None, Prim::Conv2d(_))) => {
                let w = g.ty(g.inputs(c)[1]);
                let (kh, kw) = (&w.shape[2], &w.shape[3]);
                let sees = match (kh.as_const(), kw.as_const()) {
                    (Some(1), _) => "the pixels to the right",
                    (_, Some(1)) => "the pixels below",
                    _ => "the pixels below and to the right",
                };
                (
                    format!("this {kh}x{kw} conv2d is unmasked: it sees {sees}"),
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

    /// W0102: a masked net whose causality the analysis cannot establish either way.
    fn cannot_decide(&mut self, def: &ast::Def, span: genc_grammar::Span, what: &str) {
        self.error(
            TypeError::new(
                "W0102",
                span,
                format!("cannot tell whether `{}` is autoregressive", def.name.name),
            )
            .label(what.to_string())
            .note(def.name.span, "this net has masked convolutions")
            .help("keep image rows and columns as the last two axes up to the output, or check causality by sampling"),
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
}

/// The smallest offset `(dy, dx)` (raster order) from an output position to a pixel it sees
/// at or after itself, over every position; `None` when every position sees only earlier
/// pixels.
fn first_leak(grid: &Grid) -> Option<(i64, i64)> {
    let mut best: Option<(i64, i64)> = None;
    for y in 0..grid.h {
        for x in 0..grid.w {
            let own = y * grid.w + x;
            let set = grid.at(y, x);
            let first = (own / 64..set.len()).find_map(|i| {
                let word = if i == own / 64 { set[i] & (u64::MAX << (own % 64)) } else { set[i] };
                (word != 0).then(|| i * 64 + word.trailing_zeros() as usize)
            });
            if let Some(q) = first {
                let offset = ((q / grid.w) as i64 - y as i64, (q % grid.w) as i64 - x as i64);
                best = Some(best.map_or(offset, |b| b.min(offset)));
            }
        }
    }
    best
}
