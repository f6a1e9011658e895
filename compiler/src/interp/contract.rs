//! Contractions: batched matmul and 2-D convolution with its two adjoints.
//!
//! All three convolution ops run one computation: the input is unfolded (im2col) so that
//! tap `(ki, kj)` of input channel `ic` for output `(oh, ow)` reads
//! `x[ic, oh·s + ki·d − p, ow·s + kj·d − p]` (0 in the padding), and the convolution is a
//! matrix product of the weight with it. They differ only in which of `x`, `w`, `y` they
//! accumulate into, and the fold back into `x` is the unfold's exact transpose. That makes
//! `ConvTranspose2d` exactly the adjoint of `Conv2d` with respect to `x`, and
//! `Conv2dWeightGrad` exactly its adjoint with respect to `w`, by construction. (As in an
//! implicit-GEMM kernel, padding contributes `w · 0` terms: an infinite weight over padding
//! gives NaN.)
//!
//! Decisions beyond prim.rs: operands are f32; strides, dilations and groups are ≥ 1, kernels
//! at least 1×1, and a convolution's padded input must hold one dilated kernel (PyTorch's
//! rules); `output_padding` must be smaller than the stride or the dilation (PyTorch's rule).

use super::{ErrorKind, Res, Value, alloc, numel, small, want_dtype, want_rank};
use crate::prim::{ConvGeometry, DType};

pub(super) fn matmul(a: &Value, b: &Value, transpose_a: bool, transpose_b: bool) -> Res<Value> {
    want_dtype(a, &[DType::F32], "matmul's a")?;
    want_dtype(b, &[DType::F32], "matmul's b")?;
    let rank = a.shape.len();
    if rank < 2 || b.shape.len() != rank || a.shape[..rank - 2] != b.shape[..rank - 2] {
        return Err(ErrorKind::Shape(format!(
            "matmul needs equal ranks ≥ 2 and equal batch axes, not {:?} and {:?}",
            a.shape, b.shape
        )));
    }
    let (a0, a1, b0, b1) = (a.shape[rank - 2], a.shape[rank - 1], b.shape[rank - 2], b.shape[rank - 1]);
    // a[m, k] is at m * am + k * ak within a batch; likewise b[k, n].
    let (m_len, k_len, am, ak) = if transpose_a { (a1, a0, 1, a1) } else { (a0, a1, a1, 1) };
    let (k_len_b, n_len, bk, bn) = if transpose_b { (b1, b0, 1, b1) } else { (b0, b1, b1, 1) };
    if k_len != k_len_b {
        return Err(ErrorKind::Shape(format!(
            "matmul of {:?} and {:?} (transposed: {transpose_a}, {transpose_b}): inner extents {k_len} and {k_len_b} differ",
            a.shape, b.shape
        )));
    }
    let batch: usize = a.shape[..rank - 2].iter().product();
    let mut shape = a.shape[..rank - 2].to_vec();
    shape.extend([m_len, n_len]);
    let mut data = alloc(numel(&shape)?, 0.0)?;
    // Row k of b (`b[k, :]`) is contiguous in `b_rows`; then `c[m, :] = Σ_k a[m, k] · b[k, :]`,
    // summed in increasing k for every output element.
    let mut b_rows = alloc(k_len * n_len, 0.0)?;
    for t in 0..batch {
        let (a_base, b_base, c_base) = (t * m_len * k_len, t * k_len * n_len, t * m_len * n_len);
        for k in 0..k_len {
            for n in 0..n_len {
                b_rows[k * n_len + n] = b.data[b_base + k * bk + n * bn];
            }
        }
        for m in 0..m_len {
            let c_row = &mut data[c_base + m * n_len..c_base + (m + 1) * n_len];
            for k in 0..k_len {
                axpy(c_row, a.data[a_base + m * am + k * ak], &b_rows[k * n_len..(k + 1) * n_len]);
            }
        }
    }
    Ok(Value { dtype: DType::F32, shape, data })
}

/// Which tensor a pass of the loop nest accumulates into.
#[derive(Clone, Copy, PartialEq)]
enum Into {
    /// `y += w · x`: the convolution.
    Y,
    /// `x += w · y`: the adjoint with respect to `x` (the transposed convolution).
    X,
    /// `w += y · x`: the adjoint with respect to `w`.
    W,
}

