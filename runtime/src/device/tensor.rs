//! Tensors on the device: a buffer handle plus a strided view of it (shape, strides, offset).
//!
//! Every element is stored as one f32 whatever the logical dtype: i32 values (labels,
//! indices) and bools (0 or 1) are exact in f32 up to 2^24, which covers every index a model
//! here needs; upload and download convert. Views (permute, slice, broadcast) share the
//! buffer and change only strides and offset; kernels read through the view.

use cubecl::server::Handle;
use genc_compiler::interp::Value;
use genc_compiler::prim::DType;

use super::{CubeDevice, Device, DeviceError};
use crate::host::HostBuffer;

/// The memory a tensor views: a buffer of a Vulkan device, or of the host device.
#[derive(Clone, Debug)]
pub enum Buffer {
    Cube(Handle),
    Host(HostBuffer),
}

/// A tensor on the device. Cloning shares the buffer.
#[derive(Clone, Debug)]
pub struct DeviceTensor {
    pub dtype: DType,
    pub shape: Vec<usize>,
    /// Element strides of the view (0 on broadcast axes).
    pub strides: Vec<usize>,
    /// Element offset of the view's first element in the buffer.
    pub offset: usize,
    /// `None` for a zero-size tensor (no buffer is allocated).
    pub buffer: Option<Buffer>,
}

/// Row-major strides of `shape`.
pub fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![0; shape.len()];
    let mut acc = 1;
    for (s, &d) in strides.iter_mut().zip(shape).rev() {
        *s = acc;
        acc *= d;
    }
    strides
}

impl DeviceTensor {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// True when the view is the row-major layout of its buffer from offset 0.
    pub fn is_contiguous(&self) -> bool {
        self.offset == 0 && self.strides_match_contiguous()
    }

    /// True when the strides are row-major for the shape (the offset may be anything).
    pub fn strides_match_contiguous(&self) -> bool {
        let want = contiguous_strides(&self.shape);
        self.shape.iter().zip(self.strides.iter().zip(&want)).all(|(&d, (&s, &w))| d == 1 || s == w)
    }

    /// A fresh row-major tensor (uninitialised on a Vulkan device, zeros on the host), or
    /// [`DeviceError::TooLarge`] when it does not fit one buffer of the device.
    pub fn empty(device: &Device, dtype: DType, shape: &[usize]) -> Result<DeviceTensor, DeviceError> {
        match device {
            Device::Cube(d) => Self::cube_empty(d, dtype, shape),
            Device::Host(h) => h.zeros(dtype, shape),
        }
    }

    /// A fresh, uninitialised row-major tensor on a Vulkan device, or
    /// [`DeviceError::TooLarge`] when it does not fit one buffer of the device (CubeCL would
    /// accept it and fail at the next read).
    pub(crate) fn cube_empty(
        device: &CubeDevice,
        dtype: DType,
        shape: &[usize],
    ) -> Result<DeviceTensor, DeviceError> {
        let n = fits(device, shape)?;
        Ok(Self::contiguous(dtype, shape, (n > 0).then(|| Buffer::Cube(device.client().empty(n * 4)))))
    }

    /// A contiguous tensor that is all of `buffer`.
    pub(crate) fn contiguous(dtype: DType, shape: &[usize], buffer: Option<Buffer>) -> DeviceTensor {
        DeviceTensor { dtype, shape: shape.to_vec(), strides: contiguous_strides(shape), offset: 0, buffer }
    }

    /// Uploads row-major host data (converted to f32).
    pub fn from_f64(
        device: &Device,
        dtype: DType,
        shape: &[usize],
        data: &[f64],
    ) -> Result<DeviceTensor, DeviceError> {
        let values: Vec<f32> = data.iter().map(|&v| v as f32).collect();
        Self::from_f32(device, dtype, shape, &values)
    }

    /// Uploads row-major f32 data.
    pub fn from_f32(
        device: &Device,
        dtype: DType,
        shape: &[usize],
        data: &[f32],
    ) -> Result<DeviceTensor, DeviceError> {
        let n = shape.iter().product::<usize>();
        if n != data.len() {
            return Err(DeviceError::Kernel {
                op: "upload".into(),
                reason: format!("shape {shape:?} has {n} elements, the data {}", data.len()),
            });
        }
        match device {
            Device::Host(h) => h.upload(dtype, shape, data),
            Device::Cube(device) => {
                fits(device, shape)?;
                let handle = (!data.is_empty())
                    .then(|| Buffer::Cube(device.client().create_from_slice(bytes_of(data))));
                Ok(Self::contiguous(dtype, shape, handle))
            }
        }
    }

