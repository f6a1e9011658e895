//! The genc runtime: the CubeCL device layer, kernels, the executor and the training loop.
//!
//! It reads only the compiler's `Program` and knows nothing of the `.gen` syntax. The device
//! layer and kernels arrive with the kernels issue.

pub use genc_compiler as compiler;
