//! The canonical layout of `.gen` files (`genc fmt`).
//!
//! Properties, tested on every spec: the output parses to the same AST as the input (spans
//! aside), formatting is idempotent, and every comment survives. The layout rules are in
//! docs/language.md; comments are placed by source position: one before a statement (or
//! inside a single-line one) goes on its own line above it, one after it on the same line
//! stays there.

use crate::ast::*;
use crate::error::SyntaxError;
use crate::lexer::Comment;
use crate::span::Span;

/// Lines longer than this have their pipe chains broken, one stage per line.
pub const MAX_WIDTH: usize = 100;
const INDENT: &str = "    ";

/// Formats `source`, or returns its syntax errors (a broken file is never rewritten).
pub fn format_source(source: &str) -> Result<String, Vec<SyntaxError>> {
    let (file, errors) = crate::parse(source);
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(format_file(&file, source))
}

/// Formats a parsed file; `source` is the text it was parsed from (for blank lines).
pub fn format_file(file: &File, source: &str) -> String {
    let mut printer = Printer {
        source,
        out: String::new(),
        indent: 0,
        comments: &file.comments,
        next_comment: 0,
        last_end: 0,
    };
    printer.file(file);
    printer.out
}

struct Printer<'a> {
    source: &'a str,
    out: String,
    indent: usize,
    comments: &'a [Comment],
    next_comment: usize,
    /// The end of the last thing printed, in source offsets, for blank-line detection.
    last_end: usize,
}

