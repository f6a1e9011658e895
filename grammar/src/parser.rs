//! From text to AST: the lexer cuts the file into items, pest parses each item, and the
//! builder below turns pest's pairs into the AST (folding expressions with a Pratt parser).
//! pest's types stay in this module.

use std::cell::RefCell;
use std::sync::LazyLock;

use pest::Parser as _;
use pest::iterators::{Pair, Pairs};
use pest::pratt_parser::{Assoc, Op, PrattParser};

use crate::ast::*;
use crate::error::SyntaxError;
use crate::lexer::{self, Chunk, Lexed, TokenKind};
use crate::span::Span;

#[derive(pest_derive::Parser)]
#[grammar = "genc.pest"]
struct GencParser;

/// The deepest expression tree accepted: deeper input is reported (E0007) rather than built,
/// so every later recursive walk of the AST stays shallow.
const MAX_EXPR_DEPTH: u32 = 128;

/// pest's budget of rule calls per item; a real item needs a few thousand.
const CALL_LIMIT: usize = 2_000_000;

/// Parses a whole file. Never fails: it returns what it could build and every error found,
/// at most one per top-level item beyond the lexer's.
pub fn parse(source: &str) -> (File, Vec<SyntaxError>) {
    pest::set_call_limit(std::num::NonZeroUsize::new(CALL_LIMIT));
    pest::set_error_detail(true);
    let lexed = lexer::lex(source);
    let mut errors = lexed.errors.clone();
    let mut items = Vec::new();
    if lexed.chunks.is_empty() && errors.is_empty() {
        errors.push(SyntaxError::Empty { span: Span::new(0, source.len()) });
    }
    // Built once: per item it would make parsing quadratic in the number of items.
    let token_ends: Vec<usize> =
        lexed.tokens.iter().filter(|t| t.kind != TokenKind::Comment).map(|t| t.span.end).collect();
    for chunk in &lexed.chunks {
        if chunk.has_errors {
            continue;
        }
        match parse_item(source, chunk, &lexed, &token_ends) {
            Ok((item, item_errors)) => {
                items.push(item);
                errors.extend(item_errors);
            }
            Err(error) => errors.push(error),
        }
    }
    errors.sort_by_key(SyntaxError::span);
    (File { items, comments: lexed.comments }, errors)
}

fn parse_item(
    source: &str,
    chunk: &Chunk,
    lexed: &Lexed,
    token_ends: &[usize],
) -> Result<(Item, Vec<SyntaxError>), SyntaxError> {
    let text = source.get(chunk.span.range()).unwrap_or("");
    if let Some(error) = expected_item(source, chunk, lexed) {
        return Err(error);
    }
    let mut pairs = GencParser::parse(Rule::item_only, text)
        .map_err(|e| crate::diagnose::pest_error(e, source, chunk, lexed))?;
    let builder = Builder { offset: chunk.span.start, token_ends, errors: RefCell::new(Vec::new()) };
    let pair = pairs.next().ok_or(SyntaxError::Empty { span: chunk.span })?;
    let item = builder.item(pair);
    Ok((item, builder.errors.into_inner()))
}

/// A chunk that does not start with an item keyword gets a message about what it found.
fn expected_item(source: &str, chunk: &Chunk, lexed: &Lexed) -> Option<SyntaxError> {
    let first = lexed.token_at(chunk.span.start)?;
    let word = source.get(first.span.range()).unwrap_or("");
    if first.kind == TokenKind::Ident && lexer::ITEM_KEYWORDS.contains(&word) {
        return None;
    }
    Some(crate::diagnose::expected_item(word, first.kind, first.span))
}

