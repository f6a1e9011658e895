//! Convolutions (im2col + the matmul kernel), pooling and upsampling, forward and backward.
//!
//! Layouts follow `genc_compiler::prim`: images `[N, C, H, W]`, conv weights
//! `[C_out, C_in / g, kh, kw]`, transposed-conv weights `[C_in, C_out / g, kh, kw]`.
//!
//! - `Conv2d`: `col = im2col(x)` as `[C_in*kh*kw, N*OH*OW]`; per group (one batched matmul,
//!   batch = groups) `W_g [C_out/g, K_g] @ col_g`; the `[C_out, N, OH*OW]` result is permuted
//!   to NCHW.
//! - `ConvTranspose2d` (also the input gradient of `Conv2d`): `cols = W_g^T @ x_g` with
//!   x as `[C_in, N*H*W]`, then `col2im` gathers (no scatter, no atomics) every tap that lands
//!   on an output pixel.
//! - `Conv2dWeightGrad`: `dy` as `[C_out, N*OH*OW]` times `im2col(x)^T`.
//!
//! The im2col and col2im scratch grows with the batch (a 9x9 conv over 64 channels at 28x28
//! takes 16 MB per image), so each of the three runs over slices of whole images sized to
//! the device's scratch budget ([`Device::scratch_bytes`]); weight-gradient slices are summed.
//!
//! Pool and upsample backward kernels are written in gather form too (one unit per input
//! element summing what reaches it), so every gradient is deterministic.

use cubecl::prelude::*;
use genc_compiler::prim::{ConvGeometry, PoolKind, UpsampleMode, Window};

use super::elementwise::{self, EwOp, FusedProgram, Instr};
use super::matmul::{Epilogue, MatLayout};
use super::{cube_launch_dims, fast_div, info_arg, magic, matmul, movement};
use crate::device::{CubeDevice, DeviceError, DeviceTensor};

/// info = [n, C, H, W, OH, OW, kh, kw, sh, sw, ph, pw, dh, dw, NB, rows, magic(OW), magic(OH)];
/// x contiguous NCHW;
/// col `[C*kh*kw, NB*OH*OW]`. Cubes are 2-D: y (and z, past 65535) pick the row, whose
/// (channel, tap) decode is then uniform across the cube; x runs along the row.
#[cube(launch_unchecked)]
fn im2col_kernel<F: Float>(x: &[F], col: &mut [F], info: &[u32]) {
    let oh = usize::cast_from(info[4]);
    let ow = usize::cast_from(info[5]);
    let cols = usize::cast_from(info[14]) * oh * ow;
    let row = usize::cast_from(CUBE_POS_Z) * 65535 + usize::cast_from(CUBE_POS_Y);
    let cidx = usize::cast_from(CUBE_POS_X) * 256 + usize::cast_from(UNIT_POS_X);
    if row < usize::cast_from(info[15]) && cidx < cols {
        let c = usize::cast_from(info[1]);
        let h = usize::cast_from(info[2]);
        let w = usize::cast_from(info[3]);
        let kh = usize::cast_from(info[6]);
        let kw = usize::cast_from(info[7]);
        let q = row / kw;
        let kx = row - q * kw;
        let ci = q / kh;
        let ky = q - ci * kh;
        let q2 = fast_div(cidx, info[16], info[17]);
        let ox = cidx - q2 * ow;
        let nb = fast_div(q2, info[18], info[19]);
        let oy = q2 - nb * oh;
        let iy = i32::cast_from(oy * usize::cast_from(info[8]) + ky * usize::cast_from(info[12]))
            - i32::cast_from(info[10]);
        let ix = i32::cast_from(ox * usize::cast_from(info[9]) + kx * usize::cast_from(info[13]))
            - i32::cast_from(info[11]);
        let mut v = F::new(0.0);
        if iy >= 0 && ix >= 0 && iy < i32::cast_from(h) && ix < i32::cast_from(w) {
            v = x[((nb * c + ci) * h + usize::cast_from(iy)) * w + usize::cast_from(ix)];
        }
        col[row * cols + cidx] = v;
    }
}

