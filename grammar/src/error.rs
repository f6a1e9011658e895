//! Syntax diagnostics: one variant per mistake, with its code, message, labels and help in
//! one place. Codes are stable and listed with an example each in `docs/errors.md`.

use miette::Diagnostic;
use thiserror::Error;

use crate::span::Span;

#[derive(Clone, Debug, PartialEq, Error, Diagnostic)]
pub enum SyntaxError {
    /// The parser met a token that cannot continue what came before.
    #[error("expected {expected}, found {found}")]
    #[diagnostic(code(E0001))]
    Unexpected {
        expected: String,
        found: String,
        #[label("expected {expected}")]
        span: Span,
        #[help]
        help: Option<String>,
    },

    /// A bracket was opened and the item ended (or a statement began) before it closed.
    #[error("expected `{close}` to close the {what} opened here")]
    #[diagnostic(code(E0002), help("add `{close}` where the {what} should end"))]
    Unclosed {
        close: char,
        what: &'static str,
        #[label(primary, "expected `{close}` here")]
        span: Span,
        #[label("the {what} opened here")]
        open: Span,
    },

    /// A closing bracket of the wrong kind.
    #[error("mismatched `{found}`: expected `{expected}` to close the {what} opened here")]
    #[diagnostic(code(E0003), help("replace `{found}` with `{expected}`, or close the {what} before it"))]
    Mismatched {
        expected: char,
        found: char,
        what: &'static str,
        #[label(primary, "expected `{expected}`, found `{found}`")]
        span: Span,
        #[label("the {what} opened here")]
        open: Span,
    },

    /// A closing bracket with nothing open.
    #[error("unexpected closing `{close}`")]
    #[diagnostic(code(E0004), help("remove it, or add the opening bracket it was meant to close"))]
    UnmatchedClose {
        close: char,
        #[label("nothing is open here")]
        span: Span,
    },

    #[error("unterminated string")]
    #[diagnostic(code(E0005), help("close the string with `\"` on the same line"))]
    UnterminatedString {
        #[label("this string is never closed")]
        span: Span,
    },

    #[error("invalid number `{text}`")]
    #[diagnostic(code(E0006))]
    InvalidNumber {
        text: String,
        #[label("not a number")]
        span: Span,
        #[help]
        help: String,
    },

    #[error("too deeply nested: {what} (the limit is {limit})")]
    #[diagnostic(code(E0007), help("split the expression into several `let` bindings"))]
    TooDeep {
        what: &'static str,
        limit: usize,
        #[label("too deep here")]
        span: Span,
    },

    #[error("unexpected character `{character}`")]
    #[diagnostic(code(E0008))]
    InvalidCharacter {
        character: String,
        #[label("not part of the language")]
        span: Span,
        #[help]
        help: String,
    },

    #[error("comparison operators cannot be chained")]
    #[diagnostic(code(E0009), help("compare one pair at a time and join them: `a < b && b < c`"))]
    ChainedComparison {
        #[label(primary, "second comparison")]
        span: Span,
        #[label("first comparison")]
        first: Span,
    },

    #[error("{kind} `{name}` must declare its output type")]
    #[diagnostic(
        code(E0010),
        help("add `-> [dims...]` after the parameter list, as in `net G(z: [B, Z]) -> [B, C, H, W]`")
    )]
    MissingOutputType {
        kind: &'static str,
        name: String,
        #[label("after this parameter list")]
        span: Span,
    },

    #[error("a loss is a scalar and takes no output type")]
    #[diagnostic(code(E0011), help("remove the `-> ...`"))]
    LossOutputType {
        #[label("remove this")]
        span: Span,
    },

    #[error("positional argument after a named argument")]
    #[diagnostic(code(E0012), help("put positional arguments first: `conv2d(64, kernel: 3)`"))]
    PositionalAfterNamed {
        #[label(primary, "positional argument")]
        span: Span,
        #[label("named arguments start here")]
        named: Span,
    },

    #[error("`{word}` is a reserved word and cannot be used as a name")]
    #[diagnostic(code(E0013), help("choose another name, such as `{word}_`"))]
    ReservedWord {
        word: String,
        #[label("reserved word")]
        span: Span,
    },

    #[error("unknown {block} entry `{found}`")]
    #[diagnostic(code(E0014))]
    UnknownEntry {
        block: &'static str,
        found: String,
        #[label("not a {block} entry")]
        span: Span,
        #[help]
        help: String,
    },

    #[error("expected a top-level item, found {found}")]
    #[diagnostic(code(E0015))]
    ExpectedItem {
        found: String,
        #[label("expected `dims`, `where`, `param`, `const`, `net`, `block`, `loss`, `sampler` or `train`")]
        span: Span,
        #[help]
        help: String,
    },

    #[error("the spec is empty")]
    #[diagnostic(code(E0016), help("a spec declares at least one `net`; see docs/language.md"))]
    Empty {
        #[label("nothing but whitespace and comments")]
        span: Span,
    },

    #[error("unknown escape `\\{escape}` in a string")]
    #[diagnostic(code(E0017), help("the escapes are `\\\"`, `\\\\`, `\\n` and `\\t`"))]
    InvalidEscape {
        escape: char,
        #[label("unknown escape")]
        span: Span,
    },

    #[error("integer `{text}` is too large")]
    #[diagnostic(code(E0018), help("integers must fit in 64 bits; write a float (`1e20`) if you meant one"))]
    IntegerOverflow {
        text: String,
        #[label("does not fit in 64 bits")]
        span: Span,
    },
}

