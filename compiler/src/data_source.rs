//! Data sources (`data x = fashion_mnist(split: "train", range: [-1, 1])`): the typed source
//! with its split, transforms and pairing, and the option table that the checker, its "did
//! you mean" help and the docs share. The CLI opens a source by matching [`DataSource`],
//! never by its name.

use serde::{Deserialize, Serialize};

use crate::option_table::{self, OptionDoc, OptionProblem, ValueKind};
use crate::train_spec::{OptionValue, Options};

/// Where the examples come from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum DataSource {
    /// Fashion-MNIST's IDX pair: Debian's `dataset-fashion-mnist`, or the run config's
    /// `data:` folder.
    FashionMnist,
    /// An IDX pair laid out as MNIST's, in the run config's `data:` folder (no MNIST ships
    /// with the system, so a run without that folder is an error, not Fashion-MNIST).
    Mnist,
    /// PNG images in a folder (`path:`, or the run config's `data:`), resized to
    /// `size` x `size`, with 1 or 3 channels.
    Folder { path: Option<String>, size: u32, channels: u32 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DataSplit {
    Train,
    Test,
}

/// `|> paired(..)`: the second image each example is paired with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Pairing {
    /// `downsample(r)`: the image averaged over r x r blocks, first in the pair.
    Downsample(u32),
    /// `downsample(r, mode: "bicubic")`: the image downsampled by r with an anti-aliased
    /// bicubic filter (PyTorch's `antialias=True`, PIL's resize), first in the pair.
    Bicubic(u32),
    /// `edges("sobel")`: the Sobel edge magnitude, first in the pair.
    Edges,
}

/// A `data` entry: the names it binds and everything about where their values come from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataSpec {
    pub names: Vec<String>,
    pub source: DataSource,
    pub split: DataSplit,
    /// Pixels scaled from [0, 1] to this range.
    pub range: Option<(f64, f64)>,
    /// Each pixel set to 1 with its intensity as the probability (test sets: once, fixed).
    pub binarize: bool,
    /// The class labels are the second name's values.
    pub labels: bool,
    /// Each image mirrored left-right with probability 1/2.
    pub flip: bool,
    pub paired: Option<Pairing>,
}

/// One source kind: its name, what it reads and its options.
#[derive(Clone, Copy, Debug)]
pub struct SourceDoc {
    pub name: &'static str,
    pub doc: &'static str,
    pub options: &'static [OptionDoc],
}

const fn option(name: &'static str, kind: ValueKind, default: &'static str, doc: &'static str) -> OptionDoc {
    OptionDoc { name, kind, positional: false, required: false, default, doc }
}

const SPLIT: OptionDoc = option("split", ValueKind::Split, "\"train\"", "`\"train\"` or `\"test\"`");
const RANGE: OptionDoc =
    option("range", ValueKind::Range, "[0, 1]", "pixels are scaled from [0, 1] to this range");
const BINARIZE: OptionDoc = option(
    "binarize",
    ValueKind::Bool,
    "false",
    "each pixel becomes 1 with its intensity as the probability (a test split once, with a fixed seed)",
);
const LABELS: OptionDoc = option("labels", ValueKind::Bool, "false", "also bind the class labels (0-9)");
const FLIP: OptionDoc =
    option("flip", ValueKind::Bool, "false", "mirror each image left-right with probability 1/2");
const IDX_OPTIONS: &[OptionDoc] = &[SPLIT, RANGE, BINARIZE, LABELS, FLIP];

/// Every source, in the order the docs list them.
pub const SOURCES: &[SourceDoc] = &[
    SourceDoc {
        name: "fashion_mnist",
        doc: "Fashion-MNIST, 28x28 grayscale: Debian's `dataset-fashion-mnist`, or the IDX pair in the run config's `data:` folder",
        options: IDX_OPTIONS,
    },
    SourceDoc {
        name: "mnist",
        doc: "an MNIST IDX pair, 28x28 grayscale, in the run config's `data:` folder",
        options: IDX_OPTIONS,
    },
    SourceDoc {
        name: "folder",
        doc: "PNG images in a folder, resized to `size` x `size`",
        options: &[
            option(
                "path",
                ValueKind::Text,
                "the run config's `data:`",
                "the folder (the run config's `data:` wins)",
            ),
            OptionDoc {
                name: "size",
                kind: ValueKind::Count,
                positional: false,
                required: true,
                default: "",
                doc: "the side in pixels the images are resized to",
            },
            option("channels", ValueKind::Channels, "3", "1 (grayscale) or 3 (RGB)"),
            SPLIT,
            RANGE,
            BINARIZE,
            FLIP,
        ],
    },
];

