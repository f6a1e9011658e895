//! Expressions and statements: arithmetic on compile-time values and tensors, names,
//! indexing, `let`, assignment, compile-time loops and branches, host loops in samplers.

use genc_grammar::{Span, ast, did_you_mean};

use super::{Checker, ConstVal, Val};
use crate::diag::TypeError;
use crate::dim::{Dim, DivError};
use crate::params::Kind;
use crate::prim::{BinaryOp, DType, Prim, UnaryOp};
use crate::types::TensorType;

/// How a statement list ended.
pub(super) enum Flow {
    Next,
    Return(Val, Span),
}

/// The longest compile-time loop the checker unrolls.
const MAX_UNROLL: i64 = 4096;

impl<'a> Checker<'a> {
    pub(super) fn eval(&mut self, e: &ast::Expr) -> Val {
        match &e.kind {
            ast::ExprKind::Int(v, _) => match i64::try_from(*v) {
                Ok(v) => Val::Int(Dim::constant(v)),
                Err(_) => self.error(
                    TypeError::new("E0103", e.span, "this integer does not fit 64 bits").label("too large"),
                ),
            },
            ast::ExprKind::Float(v, _) => Val::Float(*v),
            ast::ExprKind::Str(s) => Val::Str(s.clone()),
            ast::ExprKind::Bool(b) => Val::Bool(*b),
            ast::ExprKind::Name(n) => self.lookup(n, e.span),
            ast::ExprKind::Paren(x) | ast::ExprKind::Fixed(x) => self.eval(x),
            ast::ExprKind::Tuple(xs) => Val::Tuple(xs.iter().map(|x| self.eval(x)).collect()),
            ast::ExprKind::List(xs) => Val::List(xs.iter().map(|x| self.eval(x)).collect()),
            ast::ExprKind::Unary(op, x) => {
                let v = self.eval(x);
                self.unary_val(*op, v, e.span)
            }
            ast::ExprKind::Binary(ast::BinaryOp::Pipe, lhs, rhs) => {
                let x = self.eval(lhs);
                self.pipe(x, lhs.span, rhs)
            }
            ast::ExprKind::Binary(op, a, b) => {
                let (va, vb) = (self.eval(a), self.eval(b));
                self.binary_val(*op, va, vb, e.span)
            }
            ast::ExprKind::Call(f, args) => self.call_expr(f, args, None, e.span),
            ast::ExprKind::Index(x, items) => {
                let v = self.eval(x);
                self.index(v, x.span, items, e.span)
            }
            ast::ExprKind::Field(_, field) => match dotted(e) {
                Some(path)
                    if self
                        .defs
                        .get(path.split('.').next().unwrap_or(""))
                        .is_some_and(|d| d.kind == ast::DefKind::Net) =>
                {
                    self.parameter(&path, e.span)
                }
                _ => self.error(
                    TypeError::new("E0105", e.span, format!("`.{}` has no meaning here", field.name))
                        .label("fields name a net's parameters: `Enc.linear0.weight`")
                        .help("`genc summary` names each net's layers"),
                ),
            },
            ast::ExprKind::Error => Val::Poison,
        }
    }

    /// `x |> f` is `f(x)`; `x |> f(a, k: v)` is `f(x, a, k: v)`.
    fn pipe(&mut self, x: Val, x_span: Span, rhs: &ast::Expr) -> Val {
        match &rhs.kind {
            ast::ExprKind::Name(_) => self.call_expr(rhs, &[], Some((x, x_span)), rhs.span),
            ast::ExprKind::Call(f, args) => self.call_expr(f, args, Some((x, x_span)), rhs.span),
            ast::ExprKind::Paren(inner) => self.pipe(x, x_span, inner),
            _ => self.error(
                TypeError::new("E0105", rhs.span, "the right side of `|>` must be a function or a call")
                    .label("not callable")
                    .help("write `x |> f` or `x |> f(args)`"),
            ),
        }
    }

    pub(super) fn lookup(&mut self, name: &str, span: Span) -> Val {
        if let Some(f) = self.frames.last() {
            for scope in f.vars.iter().rev() {
                if let Some((v, _)) = scope.get(name) {
                    return v.clone();
                }
            }
            if let Some(d) = f.dims.get(name) {
                return Val::Int(d.clone());
            }
        }
        if let Some(v) = self.module_dim(name) {
            return v;
        }
        if let Some((v, _)) = self.hparams.get(name) {
            return v.clone();
        }
        if let Some((c, _)) = self.consts.get(name) {
            return match c.clone() {
                ConstVal::Value(v) => v,
                ConstVal::Buffer { node, .. } if self.in_consts => Val::Tensor(node),
                ConstVal::Buffer { index, .. } => {
                    let e = &self.table.buffers[index];
                    let ty = TensorType::f32(e.shape.iter().map(|&d| Dim::constant(d as i64)).collect());
                    let ty = TensorType::new(self.const_graph_dtype(index), ty.shape);
                    Val::Tensor(self.push_node(Prim::Buffer { index }, ty, &[], span))
                }
            };
        }
        if self.defs.contains_key(name) {
            return Val::Def(name.to_string());
        }
        if super::builtins::is_builtin(name) {
            return self.error(
                TypeError::new("E0105", span, format!("`{name}` is a built-in function; call it"))
                    .label("not a value")
                    .help(format!("write `{name}(..)` or `x |> {name}`")),
            );
        }
        self.unknown(name, span, "name")
    }

