//! The `genc` command-line program as a library: loading spec files, rendering diagnostics
//! for terminals and editors, and the subcommands. `main.rs` only parses arguments.
//!
//! Invariant: this is the only crate that enables miette's `fancy` renderer and that knows
//! about terminals, JSON output and exit codes.

pub mod commands;
pub mod report;
pub mod source;
