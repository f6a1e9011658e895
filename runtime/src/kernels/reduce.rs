//! Reductions over any set of axes, deterministic.
//!
//! The input view is permuted so the reduced axes come last and made contiguous (no copy when
//! it already is), which turns every reduction into rows: `rows x len`. One unit reduces one
//! row in index order, so results are bit-identical run to run and ArgMax/ArgMin keep the
//! first (lowest-index) extreme. Long rows with few outputs (a loss's mean over a batch) are
//! split in two stages: partial results over fixed chunks, then a reduction of the partials —
//! still a fixed order.
//!
//! cubek's reduce is not used: it reduces one axis per launch, and this kernel gives the exact
//! tie rule and the summation order the reference interpreter is compared against.
//!
//! **Fused reductions** ([`run_fused_reduce`]) put an element-wise program in front of the
//! reduction (its prologue): each unit walks its row through strided views of the program's
//! inputs, evaluates the program per element with the fused kernel's register machine, folds
//! the chosen register into its accumulator and writes the registers the program must also
//! output. No input is made contiguous first, and the reduced values never reach memory.

use cubecl::prelude::*;
use genc_compiler::prim::{DType, ReduceOp};

use super::elementwise::{FusedProgram, Instr, exec_from};
use super::{cube_launch_dims, fast_div, info_arg, movement};
use crate::device::{CubeDevice, Device, DeviceError, DeviceTensor};

/// The comptime form of a reduction.
#[derive(CubeType, Clone, Copy, Debug, Hash, PartialEq, Eq)]
enum RedOp {
    Sum,
    Prod,
    Max,
    Min,
    ArgMax,
    ArgMin,
}

