//! Optimizers (`optimizer opt = adam(G, lr: 1e-4, betas: (0.5, 0.999))`): the typed
//! optimizer and the option table that the checker, its "did you mean" help and the docs
//! share. Each kind takes only its own options (an `adam(.., momentum: 0.9)` is a diagnostic,
//! not an option silently ignored), with `torch.optim`'s defaults; the runtime's update rules
//! follow `torch.optim` too.

use crate::check::{OptionValue, Options};
use crate::option_table::{self, OptionDoc, OptionProblem, ValueKind};

/// An optimizer with every option resolved.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OptimizerConfig {
    pub kind: OptimizerKind,
    pub lr: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// Clip the global norm of the gradients to this before the update.
    pub grad_clip: Option<f64>,
}

/// The update rule and its own settings.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum OptimizerKind {
    Sgd {
        momentum: f64,
        nesterov: bool,
    },
    /// Adam, or AdamW when `decoupled` (weight decay applied to the weights, not the gradient).
    Adam {
        betas: (f64, f64),
        decoupled: bool,
    },
    RmsProp {
        alpha: f64,
    },
    Adagrad,
}

/// One optimizer kind: its name, what it does, its PyTorch counterpart, its options.
#[derive(Clone, Copy, Debug)]
pub struct OptimizerDoc {
    pub name: &'static str,
    pub doc: &'static str,
    pub pytorch: &'static str,
    pub options: &'static [OptionDoc],
}

const fn lr(default: &'static str) -> OptionDoc {
    OptionDoc {
        name: "lr",
        kind: ValueKind::NonNegative,
        positional: false,
        required: false,
        default,
        doc: "the learning rate",
    }
}

const fn eps(default: &'static str) -> OptionDoc {
    OptionDoc {
        name: "eps",
        kind: ValueKind::Positive,
        positional: false,
        required: false,
        default,
        doc: "added to the denominator",
    }
}

const fn weight_decay(default: &'static str) -> OptionDoc {
    OptionDoc {
        name: "weight_decay",
        kind: ValueKind::NonNegative,
        positional: false,
        required: false,
        default,
        doc: "L2 penalty (AdamW: decoupled decay of the weights)",
    }
}

const GRAD_CLIP: OptionDoc = OptionDoc {
    name: "grad_clip",
    kind: ValueKind::Positive,
    positional: false,
    required: false,
    default: "none",
    doc: "the gradients' global norm is clipped to this before the update",
};

const BETAS: OptionDoc = OptionDoc {
    name: "betas",
    kind: ValueKind::FractionPair,
    positional: false,
    required: false,
    default: "(0.9, 0.999)",
    doc: "decay rates of the first and second moment estimates",
};

/// Every optimizer, in the order the docs list them.
pub const OPTIMIZERS: &[OptimizerDoc] = &[
    OptimizerDoc {
        name: "sgd",
        doc: "stochastic gradient descent, with optional (Nesterov) momentum",
        pytorch: "SGD",
        options: &[
            lr("1e-3"),
            OptionDoc {
                name: "momentum",
                kind: ValueKind::Fraction,
                positional: false,
                required: false,
                default: "0",
                doc: "momentum factor",
            },
            OptionDoc {
                name: "nesterov",
                kind: ValueKind::Bool,
                positional: false,
                required: false,
                default: "false",
                doc: "Nesterov momentum",
            },
            weight_decay("0"),
            GRAD_CLIP,
        ],
    },
    OptimizerDoc {
        name: "adam",
        doc: "Adam",
        pytorch: "Adam",
        options: &[lr("1e-3"), BETAS, eps("1e-8"), weight_decay("0"), GRAD_CLIP],
    },
    OptimizerDoc {
        name: "adamw",
        doc: "Adam with decoupled weight decay",
        pytorch: "AdamW",
        options: &[lr("1e-3"), BETAS, eps("1e-8"), weight_decay("1e-2"), GRAD_CLIP],
    },
    OptimizerDoc {
        name: "rmsprop",
        doc: "RMSprop (no momentum, not centred)",
        pytorch: "RMSprop",
        options: &[
            lr("1e-2"),
            OptionDoc {
                name: "alpha",
                kind: ValueKind::Fraction,
                positional: false,
                required: false,
                default: "0.99",
                doc: "smoothing constant of the squared-gradient average",
            },
            eps("1e-8"),
            weight_decay("0"),
            GRAD_CLIP,
        ],
    },
    OptimizerDoc {
        name: "adagrad",
        doc: "Adagrad",
        pytorch: "Adagrad",
        options: &[lr("1e-2"), eps("1e-10"), weight_decay("0"), GRAD_CLIP],
    },
];

/// The table entry of optimizer `name`.
pub fn optimizer_doc(name: &str) -> Option<&'static OptimizerDoc> {
    OPTIMIZERS.iter().find(|o| o.name == name)
}

impl OptimizerKind {
    /// The name a spec gives this kind (`adamw` for decoupled Adam).
    pub fn name(&self) -> &'static str {
        match self {
            OptimizerKind::Sgd { .. } => "sgd",
            OptimizerKind::Adam { decoupled: false, .. } => "adam",
            OptimizerKind::Adam { decoupled: true, .. } => "adamw",
            OptimizerKind::RmsProp { .. } => "rmsprop",
            OptimizerKind::Adagrad => "adagrad",
        }
    }
}

