//! Tensor types: an element type and a symbolic shape.

use std::fmt;

use crate::dim::Dim;
use crate::prim::DType;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TensorType {
    pub dtype: DType,
    pub shape: Vec<Dim>,
}

impl TensorType {
    pub fn new(dtype: DType, shape: Vec<Dim>) -> TensorType {
        TensorType { dtype, shape }
    }

    pub fn f32(shape: Vec<Dim>) -> TensorType {
        TensorType::new(DType::F32, shape)
    }

    pub fn scalar(dtype: DType) -> TensorType {
        TensorType::new(dtype, Vec::new())
    }

    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// The number of elements, symbolically.
    pub fn numel(&self) -> Result<Dim, crate::dim::Overflow> {
        self.shape.iter().try_fold(Dim::constant(1), |acc, d| acc.mul(d))
    }

    /// The concrete shape, when no dim is symbolic.
    pub fn concrete(&self) -> Option<Vec<usize>> {
        self.shape.iter().map(|d| d.as_const().and_then(|v| usize::try_from(v).ok())).collect()
    }
}

/// `[B, 1, 28, 28]`, with a dtype prefix unless it is f32: `i32[B]`.
impl fmt::Display for TensorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.dtype != DType::F32 {
            write!(f, "{}", self.dtype)?;
        }
        write!(f, "{}", shape_text(&self.shape))
    }
}

pub fn shape_text(shape: &[Dim]) -> String {
    let dims: Vec<String> = shape.iter().map(Dim::to_string).collect();
    format!("[{}]", dims.join(", "))
}
