//! Strided reads of host tensors: a view (offset, shape, strides; stride 0 on broadcast axes)
//! read block by block in row-major order of its shape.
//!
//! Adjacent axes that are contiguous with each other are merged first, so a contiguous tensor
//! is one run, a broadcast bias `[1, C, 1, 1]` over `[N, C, H, W]` is runs of `H * W` copies,
//! and a transposed matrix is a strided run per row.

use crate::device::DeviceTensor;

/// A view over a host buffer, axes merged where possible.
#[derive(Clone, Debug)]
pub struct HostView<'a> {
    data: &'a [f32],
    offset: usize,
    shape: Vec<usize>,
    strides: Vec<usize>,
}

impl<'a> HostView<'a> {
    /// The view of `data` with `t`'s offset, shape and strides.
    pub fn new(data: &'a [f32], t: &DeviceTensor) -> HostView<'a> {
        HostView::from_parts(data, t.offset, &t.shape, &t.strides)
    }

    pub fn from_parts(data: &'a [f32], offset: usize, shape: &[usize], strides: &[usize]) -> HostView<'a> {
        let (shape, strides) = merge_axes(shape, strides);
        HostView { data, offset, shape, strides }
    }

    /// One run covers the whole view: its elements are `data[offset..offset + n]`.
    pub fn contiguous(&self) -> Option<&'a [f32]> {
        match (self.shape.as_slice(), self.strides.as_slice()) {
            ([], []) => self.data.get(self.offset..self.offset + 1),
            ([n], [1]) => self.data.get(self.offset..self.offset + n),
            _ => None,
        }
    }

    /// Writes elements `start..start + out.len()` (row-major in the view's shape) to `out`.
    pub fn read(&self, start: usize, out: &mut [f32]) {
        let len = out.len();
        if len == 0 {
            return;
        }
        let rank = self.shape.len();
        if rank == 0 {
            out.fill(self.data[self.offset]);
            return;
        }
        // The multi-index of `start`, and its offset.
        let mut idx = vec![0usize; rank];
        let mut rem = start;
        let mut pos = self.offset;
        for d in (0..rank).rev() {
            idx[d] = rem % self.shape[d];
            rem /= self.shape[d];
            pos += idx[d] * self.strides[d];
        }
        let last = rank - 1;
        let (extent, stride) = (self.shape[last], self.strides[last]);
        let mut filled = 0;
        while filled < len {
            let run = (len - filled).min(extent - idx[last]);
            let dst = &mut out[filled..filled + run];
            match stride {
                1 => dst.copy_from_slice(&self.data[pos..pos + run]),
                0 => dst.fill(self.data[pos]),
                s => {
                    for (k, d) in dst.iter_mut().enumerate() {
                        *d = self.data[pos + k * s];
                    }
                }
            }
            filled += run;
            if filled == len {
                break;
            }
            // Next run: the innermost index wraps, and the carry moves outward.
            pos += run * stride;
            idx[last] += run;
            let mut d = last;
            while idx[d] == self.shape[d] && d > 0 {
                pos -= self.shape[d] * self.strides[d];
                idx[d] = 0;
                d -= 1;
                idx[d] += 1;
                pos += self.strides[d];
            }
        }
    }

    /// The whole view, row-major.
    pub fn to_vec(&self) -> Vec<f32> {
        let n = self.shape.iter().product();
        let mut out = vec![0.0; n];
        self.read(0, &mut out);
        out
    }
}

/// Drops extent-1 axes and merges axis `d` into `d + 1` where `stride[d] == extent[d + 1] *
/// stride[d + 1]`: the same elements in the same order, in fewer, longer runs.
fn merge_axes(shape: &[usize], strides: &[usize]) -> (Vec<usize>, Vec<usize>) {
    let mut out_shape: Vec<usize> = Vec::with_capacity(shape.len());
    let mut out_strides: Vec<usize> = Vec::with_capacity(shape.len());
    for (&e, &s) in shape.iter().zip(strides) {
        if e == 1 {
            continue;
        }
        if let (Some(pe), Some(ps)) = (out_shape.last_mut(), out_strides.last_mut()) {
            if *ps == e * s {
                *pe *= e;
                *ps = s;
                continue;
            }
        }
        out_shape.push(e);
        out_strides.push(s);
    }
    if shape.contains(&0) {
        return (vec![0], vec![1]);
    }
    (out_shape, out_strides)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(data: &[f32], offset: usize, shape: &[usize], strides: &[usize]) -> Vec<f32> {
        let n: usize = shape.iter().product();
        (0..n)
            .map(|mut flat| {
                let mut at = offset;
                for (&e, &s) in shape.iter().zip(strides).rev() {
                    at += (flat % e) * s;
                    flat /= e;
                }
                data[at]
            })
            .collect()
    }

    #[test]
    fn blocks_of_strided_views_read_in_row_major_order() {
        let data: Vec<f32> = (0..200).map(|x| x as f32).collect();
        let cases: [(usize, &[usize], &[usize]); 6] = [
            (0, &[4, 5], &[5, 1]),
            (3, &[5, 4], &[1, 5]),
            (1, &[2, 3, 4], &[0, 4, 1]),
            (2, &[3, 1, 7], &[0, 9, 0]),
            (0, &[], &[]),
            (5, &[2, 3, 2, 5], &[60, 1, 30, 3]),
        ];
        for (offset, shape, strides) in cases {
            let want = reference(&data, offset, shape, strides);
            let view = HostView::from_parts(&data, offset, shape, strides);
            for block in [1, 3, 7, 64] {
                let mut got = vec![f32::NAN; want.len()];
                for (b, chunk) in got.chunks_mut(block).enumerate() {
                    view.read(b * block, chunk);
                }
                assert_eq!(got, want, "{shape:?} {strides:?} in blocks of {block}");
            }
        }
    }
}