    /// Downloads the view's elements in row-major order.
    pub fn to_f32(&self, device: &Device) -> Result<Vec<f32>, DeviceError> {
        let n = self.numel();
        if n == 0 || self.buffer.is_none() {
            return Ok(Vec::new());
        }
        let device = match device {
            Device::Host(h) => return h.download(self),
            Device::Cube(d) => d,
        };
        let t = if self.is_contiguous() {
            self.clone()
        } else {
            crate::kernels::movement::materialize(device, self)?
        };
        let Some(Buffer::Cube(handle)) = &t.buffer else {
            return Err(DeviceError::Read { reason: "a host tensor was read from a Vulkan device".into() });
        };
        let bytes = device
            .client()
            .read_one(handle.clone())
            .map_err(|e| DeviceError::Read { reason: format!("{e:?}") })?;
        let mut out: Vec<f32> =
            bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        out.truncate(n);
        if out.len() != n {
            return Err(DeviceError::Read { reason: format!("expected {n} values, got {}", out.len()) });
        }
        Ok(out)
    }

    /// Downloads as f64 (i32 and bool values are exact integers).
    pub fn to_f64(&self, device: &Device) -> Result<Vec<f64>, DeviceError> {
        Ok(self.to_f32(device)?.into_iter().map(f64::from).collect())
    }

    /// Uploads an interpreter value (f32 tensors are rounded to f32).
    pub fn from_value(device: &Device, value: &Value) -> Result<DeviceTensor, DeviceError> {
        Self::from_f64(device, value.dtype, &value.shape, &value.data)
    }

    /// Downloads into an interpreter value.
    pub fn to_value(&self, device: &Device) -> Result<Value, DeviceError> {
        Ok(Value { dtype: self.dtype, shape: self.shape.clone(), data: self.to_f64(device)? })
    }

    /// A view with axes reordered: `out.shape[i] = shape[perm[i]]`. No copy.
    pub fn permuted(&self, perm: &[usize]) -> DeviceTensor {
        DeviceTensor {
            shape: perm.iter().map(|&p| self.shape[p]).collect(),
            strides: perm.iter().map(|&p| self.strides[p]).collect(),
            ..self.clone()
        }
    }

    /// A view of `len` elements along `axis` starting at `start`, every `step`-th. No copy.
    pub fn sliced(&self, axis: usize, start: usize, step: usize, len: usize) -> DeviceTensor {
        let mut v = self.clone();
        if len > 0 {
            v.offset += start * self.strides[axis];
        }
        v.strides[axis] *= step;
        v.shape[axis] = len;
        v
    }

    /// A view with `shape` that repeats extent-1 axes and missing leading axes (numpy's rule;
    /// a bias `[C]` against `[N, C]`). No copy.
    pub fn broadcast_to(&self, shape: &[usize]) -> DeviceTensor {
        let lift = shape.len().saturating_sub(self.shape.len());
        let dims = std::iter::repeat_n((1, 0), lift)
            .chain(self.shape.iter().copied().zip(self.strides.iter().copied()));
        let strides = dims.zip(shape).map(|((d, s), &o)| if d == o { s } else { 0 });
        DeviceTensor { strides: strides.collect(), shape: shape.to_vec(), ..self.clone() }
    }

    /// The same elements with a new shape; a view when the tensor is contiguous.
    pub fn reshaped(&self, device: &Device, shape: &[usize]) -> Result<DeviceTensor, DeviceError> {
        match device {
            Device::Cube(d) => self.cube_reshaped(d, shape),
            Device::Host(h) => h.reshaped(self, shape),
        }
    }

    pub(crate) fn cube_reshaped(
        &self,
        device: &CubeDevice,
        shape: &[usize],
    ) -> Result<DeviceTensor, DeviceError> {
        let base = if self.strides_match_contiguous() {
            self.clone()
        } else {
            crate::kernels::movement::materialize(device, self)?
        };
        Ok(DeviceTensor { shape: shape.to_vec(), strides: contiguous_strides(shape), ..base })
    }
}

/// The element count of `shape` when its f32 buffer fits the device's largest buffer.
fn fits(device: &CubeDevice, shape: &[usize]) -> Result<usize, DeviceError> {
    let limit = device.info().max_buffer_bytes;
    let too_large = || DeviceError::TooLarge { shape: shape.to_vec(), bytes: u64::MAX, limit };
    let n = shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d)).ok_or_else(too_large)?;
    let bytes = (n as u64).checked_mul(4).ok_or_else(too_large)?;
    if bytes > limit {
        return Err(DeviceError::TooLarge { shape: shape.to_vec(), bytes, limit });
    }
    Ok(n)
}

fn bytes_of(data: &[f32]) -> &[u8] {
    // f32 has no padding and every bit pattern of u8 is valid: a plain reinterpretation.
    <f32 as cubecl::prelude::CubeElement>::as_bytes(data)
}
