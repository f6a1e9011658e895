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

use super::elementwise::{FusedProgram, Instr, exec_from};
use super::{info_arg, movement, strided_at};
use crate::device::{CubeDevice, Device, DeviceError, DeviceTensor};
use genc_compiler::prim::DType;

/// Comptime shape of the tiled kernel.
#[derive(CubeType, Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct TileConfig {
    pub tm: usize,
    pub tn: usize,
    /// The cube is `side x side` units.
    pub side: usize,
    /// B's column stride is 1 (lets the compiler see contiguous lanes).
    pub b_unit_cols: bool,
    /// B's column index splits into (outer, inner) with its own outer stride (an NCHW image
    /// read as `[C, N*H*W]`).
    pub b_split: bool,
    /// Likewise for C's column index on store (writing `[C, N*H*W]` straight into NCHW).
    pub c_split: bool,
}

/// The cube side of the tiled kernel: `GENC_MATMUL_SIDE` (4..=32) or 8.
fn cube_side() -> usize {
    std::env::var("GENC_MATMUL_SIDE")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|s| (4..=32).contains(s))
        .unwrap_or(8)
}

/// The comptime key of a store: the epilogue program and how its inputs are read.
#[derive(CubeType, Clone, Debug, Hash, PartialEq, Eq)]
pub struct StoreConfig {
    instrs: Sequence<Instr>,
    /// The register each output takes: `outs[0]` is C.
    outputs: Sequence<usize>,
    /// Per input: a contiguous tensor of C's shape, read at the element's own position.
    contiguous: Sequence<bool>,
    /// C's rank, for the strided inputs' index arithmetic.
    rank: usize,
    /// No program: each element goes straight to C.
    plain: bool,
}

/// Where the epilogue's part of `info` starts: C's shape triples, then per input its offset
/// and strides.
const EPILOGUE_INFO: usize = 18;