/// The extents of a cross-correlation `y [n, c_out, ho, wo] = x [n, c_in, h, w] ⋆ w [c_out,
/// c_in / groups, kh, kw]`, as i64 bounded by i32 (so no index arithmetic can overflow).
struct Conv {
    n: usize,
    c_in: usize,
    h: usize,
    w: usize,
    c_out: usize,
    kh: usize,
    kw: usize,
    ho: usize,
    wo: usize,
    groups: usize,
    stride: [i64; 2],
    pad: [i64; 2],
    dilation: [i64; 2],
}

impl Conv {
    /// Checks a geometry and every extent (`[n, c_in, h, w]`, `[c_out, c_in / g, kh, kw]`,
    /// `[ho, wo]`) against each other.
    fn new(g: &ConvGeometry, x: [usize; 4], w: [usize; 4], out: [usize; 2]) -> Res<Conv> {
        for (name, v) in [("stride", g.stride), ("dilation", g.dilation)] {
            if v.contains(&0) {
                return Err(ErrorKind::Attribute(format!("{name} {v:?} must be ≥ 1")));
            }
        }
        if g.groups == 0 {
            return Err(ErrorKind::Attribute("groups must be ≥ 1".into()));
        }
        if w[2] == 0 || w[3] == 0 {
            return Err(ErrorKind::Attribute(format!("a {}×{} kernel", w[2], w[3])));
        }
        for (i, v) in
            x.iter().chain(&w).chain(&out).chain(&g.stride).chain(&g.pad).chain(&g.dilation).enumerate()
        {
            small(*v, if i < 10 { "an extent" } else { "a geometry attribute" })?;
        }
        small(g.groups, "groups")?;
        let [n, c_in, h, width] = x;
        let [c_out, cig, kh, kw] = w;
        if cig.checked_mul(g.groups) != Some(c_in) || c_out % g.groups != 0 {
            return Err(ErrorKind::Shape(format!(
                "input {x:?} and weight {w:?} with {} groups: channels do not match",
                g.groups
            )));
        }
        let i = |v: usize| v as i64; // exact: every value was checked by `small`
        Ok(Conv {
            n,
            c_in,
            h,
            w: width,
            c_out,
            kh,
            kw,
            ho: out[0],
            wo: out[1],
            groups: g.groups,
            stride: g.stride.map(i),
            pad: g.pad.map(i),
            dilation: g.dilation.map(i),
        })
    }

    /// The number of output positions along an axis of `len` inputs (`axis` 0: height).
    fn out_len(g: &ConvGeometry, axis: usize, len: usize, k: usize) -> Res<usize> {
        let (s, p, d) = (
            small(g.stride[axis], "stride")?,
            small(g.pad[axis], "pad")?,
            small(g.dilation[axis], "dilation")?,
        );
        let (len, k) = (small(len, "an extent")?, small(k, "a kernel extent")?);
        if s == 0 || k == 0 {
            return Err(ErrorKind::Attribute("a zero stride or kernel".into()));
        }
        let span = d * (k - 1) + 1;
        let padded = len + 2 * p;
        if padded < span {
            return Err(ErrorKind::Shape(format!(
                "the padded input extent {padded} is smaller than the dilated kernel extent {span}"
            )));
        }
        Ok(((padded - span) / s + 1) as usize)
    }

    /// The output positions `o` in `0..n_out` whose input position `o·s + k·d − p` lies in
    /// `0..n_in`, as a range, and the input position of its first element.
    fn valid(&self, axis: usize, k: usize, n_out: usize, n_in: usize) -> (usize, usize, usize) {
        let (s, off) = (self.stride[axis], k as i64 * self.dilation[axis] - self.pad[axis]);
        let (n_out, n_in) = (n_out as i64, n_in as i64);
        // o·s + off ≥ 0  ⇔  o ≥ ⌈−off / s⌉;   o·s + off < n_in  ⇔  o < ⌈(n_in − off) / s⌉.
        let lo = if off >= 0 { 0 } else { (-off + s - 1) / s };
        let hi = if n_in - off <= 0 { 0 } else { (n_in - off + s - 1) / s };
        let (lo, hi) = (lo.min(n_out), hi.min(n_out));
        if lo >= hi {
            return (0, 0, 0);
        }
        (lo as usize, hi as usize, (lo * s + off) as usize)
    }

