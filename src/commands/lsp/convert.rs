//! Between genc's byte spans and LSP's positions (lines and UTF-16 code units), and from genc's
//! diagnostics (syntax or type, through miette's `Diagnostic`) to LSP's.

use lsp_types::{
    DiagnosticRelatedInformation, DiagnosticSeverity, Location, NumberOrString, Position, Range, Url,
};

/// Line starts of one text, for offset <-> position.
pub struct Lines {
    starts: Vec<usize>,
}

impl Lines {
    pub fn new(text: &str) -> Lines {
        let starts = std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect();
        Lines { starts }
    }

    /// The position of byte `offset` (clamped to the text and to a character boundary).
    pub fn position(&self, text: &str, offset: usize) -> Position {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.starts.partition_point(|&s| s <= offset).saturating_sub(1);
        let start = self.starts[line];
        let character = text[start..offset].chars().map(char::len_utf16).sum::<usize>();
        Position::new(line as u32, character as u32)
    }

    /// The byte offset of `position` (a column past the line's end is its end).
    pub fn offset(&self, text: &str, position: Position) -> usize {
        let Some(&start) = self.starts.get(position.line as usize) else { return text.len() };
        let end = self.starts.get(position.line as usize + 1).map_or(text.len(), |&e| e.saturating_sub(1));
        let mut units = 0usize;
        for (i, c) in text[start..end.max(start)].char_indices() {
            if units >= position.character as usize {
                return start + i;
            }
            units += c.len_utf16();
        }
        end.max(start)
    }

    pub fn range(&self, text: &str, start: usize, end: usize) -> Range {
        Range::new(self.position(text, start), self.position(text, end))
    }
}

/// One of genc's diagnostics as the editor shows it: the primary label's span, the message with
/// its label and help, the code, and the other labels as related information.
pub fn diagnostic(d: &dyn miette::Diagnostic, text: &str, lines: &Lines, uri: &Url) -> lsp_types::Diagnostic {
    let labels: Vec<miette::LabeledSpan> = d.labels().map(|l| l.collect()).unwrap_or_default();
    let primary = labels.iter().find(|l| l.primary()).or(labels.first());
    let range = primary.map_or_else(Range::default, |l| lines.range(text, l.offset(), l.offset() + l.len()));
    let mut message = d.to_string();
    if let Some(label) = primary.and_then(|l| l.label()) {
        message.push_str(&format!(" ({label})"));
    }
    if let Some(help) = d.help() {
        message.push_str(&format!("\nhelp: {help}"));
    }
    let related: Vec<DiagnosticRelatedInformation> = labels
        .iter()
        .filter(|l| primary.is_none_or(|p| !std::ptr::eq(*l, p)))
        .map(|l| DiagnosticRelatedInformation {
            location: Location::new(uri.clone(), lines.range(text, l.offset(), l.offset() + l.len())),
            message: l.label().unwrap_or("here").to_string(),
        })
        .collect();
    let severity = match d.severity() {
        Some(miette::Severity::Warning) => DiagnosticSeverity::WARNING,
        Some(miette::Severity::Advice) => DiagnosticSeverity::HINT,
        _ => DiagnosticSeverity::ERROR,
    };
    lsp_types::Diagnostic {
        range,
        severity: Some(severity),
        code: d.code().map(|c| NumberOrString::String(c.to_string())),
        source: Some("genc".into()),
        message,
        related_information: (!related.is_empty()).then_some(related),
        ..Default::default()
    }
}
