//! Batched matrix products: a register-tiled kernel written for lavapipe, and cubek's matmul.
//!
//! The tiled kernel: a cube of 8 x 8 units computes an `8*TM x 8*TN` block of C; each unit
//! keeps a `TM x TN` tile of accumulators. A unit's columns are interleaved
//! (`col0 + x + 8 * j`), so the 8 SIMD lanes llvmpipe runs side by side (one row of the cube)
//! read consecutive elements of B, and all lanes of a row read the same element of A. On
//! lavapipe the cost is in the per-lane loads, not the arithmetic, so large tiles win: 32 x 16
//! (512 FMAs per 48 loads) measured about 2x cubek's matmul; see [`auto_tile`]. Any strides work
//! (transposes are stride swaps, a broadcast batch has stride 0), and out-of-range rows and
//! columns are clamped on load and skipped on store, so no shape needs padding.
//!
//! cubek's matmul (`Strategy::Auto`, which falls back to its unit/register-tiled routine
//! where there are no tensor cores) handles views with offset 0; [`MatmulPath`] picks the path.

use cubecl::prelude::*;

use super::{info_arg, movement};
use crate::device::{Device, DeviceError, DeviceTensor};

/// Comptime shape of the tiled kernel.
#[derive(CubeType, Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct TileConfig {
    pub tm: usize,
    pub tn: usize,
    /// The cube is `side x side` units.
    pub side: usize,
    /// B's column stride is 1 (lets the compiler see contiguous lanes).
    pub b_unit_cols: bool,
}

/// The cube side of the tiled kernel: `GENC_MATMUL_SIDE` (4..=32) or 8.
fn cube_side() -> usize {
    std::env::var("GENC_MATMUL_SIDE")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|s| (4..=32).contains(s))
        .unwrap_or(8)
}

/// info = [M, N, K, a_off, a_sb, a_sm, a_sk, b_off, b_sb, b_sk, b_sn, c_sb, c_sm]; C's column
/// stride is 1 and its offset 0.
#[cube(launch_unchecked)]
fn tiled_matmul_kernel<F: Float>(a: &[F], b: &[F], c: &mut [F], info: &[u32], #[comptime] cfg: TileConfig) {
    let m = usize::cast_from(info[0]);
    let n = usize::cast_from(info[1]);
    let kk = usize::cast_from(info[2]);
    let batch = usize::cast_from(CUBE_POS_Z);
    let row0 = usize::cast_from(CUBE_POS_Y) * (cfg.side * cfg.tm) + usize::cast_from(UNIT_POS_Y);
    let col0 = usize::cast_from(CUBE_POS_X) * (cfg.side * cfg.tn) + usize::cast_from(UNIT_POS_X);
    let a_base = usize::cast_from(info[3]) + batch * usize::cast_from(info[4]);
    let a_sm = usize::cast_from(info[5]);
    let a_sk = usize::cast_from(info[6]);
    let b_base = usize::cast_from(info[7]) + batch * usize::cast_from(info[8]);
    let b_sk = usize::cast_from(info[9]);
    let b_sn = usize::cast_from(info[10]);

    let mut arow = Sequence::<usize>::new();
    #[unroll]
    for i in 0..cfg.tm {
        arow.push(a_base + min(row0 + i * cfg.side, m - 1) * a_sm);
    }
    let mut bcol = Sequence::<usize>::new();
    #[unroll]
    for j in 0..cfg.tn {
        if cfg.b_unit_cols {
            bcol.push(b_base + min(col0 + j * cfg.side, n - 1));
        } else {
            bcol.push(b_base + min(col0 + j * cfg.side, n - 1) * b_sn);
        }
    }
    let mut acc = Sequence::<Sequence<RuntimeCell<F>>>::new();
    #[unroll]
    for _i in 0..cfg.tm {
        let mut row = Sequence::<RuntimeCell<F>>::new();
        #[unroll]
        for _j in 0..cfg.tn {
            row.push(RuntimeCell::<F>::new(F::new(0.0)));
        }
        acc.push(row);
    }
    for k in 0..kk {
        let mut bv = Sequence::<F>::new();
        #[unroll]
        for j in 0..cfg.tn {
            bv.push(b[*bcol.index(j) + k * b_sk]);
        }
        #[unroll]
        for i in 0..cfg.tm {
            let av = a[*arow.index(i) + k * a_sk];
            let row = acc.index(i);
            #[unroll]
            for j in 0..cfg.tn {
                let cell = row.index(j);
                cell.store(cell.read() + av * *bv.index(j));
            }
        }
    }
    let c_base = batch * usize::cast_from(info[11]);
    let c_sm = usize::cast_from(info[12]);
    #[unroll]
    for i in 0..cfg.tm {
        let r = row0 + i * cfg.side;
        #[unroll]
        for j in 0..cfg.tn {
            let col = col0 + j * cfg.side;
            if r < m && col < n {
                c[c_base + r * c_sm + col] = acc.index(i).index(j).read();
            }
        }
    }
}