fn im2col(
    device: &CubeDevice,
    x: &DeviceTensor,
    kernel: [usize; 2],
    g: &ConvGeometry,
    out_hw: [usize; 2],
) -> Result<DeviceTensor, DeviceError> {
    let x = movement::contiguous(device, x)?;
    let [nb, c, h, w] = [x.shape[0], x.shape[1], x.shape[2], x.shape[3]];
    let rows = c * kernel[0] * kernel[1];
    let cols = nb * out_hw[0] * out_hw[1];
    let col = DeviceTensor::cube_empty(device, x.dtype, &[rows, cols])?;
    let total = rows * cols;
    if total == 0 {
        return Ok(col);
    }
    let mut info: Vec<u32> = [
        total,
        c,
        h,
        w,
        out_hw[0],
        out_hw[1],
        kernel[0],
        kernel[1],
        g.stride[0],
        g.stride[1],
        g.pad[0],
        g.pad[1],
        g.dilation[0],
        g.dilation[1],
        nb,
        rows,
    ]
    .map(|v| v as u32)
    .to_vec();
    info.extend(magic(out_hw[1]));
    info.extend(magic(out_hw[0]));
    let client = device.client();
    let count =
        CubeCount::Static(cols.div_ceil(256) as u32, rows.min(65535) as u32, rows.div_ceil(65535) as u32);
    let dim = CubeDim::new_1d(256);
    let (xh, xl) = super::buffer_of(&x)?;
    let (ch, cl) = super::buffer_of(&col)?;
    // SAFETY: reads are guarded to lie inside the NCHW input; writes are guarded by
    // row < rows and cidx < cols.
    unsafe {
        im2col_kernel::launch_unchecked::<f32>(
            client,
            count,
            dim,
            BufferArg::from_raw_parts(xh, xl),
            BufferArg::from_raw_parts(ch, cl),
            info_arg(device, &info),
        );
    }
    Ok(col)
}

/// Conv2d forward.
pub fn conv2d(
    device: &CubeDevice,
    x: &DeviceTensor,
    w: &DeviceTensor,
    g: &ConvGeometry,
    out_shape: &[usize],
) -> Result<DeviceTensor, DeviceError> {
    let mut outs = conv2d_with(device, x, w, g, out_shape, &Epilogue::store(x.dtype))?;
    outs.pop().ok_or_else(|| DeviceError::Kernel { op: "conv2d".into(), reason: "no output".into() })
}

/// [`conv2d`] storing through `epi` (the matmul's epilogue, at each element's NCHW
/// position): returns the epilogue's outputs, the convolution's slot first.
pub fn conv2d_with(
    device: &CubeDevice,
    x: &DeviceTensor,
    w: &DeviceTensor,
    g: &ConvGeometry,
    out_shape: &[usize],
    epi: &Epilogue,
) -> Result<Vec<DeviceTensor>, DeviceError> {
    let [nb, cout, oh, ow] = [out_shape[0], out_shape[1], out_shape[2], out_shape[3]];
    if out_shape.iter().product::<usize>() == 0 {
        return epi.outputs(device, out_shape);
    }
    let groups = g.groups;
    let (kh, kw) = (w.shape[2], w.shape[3]);
    let kg = w.shape[1] * kh * kw;
    if kg == 0 {
        return epi.apply(device, super::generate::fill(device, x.dtype, out_shape, 0.0)?);
    }
    let outs = epi.outputs(device, out_shape)?;
    let ohw = oh * ow;
    let w = movement::contiguous(device, w)?;
    let cg = cout / groups;
    let al = MatLayout { offset: w.offset, batch: cg * kg, rows: kg, cols: 1, split: None };
    for (n0, len) in slices(nb, images_per_slice(device, groups * kg * ohw)) {
        let col = im2col(device, &x.sliced(0, n0, 1, len), [kh, kw], g, [oh, ow])?;
        let p = len * ohw;
        // Per group: W_g [C_out/g, K_g] @ col_g [K_g, len*OH*OW], stored straight into NCHW.
        let bl = MatLayout { offset: 0, batch: kg * p, rows: p, cols: 1, split: None };
        let cl = MatLayout {
            offset: n0 * cout * ohw,
            batch: cg * ohw,
            rows: ohw,
            cols: 1,
            split: Some((ohw, cout * ohw)),
        };
        matmul::matmul_into_with(
            device,
            (&w, al),
            (&col, bl),
            (&outs, cl),
            [groups, cg, kg, p],
            matmul::default_path(),
            epi,
        )?;
    }
    Ok(outs)
}

