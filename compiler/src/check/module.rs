//! Module-level declarations: dims (free, bound, derived), `where` constraints, `param`
//! hyper-parameters with `--set` overrides, `const` buffers and the table of definitions.

use genc_grammar::{Span, ast, did_you_mean};

use super::{Checker, ConstVal, DimEntry, Mode, Override, Val};
use crate::diag::TypeError;
use crate::dim::Dim;
use crate::params::{Entry, Init, Kind};

impl<'a> Checker<'a> {
    pub(super) fn declare(&mut self, overrides: &[Override]) {
        let file = self.file;
        // Definitions first: a const or a dim may not call them, but names must not clash.
        for item in &file.items {
            if let ast::Item::Def(def) = item {
                if let Some(span) = self.declared_span(&def.name.name) {
                    self.duplicate(&def.name, span);
                    continue;
                }
                let name = def.name.name.as_str();
                if super::builtins::NAMES.contains(&name) || super::layers::LAYERS.contains(&name) {
                    self.error(
                        TypeError::new(
                            "W0103",
                            def.name.span,
                            format!("`{name}` hides the built-in `{name}`"),
                        )
                        .label(format!(
                            "every call of `{name}` in this spec calls this {}",
                            def.kind.keyword()
                        ))
                        .help("rename it, unless the built-in is not needed here"),
                    );
                }
                self.defs.insert(def.name.name.clone(), def);
            }
        }
        for item in &file.items {
            match item {
                ast::Item::Dims(dims) => {
                    for d in &dims.dims {
                        self.declare_dim(d, overrides);
                    }
                }
                ast::Item::Where(w) => self.check_where(w),
                ast::Item::Param(b) => self.declare_param(b, overrides),
                ast::Item::Const(b) => self.declare_const(b),
                ast::Item::Def(_) | ast::Item::Train(_) => {}
            }
        }
        for o in overrides {
            if !self.hparams.contains_key(&o.name) && !self.dims.contains_key(&o.name) {
                let names: Vec<&str> = self.hparams.keys().map(String::as_str).collect();
                let message = format!("`--set {}`: the spec has no `param {}`", o.name, o.name);
                let e = match did_you_mean(&o.name, names.iter().copied()) {
                    Some(s) => {
                        let span = self.hparams.get(s).map_or(Span::at(0), |p| p.1);
                        TypeError::new("E0120", span, message)
                            .label(format!("the closest param is `{s}`"))
                            .help(format!("did you mean `--set {s}={}`?", o.value))
                    }
                    None if names.is_empty() => TypeError::new("E0120", Span::at(0), message)
                        .label("in this spec")
                        .help("the spec declares no `param`"),
                    None => TypeError::new("E0120", Span::at(0), message)
                        .label("in this spec")
                        .help(format!("the params are: {}", names.join(", "))),
                };
                self.error(e);
            }
        }
    }

    fn declared_span(&self, name: &str) -> Option<Span> {
        self.dims
            .get(name)
            .map(|d| d.span)
            .or_else(|| self.hparams.get(name).map(|p| p.1))
            .or_else(|| self.consts.get(name).map(|c| c.1))
            .or_else(|| self.defs.get(name).map(|d| d.name.span))
    }

    fn duplicate(&mut self, name: &ast::Ident, first: Span) {
        self.error(
            TypeError::new("E0101", name.span, format!("`{}` is defined twice", name.name))
                .label("defined again here")
                .note(first, "first defined here")
                .help("rename one of them"),
        );
    }

