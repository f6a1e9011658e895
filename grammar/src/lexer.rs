//! A small hand-written lexer that runs before pest.
//!
//! pest stops at the first error and recurses once per nesting level, so the lexer does the
//! work that needs a view of the whole file: it collects comments for the formatter, reports
//! lexical errors (bad characters, strings, numbers), matches brackets with messages that
//! name what was opened, bounds nesting, and cuts the file into top-level items so that the
//! parser can report an error in each item, not only the first.

use crate::error::{Delimiter, SyntaxError};
use crate::span::Span;

/// The deepest bracket nesting accepted; deeper input gets a diagnostic instead of a stack
/// overflow inside the recursive-descent parser.
pub const MAX_NESTING: usize = 64;
/// The most `^` operators in one item: `^` is right-associative, so pest's Pratt parser
/// recurses once per operator of a chain.
const MAX_POWERS: usize = 256;
/// The longest run of prefix operators (`- - - x`), for the same reason.
const MAX_PREFIX_RUN: usize = 32;

/// Words that begin a top-level item.
pub const ITEM_KEYWORDS: [&str; 9] =
    ["dims", "where", "param", "const", "net", "block", "loss", "sampler", "train"];

/// Words that can never be names.
pub const RESERVED: [&str; 11] =
    ["let", "return", "for", "in", "if", "else", "fixed", "true", "false", "with", "every"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    Ident,
    Number,
    Str,
    /// An operator or punctuation, one to three characters.
    Punct,
    Comment,
}

#[derive(Clone, Copy, Debug)]
pub struct Token {
    pub kind: TokenKind,
    pub span: Span,
}

/// A comment, kept for the formatter.
#[derive(Clone, Debug, PartialEq)]
pub struct Comment {
    /// The text after `//`, without the line break.
    pub text: String,
    pub span: Span,
    /// Whether code precedes it on its line (`let x = 1 // like this`).
    pub trailing: bool,
}

/// One top-level item's slice of the file, and whether the lexer already found it broken.
#[derive(Clone, Debug)]
pub struct Chunk {
    pub span: Span,
    pub has_errors: bool,
}

pub struct Lexed {
    pub tokens: Vec<Token>,
    pub comments: Vec<Comment>,
    pub chunks: Vec<Chunk>,
    pub errors: Vec<SyntaxError>,
}

impl Lexed {
    /// The first non-comment token that ends after `offset`, for "found `x`" messages.
    pub fn token_at(&self, offset: usize) -> Option<Token> {
        let i = self.tokens.partition_point(|t| t.span.end <= offset);
        self.tokens[i..].iter().copied().find(|t| t.kind != TokenKind::Comment)
    }
}

const PUNCTS: [&str; 29] = [
    "..=", "...", "|>", "||", "&&", "==", "!=", "<=", ">=", "->", "..", "+=", "-=", "*=", "/=", "+", "-",
    "*", "/", "%", "^", "@", "<", ">", "=", "!", "~", ":", ",",
];

pub fn lex(source: &str) -> Lexed {
    let mut lexer = Lexer { source, pos: 0, tokens: Vec::new(), comments: Vec::new(), errors: Vec::new() };
    lexer.run();
    let mut lexed =
        Lexed { tokens: lexer.tokens, comments: lexer.comments, chunks: Vec::new(), errors: lexer.errors };
    split_items(source, &mut lexed);
    lexed
}

struct Lexer<'a> {
    source: &'a str,
    pos: usize,
    tokens: Vec<Token>,
    comments: Vec<Comment>,
    errors: Vec<SyntaxError>,
}

