//! Semantic diagnostics: name, type, shape and schedule errors, and warnings (`W` codes) about
//! specs that check but would train on values a loss does not expect.
//!
//! Every code the checker can emit is listed in [`CODES`] with its one-line meaning, and each
//! has an example in `docs/errors.md` (a test keeps the two in step). A diagnostic has one
//! primary label, secondary labels for where the shapes came from, and a help line with a
//! concrete fix when there is one.

use std::fmt;

use genc_grammar::Span;
use miette::{Diagnostic, LabeledSpan};

/// Every semantic code with what it means.
pub const CODES: &[(&str, &str)] = &[
    ("E0100", "unknown name"),
    ("E0101", "a name is defined twice"),
    ("E0102", "a `where` constraint does not hold"),
    ("E0103", "a dim is not a whole number, or divides by zero, or overflows"),
    ("E0104", "wrong number or kind of arguments"),
    ("E0105", "a value of the wrong kind (tensor, int, float, string, tuple)"),
    ("E0106", "shapes do not fit an operation"),
    ("E0107", "a value does not have the declared type"),
    ("E0108", "a definition is recursive"),
    ("E0109", "an axis is not in the tensor"),
    ("E0110", "a layer outside a net has no owner for its weights"),
    ("E0111", "a net called at different input sizes would need different weights"),
    ("E0112", "a definition does not return a value"),
    ("E0113", "a loop is too long to unroll, or its bounds are not known"),
    ("E0114", "a `minimize` objective is not a scalar"),
    ("E0115", "an optimizer's parameters do not get a gradient from its loss"),
    ("E0116", "a parameter is updated by two optimizers"),
    ("E0117", "a train-block setting is missing, repeated or contradictory"),
    ("E0118", "an autoregressive mask lets an output see its own or a later pixel"),
    ("E0119", "a gradient penalty norm is not per sample"),
    ("E0120", "`--set` names no `param`, or its value does not parse"),
    ("E0121", "a buffer is given to an optimizer or an EMA"),
    ("E0122", "an element type does not fit an operation"),
    ("E0123", "class labels run beyond the classes of the op that reads them"),
    ("E0124", "a sampler loop or branch does what the host cannot run"),
    ("W0101", "a loss is given values outside what it expects (logits to `bce`)"),
    ("W0102", "the causality check cannot decide whether a masked net is autoregressive"),
    ("W0103", "a definition hides a built-in of the same name"),
];

/// One semantic diagnostic.
#[derive(Clone, Debug, PartialEq)]
pub struct TypeError {
    pub code: &'static str,
    pub message: String,
    pub span: Span,
    pub label: String,
    pub secondary: Vec<(Span, String)>,
    pub help: Option<String>,
    /// A warning (`W` codes): reported, but the spec still checks.
    pub warning: bool,
}

impl TypeError {
    pub fn new(code: &'static str, span: Span, message: impl Into<String>) -> TypeError {
        debug_assert!(CODES.iter().any(|(c, _)| *c == code), "unregistered code {code}");
        TypeError {
            code,
            message: message.into(),
            span,
            label: String::new(),
            secondary: Vec::new(),
            help: None,
            warning: code.starts_with('W'),
        }
    }

    pub fn label(mut self, label: impl Into<String>) -> TypeError {
        self.label = label.into();
        self
    }

    pub fn note(mut self, span: Span, text: impl Into<String>) -> TypeError {
        if span != self.span && !self.secondary.iter().any(|(s, _)| *s == span) {
            self.secondary.push((span, text.into()));
        }
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> TypeError {
        self.help = Some(help.into());
        self
    }
}

impl fmt::Display for TypeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TypeError {}

impl Diagnostic for TypeError {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.code))
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(if self.warning { miette::Severity::Warning } else { miette::Severity::Error })
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help.as_ref().map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let label = (!self.label.is_empty()).then(|| self.label.clone());
        let primary = LabeledSpan::new_primary_with_span(label, self.span);
        let rest = self.secondary.iter().map(|(s, t)| LabeledSpan::new_with_span(Some(t.clone()), *s));
        // The primary first (JSON readers expect it there), the rest in source order: the
        // graphical renderer drops labels that come out of order.
        let mut rest: Vec<LabeledSpan> = rest.collect();
        rest.sort_by_key(|l| (l.offset(), l.len()));
        Some(Box::new(std::iter::once(primary).chain(rest)))
    }
}