/// info = [rows, len, chunk]: output `row * chunks + c` reduces elements
/// `row * len + c * chunk .. min(+chunk, len)`; `chunks = ceil(len / chunk)`.
/// params = [scale]: the result is multiplied by it (1/len for a mean).
#[cube(launch_unchecked)]
fn reduce_kernel<F: Float>(input: &[F], output: &mut [F], params: &[F], info: &[u32], #[comptime] op: RedOp) {
    let rows = usize::cast_from(info[0]);
    let len = usize::cast_from(info[1]);
    let chunk = usize::cast_from(info[2]);
    #[allow(clippy::manual_div_ceil)]
    let chunks = (len + chunk - 1) / chunk;
    if ABSOLUTE_POS < rows * chunks {
        let row = ABSOLUTE_POS / chunks;
        let c = ABSOLUTE_POS % chunks;
        let start = c * chunk;
        let end = min(start + chunk, len);
        let base = row * len;
        let mut acc = input[base + start];
        let mut best = start;
        for k in start + 1..end {
            let v = input[base + k];
            match op {
                RedOp::Sum => acc += v,
                RedOp::Prod => acc *= v,
                RedOp::Max => acc = max(acc, v),
                RedOp::Min => acc = min(acc, v),
                RedOp::ArgMax => {
                    if v > acc {
                        acc = v;
                        best = k;
                    }
                }
                RedOp::ArgMin => {
                    if v < acc {
                        acc = v;
                        best = k;
                    }
                }
            }
        }
        match op {
            RedOp::ArgMax => output[ABSOLUTE_POS] = F::cast_from(best),
            RedOp::ArgMin => output[ABSOLUTE_POS] = F::cast_from(best),
            _ => output[ABSOLUTE_POS] = acc * params[0],
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn launch_rows(
    device: &CubeDevice,
    input: &DeviceTensor,
    rows: usize,
    len: usize,
    chunk: usize,
    op: RedOp,
    scale: f32,
    out: &DeviceTensor,
) -> Result<(), DeviceError> {
    let units = rows * len.div_ceil(chunk);
    let client = device.client();
    let (count, dim) = cube_launch_dims(client, units);
    let (ih, il) = super::buffer_of(input)?;
    let (oh, ol) = super::buffer_of(out)?;
    // SAFETY: each unit reads row * len + [start, end) with end <= len, and writes one slot
    // below rows * chunks, the output's size.
    unsafe {
        reduce_kernel::launch_unchecked::<f32>(
            client,
            count,
            dim,
            BufferArg::from_raw_parts(ih, il),
            BufferArg::from_raw_parts(oh, ol),
            super::params_arg(device, &[scale]),
            info_arg(device, &[rows as u32, len as u32, chunk as u32]),
            op,
        );
    }
    Ok(())
}

/// Reduces `x` over `axes` (sorted, distinct), keeping them with extent 1.
pub fn reduce(
    device: &CubeDevice,
    x: &DeviceTensor,
    op: ReduceOp,
    axes: &[usize],
    out_shape: &[usize],
    out_dtype: DType,
) -> Result<DeviceTensor, DeviceError> {
    let rank = x.shape.len();
    let rows: usize = out_shape.iter().product();
    let len: usize = axes.iter().map(|&a| x.shape[a]).product();
    if rows == 0 {
        return DeviceTensor::cube_empty(device, out_dtype, out_shape);
    }
    if len == 0 {
        return super::generate::fill(device, out_dtype, out_shape, identity(op));
    }
    let mut perm: Vec<usize> = (0..rank).filter(|a| !axes.contains(a)).collect();
    perm.extend_from_slice(axes);
    let input = movement::contiguous(device, &x.permuted(&perm))?;
    let (red, scale, _) = red_op(op, len);
    let out = DeviceTensor::cube_empty(device, out_dtype, out_shape)?;
    let chunk = chunk_len(rows, len, red);
    if chunk < len {
        let chunks = len.div_ceil(chunk);
        let partial = DeviceTensor::cube_empty(device, DType::F32, &[rows, chunks])?;
        launch_rows(device, &input, rows, len, chunk, red, 1.0, &partial)?;
        launch_rows(device, &partial, rows, chunks, chunks, red, scale, &out)?;
    } else {
        launch_rows(device, &input, rows, len, len, red, scale, &out)?;
    }
    Ok(out)
}

/// The elements one unit reduces in the first stage: the whole row, or (long rows with few
/// outputs, a loss's mean over a batch) fixed chunks whose partials a second stage reduces.
/// ArgMax/ArgMin stay in one stage: their partials would lose the index.
fn chunk_len(rows: usize, len: usize, op: RedOp) -> usize {
    let two_stage = rows < 512 && len >= 8192 && !matches!(op, RedOp::ArgMax | RedOp::ArgMin);
    if two_stage { 1024 } else { len }
}

/// The chunk of a fused reduction's first stage. Its rows carry the prologue's work too, so it
/// splits rows sooner than [`chunk_len`]: rows under 4096 longer than 512 go in chunks of 128
/// (at most 4096 partials per row), which keeps a batch-norm statistic (256 rows of 6272) or a
/// loss mean (one row) spread over thousands of units. On lavapipe the two rules measured
/// alike; the finer split is for devices with more lanes than two CPU cores have.
fn fused_chunk_len(rows: usize, len: usize, op: RedOp) -> usize {
    let two_stage = rows < 4096 && len >= 512 && !matches!(op, RedOp::ArgMax | RedOp::ArgMin);
    if two_stage { len.div_ceil(4096).max(128) } else { len }
}

/// The comptime form of a reduction with its result scale and starting value.
fn red_op(op: ReduceOp, len: usize) -> (RedOp, f32, f32) {
    match op {
        ReduceOp::Sum => (RedOp::Sum, 1.0, 0.0),
        ReduceOp::Mean => (RedOp::Sum, 1.0 / len as f32, 0.0),
        ReduceOp::Max => (RedOp::Max, 1.0, f32::NEG_INFINITY),
        ReduceOp::Min => (RedOp::Min, 1.0, f32::INFINITY),
        ReduceOp::Prod => (RedOp::Prod, 1.0, 1.0),
        ReduceOp::ArgMax => (RedOp::ArgMax, 1.0, f32::NEG_INFINITY),
        ReduceOp::ArgMin => (RedOp::ArgMin, 1.0, f32::INFINITY),
    }
}

/// What an empty reduction gives (argmax of nothing: index 0).
fn identity(op: ReduceOp) -> f32 {
    match op {
        ReduceOp::Sum | ReduceOp::ArgMax | ReduceOp::ArgMin => 0.0,
        ReduceOp::Mean => f32::NAN,
        ReduceOp::Prod => 1.0,
        ReduceOp::Max => f32::NEG_INFINITY,
        ReduceOp::Min => f32::INFINITY,
    }
}

// ---- fused reductions --------------------------------------------------------------------

/// The comptime key of one compiled fused reduction.
#[derive(CubeType, Clone, Debug, Hash, PartialEq, Eq)]
pub struct FusedReduceConfig {
    instrs: Sequence<Instr>,
    n_inputs: usize,
    /// Per input: it has stride 0 along every reduced axis, so one read per row serves all.
    invariant: Sequence<bool>,
    /// The registers also written as element-wise outputs.
    outputs: Sequence<usize>,
    /// The reductions, each into its own result.
    folds: Sequence<Fold>,
    /// Ranks of the row space: kept axes (which row) and reduced axes (where in the row).
    outer: usize,
    inner: usize,
}

/// One reduction of a fused kernel: register `arg` folded with `op`.
#[derive(CubeType, Clone, Copy, Debug, Hash, PartialEq, Eq)]
struct Fold {
    arg: usize,
    op: RedOp,
}

/// The coordinates of row-major position `pos` in a space of `rank` axes ([`super::shape_info`]
/// triples at `info[shape_at..]`), innermost axis first. `pos` lies inside the space, so the
/// outermost axis needs no division. Computed once per element and shared by every buffer.
#[cube]
fn coords_of(pos: usize, info: &[u32], shape_at: usize, #[comptime] rank: usize) -> Sequence<usize> {
    let mut rev = Sequence::<usize>::new();
    if comptime!(rank > 0) {
        let mut rem = pos;
        #[unroll]
        for k in 0..comptime!(rank - 1) {
            let d = rank - 1 - k;
            let q = fast_div(rem, info[shape_at + 3 * d + 1], info[shape_at + 3 * d + 2]);
            rev.push(rem - q * usize::cast_from(info[shape_at + 3 * d]));
            rem = q;
        }
        rev.push(rem);
    }
    rev
}

/// The offset of coordinates `rev` (innermost first) through strides at `info[strides_at..]`
/// (outermost first).
#[cube]
fn offset_of(rev: &Sequence<usize>, info: &[u32], strides_at: usize, #[comptime] rank: usize) -> usize {
    let mut at = 0usize;
    #[unroll]
    for j in 0..rank {
        at += *rev.index(j) * usize::cast_from(info[strides_at + rank - 1 - j]);
    }
    at
}

/// info = [rows, len, chunk, outer shape triples, inner shape triples, then per buffer (the
/// inputs, then the element outputs): offset, outer strides, inner strides].
/// params = per fold [scale, start value]. Unit `row * chunks + c` reduces row positions
/// `c * chunk .. min(+chunk, len)` in order, as `reduce_kernel` does, into slot `ABSOLUTE_POS`
/// of each fold's result.
#[cube(launch_unchecked)]
fn fused_reduce_kernel<F: Float, N: Size>(
    inputs: &Sequence<Box<[Vector<F, N>]>>,
    outputs: &mut Sequence<Box<[Vector<F, N>]>>,
    results: &mut Sequence<Box<[F]>>,
    params: &[F],
    info: &[u32],
    #[comptime] config: FusedReduceConfig,
) {
    let rows = usize::cast_from(info[0]);
    let len = usize::cast_from(info[1]);
    let chunk = usize::cast_from(info[2]);
    #[allow(clippy::manual_div_ceil)]
    let chunks = (len + chunk - 1) / chunk;
    if ABSOLUTE_POS < rows * chunks {
        let row = ABSOLUTE_POS / chunks;
        let c = ABSOLUTE_POS % chunks;
        let start = c * chunk;
        let end = min(start + chunk, len);
        let outer = comptime!(config.outer);
        let inner = comptime!(config.inner);
        let n_in = comptime!(config.n_inputs);
        let n_out = comptime!(config.outputs.len());
        let stride = comptime!(1 + outer + inner);
        let first = comptime!(3 + 3 * (outer + inner));
        let inner_shape = comptime!(3 + 3 * outer);
        // Each buffer's offset at the start of this unit's row.
        let row_coords = coords_of(row, info, 3, outer);
        let mut bases = Sequence::<usize>::new();
        #[unroll]
        for b in 0..comptime!(n_in + n_out) {
            let at = first + b * stride;
            bases.push(usize::cast_from(info[at]) + offset_of(&row_coords, info, at + 1, outer));
        }
        // info[0] < 2^31, so this is 0 at run time but not a constant.
        let runtime_zero = Vector::<F, N>::new(F::cast_from(info[0] >> 31u32));
        // Inputs that do not move along the row (a per-channel mean) are read once.
        let mut fixed = Sequence::<Vector<F, N>>::new();
        #[unroll]
        for i in 0..n_in {
            if comptime!(*config.invariant.index(i)) {
                let input = inputs.index(i);
                fixed.push(input[*bases.index(i)]);
            } else {
                fixed.push(runtime_zero);
            }
        }
        // One accumulator (and best index, for ArgMax/ArgMin) per fold, in registers.
        let n_folds = comptime!(config.folds.len());
        let mut accs = Array::<F>::new(n_folds);
        let mut bests = Array::<u32>::new(n_folds);
        #[unroll]
        for j in 0..n_folds {
            accs[j] = params[2 * j + 1];
            bests[j] = u32::cast_from(start);
        }
        for k in start..end {
            let coords = coords_of(k, info, inner_shape, inner);
            let mut regs = Sequence::<Vector<F, N>>::new();
            #[unroll]
            for i in 0..n_in {
                if comptime!(*config.invariant.index(i)) {
                    regs.push(*fixed.index(i));
                } else {
                    let strides_at = first + i * stride + 1 + outer;
                    let input = inputs.index(i);
                    regs.push(input[*bases.index(i) + offset_of(&coords, info, strides_at, inner)]);
                }
            }
            exec_from::<F, N>(&mut regs, runtime_zero, config.instrs.clone(), 0usize);
            #[unroll]
            for o in 0..n_out {
                let b = comptime!(n_in + o);
                let strides_at = first + b * stride + 1 + outer;
                let r = comptime!(*config.outputs.index(o));
                let out = outputs.index_mut(o);
                out[*bases.index(b) + offset_of(&coords, info, strides_at, inner)] = *regs.index(r);
            }
            #[unroll]
            for j in 0..n_folds {
                let fold = comptime!(*config.folds.index(j));
                let v = regs.index(comptime!(fold.arg)).extract(0usize);
                match comptime!(fold.op) {
                    RedOp::Sum => accs[j] += v,
                    RedOp::Prod => accs[j] *= v,
                    RedOp::Max => accs[j] = max(accs[j], v),
                    RedOp::Min => accs[j] = min(accs[j], v),
                    RedOp::ArgMax => {
                        if v > accs[j] {
                            accs[j] = v;
                            bests[j] = u32::cast_from(k);
                        }
                    }
                    RedOp::ArgMin => {
                        if v < accs[j] {
                            accs[j] = v;
                            bests[j] = u32::cast_from(k);
                        }
                    }
                }
            }
        }
        #[unroll]
        for j in 0..n_folds {
            let fold = comptime!(*config.folds.index(j));
            let result = results.index_mut(j);
            match comptime!(fold.op) {
                RedOp::ArgMax => result[ABSOLUTE_POS] = F::cast_from(bests[j]),
                RedOp::ArgMin => result[ABSOLUTE_POS] = F::cast_from(bests[j]),
                _ => result[ABSOLUTE_POS] = accs[j] * params[2 * j],
            }
        }
    }
}

/// The row space of a fused reduction: kept axes (one row each) then reduced axes (the row),
/// extent-1 axes dropped and neighbours merged wherever every buffer steps through them as
/// through one axis, so most rows are one strided run (no index division per element).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RowSpace {
    pub outer: Vec<usize>,
    pub inner: Vec<usize>,
    /// Per buffer: the strides of the outer axes, then of the inner ones.
    pub strides: Vec<Vec<usize>>,
}

/// Collapses `axes` of `shape` (in order) for buffers with `strides` (one list per buffer, in
/// `shape`'s axes): the extents and per-buffer strides of the merged axes.
fn collapse(shape: &[usize], axes: &[usize], strides: &[Vec<usize>]) -> (Vec<usize>, Vec<Vec<usize>>) {
    let mut extents: Vec<usize> = Vec::new();
    let mut merged: Vec<Vec<usize>> = vec![Vec::new(); strides.len()];
    for &a in axes {
        if shape[a] == 1 {
            continue;
        }
        // The merged axis so far steps by its last stride; the next axis continues it when
        // that stride spans exactly one sweep of the next axis, in every buffer.
        let joins = !extents.is_empty()
            && strides.iter().zip(&merged).all(|(s, m)| m.last() == Some(&(s[a] * shape[a])));
        if let (true, Some(e)) = (joins, extents.last_mut()) {
            *e *= shape[a];
            for (m, s) in merged.iter_mut().zip(strides) {
                if let Some(last) = m.last_mut() {
                    *last = s[a];
                }
            }
        } else {
            extents.push(shape[a]);
            for (m, s) in merged.iter_mut().zip(strides) {
                m.push(s[a]);
            }
        }
    }
    (extents, merged)
}

pub(crate) fn row_space(shape: &[usize], axes: &[usize], strides: &[Vec<usize>]) -> RowSpace {
    let kept: Vec<usize> = (0..shape.len()).filter(|a| !axes.contains(a)).collect();
    let (outer, outer_strides) = collapse(shape, &kept, strides);
    let (inner, inner_strides) = collapse(shape, axes, strides);
    let strides = outer_strides.into_iter().zip(inner_strides).map(|(mut o, i)| {
        o.extend(i);
        o
    });
    RowSpace { outer, inner, strides: strides.collect() }
}

/// One reduction of a fused kernel: register `arg` reduced with `op` into a tensor of `dtype`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reduction {
    pub arg: usize,
    pub op: ReduceOp,
    pub dtype: DType,
}

/// Reductions behind a fused element-wise program, all over `axes`: `program.outputs` are the
/// registers also written (each as a tensor of the program's shape).
#[derive(Clone, Debug)]
pub struct FusedReduce<'a> {
    pub program: &'a FusedProgram,
    pub axes: &'a [usize],
    pub reductions: &'a [Reduction],
}