impl Printer<'_> {
    // ---------------------------------------------------------------------------------------
    // Lines, blank lines and comments

    fn line(&mut self, text: &str) {
        for _ in 0..self.indent {
            self.out.push_str(INDENT);
        }
        self.out.push_str(text);
        self.out.push('\n');
    }

    /// Whether the source has a blank line between the last printed thing and `pos`.
    fn blank_before(&self, pos: usize) -> bool {
        let gap = self.source.get(self.last_end.min(pos)..pos).unwrap_or("");
        gap.matches('\n').count() >= 2
    }

    fn blank_line(&mut self) {
        if !self.out.is_empty() && !self.out.ends_with("\n\n") && !self.out.ends_with("{\n") {
            self.out.push('\n');
        }
    }

    /// Prints, each on its own line, the comments that start before `pos`.
    fn comments_before(&mut self, pos: usize) {
        while let Some(comment) = self.comments.get(self.next_comment).filter(|c| c.span.start < pos) {
            if self.blank_before(comment.span.start) {
                self.blank_line();
            }
            self.line(&format!("//{}", comment.text));
            self.last_end = self.last_end.max(comment.span.end);
            self.next_comment += 1;
        }
    }

    /// Appends the comment that follows `end` on the same source line, if any, to the line
    /// just printed.
    fn trailing_comment(&mut self, end: usize) {
        self.last_end = self.last_end.max(end);
        let Some(comment) = self.comments.get(self.next_comment) else {
            return;
        };
        let same_line = self.source.get(end..comment.span.start).is_some_and(|gap| !gap.contains('\n'));
        if comment.trailing && comment.span.start >= end && same_line {
            if self.out.ends_with('\n') {
                self.out.pop();
            }
            self.out.push_str(&format!(" //{}\n", comment.text));
            self.last_end = comment.span.end;
            self.next_comment += 1;
        }
    }

    /// Starts a statement or item at `span`: the comments before and inside it, then a blank
    /// line if the source had one.
    fn begin(&mut self, span: Span, header_end: usize) {
        self.comments_before(header_end);
        if self.blank_before(span.start) {
            self.blank_line();
        }
    }

    /// A one-line construct: comments, the text, its trailing comment.
    fn simple(&mut self, span: Span, text: &str) {
        self.begin(span, span.end);
        self.line(text);
        self.trailing_comment(span.end);
    }

    /// A construct with a braced body: `header {`, the body, `}`. `close` is the offset of
    /// the closing brace.
    fn braced(&mut self, span: Span, open: usize, header: &str, body: impl FnOnce(&mut Self)) {
        self.begin(span, open);
        self.line(&format!("{header} {{"));
        self.trailing_comment(open + 1);
        self.indent += 1;
        body(self);
        let close = span.end.saturating_sub(1);
        self.comments_before(close);
        self.indent -= 1;
        self.line("}");
        self.trailing_comment(span.end);
    }

    // ---------------------------------------------------------------------------------------
    // Items

    fn file(&mut self, file: &File) {
        let mut previous_is_multiline = false;
        for item in &file.items {
            let multiline = matches!(item, Item::Def(Def { body: Body::Block(_), .. }) | Item::Train(_));
            if previous_is_multiline || (multiline && !self.out.is_empty()) {
                self.comments_before_keeping_attached(item.span().start);
                self.blank_line();
            }
            self.item(item);
            previous_is_multiline = multiline;
        }
        self.comments_before(usize::MAX);
    }

    /// Before a definition, the comments that sit right above it stay attached to it, and
    /// the blank line goes above them.
    fn comments_before_keeping_attached(&mut self, pos: usize) {
        let mut attached_from = pos;
        let pending = self.comments.get(self.next_comment..).unwrap_or(&[]);
        let before = pending.iter().take_while(|c| c.span.start < pos).count();
        for comment in pending.iter().take(before).rev() {
            let gap = self.source.get(comment.span.end..attached_from).unwrap_or("");
            if gap.matches('\n').count() >= 2 {
                break;
            }
            attached_from = comment.span.start;
        }
        self.comments_before(attached_from);
        self.last_end = self.last_end.max(attached_from);
    }

    fn item(&mut self, item: &Item) {
        match item {
            Item::Dims(dims) => {
                let decls: Vec<String> = dims
                    .dims
                    .iter()
                    .map(|d| match &d.value {
                        Some(v) => format!("{} = {}", d.name.name, expr(v)),
                        None => d.name.name.clone(),
                    })
                    .collect();
                self.simple(dims.span, &format!("dims {}", decls.join(", ")));
            }
            Item::Where(w) => self.simple(w.span, &format!("where {}", list(&w.constraints))),
            Item::Param(b) => self.binding("param", b),
            Item::Const(b) => self.binding("const", b),
            Item::Def(def) => self.definition(def),
            Item::Train(train) => {
                let open = open_brace(self.source, train.span);
                self.braced(train.span, open, "train", |p| {
                    for entry in &train.entries {
                        p.train_entry(entry);
                    }
                });
            }
        }
    }

    fn binding(&mut self, keyword: &str, b: &Binding) {
        let ty = b.ty.as_ref().map(|t| format!(": {}", ty(t))).unwrap_or_default();
        let head = format!("{keyword} {}{ty} = ", b.name.name);
        self.expr_line(b.span, &head, &b.value);
    }

    fn definition(&mut self, def: &Def) {
        let params: Vec<String> = def.params.iter().map(param).collect();
        let output = def.output.as_ref().map(|t| format!(" -> {}", ty(t))).unwrap_or_default();
        let header = format!("{} {}({}){output}", def.kind.keyword(), def.name.name, params.join(", "));
        match &def.body {
            Body::Block(block) => self.braced(def.span, block.span.start, &header, |p| p.stmts(&block.stmts)),
            Body::Expr(e) => self.expr_line(def.span, &format!("{header} = "), e),
        }
    }

    /// `head` followed by an expression, with the pipe chain broken when the line is long.
    fn expr_line(&mut self, span: Span, head: &str, value: &Expr) {
        self.begin(span, span.end);
        let flat = format!("{head}{}", expr(value));
        let width = self.indent * INDENT.len() + flat.len();
        let stages = pipe_stages(value);
        if width <= MAX_WIDTH || stages.len() < 2 {
            self.line(&flat);
        } else {
            let mut stages = stages.into_iter();
            let first = stages.next().map(expr).unwrap_or_default();
            self.line(&format!("{head}{first}"));
            self.indent += 1;
            for stage in stages {
                self.line(&format!("|> {}", expr(stage)));
            }
            self.indent -= 1;
        }
        self.trailing_comment(span.end);
    }

    // ---------------------------------------------------------------------------------------
    // Statements

    fn stmts(&mut self, stmts: &[Stmt]) {
        for stmt in stmts {
            self.stmt(stmt);
        }
    }

    fn stmt(&mut self, stmt: &Stmt) {
        match &stmt.kind {
            StmtKind::Let { pattern: pat, ty: t, draw, value } => {
                let t = t.as_ref().map(|t| format!(": {}", ty(t))).unwrap_or_default();
                let op = if *draw { "~" } else { "=" };
                self.expr_line(stmt.span, &format!("let {}{t} {op} ", pattern(pat)), value);
            }
            StmtKind::Assign { target, op, value } => {
                self.expr_line(stmt.span, &format!("{} {} ", place(target), op.symbol()), value);
            }
            StmtKind::Return(value) => self.expr_line(stmt.span, "return ", value),
            StmtKind::Log { name, value } => {
                self.expr_line(stmt.span, &format!("log {} = ", name.name), value)
            }
            StmtKind::For { var, range: r, body } => {
                let header = format!("for {} in {}", var.name, range(r));
                self.braced(stmt.span, body.span.start, &header, |p| p.stmts(&body.stmts));
            }
            StmtKind::If { .. } => self.if_chain(stmt),
        }
    }

    /// `if a { } else if b { } else { }`, printed as one chain.
    fn if_chain(&mut self, stmt: &Stmt) {
        let mut current = stmt;
        let mut header = String::new();
        self.begin(stmt.span, if_block_start(stmt));
        while let StmtKind::If { cond, then, otherwise } = &current.kind {
            self.line(&format!("{header}if {} {{", expr(cond)));
            self.trailing_comment(then.span.start + 1);
            self.indent += 1;
            self.stmts(&then.stmts);
            let close = then.span.end.saturating_sub(1);
            let next_open = match otherwise {
                Some(Else::If(next)) => if_block_start(next),
                Some(Else::Block(block)) => block.span.start,
                None => close,
            };
            self.comments_before(close.max(next_open));
            self.indent -= 1;
            match otherwise {
                Some(Else::If(next)) => {
                    header = "} else ".to_string();
                    current = next;
                }
                Some(Else::Block(block)) => {
                    self.line("} else {");
                    self.trailing_comment(block.span.start + 1);
                    self.indent += 1;
                    self.stmts(&block.stmts);
                    self.comments_before(block.span.end.saturating_sub(1));
                    self.indent -= 1;
                    self.line("}");
                    break;
                }
                None => {
                    self.line("}");
                    break;
                }
            }
        }
        self.trailing_comment(stmt.span.end);
    }

    // ---------------------------------------------------------------------------------------
    // The train block

    fn train_entry(&mut self, entry: &TrainEntry) {
        let span = entry.span;
        match &entry.kind {
            TrainEntryKind::Data { pattern: p, source } => {
                self.expr_line(span, &format!("data {} = ", pattern(p)), source);
            }
            TrainEntryKind::Batch { dim, size } => {
                self.simple(span, &format!("batch {} = {}", dim.name, expr(size)))
            }
            TrainEntryKind::Steps(e) => self.simple(span, &format!("steps {}", expr(e))),
            TrainEntryKind::Epochs(e) => self.simple(span, &format!("epochs {}", expr(e))),
            TrainEntryKind::Seed(e) => self.simple(span, &format!("seed {}", expr(e))),
            TrainEntryKind::Optimizer { name, spec } => {
                self.expr_line(span, &format!("optimizer {} = ", name.name), spec);
            }
            TrainEntryKind::Schedule { optimizer, spec } => {
                self.expr_line(span, &format!("schedule {} = ", optimizer.name), spec);
            }
            TrainEntryKind::Ema { target, args: a } => {
                self.simple(span, &format!("ema {}({})", path(target), args(a)));
            }
            TrainEntryKind::Init { target, args: a } => {
                self.simple(span, &format!("init {}({})", path(target), args(a)));
            }
            TrainEntryKind::InitDefault { target, rule } => {
                self.simple(span, &format!("init {} = {}", path(target), expr(rule)));
            }
            TrainEntryKind::Step(stmts) => {
                let open = open_brace(self.source, span);
                self.braced(span, open, "step", |p| p.step_stmts(stmts));
            }
            TrainEntryKind::Sample { name, every, what } => {
                let name = name.as_ref().map(|n| format!("{} ", n.name)).unwrap_or_default();
                let what = what.as_ref().map(|w| format!(": {}", expr(w))).unwrap_or_default();
                self.simple(span, &format!("sample {name}{}{what}", cadence(every)));
            }
            TrainEntryKind::Checkpoint(every) => self.simple(span, &format!("checkpoint {}", cadence(every))),
            TrainEntryKind::Log(every) => self.simple(span, &format!("log {}", cadence(every))),
            TrainEntryKind::Eval { name, every, what } => {
                let name = name.as_ref().map(|n| format!("{} ", n.name)).unwrap_or_default();
                self.simple(span, &format!("eval {name}{}: {}", cadence(every), expr(what)));
            }
        }
    }

    fn step_stmts(&mut self, stmts: &[StepStmt]) {
        for stmt in stmts {
            match &stmt.kind {
                StepStmtKind::Repeat { count, body } => {
                    let open = open_brace(self.source, stmt.span);
                    self.braced(stmt.span, open, &format!("repeat {}", expr(count)), |p| p.step_stmts(body));
                }
                StepStmtKind::Minimize { maximize, objective, optimizer } => {
                    let verb = if *maximize { "maximize" } else { "minimize" };
                    self.simple(stmt.span, &format!("{verb} {} with {}", expr(objective), optimizer.name));
                }
                StepStmtKind::Clip { target, range } => {
                    self.simple(stmt.span, &format!("clip {} to {}", path(target), expr(range)));
                }
            }
        }
    }
}

