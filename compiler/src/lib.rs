//! The genc compiler: name resolution, the graph IR of primitive ops, the symbolic shape
//! checker, autodiff, passes, fusion and planning into a `Program`.
//!
//! It does no I/O and knows nothing of CubeCL. For now it re-exports the front end; the
//! checker and the IR arrive with the graph-IR issue.

pub use genc_grammar as grammar;