    /// `Enc.linear0.weight`, `Glow.weight0`: a net's parameter (or buffer) read as a value,
    /// for tied weights or a weight's log-determinant. A net's weights exist once it has been
    /// checked, and nets are checked in the order they are declared.
    fn parameter(&mut self, path: &str, span: Span) -> Val {
        for kind in [Kind::Trainable, Kind::Buffer] {
            if let Some(index) = self.table.find(kind, path) {
                let e = &self.table.list(kind)[index];
                let shape = e.shape.iter().map(|&d| Dim::constant(d as i64)).collect();
                let (prim, dtype) = match kind {
                    Kind::Trainable => (Prim::Param { index }, DType::F32),
                    Kind::Buffer => (Prim::Buffer { index }, self.const_graph_dtype(index)),
                };
                return Val::Tensor(self.push_node(prim, TensorType::new(dtype, shape), &[], span));
            }
        }
        let net = path.split('.').next().unwrap_or(path);
        let declared_later = self.defs.get(net).is_some_and(|d| d.span.start > span.start)
            && !self.table.params.iter().any(|p| p.owner.as_deref() == Some(net));
        let help = if declared_later {
            format!(
                "`{net}` is declared after this use, so its weights do not exist yet: declare `{net}` first"
            )
        } else {
            let known: Vec<&str> = self
                .table
                .params
                .iter()
                .chain(&self.table.buffers)
                .filter(|p| p.owner.as_deref() == Some(net))
                .map(|p| p.name.as_str())
                .collect();
            match did_you_mean(path, known.iter().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None if known.is_empty() => format!("`{net}` has no parameters"),
                None => format!(
                    "`{net}` has {}",
                    known.iter().take(8).map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
                ),
            }
        };
        self.error(
            TypeError::new("E0100", span, format!("`{path}` is not a parameter"))
                .label("no parameter of this name")
                .help(help),
        )
    }

    fn const_graph_dtype(&self, buffer: usize) -> DType {
        match self.table.buffers[buffer].init {
            crate::params::Init::Computed { node } => self.const_graph.ty(node).dtype,
            _ => DType::F32,
        }
    }

    pub(super) fn unknown(&mut self, name: &str, span: Span, what: &str) -> Val {
        let names = self.visible_names();
        let mut e = TypeError::new("E0100", span, format!("unknown {what} `{name}`")).label("not defined");
        if let Some(s) = did_you_mean(name, names.iter().map(String::as_str)) {
            e = e.help(format!("did you mean `{s}`?"));
        }
        self.error(e)
    }

    fn unary_val(&mut self, op: ast::UnaryOp, v: Val, span: Span) -> Val {
        match (op, v) {
            (_, Val::Poison) => Val::Poison,
            (ast::UnaryOp::Neg, Val::Int(d)) => d.neg().map(Val::Int).unwrap_or_else(|_| self.overflow(span)),
            (ast::UnaryOp::Neg, Val::Float(f)) => Val::Float(-f),
            (ast::UnaryOp::Not, Val::Bool(b)) => Val::Bool(!b),
            (op, Val::Tensor(n)) => {
                let u = match op {
                    ast::UnaryOp::Neg => UnaryOp::Neg,
                    ast::UnaryOp::Not => UnaryOp::Not,
                };
                self.unary(u, n, span).map(Val::Tensor).unwrap_or(Val::Poison)
            }
            (op, other) => self.error(
                TypeError::new(
                    "E0105",
                    span,
                    format!("`{}` cannot apply to {}", unary_symbol(op), other.kind_name()),
                )
                .label("wrong kind of value"),
            ),
        }
    }

    fn overflow(&mut self, span: Span) -> Val {
        self.error(
            TypeError::new("E0103", span, "this size overflows 64-bit integers")
                .label("too large")
                .help("use smaller dims"),
        )
    }

    pub(super) fn binary_val(&mut self, op: ast::BinaryOp, a: Val, b: Val, span: Span) -> Val {
        use ast::BinaryOp as B;
        if a.is_poison() || b.is_poison() {
            return Val::Poison;
        }
        if matches!(a, Val::Tensor(_)) || matches!(b, Val::Tensor(_)) {
            let prim = match op {
                B::Add => BinaryOp::Add,
                B::Sub => BinaryOp::Sub,
                B::Mul => BinaryOp::Mul,
                B::Div => BinaryOp::Div,
                B::Rem => BinaryOp::Rem,
                B::Pow => BinaryOp::Pow,
                B::Eq => BinaryOp::Eq,
                B::Ne => BinaryOp::Ne,
                B::Lt => BinaryOp::Lt,
                B::Le => BinaryOp::Le,
                B::Gt => BinaryOp::Gt,
                B::Ge => BinaryOp::Ge,
                B::And => BinaryOp::And,
                B::Or => BinaryOp::Or,
                B::MatMul => return self.matmul_val(&a, &b, span),
                B::Pipe => return Val::Poison,
            };
            return self.tensor_binary(prim, &a, &b, span);
        }
        match (a, b) {
            (Val::Int(x), Val::Int(y)) => self.int_binary(op, &x, &y, span),
            (Val::Int(x), Val::Float(y)) => match x.as_const() {
                Some(x) => float_binary(op, x as f64, y),
                None => self.symbolic_in_float(&x, span),
            },
            (Val::Float(x), Val::Int(y)) => match y.as_const() {
                Some(y) => float_binary(op, x, y as f64),
                None => self.symbolic_in_float(&y, span),
            },
            (Val::Float(x), Val::Float(y)) => float_binary(op, x, y),
            (Val::Bool(x), Val::Bool(y)) => match op {
                B::And => Some(Val::Bool(x && y)),
                B::Or => Some(Val::Bool(x || y)),
                B::Eq => Some(Val::Bool(x == y)),
                B::Ne => Some(Val::Bool(x != y)),
                _ => Some(self.bad_operands(op, "bools", span)),
            },
            (Val::Str(x), Val::Str(y)) => match op {
                B::Eq => Some(Val::Bool(x == y)),
                B::Ne => Some(Val::Bool(x != y)),
                _ => Some(self.bad_operands(op, "strings", span)),
            },
            (a, b) => Some(
                self.error(
                    TypeError::new(
                        "E0105",
                        span,
                        format!("`{}` cannot combine {} and {}", op.symbol(), a.kind_name(), b.kind_name()),
                    )
                    .label("wrong kinds of value"),
                ),
            ),
        }
        .unwrap_or_else(|| self.bad_operands(op, "numbers", span))
    }

    fn bad_operands(&mut self, op: ast::BinaryOp, what: &str, span: Span) -> Val {
        self.error(
            TypeError::new("E0105", span, format!("`{}` does not apply to {what}", op.symbol()))
                .label("wrong kinds of value"),
        )
    }