/// The first `{` of a construct whose header holds no braces (`train`, `step`, `repeat n`).
fn open_brace(source: &str, span: Span) -> usize {
    source.get(span.range()).and_then(|s| s.find('{')).map_or(span.start, |i| span.start + i)
}

/// Where the `{` of an `if` statement's first block is.
fn if_block_start(stmt: &Stmt) -> usize {
    match &stmt.kind {
        StmtKind::If { then, .. } => then.span.start,
        _ => stmt.span.start,
    }
}

/// The stages of a top-level pipe chain, left to right (one stage if it is not a chain).
fn pipe_stages(e: &Expr) -> Vec<&Expr> {
    let mut stages = Vec::new();
    let mut current = e;
    while let ExprKind::Binary(BinaryOp::Pipe, lhs, rhs) = &current.kind {
        stages.push(rhs.as_ref());
        current = lhs;
    }
    stages.push(current);
    stages.reverse();
    stages
}

// -------------------------------------------------------------------------------------------
// One-line forms

/// An expression on one line. The AST keeps the user's parentheses, so printing the tree in
/// order with canonical spacing gives back the same tree.
pub fn expr(e: &Expr) -> String {
    match &e.kind {
        ExprKind::Int(_, text) | ExprKind::Float(_, text) => text.clone(),
        ExprKind::Str(s) => string_literal(s),
        ExprKind::Bool(b) => b.to_string(),
        ExprKind::Name(n) => n.clone(),
        ExprKind::Paren(inner) => format!("({})", expr(inner)),
        ExprKind::Tuple(items) if items.len() == 1 => format!("({},)", list(items)),
        ExprKind::Tuple(items) => format!("({})", list(items)),
        ExprKind::List(items) => format!("[{}]", list(items)),
        ExprKind::Unary(op, operand) => {
            let symbol = match op {
                UnaryOp::Neg => "-",
                UnaryOp::Not => "!",
            };
            format!("{symbol}{}", expr(operand))
        }
        ExprKind::Binary(op, lhs, rhs) => format!("{} {} {}", expr(lhs), op.symbol(), expr(rhs)),
        ExprKind::Call(callee, a) => format!("{}({})", expr(callee), args(a)),
        ExprKind::Index(base, items) => format!("{}[{}]", expr(base), index_items(items)),
        ExprKind::Field(base, name) => format!("{}.{}", expr(base), name.name),
        ExprKind::Fixed(inner) => format!("fixed {}", expr(inner)),
        ExprKind::Error => "<error>".to_string(),
    }
}

