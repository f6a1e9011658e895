//! Linear algebra on small square matrices `[.., n, n]`, each matrix on its own: `log |det|`
//! by LU with partial pivoting, the inverse by Gauss-Jordan elimination with partial
//! pivoting, both in f64. A singular matrix gives `-inf` and non-finite entries, as
//! `torch.linalg.slogdet` gives `-inf`; the device kernels follow the same steps in f32.

use super::{ErrorKind, Value};
use crate::prim::DType;

/// The extent `n` of the matrices and their count, or a shape error.
fn matrices(x: &Value) -> Result<(usize, usize), ErrorKind> {
    let r = x.shape.len();
    if r < 2 || x.shape[r - 1] != x.shape[r - 2] {
        return Err(ErrorKind::Shape(format!("square matrices [.., n, n] expected, found {:?}", x.shape)));
    }
    let n = x.shape[r - 1];
    Ok((n, x.data.len() / (n * n).max(1)))
}

/// LU of `a` (row-major n x n) in place with partial pivoting; the number of row swaps, or
/// `None` for a singular matrix.
fn lu(a: &mut [f64], n: usize) -> Option<usize> {
    let mut swaps = 0;
    for k in 0..n {
        let pivot = (k..n).max_by(|&i, &j| a[i * n + k].abs().total_cmp(&a[j * n + k].abs()))?;
        if a[pivot * n + k] == 0.0 {
            return None;
        }
        if pivot != k {
            for j in 0..n {
                a.swap(k * n + j, pivot * n + j);
            }
            swaps += 1;
        }
        for i in k + 1..n {
            let f = a[i * n + k] / a[k * n + k];
            a[i * n + k] = f;
            for j in k + 1..n {
                a[i * n + j] -= f * a[k * n + j];
            }
        }
    }
    Some(swaps)
}

pub fn logabsdet(x: &Value) -> Result<Value, ErrorKind> {
    let (n, count) = matrices(x)?;
    let mut data = Vec::with_capacity(count);
    for m in x.data.chunks(n * n).take(count) {
        let mut a = m.to_vec();
        data.push(match lu(&mut a, n) {
            Some(_) => (0..n).map(|k| a[k * n + k].abs().ln()).sum(),
            None => f64::NEG_INFINITY,
        });
    }
    Ok(Value { dtype: DType::F32, shape: x.shape[..x.shape.len() - 2].to_vec(), data })
}

pub fn inverse(x: &Value) -> Result<Value, ErrorKind> {
    let (n, count) = matrices(x)?;
    let mut data = Vec::with_capacity(x.data.len());
    for m in x.data.chunks(n * n).take(count) {
        data.extend(gauss_jordan(m, n));
    }
    Ok(Value { dtype: DType::F32, shape: x.shape.clone(), data })
}

/// The inverse of one row-major n x n matrix; NaNs when it is singular.
fn gauss_jordan(m: &[f64], n: usize) -> Vec<f64> {
    let mut a = m.to_vec();
    let mut inv: Vec<f64> = (0..n * n).map(|i| f64::from(u8::from(i / n == i % n))).collect();
    for k in 0..n {
        let pivot = (k..n).max_by(|&i, &j| a[i * n + k].abs().total_cmp(&a[j * n + k].abs())).unwrap_or(k);
        if a[pivot * n + k] == 0.0 {
            return vec![f64::NAN; n * n];
        }
        for j in 0..n {
            a.swap(k * n + j, pivot * n + j);
            inv.swap(k * n + j, pivot * n + j);
        }
        let p = a[k * n + k];
        for j in 0..n {
            a[k * n + j] /= p;
            inv[k * n + j] /= p;
        }
        for i in (0..n).filter(|&i| i != k) {
            let f = a[i * n + k];
            if f != 0.0 {
                for j in 0..n {
                    a[i * n + j] -= f * a[k * n + j];
                    inv[i * n + j] -= f * inv[k * n + j];
                }
            }
        }
    }
    inv
}
