//! Fused element-wise programs and fused reductions on the host, numexpr-style: the program
//! runs op by op over blocks of [`BLOCK`] elements (every register a block, each op one tight
//! vectorised loop), so the working set of a block stays in L1/L2 and no intermediate reaches
//! memory. Blocks are spread over the device's threads.
//!
//! **Determinism.** The partition into blocks depends only on the shapes, never on the thread
//! count, and every reduction folds fixed blocks in index order, then their partials in block
//! order: the same inputs give the same bits with one thread or many.

use std::cell::RefCell;

use genc_compiler::prim::ReduceOp;
use rayon::prelude::*;

use super::ops;
use super::view::HostView;
use crate::kernels::elementwise::FusedProgram;

/// Elements per block: with a few dozen registers the working set stays within L2.
pub const BLOCK: usize = 1024;

/// Below this many elements a kernel runs on the calling thread (a task costs ~1 µs).
pub const PARALLEL_MIN: usize = 16 * BLOCK;

thread_local! {
    /// Each thread's register file, reused across kernels.
    static REGISTERS: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `program` on block `[start, start + len)`: loads the inputs, runs every instruction,
/// then hands the register file to `finish` (which reads the registers it needs).
pub fn run_block<R>(
    program: &FusedProgram,
    inputs: &[HostView],
    start: usize,
    len: usize,
    finish: impl FnOnce(&[f32]) -> R,
) -> R {
    REGISTERS.with(|cell| {
        let mut regs = cell.borrow_mut();
        let n_regs = program.n_inputs + program.instrs.len();
        if regs.len() < n_regs * BLOCK {
            regs.resize(n_regs * BLOCK, 0.0);
        }
        for (i, view) in inputs.iter().enumerate() {
            view.read(start, &mut regs[i * BLOCK..i * BLOCK + len]);
        }
        for (k, ins) in program.instrs.iter().enumerate() {
            let dst = program.n_inputs + k;
            // Registers only read earlier registers, so the destination is past every operand.
            let (before, after) = regs.split_at_mut(dst * BLOCK);
            let reg = |r: usize| &before[r * BLOCK..r * BLOCK + len];
            ops::apply(ins.op, &mut after[..len], reg(ins.a), reg(ins.b), reg(ins.c));
        }
        finish(&regs[..n_regs * BLOCK])
    })
}

/// The block of register `r` in a register file of blocks.
pub fn register(regs: &[f32], r: usize, len: usize) -> &[f32] {
    &regs[r * BLOCK..r * BLOCK + len]
}

/// Runs `program` over `n` elements, writing output `o` (register `program.outputs[o]`) to
/// `outs[o]`, each of `n` elements.
pub fn run(program: &FusedProgram, inputs: &[HostView], n: usize, outs: &mut [Vec<f32>]) {
    let blocks = n.div_ceil(BLOCK);
    // Per block, the slices of every output it writes.
    let mut tasks: Vec<Vec<&mut [f32]>> = (0..blocks).map(|_| Vec::with_capacity(outs.len())).collect();
    for out in outs.iter_mut() {
        for (task, chunk) in tasks.iter_mut().zip(out.chunks_mut(BLOCK)) {
            task.push(chunk);
        }
    }
    let work = |(b, mut chunks): (usize, Vec<&mut [f32]>)| {
        let start = b * BLOCK;
        let len = BLOCK.min(n - start);
        run_block(program, inputs, start, len, |regs| {
            for (chunk, &r) in chunks.iter_mut().zip(&program.outputs) {
                chunk.copy_from_slice(register(regs, r, len));
            }
        });
    };
    if n < PARALLEL_MIN {
        tasks.into_iter().enumerate().for_each(work);
    } else {
        tasks.into_par_iter().enumerate().for_each(work);
    }
}

/// An accumulator of one reduction over a row's blocks.
#[derive(Clone, Copy, Debug)]
pub struct Acc {
    pub value: f32,
    /// The row position of `value` (ArgMax/ArgMin).
    pub index: usize,
}

/// The identity of `op`'s fold (the result of reducing nothing).
pub fn identity(op: ReduceOp) -> Acc {
    let value = match op {
        ReduceOp::Sum | ReduceOp::Mean => 0.0,
        ReduceOp::Prod => 1.0,
        ReduceOp::Max | ReduceOp::ArgMax => f32::NEG_INFINITY,
        ReduceOp::Min | ReduceOp::ArgMin => f32::INFINITY,
    };
    Acc { value, index: 0 }
}

/// Lanes of a block sum: independent accumulators the compiler keeps in one vector register.
const LANES: usize = 16;

/// Folds `xs` (row positions from `first`) into a fresh accumulator, in a fixed order.
pub fn fold_block(op: ReduceOp, xs: &[f32], first: usize) -> Acc {
    match op {
        ReduceOp::Sum | ReduceOp::Mean => {
            let mut lanes = [0.0f32; LANES];
            let chunks = xs.chunks_exact(LANES);
            let tail = chunks.remainder();
            for c in chunks {
                for (l, &x) in lanes.iter_mut().zip(c) {
                    *l += x;
                }
            }
            let mut s = lanes.iter().sum::<f32>();
            for &x in tail {
                s += x;
            }
            Acc { value: s, index: 0 }
        }
        ReduceOp::Prod => Acc { value: xs.iter().product(), index: 0 },
        // NaN-propagating like the kernel's `max`/`min` would be on a GPU is not promised:
        // the first extreme in index order wins, as in the interpreter.
        ReduceOp::Max => Acc { value: xs.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x)), index: 0 },
        ReduceOp::Min => Acc { value: xs.iter().fold(f32::INFINITY, |m, &x| m.min(x)), index: 0 },
        ReduceOp::ArgMax => {
            let mut best = Acc { value: f32::NEG_INFINITY, index: first };
            for (k, &x) in xs.iter().enumerate() {
                if x > best.value || k == 0 {
                    best = Acc { value: x, index: first + k };
                }
            }
            best
        }
        ReduceOp::ArgMin => {
            let mut best = Acc { value: f32::INFINITY, index: first };
            for (k, &x) in xs.iter().enumerate() {
                if x < best.value || k == 0 {
                    best = Acc { value: x, index: first + k };
                }
            }
            best
        }
    }
}