    fn declare_dim(&mut self, d: &ast::DimDecl, overrides: &[Override]) {
        if let Some(first) = self.declared_span(&d.name.name) {
            return self.duplicate(&d.name, first);
        }
        if let Some(o) = overrides.iter().rev().find(|o| o.name == d.name.name) {
            return self.set_dim(d, o);
        }
        let value = match &d.value {
            None => None,
            Some(expr) => match self.eval(expr) {
                Val::Int(dim) => match dim.as_const() {
                    Some(v) if v >= 1 => Some(v),
                    Some(v) => {
                        self.error(
                            TypeError::new("E0103", expr.span, format!("dim `{}` is {v}", d.name.name))
                                .label("a dim must be at least 1"),
                        );
                        None
                    }
                    None => {
                        self.error(
                            TypeError::new(
                                "E0103",
                                expr.span,
                                format!("dim `{}` = {dim} is not a constant", d.name.name),
                            )
                            .label("depends on a free dim")
                            .help("a bound dim may only use other bound dims"),
                        );
                        None
                    }
                },
                Val::Poison => None,
                other => {
                    self.error(
                        TypeError::new(
                            "E0103",
                            expr.span,
                            format!("dim `{}` is not a whole number", d.name.name),
                        )
                        .label(format!("this is {}", other.kind_name()))
                        .help("dims are whole numbers: write `H = 28`, or `H2 = H / 2` when it divides"),
                    );
                    None
                }
            },
        };
        // A bound dim whose value failed stays known (poisoned), so uses do not cascade.
        let poisoned = d.value.is_some() && value.is_none();
        self.dims.insert(d.name.name.clone(), DimEntry { value, span: d.name.span, poisoned, set: false });
    }

    /// `--set H=32` on a bound dim: the dim takes the value, and the dims derived from it
    /// follow. A free dim (`B`) is bound by each call and by `batch`, not by `--set`.
    fn set_dim(&mut self, d: &ast::DimDecl, o: &Override) {
        let name = &d.name.name;
        let value = match (&d.value, parse_override(&o.value)) {
            (None, _) => {
                self.error(
                    TypeError::new("E0120", d.name.span, format!("`--set {name}`: `{name}` is a free dim"))
                        .label("free: bound by each call")
                        .help(format!(
                            "a free dim takes its size from the data; the batch size is `--set batch={}`",
                            o.value
                        )),
                );
                None
            }
            (Some(_), Some(Val::Int(v))) if v.as_const().is_some_and(|v| v >= 1) => v.as_const(),
            (Some(_), _) => {
                self.error(
                    TypeError::new(
                        "E0120",
                        d.name.span,
                        format!("`--set {name}={}` does not fit this dim", o.value),
                    )
                    .label("a dim")
                    .help("give a whole number of at least 1"),
                );
                None
            }
        };
        let poisoned = value.is_none() && d.value.is_some();
        self.dims.insert(name.clone(), DimEntry { value, span: d.name.span, poisoned, set: value.is_some() });
    }

    fn check_where(&mut self, w: &ast::Where) {
        for c in &w.constraints {
            match self.eval(c) {
                Val::Bool(true) | Val::Poison => {}
                Val::Bool(false) => {
                    let mut e = TypeError::new("E0102", c.span, "this constraint does not hold")
                        .label(format!("`{}` is false", genc_grammar::format::expr(c)));
                    for name in names_in(c) {
                        if let Some(entry) = self.dims.get(&name)
                            && let Some(v) = entry.value
                        {
                            let how = if entry.set { " (`--set`)" } else { "" };
                            e = e.note(entry.span, format!("{name} = {v} here{how}"));
                        }
                    }
                    self.error(e.help("change the dims so that the constraint holds"));
                }
                other => {
                    self.error(
                        TypeError::new("E0105", c.span, "a `where` constraint must be a comparison of dims")
                            .label(format!("this is {}", other.kind_name())),
                    );
                }
            }
        }
    }

    fn declare_param(&mut self, b: &ast::Binding, overrides: &[Override]) {
        if let Some(first) = self.declared_span(&b.name.name) {
            return self.duplicate(&b.name, first);
        }
        let mut value = self.eval(&b.value);
        if let Some(o) = overrides.iter().rev().find(|o| o.name == b.name.name) {
            value = match (parse_override(&o.value), &value) {
                (Some(Val::Int(d)), Val::Float(_)) => Val::Float(d.as_const().unwrap_or(0) as f64),
                (Some(new), old) if std::mem::discriminant(&new) == std::mem::discriminant(old) => new,
                (parsed, old) => {
                    let found = parsed.as_ref().map(Val::kind_name).unwrap_or("not a number, bool or string");
                    self.error(
                        TypeError::new(
                            "E0120",
                            b.value.span,
                            format!("`--set {}={}` does not fit this param", o.name, o.value),
                        )
                        .label(format!("declared as {}", old.kind_name()))
                        .help(format!("give {} (the value given is {found})", old.kind_name())),
                    );
                    value
                }
            };
        }
        match value {
            Val::Int(_) | Val::Float(_) | Val::Bool(_) | Val::Str(_) | Val::Poison => {}
            ref other => {
                self.error(
                    TypeError::new("E0105", b.value.span, "a `param` must be a number, a bool or a string")
                        .label(format!("this is {}", other.kind_name()))
                        .help("use `const` for tensors"),
                );
            }
        }
        self.hparams.insert(b.name.name.clone(), (value, b.name.span));
    }

