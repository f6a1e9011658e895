//! The genc compiler: name resolution, the graph IR of primitive ops, the symbolic shape
//! checker, autodiff, passes, fusion and planning into a `Program`.
//!
//! It does no I/O and knows nothing of CubeCL.

pub use genc_grammar as grammar;

pub mod autodiff;
pub mod check;
pub mod data_source;
pub mod diag;
pub mod dim;
pub mod fuse;
pub mod graph;
pub mod host;
pub mod interp;
pub mod lr_schedule;
pub mod optimizer;
pub mod option_table;
pub mod overrides;
pub mod params;
pub mod passes;
pub mod plan;
pub mod prim;
pub mod program;
pub mod random;
pub mod sampler;
pub mod shape_rules;
pub mod stages;
pub mod train_spec;
pub mod types;
pub mod update;