/// info = [M, N, K, a_off, a_sb, a_sm, a_sk, b_off, b_sb, b_sk, b_sn, c_sb, c_sm, b_inner,
/// b_outer_stride, c_inner, c_outer_stride, c_off, then the epilogue's: C's shape triples,
/// per strided input: offset, strides]; C's column stride is 1. Each finished element goes
/// through the store program (register 0 the element, then `inputs` at its position) into
/// `outs`, at the element's address in C (which is its position in C's shape whenever the
/// program has inputs or more than one output: C is then a whole fresh tensor).
#[cube(launch_unchecked)]
fn tiled_matmul_kernel<F: Float, N: Size>(
    a: &[F],
    b: &[F],
    inputs: &Sequence<Box<[F]>>,
    outs: &mut Sequence<Box<[F]>>,
    info: &[u32],
    #[comptime] cfg: TileConfig,
    #[comptime] store: StoreConfig,
) {
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
        let col = min(col0 + j * cfg.side, n - 1);
        if cfg.b_split {
            let inner = usize::cast_from(info[13]);
            let outer = col / inner;
            bcol.push(b_base + outer * usize::cast_from(info[14]) + (col - outer * inner) * b_sn);
        } else if cfg.b_unit_cols {
            bcol.push(b_base + col);
        } else {
            bcol.push(b_base + col * b_sn);
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
    let c_base = usize::cast_from(info[17]) + batch * usize::cast_from(info[11]);
    let c_sm = usize::cast_from(info[12]);
    if comptime!(store.plain) {
        let c = outs.index_mut(0);
        #[unroll]
        for i in 0..cfg.tm {
            let r = row0 + i * cfg.side;
            #[unroll]
            for j in 0..cfg.tn {
                let col = col0 + j * cfg.side;
                if r < m && col < n {
                    c[c_address(r, col, c_base, c_sm, info, cfg.c_split)] = acc.index(i).index(j).read();
                }
            }
        }
    } else {
        // One copy of the program in a loop over the tile (unrolled per element, a 32 x 16
        // tile made shaders that took lavapipe minutes to compile).
        let elems = comptime!(cfg.tm * cfg.tn);
        let mut tile = Array::<F>::new(elems);
        #[unroll]
        for i in 0..cfg.tm {
            #[unroll]
            for j in 0..cfg.tn {
                tile[i * cfg.tn + j] = acc.index(i).index(j).read();
            }
        }
        // info[0] < 2^31, so this is 0 at run time but not a constant.
        let runtime_zero = Vector::<F, N>::new(F::cast_from(info[0] >> 31u32));
        for t in 0..elems {
            let r = row0 + (t / cfg.tn) * cfg.side;
            let col = col0 + (t % cfg.tn) * cfg.side;
            if r < m && col < n {
                let at = c_address(r, col, c_base, c_sm, info, cfg.c_split);
                let mut regs = Sequence::<Vector<F, N>>::new();
                regs.push(Vector::<F, N>::new(tile[t]));
                let rank = comptime!(store.rank);
                #[unroll]
                for e in 0..inputs.len() {
                    let input = inputs.index(e);
                    if comptime!(*store.contiguous.index(e)) {
                        regs.push(Vector::<F, N>::new(input[at]));
                    } else {
                        let base = EPILOGUE_INFO + 3 * rank + e * (rank + 1);
                        let pos =
                            strided_at(at, info, EPILOGUE_INFO, base + 1, usize::cast_from(info[base]), rank);
                        regs.push(Vector::<F, N>::new(input[pos]));
                    }
                }
                exec_from::<F, N>(&mut regs, runtime_zero, store.instrs.clone(), 0usize);
                #[unroll]
                for o in 0..outs.len() {
                    let reg = comptime!(*store.outputs.index(o));
                    let out = outs.index_mut(o);
                    out[at] = regs.index(reg).extract(0usize);
                }
            }
        }
    }
}

/// Where C's element `(r, col)` of the current batch lies (see `tiled_matmul_kernel`'s info).
#[cube]
fn c_address(
    r: usize,
    col: usize,
    c_base: usize,
    c_sm: usize,
    info: &[u32],
    #[comptime] c_split: bool,
) -> usize {
    let mut at = c_base + r * c_sm + col;
    if c_split {
        let inner = usize::cast_from(info[15]);
        let outer = col / inner;
        at = c_base + r * c_sm + outer * usize::cast_from(info[16]) + (col - outer * inner);
    }
    at
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

/// What the tiled kernel does with each finished element of C: a fused program whose
/// register 0 is the element and registers `1..=inputs.len()` the inputs at its position; its
/// outputs are stored, the first into C. [`Epilogue::store`] stores the element as it is.
#[derive(Clone, Debug)]
pub struct Epilogue {
    pub program: FusedProgram,
    /// Tensors broadcastable to C's shape.
    pub inputs: Vec<DeviceTensor>,
    /// One per program output.
    pub dtypes: Vec<DType>,
}

impl Epilogue {
    /// The plain store.
    pub fn store(dtype: DType) -> Epilogue {
        Epilogue {
            program: FusedProgram { n_inputs: 1, instrs: Vec::new(), outputs: vec![0] },
            inputs: Vec::new(),
            dtypes: vec![dtype],
        }
    }

    fn is_store(&self) -> bool {
        self.program.instrs.is_empty() && self.program.outputs == [0]
    }

    /// The buffers a matmul with this epilogue binds: A, B, the inputs, the outputs, the info.
    pub fn bindings(&self) -> usize {
        3 + self.inputs.len() + self.program.outputs.len()
    }

    /// The program run after the fact on a finished C, for the paths that store plainly.
    pub fn apply(&self, device: &CubeDevice, c: DeviceTensor) -> Result<Vec<DeviceTensor>, DeviceError> {
        if self.is_store() {
            return Ok(vec![c]);
        }
        let shape = c.shape.clone();
        let ins: Vec<&DeviceTensor> = std::iter::once(&c).chain(&self.inputs).collect();
        super::elementwise::run_fused_cube(device, &self.program, &ins, &shape, &self.dtypes)
    }

    /// Fresh tensors of `shape` for the outputs, C first.
    pub fn outputs(&self, device: &CubeDevice, shape: &[usize]) -> Result<Vec<DeviceTensor>, DeviceError> {
        self.dtypes.iter().map(|&dt| DeviceTensor::cube_empty(device, dt, shape)).collect()
    }
}

/// `a [.., M, K] @ b [.., K, N]` (transposes already applied as views), batch axes equal.
/// `path` picks the Vulkan kernel; the host device has one.
pub fn matmul(
    device: &Device,
    a: &DeviceTensor,
    b: &DeviceTensor,
    out_shape: &[usize],
    path: MatmulPath,
) -> Result<DeviceTensor, DeviceError> {
    match device {
        Device::Cube(d) => matmul_cube(d, a, b, out_shape, path),
        Device::Host(h) => {
            let prim = genc_compiler::prim::Prim::MatMul { transpose_a: false, transpose_b: false };
            h.eval(&prim, &[a, b], out_shape, a.dtype, &super::Leaves::default())
        }
    }
}

pub(crate) fn matmul_cube(
    device: &CubeDevice,
    a: &DeviceTensor,
    b: &DeviceTensor,
    out_shape: &[usize],
    path: MatmulPath,
) -> Result<DeviceTensor, DeviceError> {
    let mut outs = matmul_with(device, a, b, out_shape, path, &Epilogue::store(a.dtype))?;
    outs.pop().ok_or_else(|| DeviceError::Kernel { op: "matmul".into(), reason: "no output".into() })
}

/// [`matmul`] storing through `epi`: returns the epilogue's outputs, C's first. The cubek path
/// stores plainly and runs the epilogue as a kernel of its own.
pub fn matmul_with(
    device: &CubeDevice,
    a: &DeviceTensor,
    b: &DeviceTensor,
    out_shape: &[usize],
    path: MatmulPath,
    epi: &Epilogue,
) -> Result<Vec<DeviceTensor>, DeviceError> {
    if out_shape.iter().product::<usize>() == 0 {
        return epi.outputs(device, out_shape);
    }
    let r = a.shape.len();
    let kk = a.shape[r - 1];
    if kk == 0 {
        return epi.apply(device, super::generate::fill(device, a.dtype, out_shape, 0.0)?);
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
        let out = DeviceTensor::cube_empty(device, a.dtype, out_shape)?;
        let c = cubek_matmul(device, &a, &b, ash, ast, bsh, bst, out)?;
        return epi.apply(device, c);
    }
    let al = MatLayout { offset: a.offset, batch: ast[0], rows: ast[1], cols: ast[2], split: None };
    let bl = MatLayout { offset: b.offset, batch: bst[0], rows: bst[1], cols: bst[2], split: None };
    let cl = MatLayout { offset: 0, batch: m * n, rows: n, cols: 1, split: None };
    let outs = epi.outputs(device, out_shape)?;
    matmul_into_with(device, (&a, al), (&b, bl), (&outs, cl), [batch, m, kk, n], path, epi)?;
    Ok(outs)
}

/// How a batch of matrices lies in a buffer: element `(t, r, c)` is at
/// `offset + t * batch + r * rows + c * cols`, or, with `split = Some((inner, outer))`,
/// at `offset + t * batch + r * rows + (c / inner) * outer + (c % inner) * cols`.
#[derive(Clone, Copy, Debug)]
pub struct MatLayout {
    pub offset: usize,
    pub batch: usize,
    pub rows: usize,
    pub cols: usize,
    pub split: Option<(usize, usize)>,
}

/// The tiled kernel on explicit layouts: `c[t] = a[t] @ b[t]` for `dims = [batch, m, k, n]`.
/// A may not split its columns; C's column stride must be 1.
pub fn matmul_into(
    device: &CubeDevice,
    a: (&DeviceTensor, MatLayout),
    b: (&DeviceTensor, MatLayout),
    (c, cl): (&DeviceTensor, MatLayout),
    dims: [usize; 4],
    path: MatmulPath,
) -> Result<(), DeviceError> {
    let outs = [c.clone()];
    matmul_into_with(device, a, b, (&outs, cl), dims, path, &Epilogue::store(c.dtype))
}

/// [`matmul_into`] storing through `epi` into `outs` (C first). With a non-trivial epilogue
/// every output is a whole fresh tensor of `epi`'s shape (C's), and `cl` addresses C's
/// elements at their positions in it.
pub fn matmul_into_with(
    device: &CubeDevice,
    (a, al): (&DeviceTensor, MatLayout),
    (b, bl): (&DeviceTensor, MatLayout),
    (outs, cl): (&[DeviceTensor], MatLayout),
    dims: [usize; 4],
    path: MatmulPath,
    epi: &Epilogue,
) -> Result<(), DeviceError> {
    let c = outs
        .first()
        .ok_or_else(|| DeviceError::Kernel { op: "matmul".into(), reason: "no output".into() })?;
    let [batch, m, kk, n] = dims;
    if batch * m * n == 0 {
        return Ok(());
    }
    if al.split.is_some() || cl.cols != 1 {
        return Err(DeviceError::Kernel { op: "matmul".into(), reason: "unsupported layout".into() });
    }
    let (tm, tn) = match path {
        MatmulPath::Tiled { tm, tn } => (tm, tn),
        MatmulPath::Auto | MatmulPath::Cubek => auto_tile(m, n),
    };
    let (b_inner, b_outer) = bl.split.unwrap_or((1, 0));
    let (c_inner, c_outer) = cl.split.unwrap_or((1, 0));
    let info = [
        m,
        n,
        kk,
        al.offset,
        al.batch,
        al.rows,
        al.cols,
        bl.offset,
        bl.batch,
        bl.rows,
        bl.cols,
        cl.batch,
        cl.rows,
        b_inner.max(1),
        b_outer,
        c_inner.max(1),
        c_outer,
        cl.offset,
    ]
    .map(|v| v as u32);
    let inputs: Vec<DeviceTensor> = epi.inputs.iter().map(|t| t.broadcast_to(&c.shape)).collect();
    let (info, store) = store_config(&info, epi, &inputs, &c.shape);
    let side = cube_side();
    let cfg = TileConfig {
        tm,
        tn,
        side,
        b_unit_cols: bl.cols == 1,
        b_split: bl.split.is_some(),
        c_split: cl.split.is_some(),
    };
    let count = CubeCount::Static(n.div_ceil(side * tn) as u32, m.div_ceil(side * tm) as u32, batch as u32);
    let dim = CubeDim::new_2d(side as u32, side as u32);
    let (ah, al_) = super::buffer_of(a)?;
    let (bh, bl_) = super::buffer_of(b)?;
    // SAFETY: loads clamp rows to m - 1 and columns to n - 1 and k < K, which the layouts map
    // inside their buffers; stores are guarded by r < m and col < n, and go to the same
    // position of every output, each at least as large as C; an epilogue input is read at
    // that position (contiguous inputs of C's shape) or through its strides at the position's
    // coordinates in C's shape, inside the view.
    unsafe {
        tiled_matmul_kernel::launch_unchecked::<f32>(
            device.client(),
            count,
            dim,
            1,
            BufferArg::from_raw_parts(ah, al_),
            BufferArg::from_raw_parts(bh, bl_),
            super::buffers_arg(&inputs)?,
            super::buffers_arg(outs)?,
            info_arg(device, &info),
            cfg,
            store,
        );
    }
    Ok(())
}

/// The store program's comptime key, and `info` extended with C's shape and the strided
/// inputs' offsets and strides; `views` are the epilogue's inputs broadcast to C's shape.
fn store_config(
    info: &[u32],
    epi: &Epilogue,
    views: &[DeviceTensor],
    c_shape: &[usize],
) -> (Vec<u32>, StoreConfig) {
    let mut info = info.to_vec();
    let mut contiguous = Sequence::new();
    let rank = if views.iter().all(DeviceTensor::is_contiguous) { 0 } else { c_shape.len() };
    info.extend(super::shape_info(&c_shape[..rank]));
    for v in views {
        contiguous.push(v.is_contiguous());
        info.push(v.offset as u32);
        // A broadcast view has C's rank, so each input's block is `rank + 1` long.
        info.extend(v.strides.iter().take(rank).map(|&s| s as u32));
    }
    let mut instrs = Sequence::new();
    for &instr in &epi.program.instrs {
        instrs.push(instr);
    }
    let mut outputs = Sequence::new();
    for &r in &epi.program.outputs {
        outputs.push(r);
    }
    (info, StoreConfig { instrs, outputs, contiguous, rank, plain: epi.is_store() })
}

#[allow(clippy::too_many_arguments)]
fn cubek_matmul(
    device: &CubeDevice,
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
