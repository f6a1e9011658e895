//! The primitives the host device runs through the reference interpreter's own rule: their
//! f32 data widened to f64, evaluated, and rounded back. They are rare in a training step
//! (padding, gathers and their adjoints, resampling layers, the small matrices of a flow's
//! log-determinants and inverses), and this keeps them exactly the
//! interpreter's semantics. Each is a candidate for a native loop once a spec spends real
//! time in it (pooling was one: [`super::pool`]).

use genc_compiler::interp::{self, Value};
use genc_compiler::prim::{DType, Prim};

use super::HostDevice;
use crate::device::{DeviceError, DeviceTensor};

pub fn eval(
    device: &HostDevice,
    prim: &Prim,
    inputs: &[&DeviceTensor],
    out_shape: &[usize],
    out_dtype: DType,
) -> Result<DeviceTensor, DeviceError> {
    let values: Vec<Value> = inputs
        .iter()
        .map(|t| {
            let data = device.download(t)?;
            Ok(Value {
                dtype: t.dtype,
                shape: t.shape.clone(),
                data: data.into_iter().map(f64::from).collect(),
            })
        })
        .collect::<Result<_, DeviceError>>()?;
    let refs: Vec<&Value> = values.iter().collect();
    let out = interp::eval(prim, &refs, out_shape, out_dtype, &interp::Leaves::default())
        .map_err(|e| DeviceError::Kernel { op: prim.to_string(), reason: e.to_string() })?;
    let data: Vec<f32> = out.data.iter().map(|&v| v as f32).collect();
    device.upload(out_dtype, out_shape, &data)
}
