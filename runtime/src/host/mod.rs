//! The host device: every primitive of a `Program` on the CPU in f32, as fast as the CPU
//! allows (`--device cpu`).
//!
//! | primitive | how |
//! | --- | --- |
//! | `Unary`, `Binary`, `Select`, `Cast`, fused groups | [`fused`]: block-vectorised register programs |
//! | `Reduce`, fused reductions | [`fused::reduce_rows`]: fixed blocks, partials combined in order |
//! | `MatMul` | [`gemm`]: the `gemm` crate, strided operands, batches in parallel |
//! | `Conv2d`, `ConvTranspose2d`, `Conv2dWeightGrad` | [`conv`]: im2col / col2im + `gemm` |
//! | `Fill`, `Iota`, `Random` | here, with the shared counter RNG |
//! | `Reshape`, `Permute`, `Broadcast`, `Slice` | views: no copy |
//! | `Concat` | here: row copies |
//! | `Pool2d`, `Pool2dGrad` | [`pool`]: plane by plane in parallel |
//! | `Pad`, `Gather`, `ScatterAdd`, upsampling | the reference interpreter's rule run on f32 data ([`fallback`]) |
//!
//! Tensors are [`DeviceTensor`]s whose buffer is a pooled [`HostBuffer`]: the same strided
//! views as on the Vulkan device, so the executor, optimizers and training loop run
//! unchanged. Work is spread over the device's own rayon pool (`--threads`, `GENC_THREADS`,
//! default every core) in partitions fixed by the shapes: results are bit-identical whatever
//! the thread count.

mod buffer;
mod conv;
mod fallback;
mod fused;
mod gemm;
mod ops;
mod pool;
mod view;

pub use buffer::{HostBuffer, Pool};
pub use view::HostView;

use std::sync::Arc;

use genc_compiler::prim::{DType, Distribution, Prim, ScanOp};
use genc_compiler::random;
use rayon::prelude::*;

use crate::device::{Buffer, DeviceError, DeviceTensor, contiguous_strides};
use crate::kernels::elementwise::{EwOp, FusedProgram, Instr};
use crate::kernels::reduce::FusedReduce;
use crate::kernels::{Leaves, binary_op, transposed, unary_op};

/// The CPU as a device: a thread pool and a buffer pool.
#[derive(Clone)]
pub struct HostDevice {
    threads: Arc<rayon::ThreadPool>,
    pool: Arc<Pool>,
    /// The scratch budget of a convolution's chunk of images, in elements.
    scratch_elems: usize,
    /// The largest tensor in bytes: the machine's memory.
    limit_bytes: u64,
}

impl std::fmt::Debug for HostDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HostDevice({} threads)", self.threads())
    }
}

/// The thread count `GENC_THREADS` asks for, if it is a positive number.
pub fn threads_from_env() -> Option<usize> {
    std::env::var("GENC_THREADS").ok()?.trim().parse().ok().filter(|&n| n > 0)
}

impl HostDevice {
    /// A host device with `threads` worker threads (default: `GENC_THREADS`, else every core).
    pub fn new(threads: Option<usize>) -> Result<HostDevice, DeviceError> {
        let n = threads
            .or_else(threads_from_env)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let threads = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .thread_name(|i| format!("genc-host-{i}"))
            .build()
            .map_err(|e| DeviceError::Init { name: "host CPU".into(), reason: e.to_string() })?;
        Ok(HostDevice {
            threads: Arc::new(threads),
            pool: Arc::default(),
            scratch_elems: 16 << 20,
            limit_bytes: memory_bytes(),
        })
    }

    pub fn threads(&self) -> usize {
        self.threads.current_num_threads()
    }

    /// The scratch budget in bytes.
    pub fn scratch_bytes(&self) -> u64 {
        self.scratch_elems as u64 * 4
    }

    /// The same device with another scratch budget in bytes (tests use a tiny one).
    pub fn with_scratch_bytes(&self, bytes: u64) -> HostDevice {
        HostDevice { scratch_elems: (bytes / 4).max(1) as usize, ..self.clone() }
    }