    fn symbolic_in_float(&mut self, d: &Dim, span: Span) -> Option<Val> {
        Some(
            self.error(
                TypeError::new("E0105", span, format!("the symbolic size `{d}` cannot be mixed with floats"))
                    .label("a free dim has no value until training binds it"),
            ),
        )
    }

    fn int_binary(&mut self, op: ast::BinaryOp, x: &Dim, y: &Dim, span: Span) -> Option<Val> {
        use ast::BinaryOp as B;
        let div_error = |c: &mut Checker, e: DivError| match e {
            DivError::ByZero => c.error(
                TypeError::new("E0103", span, "division by zero in a dim expression")
                    .label("the divisor is 0")
                    .help("a dim can only be divided by a positive size"),
            ),
            DivError::Overflow => c.overflow(span),
        };
        let cmp = |f: fn(i64, i64) -> bool| -> Option<Val> {
            if let (Some(a), Some(b)) = (x.as_const(), y.as_const()) {
                return Some(Val::Bool(f(a, b)));
            }
            None
        };
        Some(match op {
            B::Add => x.add(y).map(Val::Int).unwrap_or_else(|_| self.overflow(span)),
            B::Sub => x.sub(y).map(Val::Int).unwrap_or_else(|_| self.overflow(span)),
            B::Mul => x.mul(y).map(Val::Int).unwrap_or_else(|_| self.overflow(span)),
            B::Div => match (x.rem(y), x.div(y)) {
                (Err(e), _) | (_, Err(e)) => div_error(self, e),
                (Ok(r), Ok(q)) => match r.as_const() {
                    Some(0) => Val::Int(q),
                    Some(_) => {
                        let help = match (x.as_const(), y.as_const()) {
                            (Some(a), Some(b)) if b > 0 && a > 0 => {
                                let lo = a / b * b;
                                let near = if lo > 0 { format!("{lo} or {}", lo + b) } else { format!("{b}") };
                                format!(
                                    "dims divide exactly: use a multiple of {b} ({near}) or divide by a divisor of {a}; write a float (`{a}.0 / {b}`) for a ratio"
                                )
                            }
                            _ => "dims divide exactly; add a `where` constraint, change the dims, or write a float (`1.0 / 2`)".to_string(),
                        };
                        self.error(
                            TypeError::new("E0103", span, format!("{x} / {y} is not a whole number"))
                                .label(format!("{x} is not divisible by {y}"))
                                .help(help),
                        )
                    }
                    None => Val::Int(q),
                },
            },
            B::Rem => x.rem(y).map(Val::Int).unwrap_or_else(|e| div_error(self, e)),
            B::Pow => match (x.as_const(), y.as_const()) {
                (Some(a), Some(b)) if b >= 0 => match u32::try_from(b).ok().and_then(|b| a.checked_pow(b)) {
                    Some(v) => Val::Int(Dim::constant(v)),
                    None => self.overflow(span),
                },
                (Some(a), Some(b)) => Val::Float((a as f64).powf(b as f64)),
                _ => return self.symbolic_in_float(x, span),
            },
            B::Eq if x == y => Val::Bool(true),
            B::Eq => return cmp(|a, b| a == b).or_else(|| self.undecidable(x, y, span)),
            B::Ne if x == y => Val::Bool(false),
            B::Ne => return cmp(|a, b| a != b).or_else(|| self.undecidable(x, y, span)),
            B::Lt => return cmp(|a, b| a < b).or_else(|| self.undecidable(x, y, span)),
            B::Le => return cmp(|a, b| a <= b).or_else(|| self.undecidable(x, y, span)),
            B::Gt => return cmp(|a, b| a > b).or_else(|| self.undecidable(x, y, span)),
            B::Ge => return cmp(|a, b| a >= b).or_else(|| self.undecidable(x, y, span)),
            B::And | B::Or | B::MatMul | B::Pipe => return None,
        })
    }

    fn undecidable(&mut self, x: &Dim, y: &Dim, span: Span) -> Option<Val> {
        Some(
            self.error(
                TypeError::new(
                    "E0105",
                    span,
                    format!("cannot compare `{x}` and `{y}` before training binds the free dims"),
                )
                .label("not known at compile time"),
            ),
        )
    }

    /// `x @ y` as NumPy's `matmul` on tensors of rank 2 or more: the last two axes multiply,
    /// the leading (batch) axes broadcast. `[B, N, K] @ [K, M]` folds the batch into the rows
    /// (one product); other batch shapes are broadcast to a common one first.
    pub(super) fn matmul_val(&mut self, a: &Val, b: &Val, span: Span) -> Val {
        let (Ok(x), Ok(y)) =
            (self.expect_tensor(a, span, "`@`'s left side"), self.expect_tensor(b, span, "`@`'s right side"))
        else {
            return Val::Poison;
        };
        let (tx, ty) = (self.ty(x).clone(), self.ty(y).clone());
        let (rx, ry) = (tx.rank(), ty.rank());
        let product = |s: &mut Self, x, y| {
            s.val(Prim::MatMul { transpose_a: false, transpose_b: false }, &[x, y], None, span)
        };
        if rx < 2 || ry < 2 || (rx == ry && tx.shape[..rx - 2] == ty.shape[..ry - 2]) {
            return product(self, x, y);
        }
        let folded = (|| -> Result<Val, ()> {
            if ry == 2 {
                // Rows of every batch at once: [B.., N, K] -> [B..*N, K] @ [K, M] -> [B.., N, M].
                let rows = tx.shape[..rx - 1]
                    .iter()
                    .try_fold(Dim::constant(1), |acc, d| acc.mul(d))
                    .map_err(|_| ())?;
                let flat = self.reshape(x, vec![rows, tx.shape[rx - 1].clone()], span)?;
                let Val::Tensor(p) = product(self, flat, y) else { return Err(()) };
                let mut shape = tx.shape[..rx - 1].to_vec();
                shape.push(ty.shape[1].clone());
                return self.reshape(p, shape, span).map(Val::Tensor);
            }
            let rank = rx.max(ry);
            let (x, y) = (self.lift_rank(x, rank, span)?, self.lift_rank(y, rank, span)?);
            let (sx, sy) = (self.ty(x).shape.clone(), self.ty(y).shape.clone());
            let mut batch = Vec::with_capacity(rank - 2);
            for (dx, dy) in sx[..rank - 2].iter().zip(&sy[..rank - 2]) {
                batch.push(match (dx.as_const(), dy.as_const()) {
                    (Some(1), _) => dy.clone(),
                    (_, Some(1)) => dx.clone(),
                    _ if dx == dy => dx.clone(),
                    _ => {
                        self.error(
                            TypeError::new(
                                "E0106",
                                span,
                                format!("`@` cannot broadcast the batch axes of {tx} and {ty}"),
                            )
                            .label(format!("{dx} against {dy}"))
                            .help("batch axes broadcast where they are equal or one of them is 1"),
                        );
                        return Err(());
                    }
                });
            }
            let with = |batch: &[Dim], last: &[Dim]| batch.iter().chain(last).cloned().collect::<Vec<_>>();
            let x = self.broadcast(x, with(&batch, &sx[rank - 2..]), span)?;
            let y = self.broadcast(y, with(&batch, &sy[rank - 2..]), span)?;
            Ok(product(self, x, y))
        })();
        folded.unwrap_or(Val::Poison)
    }