/// Runs `spec.program` over `inputs` (each broadcastable to `shape`) and folds each reduction's
/// register over `spec.axes` (kept with extent 1) in the same kernel. Returns the element
/// outputs (with `out_dtypes`) and the reductions' results, in order.
pub fn run_fused_reduce(
    device: &Device,
    spec: &FusedReduce,
    inputs: &[&DeviceTensor],
    shape: &[usize],
    out_dtypes: &[DType],
) -> Result<(Vec<DeviceTensor>, Vec<DeviceTensor>), DeviceError> {
    match device {
        Device::Cube(d) => run_fused_reduce_cube(d, spec, inputs, shape, out_dtypes),
        Device::Host(h) => h.run_fused_reduce(spec, inputs, shape, out_dtypes),
    }
}

fn run_fused_reduce_cube(
    device: &CubeDevice,
    spec: &FusedReduce,
    inputs: &[&DeviceTensor],
    shape: &[usize],
    out_dtypes: &[DType],
) -> Result<(Vec<DeviceTensor>, Vec<DeviceTensor>), DeviceError> {
    // Inputs, element outputs, results, parameters and launch info are bound; past the device's
    // limit the pipeline would be refused at launch and surface as a vague read failure later.
    let bound = inputs.len() + out_dtypes.len() + spec.reductions.len() + 2;
    let limit = device.info().max_kernel_buffers as usize;
    if bound > limit {
        return Err(DeviceError::Kernel {
            op: "fused reduction".into(),
            reason: format!("it binds {bound} buffers; this device allows {limit} per kernel"),
        });
    }
    let outs: Vec<DeviceTensor> =
        out_dtypes.iter().map(|&dt| DeviceTensor::cube_empty(device, dt, shape)).collect::<Result<_, _>>()?;
    let mut out_shape = shape.to_vec();
    for &a in spec.axes {
        if let Some(d) = out_shape.get_mut(a) {
            *d = 1;
        }
    }
    let rows: usize = out_shape.iter().product();
    let len: usize = spec.axes.iter().filter_map(|&a| shape.get(a)).product();
    let results: Vec<DeviceTensor> = spec
        .reductions
        .iter()
        .map(|r| DeviceTensor::cube_empty(device, r.dtype, &out_shape))
        .collect::<Result<_, _>>()?;
    if rows == 0 {
        return Ok((outs, results));
    }
    if len == 0 {
        let filled = spec
            .reductions
            .iter()
            .map(|r| super::generate::fill(device, r.dtype, &out_shape, identity(r.op)));
        return Ok((outs, filled.collect::<Result<_, _>>()?));
    }
    let views: Vec<DeviceTensor> = inputs.iter().map(|t| t.broadcast_to(shape)).collect();
    let buffers: Vec<&DeviceTensor> = views.iter().chain(&outs).collect();
    let strides: Vec<Vec<usize>> = buffers.iter().map(|b| b.strides.clone()).collect();
    let space = row_space(shape, spec.axes, &strides);
    let folds: Vec<(RedOp, f32, f32)> = spec.reductions.iter().map(|r| red_op(r.op, len)).collect();
    let chunk = folds.iter().map(|&(red, _, _)| fused_chunk_len(rows, len, red)).max().unwrap_or(len);
    let chunks = len.div_ceil(chunk);
    let mut info: Vec<u32> = vec![rows as u32, len as u32, chunk as u32];
    info.extend(super::shape_info(&space.outer));
    info.extend(super::shape_info(&space.inner));
    for (b, s) in buffers.iter().zip(&space.strides) {
        info.push(b.offset as u32);
        info.extend(s.iter().map(|&x| x as u32));
    }
    let config = fused_reduce_config(spec, &space, inputs.len(), &folds);
    // Two stages: the kernel writes partials with scale 1, each partial row is then reduced.
    let firsts: Vec<DeviceTensor> = if chunks > 1 {
        folds
            .iter()
            .map(|_| DeviceTensor::cube_empty(device, DType::F32, &[rows, chunks]))
            .collect::<Result<_, _>>()?
    } else {
        results.clone()
    };
    let params: Vec<f32> =
        folds.iter().flat_map(|&(_, scale, start)| [if chunks > 1 { 1.0 } else { scale }, start]).collect();
    let client = device.client();
    let (count, dim) = cube_launch_dims(client, rows * chunks);
    // SAFETY: every unit below rows * chunks writes its own slot of each result; every element
    // offset is a position inside the row space (rows x len, the program's shape permuted),
    // read or written through the strides of a valid view of that shape.
    unsafe {
        fused_reduce_kernel::launch_unchecked::<f32>(
            client,
            count,
            dim,
            1,
            super::buffers_arg(&views)?,
            super::buffers_arg(&outs)?,
            super::buffers_arg(&firsts)?,
            super::params_arg(device, &params),
            info_arg(device, &info),
            config,
        );
    }
    if chunks > 1 {
        for ((first, result), &(red, scale, _)) in firsts.iter().zip(&results).zip(&folds) {
            launch_rows(device, first, rows, chunks, chunks, red, scale, result)?;
        }
    }
    Ok((outs, results))
}

