//! Turns pest's errors into diagnostics in the user's terms: rule names become phrases
//! ("an expression", "`)`"), and the common mistakes (a reserved word as a name, a misspelt
//! `train` entry, a statement at the top level) get their own codes and a concrete help.

use pest::error::{ErrorVariant, InputLocation};

use crate::error::SyntaxError;
use crate::lexer::{self, Chunk, Lexed, Token, TokenKind};
use crate::parser::GrammarRule as Rule;
use crate::span::Span;
use crate::suggest::did_you_mean;

/// The words that start a `train` entry, and a statement of its `step` block.
pub const TRAIN_ENTRIES: [&str; 14] = [
    "data",
    "batch",
    "steps",
    "epochs",
    "seed",
    "optimizer",
    "schedule",
    "ema",
    "init",
    "step",
    "sample",
    "checkpoint",
    "log",
    "eval",
];
pub const STEP_ENTRIES: [&str; 4] = ["repeat", "minimize", "maximize", "clip"];
/// Statement keywords, for "did you mean" on a misspelt one.
const STATEMENT_KEYWORDS: [&str; 6] = ["let", "return", "for", "if", "else", "log"];

pub(crate) fn pest_error(
    error: pest::error::Error<Rule>,
    source: &str,
    chunk: &Chunk,
    lexed: &Lexed,
) -> SyntaxError {
    let mut local = match error.location {
        InputLocation::Pos(p) => p,
        InputLocation::Span((start, _)) => start,
    };
    let mut positives = match &error.variant {
        ErrorVariant::ParsingError { positives, .. } => positives.clone(),
        ErrorVariant::CustomError { .. } => {
            // pest's own budget of calls or stack ran out.
            let span = lexed.token_at(chunk.span.start + local).map_or(chunk.span, |t| t.span);
            return SyntaxError::TooDeep { what: "this item", limit: lexer::MAX_NESTING, span };
        }
    };
    // With error detail on, pest also records the literal tokens it tried, and the furthest
    // position it reached (which may lie past the last rule it attempted).
    let mut literals: Vec<String> = Vec::new();
    if let Some(attempts) = error.parse_attempts() {
        // Lookaheads (`name` refuses reserved words) also advance the furthest position; a
        // keyword in between means that position is an artefact, not progress.
        let crosses_keyword = lexed.tokens.iter().any(|t| {
            let inside = t.span.start >= chunk.span.start + local
                && t.span.start < chunk.span.start + attempts.max_position;
            let word = source.get(t.span.range()).unwrap_or("");
            inside && (lexer::RESERVED.contains(&word) || lexer::ITEM_KEYWORDS.contains(&word))
        });
        if attempts.max_position >= local && !crosses_keyword {
            if attempts.max_position > local {
                positives.clear();
            }
            local = attempts.max_position;
            literals = attempts.expected_tokens().iter().map(ToString::to_string).collect();
            for stack in attempts.call_stacks() {
                match stack.deepest.get_rule() {
                    Some(rule) => positives.push(*rule),
                    None => positives.extend(stack.parent),
                }
            }
        }
    }
    let pos = chunk.span.start + local;
    let found = lexed.token_at(pos);
    let found_text = found.map_or("", |t| source.get(t.span.range()).unwrap_or(""));
    let found_desc =
        found.map_or_else(|| "the end of the file".to_string(), |t| describe_token(t, found_text));
    let span = found.map_or(Span::at(source.len()), |t| t.span);

    let is_name_expected =
        [Rule::name, Rule::arg_name, Rule::pattern, Rule::path, Rule::dim_decl, Rule::param]
            .iter()
            .any(|rule| positives.contains(rule));
    if let Some(token) = found {
        let is_reserved = token.kind == TokenKind::Ident && lexer::RESERVED.contains(&found_text);
        if is_reserved && is_name_expected && found_text != "else" {
            return SyntaxError::ReservedWord { word: found_text.to_string(), span };
        }
        if token.kind == TokenKind::Ident {
            if let Some(error) = unknown_entry(&positives, found_text, span) {
                return error;
            }
        }
    }

    let mut expected: Vec<String> = Vec::new();
    let phrases = literals.iter().filter_map(|l| describe_literal(l).map(str::to_string)).chain(
        positives.iter().filter_map(|rule| match rule {
            Rule::EOI => Some(format!("the end of `{}`", item_keyword(source, chunk, lexed))),
            rule => describe_rule(*rule).map(str::to_string),
        }),
    );
    for phrase in phrases {
        if !expected.contains(&phrase) {
            expected.push(phrase);
        }
    }
    // `(`, `[` and names are ways to start an expression or continue one with a call or an
    // index: the broad phrase says it better.
    let broad = expected
        .iter()
        .any(|p| matches!(p.as_str(), "an expression" | "an operator" | "an argument" | "an index"));
    if broad || expected.iter().any(|p| p == "a name") {
        expected.retain(|p| !matches!(p.as_str(), "`(`" | "`[`"));
    }
    if broad {
        expected.retain(|p| p != "a name");
    }
    // Right after an operand, only an operator (or what the construct needs) can follow.
    if expected.iter().any(|p| p == "an operator") {
        expected.retain(|p| p != "an expression");
    }
    expected.sort_by_key(|phrase| phrase_rank(phrase));
    let expected = join_alternatives(&expected);

    // When the found token is on a later line (or there is none), point just after the last
    // token: that is where the missing piece belongs.
    let previous = previous_token(lexed, pos);
    let span = match previous {
        Some(prev)
            if found.is_none() || source.get(prev.span.end..span.start).is_some_and(|g| g.contains('\n')) =>
        {
            Span::at(prev.span.end)
        }
        _ => span,
    };
    let help = specific_help(found_text, &positives).or_else(|| {
        let prev = previous?;
        let word = source.get(prev.span.range()).unwrap_or("");
        let keywords = STATEMENT_KEYWORDS.iter().chain(&TRAIN_ENTRIES).chain(&STEP_ENTRIES).copied();
        let guess = did_you_mean(word, keywords).filter(|guess| *guess != word && word.len() >= 3)?;
        Some(format!("`{word}` is not a keyword here; did you mean `{guess}`?"))
    });
    SyntaxError::Unexpected { expected, found: found_desc, span, help }
}