    // ---- indexing ----------------------------------------------------------------------

    /// `x[i, a:b, ..., j]`: ints and slices select statically; an int tensor gathers.
    pub(super) fn index(&mut self, v: Val, x_span: Span, items: &[ast::IndexItem], span: Span) -> Val {
        let x = match v {
            Val::Tuple(xs) | Val::List(xs) => {
                return match items {
                    [ast::IndexItem::Expr(i)] => match self.eval(i) {
                        Val::Int(d) => {
                            match d.as_const().and_then(|k| usize::try_from(k).ok()).and_then(|k| xs.get(k)) {
                                Some(v) => v.clone(),
                                None => self.error(
                                    TypeError::new(
                                        "E0109",
                                        i.span,
                                        format!("index {d} is out of range for {} items", xs.len()),
                                    )
                                    .label("out of range"),
                                ),
                            }
                        }
                        Val::Poison => Val::Poison,
                        other => self.error(
                            TypeError::new(
                                "E0105",
                                i.span,
                                format!("a tuple index must be an int, found {}", other.kind_name()),
                            )
                            .label("not an int"),
                        ),
                    },
                    _ => self.error(
                        TypeError::new("E0105", span, "a tuple takes one index").label("one int index"),
                    ),
                };
            }
            other => match self.expect_tensor(&other, x_span, "an indexed value") {
                Ok(x) => x,
                Err(()) => return Val::Poison,
            },
        };
        match self.index_tensor(x, items, span) {
            Ok(n) => Val::Tensor(n),
            Err(()) => Val::Poison,
        }
    }

    fn index_tensor(
        &mut self,
        mut x: crate::graph::NodeId,
        items: &[ast::IndexItem],
        span: Span,
    ) -> Result<crate::graph::NodeId, ()> {
        let rank = self.ty(x).rank();
        let ellipses = items.iter().filter(|i| matches!(i, ast::IndexItem::Ellipsis(_))).count();
        let explicit = items.len() - ellipses;
        if ellipses > 1 || explicit > rank {
            self.error(
                TypeError::new(
                    "E0109",
                    span,
                    format!("{explicit} indices for a tensor of rank {rank} ({})", self.ty(x)),
                )
                .label("too many indices"),
            );
            return Err(());
        }
        // Expand `...` into full slices.
        let mut per_axis: Vec<Option<&ast::IndexItem>> = Vec::new();
        for item in items {
            match item {
                ast::IndexItem::Ellipsis(_) => per_axis.extend(std::iter::repeat_n(None, rank - explicit)),
                other => per_axis.push(Some(other)),
            }
        }
        per_axis.resize(rank, None);
        // Apply from the last axis so earlier axis numbers stay valid as axes drop.
        for axis in (0..rank).rev() {
            let Some(item) = per_axis[axis] else { continue };
            let extent = self.ty(x).shape[axis].clone();
            match item {
                ast::IndexItem::Ellipsis(_) => {}
                ast::IndexItem::Expr(e) => {
                    let v = self.eval(e);
                    x = self.take_index(x, axis, &extent, v, e.span)?;
                }
                ast::IndexItem::Slice { start, end, step, span: s } => {
                    x = self.slice_axis(x, axis, &extent, start.as_ref(), end.as_ref(), step.as_ref(), *s)?;
                }
            }
        }
        Ok(x)
    }

    fn static_index(&mut self, v: Val, extent: &Dim, span: Span, allow_end: bool) -> Result<i64, ()> {
        match v {
            Val::Int(d) => match d.as_const() {
                Some(i) => {
                    let n = extent.as_const();
                    let i = if i < 0 {
                        match n {
                            Some(n) => n + i,
                            None => {
                                self.error(
                                    TypeError::new("E0109", span, "a negative index needs a known extent")
                                        .label(format!("the axis has the symbolic extent {extent}")),
                                );
                                return Err(());
                            }
                        }
                    } else {
                        i
                    };
                    let limit = if allow_end { n } else { n.map(|n| n - 1) };
                    if i < 0 || limit.is_some_and(|l| i > l) {
                        self.error(
                            TypeError::new(
                                "E0109",
                                span,
                                format!("index {i} is out of range for an axis of extent {extent}"),
                            )
                            .label("out of range")
                            .help(match n {
                                Some(n) if allow_end => format!("valid bounds are 0 to {n} (or -{n} to -1)"),
                                Some(n) => format!("valid indices are 0 to {} (or -{n} to -1)", n - 1),
                                None => "indices must be at least 0".to_string(),
                            }),
                        );
                        return Err(());
                    }
                    Ok(i)
                }
                None => {
                    self.error(
                        TypeError::new("E0109", span, format!("the index `{d}` is symbolic"))
                            .label("indices into a tensor must be known, or an int tensor"),
                    );
                    Err(())
                }
            },
            Val::Poison => Err(()),
            other => {
                self.error(
                    TypeError::new(
                        "E0105",
                        span,
                        format!("an index must be an int, found {}", other.kind_name()),
                    )
                    .label("not an int"),
                );
                Err(())
            }
        }
    }

