//! Which input pixels each value of a net can see, position by position: an abstract
//! interpretation of the graph over the last two (spatial) axes, with batch and channels
//! merged. Absolute positions, not offsets, so it follows what a receptive field cannot:
//! row slices and row-by-row updates (a Row LSTM's `rows[:, :, i:i + 1, :] = h`), padding at
//! the border, strided and transposed convolutions, pooling and upsampling. Where it cannot
//! follow an op it says so (`Field::Lost`), and the check reports that it cannot decide.

use crate::graph::{Graph, NodeId};
use crate::prim::{Prim, UpsampleMode};

/// A set of input pixels (bit `y * W + x` of the image).
type Pixels = [u64];

/// Per position of a value's last two axes (always the value's own extents), the input
/// pixels it can see.
#[derive(Clone, Debug)]
pub struct Grid {
    pub h: usize,
    pub w: usize,
    /// Words per position's pixel set.
    words: usize,
    bits: Vec<u64>,
}

impl Grid {
    fn empty(h: usize, w: usize, words: usize) -> Grid {
        Grid { h, w, words, bits: vec![0; h * w * words] }
    }

    pub fn at(&self, y: usize, x: usize) -> &Pixels {
        let start = (y * self.w + x) * self.words;
        &self.bits[start..start + self.words]
    }

    fn or_at(&mut self, y: usize, x: usize, pixels: &Pixels) {
        let start = (y * self.w + x) * self.words;
        for (a, b) in self.bits[start..start + self.words].iter_mut().zip(pixels) {
            *a |= b;
        }
    }

    /// A grid of extent 1 on an axis reads position 0 there (broadcasting).
    fn at_broadcast(&self, y: usize, x: usize) -> &Pixels {
        self.at(if self.h == 1 { 0 } else { y }, if self.w == 1 { 0 } else { x })
    }
}

/// What a value sees.
#[derive(Clone, Debug)]
pub enum Field {
    /// No input pixel: weights, constants, labels and what is computed from them alone.
    Blind,
    Grid(Grid),
    /// The analysis cannot follow the op at this node (or one it depends on).
    Lost(NodeId),
}

/// The image the net reads: its extents and the words of a pixel set.
#[derive(Clone, Copy, Debug)]
pub struct Image {
    pub h: usize,
    pub w: usize,
    words: usize,
}

impl Image {
    /// The extents of the first rank-4 input with known spatial axes.
    pub fn of(g: &Graph) -> Option<Image> {
        let input = g
            .dag
            .node_indices()
            .find(|&n| matches!(g.node(n).prim, Prim::Input { .. }) && g.ty(n).rank() == 4)?;
        let (h, w) = spatial(g, input)?;
        Some(Image { h, w, words: (h * w).div_ceil(64) })
    }
}

/// The constant extents of a node's last two axes.
pub fn spatial(g: &Graph, n: NodeId) -> Option<(usize, usize)> {
    let s = &g.ty(n).shape;
    if s.len() < 2 {
        return None;
    }
    let h = usize::try_from(s[s.len() - 2].as_const()?).ok()?;
    let w = usize::try_from(s[s.len() - 1].as_const()?).ok()?;
    Some((h, w))
}

/// Computes the field of every node in node (topological) order, handing each to `visit`;
/// returns the field of the graph's first output. `mask_of` names a convolution's causal
/// mask kind ('A' or 'B'), if its weight is masked.
pub fn analyse(
    g: &Graph,
    image: Image,
    mask_of: &dyn Fn(NodeId) -> Option<char>,
    visit: &mut dyn FnMut(NodeId, &Field),
) -> Option<Field> {
    // Values are dropped after their last use: a fully unrolled Row LSTM has thousands.
    let mut uses: Vec<usize> = g
        .dag
        .node_indices()
        .map(|n| g.dag.neighbors_directed(n, petgraph::Direction::Outgoing).count())
        .collect();
    let kept: Vec<NodeId> = g.outputs.iter().map(|o| o.node).collect();
    let mut out: Vec<Option<Field>> = vec![None; g.len()];
    for n in g.dag.node_indices() {
        let inputs = g.inputs(n);
        let field = {
            let ins: Vec<&Field> =
                inputs.iter().map(|i| out[i.index()].as_ref().unwrap_or(&Field::Blind)).collect();
            field(g, n, &ins, image, mask_of)
        };
        visit(n, &field);
        out[n.index()] = Some(field);
        for i in inputs {
            uses[i.index()] = uses[i.index()].saturating_sub(1);
            if uses[i.index()] == 0 && !kept.contains(&i) {
                out[i.index()] = None;
            }
        }
    }
    let first = g.outputs.first()?.node;
    out[first.index()].take()
}

