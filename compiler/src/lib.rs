//! The genc compiler: name resolution, the graph IR of primitive ops, the symbolic shape
//! checker, autodiff, passes, fusion and planning into a `Program`.
//!
//! It does no I/O and knows nothing of CubeCL.

pub use genc_grammar as grammar;

pub mod interp;
pub mod prim;
pub mod random;