    fn take_index(
        &mut self,
        x: crate::graph::NodeId,
        axis: usize,
        extent: &Dim,
        v: Val,
        span: Span,
    ) -> Result<crate::graph::NodeId, ()> {
        if let Val::Tensor(idx) = v {
            if self.ty(idx).dtype != DType::I32 {
                self.error(
                    TypeError::new(
                        "E0122",
                        span,
                        format!("a tensor index must be int, found {}", self.ty(idx)),
                    )
                    .label("use to_int(..)"),
                );
                return Err(());
            }
            self.index_use(idx, extent, "indexing", span);
            return self.node(Prim::Gather { axis }, &[x, idx], None, span);
        }
        let i = self.static_index(v, extent, span, false)?;
        let mut shape = self.ty(x).shape.clone();
        shape[axis] = Dim::constant(1);
        let ty = TensorType::new(self.ty(x).dtype, shape.clone());
        let s = self.node(Prim::Slice { axis, start: i as usize, step: 1 }, &[x], Some(ty), span)?;
        shape.remove(axis);
        self.reshape(s, shape, span)
    }

    #[allow(clippy::too_many_arguments)]
    fn slice_axis(
        &mut self,
        x: crate::graph::NodeId,
        axis: usize,
        extent: &Dim,
        start: Option<&ast::Expr>,
        end: Option<&ast::Expr>,
        step: Option<&ast::Expr>,
        span: Span,
    ) -> Result<crate::graph::NodeId, ()> {
        let step = match step {
            Some(e) => {
                let v = self.eval(e);
                self.static_index(v, &Dim::constant(i64::MAX), e.span, true)?
            }
            None => 1,
        };
        if step < 1 {
            self.error(TypeError::new("E0109", span, "a slice step must be at least 1").label("step 0"));
            return Err(());
        }
        let start = match start {
            Some(e) => {
                let v = self.eval(e);
                self.static_index(v, extent, e.span, true)?
            }
            None => 0,
        };
        let len = match end {
            Some(e) => {
                let v = self.eval(e);
                let stop = self.static_index(v, extent, e.span, true)?;
                Dim::constant(((stop - start).max(0) + step - 1) / step)
            }
            None if start == 0 && step == 1 => return Ok(x),
            None => match extent.sub(&Dim::constant(start)).and_then(|d| d.add(&Dim::constant(step - 1))) {
                Ok(d) => d.div(&Dim::constant(step)).map_err(|_| ())?,
                Err(_) => return Err(()),
            },
        };
        let mut shape = self.ty(x).shape.clone();
        shape[axis] = len;
        let ty = TensorType::new(self.ty(x).dtype, shape);
        self.node(Prim::Slice { axis, start: start as usize, step: step as usize }, &[x], Some(ty), span)
    }

    // ---- statements --------------------------------------------------------------------

    pub(super) fn exec_block(&mut self, block: &ast::Block) -> Flow {
        self.frame().vars.push(Default::default());
        let flow = self.exec_stmts(&block.stmts);
        self.frame().vars.pop();
        flow
    }

    fn exec_stmts(&mut self, stmts: &[ast::Stmt]) -> Flow {
        for s in stmts {
            if let Flow::Return(v, span) = self.exec(s) {
                return Flow::Return(v, span);
            }
        }
        Flow::Next
    }

    pub(super) fn bind(&mut self, name: &ast::Ident, v: Val) {
        let f = self.frame();
        if f.vars.is_empty() {
            f.vars.push(Default::default());
        }
        if let Some(scope) = f.vars.last_mut() {
            scope.insert(name.name.clone(), (v, name.span));
        }
    }

    pub(super) fn exec(&mut self, s: &ast::Stmt) -> Flow {
        match &s.kind {
            ast::StmtKind::Let { pattern, ty, draw, value } => {
                if *draw {
                    self.check_draw(value);
                }
                let v = self.eval(value);
                if let (Some(t), Val::Tensor(n)) = (ty, &v) {
                    let n = *n;
                    self.check_declared(n, t, value.span, "this `let`");
                }
                self.bind_pattern(pattern, v, value.span);
                Flow::Next
            }
            ast::StmtKind::Assign { target, op, value } => {
                self.assign(target, *op, value);
                Flow::Next
            }
            ast::StmtKind::Return(e) => {
                let v = self.eval(e);
                Flow::Return(v, e.span)
            }
            ast::StmtKind::For { var, range, body } => self.exec_for(var, range, body),
            ast::StmtKind::If { cond, then, otherwise } => self.exec_if(cond, then, otherwise.as_ref()),
            ast::StmtKind::Log { name, value } => {
                let v = self.eval(value);
                match v {
                    Val::Tensor(n) if self.ty(n).rank() == 0 => self.logs.push((name.name.clone(), n)),
                    Val::Poison => {}
                    Val::Tensor(n) => {
                        let t = self.ty(n).clone();
                        self.error(
                            TypeError::new(
                                "E0114",
                                value.span,
                                format!("`log {}` needs a scalar, found {t}", name.name),
                            )
                            .label("not a scalar")
                            .help("reduce it first, e.g. `mean(..)`"),
                        );
                    }
                    other => {
                        self.error(
                            TypeError::new(
                                "E0105",
                                value.span,
                                format!("`log` needs a tensor, found {}", other.kind_name()),
                            )
                            .label("nothing to log"),
                        );
                    }
                }
                Flow::Next
            }
        }
    }

    fn check_draw(&mut self, value: &ast::Expr) {
        let ok = match &value.kind {
            ast::ExprKind::Call(f, _) => {
                matches!(&f.kind, ast::ExprKind::Name(n) if super::builtins::DISTRIBUTIONS.contains(&n.as_str()))
            }
            _ => false,
        };
        if !ok {
            self.error(
                TypeError::new("E0105", value.span, "`~` draws from a distribution")
                    .label("not a distribution")
                    .help(format!("use one of {}, or `=`", super::builtins::DISTRIBUTIONS.join(", "))),
            );
        }
    }

