//! `--set name=value` overrides of a spec's `param`s and bound dims, as the command line and
//! run configs hand them to the checker.

/// A `--set name=value` override of a `param` (or a bound dim).
#[derive(Clone, Debug)]
pub struct Override {
    pub name: String,
    pub value: String,
}
