//! One open `.gen` file and what genc knows about it: parsed, and when it parses cleanly,
//! type-checked with the workspace's `--set` overrides. Every answer the server gives about
//! the file comes from here.

use genc_compiler::check::{self, Checked};
use genc_grammar::{SyntaxError, ast};
use lsp_types::Url;

use super::convert::Lines;

pub struct Document {
    pub uri: Url,
    pub text: String,
    pub lines: Lines,
    pub ast: ast::File,
    pub syntax_errors: Vec<SyntaxError>,
    /// `None` while the file has syntax errors (a half-typed file would only cascade).
    pub checked: Option<Checked>,
}

impl Document {
    /// Parses and checks `text`; `sets` are `NAME=VALUE` overrides as `--set` takes them (bad
    /// ones are skipped: the editor setting is not the place to fail a file).
    pub fn analyse(uri: Url, text: String, sets: &[String]) -> Document {
        let (ast, syntax_errors) = genc_grammar::parse(&text);
        let overrides: Vec<check::Override> = sets
            .iter()
            .filter_map(|s| s.split_once('='))
            .map(|(k, v)| check::Override { name: k.trim().to_string(), value: v.trim().to_string() })
            .collect();
        let checked = syntax_errors.is_empty().then(|| check::check(&ast, &overrides));
        let lines = Lines::new(&text);
        Document { uri, text, lines, ast, syntax_errors, checked }
    }

    /// Every diagnostic, as the editor shows it.
    pub fn diagnostics(&self) -> Vec<lsp_types::Diagnostic> {
        let convert =
            |d: &dyn miette::Diagnostic| super::convert::diagnostic(d, &self.text, &self.lines, &self.uri);
        let mut out: Vec<lsp_types::Diagnostic> = self.syntax_errors.iter().map(|e| convert(e)).collect();
        if let Some(c) = &self.checked {
            out.extend(c.errors.iter().chain(&c.warnings).map(|e| convert(e)));
        }
        out
    }

    /// The identifier at (or just before) byte `offset`, and its span.
    pub fn word_at(&self, offset: usize) -> Option<(&str, usize, usize)> {
        let bytes = self.text.as_bytes();
        let is_word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
        let mut start = offset.min(bytes.len());
        while start > 0 && is_word(bytes[start - 1]) {
            start -= 1;
        }
        let mut end = offset.min(bytes.len());
        while end < bytes.len() && is_word(bytes[end]) {
            end += 1;
        }
        let word = self.text.get(start..end)?;
        (!word.is_empty() && !word.as_bytes()[0].is_ascii_digit()).then_some((word, start, end))
    }

    /// The definition (net, block, loss, sampler) whose text holds `offset`.
    pub fn def_at(&self, offset: usize) -> Option<&ast::Def> {
        self.defs().find(|d| d.span.start <= offset && offset < d.span.end)
    }

    pub fn defs(&self) -> impl Iterator<Item = &ast::Def> {
        self.ast.items.iter().filter_map(|i| match i {
            ast::Item::Def(d) => Some(d),
            _ => None,
        })
    }
}