/// Help for mistakes recognisable from the token alone.
fn specific_help(found: &str, positives: &[Rule]) -> Option<String> {
    let help = match found {
        "else" => "`else` must follow the `}` of an `if` block",
        ".." | "..=" => "ranges appear only in `for` loops; slices use `:`, as in `x[0:4]`",
        "(" if positives.contains(&Rule::assign_op) => {
            "only a name or an indexed name can be assigned: `x = ...` or `x[i] = ...`"
        }
        "=" if positives.contains(&Rule::expr) => "`=` binds a name; compare with `==`",
        _ => return None,
    };
    Some(help.to_string())
}

/// A misspelt `train` or `step` entry, when the parser stopped where an entry begins.
fn unknown_entry(positives: &[Rule], found: &str, span: Span) -> Option<SyntaxError> {
    let any = |rules: &[Rule]| rules.iter().any(|rule| positives.contains(rule));
    let (block, entries): (&'static str, &[&str]) = if any(&[Rule::data_entry, Rule::kw_data]) {
        ("train", &TRAIN_ENTRIES)
    } else if any(&[Rule::minimize_stmt, Rule::kw_minimize]) {
        ("step", &STEP_ENTRIES)
    } else {
        return None;
    };
    let help = match did_you_mean(found, entries.iter().copied()) {
        _ if block == "train" && STEP_ENTRIES.contains(&found) => {
            format!("`{found}` goes inside `step {{ ... }}`")
        }
        Some(guess) => format!("did you mean `{guess}`?"),
        None => format!(
            "the entries of `{block}` are {}",
            entries.iter().map(|e| format!("`{e}`")).collect::<Vec<_>>().join(", ")
        ),
    };
    Some(SyntaxError::UnknownEntry { block, found: found.to_string(), span, help })
}

pub(crate) fn expected_item(word: &str, kind: TokenKind, span: Span) -> SyntaxError {
    let help = match word {
        "let" | "return" | "for" | "if" | "log" => {
            "statements belong inside the body of a `net`, `block`, `loss` or `sampler`".to_string()
        }
        "minimize" | "maximize" | "repeat" | "clip" => {
            format!("`{word}` belongs in the `step {{ ... }}` block of `train`")
        }
        "fn" | "def" | "function" | "model" | "layer" => {
            "definitions start with `net`, `block`, `loss` or `sampler`".to_string()
        }
        "import" | "use" | "include" => "a spec is a single file; there are no imports".to_string(),
        _ => match did_you_mean(word, lexer::ITEM_KEYWORDS) {
            Some(guess) if kind == TokenKind::Ident => format!("did you mean `{guess}`?"),
            _ => "every top-level item starts with its keyword, at the start of a line".to_string(),
        },
    };
    let found = describe_token(Token { kind, span }, word);
    SyntaxError::ExpectedItem { found, span, help }
}