impl Lexer<'_> {
    fn rest(&self) -> &str {
        self.source.get(self.pos..).unwrap_or("")
    }

    fn push(&mut self, kind: TokenKind, start: usize) {
        self.tokens.push(Token { kind, span: Span::new(start, self.pos) });
    }

    fn run(&mut self) {
        while let Some(c) = self.rest().chars().next() {
            let start = self.pos;
            if c.is_whitespace() {
                self.pos += c.len_utf8();
            } else if self.rest().starts_with("//") {
                self.comment(start);
            } else if c.is_ascii_alphabetic() || c == '_' {
                self.eat_while(|c| c.is_ascii_alphanumeric() || c == '_');
                self.push(TokenKind::Ident, start);
            } else if c.is_ascii_digit() {
                self.number(start);
            } else if c == '"' {
                self.string(start);
            } else if "()[]{}.".contains(c) && !self.rest().starts_with("..") {
                self.pos += 1;
                self.push(TokenKind::Punct, start);
            } else if let Some(p) = PUNCTS.iter().find(|p| self.rest().starts_with(**p)) {
                self.pos += p.len();
                self.push(TokenKind::Punct, start);
            } else if c == '\'' {
                // A single-quoted string is one mistake, not two stray quotes.
                let line_end = self.rest().find('\n').unwrap_or(self.rest().len());
                let close = self.rest().get(1..line_end).and_then(|s| s.find('\'')).map_or(1, |i| i + 2);
                self.pos += close;
                self.errors.push(SyntaxError::invalid_character(c, Span::new(start, self.pos)));
            } else {
                self.pos += c.len_utf8();
                let span = Span::new(start, self.pos);
                // A run of bad characters is one error.
                match self.errors.last_mut() {
                    Some(SyntaxError::InvalidCharacter { span: last, .. }) if last.end == start => {
                        last.end = span.end
                    }
                    _ => self.errors.push(SyntaxError::invalid_character(c, span)),
                }
            }
        }
    }

    fn eat_while(&mut self, keep: impl Fn(char) -> bool) {
        let len = self.rest().find(|c: char| !keep(c)).unwrap_or(self.rest().len());
        self.pos += len;
    }

    fn comment(&mut self, start: usize) {
        self.eat_while(|c| c != '\n');
        let text = self.source.get(start + 2..self.pos).unwrap_or("").trim_end().to_string();
        let line_start = self.source.get(..start).map_or(0, |s| s.rfind('\n').map_or(0, |i| i + 1));
        let trailing = self.source.get(line_start..start).is_some_and(|s| !s.trim().is_empty());
        self.comments.push(Comment { text, span: Span::new(start, self.pos), trailing });
        self.push(TokenKind::Comment, start);
    }

    /// Numbers: `12`, `1_000`, `1.5`, `2e-4`. A number glued to letters (`3x`, `1e`) is
    /// reported here, where the message can say what is wrong with it.
    fn number(&mut self, start: usize) {
        self.eat_while(|c| c.is_ascii_digit() || c == '_');
        let after = self.rest().as_bytes();
        if after.first() == Some(&b'.') && after.get(1).is_some_and(u8::is_ascii_digit) {
            self.pos += 1;
            self.eat_while(|c| c.is_ascii_digit() || c == '_');
        }
        let mut bad_exponent = false;
        if self.rest().starts_with(['e', 'E']) {
            let exp = self.rest().as_bytes();
            let sign = usize::from(matches!(exp.get(1), Some(b'+' | b'-')));
            if exp.get(1 + sign).is_some_and(u8::is_ascii_digit) {
                self.pos += 1 + sign;
                self.eat_while(|c| c.is_ascii_digit());
            } else {
                bad_exponent = true;
            }
        }
        let glued = self.rest().starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_');
        if bad_exponent || glued {
            self.eat_while(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
            let span = Span::new(start, self.pos);
            let text = self.source.get(span.range()).unwrap_or("");
            let help = if bad_exponent {
                "an exponent needs digits: write `1e-4` or `2E3`"
            } else {
                "a number cannot run into a name; put an operator between them, as in `3 * x`"
            };
            self.errors.push(SyntaxError::invalid_number(text, span, help));
        }
        self.push(TokenKind::Number, start);
    }

    fn string(&mut self, start: usize) {
        self.pos += 1;
        loop {
            match self.rest().chars().next() {
                None | Some('\n') => {
                    self.errors.push(SyntaxError::UnterminatedString { span: Span::new(start, self.pos) });
                    break;
                }
                Some('"') => {
                    self.pos += 1;
                    break;
                }
                Some('\\') => {
                    self.pos += 1;
                    match self.rest().chars().next() {
                        Some(c @ ('"' | '\\' | 'n' | 't')) => self.pos += c.len_utf8(),
                        Some(c) if c != '\n' => {
                            let span = Span::new(self.pos - 1, self.pos + c.len_utf8());
                            self.errors.push(SyntaxError::InvalidEscape { escape: c, span });
                            self.pos += c.len_utf8();
                        }
                        _ => {}
                    }
                }
                Some(c) => self.pos += c.len_utf8(),
            }
        }
        self.push(TokenKind::Str, start);
    }
}

