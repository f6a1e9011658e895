//! Tracing a wrong output size back to its cause. A generator that returns [B, 1, 16, 16]
//! where it declares [B, 1, 28, 28] is wrong at the layer where the image size first left the
//! path to 28, often layers before the output: this walks the chain of resizing layers that
//! leads to the output backwards, from the declared size, and finds the layer that left the
//! path: the one a small change of stride, padding or output padding puts back on it.

use crate::dim::Dim;
use crate::graph::{Graph, NodeId};
use crate::prim::{ConvGeometry, Prim, Window};
use crate::shape_rules;

/// The layer that took the image off the declared path.
pub(super) struct Cause {
    pub node: NodeId,
    /// The layer's output extents (rows, columns), and those that lead to the declared size.
    pub actual: [i64; 2],
    pub expected: [i64; 2],
    /// The change, as written in a spec: "`stride: 2`".
    pub change: String,
}

/// A layer that changes the last two extents, with the settings a fix may change.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Resize {
    Conv { kernel: [i64; 2], geo: ConvGeometry },
    ConvTranspose { kernel: [i64; 2], geo: ConvGeometry, output_padding: [usize; 2] },
    Pool { window: Window },
}

impl Resize {
    fn of(g: &Graph, n: NodeId) -> Option<Resize> {
        let kernel = || -> Option<[i64; 2]> {
            let w = g.ty(*g.inputs(n).get(1)?);
            Some([w.shape.get(2)?.as_const()?, w.shape.get(3)?.as_const()?])
        };
        Some(match &g.node(n).prim {
            Prim::Conv2d(geo) => Resize::Conv { kernel: kernel()?, geo: *geo },
            Prim::ConvTranspose2d { geometry, output_padding } => {
                Resize::ConvTranspose { kernel: kernel()?, geo: *geometry, output_padding: *output_padding }
            }
            Prim::Pool2d { window, .. } => Resize::Pool { window: *window },
            _ => return None,
        })
    }

    /// The output extent along `axis` (0: rows, 1: columns) for input extent `n`.
    fn out(&self, n: i64, axis: usize) -> Option<i64> {
        let n = Dim::constant(n);
        let out = match self {
            Resize::Conv { kernel, geo } => {
                shape_rules::conv_out(&n, &Dim::constant(kernel[axis]), geo, axis)
            }
            Resize::ConvTranspose { kernel, geo, output_padding } => shape_rules::conv_transpose_out(
                &n,
                &Dim::constant(kernel[axis]),
                geo,
                output_padding[axis],
                axis,
            ),
            Resize::Pool { window } => shape_rules::window_out(&n, window, axis),
        };
        out.ok()?.as_const()
    }

    fn stride(&self) -> usize {
        match self {
            Resize::Conv { geo, .. } | Resize::ConvTranspose { geo, .. } => geo.stride[0],
            Resize::Pool { window } => window.stride[0],
        }
    }

    fn pad(&self) -> usize {
        match self {
            Resize::Conv { geo, .. } | Resize::ConvTranspose { geo, .. } => geo.pad[0],
            Resize::Pool { window } => window.pad[0],
        }
    }

    fn output_padding(&self) -> usize {
        match self {
            Resize::ConvTranspose { output_padding, .. } => output_padding[0],
            _ => 0,
        }
    }

    fn with(&self, stride: usize, pad: usize, output_padding: usize) -> Resize {
        let mut r = *self;
        match &mut r {
            Resize::Conv { geo, .. } => (geo.stride, geo.pad) = ([stride; 2], [pad; 2]),
            Resize::ConvTranspose { geo, output_padding: op, .. } => {
                (geo.stride, geo.pad, *op) = ([stride; 2], [pad; 2], [output_padding; 2]);
            }
            Resize::Pool { window } => (window.stride, window.pad) = ([stride; 2], [pad; 2]),
        }
        r
    }