fn field(
    g: &Graph,
    n: NodeId,
    ins: &[&Field],
    image: Image,
    mask_of: &dyn Fn(NodeId) -> Option<char>,
) -> Field {
    let node = g.node(n);
    if let Some(&&Field::Lost(at)) = ins.iter().find(|f| matches!(f, Field::Lost(_))) {
        return Field::Lost(at);
    }
    if let Prim::Input { .. } = node.prim {
        return match (node.ty.rank(), spatial(g, n)) {
            (4, Some((h, w))) if (h, w) == (image.h, image.w) => {
                let mut grid = Grid::empty(h, w, image.words);
                for y in 0..h {
                    for x in 0..w {
                        let bit = y * w + x;
                        grid.bits[(bit) * image.words + bit / 64] |= 1 << (bit % 64);
                    }
                }
                Field::Grid(grid)
            }
            (4, _) => Field::Lost(n),
            _ => Field::Blind,
        };
    }
    if ins.iter().all(|f| matches!(f, Field::Blind)) {
        return Field::Blind;
    }
    let grids: Vec<Option<&Grid>> =
        ins.iter().map(|f| if let Field::Grid(g) = f { Some(g) } else { None }).collect();
    let Some((oh, ow)) = spatial(g, n) else { return Field::Lost(n) };
    let rank = node.ty.rank();
    let lost = Field::Lost(n);
    let result = match &node.prim {
        Prim::Unary(_)
        | Prim::Cast { .. }
        | Prim::StopGrad
        | Prim::Binary(_)
        | Prim::Select
        | Prim::Broadcast => union_broadcast(&grids, oh, ow, image.words),
        Prim::Reshape => {
            let from = g.ty(g.inputs(n)[0]);
            let grid = grids[0].expect("a non-blind input");
            let keeps = from.rank() >= 2 && from.shape[from.rank() - 2..] == node.ty.shape[rank - 2..];
            if keeps || (grid.h, grid.w) == (1, 1) && (oh, ow) == (1, 1) { Some(grid.clone()) } else { None }
        }
        Prim::Permute { perm } => {
            let grid = grids[0].expect("a non-blind input");
            if perm[rank - 2..] == [rank - 2, rank - 1] {
                Some(grid.clone())
            } else if perm[rank - 2..] == [rank - 1, rank - 2] {
                // A transposed image (a column-wise recurrence): position (y, x) was (x, y).
                let mut out = Grid::empty(oh, ow, image.words);
                for y in 0..oh {
                    for x in 0..ow {
                        out.or_at(y, x, grid.at(x, y));
                    }
                }
                Some(out)
            } else {
                None
            }
        }
        Prim::Reduce { axes, .. } => {
            let grid = grids[0].expect("a non-blind input");
            let rows = axes.contains(&(rank - 2));
            let cols = axes.contains(&(rank - 1));
            let mut out = Grid::empty(oh, ow, image.words);
            for y in 0..grid.h {
                for x in 0..grid.w {
                    out.or_at(if rows { 0 } else { y }, if cols { 0 } else { x }, grid.at(y, x));
                }
            }
            Some(out)
        }
        Prim::Slice { axis, start, step } => {
            let grid = grids[0].expect("a non-blind input");
            if *axis + 2 < rank {
                Some(grid.clone())
            } else {
                let mut out = Grid::empty(oh, ow, image.words);
                for y in 0..oh {
                    for x in 0..ow {
                        let (sy, sx) =
                            if *axis == rank - 2 { (start + y * step, x) } else { (y, start + x * step) };
                        out.or_at(y, x, grid.at_broadcast(sy, sx));
                    }
                }
                Some(out)
            }
        }
        Prim::Pad { pads, .. } => {
            let grid = grids[0].expect("a non-blind input");
            let (top, left) = (pads[rank - 2].0, pads[rank - 1].0);
            let mut out = Grid::empty(oh, ow, image.words);
            for y in 0..grid.h {
                for x in 0..grid.w {
                    out.or_at(y + top, x + left, grid.at(y, x));
                }
            }
            Some(out)
        }
        Prim::Concat { axis } if *axis + 2 < rank => union_broadcast(&grids, oh, ow, image.words),
        Prim::Concat { axis } => {
            let mut out = Grid::empty(oh, ow, image.words);
            let mut offset = 0;
            for (i, input) in g.inputs(n).into_iter().enumerate() {
                let (ih, iw) = spatial(g, input).unwrap_or((0, 0));
                if let Some(grid) = grids[i] {
                    for y in 0..ih {
                        for x in 0..iw {
                            let (ty, tx) = if *axis == rank - 2 { (y + offset, x) } else { (y, x + offset) };
                            out.or_at(ty, tx, grid.at_broadcast(y, x));
                        }
                    }
                }
                offset += if *axis == rank - 2 { ih } else { iw };
            }
            Some(out)
        }
        Prim::Gather { axis } if *axis + 2 < rank && grids[1].is_none() => {
            let keeps = g.ty(g.inputs(n)[0]).rank() == rank;
            keeps.then(|| grids[0].cloned()).flatten()
        }
        Prim::Conv2d(geo) if grids[1].is_none() => {
            let grid = grids[0].expect("a non-blind input");
            let w = g.ty(g.inputs(n)[1]);
            let (Some(kh), Some(kw)) = (w.shape[2].as_const(), w.shape[3].as_const()) else { return lost };
            let (kh, kw) = (kh as usize, kw as usize);
            let mask = mask_of(n);
            let (ch, cw) = (kh / 2, kw / 2);
            let taps: Vec<(usize, usize)> = (0..kh)
                .flat_map(|i| (0..kw).map(move |j| (i, j)))
                .filter(|&(i, j)| match mask {
                    None => true,
                    Some(kind) => i < ch || (i == ch && (j < cw || (j == cw && kind == 'B'))),
                })
                .collect();
            let mut out = Grid::empty(oh, ow, image.words);
            for y in 0..oh {
                for x in 0..ow {
                    for &(i, j) in &taps {
                        let sy = (y * geo.stride[0] + i * geo.dilation[0]).checked_sub(geo.pad[0]);
                        let sx = (x * geo.stride[1] + j * geo.dilation[1]).checked_sub(geo.pad[1]);
                        if let (Some(sy), Some(sx)) = (sy, sx)
                            && sy < grid.h
                            && sx < grid.w
                        {
                            out.or_at(y, x, grid.at(sy, sx));
                        }
                    }
                }
            }
            Some(out)
        }
        Prim::ConvTranspose2d { geometry: geo, .. } if grids[1].is_none() => {
            let grid = grids[0].expect("a non-blind input");
            let w = g.ty(g.inputs(n)[1]);
            let (Some(kh), Some(kw)) = (w.shape[2].as_const(), w.shape[3].as_const()) else { return lost };
            let mut out = Grid::empty(oh, ow, image.words);
            for y in 0..grid.h {
                for x in 0..grid.w {
                    for i in 0..kh as usize {
                        for j in 0..kw as usize {
                            let ty = (y * geo.stride[0] + i * geo.dilation[0]).checked_sub(geo.pad[0]);
                            let tx = (x * geo.stride[1] + j * geo.dilation[1]).checked_sub(geo.pad[1]);
                            if let (Some(ty), Some(tx)) = (ty, tx)
                                && ty < oh
                                && tx < ow
                            {
                                out.or_at(ty, tx, grid.at(y, x));
                            }
                        }
                    }
                }
            }
            Some(out)
        }
        Prim::Pool2d { window, .. } => {
            let grid = grids[0].expect("a non-blind input");
            let mut out = Grid::empty(oh, ow, image.words);
            for y in 0..oh {
                for x in 0..ow {
                    for i in 0..window.kernel[0] {
                        for j in 0..window.kernel[1] {
                            let sy = (y * window.stride[0] + i).checked_sub(window.pad[0]);
                            let sx = (x * window.stride[1] + j).checked_sub(window.pad[1]);
                            if let (Some(sy), Some(sx)) = (sy, sx)
                                && sy < grid.h
                                && sx < grid.w
                            {
                                out.or_at(y, x, grid.at(sy, sx));
                            }
                        }
                    }
                }
            }
            Some(out)
        }
        Prim::Upsample { mode, scale } => {
            let grid = grids[0].expect("a non-blind input");
            // Bilinear reads the two nearest source rows and columns of each target.
            let reach = usize::from(*mode == UpsampleMode::Bilinear);
            let mut out = Grid::empty(oh, ow, image.words);
            for y in 0..oh {
                for x in 0..ow {
                    let (cy, cx) = (y / scale[0], x / scale[1]);
                    for sy in cy.saturating_sub(reach)..=(cy + reach).min(grid.h - 1) {
                        for sx in cx.saturating_sub(reach)..=(cx + reach).min(grid.w - 1) {
                            out.or_at(y, x, grid.at(sy, sx));
                        }
                    }
                }
            }
            Some(out)
        }
        _ => None,
    };
    result.map_or(lost, Field::Grid)
}

/// Element-wise: each output position sees what its operands see there (extent-1 axes
/// broadcast); operands whose last two axes are not the output's cannot be followed.
fn union_broadcast(grids: &[Option<&Grid>], oh: usize, ow: usize, words: usize) -> Option<Grid> {
    let mut out = Grid::empty(oh, ow, words);
    for grid in grids.iter().flatten() {
        if !(grid.h == oh || grid.h == 1) || !(grid.w == ow || grid.w == 1) {
            return None;
        }
        for y in 0..oh {
            for x in 0..ow {
                out.or_at(y, x, grid.at_broadcast(y, x));
            }
        }
    }
    Some(out)
}
