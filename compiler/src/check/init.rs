//! `init G(std: 0.02)` in the `train` block: DCGAN's initialisation of a net's layers
//! (pytorch/examples' `weights_init`, the DCGAN paper's "zero-centered Normal distribution
//! with standard deviation 0.02"), replacing genc's defaults (PyTorch's, `U(±1/sqrt(fan_in))`).
//! And `init conv2d = normal(0, 0.02)`: one initialiser for a tensor of every layer of a
//! kind in the spec (`conv2d` its weights, `conv2d.bias` its biases), with
//! `torch.nn.init`'s rules: `normal(mean, std)`, `uniform(a, b)`, `orthogonal(gain)`, `zeros`,
//! `ones`. A layer's own `init:` wins over both, and `init NET(std:)` over a kind's default.
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
const RULES: &str = "normal(mean, std), uniform(a, b), orthogonal(gain), zeros or ones";

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

    /// Checks `init KIND[.TENSOR] = RULE` and returns the layer kind, the tensor (`weight`
    /// unless named) and the initialiser; `None` after reporting what is wrong.
    pub(super) fn init_default(
        &mut self,
        target: &ast::Path,
        rule: &ast::Expr,
    ) -> Option<(String, String, Init)> {
        let kinds = || WEIGHTED.iter().chain(NORMS).chain(&["embedding"]).copied();
        let segments: Vec<&str> = target.segments.iter().map(|s| s.name.as_str()).collect();
        let (kind, tensor) = match segments[..] {
            [kind] => (kind, "weight"),
            [kind, tensor] => (kind, tensor),
            _ => ("", ""),
        };
        if !kinds().any(|k| k == kind) {
            let mut e =
                TypeError::new("E0100", target.span, format!("`{}` is not a layer kind", segments.join(".")))
                    .label("not a layer kind");
            e = match genc_grammar::did_you_mean(kind, kinds()) {
                Some(s) => e.help(format!("did you mean `{s}`? (a net's layers: `init G(std: 0.02)`)")),
                None => e.help(format!(
                    "`init KIND = RULE` names a layer kind: {} (a net's layers: `init G(std: 0.02)`)",
                    kinds().collect::<Vec<_>>().join(", ")
                )),
            };
            self.error(e);
            return None;
        }
        if tensor != "weight" && (tensor != "bias" || kind == "embedding") {
            let has = if kind == "embedding" { "weight" } else { "weight and bias" };
            self.error(
                TypeError::new("E0104", target.span, format!("`{kind}` has no tensor `{tensor}`"))
                    .label("not one of its tensors")
                    .help(format!("`{kind}` has {has}")),
            );
            return None;
        }
        let init = self.init_rule(rule)?;
        Some((kind.to_string(), tensor.to_string(), init))
    }

    /// `normal(mean, std)`, `uniform(a, b)`, `orthogonal(gain)`, `zeros`, `ones`, with
    /// `torch.nn.init`'s argument order and defaults.
    fn init_rule(&mut self, rule: &ast::Expr) -> Option<Init> {
        let bad = |message: String, label: &str| {
            TypeError::new("E0105", rule.span, message)
                .label(label)
                .help(format!("an initialiser is {RULES}"))
        };
        let (name, args): (&str, &[ast::Arg]) = match &rule.kind {
            ast::ExprKind::Name(n) => (n.as_str(), &[]),
            ast::ExprKind::Call(f, args) => match &f.kind {
                ast::ExprKind::Name(n) => (n.as_str(), args.as_slice()),
                _ => ("", &[]),
            },
            _ => ("", &[]),
        };
        let params: &[(&str, f64)] = match name {
            "zeros" | "ones" => &[],
            "normal" => &[("mean", 0.0), ("std", 1.0)],
            "uniform" => &[("a", 0.0), ("b", 1.0)],
            "orthogonal" => &[("gain", 1.0)],
            _ => {
                self.error(bad(
                    format!("`{}` is not an initialiser", genc_grammar::format::expr(rule)),
                    "unknown initialiser",
                ));
                return None;
            }
        };
        let mut values: Vec<f64> = params.iter().map(|(_, d)| *d).collect();
        for (i, a) in args.iter().enumerate() {
            let slot = match &a.name {
                None if i < params.len() => Some(i),
                None => None,
                Some(n) => params.iter().position(|(p, _)| *p == n.name),
            };
            let Some(slot) = slot else {
                let takes = params.iter().map(|(p, _)| *p).collect::<Vec<_>>().join(", ");
                self.error(
                    TypeError::new(
                        "E0104",
                        a.span,
                        format!(
                            "`{name}` takes {}",
                            if takes.is_empty() { "no arguments".to_string() } else { takes }
                        ),
                    )
                    .label("unknown argument"),
                );
                return None;
            };
            match self.number_arg(&a.value) {
                Some(x) if x.is_finite() => values[slot] = x,
                Some(x) => {
                    self.error(
                        TypeError::new(
                            "E0105",
                            a.value.span,
                            format!("`{}` must be finite, found {x}", params[slot].0),
                        )
                        .label("not finite"),
                    );
                    return None;
                }
                None => return None,
            }
        }
        let init = match name {
            "zeros" => Init::Zeros,
            "ones" => Init::Ones,
            "normal" if values[1] > 0.0 => Init::Normal { mean: values[0], std: values[1] },
            "uniform" if values[0] < values[1] => match values[..] {
                [a, b] if a == -b => Init::Uniform { bound: b },
                [a, b] => Init::UniformRange { lo: a, hi: b },
                _ => return None,
            },
            "orthogonal" => Init::Orthogonal { gain: values[0] },
            "normal" => {
                self.error(bad(
                    format!("`std` must be positive, found {}", values[1]),
                    "not a standard deviation",
                ));
                return None;
            }
            _ => {
                self.error(bad(
                    format!("`uniform(a, b)` needs a < b, found a = {} and b = {}", values[0], values[1]),
                    "an empty range",
                ));
                return None;
            }
        };
        Some(init)
    }

    /// Sets every `KIND.TENSOR` parameter without its own `init:` to the default `rule`
    /// (checked by [`Checker::init_default`]).
    pub(super) fn apply_init_default(&mut self, target: &ast::Path, rule: &ast::Expr) {
        let errors = self.errors.len();
        let found = self.init_default(target, rule);
        self.errors.truncate(errors);
        let Some((kind, tensor, init)) = found else { return };
        for (index, entry) in self.table.params.iter_mut().enumerate() {
            if self.explicit_init.contains(&index) {
                continue;
            }
            let mut segments = entry.name.rsplit('.');
            let (t, layer) = (segments.next(), segments.next());
            let layer = layer.map(|l| l.trim_end_matches(|c: char| c.is_ascii_digit()));
            if t == Some(tensor.as_str()) && layer == Some(kind.as_str()) {
                entry.init = init.clone();
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