    /// The rows of the unfolded input (im2col) of one batch item: row `(ic·kh + ki)·kw + kj`
    /// holds, at column `oh·wo + ow`, the element of `x[ic]` that kernel tap `(ki, kj)` reads
    /// for output `(oh, ow)`, or 0 where that falls in the padding. `lower` fills `col` from
    /// `x` and `raise` (its adjoint, col2im) adds `col` back into `x`; both walk the same
    /// index pairs, so each is exactly the other's transpose.
    fn unfold(&self, x: &mut [f64], col: &mut [f64], raise: bool) {
        let (sh, sw) = (self.stride[0] as usize, self.stride[1] as usize);
        let plane = self.ho * self.wo;
        for ic in 0..self.c_in {
            for ki in 0..self.kh {
                let (oh_lo, oh_hi, ih_lo) = self.valid(0, ki, self.ho, self.h);
                for kj in 0..self.kw {
                    let (ow_lo, ow_hi, iw_lo) = self.valid(1, kj, self.wo, self.w);
                    let row = ((ic * self.kh + ki) * self.kw + kj) * plane;
                    let mut ih = ih_lo;
                    for oh in oh_lo..oh_hi {
                        let (c, xr) = (row + oh * self.wo, (ic * self.h + ih) * self.w);
                        let (mut ow, mut iw) = (ow_lo, iw_lo);
                        while ow < ow_hi {
                            if raise {
                                x[xr + iw] += col[c + ow];
                            } else {
                                col[c + ow] = x[xr + iw];
                            }
                            ow += 1;
                            iw += sw;
                        }
                        ih += sh;
                    }
                }
            }
        }
    }

    /// The computation shared by the three ops, one batch item at a time, as a matrix
    /// product with the unfolded input `col` (`[c_in·kh·kw, ho·wo]`): per group,
    /// `y[oc] = Σ_r w[oc, r] · col[r]` over the group's rows `r`. `Into::X` runs it backwards
    /// (`col[r] += w[oc, r] · y[oc]`, then folds `col` into `x`) and `Into::W` accumulates
    /// `w[oc, r] += <y[oc], col[r]>`. Each accumulated element receives its terms in a fixed
    /// order, so results are deterministic.
    fn run(&self, into: Into, x: &mut [f64], w: &mut [f64], y: &mut [f64]) -> Res<()> {
        let plane = self.ho * self.wo;
        let rows = (self.c_in / self.groups) * self.kh * self.kw; // per output channel
        let cog = self.c_out / self.groups;
        let x_item = self.c_in * self.h * self.w;
        if self.n == 0 {
            return Ok(());
        }
        let mut col = alloc(self.c_in * self.kh * self.kw * plane, 0.0)?;
        for b in 0..self.n {
            let xb = &mut x[b * x_item..(b + 1) * x_item];
            if into == Into::X {
                col.fill(0.0);
            } else {
                self.unfold(xb, &mut col, false);
            }
            for oc in 0..self.c_out {
                let group_rows = (oc / cog) * rows;
                let yr = (b * self.c_out + oc) * plane;
                let y_row = &mut y[yr..yr + plane];
                for r in 0..rows {
                    let wi = oc * rows + r;
                    let c = (group_rows + r) * plane;
                    let col_row = &mut col[c..c + plane];
                    match into {
                        Into::Y => axpy(y_row, w[wi], col_row),
                        Into::X => axpy(col_row, w[wi], y_row),
                        Into::W => w[wi] += dot(y_row, col_row),
                    }
                }
            }
            if into == Into::X {
                self.unfold(xb, &mut col, true);
            }
        }
        Ok(())
    }
}

/// `y += a · x` over equal-length slices. A `while` loop over indices: the inner loops run
/// unoptimised in debug builds, where this is several times faster than iterator adaptors.
fn axpy(y: &mut [f64], a: f64, x: &[f64]) {
    let n = y.len().min(x.len());
    let mut k = 0;
    while k < n {
        y[k] += a * x[k];
        k += 1;
    }
}

/// `Σ a[k] · b[k]`, in index order.
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (mut k, mut acc) = (0, 0.0);
    while k < n {
        acc += a[k] * b[k];
        k += 1;
    }
    acc
}

fn dims4(v: &Value, what: &str) -> Res<[usize; 4]> {
    want_dtype(v, &[DType::F32], what)?;
    want_rank(v, 4, what)?;
    Ok([v.shape[0], v.shape[1], v.shape[2], v.shape[3]])
}

