//! Host memory: f32 buffers drawn from a pool keyed by length, returned to it when the last
//! tensor holding them is dropped.
//!
//! A training step allocates the same sizes in the same order every time, so after the first
//! step every buffer comes from the pool: no allocation per step, as CubeCL's memory pool
//! gives the Vulkan device. The pool also tracks the bytes in use and their peak.

use std::collections::HashMap;
use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, Mutex, Weak};

/// The pool of one host device.
#[derive(Default)]
pub struct Pool {
    inner: Mutex<PoolState>,
}

#[derive(Default)]
struct PoolState {
    /// Free buffers by length.
    free: HashMap<usize, Vec<Vec<f32>>>,
    /// Bytes held by free buffers (bounded by [`FREE_BYTES`]).
    free_bytes: usize,
    /// Bytes of buffers handed out and not yet returned.
    in_use: usize,
    peak: usize,
}

/// The most bytes the pool keeps idle; beyond it returned buffers are freed.
const FREE_BYTES: usize = 2 << 30;

impl Pool {
    /// A buffer of `len` elements whose contents are unspecified (a reused buffer keeps its
    /// old values): the caller writes every element before it is read. `None` when memory
    /// cannot be had.
    pub fn take(self: &Arc<Self>, len: usize) -> Option<Vec<f32>> {
        let mut state = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let reused = state.free.get_mut(&len).and_then(Vec::pop);
        if reused.is_some() {
            state.free_bytes -= len * 4;
        }
        state.in_use += len * 4;
        state.peak = state.peak.max(state.in_use);
        drop(state);
        if reused.is_some() {
            return reused;
        }
        let mut v = Vec::new();
        if v.try_reserve_exact(len).is_err() {
            self.inner.lock().unwrap_or_else(|e| e.into_inner()).in_use -= len * 4;
            return None;
        }
        v.resize(len, 0.0);
        Some(v)
    }

    /// Wraps a buffer taken from this pool (or any `Vec`) as a shared, immutable host buffer.
    pub fn wrap(self: &Arc<Self>, data: Vec<f32>) -> HostBuffer {
        HostBuffer(Arc::new(HostMem { data, pool: Arc::downgrade(self) }))
    }

    fn give_back(&self, data: Vec<f32>) {
        let mut state = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let bytes = data.len() * 4;
        state.in_use = state.in_use.saturating_sub(bytes);
        if state.free_bytes + bytes <= FREE_BYTES {
            state.free_bytes += bytes;
            state.free.entry(data.len()).or_default().push(data);
        }
    }

    /// The most bytes of buffers in use at once since the pool was made.
    pub fn peak_bytes(&self) -> usize {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).peak
    }
}

struct HostMem {
    data: Vec<f32>,
    pool: Weak<Pool>,
}

impl Drop for HostMem {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.upgrade() {
            pool.give_back(std::mem::take(&mut self.data));
        }
    }
}

/// An immutable f32 buffer in host memory, shared by the tensors (views) that read it.
#[derive(Clone)]
pub struct HostBuffer(Arc<HostMem>);

impl Deref for HostBuffer {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.0.data
    }
}

impl fmt::Debug for HostBuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HostBuffer({} elements)", self.0.data.len())
    }
}
