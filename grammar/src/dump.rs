//! The AST as S-expressions (`genc compile --emit ast`): one line per item, statement and
//! train entry, expressions inline. Spans are left out, so two files with the same meaning
//! dump the same text; the formatter's tests rely on that, so every field is printed.

use std::fmt::Write as _;

use crate::ast::*;

pub fn dump(file: &File) -> String {
    let mut d = Dumper { out: String::new(), depth: 0 };
    for item in &file.items {
        d.item(item);
    }
    d.out
}

struct Dumper {
    out: String,
    depth: usize,
}

impl Dumper {
    fn line(&mut self, text: &str) {
        let _ = writeln!(self.out, "{}{text}", "  ".repeat(self.depth));
    }

    fn nested(&mut self, head: &str, body: impl FnOnce(&mut Self)) {
        self.line(&format!("({head}"));
        self.depth += 1;
        body(self);
        self.depth -= 1;
        self.line(")");
    }

    fn item(&mut self, item: &Item) {
        match item {
            Item::Dims(dims) => {
                let decls: Vec<String> = dims
                    .dims
                    .iter()
                    .map(|d| match &d.value {
                        Some(v) => format!("({} {})", d.name.name, expr(v)),
                        None => format!("({})", d.name.name),
                    })
                    .collect();
                self.line(&format!("(dims {})", decls.join(" ")));
            }
            Item::Where(w) => self.line(&format!("(where {})", exprs(&w.constraints))),
            Item::Param(b) => self.line(&format!("(param {})", binding(b))),
            Item::Const(b) => self.line(&format!("(const {})", binding(b))),
            Item::Def(def) => {
                let params: Vec<String> = def.params.iter().map(param).collect();
                let output = def.output.as_ref().map_or("none".to_string(), ty);
                let head = format!(
                    "{} {} (params {}) (output {output})",
                    def.kind.keyword(),
                    def.name.name,
                    params.join(" ")
                );
                match &def.body {
                    Body::Expr(e) => self.line(&format!("({head} (= {}))", expr(e))),
                    Body::Block(block) => self.nested(&head, |d| d.stmts(&block.stmts)),
                }
            }
            Item::Train(train) => self.nested("train", |d| {
                for entry in &train.entries {
                    d.train_entry(entry);
                }
            }),
        }
    }

    fn stmts(&mut self, stmts: &[Stmt]) {
        for stmt in stmts {
            self.stmt(stmt);
        }
    }

    fn stmt(&mut self, stmt: &Stmt) {
        match &stmt.kind {
            StmtKind::Let { pattern: p, ty: t, draw, value } => {
                let t = t.as_ref().map_or("none".to_string(), ty);
                let op = if *draw { "~" } else { "=" };
                self.line(&format!("(let {} {t} {op} {})", pattern(p), expr(value)));
            }
            StmtKind::Assign { target, op, value } => {
                self.line(&format!("({} {} {})", op.symbol(), place(target), expr(value)));
            }
            StmtKind::Return(e) => self.line(&format!("(return {})", expr(e))),
            StmtKind::Log { name, value } => self.line(&format!("(log {} {})", name.name, expr(value))),
            StmtKind::For { var, range, body } => {
                let op = if range.inclusive { "..=" } else { ".." };
                let head = format!("for {} ({op} {} {})", var.name, expr(&range.start), expr(&range.end));
                self.nested(&head, |d| d.stmts(&body.stmts));
            }
            StmtKind::If { cond, then, otherwise } => {
                self.nested(&format!("if {}", expr(cond)), |d| {
                    d.nested("then", |d| d.stmts(&then.stmts));
                    match otherwise {
                        Some(Else::If(next)) => d.nested("else", |d| d.stmt(next)),
                        Some(Else::Block(block)) => d.nested("else", |d| d.stmts(&block.stmts)),
                        None => {}
                    }
                });
            }
        }
    }

    fn train_entry(&mut self, entry: &TrainEntry) {
        let line = match &entry.kind {
            TrainEntryKind::Data { pattern: p, source } => {
                format!("(data {} {})", pattern(p), expr(source))
            }
            TrainEntryKind::Batch { dim, size } => format!("(batch {} {})", dim.name, expr(size)),
            TrainEntryKind::Steps(e) => format!("(steps {})", expr(e)),
            TrainEntryKind::Epochs(e) => format!("(epochs {})", expr(e)),
            TrainEntryKind::Seed(e) => format!("(seed {})", expr(e)),
            TrainEntryKind::Optimizer { name, spec } => {
                format!("(optimizer {} {})", name.name, expr(spec))
            }
            TrainEntryKind::Schedule { optimizer, spec } => {
                format!("(schedule {} {})", optimizer.name, expr(spec))
            }
            TrainEntryKind::Ema { target, args: a } => {
                format!("(ema {} {})", path(target), args(a))
            }
            TrainEntryKind::Init { target, args: a } => {
                format!("(init {} {})", path(target), args(a))
            }
            TrainEntryKind::InitDefault { target, rule } => {
                format!("(init-default {} {})", path(target), expr(rule))
            }
            TrainEntryKind::Step(stmts) => {
                self.nested("step", |d| d.step_stmts(stmts));
                return;
            }
            TrainEntryKind::Sample { name, every, what } => format!(
                "(sample {} {} {})",
                name.as_ref().map_or("_", |n| n.name.as_str()),
                cadence(every),
                what.as_ref().map_or("none".to_string(), expr)
            ),
            TrainEntryKind::Checkpoint(every) => format!("(checkpoint {})", cadence(every)),
            TrainEntryKind::Log(every) => format!("(log {})", cadence(every)),
            TrainEntryKind::Eval { name, every, what } => format!(
                "(eval {} {} {})",
                name.as_ref().map_or("_", |n| n.name.as_str()),
                cadence(every),
                expr(what)
            ),
        };
        self.line(&line);
    }