/// How many images one slice of a batch takes when each needs `per_image` scratch elements,
/// so the scratch stays within the device's budget (at least one: a single image too large
/// for a buffer is refused when its scratch is allocated).
fn images_per_slice(device: &CubeDevice, per_image: usize) -> usize {
    let budget = (device.scratch_bytes() / 4) as usize;
    (budget / per_image.max(1)).max(1)
}

/// `(first, count)` of each slice of `n` images, `per` at a time.
fn slices(n: usize, per: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..n).step_by(per.max(1)).map(move |n0| (n0, per.min(n - n0)))
}

/// info = [n, C_out, OH, OW, H, W, kh, kw, sh, sw, ph, pw, dh, dw, NB, magic(OW), magic(OH),
/// magic(C_out), out_offset]; cols `[C_out*kh*kw, NB*H*W]`; out NCHW `[NB, C_out, OH, OW]`
/// from element out_offset on.
#[cube(launch_unchecked)]
fn col2im_kernel<F: Float>(cols: &[F], out: &mut [F], info: &[u32], #[comptime] unit_dilation: bool) {
    let total = usize::cast_from(info[0]);
    if ABSOLUTE_POS < total {
        let cout = usize::cast_from(info[1]);
        let oh = usize::cast_from(info[2]);
        let ow = usize::cast_from(info[3]);
        let h = usize::cast_from(info[4]);
        let w = usize::cast_from(info[5]);
        let kh = usize::cast_from(info[6]);
        let kw = usize::cast_from(info[7]);
        let sh = i32::cast_from(info[8]);
        let sw = i32::cast_from(info[9]);
        let ph = i32::cast_from(info[10]);
        let pw = i32::cast_from(info[11]);
        let dh = i32::cast_from(info[12]);
        let dw = i32::cast_from(info[13]);
        let nb_total = usize::cast_from(info[14]);
        let q = fast_div(ABSOLUTE_POS, info[15], info[16]);
        let ox = ABSOLUTE_POS - q * ow;
        let q2 = fast_div(q, info[17], info[18]);
        let oy = q - q2 * oh;
        let nb = fast_div(q2, info[19], info[20]);
        let co = q2 - nb * cout;
        let hw = h * w;
        let ncols = nb_total * hw;
        let mut acc = F::new(0.0);
        if unit_dilation {
            // The taps that land on (oy, ox): ky = ky0 + j * sh reads row iy0 - j (likewise x).
            let ty = i32::cast_from(oy) + ph;
            let iy0 = ty / sh;
            let ky0 = ty - iy0 * sh;
            let tx = i32::cast_from(ox) + pw;
            let ix0 = tx / sw;
            let kx0 = tx - ix0 * sw;
            let mut ky = ky0;
            let mut iy = iy0;
            while ky < i32::cast_from(kh) {
                if iy >= 0 && iy < i32::cast_from(h) {
                    let mut kx = kx0;
                    let mut ix = ix0;
                    while kx < i32::cast_from(kw) {
                        if ix >= 0 && ix < i32::cast_from(w) {
                            let row = (co * kh + usize::cast_from(ky)) * kw + usize::cast_from(kx);
                            acc +=
                                cols[row * ncols + nb * hw + usize::cast_from(iy) * w + usize::cast_from(ix)];
                        }
                        kx += sw;
                        ix -= 1i32;
                    }
                }
                ky += sh;
                iy -= 1i32;
            }
        } else {
            for ky in 0..kh {
                let ty = i32::cast_from(oy) + ph - i32::cast_from(ky) * dh;
                if ty >= 0 && ty % sh == 0 && ty / sh < i32::cast_from(h) {
                    let iy = usize::cast_from(ty / sh);
                    for kx in 0..kw {
                        let tx = i32::cast_from(ox) + pw - i32::cast_from(kx) * dw;
                        if tx >= 0 && tx % sw == 0 && tx / sw < i32::cast_from(w) {
                            let ix = usize::cast_from(tx / sw);
                            let row = (co * kh + ky) * kw + kx;
                            acc += cols[row * ncols + nb * hw + iy * w + ix];
                        }
                    }
                }
            }
        }
        out[usize::cast_from(info[21]) + ABSOLUTE_POS] = acc;
    }
}