/// Combines the accumulator of an earlier part of a row with a later one.
pub fn combine(op: ReduceOp, a: Acc, b: Acc) -> Acc {
    match op {
        ReduceOp::Sum | ReduceOp::Mean => Acc { value: a.value + b.value, index: 0 },
        ReduceOp::Prod => Acc { value: a.value * b.value, index: 0 },
        ReduceOp::Max => Acc { value: a.value.max(b.value), index: 0 },
        ReduceOp::Min => Acc { value: a.value.min(b.value), index: 0 },
        ReduceOp::ArgMax => {
            if b.value > a.value {
                b
            } else {
                a
            }
        }
        ReduceOp::ArgMin => {
            if b.value < a.value {
                b
            } else {
                a
            }
        }
    }
}

/// The stored result of a finished row of `len` elements.
pub fn finish(op: ReduceOp, acc: Acc, len: usize) -> f32 {
    match op {
        ReduceOp::Mean => acc.value / len as f32,
        ReduceOp::ArgMax | ReduceOp::ArgMin => acc.index as f32,
        ReduceOp::Sum | ReduceOp::Prod | ReduceOp::Max | ReduceOp::Min => acc.value,
    }
}

/// A fused reduction: `program` runs over `rows * len` elements in the row-major order of the
/// (permuted) views `inputs`; reduction `j` folds register `folds[j].0` of each row with
/// `folds[j].1`, and output `o` (register `program.outputs[o]`) is written to `outs[o]` in
/// that same order. Returns `rows` results per reduction. Rows are cut into blocks of at most
/// [`BLOCK`] elements; each block folds alone and a row combines its blocks in order.
pub fn reduce_rows(
    program: &FusedProgram,
    inputs: &[HostView],
    rows: usize,
    len: usize,
    folds: &[(usize, ReduceOp)],
    outs: &mut [Vec<f32>],
) -> Vec<Vec<f32>> {
    let per_row = len.div_ceil(BLOCK).max(1);
    // Per (row, block) task, its slice of every element output.
    let mut tasks: Vec<Vec<&mut [f32]>> =
        (0..rows * per_row).map(|_| Vec::with_capacity(outs.len())).collect();
    for out in outs.iter_mut() {
        let mut t = 0;
        for row in out.chunks_mut(len.max(1)) {
            for (b, chunk) in row.chunks_mut(BLOCK).enumerate() {
                tasks[t + b].push(chunk);
            }
            t += per_row;
        }
    }
    let block = |(t, mut chunks): (usize, Vec<&mut [f32]>)| -> Vec<Acc> {
        let (row, b) = (t / per_row, t % per_row);
        let first = b * BLOCK;
        let n = BLOCK.min(len.saturating_sub(first));
        if n == 0 {
            return folds.iter().map(|&(_, op)| identity(op)).collect();
        }
        run_block(program, inputs, row * len + first, n, |regs| {
            for (chunk, &r) in chunks.iter_mut().zip(&program.outputs) {
                chunk.copy_from_slice(register(regs, r, n));
            }
            folds.iter().map(|&(r, op)| fold_block(op, register(regs, r, n), first)).collect()
        })
    };
    let partials: Vec<Vec<Acc>> = if rows * len < PARALLEL_MIN {
        tasks.into_iter().enumerate().map(block).collect()
    } else {
        tasks.into_par_iter().enumerate().map(block).collect()
    };
    folds
        .iter()
        .enumerate()
        .map(|(j, &(_, op))| {
            (0..rows)
                .map(|row| {
                    let parts = &partials[row * per_row..(row + 1) * per_row];
                    let acc = parts.iter().skip(1).fold(parts[0][j], |a, p| combine(op, a, p[j]));
                    finish(op, acc, len)
                })
                .collect()
        })
        .collect()
}