    /// The most bytes of tensors alive at once so far.
    pub fn peak_bytes(&self) -> usize {
        self.pool.peak_bytes()
    }

    /// Runs `f` on this device's thread pool (directly when already on it).
    fn run<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        if self.threads.current_thread_index().is_some() { f() } else { self.threads.install(f) }
    }

    /// [`HostDevice::run`] for work over `elements` elements: below the size the kernels
    /// split over threads it runs on the calling thread, sparing a hand-over to the pool and
    /// back (about 20 µs, more than a small kernel's work).
    fn run_sized<R: Send>(&self, elements: usize, f: impl FnOnce() -> R + Send) -> R {
        if elements < fused::PARALLEL_MIN { f() } else { self.run(f) }
    }

    /// The largest tensor the device holds, in bytes.
    pub fn limit_bytes(&self) -> u64 {
        self.limit_bytes
    }

    /// A contiguous tensor holding `data`.
    fn tensor(&self, dtype: DType, shape: &[usize], data: Vec<f32>) -> DeviceTensor {
        let buffer = (!data.is_empty()).then(|| Buffer::Host(self.pool.wrap(data)));
        DeviceTensor::contiguous(dtype, shape, buffer)
    }

    /// Uploads row-major f32 data.
    pub fn upload(&self, dtype: DType, shape: &[usize], data: &[f32]) -> Result<DeviceTensor, DeviceError> {
        let mut buf = self.alloc(shape)?;
        buf.copy_from_slice(data);
        Ok(self.tensor(dtype, shape, buf))
    }

    /// A tensor of zeros.
    pub fn zeros(&self, dtype: DType, shape: &[usize]) -> Result<DeviceTensor, DeviceError> {
        let mut buf = self.alloc(shape)?;
        buf.fill(0.0);
        Ok(self.tensor(dtype, shape, buf))
    }

    /// A buffer for a tensor of `shape` from the pool, contents unspecified, or
    /// [`DeviceError::TooLarge`] when it exceeds the machine's memory or cannot be had.
    fn alloc(&self, shape: &[usize]) -> Result<Vec<f32>, DeviceError> {
        let limit = self.limit_bytes;
        let too_large = |bytes| DeviceError::TooLarge { shape: shape.to_vec(), bytes, limit };
        let n =
            shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d)).ok_or_else(|| too_large(u64::MAX))?;
        let bytes = (n as u64).checked_mul(4).ok_or_else(|| too_large(u64::MAX))?;
        if bytes > limit {
            return Err(too_large(bytes));
        }
        self.pool.take(n).ok_or_else(|| too_large(bytes))
    }

    /// The view's elements in row-major order.
    pub fn download(&self, t: &DeviceTensor) -> Result<Vec<f32>, DeviceError> {
        let data = data_of(t)?;
        let view = HostView::new(data, t);
        match view.contiguous() {
            Some(s) => Ok(s.to_vec()),
            None => Ok(view.to_vec()),
        }
    }

    /// A contiguous copy of `t` (itself when it already is one).
    pub fn materialize(&self, t: &DeviceTensor) -> Result<DeviceTensor, DeviceError> {
        if t.is_contiguous() || t.numel() == 0 {
            return Ok(t.clone());
        }
        let copy = FusedProgram { n_inputs: 1, instrs: Vec::new(), outputs: vec![0] };
        let mut outs = self.run_fused(&copy, &[t], &t.shape, &[t.dtype])?;
        outs.pop().ok_or_else(|| kernel("copy", "no output"))
    }

    /// A fused element-wise program over `out_shape` (inputs broadcast to it).
    pub fn run_fused(
        &self,
        program: &FusedProgram,
        inputs: &[&DeviceTensor],
        out_shape: &[usize],
        out_dtypes: &[DType],
    ) -> Result<Vec<DeviceTensor>, DeviceError> {
        let n: usize = out_shape.iter().product();
        let views = broadcast_views(inputs, out_shape)?;
        let mut outs: Vec<Vec<f32>> =
            out_dtypes.iter().map(|_| self.alloc(out_shape)).collect::<Result<_, _>>()?;
        self.run_sized(n, || fused::run(program, &views, n, &mut outs));
        Ok(outs.into_iter().zip(out_dtypes).map(|(data, &dt)| self.tensor(dt, out_shape, data)).collect())
    }

    /// A fused reduction: the program's element outputs over `shape`, and each reduction's
    /// register folded over `spec.axes` (kept with extent 1), in one pass. The pass walks the
    /// elements with the reduced axes last, and writes the element outputs in that order: when
    /// the axes are not the trailing ones, an output is a permuted view of its buffer.
    pub fn run_fused_reduce(
        &self,
        spec: &FusedReduce,
        inputs: &[&DeviceTensor],
        shape: &[usize],
        out_dtypes: &[DType],
    ) -> Result<(Vec<DeviceTensor>, Vec<DeviceTensor>), DeviceError> {
        let folds: Vec<(usize, genc_compiler::prim::ReduceOp)> =
            spec.reductions.iter().map(|r| (r.arg, r.op)).collect();
        let (results, outs) =
            self.reduce_program(spec.program, inputs, shape, spec.axes, &folds, out_dtypes)?;
        let out_shape = reduced_shape(shape, spec.axes);
        let reduced = results
            .into_iter()
            .zip(spec.reductions)
            .map(|(data, r)| self.tensor(r.dtype, &out_shape, data))
            .collect();
        Ok((outs, reduced))
    }

    /// Evaluates `program` over `shape` in an order that puts `axes` last, folds registers,
    /// and returns the fold results and the program's element outputs (as views of `shape`).
    #[allow(clippy::type_complexity)]
    fn reduce_program(
        &self,
        program: &FusedProgram,
        inputs: &[&DeviceTensor],
        shape: &[usize],
        axes: &[usize],
        folds: &[(usize, genc_compiler::prim::ReduceOp)],
        out_dtypes: &[DType],
    ) -> Result<(Vec<Vec<f32>>, Vec<DeviceTensor>), DeviceError> {
        if axes.iter().any(|&a| a >= shape.len()) {
            return Err(kernel("reduce", format!("axes {axes:?} of a rank-{} shape", shape.len())));
        }
        let kept: Vec<usize> = (0..shape.len()).filter(|a| !axes.contains(a)).collect();
        let perm: Vec<usize> = kept.iter().chain(axes).copied().collect();
        let rows: usize = kept.iter().map(|&a| shape[a]).product();
        let len: usize = axes.iter().map(|&a| shape[a]).product();
        let permuted: Vec<DeviceTensor> =
            inputs.iter().map(|t| t.broadcast_to(shape).permuted(&perm)).collect();
        let refs: Vec<&DeviceTensor> = permuted.iter().collect();
        let views = views(&refs)?;
        let walk_shape: Vec<usize> = perm.iter().map(|&a| shape[a]).collect();
        let mut outs: Vec<Vec<f32>> =
            out_dtypes.iter().map(|_| self.alloc(shape)).collect::<Result<_, _>>()?;
        let results = if rows == 0 {
            folds.iter().map(|_| Vec::new()).collect()
        } else {
            self.run_sized(rows * len, || fused::reduce_rows(program, &views, rows, len, folds, &mut outs))
        };
        // An output written in walk order is that order's contiguous tensor, seen through the
        // inverse permutation.
        let mut inverse = vec![0; perm.len()];
        for (i, &p) in perm.iter().enumerate() {
            inverse[p] = i;
        }
        let outs = outs
            .into_iter()
            .zip(out_dtypes)
            .map(|(data, &dt)| self.tensor(dt, &walk_shape, data).permuted(&inverse))
            .collect();
        Ok((results, outs))
    }

    /// Runs one primitive. `out_shape`/`out_dtype` are the node's type.
    pub fn eval(
        &self,
        prim: &Prim,
        inputs: &[&DeviceTensor],
        out_shape: &[usize],
        out_dtype: DType,
        leaves: &Leaves,
    ) -> Result<DeviceTensor, DeviceError> {
        let arg = |i: usize| -> Result<&DeviceTensor, DeviceError> {
            inputs.get(i).copied().ok_or_else(|| {
                kernel(prim.to_string(), format!("expected at least {} inputs, got {}", i + 1, inputs.len()))
            })
        };
        let leaf = |table: &[DeviceTensor], index: usize, what: &str| {
            table.get(index).cloned().ok_or_else(|| kernel(prim.to_string(), format!("no {what} #{index}")))
        };
        let single = |op: EwOp, n: usize| -> Result<DeviceTensor, DeviceError> {
            let program = FusedProgram {
                n_inputs: n,
                instrs: vec![Instr { op, a: 0, b: 1.min(n - 1), c: 2.min(n - 1) }],
                outputs: vec![n],
            };
            let ins: Vec<&DeviceTensor> = inputs.iter().take(n).copied().collect();
            let mut outs = self.run_fused(&program, &ins, out_shape, &[out_dtype])?;
            outs.pop().ok_or_else(|| kernel(prim.to_string(), "no output"))
        };
        match prim {
            Prim::Input { index } => leaf(&leaves.inputs, *index, "input"),
            Prim::Param { index } => leaf(&leaves.params, *index, "parameter"),
            Prim::Buffer { index } => leaf(&leaves.buffers, *index, "buffer"),
            Prim::Fill { value } => {
                let mut data = self.alloc(out_shape)?;
                data.fill(value.0 as f32);
                Ok(self.tensor(out_dtype, out_shape, data))
            }
            Prim::Iota { axis } => {
                let inner: usize = out_shape.get(axis + 1..).map_or(1, |s| s.iter().product());
                let extent = out_shape.get(*axis).copied().unwrap_or(1).max(1);
                let mut data = self.alloc(out_shape)?;
                for (i, d) in data.iter_mut().enumerate() {
                    *d = ((i / inner.max(1)) % extent) as f32;
                }
                Ok(self.tensor(out_dtype, out_shape, data))
            }
            Prim::Random { dist, stream } => {
                let key = random::stream_key(leaves.seed, *stream);
                let normal = *dist == Distribution::Normal;
                let mut data = self.alloc(out_shape)?;
                self.run(|| {
                    data.par_chunks_mut(fused::BLOCK).enumerate().for_each(|(b, chunk)| {
                        for (k, d) in chunk.iter_mut().enumerate() {
                            let i = (b * fused::BLOCK + k) as u32;
                            *d = if normal { random::normal(key, i) } else { random::uniform(key, i) };
                        }
                    })
                });
                Ok(self.tensor(DType::F32, out_shape, data))
            }
            Prim::Unary(op) => single(unary_op(*op), 1),
            Prim::Binary(op) => single(binary_op(*op, arg(0)?.dtype), 2),
            Prim::Select => single(EwOp::Select, 3),
            // The identity: stop_grad only matters to autodiff.
            Prim::StopGrad => Ok(arg(0)?.clone()),
            Prim::Grad => {
                Err(kernel(prim.to_string(), "`grad` must be expanded by autodiff before a graph runs"))
            }
            Prim::Cast { to } => {
                let x = arg(0)?;
                match (x.dtype, to) {
                    (DType::F32, DType::I32) => single(EwOp::Trunc, 1),
                    (DType::F32 | DType::I32, DType::Bool) => single(EwOp::NonZero, 1),
                    (_, _) => Ok(DeviceTensor { dtype: out_dtype, ..x.broadcast_to(out_shape) }),
                }
            }
            Prim::Reduce { op, axes } => {
                let x = arg(0)?;
                let identity = FusedProgram { n_inputs: 1, instrs: Vec::new(), outputs: Vec::new() };
                let (mut results, _) =
                    self.reduce_program(&identity, &[x], &x.shape, axes, &[(0, *op)], &[])?;
                let data = results.pop().ok_or_else(|| kernel(prim.to_string(), "no output"))?;
                Ok(self.tensor(out_dtype, out_shape, data))
            }
            Prim::Reshape => self.reshaped(arg(0)?, out_shape),
            Prim::Permute { perm } => Ok(arg(0)?.permuted(perm)),
            Prim::Broadcast => Ok(arg(0)?.broadcast_to(out_shape)),
            Prim::Slice { axis, start, step } => Ok(arg(0)?.sliced(*axis, *start, *step, out_shape[*axis])),
            Prim::Concat { axis } => self.concat(inputs, *axis, out_shape, out_dtype),
            Prim::MatMul { transpose_a, transpose_b } => {
                let a = transposed(arg(0)?, *transpose_a);
                let b = transposed(arg(1)?, *transpose_b);
                self.matmul(&a, &b, out_shape, out_dtype)
            }
            Prim::Conv2d(g) => {
                let (x, w) = (self.materialize(arg(0)?)?, self.materialize(arg(1)?)?);
                let d = conv::ConvDims {
                    n: x.shape[0],
                    c: x.shape[1],
                    h: x.shape[2],
                    w: x.shape[3],
                    co: out_shape[1],
                    oh: out_shape[2],
                    ow: out_shape[3],
                    kh: w.shape[2],
                    kw: w.shape[3],
                    g: *g,
                };
                let (xd, wd, mut out) = (data_of(&x)?, data_of(&w)?, self.alloc(out_shape)?);
                let budget = self.scratch_elems;
                self.run(|| conv::conv2d(&d, xd, wd, &mut out, budget));
                Ok(self.tensor(out_dtype, out_shape, out))
            }
            Prim::ConvTranspose2d { geometry, output_padding: _ } => {
                let (x, w) = (self.materialize(arg(0)?)?, self.materialize(arg(1)?)?);
                // The forward convolution this is the adjoint of: from `out` to `x`.
                let d = conv::ConvDims {
                    n: x.shape[0],
                    c: out_shape[1],
                    h: out_shape[2],
                    w: out_shape[3],
                    co: x.shape[1],
                    oh: x.shape[2],
                    ow: x.shape[3],
                    kh: w.shape[2],
                    kw: w.shape[3],
                    g: *geometry,
                };
                let (xd, wd, mut out) = (data_of(&x)?, data_of(&w)?, self.alloc(out_shape)?);
                let budget = self.scratch_elems;
                self.run(|| conv::conv_transpose2d(&d, xd, wd, &mut out, budget));
                Ok(self.tensor(out_dtype, out_shape, out))
            }
            Prim::Conv2dWeightGrad(g) => {
                let (x, dy) = (self.materialize(arg(0)?)?, self.materialize(arg(1)?)?);
                let d = conv::ConvDims {
                    n: x.shape[0],
                    c: x.shape[1],
                    h: x.shape[2],
                    w: x.shape[3],
                    co: dy.shape[1],
                    oh: dy.shape[2],
                    ow: dy.shape[3],
                    kh: out_shape[2],
                    kw: out_shape[3],
                    g: *g,
                };
                let (xd, dyd, mut out) = (data_of(&x)?, data_of(&dy)?, self.alloc(out_shape)?);
                let budget = self.scratch_elems;
                self.run(|| conv::conv2d_weight_grad(&d, xd, dyd, &mut out, budget));
                Ok(self.tensor(out_dtype, out_shape, out))
            }
            Prim::Scan { op, axis } => self.scan(arg(0)?, *op == ScanOp::Prod, *axis),
            Prim::Pool2d { kind, window } => {
                let x = self.materialize(arg(0)?)?;
                let mut out = self.alloc(out_shape)?;
                if let Some((hw, ohw)) = self.pool_extents(prim, window, &x.shape, out_shape)? {
                    let xd = data_of(&x)?;
                    self.run(|| pool::pool2d(*kind, window, xd, hw, &mut out, ohw));
                } else {
                    out.fill(0.0);
                }
                Ok(self.tensor(out_dtype, out_shape, out))
            }
            Prim::Pool2dGrad { kind, window } => {
                let (x, dy) = (self.materialize(arg(0)?)?, self.materialize(arg(1)?)?);
                let mut out = self.alloc(out_shape)?;
                match self.pool_extents(prim, window, &x.shape, &dy.shape)? {
                    Some((hw, ohw)) if out_shape == x.shape.as_slice() => {
                        let (xd, dyd) = (data_of(&x)?, data_of(&dy)?);
                        self.run(|| pool::pool2d_grad(*kind, window, xd, dyd, hw, ohw, &mut out));
                    }
                    Some(_) => {
                        return Err(kernel(prim.to_string(), "the gradient's shape is not the input's"));
                    }
                    None => out.fill(0.0),
                }
                Ok(self.tensor(out_dtype, out_shape, out))
            }
            Prim::Pad { .. }
            | Prim::Gather { .. }
            | Prim::ScatterAdd { .. }
            | Prim::Upsample { .. }
            | Prim::UpsampleGrad { .. }
            | Prim::LogAbsDet
            | Prim::Inverse => fallback::eval(self, prim, inputs, out_shape, out_dtype),
        }
    }

    /// The plane extents `[h, w]` and `[ho, wo]` of a pooling from `x` to `y` (both
    /// `[n, c, .., ..]`), checked against the window; `None` when there is nothing to pool.
    #[allow(clippy::type_complexity)]
    fn pool_extents(
        &self,
        prim: &Prim,
        window: &genc_compiler::prim::Window,
        x: &[usize],
        y: &[usize],
    ) -> Result<Option<([usize; 2], [usize; 2])>, DeviceError> {
        let (&[n, c, h, w], &[yn, yc, ho, wo]) = (x, y) else {
            return Err(kernel(prim.to_string(), format!("pooling needs [N, C, H, W], got {x:?} and {y:?}")));
        };
        if n * c * h * w == 0 || yn * yc * ho * wo == 0 {
            return Ok(None);
        }
        let expected = pool::out_extents(window, h, w).map_err(|e| kernel(prim.to_string(), e))?;
        if [yn, yc, ho, wo] != [n, c, expected[0], expected[1]] {
            return Err(kernel(
                prim.to_string(),
                format!("pooling {x:?} gives {expected:?} per plane, not {y:?}"),
            ));
        }
        Ok(Some(([h, w], [ho, wo])))
    }

    /// The same elements with a new shape; a view when the tensor's layout allows it.
    pub fn reshaped(&self, t: &DeviceTensor, shape: &[usize]) -> Result<DeviceTensor, DeviceError> {
        let base = if t.strides_match_contiguous() { t.clone() } else { self.materialize(t)? };
        Ok(DeviceTensor { shape: shape.to_vec(), strides: contiguous_strides(shape), ..base })
    }

    fn concat(
        &self,
        inputs: &[&DeviceTensor],
        axis: usize,
        out_shape: &[usize],
        dtype: DType,
    ) -> Result<DeviceTensor, DeviceError> {
        let outer: usize = out_shape[..axis].iter().product();
        let inner: usize = out_shape[axis + 1..].iter().product();
        let row = out_shape[axis] * inner;
        let mut out = self.alloc(out_shape)?;
        let mut start = 0;
        for t in inputs {
            let width = t.shape[axis] * inner;
            if width > 0 {
                let view = HostView::new(data_of(t)?, t);
                for o in 0..outer {
                    view.read(o * width, &mut out[o * row + start..o * row + start + width]);
                }
            }
            start += width;
        }
        Ok(self.tensor(dtype, out_shape, out))
    }

    fn scan(&self, x: &DeviceTensor, prod: bool, axis: usize) -> Result<DeviceTensor, DeviceError> {
        let mut data = self.download(x)?;
        let inner: usize = x.shape[axis + 1..].iter().product();
        let extent = x.shape[axis];
        for block in data.chunks_mut((extent * inner).max(1)) {
            for i in 1..extent {
                for j in 0..inner {
                    let prev = block[(i - 1) * inner + j];
                    let cur = &mut block[i * inner + j];
                    *cur = if prod { prev * *cur } else { prev + *cur };
                }
            }
        }
        self.upload(x.dtype, &x.shape, &data)
    }

    /// `a [.., M, K] @ b [.., K, N]` (transposes applied as views).
    fn matmul(
        &self,
        a: &DeviceTensor,
        b: &DeviceTensor,
        out_shape: &[usize],
        dtype: DType,
    ) -> Result<DeviceTensor, DeviceError> {
        let r = a.shape.len();
        if r < 2 || b.shape.len() != r {
            return Err(kernel("matmul", format!("operands {:?} and {:?}", a.shape, b.shape)));
        }
        fn mat(t: &DeviceTensor) -> Result<gemm::Mat<'_>, DeviceError> {
            let r = t.shape.len();
            Ok(gemm::Mat {
                data: data_of(t)?,
                offset: t.offset,
                rows: t.shape[r - 2],
                cols: t.shape[r - 1],
                rs: t.strides[r - 2],
                cs: t.strides[r - 1],
            })
        }
        let mut out = self.alloc(out_shape)?;
        let (ma, mb) = (mat(a)?, mat(b)?);
        let extents = &out_shape[..r - 2];
        self.run(|| gemm::batched(&mut out, ma, &a.strides[..r - 2], mb, &b.strides[..r - 2], extents));
        Ok(self.tensor(dtype, out_shape, out))
    }

    /// A library op whose result goes through `program` before it is stored: register 0 is
    /// the op's result, `inputs` follow.
    #[allow(clippy::too_many_arguments)]
    pub fn eval_epilogue(
        &self,
        prim: &Prim,
        op_inputs: &[&DeviceTensor],
        shape: &[usize],
        program: &FusedProgram,
        inputs: &[&DeviceTensor],
        dtypes: &[DType],
        leaves: &Leaves,
    ) -> Result<Vec<DeviceTensor>, DeviceError> {
        let head = self.eval(prim, op_inputs, shape, DType::F32, leaves)?;
        if program.instrs.is_empty() && program.outputs == [0] {
            return Ok(vec![DeviceTensor { dtype: dtypes.first().copied().unwrap_or(DType::F32), ..head }]);
        }
        let all: Vec<&DeviceTensor> = std::iter::once(&head).chain(inputs.iter().copied()).collect();
        self.run_fused(program, &all, shape, dtypes)
    }
}