/// Transposed convolution (and the input gradient of a convolution).
pub fn conv_transpose2d(
    device: &CubeDevice,
    x: &DeviceTensor,
    w: &DeviceTensor,
    g: &ConvGeometry,
    out_shape: &[usize],
) -> Result<DeviceTensor, DeviceError> {
    let out_n: usize = out_shape.iter().product();
    if out_n == 0 {
        return DeviceTensor::cube_empty(device, x.dtype, out_shape);
    }
    let [nb, cin, h, wd] = [x.shape[0], x.shape[1], x.shape[2], x.shape[3]];
    let cout = out_shape[1];
    let (kh, kw) = (w.shape[2], w.shape[3]);
    let groups = g.groups;
    let (cig, cog) = (cin / groups, cout / groups);
    if cig == 0 || x.numel() == 0 {
        return super::generate::fill(device, x.dtype, out_shape, 0.0);
    }
    let hw = h * wd;
    let x = movement::contiguous(device, x)?;
    let w = movement::contiguous(device, w)?;
    let mg = cog * kh * kw;
    let out = DeviceTensor::cube_empty(device, x.dtype, out_shape)?;
    // A = W_g^T: element (m, k) at w[g*cig + k, m]; B = x read as [C_in, N*H*W] in place.
    let al = MatLayout { offset: w.offset, batch: cig * mg, rows: 1, cols: mg, split: None };
    for (n0, len) in slices(nb, images_per_slice(device, groups * mg * hw)) {
        let q = len * hw;
        let cols = DeviceTensor::cube_empty(device, x.dtype, &[groups, mg, q])?;
        let bl = MatLayout {
            offset: x.offset + n0 * cin * hw,
            batch: cig * hw,
            rows: hw,
            cols: 1,
            split: Some((hw, cin * hw)),
        };
        let cl = MatLayout { offset: 0, batch: mg * q, rows: q, cols: 1, split: None };
        matmul::matmul_into(
            device,
            (&w, al),
            (&x, bl),
            (&cols, cl),
            [groups, mg, cig, q],
            matmul::default_path(),
        )?;
        col2im(device, &cols, &out, [kh, kw], [h, wd], g, (n0, len))?;
    }
    Ok(out)
}

/// Gathers the columns of images `n0..n0 + len` into those images of `out`.
fn col2im(
    device: &CubeDevice,
    cols: &DeviceTensor,
    out: &DeviceTensor,
    kernel: [usize; 2],
    in_hw: [usize; 2],
    g: &ConvGeometry,
    (n0, len): (usize, usize),
) -> Result<(), DeviceError> {
    let [cout, oh, ow] = [out.shape[1], out.shape[2], out.shape[3]];
    let total = len * cout * oh * ow;
    let mut info: Vec<u32> = [
        total,
        cout,
        oh,
        ow,
        in_hw[0],
        in_hw[1],
        kernel[0],
        kernel[1],
        g.stride[0],
        g.stride[1],
        g.pad[0],
        g.pad[1],
        g.dilation[0],
        g.dilation[1],
        len,
    ]
    .map(|v| v as u32)
    .to_vec();
    for d in [ow, oh, cout] {
        info.extend(magic(d));
    }
    info.push((n0 * cout * oh * ow) as u32);
    let client = device.client();
    let (count, dim) = cube_launch_dims(client, total);
    let (ch, cl) = super::buffer_of(cols)?;
    let (oh_, ol) = super::buffer_of(out)?;
    // SAFETY: every cols index has row < C_out*kh*kw and column < len*H*W (guarded iy, ix);
    // writes land in images n0..n0 + len of out.
    unsafe {
        col2im_kernel::launch_unchecked::<f32>(
            client,
            count,
            dim,
            BufferArg::from_raw_parts(ch, cl),
            BufferArg::from_raw_parts(oh_, ol),
            info_arg(device, &info),
            g.dilation == [1, 1],
        );
    }
    Ok(())
}

