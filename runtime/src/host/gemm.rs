//! Matrix products on the host through the `gemm` crate (runtime-dispatched AVX2/AVX-512
//! micro-kernels). Chosen over `faer` by measurement (`make bench-kernels`, host column) and
//! because it takes any row/column strides, so transposed and sliced operands need no copy.
//!
//! `gemm` splits the output into tiles and never splits the contraction, so a product has
//! the same bits whatever the thread count.

use rayon::prelude::*;

/// A strided matrix operand: element `(i, j)` is `data[offset + i * rs + j * cs]`.
#[derive(Clone, Copy, Debug)]
pub struct Mat<'a> {
    pub data: &'a [f32],
    pub offset: usize,
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cs: usize,
}

impl<'a> Mat<'a> {
    /// A row-major matrix from the start of `data`.
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Mat<'a> {
        Mat { data, offset: 0, rows, cols, rs: cols, cs: 1 }
    }

    /// The transpose (a view).
    pub fn t(self) -> Mat<'a> {
        Mat { rows: self.cols, cols: self.rows, rs: self.cs, cs: self.rs, ..self }
    }

    /// True when every element the matrix names lies inside `data`.
    fn in_bounds(&self) -> bool {
        if self.rows == 0 || self.cols == 0 {
            return true;
        }
        let last = self.offset + (self.rows - 1) * self.rs + (self.cols - 1) * self.cs;
        last < self.data.len()
    }
}

/// How a product may use threads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Threads {
    /// On the calling thread only (the caller is already one of many parallel tasks).
    One,
    /// Every thread of the current pool.
    All,
}

/// `dst = a @ b` (or `dst += a @ b` with `accumulate`), `dst` row-major `a.rows x b.cols`.
/// Panics if an operand's strides reach outside its data (a bug in the caller, never input).
pub fn gemm(dst: &mut [f32], a: Mat, b: Mat, accumulate: bool, threads: Threads) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert!(a.cols == b.rows && dst.len() == m * n, "gemm: {m}x{k} @ {}x{n} into {}", b.rows, dst.len());
    assert!(a.in_bounds() && b.in_bounds(), "gemm: an operand's strides leave its buffer");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst.fill(0.0);
        }
        return;
    }
    let parallelism = match threads {
        Threads::One => gemm::Parallelism::None,
        Threads::All if rayon::current_num_threads() > 1 && m * n * k >= 1 << 15 => {
            gemm::Parallelism::Rayon(rayon::current_num_threads())
        }
        Threads::All => gemm::Parallelism::None,
    };
    // SAFETY: `dst` holds exactly m x n elements written row-major (row stride n, column
    // stride 1); every element of `a` and `b` read is in bounds (checked above: strides are
    // non-negative, so the last element is the farthest). `alpha` scales the old `dst` only
    // when `read_dst` is set.
    #[allow(unsafe_code)]
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.data.as_ptr().add(a.offset),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr().add(b.offset),
            b.cs as isize,
            b.rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// Batched `a [batch.., M, K] @ b [batch.., K, N]` into the row-major `dst [batch.., M, N]`,
/// with each operand's batch axes given as `(extent, stride)` pairs (equal extents).
pub fn batched(dst: &mut [f32], a: Mat, a_batch: &[usize], b: Mat, b_batch: &[usize], extents: &[usize]) {
    let count: usize = extents.iter().product();
    let per = a.rows * b.cols;
    if count == 0 || per == 0 {
        return;
    }
    let offset_of = |mut i: usize, strides: &[usize]| {
        let mut at = 0;
        for (&e, &s) in extents.iter().zip(strides).rev() {
            at += (i % e) * s;
            i /= e;
        }
        at
    };
    let one = |(i, out): (usize, &mut [f32]), threads: Threads| {
        let ai = Mat { offset: a.offset + offset_of(i, a_batch), ..a };
        let bi = Mat { offset: b.offset + offset_of(i, b_batch), ..b };
        gemm(out, ai, bi, false, threads);
    };
    // Many small products: one per task. Few large ones: each uses every thread.
    if count >= rayon::current_num_threads() && per * a.cols < 1 << 20 {
        dst.par_chunks_mut(per).enumerate().for_each(|t| one(t, Threads::One));
    } else {
        dst.chunks_mut(per).enumerate().for_each(|t| one(t, Threads::All));
    }
}