static PRATT: LazyLock<PrattParser<Rule>> = LazyLock::new(|| {
    // Loosest first; each `.op` binds tighter than the one before.
    PrattParser::new()
        .op(Op::infix(Rule::pipe, Assoc::Left))
        .op(Op::infix(Rule::or, Assoc::Left))
        .op(Op::infix(Rule::and, Assoc::Left))
        .op(Op::infix(Rule::eq, Assoc::Left)
            | Op::infix(Rule::ne, Assoc::Left)
            | Op::infix(Rule::lt, Assoc::Left)
            | Op::infix(Rule::le, Assoc::Left)
            | Op::infix(Rule::gt, Assoc::Left)
            | Op::infix(Rule::ge, Assoc::Left))
        .op(Op::infix(Rule::add, Assoc::Left) | Op::infix(Rule::sub, Assoc::Left))
        .op(Op::infix(Rule::mul, Assoc::Left)
            | Op::infix(Rule::div, Assoc::Left)
            | Op::infix(Rule::rem, Assoc::Left)
            | Op::infix(Rule::matmul, Assoc::Left))
        .op(Op::prefix(Rule::neg) | Op::prefix(Rule::not))
        .op(Op::infix(Rule::pow, Assoc::Right))
});

/// An expression and the depth of its tree, tracked while building so that no deep tree is
/// ever made.
struct Sized {
    expr: Expr,
    depth: u32,
}

struct Builder<'t> {
    offset: usize,
    /// The end offsets of the file's code tokens, in order.
    token_ends: &'t [usize],
    errors: RefCell<Vec<SyntaxError>>,
}