/// The weight gradient of a convolution: inputs `x` and `dy`, output the weight's shape.
pub fn conv2d_weight_grad(
    device: &CubeDevice,
    x: &DeviceTensor,
    dy: &DeviceTensor,
    g: &ConvGeometry,
    out_shape: &[usize],
) -> Result<DeviceTensor, DeviceError> {
    let out_n: usize = out_shape.iter().product();
    if out_n == 0 {
        return DeviceTensor::cube_empty(device, x.dtype, out_shape);
    }
    let [nb, cout, oh, ow] = [dy.shape[0], dy.shape[1], dy.shape[2], dy.shape[3]];
    let (kh, kw) = (out_shape[2], out_shape[3]);
    let groups = g.groups;
    let kg = out_shape[1] * kh * kw;
    let p = nb * oh * ow;
    if p == 0 {
        return super::generate::fill(device, x.dtype, out_shape, 0.0);
    }
    let dyp = movement::materialize(device, &dy.permuted(&[1, 0, 2, 3]))?;
    let cg = cout / groups;
    let ohw = oh * ow;
    // dW_g = dy_g [C_out/g, N*OH*OW] @ col_g^T, summed over slices of the batch.
    let mut dw: Option<DeviceTensor> = None;
    for (n0, len) in slices(nb, images_per_slice(device, groups * kg * ohw)) {
        let col = im2col(device, &x.sliced(0, n0, 1, len), [kh, kw], g, [oh, ow])?;
        let q = len * ohw;
        let a = DeviceTensor {
            shape: vec![groups, cg, q],
            strides: vec![cg * p, p, 1],
            offset: dyp.offset + n0 * ohw,
            ..dyp.clone()
        };
        let b = DeviceTensor { shape: vec![groups, q, kg], strides: vec![kg * q, 1, q], ..col };
        let part = matmul::matmul_cube(device, &a, &b, &[groups, cg, kg], matmul::default_path())?;
        dw = Some(match dw {
            None => part,
            Some(sum) => add(device, &sum, &part)?,
        });
    }
    let dw = dw
        .ok_or_else(|| DeviceError::Kernel { op: "conv2d_weight_grad".into(), reason: "no images".into() })?;
    dw.cube_reshaped(device, out_shape)
}

/// `a + b`, element-wise.
fn add(device: &CubeDevice, a: &DeviceTensor, b: &DeviceTensor) -> Result<DeviceTensor, DeviceError> {
    let program = FusedProgram {
        n_inputs: 2,
        instrs: vec![Instr { op: EwOp::Add, a: 0, b: 1, c: 0 }],
        outputs: vec![2],
    };
    let mut out = elementwise::run_fused_cube(device, &program, &[a, b], &a.shape, &[a.dtype])?;
    out.pop().ok_or_else(|| DeviceError::Kernel { op: "add".into(), reason: "no output".into() })
}

/// info = [n, C, H, W, OH, OW, kh, kw, sh, sw, ph, pw]; x contiguous.
#[cube(launch_unchecked)]
fn pool_kernel<F: Float>(x: &[F], out: &mut [F], info: &[u32], #[comptime] max_pool: bool) {
    let total = usize::cast_from(info[0]);
    if ABSOLUTE_POS < total {
        let h = usize::cast_from(info[2]);
        let w = usize::cast_from(info[3]);
        let oh = usize::cast_from(info[4]);
        let ow = usize::cast_from(info[5]);
        let kh = usize::cast_from(info[6]);
        let kw = usize::cast_from(info[7]);
        let ox = ABSOLUTE_POS % ow;
        let oy = (ABSOLUTE_POS / ow) % oh;
        let plane = ABSOLUTE_POS / (ow * oh);
        let y0 = i32::cast_from(oy * usize::cast_from(info[8])) - i32::cast_from(info[10]);
        let x0 = i32::cast_from(ox * usize::cast_from(info[9])) - i32::cast_from(info[11]);
        let mut acc = F::new(0.0);
        if max_pool {
            acc = F::min_value();
        }
        for ky in 0..kh {
            let iy = y0 + i32::cast_from(ky);
            if iy >= 0 && iy < i32::cast_from(h) {
                for kx in 0..kw {
                    let ix = x0 + i32::cast_from(kx);
                    if ix >= 0 && ix < i32::cast_from(w) {
                        let v = x[(plane * h + usize::cast_from(iy)) * w + usize::cast_from(ix)];
                        if max_pool {
                            acc = max(acc, v);
                        } else {
                            acc += v;
                        }
                    }
                }
            }
        }
        if max_pool {
            out[ABSOLUTE_POS] = acc;
        } else {
            out[ABSOLUTE_POS] = acc / F::cast_from(kh * kw);
        }
    }
}