    fn bind_pattern(&mut self, pattern: &ast::Pattern, v: Val, span: Span) {
        match pattern {
            ast::Pattern::Name(n) => self.bind(n, v),
            ast::Pattern::Tuple(names, pspan) => match v {
                Val::Tuple(xs) if xs.len() == names.len() => {
                    for (n, x) in names.iter().zip(xs) {
                        self.bind(n, x);
                    }
                }
                Val::Poison => names.iter().for_each(|n| self.bind(n, Val::Poison)),
                other => {
                    let found = match &other {
                        Val::Tuple(xs) => format!("a tuple of {}", xs.len()),
                        o => o.kind_name().to_string(),
                    };
                    self.error(
                        TypeError::new(
                            "E0105",
                            *pspan,
                            format!("cannot unpack {found} into {} names", names.len()),
                        )
                        .label(format!("{} names", names.len()))
                        .note(span, format!("this is {found}")),
                    );
                    names.iter().for_each(|n| self.bind(n, Val::Poison));
                }
            },
        }
    }

    pub(super) fn find_var(&mut self, name: &str) -> Option<(Val, Span)> {
        let f = self.frames.last()?;
        f.vars.iter().rev().find_map(|s| s.get(name).cloned())
    }

    pub(super) fn set_var(&mut self, name: &str, v: Val) {
        let f = self.frame();
        for scope in f.vars.iter_mut().rev() {
            if let Some(slot) = scope.get_mut(name) {
                slot.0 = v;
                return;
            }
        }
    }

    fn assign(&mut self, target: &ast::Place, op: ast::AssignOp, value: &ast::Expr) {
        let Some((old, decl)) = self.find_var(&target.name.name) else {
            self.unknown(&target.name.name, target.name.span, "variable");
            return;
        };
        let rhs = self.eval(value);
        if !target.indices.is_empty() {
            let new = self.assign_indexed(old, target, op, rhs, value.span);
            self.set_var(&target.name.name, new);
            return;
        }
        let new = match op {
            ast::AssignOp::Set => rhs,
            compound => self.binary_val(compound_op(compound), old.clone(), rhs, value.span),
        };
        // A tensor keeps its type across assignments (loop-carried values rely on it).
        if let (Val::Tensor(a), Val::Tensor(b)) = (&old, &new) {
            let (ta, tb) = (self.ty(*a).clone(), self.ty(*b).clone());
            if ta != tb {
                self.error(
                    TypeError::new(
                        "E0107",
                        value.span,
                        format!("`{}` is {ta}, but this assigns {tb}", target.name.name),
                    )
                    .label(format!("this is {tb}"))
                    .note(decl, format!("`{}` is {ta} here", target.name.name))
                    .help("use `let` to make a new variable of another shape"),
                );
                return;
            }
        }
        self.set_var(&target.name.name, new);
    }

    /// `x[:, :, i, j] = v` as a functional update: `select(mask, broadcast(v), x)`, where the
    /// mask is true exactly at the indexed positions.
    fn assign_indexed(
        &mut self,
        old: Val,
        target: &ast::Place,
        op: ast::AssignOp,
        rhs: Val,
        span: Span,
    ) -> Val {
        let Ok(x) = self.expect_tensor(&old, target.name.span, "an indexed assignment's target") else {
            return Val::Poison;
        };
        let [items] = target.indices.as_slice() else {
            return self.error(
                TypeError::new("E0105", target.span, "only one index list is allowed here")
                    .label("x[..][..]"),
            );
        };
        // The indexed view gives the type the right side must have.
        let view = match self.index_tensor(x, items, target.span) {
            Ok(v) => v,
            Err(()) => return Val::Poison,
        };
        let value = match op {
            ast::AssignOp::Set => rhs,
            compound => self.binary_val(compound_op(compound), Val::Tensor(view), rhs, span),
        };
        let Ok(v) = self.expect_tensor(&value, span, "the assigned value") else { return Val::Poison };
        let (tv, tview) = (self.ty(v).clone(), self.ty(view).clone());
        if tv.shape != tview.shape {
            return self.error(
                TypeError::new("E0107", span, format!("assigning {tv} into a view of shape {tview}"))
                    .label(format!("this is {tv}"))
                    .note(target.span, format!("this view is {tview}")),
            );
        }
        let xt = self.ty(x).clone();
        // Lay the value out over x's axes: ranges are padded into place, single indices
        // broadcast; the mask then picks the updated positions.
        let per_axis = expand_items(items, xt.rank());
        let mut spread = Vec::new();
        let mut pads = Vec::new();
        let mut k = 0;
        for (axis, item) in per_axis.iter().enumerate() {
            let extent = xt.shape[axis].clone();
            match item {
                Some(ast::IndexItem::Expr(_)) => {
                    spread.push(Dim::constant(1));
                    pads.push((0, 0));
                }
                Some(ast::IndexItem::Slice { start, end, step, span: s })
                    if start.is_some() || end.is_some() || step.is_some() =>
                {
                    let Some((lo, hi)) =
                        self.static_range(start.as_ref(), end.as_ref(), step.as_ref(), &extent, *s)
                    else {
                        return Val::Poison;
                    };
                    let Some(n) = extent.as_const() else { return Val::Poison };
                    spread.push(Dim::constant(hi - lo));
                    pads.push((lo as usize, (n - hi) as usize));
                    k += 1;
                }
                _ => {
                    spread.push(tview.shape.get(k).cloned().unwrap_or(extent));
                    pads.push((0, 0));
                    k += 1;
                }
            }
        }
        let Ok(mask) = self.index_mask(&xt, items, span) else { return Val::Poison };
        let Ok(v) = self.cast(v, xt.dtype, span) else { return Val::Poison };
        let Ok(mut v) = self.reshape(v, spread, span) else { return Val::Poison };
        if pads.iter().any(|&(a, b)| a + b > 0) {
            match self.node(Prim::Pad { pads, value: crate::prim::F64(0.0) }, &[v], None, span) {
                Ok(p) => v = p,
                Err(()) => return Val::Poison,
            }
        }
        let Ok(v) = self.broadcast(v, xt.shape.clone(), span) else { return Val::Poison };
        self.val(Prim::Select, &[mask, v, x], None, span)
    }