impl Builder<'_> {
    /// The span of a pair, without the whitespace and comments pest may include at its end
    /// (a rule that ends in a repetition consumes the trivia after it).
    fn span(&self, pair: &Pair<'_, Rule>) -> Span {
        let s = pair.as_span();
        let (start, end) = (s.start() + self.offset, s.end() + self.offset);
        let last = self.token_ends.partition_point(|&e| e <= end);
        let end = match last.checked_sub(1).and_then(|i| self.token_ends.get(i)) {
            Some(&token_end) if token_end > start => token_end,
            _ => end,
        };
        Span::new(start, end)
    }

    fn error(&self, error: SyntaxError) {
        self.errors.borrow_mut().push(error);
    }

    fn ident(&self, pair: Pair<'_, Rule>) -> Ident {
        Ident { name: pair.as_str().to_string(), span: self.span(&pair) }
    }

    // ---------------------------------------------------------------------------------------
    // Items

    fn item(&self, pair: Pair<'_, Rule>) -> Item {
        let span = self.span(&pair);
        let rule = pair.as_rule();
        let mut inner = pair.into_inner();
        let head = inner.next();
        match rule {
            Rule::dims_item => Item::Dims(Dims { dims: inner.map(|p| self.dim_decl(p)).collect(), span }),
            Rule::where_item => {
                Item::Where(Where { constraints: inner.map(|p| self.expr(p)).collect(), span })
            }
            Rule::param_item => Item::Param(self.binding(inner, span)),
            Rule::const_item => Item::Const(self.binding(inner, span)),
            Rule::definition => Item::Def(self.definition(head, inner, span)),
            Rule::train_item => {
                Item::Train(Train { entries: inner.map(|p| self.train_entry(p)).collect(), span })
            }
            _ => unreachable_rule(rule, span),
        }
    }

    fn dim_decl(&self, pair: Pair<'_, Rule>) -> DimDecl {
        let span = self.span(&pair);
        let mut inner = pair.into_inner();
        let name = self.ident(next(&mut inner));
        DimDecl { name, value: inner.next().map(|p| self.expr(p)), span }
    }

    fn binding(&self, mut inner: Pairs<'_, Rule>, span: Span) -> Binding {
        let name = self.ident(next(&mut inner));
        let mut ty = None;
        let mut value = None;
        for p in inner {
            match p.as_rule() {
                Rule::expr => value = Some(self.expr(p)),
                _ => ty = Some(self.ty(p)),
            }
        }
        Binding { name, ty, value: value.unwrap_or(Expr { kind: ExprKind::Error, span }), span }
    }

    fn definition(&self, kind: Option<Pair<'_, Rule>>, mut inner: Pairs<'_, Rule>, span: Span) -> Def {
        let kind = match kind.and_then(|k| k.into_inner().next()).map(|k| k.as_rule()) {
            Some(Rule::kw_net) => DefKind::Net,
            Some(Rule::kw_block) => DefKind::Block,
            Some(Rule::kw_loss) => DefKind::Loss,
            _ => DefKind::Sampler,
        };
        let name = self.ident(next(&mut inner));
        let params_pair = next(&mut inner);
        let params_span = self.span(&params_pair);
        let params = params_pair.into_inner().map(|p| self.param(p)).collect();
        let mut output = None;
        let mut body = Body::Expr(Expr { kind: ExprKind::Error, span });
        for p in inner {
            match p.as_rule() {
                Rule::output_type => {
                    let out_span = self.span(&p);
                    output = p.into_inner().next().map(|t| self.ty(t));
                    if kind == DefKind::Loss {
                        self.error(SyntaxError::LossOutputType { span: out_span });
                    }
                }
                Rule::block => body = Body::Block(self.block(p)),
                Rule::expr_body => {
                    if let Some(e) = p.into_inner().next() {
                        body = Body::Expr(self.expr(e));
                    }
                }
                rule => unreachable_rule(rule, span),
            }
        }
        if kind == DefKind::Net && output.is_none() {
            self.error(SyntaxError::MissingOutputType {
                kind: "net",
                name: name.name.clone(),
                span: params_span,
            });
        }
        Def { kind, name, params, output, body, span }
    }

    fn param(&self, pair: Pair<'_, Rule>) -> Param {
        let span = self.span(&pair);
        let mut inner = pair.into_inner();
        let name = self.ident(next(&mut inner));
        let mut ty = None;
        let mut default = None;
        for p in inner {
            match p.as_rule() {
                Rule::expr => default = Some(self.expr(p)),
                _ => ty = Some(self.ty(p)),
            }
        }
        Param { name, ty, default, span }
    }

    fn ty(&self, pair: Pair<'_, Rule>) -> Type {
        let span = self.span(&pair);
        let kind = match pair.as_rule() {
            Rule::scalar_type => TypeKind::Scalar(pair.as_str().to_string()),
            Rule::tuple_type => TypeKind::Tuple(pair.into_inner().map(|p| self.ty(p)).collect()),
            _ => {
                let mut dtype = None;
                let mut dims = Vec::new();
                for p in pair.into_inner() {
                    match p.as_rule() {
                        Rule::dtype => dtype = Some(p.as_str().to_string()),
                        _ => dims.push(self.expr(p)),
                    }
                }
                TypeKind::Tensor { dtype, dims }
            }
        };
        Type { kind, span }
    }

    // ---------------------------------------------------------------------------------------
    // Statements

    fn block(&self, pair: Pair<'_, Rule>) -> Block {
        let span = self.span(&pair);
        Block { stmts: pair.into_inner().map(|p| self.stmt(p)).collect(), span }
    }

    fn stmt(&self, pair: Pair<'_, Rule>) -> Stmt {
        let span = self.span(&pair);
        let rule = pair.as_rule();
        let mut inner = pair.into_inner();
        let kind = match rule {
            Rule::let_stmt => {
                let _let = inner.next();
                let pattern = self.pattern(next(&mut inner));
                let mut ty = None;
                let mut draw = false;
                let mut value = Expr { kind: ExprKind::Error, span };
                for p in inner {
                    match p.as_rule() {
                        Rule::draw_op => draw = true,
                        Rule::bind_op => {}
                        Rule::expr => value = self.expr(p),
                        _ => ty = Some(self.ty(p)),
                    }
                }
                StmtKind::Let { pattern, ty, draw, value }
            }
            Rule::return_stmt => {
                let _return = inner.next();
                StmtKind::Return(self.expr(next(&mut inner)))
            }
            Rule::for_stmt => {
                let _for = inner.next();
                let var = self.ident(next(&mut inner));
                let _in = inner.next();
                let range = self.range(next(&mut inner));
                StmtKind::For { var, range, body: self.block(next(&mut inner)) }
            }
            Rule::if_stmt => {
                let _if = inner.next();
                let cond = self.expr(next(&mut inner));
                let then = self.block(next(&mut inner));
                let _else = inner.next();
                let otherwise = inner.next().map(|p| match p.as_rule() {
                    Rule::if_stmt => Else::If(Box::new(self.stmt(p))),
                    _ => Else::Block(self.block(p)),
                });
                StmtKind::If { cond, then, otherwise }
            }
            Rule::log_stmt => {
                let _log = inner.next();
                let name = self.ident(next(&mut inner));
                StmtKind::Log { name, value: self.expr(next(&mut inner)) }
            }
            Rule::assign_stmt => {
                let target = self.place(next(&mut inner));
                let op = match next(&mut inner).as_str() {
                    "+=" => AssignOp::Add,
                    "-=" => AssignOp::Sub,
                    "*=" => AssignOp::Mul,
                    "/=" => AssignOp::Div,
                    _ => AssignOp::Set,
                };
                StmtKind::Assign { target, op, value: self.expr(next(&mut inner)) }
            }
            rule => unreachable_rule(rule, span),
        };
        Stmt { kind, span }
    }

    fn pattern(&self, pair: Pair<'_, Rule>) -> Pattern {
        let span = self.span(&pair);
        let inner = next(&mut pair.into_inner());
        match inner.as_rule() {
            Rule::tuple_pattern => Pattern::Tuple(inner.into_inner().map(|p| self.ident(p)).collect(), span),
            _ => Pattern::Name(self.ident(inner)),
        }
    }

    fn place(&self, pair: Pair<'_, Rule>) -> Place {
        let span = self.span(&pair);
        let mut inner = pair.into_inner();
        let name = self.ident(next(&mut inner));
        let indices = inner.map(|p| self.index_items(p)).collect();
        Place { name, indices, span }
    }

    fn range(&self, pair: Pair<'_, Rule>) -> Range {
        let span = self.span(&pair);
        let mut inner = pair.into_inner();
        let start = self.expr(next(&mut inner));
        let inclusive = next(&mut inner).as_rule() == Rule::range_incl;
        Range { start, end: self.expr(next(&mut inner)), inclusive, span }
    }

    // ---------------------------------------------------------------------------------------
    // Expressions

    fn expr(&self, pair: Pair<'_, Rule>) -> Expr {
        let span = self.span(&pair);
        let sized = self.sized_expr(pair);
        if sized.depth > MAX_EXPR_DEPTH {
            return Expr { kind: ExprKind::Error, span };
        }
        sized.expr
    }

    fn sized_expr(&self, pair: Pair<'_, Rule>) -> Sized {
        let too_deep = RefCell::new(false);
        PRATT
            .map_primary(|p| self.postfix(p))
            .map_prefix(|op, operand| {
                let span = self.span(&op).to(operand.expr.span);
                let op = if op.as_rule() == Rule::neg { UnaryOp::Neg } else { UnaryOp::Not };
                let kind = ExprKind::Unary(op, Box::new(operand.expr));
                self.bounded(Sized { expr: Expr { kind, span }, depth: operand.depth + 1 }, &too_deep)
            })
            .map_infix(|lhs, op_pair, rhs| {
                let op = binary_op(op_pair.as_rule());
                if op.is_comparison() {
                    if let ExprKind::Binary(first, ..) = &lhs.expr.kind {
                        if first.is_comparison() {
                            let span = self.span(&op_pair).to(rhs.expr.span);
                            self.error(SyntaxError::ChainedComparison { span, first: lhs.expr.span });
                        }
                    }
                }
                let span = lhs.expr.span.to(rhs.expr.span);
                let depth = lhs.depth.max(rhs.depth) + 1;
                let kind = ExprKind::Binary(op, Box::new(lhs.expr), Box::new(rhs.expr));
                self.bounded(Sized { expr: Expr { kind, span }, depth }, &too_deep)
            })
            .parse(pair.into_inner())
    }

    /// Replaces a tree that grew past the depth limit by an error node, reported once.
    fn bounded(&self, sized: Sized, reported: &RefCell<bool>) -> Sized {
        if sized.depth <= MAX_EXPR_DEPTH {
            return sized;
        }
        if !reported.replace(true) {
            let limit = MAX_EXPR_DEPTH as usize;
            self.error(SyntaxError::TooDeep { what: "an expression", limit, span: sized.expr.span });
        }
        Sized { expr: Expr { kind: ExprKind::Error, span: sized.expr.span }, depth: MAX_EXPR_DEPTH + 1 }
    }

    fn postfix(&self, pair: Pair<'_, Rule>) -> Sized {
        let mut inner = pair.into_inner();
        let mut current = self.primary(next(&mut inner));
        let reported = RefCell::new(false);
        for p in inner {
            let span = current.expr.span.to(self.span(&p));
            let base = Box::new(current.expr);
            let (kind, depth) = match p.as_rule() {
                Rule::call_args => {
                    let args = self.args(p);
                    let depth = args.iter().map(|a| a.1).max().unwrap_or(0);
                    (ExprKind::Call(base, args.into_iter().map(|a| a.0).collect()), depth)
                }
                Rule::index => (ExprKind::Index(base, self.index_items(p)), 1),
                _ => (ExprKind::Field(base, self.ident(next(&mut p.into_inner()))), 0),
            };
            let depth = current.depth.max(depth) + 1;
            current = self.bounded(Sized { expr: Expr { kind, span }, depth }, &reported);
        }
        current
    }

    fn primary(&self, pair: Pair<'_, Rule>) -> Sized {
        let span = self.span(&pair);
        let leaf = |kind| Sized { expr: Expr { kind, span }, depth: 1 };
        match pair.as_rule() {
            Rule::int => {
                let text = pair.as_str();
                match text.replace('_', "").parse::<u64>() {
                    Ok(value) => leaf(ExprKind::Int(value, text.to_string())),
                    Err(_) => {
                        self.error(SyntaxError::IntegerOverflow { text: text.to_string(), span });
                        leaf(ExprKind::Error)
                    }
                }
            }
            Rule::float => {
                let text = pair.as_str();
                let value = text.replace('_', "").parse::<f64>().unwrap_or(f64::NAN);
                leaf(ExprKind::Float(value, text.to_string()))
            }
            Rule::string => leaf(ExprKind::Str(unescape(pair.as_str()))),
            Rule::boolean => leaf(ExprKind::Bool(pair.as_str() == "true")),
            Rule::name => leaf(ExprKind::Name(pair.as_str().to_string())),
            Rule::fixed => {
                let operand = self.postfix(next(&mut pair.into_inner().skip(1)));
                Sized {
                    expr: Expr { kind: ExprKind::Fixed(Box::new(operand.expr)), span },
                    depth: operand.depth + 1,
                }
            }
            Rule::paren => {
                let mut is_tuple = false;
                let mut items = Vec::new();
                for p in pair.into_inner() {
                    match p.as_rule() {
                        Rule::tuple_comma => is_tuple = true,
                        _ => items.push(self.sized_expr(p)),
                    }
                }
                let depth = items.iter().map(|s| s.depth).max().unwrap_or(0) + 1;
                let kind = match (is_tuple, items.pop()) {
                    (false, Some(only)) => ExprKind::Paren(Box::new(only.expr)),
                    (_, last) => {
                        let mut exprs: Vec<Expr> = items.into_iter().map(|s| s.expr).collect();
                        exprs.extend(last.map(|s| s.expr));
                        ExprKind::Tuple(exprs)
                    }
                };
                Sized { expr: Expr { kind, span }, depth }
            }
            Rule::list => {
                let items: Vec<Sized> = pair.into_inner().map(|p| self.sized_expr(p)).collect();
                let depth = items.iter().map(|s| s.depth).max().unwrap_or(0) + 1;
                Sized {
                    expr: Expr { kind: ExprKind::List(items.into_iter().map(|s| s.expr).collect()), span },
                    depth,
                }
            }
            rule => unreachable_rule(rule, span),
        }
    }

    fn args(&self, pair: Pair<'_, Rule>) -> Vec<(Arg, u32)> {
        let mut args: Vec<(Arg, u32)> = Vec::new();
        let mut first_named: Option<Span> = None;
        for arg in pair.into_inner() {
            let span = self.span(&arg);
            let mut name = None;
            let mut value = None;
            for p in arg.into_inner() {
                match p.as_rule() {
                    Rule::arg_name => name = Some(self.ident(next(&mut p.into_inner()))),
                    _ => value = Some(self.sized_expr(p)),
                }
            }
            match (&name, first_named) {
                (Some(_), None) => first_named = Some(span),
                (None, Some(named)) => self.error(SyntaxError::PositionalAfterNamed { span, named }),
                _ => {}
            }
            let value = value.unwrap_or(Sized { expr: Expr { kind: ExprKind::Error, span }, depth: 1 });
            args.push((Arg { name, value: value.expr, span }, value.depth));
        }
        args
    }

    fn index_items(&self, pair: Pair<'_, Rule>) -> Vec<IndexItem> {
        pair.into_inner().map(|item| self.index_item(item)).collect()
    }

    fn index_item(&self, pair: Pair<'_, Rule>) -> IndexItem {
        let span = self.span(&pair);
        let mut start = None;
        let mut tail = None;
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::ellipsis => return IndexItem::Ellipsis(span),
                Rule::expr => start = Some(self.expr(p)),
                _ => tail = Some(p),
            }
        }
        let Some(tail) = tail else {
            return IndexItem::Expr(start.unwrap_or(Expr { kind: ExprKind::Error, span }));
        };
        // After the first colon: an optional end, then an optional `:step`.
        let mut end = None;
        let mut step = None;
        let mut colons = 0;
        for p in tail.into_inner() {
            match p.as_rule() {
                Rule::slice_colon => colons += 1,
                _ if colons == 1 => end = Some(self.expr(p)),
                _ => step = Some(self.expr(p)),
            }
        }
        IndexItem::Slice { start, end, step, span }
    }

    // ---------------------------------------------------------------------------------------
    // The train block

    fn train_entry(&self, pair: Pair<'_, Rule>) -> TrainEntry {
        let span = self.span(&pair);
        let rule = pair.as_rule();
        let mut inner = pair.into_inner();
        let _keyword = inner.next();
        let kind = match rule {
            Rule::data_entry => {
                let pattern = self.pattern(next(&mut inner));
                TrainEntryKind::Data { pattern, source: self.expr(next(&mut inner)) }
            }
            Rule::batch_entry => {
                let dim = self.ident(next(&mut inner));
                TrainEntryKind::Batch { dim, size: self.expr(next(&mut inner)) }
            }
            Rule::steps_entry => TrainEntryKind::Steps(self.expr(next(&mut inner))),
            Rule::epochs_entry => TrainEntryKind::Epochs(self.expr(next(&mut inner))),
            Rule::seed_entry => TrainEntryKind::Seed(self.expr(next(&mut inner))),
            Rule::optimizer_entry => {
                let name = self.ident(next(&mut inner));
                TrainEntryKind::Optimizer { name, spec: self.expr(next(&mut inner)) }
            }
            Rule::schedule_entry => {
                let optimizer = self.ident(next(&mut inner));
                TrainEntryKind::Schedule { optimizer, spec: self.expr(next(&mut inner)) }
            }
            Rule::ema_entry => {
                let target = self.path(next(&mut inner));
                let args = self.args(next(&mut inner)).into_iter().map(|a| a.0).collect();
                TrainEntryKind::Ema { target, args }
            }
            Rule::init_entry => {
                let target = self.path(next(&mut inner));
                let args = self.args(next(&mut inner)).into_iter().map(|a| a.0).collect();
                TrainEntryKind::Init { target, args }
            }
            Rule::init_default_entry => {
                let target = self.path(next(&mut inner));
                TrainEntryKind::InitDefault { target, rule: self.expr(next(&mut inner)) }
            }
            Rule::step_entry => TrainEntryKind::Step(inner.map(|p| self.step_stmt(p)).collect()),
            Rule::sample_entry | Rule::eval_entry => {
                let mut name = None;
                let mut every = None;
                let mut what = None;
                for p in inner {
                    match p.as_rule() {
                        Rule::name => name = Some(self.ident(p)),
                        Rule::cadence => every = Some(self.cadence(p)),
                        _ => what = Some(self.expr(p)),
                    }
                }
                let every = every.unwrap_or_else(|| self.missing_cadence(span));
                if rule == Rule::sample_entry {
                    TrainEntryKind::Sample { name, every, what }
                } else {
                    TrainEntryKind::Eval {
                        name,
                        every,
                        what: what.unwrap_or(Expr { kind: ExprKind::Error, span }),
                    }
                }
            }
            Rule::checkpoint_entry => TrainEntryKind::Checkpoint(self.cadence(next(&mut inner))),
            Rule::log_entry => TrainEntryKind::Log(self.cadence(next(&mut inner))),
            rule => unreachable_rule(rule, span),
        };
        TrainEntry { kind, span }
    }

    fn missing_cadence(&self, span: Span) -> Cadence {
        Cadence { count: Expr { kind: ExprKind::Error, span }, unit: CadenceUnit::Steps, span }
    }

    fn cadence(&self, pair: Pair<'_, Rule>) -> Cadence {
        let span = self.span(&pair);
        let mut inner = pair.into_inner();
        let _every = inner.next();
        let count = self.expr(next(&mut inner));
        let unit = if next(&mut inner).as_str().starts_with("epoch") {
            CadenceUnit::Epochs
        } else {
            CadenceUnit::Steps
        };
        Cadence { count, unit, span }
    }

    fn step_stmt(&self, pair: Pair<'_, Rule>) -> StepStmt {
        let span = self.span(&pair);
        let rule = pair.as_rule();
        let mut inner = pair.into_inner();
        let keyword = next(&mut inner);
        let kind = match rule {
            Rule::repeat_stmt => {
                let count = self.expr(next(&mut inner));
                StepStmtKind::Repeat { count, body: inner.map(|p| self.step_stmt(p)).collect() }
            }
            Rule::minimize_stmt => {
                let objective = self.expr(next(&mut inner));
                let _with = inner.next();
                let optimizer = self.ident(next(&mut inner));
                StepStmtKind::Minimize { maximize: keyword.as_str() == "maximize", objective, optimizer }
            }
            Rule::clip_stmt => {
                let target = self.path(next(&mut inner));
                let _to = inner.next();
                StepStmtKind::Clip { target, range: self.expr(next(&mut inner)) }
            }
            rule => unreachable_rule(rule, span),
        };
        StepStmt { kind, span }
    }

    fn path(&self, pair: Pair<'_, Rule>) -> Path {
        let span = self.span(&pair);
        Path { segments: pair.into_inner().map(|p| self.ident(p)).collect(), span }
    }
}