fn text<'s>(source: &'s str, token: &Token) -> &'s str {
    source.get(token.span.range()).unwrap_or("")
}

/// Whether `token` starts its line (only whitespace before it).
fn starts_line(source: &str, token: &Token) -> bool {
    let before = source.get(..token.span.start).unwrap_or("");
    let line = before.rfind('\n').map_or(before, |i| before.get(i + 1..).unwrap_or(""));
    line.trim().is_empty()
}

fn matching(open: &str) -> &'static str {
    match open {
        "(" => ")",
        "[" => "]",
        _ => "}",
    }
}

fn ends_operand(source: &str, token: &Token) -> bool {
    match token.kind {
        TokenKind::Ident | TokenKind::Number | TokenKind::Str => true,
        TokenKind::Punct => matches!(text(source, token), ")" | "]" | "}"),
        TokenKind::Comment => false,
    }
}

fn at_column_zero(source: &str, token: &Token) -> bool {
    token.span.start == 0 || source.as_bytes().get(token.span.start - 1) == Some(&b'\n')
}

/// Cuts the file into items and checks brackets and nesting inside each.
///
/// An item starts at an item keyword that begins a line at bracket depth 0, or at column 0
/// whatever the depth: that keeps an unclosed bracket from swallowing the rest of the file.
fn split_items(source: &str, lexed: &mut Lexed) {
    let code: Vec<Token> = lexed.tokens.iter().copied().filter(|t| t.kind != TokenKind::Comment).collect();
    let mut starts = Vec::new();
    let mut open: Vec<&str> = Vec::new();
    let mut previous: Option<&Token> = None;
    for (i, token) in code.iter().enumerate() {
        let t = text(source, token);
        let is_word = matches!(token.kind, TokenKind::Ident | TokenKind::Number);
        let at_line_start = starts_line(source, token);
        let is_item_keyword = token.kind == TokenKind::Ident && ITEM_KEYWORDS.contains(&t);
        // No valid item has two operands side by side at depth 0, nor a statement word,
        // so either means the previous item ended (or is broken) and a new one begins.
        let after_operand = previous.is_some_and(|p| ends_operand(source, p));
        let is_statement_word = STATEMENT_WORDS.contains(&t);
        let starts_item = at_line_start
            && ((open.is_empty() && (is_item_keyword || is_statement_word || (is_word && after_operand)))
                || (is_item_keyword && at_column_zero(source, token)));
        previous = Some(token);
        if starts_item || i == 0 {
            starts.push(i);
            open.clear();
        }
        // A stray closer of another kind does not end what is open (check_brackets reports
        // it), so one extra `)` does not cut a body in two.
        if token.kind == TokenKind::Punct {
            match t {
                "(" | "[" | "{" => open.push(t),
                ")" | "]" | "}" if open.last().is_some_and(|o| matching(o) == t) => {
                    open.pop();
                }
                _ => {}
            }
        }
    }
    let lexical_errors = std::mem::take(&mut lexed.errors);
    for (n, &first) in starts.iter().enumerate() {
        let last = starts.get(n + 1).map_or(code.len(), |&next| next);
        let tokens = code.get(first..last).unwrap_or(&[]);
        let (Some(head), Some(tail)) = (tokens.first(), tokens.last()) else {
            continue;
        };
        let span = Span::new(head.span.start, tail.span.end);
        let mut errors: Vec<SyntaxError> =
            lexical_errors.iter().filter(|e| span_contains(span, e.span())).cloned().collect();
        // An unterminated string swallows its line's brackets: checking them would only echo it.
        if !errors.iter().any(|e| matches!(e, SyntaxError::UnterminatedString { .. })) {
            check_brackets(source, tokens, &mut errors);
        }
        check_operator_chains(source, tokens, &mut errors);
        lexed.chunks.push(Chunk { span, has_errors: !errors.is_empty() });
        lexed.errors.extend(errors);
    }
    // A lexical error outside every chunk (a bad character before any token) still counts.
    for error in lexical_errors {
        if !lexed.chunks.iter().any(|c| span_contains(c.span, error.span())) {
            lexed.errors.push(error);
        }
    }
}