    /// The static `[lo, hi)` of a step-1 slice, or a diagnostic.
    fn static_range(
        &mut self,
        start: Option<&ast::Expr>,
        end: Option<&ast::Expr>,
        step: Option<&ast::Expr>,
        extent: &Dim,
        span: Span,
    ) -> Option<(i64, i64)> {
        if step.is_some() || extent.as_const().is_none() {
            self.error(
                TypeError::new(
                    "E0105",
                    span,
                    "assignment into a strided slice or a slice of a symbolic axis is not supported",
                )
                .label("use a step-1 slice of a known axis")
                .help("build the new tensor with concat(..) instead"),
            );
            return None;
        }
        let lo = match start {
            Some(e) => {
                let v = self.eval(e);
                self.static_index(v, extent, e.span, true).ok()?
            }
            None => 0,
        };
        let hi = match end {
            Some(e) => {
                let v = self.eval(e);
                self.static_index(v, extent, e.span, true).ok()?
            }
            None => extent.as_const()?,
        };
        if hi <= lo {
            self.error(
                TypeError::new("E0109", span, format!("the slice {lo}:{hi} is empty"))
                    .label("nothing to assign"),
            );
            return None;
        }
        Some((lo, hi))
    }

    /// A bool mask over `t`'s shape: true where every per-axis index or range matches.
    fn index_mask(
        &mut self,
        t: &TensorType,
        items: &[ast::IndexItem],
        span: Span,
    ) -> Result<crate::graph::NodeId, ()> {
        let rank = t.rank();
        let mut mask: Option<crate::graph::NodeId> = None;
        for (axis, item) in expand_items(items, rank).into_iter().enumerate() {
            let mut shape = vec![Dim::constant(1); rank];
            shape[axis] = t.shape[axis].clone();
            let this = match item {
                Some(ast::IndexItem::Expr(e)) => {
                    let iota =
                        self.push_node(Prim::Iota { axis }, TensorType::new(DType::I32, shape), &[], span);
                    let idx = match self.eval(e) {
                        Val::Tensor(n) if self.ty(n).rank() == 0 && self.ty(n).dtype == DType::I32 => {
                            self.lift_rank(n, rank, span)?
                        }
                        Val::Int(d) if d.as_const().is_some() => {
                            let c = d.as_const().unwrap_or(0) as f64;
                            self.splat(c, DType::I32, rank, span)
                        }
                        Val::Poison => return Err(()),
                        other => {
                            self.error(
                                TypeError::new(
                                    "E0105",
                                    e.span,
                                    format!(
                                        "an assignment index must be an int, found {}",
                                        other.kind_name()
                                    ),
                                )
                                .label("not an int"),
                            );
                            return Err(());
                        }
                    };
                    self.node(Prim::Binary(BinaryOp::Eq), &[iota, idx], None, span)?
                }
                Some(ast::IndexItem::Slice { start, end, step, span: s })
                    if start.is_some() || end.is_some() || step.is_some() =>
                {
                    let (lo, hi) = self
                        .static_range(start.as_ref(), end.as_ref(), step.as_ref(), &t.shape[axis], *s)
                        .ok_or(())?;
                    let iota =
                        self.push_node(Prim::Iota { axis }, TensorType::new(DType::I32, shape), &[], span);
                    let ge = self.binary_const(BinaryOp::Ge, iota, lo as f64, span)?;
                    let lt = self.binary_const(BinaryOp::Lt, iota, hi as f64, span)?;
                    self.binary(BinaryOp::And, ge, lt, span)?
                }
                _ => continue,
            };
            mask = Some(match mask {
                None => this,
                Some(m) => self.binary(BinaryOp::And, m, this, span)?,
            });
        }
        let m = match mask {
            Some(m) => m,
            None => self.splat(1.0, DType::Bool, rank, span),
        };
        self.broadcast(m, t.shape.clone(), span)
    }

    fn exec_for(&mut self, var: &ast::Ident, range: &ast::Range, body: &ast::Block) -> Flow {
        let (lo, hi) = (self.eval(&range.start), self.eval(&range.end));
        let bound = |c: &mut Checker, v: Val, span: Span| -> Option<i64> {
            match v {
                Val::Int(d) => match d.as_const() {
                    Some(x) => Some(x),
                    None => {
                        c.error(
                            TypeError::new("E0113", span, format!("the loop bound `{d}` is symbolic"))
                                .label("must be known at compile time"),
                        );
                        None
                    }
                },
                Val::Poison => None,
                other => {
                    c.error(
                        TypeError::new(
                            "E0113",
                            span,
                            format!("a loop bound must be an int, found {}", other.kind_name()),
                        )
                        .label("not an int"),
                    );
                    None
                }
            }
        };
        let (Some(lo), Some(hi)) = (bound(self, lo, range.start.span), bound(self, hi, range.end.span))
        else {
            return Flow::Next;
        };
        let values: Box<dyn Iterator<Item = i64>> = match (lo <= hi, range.inclusive) {
            (true, true) => Box::new(lo..=hi),
            (true, false) => Box::new(lo..hi),
            (false, true) => Box::new((hi..=lo).rev()),
            (false, false) => Box::new((hi + 1..=lo).rev()),
        };
        let count = (hi - lo).abs() + i64::from(range.inclusive);
        if self.frames.last().is_some_and(|f| f.host_control) {
            // A sampler's loop runs on the host: check its body once, with the loop variable
            // as a runtime int scalar.
            if count == 0 {
                return Flow::Next;
            }
            self.host_cut();
            let index = self.graph.input_names.len();
            self.graph.input_names.push(format!("loop {}", var.name));
            let n = self.push_node(Prim::Input { index }, TensorType::scalar(DType::I32), &[], var.span);
            let carried = self.carry_into_loop(body);
            self.host.open();
            let flow = self.loop_body(var, Val::Tensor(n), body);
            self.host_cut();
            self.carry_back(carried);
            let stmts = self.host.close();
            let last = match (lo <= hi, range.inclusive) {
                (true, true) | (false, true) => hi,
                (true, false) => hi - 1,
                (false, false) => hi + 1,
            };
            self.host.push(crate::host::HostStmt::Loop { var: n, first: lo, last, body: stmts });
            if let Flow::Return(_, at) = flow {
                self.host.unsupported("a `return` inside a sampler loop".into());
                self.host_error(at, "a `return` inside a sampler loop", "return after the loop");
            }
            return flow;
        }
        if count > MAX_UNROLL || count as usize > self.fuel {
            self.error(
                TypeError::new(
                    "E0113",
                    range.span,
                    format!("this loop runs {count} times; the limit for unrolling is {MAX_UNROLL}"),
                )
                .label("too long to unroll")
                .help("a net's loops are unrolled at compile time: use fewer iterations"),
            );
            return Flow::Next;
        }
        self.fuel -= count as usize;
        for i in values {
            if let Flow::Return(v, s) = self.loop_body(var, Val::Int(Dim::constant(i)), body) {
                return Flow::Return(v, s);
            }
        }
        Flow::Next
    }

