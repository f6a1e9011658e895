//! The front end of genc: the `.gen` language's grammar (pest), its AST with a span on every
//! node, a parser that recovers to report every item's errors, and the formatter.
//!
//! Invariants: nothing of pest leaves this crate; `parse` never panics and never fails (it
//! returns what it built and what went wrong); `format` is idempotent and keeps the AST.

pub mod ast;
mod diagnose;
pub mod dump;
mod error;
pub mod format;
mod lexer;
mod parser;
mod span;
mod suggest;

pub use diagnose::{STEP_ENTRIES, TRAIN_ENTRIES};
pub use error::{Delimiter, SyntaxError};
pub use lexer::{Comment, ITEM_KEYWORDS, MAX_NESTING, RESERVED};
pub use parser::parse;
pub use span::{LineIndex, Span};
pub use suggest::{did_you_mean, edit_distance};