    fn step_stmts(&mut self, stmts: &[StepStmt]) {
        for stmt in stmts {
            match &stmt.kind {
                StepStmtKind::Repeat { count, body } => {
                    self.nested(&format!("repeat {}", expr(count)), |d| d.step_stmts(body));
                }
                StepStmtKind::Minimize { maximize, objective, optimizer } => {
                    let verb = if *maximize { "maximize" } else { "minimize" };
                    self.line(&format!("({verb} {} {})", expr(objective), optimizer.name));
                }
                StepStmtKind::Clip { target, range } => {
                    self.line(&format!("(clip {} {})", path(target), expr(range)))
                }
            }
        }
    }
}

pub fn expr(e: &Expr) -> String {
    match &e.kind {
        ExprKind::Int(value, _) => value.to_string(),
        ExprKind::Float(value, _) => format!("{value:?}"),
        ExprKind::Str(s) => format!("{s:?}"),
        ExprKind::Bool(b) => b.to_string(),
        ExprKind::Name(n) => n.clone(),
        ExprKind::Paren(inner) => format!("(paren {})", expr(inner)),
        ExprKind::Tuple(items) => format!("(tuple {})", exprs(items)),
        ExprKind::List(items) => format!("(list {})", exprs(items)),
        ExprKind::Unary(UnaryOp::Neg, operand) => format!("(neg {})", expr(operand)),
        ExprKind::Unary(UnaryOp::Not, operand) => format!("(not {})", expr(operand)),
        ExprKind::Binary(op, lhs, rhs) => format!("({} {} {})", op.symbol(), expr(lhs), expr(rhs)),
        ExprKind::Call(callee, a) => format!("(call {} {})", expr(callee), args(a)),
        ExprKind::Index(base, items) => format!("(index {} {})", expr(base), index_items(items)),
        ExprKind::Field(base, name) => format!("(field {} {})", expr(base), name.name),
        ExprKind::Fixed(inner) => format!("(fixed {})", expr(inner)),
        ExprKind::Error => "(error)".to_string(),
    }
}

fn exprs(items: &[Expr]) -> String {
    items.iter().map(expr).collect::<Vec<_>>().join(" ")
}

fn args(items: &[Arg]) -> String {
    items
        .iter()
        .map(|a| match &a.name {
            Some(name) => format!("({}: {})", name.name, expr(&a.value)),
            None => expr(&a.value),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn index_items(items: &[IndexItem]) -> String {
    let opt = |e: &Option<Expr>| e.as_ref().map_or("_".to_string(), expr);
    items
        .iter()
        .map(|item| match item {
            IndexItem::Expr(e) => expr(e),
            IndexItem::Ellipsis(_) => "...".to_string(),
            IndexItem::Slice { start, end, step, .. } => {
                format!("(slice {} {} {})", opt(start), opt(end), opt(step))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn ty(t: &Type) -> String {
    match &t.kind {
        TypeKind::Tensor { dtype, dims } => {
            format!("({} {})", dtype.as_deref().unwrap_or("f32"), exprs(dims))
        }
        TypeKind::Scalar(name) => name.clone(),
        TypeKind::Tuple(items) => format!("(tuple {})", items.iter().map(ty).collect::<Vec<_>>().join(" ")),
    }
}

fn binding(b: &Binding) -> String {
    let t = b.ty.as_ref().map_or("none".to_string(), ty);
    format!("{} {t} {}", b.name.name, expr(&b.value))
}

fn param(p: &Param) -> String {
    let t = p.ty.as_ref().map_or("none".to_string(), ty);
    let default = p.default.as_ref().map_or("none".to_string(), expr);
    format!("({} {t} {default})", p.name.name)
}

fn pattern(p: &Pattern) -> String {
    match p {
        Pattern::Name(name) => name.name.clone(),
        Pattern::Tuple(names, _) => {
            format!("({})", names.iter().map(|n| n.name.as_str()).collect::<Vec<_>>().join(" "))
        }
    }
}

fn place(p: &Place) -> String {
    let indices: String = p.indices.iter().map(|items| format!(" [{}]", index_items(items))).collect();
    format!("({}{indices})", p.name.name)
}

fn path(p: &Path) -> String {
    p.segments.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(".")
}

fn cadence(c: &Cadence) -> String {
    let unit = match c.unit {
        CadenceUnit::Steps => "steps",
        CadenceUnit::Epochs => "epochs",
    };
    format!("(every {} {unit})", expr(&c.count))
}