    fn loop_body(&mut self, var: &ast::Ident, value: Val, body: &ast::Block) -> Flow {
        self.frame().vars.push(Default::default());
        self.bind(var, value);
        let flow = self.exec_block(body);
        self.frame().vars.pop();
        flow
    }

    fn exec_if(&mut self, cond: &ast::Expr, then: &ast::Block, otherwise: Option<&ast::Else>) -> Flow {
        let c = self.eval(cond);
        let run_else = |me: &mut Checker| match otherwise {
            None => Flow::Next,
            Some(ast::Else::Block(b)) => me.exec_block(b),
            Some(ast::Else::If(stmt)) => me.exec(stmt),
        };
        match c {
            Val::Bool(true) => self.exec_block(then),
            Val::Bool(false) => run_else(self),
            Val::Poison => Flow::Next,
            Val::Tensor(n)
                if self.frames.last().is_some_and(|f| f.host_control) && self.ty(n).rank() == 0 =>
            {
                // A host branch: check both sides; a variable both assign must keep its type,
                // which `assign` already enforces.
                self.host_branch(n, then, otherwise)
            }
            other => {
                let what = match &other {
                    Val::Tensor(n) => format!("a tensor {}", self.ty(*n)),
                    o => o.kind_name().to_string(),
                };
                self.error(
                    TypeError::new(
                        "E0105",
                        cond.span,
                        format!("an `if` condition must be a compile-time bool, found {what}"),
                    )
                    .label("not known at compile time")
                    .help("outside a sampler, branch on tensors with `select(cond, a, b)`"),
                );
                // Still check both branches; if either returns, the body's result is unknown
                // (not missing), so no "does not return" follows from this one mistake.
                let t = self.exec_block(then);
                let e = run_else(self);
                match (t, e) {
                    (Flow::Return(_, s), _) | (_, Flow::Return(_, s)) => Flow::Return(Val::Poison, s),
                    _ => Flow::Next,
                }
            }
        }
    }

    /// Checks a tensor against a declared type, unifying free dims with the current frame.
    pub(super) fn check_declared(&mut self, n: crate::graph::NodeId, t: &ast::Type, span: Span, what: &str) {
        let actual = self.ty(n).clone();
        if let Err(e) = self.unify_type(t, &actual) {
            let e = TypeError::new("E0107", span, format!("{what} must be {e}, found {actual}"))
                .label(format!("this is {actual}"))
                .note(t.span, "declared here");
            self.error(e);
        }
    }
}

fn unary_symbol(op: ast::UnaryOp) -> &'static str {
    match op {
        ast::UnaryOp::Neg => "-",
        ast::UnaryOp::Not => "!",
    }
}

fn compound_op(op: ast::AssignOp) -> ast::BinaryOp {
    match op {
        ast::AssignOp::Add => ast::BinaryOp::Add,
        ast::AssignOp::Sub => ast::BinaryOp::Sub,
        ast::AssignOp::Mul => ast::BinaryOp::Mul,
        ast::AssignOp::Div | ast::AssignOp::Set => ast::BinaryOp::Div,
    }
}

fn float_binary(op: ast::BinaryOp, x: f64, y: f64) -> Option<Val> {
    use ast::BinaryOp as B;
    Some(match op {
        B::Add => Val::Float(x + y),
        B::Sub => Val::Float(x - y),
        B::Mul => Val::Float(x * y),
        B::Div => Val::Float(x / y),
        B::Rem => Val::Float(x.rem_euclid(y)),
        B::Pow => Val::Float(x.powf(y)),
        B::Eq => Val::Bool(x == y),
        B::Ne => Val::Bool(x != y),
        B::Lt => Val::Bool(x < y),
        B::Le => Val::Bool(x <= y),
        B::Gt => Val::Bool(x > y),
        B::Ge => Val::Bool(x >= y),
        B::And | B::Or | B::MatMul | B::Pipe => return None,
    })
}

/// Index items per axis, with `...` expanded to `None` (a full slice).
fn expand_items(items: &[ast::IndexItem], rank: usize) -> Vec<Option<&ast::IndexItem>> {
    let explicit = items.iter().filter(|i| !matches!(i, ast::IndexItem::Ellipsis(_))).count();
    let mut out = Vec::new();
    for item in items {
        match item {
            ast::IndexItem::Ellipsis(_) => {
                out.extend(std::iter::repeat_n(None, rank.saturating_sub(explicit)))
            }
            other => out.push(Some(other)),
        }
    }
    out.resize(rank, None);
    out
}

/// `a.b.c` as one dotted name, when the expression is only names and fields.
fn dotted(e: &ast::Expr) -> Option<String> {
    match &e.kind {
        ast::ExprKind::Name(n) => Some(n.clone()),
        ast::ExprKind::Field(x, field) => Some(format!("{}.{}", dotted(x)?, field.name)),
        _ => None,
    }
}
