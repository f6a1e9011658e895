//! Option tables: what a call such as `cosine(warmup: 500)` or `adam(G, lr: 1e-4)` may be
//! given, each option's kind, default and doc line. One table per kind drives the checker's
//! coded diagnostics and "did you mean" help, the typed value built from the call, and the
//! generated tables in docs/language.md.

use crate::check::{OptionValue, Options};

/// What an option's value must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueKind {
    /// A whole number ≥ 1.
    Count,
    /// A whole number ≥ 0.
    Steps,
    /// A number in [0, 1].
    Fraction,
    /// A number > 0.
    Positive,
    /// A number ≥ 0.
    NonNegative,
    /// A list of whole numbers ≥ 0, increasing.
    StepList,
    /// A list of numbers ≥ 0.
    NumberList,
    /// `true` or `false`.
    Bool,
    /// A pair of numbers in [0, 1) (Adam's betas).
    FractionPair,
    /// A pair of numbers, the first below the second (a pixel range).
    Range,
    /// Any string (a path).
    Text,
    /// `"train"` or `"test"`.
    Split,
    /// 1 or 3 (image channels).
    Channels,
}

impl ValueKind {
    pub fn describe(self) -> &'static str {
        match self {
            ValueKind::Count => "a whole number of updates, at least 1",
            ValueKind::Steps => "a whole number of updates",
            ValueKind::Fraction => "a number from 0 to 1",
            ValueKind::Positive => "a number above 0",
            ValueKind::NonNegative => "a number, 0 or more",
            ValueKind::StepList => "an increasing list of whole numbers of updates",
            ValueKind::NumberList => "a list of numbers, 0 or more",
            ValueKind::Bool => "true or false",
            ValueKind::FractionPair => "a pair of numbers from 0 up to (not including) 1",
            ValueKind::Range => "a pair of numbers, the first below the second",
            ValueKind::Text => "a string",
            ValueKind::Split => "\"train\" or \"test\"",
            ValueKind::Channels => "1 or 3",
        }
    }
}

/// One option of a schedule, an optimizer or a data source.
#[derive(Clone, Copy, Debug)]
pub struct OptionDoc {
    pub name: &'static str,
    pub kind: ValueKind,
    /// May be given as the first positional argument (`cosine(10000)`).
    pub positional: bool,
    pub required: bool,
    /// The default, as written in the docs.
    pub default: &'static str,
    pub doc: &'static str,
}

/// Why a call's options do not make a schedule or an optimizer: the option at fault (its
/// name, or the position of a positional argument; `None` for the whole call), what is wrong,
/// and how to fix it.
#[derive(Clone, Debug, PartialEq)]
pub struct OptionProblem {
    /// The diagnostic code: E0100 (an unknown kind), E0104 (an option unknown, missing or
    /// repeated), E0105 (a value of the wrong kind).
    pub code: &'static str,
    pub option: Option<String>,
    /// The label under the span.
    pub label: String,
    pub message: String,
    pub help: Option<String>,
}

impl OptionProblem {
    pub(crate) fn at(option: &str, message: impl Into<String>) -> OptionProblem {
        OptionProblem {
            code: "E0104",
            option: Some(option.to_string()),
            label: "unknown option".into(),
            message: message.into(),
            help: None,
        }
    }

    pub(crate) fn labelled(mut self, label: impl Into<String>) -> OptionProblem {
        self.label = label.into();
        self
    }

    pub(crate) fn bad_value(option: &str, message: impl Into<String>) -> OptionProblem {
        OptionProblem { code: "E0105", ..OptionProblem::at(option, message).labelled("not allowed here") }
    }

    pub(crate) fn help(mut self, help: impl Into<String>) -> OptionProblem {
        self.help = Some(help.into());
        self
    }
}

/// The option names, for help texts.
pub fn option_list(options: &[OptionDoc]) -> String {
    if options.is_empty() {
        return "none".into();
    }
    options.iter().map(|o| o.name).collect::<Vec<_>>().join(", ")
}