/// The next pair of a sequence the grammar guarantees. pest has checked the structure, so a
/// missing pair is a bug in this file; it becomes an error node, never a panic.
fn next<'i>(pairs: &mut impl Iterator<Item = Pair<'i, Rule>>) -> Pair<'i, Rule> {
    match pairs.next() {
        Some(pair) => pair,
        None => missing_pair(),
    }
}

#[cold]
fn missing_pair() -> ! {
    // The grammar and this builder disagree: a programming error, not a user's.
    panic!("genc-grammar: the AST builder expected a pair the grammar did not produce")
}

#[cold]
fn unreachable_rule(rule: Rule, span: Span) -> ! {
    panic!("genc-grammar: the AST builder met rule {rule:?} at {span:?} where the grammar allows none")
}

fn binary_op(rule: Rule) -> BinaryOp {
    match rule {
        Rule::pipe => BinaryOp::Pipe,
        Rule::or => BinaryOp::Or,
        Rule::and => BinaryOp::And,
        Rule::eq => BinaryOp::Eq,
        Rule::ne => BinaryOp::Ne,
        Rule::lt => BinaryOp::Lt,
        Rule::le => BinaryOp::Le,
        Rule::gt => BinaryOp::Gt,
        Rule::ge => BinaryOp::Ge,
        Rule::add => BinaryOp::Add,
        Rule::sub => BinaryOp::Sub,
        Rule::mul => BinaryOp::Mul,
        Rule::div => BinaryOp::Div,
        Rule::rem => BinaryOp::Rem,
        Rule::matmul => BinaryOp::MatMul,
        _ => BinaryOp::Pow,
    }
}

/// The value of a string literal, quotes removed and escapes decoded (the lexer has already
/// rejected unknown escapes).
fn unescape(literal: &str) -> String {
    let body = literal.get(1..literal.len().saturating_sub(1)).unwrap_or("");
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

pub(crate) use Rule as GrammarRule;
