//! The values the checker computes with while it elaborates a spec into graphs.

use crate::dim::Dim;
use crate::graph::NodeId;

/// A compile-time value. Tensors are graph nodes; integers are (possibly symbolic) dims, so a
/// size computed from `B` stays symbolic.
#[derive(Clone, Debug)]
pub enum Val {
    Tensor(NodeId),
    Int(Dim),
    Float(f64),
    Bool(bool),
    Str(String),
    Tuple(Vec<Val>),
    List(Vec<Val>),
    /// A user definition (`net`, `block`, `loss`, `sampler`) named as a value.
    Def(String),
    /// The result of an expression that already produced a diagnostic; everything built on
    /// it is poison too, so one mistake is reported once.
    Poison,
}

impl Val {
    /// What a diagnostic calls this kind of value.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Val::Tensor(_) => "a tensor",
            Val::Int(_) => "an int",
            Val::Float(_) => "a float",
            Val::Bool(_) => "a bool",
            Val::Str(_) => "a string",
            Val::Tuple(_) => "a tuple",
            Val::List(_) => "a list",
            Val::Def(_) => "a definition",
            Val::Poison => "an invalid value",
        }
    }

    pub fn is_poison(&self) -> bool {
        matches!(self, Val::Poison)
    }
}