/// `kind` is no `what` (schedule, optimizer) of `names`: "did you mean", or the list.
pub fn unknown_kind(what: &str, kind: &str, names: &[&'static str]) -> OptionProblem {
    let help = match crate::grammar::did_you_mean(kind, names.iter().copied()) {
        Some(s) => format!("did you mean `{s}`?"),
        None => format!("use one of {}", names.join(", ")),
    };
    OptionProblem {
        code: "E0100",
        option: None,
        label: format!("not {} {what}", if what.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" }),
        message: format!("unknown {what} `{kind}`"),
        help: Some(help),
    }
}

/// `kind` has no option `key`: "did you mean", or the options it takes.
pub fn unknown_option(kind: &str, options: &[OptionDoc], key: &str) -> OptionProblem {
    let problem = OptionProblem::at(key, format!("`{kind}` has no option `{key}`"));
    match crate::grammar::did_you_mean(key, options.iter().map(|o| o.name)) {
        Some(s) => problem.help(format!("did you mean `{s}`?")),
        None => problem.help(format!("`{kind}` takes: {}", option_list(options))),
    }
}

/// Checks a value against its option's kind.
pub fn check_value(option: &OptionDoc, key: &str, value: &OptionValue) -> Result<(), OptionProblem> {
    let whole = |x: f64| x.fract() == 0.0 && x >= 0.0 && x < 2f64.powi(53);
    let fits = match (option.kind, value) {
        (ValueKind::Count, OptionValue::Number(x)) => whole(*x) && *x >= 1.0,
        (ValueKind::Steps, OptionValue::Number(x)) => whole(*x),
        (ValueKind::Fraction, OptionValue::Number(x)) => (0.0..=1.0).contains(x),
        (ValueKind::Positive, OptionValue::Number(x)) => x.is_finite() && *x > 0.0,
        (ValueKind::NonNegative, OptionValue::Number(x)) => x.is_finite() && *x >= 0.0,
        (ValueKind::StepList, OptionValue::List(xs)) => {
            xs.iter().all(|&x| whole(x)) && xs.windows(2).all(|w| w[0] < w[1])
        }
        (ValueKind::NumberList, OptionValue::List(xs)) => xs.iter().all(|x| x.is_finite() && *x >= 0.0),
        (ValueKind::Bool, OptionValue::Bool(_)) => true,
        (ValueKind::FractionPair, OptionValue::List(xs)) => {
            xs.len() == 2 && xs.iter().all(|x| (0.0..1.0).contains(x))
        }
        (ValueKind::Range, OptionValue::List(xs)) => {
            matches!(xs[..], [lo, hi] if lo.is_finite() && hi.is_finite() && lo < hi)
        }
        (ValueKind::Text, OptionValue::Str(_)) => true,
        (ValueKind::Split, OptionValue::Str(s)) => s == "train" || s == "test",
        (ValueKind::Channels, OptionValue::Number(x)) => *x == 1.0 || *x == 3.0,
        _ => false,
    };
    if fits {
        return Ok(());
    }
    Err(OptionProblem::bad_value(key, format!("`{}` must be {}", option.name, option.kind.describe()))
        .help(option.doc.to_string()))
}

/// The options given to `kind` checked against its table: each known, given once, of the
/// right kind, the required ones present. Positional arguments have keys `"0"`, `"1"`, ...;
/// only the first, and only for an option marked positional.
pub fn resolve<'o>(
    kind: &str,
    table: &'static [OptionDoc],
    options: &'o Options,
) -> Result<Vec<(&'static OptionDoc, &'o OptionValue)>, OptionProblem> {
    let mut values: Vec<(&'static OptionDoc, &OptionValue)> = Vec::new();
    for (key, value) in options {
        let option = match key.parse::<usize>() {
            Ok(0) => table.iter().find(|o| o.positional).ok_or_else(|| {
                OptionProblem::at(key, format!("`{kind}` takes no positional argument"))
                    .labelled("positional")
                    .help(format!("name the option: {}", option_list(table)))
            })?,
            Ok(_) => {
                return Err(OptionProblem::at(
                    key,
                    format!("`{kind}` takes at most one positional argument"),
                )
                .labelled("positional")
                .help(format!("name the options: {}", option_list(table))));
            }
            Err(_) => table.iter().find(|o| o.name == key).ok_or_else(|| unknown_option(kind, table, key))?,
        };
        if values.iter().any(|(o, _)| o.name == option.name) {
            return Err(
                OptionProblem::at(key, format!("`{}` is given twice", option.name)).labelled("given twice")
            );
        }
        check_value(option, key, value)?;
        values.push((option, value));
    }
    if let Some(missing) = table.iter().find(|o| o.required && !values.iter().any(|(v, _)| v.name == o.name))
    {
        return Err(OptionProblem {
            code: "E0104",
            option: None,
            label: format!("`{}` missing", missing.name),
            message: format!("`{kind}` needs `{}`: {}", missing.name, missing.doc),
            help: Some(format!("write {kind}({}: ..)", missing.name)),
        });
    }
    Ok(values)
}

/// The options as a Markdown list for a docs table cell: `name` (default ..): doc.
pub fn docs_cell(options: &[OptionDoc]) -> String {
    let cells: Vec<String> = options
        .iter()
        .map(|o| {
            let default = if o.required { "required".to_string() } else { format!("default {}", o.default) };
            let first = if o.positional { "may come first; " } else { "" };
            format!("`{}` ({first}{default}): {}", o.name, o.doc)
        })
        .collect();
    cells.join("; ")
}

/// `kind(key: value, ..)`'s options, as a test writes them.
#[cfg(test)]
pub(crate) fn options(pairs: &[(&str, OptionValue)]) -> Options {
    pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
}