/// `Conv2d`: `(x [N, C_in, H, W], w [C_out, C_in / g, kh, kw])`.
pub(super) fn conv2d(x: &Value, w: &Value, g: &ConvGeometry) -> Res<Value> {
    let (xd, wd) = (dims4(x, "conv2d's input")?, dims4(w, "conv2d's weight")?);
    let out = [Conv::out_len(g, 0, xd[2], wd[2])?, Conv::out_len(g, 1, xd[3], wd[3])?];
    let conv = Conv::new(g, xd, wd, out)?;
    let shape = vec![xd[0], wd[0], out[0], out[1]];
    let mut y = alloc(numel(&shape)?, 0.0)?;
    conv.run(Into::Y, &mut x.data.clone(), &mut w.data.clone(), &mut y)?;
    Ok(Value { dtype: DType::F32, shape, data: y })
}

/// `ConvTranspose2d`: `(x [N, C_in, H, W], w [C_in, C_out / g, kh, kw])`, the adjoint of a
/// `Conv2d` from `[N, C_out, H', W']` to `x`'s shape with weight `w`.
pub(super) fn conv_transpose2d(
    x: &Value,
    w: &Value,
    g: &ConvGeometry,
    output_padding: [usize; 2],
) -> Res<Value> {
    let (xd, wd) = (dims4(x, "conv_transpose2d's input")?, dims4(w, "conv_transpose2d's weight")?);
    let mut out = [0; 2];
    for axis in 0..2 {
        let op = output_padding[axis];
        if op >= g.stride[axis].max(g.dilation[axis]) {
            return Err(ErrorKind::Attribute(format!(
                "output_padding {output_padding:?} must be smaller than the stride or the dilation"
            )));
        }
        let (len, k) = (small(xd[2 + axis], "an extent")?, small(wd[2 + axis], "a kernel extent")?);
        let (s, p, d) = (
            small(g.stride[axis], "stride")?,
            small(g.pad[axis], "pad")?,
            small(g.dilation[axis], "dilation")?,
        );
        let extent = (len - 1) * s - 2 * p + d * (k - 1) + op as i64 + 1;
        if extent < 0 {
            return Err(ErrorKind::Shape(format!("the output extent {extent} is negative")));
        }
        out[axis] = extent as usize;
    }
    // The conv this is the adjoint of: its input is our output, its output our input.
    let groups = g.groups.max(1);
    let c_out = wd[1].checked_mul(groups).ok_or_else(|| ErrorKind::TooLarge("channels".into()))?;
    let conv = Conv::new(g, [xd[0], c_out, out[0], out[1]], wd, [xd[2], xd[3]])?;
    if conv.c_out != xd[1] {
        return Err(ErrorKind::Shape(format!("input {xd:?} and weight {wd:?}: channels do not match")));
    }
    let shape = vec![xd[0], c_out, out[0], out[1]];
    let mut result = alloc(numel(&shape)?, 0.0)?;
    conv.run(Into::X, &mut result, &mut w.data.clone(), &mut x.data.clone())?;
    Ok(Value { dtype: DType::F32, shape, data: result })
}

/// `Conv2dWeightGrad`: `(x [N, C_in, H, W], dy [N, C_out, H', W'])` to the weight's shape.
pub(super) fn conv2d_weight_grad(x: &Value, dy: &Value, g: &ConvGeometry, shape: &[usize]) -> Res<Value> {
    let (xd, yd) = (dims4(x, "the input")?, dims4(dy, "the output gradient")?);
    let wd: [usize; 4] = shape
        .try_into()
        .map_err(|_| ErrorKind::Shape(format!("a weight gradient of shape {shape:?} (rank 4 needed)")))?;
    let out = [Conv::out_len(g, 0, xd[2], wd[2])?, Conv::out_len(g, 1, xd[3], wd[3])?];
    let conv = Conv::new(g, xd, wd, out)?;
    if yd != [xd[0], wd[0], out[0], out[1]] {
        return Err(ErrorKind::Shape(format!(
            "a conv of {xd:?} by a {wd:?} weight gives {:?}, not the gradient's {yd:?}",
            [xd[0], wd[0], out[0], out[1]]
        )));
    }
    let mut dw = alloc(numel(shape)?, 0.0)?;
    conv.run(Into::W, &mut x.data.clone(), &mut dw, &mut dy.data.clone())?;
    Ok(Value { dtype: DType::F32, shape: shape.to_vec(), data: dw })
}