/// The machine's memory in bytes (`MemTotal`), or 16 GiB when it cannot be read.
fn memory_bytes() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib * 1024)
        })
        .unwrap_or(16 << 30)
}

fn kernel(op: impl Into<String>, reason: impl Into<String>) -> DeviceError {
    DeviceError::Kernel { op: op.into(), reason: reason.into() }
}

/// The host data behind a tensor (empty for a zero-size one), or an error when the view
/// reaches past its buffer (a slice longer than what it slices): never an out-of-bounds read.
pub fn data_of(t: &DeviceTensor) -> Result<&[f32], DeviceError> {
    match &t.buffer {
        Some(Buffer::Host(b)) => {
            if t.numel() > 0 {
                let last =
                    t.offset + t.shape.iter().zip(&t.strides).map(|(&d, &s)| (d - 1) * s).sum::<usize>();
                if last >= b.len() {
                    return Err(kernel(
                        "read",
                        format!(
                            "a view of shape {:?} reaches element {last} of a buffer of {} (a slice past \
                             the end of its tensor?)",
                            t.shape,
                            b.len()
                        ),
                    ));
                }
            }
            Ok(b)
        }
        None => Ok(&[]),
        Some(Buffer::Cube(_)) => {
            Err(kernel("host device", "a tensor of a Vulkan device was passed to the host"))
        }
    }
}

fn views<'a>(inputs: &[&'a DeviceTensor]) -> Result<Vec<HostView<'a>>, DeviceError> {
    inputs.iter().map(|t| Ok(HostView::new(data_of(t)?, t))).collect()
}

fn broadcast_views<'a>(
    inputs: &[&'a DeviceTensor],
    shape: &[usize],
) -> Result<Vec<HostView<'a>>, DeviceError> {
    inputs
        .iter()
        .map(|t| {
            let b = t.broadcast_to(shape);
            Ok(HostView::from_parts(data_of(t)?, b.offset, &b.shape, &b.strides))
        })
        .collect()
}

fn reduced_shape(shape: &[usize], axes: &[usize]) -> Vec<usize> {
    shape.iter().enumerate().map(|(i, &d)| if axes.contains(&i) { 1 } else { d }).collect()
}