fn pool_info(x: &DeviceTensor, win: &Window, out_hw: [usize; 2], total: usize) -> [u32; 12] {
    [
        total,
        x.shape[1],
        x.shape[2],
        x.shape[3],
        out_hw[0],
        out_hw[1],
        win.kernel[0],
        win.kernel[1],
        win.stride[0],
        win.stride[1],
        win.pad[0],
        win.pad[1],
    ]
    .map(|v| v as u32)
}

pub fn pool2d(
    device: &CubeDevice,
    x: &DeviceTensor,
    kind: PoolKind,
    win: &Window,
    out_shape: &[usize],
) -> Result<DeviceTensor, DeviceError> {
    let out = DeviceTensor::cube_empty(device, x.dtype, out_shape)?;
    let total = out.numel();
    if total == 0 {
        return Ok(out);
    }
    let x = movement::contiguous(device, x)?;
    let info = pool_info(&x, win, [out_shape[2], out_shape[3]], total);
    let client = device.client();
    let (count, dim) = cube_launch_dims(client, total);
    let (xh, xl) = super::buffer_of(&x)?;
    let (oh, ol) = super::buffer_of(&out)?;
    // SAFETY: reads are guarded inside the input plane; writes below total.
    unsafe {
        pool_kernel::launch_unchecked::<f32>(
            client,
            count,
            dim,
            BufferArg::from_raw_parts(xh, xl),
            BufferArg::from_raw_parts(oh, ol),
            info_arg(device, &info),
            kind == PoolKind::Max,
        );
    }
    Ok(out)
}

/// One unit per input element: sums `dy` of every window containing it (for max pooling, only
/// windows whose first maximum is this element). Same info as `pool_kernel`, n = x's size.
#[cube(launch_unchecked)]
fn pool_grad_kernel<F: Float>(x: &[F], dy: &[F], dx: &mut [F], info: &[u32], #[comptime] max_pool: bool) {
    let total = usize::cast_from(info[0]);
    if ABSOLUTE_POS < total {
        let h = i32::cast_from(info[2]);
        let w = i32::cast_from(info[3]);
        let oh = i32::cast_from(info[4]);
        let ow = i32::cast_from(info[5]);
        let kh = i32::cast_from(info[6]);
        let kw = i32::cast_from(info[7]);
        let sh = i32::cast_from(info[8]);
        let sw = i32::cast_from(info[9]);
        let ph = i32::cast_from(info[10]);
        let pw = i32::cast_from(info[11]);
        let ix = i32::cast_from(ABSOLUTE_POS) % w;
        let iy = (i32::cast_from(ABSOLUTE_POS) / w) % h;
        let plane = ABSOLUTE_POS / usize::cast_from(w * h);
        // Windows oy with oy*sh - ph <= iy < oy*sh - ph + kh.
        let oy_lo = max((iy + ph - kh + sh) / sh, 0i32);
        let oy_hi = min((iy + ph) / sh, oh - 1);
        let ox_lo = max((ix + pw - kw + sw) / sw, 0i32);
        let ox_hi = min((ix + pw) / sw, ow - 1);
        let mut acc = F::new(0.0);
        let mut oy = oy_lo;
        while oy <= oy_hi {
            let mut ox = ox_lo;
            while ox <= ox_hi {
                let g = dy[(plane * usize::cast_from(oh) + usize::cast_from(oy)) * usize::cast_from(ow)
                    + usize::cast_from(ox)];
                if max_pool {
                    // Find the window's first maximum (row-major, padding ignored).
                    let y0 = oy * sh - ph;
                    let x0 = ox * sw - pw;
                    let mut best = F::min_value();
                    let mut by = (-1i32).runtime();
                    let mut bx = (-1i32).runtime();
                    for ky in 0..kh {
                        let yy = y0 + ky;
                        if yy >= 0 && yy < h {
                            for kx in 0..kw {
                                let xx = x0 + kx;
                                if xx >= 0 && xx < w {
                                    let v = x[(plane * usize::cast_from(h) + usize::cast_from(yy))
                                        * usize::cast_from(w)
                                        + usize::cast_from(xx)];
                                    if v > best || by < 0 {
                                        best = v;
                                        by = yy;
                                        bx = xx;
                                    }
                                }
                            }
                        }
                    }
                    if by == iy && bx == ix {
                        acc += g;
                    }
                } else {
                    acc += g;
                }
                ox += 1i32;
            }
            oy += 1i32;
        }
        if max_pool {
            dx[ABSOLUTE_POS] = acc;
        } else {
            dx[ABSOLUTE_POS] = acc / F::cast_from(kh * kw);
        }
    }
}

