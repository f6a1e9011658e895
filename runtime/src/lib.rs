//! The genc runtime: the CubeCL device layer, kernels, the executor and the training loop
//! ([`train`] one step, [`run`] a whole run with its data and cadences).
//!
//! It reads only the compiler's `Program` and knows nothing of the `.gen` syntax.
//! [`device`] opens a device — a Vulkan adapter through CubeCL (a GPU, or lavapipe) or the
//! host CPU — and holds tensors on it; [`kernels`] runs every primitive of
//! `genc_compiler::prim` on a Vulkan device and hands the host's to [`host`].

pub use genc_compiler as compiler;

pub mod checkpoint;
pub mod config;
pub mod data;
pub mod device;
pub mod executor;
pub mod host;
pub mod images;
pub mod kernels;
pub mod labels;
pub mod metrics;
pub mod npy;
pub mod optim;
pub mod profile;
pub mod run;
pub mod sample;
pub mod snapshot;
pub mod train;