impl OptimizerConfig {
    /// The optimizer `kind(options)`, each option checked against the kind's table. The nets
    /// it trains (its positional arguments) are not options: leave them out.
    pub fn from_options(kind: &str, options: &Options) -> Result<OptimizerConfig, OptionProblem> {
        let doc = optimizer_doc(kind).ok_or_else(|| {
            let names: Vec<&'static str> = OPTIMIZERS.iter().map(|o| o.name).collect();
            option_table::unknown_kind("optimizer", kind, &names)
        })?;
        let values = option_table::resolve(kind, doc.options, options)?;
        let get = |name: &str| values.iter().find(|(o, _)| o.name == name).map(|(_, v)| *v);
        let number = |name: &str| get(name).and_then(OptionValue::number);
        // The documented default of an option of this kind.
        let default = |name: &str| {
            doc.options
                .iter()
                .find(|o| o.name == name)
                .and_then(|o| o.default.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        let or_default = |name: &str| number(name).unwrap_or_else(|| default(name));
        let kind = match doc.name {
            "sgd" => OptimizerKind::Sgd {
                momentum: or_default("momentum"),
                nesterov: matches!(get("nesterov"), Some(OptionValue::Bool(true))),
            },
            "adam" | "adamw" => {
                let betas = match get("betas").and_then(OptionValue::list) {
                    Some([b1, b2]) => (*b1, *b2),
                    _ => (0.9, 0.999),
                };
                OptimizerKind::Adam { betas, decoupled: doc.name == "adamw" }
            }
            "rmsprop" => OptimizerKind::RmsProp { alpha: or_default("alpha") },
            _ => OptimizerKind::Adagrad,
        };
        Ok(OptimizerConfig {
            kind,
            lr: or_default("lr"),
            eps: if doc.options.iter().any(|o| o.name == "eps") { or_default("eps") } else { 0.0 },
            weight_decay: or_default("weight_decay"),
            grad_clip: number("grad_clip"),
        })
    }
}

/// The optimizers as a Markdown table, the section of docs/language.md that a test keeps in
/// step with this table.
pub fn docs_table() -> String {
    let mut out = String::from(
        "| optimizer | what it does | options (default) | PyTorch |\n| --- | --- | --- | --- |\n",
    );
    for o in OPTIMIZERS {
        out += &format!(
            "| `{}` | {} | {} | `torch.optim.{}` |\n",
            o.name,
            o.doc,
            option_table::docs_cell(o.options),
            o.pytorch
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::option_table::options;

    #[test]
    fn defaults_are_pytorchs() {
        let sgd = OptimizerConfig::from_options("sgd", &Options::new()).unwrap_or_else(|p| panic!("{p:?}"));
        assert_eq!(
            sgd,
            OptimizerConfig {
                kind: OptimizerKind::Sgd { momentum: 0.0, nesterov: false },
                lr: 1e-3,
                eps: 0.0,
                weight_decay: 0.0,
                grad_clip: None
            }
        );
        let adamw =
            OptimizerConfig::from_options("adamw", &Options::new()).unwrap_or_else(|p| panic!("{p:?}"));
        assert_eq!(adamw.kind, OptimizerKind::Adam { betas: (0.9, 0.999), decoupled: true });
        assert_eq!((adamw.lr, adamw.eps, adamw.weight_decay), (1e-3, 1e-8, 1e-2));
        let rms =
            OptimizerConfig::from_options("rmsprop", &Options::new()).unwrap_or_else(|p| panic!("{p:?}"));
        assert_eq!((rms.kind, rms.lr), (OptimizerKind::RmsProp { alpha: 0.99 }, 1e-2));
        let adagrad =
            OptimizerConfig::from_options("adagrad", &Options::new()).unwrap_or_else(|p| panic!("{p:?}"));
        assert_eq!((adagrad.lr, adagrad.eps), (1e-2, 1e-10));
    }

    #[test]
    fn given_options_are_kept() {
        let o = options(&[
            ("lr", OptionValue::Number(2e-4)),
            ("betas", OptionValue::List(vec![0.5, 0.999])),
            ("grad_clip", OptionValue::Number(1.0)),
        ]);
        let adam = OptimizerConfig::from_options("adam", &o).unwrap_or_else(|p| panic!("{p:?}"));
        assert_eq!(adam.kind, OptimizerKind::Adam { betas: (0.5, 0.999), decoupled: false });
        assert_eq!((adam.lr, adam.grad_clip), (2e-4, Some(1.0)));
    }

    #[test]
    fn an_option_of_another_kind_is_refused_with_the_kinds_own() {
        let p = OptimizerConfig::from_options("adam", &options(&[("momentum", OptionValue::Number(0.9))]))
            .expect_err("adam has no momentum");
        assert_eq!((p.code, p.message.as_str()), ("E0104", "`adam` has no option `momentum`"));
        assert_eq!(p.help.as_deref(), Some("`adam` takes: lr, betas, eps, weight_decay, grad_clip"));
        let p =
            OptimizerConfig::from_options("adam", &options(&[("betas", OptionValue::List(vec![0.5, 1.5]))]))
                .expect_err("betas below 1");
        assert_eq!(p.code, "E0105");
        let p = OptimizerConfig::from_options("adma", &Options::new()).expect_err("no such optimizer");
        assert_eq!(p.help.as_deref(), Some("did you mean `adam`?"));
    }

    #[test]
    fn the_docs_list_every_optimizer_from_this_table() {
        let docs = include_str!("../../docs/language.md");
        let table = docs_table();
        assert!(docs.contains(&table), "docs/language.md's optimizer table is out of date; write:\n{table}");
    }
}