/// The comptime key of a fused reduction over `space`.
fn fused_reduce_config(
    spec: &FusedReduce,
    space: &RowSpace,
    n_inputs: usize,
    folds: &[(RedOp, f32, f32)],
) -> FusedReduceConfig {
    let mut instrs = Sequence::new();
    for &instr in &spec.program.instrs {
        instrs.push(instr);
    }
    let mut outputs = Sequence::new();
    for &r in &spec.program.outputs {
        outputs.push(r);
    }
    let mut invariant = Sequence::new();
    for strides in space.strides.iter().take(n_inputs) {
        invariant.push(strides[space.outer.len()..].iter().all(|&x| x == 0));
    }
    let mut keys = Sequence::new();
    for (r, &(op, _, _)) in spec.reductions.iter().zip(folds) {
        keys.push(Fold { arg: r.arg, op });
    }
    FusedReduceConfig {
        instrs,
        n_inputs,
        invariant,
        outputs,
        folds: keys,
        outer: space.outer.len(),
        inner: space.inner.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::{RowSpace, row_space};

    #[test]
    fn row_space_merges_runs_and_drops_unit_axes() {
        // Contiguous [4, 1, 3, 5] summed over [2, 3]: one row of 15 per output.
        let s = row_space(&[4, 1, 3, 5], &[2, 3], &[vec![15, 15, 5, 1]]);
        assert_eq!(s, RowSpace { outer: vec![4], inner: vec![15], strides: vec![vec![15, 1]] });
        // Summed over [0, 3]: two reduced axes that do not touch stay apart.
        let s = row_space(&[4, 1, 3, 5], &[0, 3], &[vec![15, 15, 5, 1]]);
        assert_eq!(s, RowSpace { outer: vec![3], inner: vec![4, 5], strides: vec![vec![5, 15, 1]] });
        // A broadcast input (stride 0 on axis 1) stops the merge of axes 0 and 1.
        let s = row_space(&[2, 3, 4], &[0, 1, 2], &[vec![12, 4, 1], vec![4, 0, 1]]);
        assert_eq!(
            s,
            RowSpace { outer: vec![], inner: vec![2, 3, 4], strides: vec![vec![12, 4, 1], vec![4, 0, 1]] }
        );
    }
}
