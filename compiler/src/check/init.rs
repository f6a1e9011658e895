//! `init G(std: 0.02)` in the `train` block: DCGAN's initialisation of a net's layers
//! (pytorch/examples' `weights_init`, the DCGAN paper's "zero-centered Normal distribution
//! with standard deviation 0.02"), replacing genc's defaults (PyTorch's, `U(±1/sqrt(fan_in))`).
//!
//! Under the named net or layer: the weights of `linear`, `conv2d`, `conv_transpose2d` and
//! `masked_conv2d` ~ N(0, std) and their biases 0; the scales of `batch_norm`, `layer_norm`,
//! `instance_norm` and `group_norm` ~ N(1, std) and their shifts 0. Other tensors (embeddings, buffers) keep
//! their initialisers, and so does a weight whose layer was given its own `init:`.

use genc_grammar::ast;

use super::Checker;
use crate::diag::TypeError;
use crate::params::{Entry, Init};

const WEIGHTED: &[&str] = &["linear", "conv2d", "conv_transpose2d", "masked_conv2d"];
const NORMS: &[&str] = &["batch_norm", "layer_norm", "instance_norm", "group_norm"];

impl Checker<'_> {
    /// Checks `init PATH(std: S)`: a net (or a layer in one) and a positive, finite `std`.
    pub(super) fn check_init(&mut self, target: &ast::Path, args: &[ast::Arg]) {
        self.net_path(target, "an initialisation");
        let (mut std, mut unknown) = (None, false);
        for a in args {
            let value = self.number_arg(&a.value);
            match a.name.as_ref().map(|n| n.name.as_str()) {
                Some("std") | None if std.is_none() => std = Some((value, a.value.span)),
                Some(other) if other != "std" => {
                    unknown = true;
                    self.error(
                        TypeError::new("E0104", a.value.span, format!("`init` has no argument `{other}`"))
                            .label("unknown argument")
                            .help(
                                "`init G(std: 0.02)`: weights ~ N(0, std), norm scales ~ N(1, std), biases 0",
                            ),
                    );
                }
                _ => {
                    self.error(
                        TypeError::new("E0104", a.value.span, "`init` takes `std` once".to_string())
                            .label("a second value"),
                    );
                }
            }
        }
        match std {
            // A misspelt `std` was reported as such: one mistake, one diagnostic.
            None if unknown => {}
            None => {
                self.error(
                    TypeError::new(
                        "E0104",
                        target.span,
                        "`init` needs `std`, the normal's standard deviation",
                    )
                    .label("no `std`")
                    .help("write `init G(std: 0.02)` (DCGAN's initialisation)"),
                );
            }
            Some((Some(s), _)) if s.is_finite() && s > 0.0 => {}
            Some((Some(s), span)) => {
                self.error(
                    TypeError::new("E0104", span, format!("`std` must be positive and finite, found {s}"))
                        .label("not a standard deviation"),
                );
            }
            // Not a number: reported by the evaluation.
            Some((None, _)) => {}
        }
    }

    /// Sets the initialisers under `target` (checked by [`Checker::check_init`]).
    pub(super) fn apply_init(&mut self, target: &ast::Path, args: &[ast::Arg]) {
        let Some(std) = args.iter().find_map(|a| self.number_arg(&a.value)) else { return };
        let prefix = target.segments.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(".");
        let dotted = format!("{prefix}.");
        for (index, entry) in self.table.params.iter_mut().enumerate() {
            if self.explicit_init.contains(&index) {
                continue;
            }
            if entry.name == prefix || entry.name.starts_with(&dotted) {
                if let Some(init) = dcgan_init(entry, std) {
                    entry.init = init;
                }
            }
        }
    }

    fn number_arg(&mut self, e: &ast::Expr) -> Option<f64> {
        match self.eval(e) {
            super::Val::Float(x) => Some(x),
            super::Val::Int(d) => d.as_const().map(|x| x as f64),
            _ => None,
        }
    }
}

/// The initialiser of a trainable tensor under DCGAN's rule; `None` to keep its own.
fn dcgan_init(entry: &Entry, std: f64) -> Option<Init> {
    let mut segments = entry.name.rsplit('.');
    let tensor = segments.next()?;
    let layer = segments.next()?.trim_end_matches(|c: char| c.is_ascii_digit());
    match (tensor, layer) {
        ("weight", l) if WEIGHTED.contains(&l) => Some(Init::Normal { mean: 0.0, std }),
        ("weight", l) if NORMS.contains(&l) => Some(Init::Normal { mean: 1.0, std }),
        ("bias", l) if WEIGHTED.contains(&l) || NORMS.contains(&l) => Some(Init::Zeros),
        _ => None,
    }
}