    /// The same layer with other settings, fewest changes first (padding, then stride, then
    /// output padding, then pairs of them), each with its spelling in a spec. Paddings stay
    /// below the kernel (half of it for pooling), strides at most 4.
    fn variants(&self) -> Vec<(Resize, String)> {
        let (stride, pad, op) = (self.stride(), self.pad(), self.output_padding());
        let kernel = match self {
            Resize::Conv { kernel, .. } | Resize::ConvTranspose { kernel, .. } => kernel[0].max(1) as usize,
            Resize::Pool { window } => window.kernel[0],
        };
        let max_pad = if matches!(self, Resize::Pool { .. }) { kernel / 2 } else { kernel - 1 };
        let transposed = matches!(self, Resize::ConvTranspose { .. });
        let mut out: Vec<(usize, Resize, String)> = Vec::new();
        for s in 1..=4 {
            for p in 0..=max_pad {
                for o in 0..if transposed { s } else { 1 } {
                    let mut changes = Vec::new();
                    if s != stride {
                        changes.push(format!("stride: {s}"));
                    }
                    if p != pad {
                        changes.push(format!("pad: {p}"));
                    }
                    if o != op {
                        changes.push(format!("output_padding: {o}"));
                    }
                    if !changes.is_empty() {
                        out.push((changes.len(), self.with(s, p, o), format!("`{}`", changes.join(", "))));
                    }
                }
            }
        }
        // Stable: within a count of changes, the order of the loops above.
        out.sort_by_key(|(count, ..)| *count);
        out.into_iter().map(|(_, r, text)| (r, text)).collect()
    }

    /// An input extent from which this layer gives `out`, the closest to `near`.
    fn input_for(&self, out: i64, axis: usize, near: i64) -> Option<i64> {
        (1..=4 * out + 16).filter(|&n| self.out(n, axis) == Some(out)).min_by_key(|&n| ((n - near).abs(), n))
    }
}

/// The constant last two extents of a node.
fn extents(g: &Graph, n: NodeId) -> Option<[i64; 2]> {
    let s = &g.ty(n).shape;
    let r = s.len().checked_sub(2)?;
    Some([s[r].as_const()?, s[r + 1].as_const()?])
}

/// The resizing layers on the path to `out`, first to last: through element-wise ops,
/// broadcasts and reshapes, the input that carries the same last two extents.
fn chain(g: &Graph, out: NodeId) -> Vec<NodeId> {
    let mut layers = Vec::new();
    let mut node = out;
    loop {
        let inputs = g.inputs(node);
        match &g.node(node).prim {
            Prim::Conv2d(_) | Prim::ConvTranspose2d { .. } | Prim::Pool2d { .. } => {
                layers.push(node);
                node = inputs[0];
            }
            Prim::Unary(_)
            | Prim::Binary(_)
            | Prim::Select
            | Prim::Cast { .. }
            | Prim::StopGrad
            | Prim::Broadcast
            | Prim::Reshape
            | Prim::Reduce { .. } => {
                let here = extents(g, node);
                match inputs.into_iter().find(|&i| here.is_some() && extents(g, i) == here) {
                    Some(i) => node = i,
                    None => break,
                }
            }
            _ => break,
        }
    }
    layers.reverse();
    layers
}

/// Does a layer keep, double or halve the extents, as layers in image nets do? A size that
/// changes otherwise (7 to 8, 28 to 7) is where a chain has left its path.
fn regular(input: [i64; 2], output: [i64; 2]) -> bool {
    (0..2).all(|a| {
        let (n, m) = (input[a], output[a]);
        m == n || m == 2 * n || m == n / 2 || m == (n + 1) / 2
    })
}

/// The layer before the last to fix so that the output is `declared` (the last two
/// extents), walking back from the output along the sizes that lead to it. Only changes that
/// leave the layer keeping, doubling or halving its input count; among them a layer whose own
/// step is irregular (the one that departed) comes first, then the fewest changes, then the
/// earliest layer. `None` when the last layer is the place to fix, or nothing fits.
pub(super) fn trace(g: &Graph, out: NodeId, declared: [i64; 2]) -> Option<Cause> {
    let layers = chain(g, out);
    let mut required = declared;
    // (departed from the path, changes, position): smaller is a better place to fix.
    let mut best: Option<((bool, usize, usize), Cause)> = None;
    for (i, &layer) in layers.iter().enumerate().rev() {
        let resize = Resize::of(g, layer)?;
        let input = extents(g, g.inputs(layer)[0])?;
        let actual = extents(g, layer)?;
        if actual == required {
            break;
        }
        if regular(input, required) {
            let fix = resize
                .variants()
                .into_iter()
                .find(|(v, _)| (0..2).all(|a| v.out(input[a], a) == Some(required[a])));
            if let Some((_, change)) = fix {
                let key = (regular(input, actual), change.matches(':').count(), i);
                if best.as_ref().is_none_or(|(k, _)| key < *k) {
                    best = Some((key, Cause { node: layer, actual, expected: required, change }));
                }
            }
        }
        let Some(before) =
            (0..2).map(|a| resize.input_for(required[a], a, input[a])).collect::<Option<Vec<_>>>()
        else {
            break;
        };
        required = [before[0], before[1]];
    }
    let ((_, _, i), cause) = best?;
    (i + 1 < layers.len()).then_some(cause)
}