fn list(items: &[Expr]) -> String {
    items.iter().map(expr).collect::<Vec<_>>().join(", ")
}

fn args(items: &[Arg]) -> String {
    items
        .iter()
        .map(|a| match &a.name {
            Some(name) => format!("{}: {}", name.name, expr(&a.value)),
            None => expr(&a.value),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn index_items(items: &[IndexItem]) -> String {
    items
        .iter()
        .map(|item| match item {
            IndexItem::Expr(e) => expr(e),
            IndexItem::Ellipsis(_) => "...".to_string(),
            IndexItem::Slice { start, end, step, .. } => {
                let part = |e: &Option<Expr>| e.as_ref().map(expr).unwrap_or_default();
                match step {
                    Some(step) => format!("{}:{}:{}", part(start), part(end), expr(step)),
                    None => format!("{}:{}", part(start), part(end)),
                }
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn string_literal(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

pub fn ty(t: &Type) -> String {
    match &t.kind {
        TypeKind::Tensor { dtype, dims } => {
            format!("{}[{}]", dtype.as_deref().unwrap_or(""), list(dims))
        }
        TypeKind::Scalar(name) => name.clone(),
        TypeKind::Tuple(items) => {
            format!("({})", items.iter().map(ty).collect::<Vec<_>>().join(", "))
        }
    }
}

fn param(p: &Param) -> String {
    let t = p.ty.as_ref().map(|t| format!(": {}", ty(t))).unwrap_or_default();
    let default = p.default.as_ref().map(|d| format!(" = {}", expr(d))).unwrap_or_default();
    format!("{}{t}{default}", p.name.name)
}

fn pattern(p: &Pattern) -> String {
    match p {
        Pattern::Name(name) => name.name.clone(),
        Pattern::Tuple(names, _) => {
            format!("({})", names.iter().map(|n| n.name.as_str()).collect::<Vec<_>>().join(", "))
        }
    }
}

fn place(p: &Place) -> String {
    let indices: String = p.indices.iter().map(|items| format!("[{}]", index_items(items))).collect();
    format!("{}{indices}", p.name.name)
}

fn range(r: &Range) -> String {
    let op = if r.inclusive { "..=" } else { ".." };
    format!("{}{op}{}", expr(&r.start), expr(&r.end))
}

fn path(p: &Path) -> String {
    p.segments.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(".")
}

fn cadence(c: &Cadence) -> String {
    let one = matches!(c.count.kind, ExprKind::Int(1, _));
    let unit = match (c.unit, one) {
        (CadenceUnit::Steps, true) => "step",
        (CadenceUnit::Steps, false) => "steps",
        (CadenceUnit::Epochs, true) => "epoch",
        (CadenceUnit::Epochs, false) => "epochs",
    };
    format!("every {} {unit}", expr(&c.count))
}
