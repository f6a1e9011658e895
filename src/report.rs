//! Rendering diagnostics: miette's graphical report for people (colour on a terminal) and
//! one JSON object per diagnostic for editors, like `cargo --message-format json`.

use std::fmt;
use std::io::IsTerminal;

use genc_grammar::LineIndex;
use miette::{Diagnostic, GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, SourceCode};
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum MessageFormat {
    Human,
    Json,
}

/// Where and how diagnostics are written.
#[derive(Clone, Copy, Debug)]
pub struct Reporter {
    pub format: MessageFormat,
    pub color: bool,
}

impl Reporter {
    pub fn new(format: MessageFormat, color: ColorChoice) -> Self {
        let color = match color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        };
        Reporter { format, color }
    }

    /// Writes one diagnostic about `file` (whose text is `source`, if there is one).
    pub fn emit(&self, diagnostic: &dyn Diagnostic, file: &str, source: Option<&str>) {
        match self.format {
            MessageFormat::Human => {
                eprintln!("{}", render_human(diagnostic, file, source, self.color))
            }
            MessageFormat::Json => println!("{}", render_json(diagnostic, file, source)),
        }
    }
}

/// A diagnostic with its file attached, so miette can show the source lines.
struct Located<'a> {
    inner: &'a dyn Diagnostic,
    source: Option<NamedSource<String>>,
}

impl fmt::Debug for Located<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.inner, f)
    }
}

impl fmt::Display for Located<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.inner, f)
    }
}

impl std::error::Error for Located<'_> {}

impl Diagnostic for Located<'_> {
    fn code<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        self.inner.code()
    }
    fn severity(&self) -> Option<miette::Severity> {
        self.inner.severity()
    }
    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        self.inner.help()
    }
    fn url<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        self.inner.url()
    }
    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.source.as_ref().map(|s| s as &dyn SourceCode)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        self.source.as_ref()?;
        self.inner.labels()
    }
}

/// The report a person reads. Without colour it is stable text, which the snapshot tests
/// keep.
pub fn render_human(diagnostic: &dyn Diagnostic, file: &str, source: Option<&str>, color: bool) -> String {
    let located =
        Located { inner: diagnostic, source: source.map(|s| NamedSource::new(file, s.to_string())) };
    let theme = if color { GraphicalTheme::unicode() } else { GraphicalTheme::unicode_nocolor() };
    let handler = GraphicalReportHandler::new_themed(theme).with_width(100).with_links(false);
    let mut out = String::new();
    if handler.render_report(&mut out, &located).is_err() {
        out = format!("error: {diagnostic}\n");
    }
    if source.is_none() {
        out = format!("{file}: {out}");
    }
    out
}

#[derive(Serialize)]
struct JsonDiagnostic {
    file: String,
    severity: &'static str,
    code: Option<String>,
    message: String,
    labels: Vec<JsonLabel>,
    help: Option<String>,
    rendered: String,
}

#[derive(Serialize)]
struct JsonLabel {
    message: Option<String>,
    primary: bool,
    /// Byte offsets into the file.
    start: usize,
    end: usize,
    /// 1-based; columns count characters.
    line: usize,
    column: usize,
    end_line: usize,
    end_column: usize,
}

/// One line of JSON for editors and tools.
pub fn render_json(diagnostic: &dyn Diagnostic, file: &str, source: Option<&str>) -> String {
    let index = source.map(LineIndex::new);
    let labels: Vec<LabeledSpan> = source.and(diagnostic.labels()).into_iter().flatten().collect();
    let any_primary = labels.iter().any(LabeledSpan::primary);
    let labels = labels
        .into_iter()
        .enumerate()
        .map(|(i, label)| {
            let (start, end) = (label.offset(), label.offset() + label.len());
            let (line, column) = index.as_ref().map_or((0, 0), |ix| ix.line_col(start));
            let (end_line, end_column) = index.as_ref().map_or((0, 0), |ix| ix.line_col(end));
            JsonLabel {
                message: label.label().map(str::to_string),
                primary: label.primary() || (!any_primary && i == 0),
                start,
                end,
                line,
                column,
                end_line,
                end_column,
            }
        })
        .collect();
    let severity = match diagnostic.severity() {
        Some(miette::Severity::Warning) => "warning",
        Some(miette::Severity::Advice) => "advice",
        _ => "error",
    };
    let json = JsonDiagnostic {
        file: file.to_string(),
        severity,
        code: diagnostic.code().map(|c| c.to_string()),
        message: diagnostic.to_string(),
        labels,
        help: diagnostic.help().map(|h| h.to_string()),
        rendered: render_human(diagnostic, file, source, false),
    };
    serde_json::to_string(&json)
        .unwrap_or_else(|e| format!("{{\"error\":\"cannot encode a diagnostic: {e}\"}}"))
}