/// Which implementation multiplies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatmulPath {
    /// The tiled kernel with a tile chosen from the shape (the default).
    Auto,
    /// The register-tiled kernel above, with its tile shape.
    Tiled { tm: usize, tn: usize },
    /// cubek's `Strategy::Auto`.
    Cubek,
}

/// The path used when the caller does not choose. `GENC_MATMUL=cubek` or
/// `GENC_MATMUL=tiled:TMxTN` (e.g. `tiled:8x4`) overrides it.
pub fn default_path() -> MatmulPath {
    let var = std::env::var("GENC_MATMUL").unwrap_or_default();
    if var == "cubek" {
        return MatmulPath::Cubek;
    }
    let tile = var.strip_prefix("tiled:").and_then(|t| t.split_once('x')).and_then(|(tm, tn)| {
        let (tm, tn) = (tm.parse::<usize>().ok()?, tn.parse::<usize>().ok()?);
        ((1..=64).contains(&tm) && (1..=64).contains(&tn)).then_some(MatmulPath::Tiled { tm, tn })
    });
    tile.unwrap_or(DEFAULT_PATH)
}

/// The default: the tiled kernel, which beats cubek on lavapipe in `make bench-kernels`
/// (see runtime/README.md).
pub const DEFAULT_PATH: MatmulPath = MatmulPath::Auto;

/// The tile for an `m x n` output: the largest measured-best tile (32 x 16, about 2x cubek
/// on lavapipe) for large outputs, smaller ones where a big tile would be mostly padding.
/// Few distinct tiles keep the number of compiled kernels small.
pub fn auto_tile(m: usize, n: usize) -> (usize, usize) {
    let tm = if m >= 192 {
        32
    } else if m >= 64 {
        16
    } else {
        4
    };
    let tn = if n >= 96 { 16 } else { 4 };
    (tm, tn)
}

/// Collapses a view of rank >= 3 to `[batch, rows, cols]` when its batch axes merge into one
/// stride; `None` otherwise.
fn as_batched(t: &DeviceTensor) -> Option<([usize; 3], [usize; 3])> {
    let r = t.shape.len();
    let (rows, cols) = (t.shape[r - 2], t.shape[r - 1]);
    let (srow, scol) = (t.strides[r - 2], t.strides[r - 1]);
    let batch: usize = t.shape[..r - 2].iter().product();
    let mut sbatch = 0;
    let mut expected: Option<usize> = None;
    for d in (0..r - 2).rev() {
        if t.shape[d] == 1 {
            continue;
        }
        match expected {
            None => sbatch = t.strides[d],
            Some(e) if e == t.strides[d] => {}
            Some(_) => return None,
        }
        expected = Some(t.strides[d] * t.shape[d]);
    }
    Some(([batch, rows, cols], [sbatch, srow, scol]))
}