fn item_keyword<'s>(source: &'s str, chunk: &Chunk, lexed: &Lexed) -> &'s str {
    lexed.token_at(chunk.span.start).map_or("", |t| source.get(t.span.range()).unwrap_or(""))
}

fn previous_token(lexed: &Lexed, pos: usize) -> Option<Token> {
    let i = lexed.tokens.partition_point(|t| t.span.end <= pos);
    lexed.tokens.get(..i)?.iter().rev().find(|t| t.kind != TokenKind::Comment).copied()
}

fn describe_literal(token: &str) -> Option<&'static str> {
    let phrase = match token {
        "(" => "`(`",
        ")" => "`)`",
        "[" => "`[`",
        "]" => "`]`",
        "{" => "`{`",
        "}" => "`}`",
        "," => "`,`",
        ":" => "`:`",
        "=" => "`=`",
        "->" => "`->`",
        "~" => "`~`",
        "..=" | ".." => "a range (`..` or `..=`)",
        _ => return None,
    };
    Some(phrase)
}

fn describe_token(token: Token, text: &str) -> String {
    match token.kind {
        TokenKind::Number => format!("number `{text}`"),
        TokenKind::Str => "a string".to_string(),
        _ => format!("`{text}`"),
    }
}

/// Phrases for grammar rules; `None` for rules whose literal tokens say it better.
fn describe_rule(rule: Rule) -> Option<&'static str> {
    use Rule::*;
    let phrase = match rule {
        expr | neg | not | postfix | fixed | float | int | string | boolean | paren | list | kw_fixed => {
            "an expression"
        }
        pipe | or | and | eq | ne | le | ge | lt | gt | add | sub | mul | div | rem | matmul | pow => {
            "an operator"
        }
        call_args | index | field => "an operator",
        name | arg_name | path => "a name",
        tensor_type | tuple_type | scalar_type | dtype => "a type",
        pattern | tuple_pattern => "a name",
        block | train_item | step_entry | repeat_stmt => "`{`",
        let_stmt | return_stmt | for_stmt | if_stmt | log_stmt | assign_stmt | place => "a statement",
        kw_let | kw_return | kw_for | kw_if | kw_log => "a statement",
        data_entry | batch_entry | steps_entry | epochs_entry | seed_entry | optimizer_entry
        | schedule_entry | ema_entry | init_entry | sample_entry | checkpoint_entry | log_entry
        | eval_entry => "a `train` entry",
        kw_data | kw_batch | kw_steps | kw_epochs | kw_seed | kw_optimizer | kw_schedule | kw_ema
        | kw_init | kw_step | kw_sample | kw_checkpoint | kw_eval => "a `train` entry",
        minimize_stmt | clip_stmt | kw_minimize | kw_repeat | kw_clip => "`minimize`, `repeat` or `clip`",
        param_list => "`(`",
        output_type => "`->`",
        expr_body | bind_op => "`=`",
        draw_op => "`~`",
        assign_op => "`=`",
        kw_else => "`else`",
        kw_in => "`in`",
        kw_with => "`with`",
        kw_to => "`to`",
        kw_every | cadence => "`every`",
        unit => "a unit (`steps` or `epochs`)",
        range | range_incl | range_excl => "a range (`..` or `..=`)",
        slice_colon | slice_tail => "`:`",
        ellipsis => "`...`",
        index_item => "an index",
        arg => "an argument",
        param => "a parameter",
        dim_decl => "a dimension name",
        tuple_comma => "`,`",
        def_kind | kw_net | kw_block | kw_loss | kw_sampler => "a definition",
        kw_dims | kw_where | kw_param | kw_const | kw_train | dims_item | where_item | param_item
        | const_item | definition => "a top-level item",
        _ => return None,
    };
    Some(phrase)
}

/// Closing punctuation first (the usual fix), the broad categories last.
fn phrase_rank(phrase: &str) -> u8 {
    match phrase {
        "`)`" | "`]`" | "`}`" => 0,
        "`,`" => 1,
        "an operator" => 4,
        p if p.starts_with("the end") => 5,
        "an expression" | "a statement" | "a `train` entry" => 3,
        _ => 2,
    }
}

fn join_alternatives(phrases: &[String]) -> String {
    match phrases {
        [] => "something else".to_string(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}