    fn declare_const(&mut self, b: &ast::Binding) {
        if let Some(first) = self.declared_span(&b.name.name) {
            return self.duplicate(&b.name, first);
        }
        self.in_consts = true;
        // Constants have no layers, so the mode does not matter.
        let saved = self.begin_graph(Mode::Eval);
        self.graph = std::mem::take(&mut self.const_graph);
        let value = self.eval(&b.value);
        self.const_graph = std::mem::take(&mut self.graph);
        let _ = self.end_graph(saved, &Val::Poison, "");
        self.in_consts = false;
        let value = match value {
            Val::Tensor(node) => {
                let ty = self.const_graph.ty(node).clone();
                match ty.concrete() {
                    Some(shape) => {
                        let index = self.table.push(Entry {
                            name: b.name.name.clone(),
                            shape,
                            init: Init::Computed { node },
                            kind: Kind::Buffer,
                            owner: None,
                            span: b.name.span,
                        });
                        ConstVal::Buffer { index, node }
                    }
                    None => {
                        self.error(
                            TypeError::new(
                                "E0103",
                                b.value.span,
                                format!("const `{}` has the symbolic shape {ty}", b.name.name),
                            )
                            .label("a const buffer needs a fixed shape")
                            .help("use bound dims only in a const"),
                        );
                        ConstVal::Value(Val::Poison)
                    }
                }
            }
            other => ConstVal::Value(other),
        };
        self.consts.insert(b.name.name.clone(), (value, b.name.span));
    }

    /// The module-level meaning of a dim name: its value if bound, else a symbol.
    pub(super) fn module_dim(&self, name: &str) -> Option<Val> {
        self.dims.get(name).map(|d| match d.value {
            _ if d.poisoned => Val::Poison,
            Some(v) => Val::Int(Dim::constant(v)),
            None => Val::Int(Dim::sym(name)),
        })
    }
}

/// `--set` values: ints, floats, booleans, else a string.
fn parse_override(text: &str) -> Option<Val> {
    let t = text.trim();
    if let Ok(v) = t.replace('_', "").parse::<i64>() {
        return Some(Val::Int(Dim::constant(v)));
    }
    if let Ok(v) = t.parse::<f64>() {
        return Some(Val::Float(v));
    }
    match t {
        "true" => Some(Val::Bool(true)),
        "false" => Some(Val::Bool(false)),
        "" => None,
        _ => Some(Val::Str(t.trim_matches('"').to_string())),
    }
}

/// Every name an expression mentions.
pub(super) fn names_in(e: &ast::Expr) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(e: &ast::Expr, out: &mut Vec<String>) {
        match &e.kind {
            ast::ExprKind::Name(n) if !out.contains(n) => out.push(n.clone()),
            ast::ExprKind::Paren(x) | ast::ExprKind::Unary(_, x) | ast::ExprKind::Fixed(x) => walk(x, out),
            ast::ExprKind::Binary(_, a, b) => {
                walk(a, out);
                walk(b, out);
            }
            ast::ExprKind::Tuple(xs) | ast::ExprKind::List(xs) => xs.iter().for_each(|x| walk(x, out)),
            ast::ExprKind::Call(f, args) => {
                walk(f, out);
                args.iter().for_each(|a| walk(&a.value, out));
            }
            _ => {}
        }
    }
    walk(e, &mut out);
    out
}