impl DataSpec {
    /// The entry `names = kind(options) |> paired(pairing)`, its options checked against the
    /// table. `pairing` is `(name, options)` of `downsample(r)` or `edges("sobel")`.
    pub fn from_options(
        names: Vec<String>,
        kind: &str,
        options: &Options,
        pairing: Option<(&str, &Options)>,
    ) -> Result<DataSpec, OptionProblem> {
        let names_of: Vec<&'static str> = SOURCES.iter().map(|s| s.name).collect();
        let doc = SOURCES
            .iter()
            .find(|s| s.name == kind)
            .ok_or_else(|| option_table::unknown_kind("data source", kind, &names_of))?;
        let given = option_table::resolve(kind, doc.options, options)?;
        let get = |name: &str| given.iter().find(|(o, _)| o.name == name).map(|(_, v)| *v);
        let flag = |name: &str| matches!(get(name), Some(OptionValue::Bool(true)));
        let number = |name: &str| get(name).and_then(OptionValue::number);
        let source = match kind {
            "fashion_mnist" => DataSource::FashionMnist,
            "mnist" => DataSource::Mnist,
            _ => DataSource::Folder {
                path: match get("path") {
                    Some(OptionValue::Str(p)) => Some(p.clone()),
                    _ => None,
                },
                size: number("size").map_or(0, |s| s as u32),
                channels: number("channels").map_or(3, |c| c as u32),
            },
        };
        let split = match get("split") {
            Some(OptionValue::Str(s)) if s == "test" => DataSplit::Test,
            _ => DataSplit::Train,
        };
        let range = get("range").and_then(OptionValue::list).and_then(|r| match r {
            [lo, hi] => Some((*lo, *hi)),
            _ => None,
        });
        let paired = match pairing {
            None => None,
            Some(("downsample", o)) => {
                let factor =
                    o.get("0").and_then(OptionValue::number).filter(|r| *r >= 1.0 && r.fract() == 0.0);
                let factor = factor.ok_or_else(|| {
                    OptionProblem::bad_value("0", "`downsample(r)` takes a whole factor r of at least 1")
                })? as u32;
                match o.get("mode") {
                    None => Some(Pairing::Downsample(factor)),
                    Some(OptionValue::Str(m)) if m == "box" => Some(Pairing::Downsample(factor)),
                    Some(OptionValue::Str(m)) if m == "bicubic" => Some(Pairing::Bicubic(factor)),
                    Some(_) => {
                        return Err(OptionProblem::bad_value("mode", "`mode` is \"box\" or \"bicubic\""));
                    }
                }
            }
            Some(("edges", _)) => Some(Pairing::Edges),
            Some((other, _)) => {
                return Err(option_table::unknown_kind("pairing", other, &["downsample", "edges"]));
            }
        };
        Ok(DataSpec {
            names,
            source,
            split,
            range,
            binarize: flag("binarize"),
            labels: flag("labels"),
            flip: flag("flip"),
            paired,
        })
    }

    /// The images' channels and side.
    pub fn image_size(&self) -> (u32, u32) {
        match self.source {
            DataSource::FashionMnist | DataSource::Mnist => (1, 28),
            DataSource::Folder { size, channels, .. } => (channels, size),
        }
    }
}

/// The sources as a Markdown table, the section of docs/language.md that a test keeps in
/// step with this table.
pub fn docs_table() -> String {
    let mut out = String::from("| source | what it reads | options (default) |\n| --- | --- | --- |\n");
    for s in SOURCES {
        out += &format!("| `{}` | {} | {} |\n", s.name, s.doc, option_table::docs_cell(s.options));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::option_table::options;

    #[test]
    fn a_source_with_its_options_is_typed() {
        let o = options(&[
            ("split", OptionValue::Str("test".into())),
            ("range", OptionValue::List(vec![-1.0, 1.0])),
            ("labels", OptionValue::Bool(true)),
        ]);
        let d = DataSpec::from_options(vec!["x".into(), "y".into()], "fashion_mnist", &o, None)
            .unwrap_or_else(|p| panic!("{p:?}"));
        assert_eq!(
            (d.source.clone(), d.split, d.range, d.labels),
            (DataSource::FashionMnist, DataSplit::Test, Some((-1.0, 1.0)), true)
        );
        let o = options(&[("size", OptionValue::Number(64.0)), ("path", OptionValue::Str("faces".into()))]);
        let down = options(&[("0", OptionValue::Number(4.0))]);
        let d =
            DataSpec::from_options(vec!["lo".into(), "hi".into()], "folder", &o, Some(("downsample", &down)))
                .unwrap_or_else(|p| panic!("{p:?}"));
        assert_eq!(d.source, DataSource::Folder { path: Some("faces".into()), size: 64, channels: 3 });
        assert_eq!((d.paired, d.image_size()), (Some(Pairing::Downsample(4)), (3, 64)));
    }

    #[test]
    fn bad_options_are_problems_with_help() {
        let p = DataSpec::from_options(
            vec![],
            "fashion_mnist",
            &options(&[("lables", OptionValue::Bool(true))]),
            None,
        )
        .expect_err("misspelt");
        assert_eq!((p.code, p.help.as_deref()), ("E0104", Some("did you mean `labels`?")));
        let p = DataSpec::from_options(
            vec![],
            "fashion_mnist",
            &options(&[("split", OptionValue::Str("val".into()))]),
            None,
        )
        .expect_err("no such split");
        assert_eq!(p.code, "E0105");
        let p = DataSpec::from_options(
            vec![],
            "fashion_mnist",
            &options(&[("range", OptionValue::List(vec![1.0, -1.0]))]),
            None,
        )
        .expect_err("a decreasing range");
        assert_eq!(p.code, "E0105");
        let p = DataSpec::from_options(vec![], "folder", &Options::new(), None).expect_err("no size");
        assert_eq!(p.message, "`folder` needs `size`: the side in pixels the images are resized to");
        let p = DataSpec::from_options(
            vec![],
            "folder",
            &options(&[("size", OptionValue::Number(8.0)), ("channels", OptionValue::Number(2.0))]),
            None,
        )
        .expect_err("two channels");
        assert_eq!(p.code, "E0105");
        let p = DataSpec::from_options(vec![], "fashion_mnis", &Options::new(), None).expect_err("unknown");
        assert_eq!(p.help.as_deref(), Some("did you mean `fashion_mnist`?"));
    }

    #[test]
    fn the_docs_list_every_source_from_this_table() {
        let docs = include_str!("../../docs/language.md");
        let table = docs_table();
        assert!(
            docs.contains(&table),
            "docs/language.md's data source table is out of date; write:\n{table}"
        );
    }
}