/// `a [.., M, K] @ b [.., K, N]` (transposes already applied as views), batch axes equal.
pub fn matmul(
    device: &Device,
    a: &DeviceTensor,
    b: &DeviceTensor,
    out_shape: &[usize],
    path: MatmulPath,
) -> Result<DeviceTensor, DeviceError> {
    let out = DeviceTensor::empty(device, a.dtype, out_shape);
    if out.numel() == 0 {
        return Ok(out);
    }
    let r = a.shape.len();
    let kk = a.shape[r - 1];
    if kk == 0 {
        return super::generate::fill(device, a.dtype, out_shape, 0.0);
    }
    let a = match as_batched(a) {
        Some(_) => a.clone(),
        None => movement::materialize(device, a)?,
    };
    let b = match as_batched(b) {
        Some(_) => b.clone(),
        None => movement::materialize(device, b)?,
    };
    let (Some((ash, ast)), Some((bsh, bst))) = (as_batched(&a), as_batched(&b)) else {
        return Err(DeviceError::Kernel { op: "matmul".into(), reason: "unmergeable batch axes".into() });
    };
    let [batch, m, _] = ash;
    let n = bsh[2];
    if path == MatmulPath::Cubek && a.offset == 0 && b.offset == 0 {
        return cubek_matmul(device, &a, &b, ash, ast, bsh, bst, out);
    }
    let (tm, tn) = match path {
        MatmulPath::Tiled { tm, tn } => (tm, tn),
        MatmulPath::Auto | MatmulPath::Cubek => auto_tile(m, n),
    };
    let info = [
        m as u32,
        n as u32,
        kk as u32,
        a.offset as u32,
        ast[0] as u32,
        ast[1] as u32,
        ast[2] as u32,
        b.offset as u32,
        bst[0] as u32,
        bst[1] as u32,
        bst[2] as u32,
        (m * n) as u32,
        n as u32,
    ];
    let side = cube_side();
    let cfg = TileConfig { tm, tn, side, b_unit_cols: bst[2] == 1 };
    let count = CubeCount::Static(n.div_ceil(side * tn) as u32, m.div_ceil(side * tm) as u32, batch as u32);
    let dim = CubeDim::new_2d(side as u32, side as u32);
    let (ah, al) = super::buffer_of(&a)?;
    let (bh, bl) = super::buffer_of(&b)?;
    let (oh, ol) = super::buffer_of(&out)?;
    // SAFETY: loads clamp rows to m - 1 and columns to n - 1 and k < K, all inside the views;
    // stores are guarded by r < m and col < n and land in the contiguous output.
    unsafe {
        tiled_matmul_kernel::launch_unchecked::<f32>(
            device.client(),
            count,
            dim,
            BufferArg::from_raw_parts(ah, al),
            BufferArg::from_raw_parts(bh, bl),
            BufferArg::from_raw_parts(oh, ol),
            info_arg(device, &info),
            cfg,
        );
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
fn cubek_matmul(
    device: &Device,
    a: &DeviceTensor,
    b: &DeviceTensor,
    ash: [usize; 3],
    ast: [usize; 3],
    bsh: [usize; 3],
    bst: [usize; 3],
    out: DeviceTensor,
) -> Result<DeviceTensor, DeviceError> {
    use cubecl::ir::{ElemType, FloatKind};
    use cubek::matmul::definition::MatmulElems;
    use cubek::matmul::launch::launch_ref;
    use cubek::matmul::strategy::Strategy;
    use cubek::std::InputBinding;
    let f32_type = ElemType::Float(FloatKind::F32);
    let (ah, _) = super::buffer_of(a)?;
    let (bh, _) = super::buffer_of(b)?;
    let (oh, _) = super::buffer_of(&out)?;
    let (m, n) = (ash[1], bsh[2]);
    // SAFETY: the shapes and strides describe the views exactly, all offsets are 0.
    let (lhs, rhs, dst) = unsafe {
        (
            TensorBinding::from_raw_parts(ah, ast.to_vec().into(), ash.to_vec().into()),
            TensorBinding::from_raw_parts(bh, bst.to_vec().into(), bsh.to_vec().into()),
            TensorBinding::from_raw_parts(oh, vec![m * n, n, 1].into(), vec![ash[0], m, n].into()),
        )
    };
    let mut elems = MatmulElems::from_single_dtype(f32_type);
    launch_ref(
        &Strategy::Auto,
        device.client(),
        InputBinding::new(lhs, f32_type),
        InputBinding::new(rhs, f32_type),
        dst,
        &mut elems,
    )
    .map_err(|e| DeviceError::Kernel { op: "matmul (cubek)".into(), reason: format!("{e:?}") })?;
    Ok(out)
}