pub fn pool2d_grad(
    device: &CubeDevice,
    x: &DeviceTensor,
    dy: &DeviceTensor,
    kind: PoolKind,
    win: &Window,
) -> Result<DeviceTensor, DeviceError> {
    let out = DeviceTensor::cube_empty(device, x.dtype, &x.shape)?;
    let total = out.numel();
    if total == 0 {
        return Ok(out);
    }
    if dy.numel() == 0 {
        return super::generate::fill(device, x.dtype, &x.shape, 0.0);
    }
    let x = movement::contiguous(device, x)?;
    let dy = movement::contiguous(device, dy)?;
    let info = pool_info(&x, win, [dy.shape[2], dy.shape[3]], total);
    let client = device.client();
    let (count, dim) = cube_launch_dims(client, total);
    let (xh, xl) = super::buffer_of(&x)?;
    let (dh, dl) = super::buffer_of(&dy)?;
    let (oh, ol) = super::buffer_of(&out)?;
    // SAFETY: window ranges are clamped to the output grid; x reads are guarded in the plane.
    unsafe {
        pool_grad_kernel::launch_unchecked::<f32>(
            client,
            count,
            dim,
            BufferArg::from_raw_parts(xh, xl),
            BufferArg::from_raw_parts(dh, dl),
            BufferArg::from_raw_parts(oh, ol),
            info_arg(device, &info),
            kind == PoolKind::Max,
        );
    }
    Ok(out)
}

/// Source coordinate and weight of bilinear (half-pixel, align_corners=False) sampling.
#[cube]
fn bilinear_src<F: Float>(o: usize, scale: usize, extent: usize) -> (usize, usize, F) {
    let src = max((F::cast_from(o) + F::new(0.5)) / F::cast_from(scale) - F::new(0.5), F::new(0.0));
    let i0 = usize::cast_from(src.floor());
    let i0c = min(i0, extent - 1);
    let i1 = min(i0c + 1, extent - 1);
    let lambda = src - F::cast_from(i0c);
    (i0c, i1, lambda)
}

/// info = [n, H, W, OH, OW, sy, sx]; x contiguous `[planes, H, W]`.
#[cube(launch_unchecked)]
fn upsample_kernel<F: Float>(x: &[F], out: &mut [F], info: &[u32], #[comptime] bilinear: bool) {
    let total = usize::cast_from(info[0]);
    if ABSOLUTE_POS < total {
        let h = usize::cast_from(info[1]);
        let w = usize::cast_from(info[2]);
        let oh = usize::cast_from(info[3]);
        let ow = usize::cast_from(info[4]);
        let sy = usize::cast_from(info[5]);
        let sx = usize::cast_from(info[6]);
        let ox = ABSOLUTE_POS % ow;
        let oy = (ABSOLUTE_POS / ow) % oh;
        let base = (ABSOLUTE_POS / (ow * oh)) * h * w;
        if bilinear {
            let (y0, y1, ly) = bilinear_src::<F>(oy, sy, h);
            let (x0, x1, lx) = bilinear_src::<F>(ox, sx, w);
            let one = F::new(1.0);
            let top = x[base + y0 * w + x0] * (one - lx) + x[base + y0 * w + x1] * lx;
            let bottom = x[base + y1 * w + x0] * (one - lx) + x[base + y1 * w + x1] * lx;
            out[ABSOLUTE_POS] = top * (one - ly) + bottom * ly;
        } else {
            out[ABSOLUTE_POS] = x[base + (oy / sy) * w + ox / sx];
        }
    }
}