/// The kind of bracket, named after what it opens, for messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delimiter {
    Call,
    Params,
    Paren,
    Index,
    List,
    Brace,
}

impl Delimiter {
    /// What `open` starts, judged from the two tokens before it.
    pub fn opened_by(open: &str, previous: Option<&str>, before_previous: Option<&str>) -> Option<Self> {
        let after_operand = previous.is_some_and(|p| {
            p == ")" || p == "]" || p.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        });
        let after_keyword = previous.is_some_and(|p| crate::lexer::RESERVED.contains(&p));
        let after_definition =
            before_previous.is_some_and(|p| matches!(p, "net" | "block" | "loss" | "sampler"));
        match open {
            "(" if after_definition => Some(Delimiter::Params),
            "(" if after_operand && !after_keyword => Some(Delimiter::Call),
            "(" => Some(Delimiter::Paren),
            "[" if after_operand && !after_keyword => Some(Delimiter::Index),
            "[" => Some(Delimiter::List),
            "{" => Some(Delimiter::Brace),
            _ => None,
        }
    }

    pub fn closed_by(close: &str) -> Option<char> {
        match close {
            ")" => Some(')'),
            "]" => Some(']'),
            "}" => Some('}'),
            _ => None,
        }
    }

    pub fn close(self) -> char {
        match self {
            Delimiter::Call | Delimiter::Params | Delimiter::Paren => ')',
            Delimiter::Index | Delimiter::List => ']',
            Delimiter::Brace => '}',
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Delimiter::Call => "call",
            Delimiter::Params => "parameter list",
            Delimiter::Paren => "parenthesis",
            Delimiter::Index => "index",
            Delimiter::List => "list",
            Delimiter::Brace => "block",
        }
    }
}

impl SyntaxError {
    pub fn unclosed(open: Delimiter, open_span: Span, expected_at: Span) -> Self {
        SyntaxError::Unclosed { close: open.close(), what: open.name(), span: expected_at, open: open_span }
    }

    pub fn invalid_number(text: &str, span: Span, help: &str) -> Self {
        SyntaxError::InvalidNumber { text: text.to_string(), span, help: help.to_string() }
    }

    pub fn invalid_character(character: char, span: Span) -> Self {
        let help = match character {
            ';' => "statements end at the end of the line: remove the `;`",
            '\'' => "strings use double quotes: \"like this\"",
            '#' => "comments start with `//`",
            '&' | '|' => "the logical operators are `&&` and `||`",
            '?' => "there is no `?` operator; use `select(cond, a, b)`",
            c if c.is_alphabetic() => "names use ASCII letters, digits and `_`",
            _ => "remove it",
        };
        let shown = if character.is_control() || character.is_whitespace() {
            format!("U+{:04X}", u32::from(character))
        } else {
            character.to_string()
        };
        SyntaxError::InvalidCharacter { character: shown, span, help: help.to_string() }
    }

    /// The primary span, used to order diagnostics and to place them in items.
    pub fn span(&self) -> Span {
        match self {
            SyntaxError::Unexpected { span, .. }
            | SyntaxError::Unclosed { span, .. }
            | SyntaxError::Mismatched { span, .. }
            | SyntaxError::UnmatchedClose { span, .. }
            | SyntaxError::UnterminatedString { span }
            | SyntaxError::InvalidNumber { span, .. }
            | SyntaxError::TooDeep { span, .. }
            | SyntaxError::InvalidCharacter { span, .. }
            | SyntaxError::ChainedComparison { span, .. }
            | SyntaxError::MissingOutputType { span, .. }
            | SyntaxError::LossOutputType { span }
            | SyntaxError::PositionalAfterNamed { span, .. }
            | SyntaxError::ReservedWord { span, .. }
            | SyntaxError::UnknownEntry { span, .. }
            | SyntaxError::ExpectedItem { span, .. }
            | SyntaxError::Empty { span }
            | SyntaxError::InvalidEscape { span, .. }
            | SyntaxError::IntegerOverflow { span, .. } => *span,
        }
    }
}
