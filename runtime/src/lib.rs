//! The genc runtime: the CubeCL device layer, kernels, the executor and the training loop.
//!
//! It reads only the compiler's `Program` and knows nothing of the `.gen` syntax.
//! [`device`] finds and opens a Vulkan device (lavapipe where there is no GPU) and holds
//! tensors on it; [`kernels`] runs every primitive of `genc_compiler::prim` there.

pub use genc_compiler as compiler;

pub mod checkpoint;
pub mod config;
pub mod data;
pub mod device;
pub mod executor;
pub mod images;
pub mod kernels;
pub mod optim;
pub mod sample;
pub mod snapshot;
pub mod train;