/// One unit per small-image element, summing the output gradient that reaches it.
/// info = [n (small size), H, W, OH, OW, sy, sx].
#[cube(launch_unchecked)]
fn upsample_grad_kernel<F: Float>(dy: &[F], dx: &mut [F], info: &[u32], #[comptime] bilinear: bool) {
    let total = usize::cast_from(info[0]);
    if ABSOLUTE_POS < total {
        let h = usize::cast_from(info[1]);
        let w = usize::cast_from(info[2]);
        let oh = usize::cast_from(info[3]);
        let ow = usize::cast_from(info[4]);
        let sy = usize::cast_from(info[5]);
        let sx = usize::cast_from(info[6]);
        let ix = ABSOLUTE_POS % w;
        let iy = (ABSOLUTE_POS / w) % h;
        let base = (ABSOLUTE_POS / (w * h)) * oh * ow;
        let mut acc = F::new(0.0);
        if bilinear {
            let one = F::new(1.0);
            let oy_lo = select(iy > 0, (iy - 1) * sy, 0);
            let oy_hi = min((iy + 2) * sy, oh);
            let ox_lo = select(ix > 0, (ix - 1) * sx, 0);
            let ox_hi = min((ix + 2) * sx, ow);
            for oy in oy_lo..oy_hi {
                let (y0, y1, ly) = bilinear_src::<F>(oy, sy, h);
                let mut wy = F::new(0.0);
                if y0 == iy {
                    wy += one - ly;
                }
                if y1 == iy {
                    wy += ly;
                }
                if wy != F::new(0.0) {
                    for ox in ox_lo..ox_hi {
                        let (x0, x1, lx) = bilinear_src::<F>(ox, sx, w);
                        let mut wx = F::new(0.0);
                        if x0 == ix {
                            wx += one - lx;
                        }
                        if x1 == ix {
                            wx += lx;
                        }
                        acc += dy[base + oy * ow + ox] * wy * wx;
                    }
                }
            }
        } else {
            for dy_ in 0..sy {
                for dx_ in 0..sx {
                    acc += dy[base + (iy * sy + dy_) * ow + ix * sx + dx_];
                }
            }
        }
        dx[ABSOLUTE_POS] = acc;
    }
}

pub fn upsample(
    device: &CubeDevice,
    x: &DeviceTensor,
    mode: UpsampleMode,
    scale: [usize; 2],
    out_shape: &[usize],
) -> Result<DeviceTensor, DeviceError> {
    let out = DeviceTensor::cube_empty(device, x.dtype, out_shape)?;
    let total = out.numel();
    if total == 0 {
        return Ok(out);
    }
    let x = movement::contiguous(device, x)?;
    let info =
        [total, x.shape[2], x.shape[3], out_shape[2], out_shape[3], scale[0], scale[1]].map(|v| v as u32);
    let client = device.client();
    let (count, dim) = cube_launch_dims(client, total);
    let (xh, xl) = super::buffer_of(&x)?;
    let (oh, ol) = super::buffer_of(&out)?;
    // SAFETY: source coordinates are clamped into the input plane; writes below total.
    unsafe {
        upsample_kernel::launch_unchecked::<f32>(
            client,
            count,
            dim,
            BufferArg::from_raw_parts(xh, xl),
            BufferArg::from_raw_parts(oh, ol),
            info_arg(device, &info),
            mode == UpsampleMode::Bilinear,
        );
    }
    Ok(out)
}

pub fn upsample_grad(
    device: &CubeDevice,
    dy: &DeviceTensor,
    mode: UpsampleMode,
    scale: [usize; 2],
    out_shape: &[usize],
) -> Result<DeviceTensor, DeviceError> {
    let out = DeviceTensor::cube_empty(device, dy.dtype, out_shape)?;
    let total = out.numel();
    if total == 0 {
        return Ok(out);
    }
    let dy = movement::contiguous(device, dy)?;
    let info =
        [total, out_shape[2], out_shape[3], dy.shape[2], dy.shape[3], scale[0], scale[1]].map(|v| v as u32);
    let client = device.client();
    let (count, dim) = cube_launch_dims(client, total);
    let (dh, dl) = super::buffer_of(&dy)?;
    let (oh, ol) = super::buffer_of(&out)?;
    // SAFETY: output-gradient reads are bounded by the ranges clamped to [0, OH) x [0, OW).
    unsafe {
        upsample_grad_kernel::launch_unchecked::<f32>(
            client,
            count,
            dim,
            BufferArg::from_raw_parts(dh, dl),
            BufferArg::from_raw_parts(oh, ol),
            info_arg(device, &info),
            mode == UpsampleMode::Bilinear,
        );
    }
    Ok(out)
}