fn span_contains(outer: Span, inner: Span) -> bool {
    outer.start <= inner.start && inner.start < outer.end.max(outer.start + 1)
}

struct Open {
    delimiter: Delimiter,
    span: Span,
}

/// Words that cannot appear inside `(...)` or `[...]`: meeting one means the bracket before
/// it was never closed, and the error belongs there, not at the end of the item.
const STATEMENT_WORDS: [&str; 4] = ["let", "return", "for", "if"];

fn check_brackets(source: &str, tokens: &[Token], errors: &mut Vec<SyntaxError>) {
    let mut stack: Vec<Open> = Vec::new();
    let mut previous: Option<&Token> = None;
    let mut before_previous: Option<&Token> = None;
    for token in tokens {
        let t = text(source, token);
        if token.kind == TokenKind::Ident && STATEMENT_WORDS.contains(&t) {
            while let Some(open) = stack.last() {
                if open.delimiter == Delimiter::Brace {
                    break;
                }
                let expected_at = previous.map_or(token.span, |p| Span::at(p.span.end));
                errors.push(SyntaxError::unclosed(open.delimiter, open.span, expected_at));
                stack.pop();
            }
        }
        if token.kind == TokenKind::Punct {
            let opened = Delimiter::opened_by(
                t,
                previous.map(|p| text(source, p)),
                before_previous.map(|p| text(source, p)),
            );
            if let Some(delimiter) = opened {
                if stack.len() >= MAX_NESTING {
                    errors.push(SyntaxError::TooDeep {
                        what: "brackets",
                        limit: MAX_NESTING,
                        span: token.span,
                    });
                    return;
                }
                stack.push(Open { delimiter, span: token.span });
            } else if let Some(closer) = Delimiter::closed_by(t) {
                match stack.iter().rposition(|open| open.delimiter.close() == closer) {
                    Some(i) if i + 1 == stack.len() => {
                        stack.pop();
                    }
                    // Nothing of this kind is open. Inside brackets, `(1, 2]` is a typo for the
                    // right closer; directly in a block, a stray closer to skip.
                    None if stack.last().is_none_or(|open| open.delimiter == Delimiter::Brace) => {
                        errors.push(SyntaxError::UnmatchedClose { close: closer, span: token.span });
                    }
                    _ => {
                        let Some(open) = stack.pop() else { return };
                        errors.push(SyntaxError::Mismatched {
                            expected: open.delimiter.close(),
                            found: closer,
                            what: open.delimiter.name(),
                            span: token.span,
                            open: open.span,
                        });
                        return;
                    }
                }
            }
        }
        before_previous = previous;
        previous = Some(token);
    }
    let end = tokens.last().map_or(0, |t| t.span.end);
    if let Some(open) = stack.first() {
        errors.push(SyntaxError::unclosed(open.delimiter, open.span, Span::at(end)));
    }
}

/// Bounds the chains that pest's Pratt parser walks recursively.
fn check_operator_chains(source: &str, tokens: &[Token], errors: &mut Vec<SyntaxError>) {
    let mut powers = 0;
    let mut prefix_run = 0;
    let mut previous_is_operand = false;
    for token in tokens {
        let t = text(source, token);
        let is_operator = token.kind == TokenKind::Punct && !matches!(t, ")" | "]" | "}");
        if t == "^" {
            powers += 1;
        }
        if is_operator && matches!(t, "-" | "!") && !previous_is_operand {
            prefix_run += 1;
        } else {
            prefix_run = 0;
        }
        if powers > MAX_POWERS {
            errors.push(SyntaxError::TooDeep { what: "a chain of `^`", limit: MAX_POWERS, span: token.span });
            return;
        }
        if prefix_run > MAX_PREFIX_RUN {
            let what = "prefix operators";
            errors.push(SyntaxError::TooDeep { what, limit: MAX_PREFIX_RUN, span: token.span });
            return;
        }
        previous_is_operand = !is_operator;
    }
}
