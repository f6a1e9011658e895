//! Recording a sampler's host loops and branches while its body is elaborated: cuts of the
//! graph into segments and placeholders for the variables that cross a cut (the model is in
//! `crate::host`). What the host cannot run is noted for the planner, and a value it cannot
//! carry through a loop is also reported (E0124).

use genc_grammar::{Span, ast};

use super::expr::Flow;
use super::{Checker, Val};
use crate::diag::TypeError;
use crate::graph::NodeId;
use crate::host::HostStmt;
use crate::prim::Prim;

/// Variables of one frame, by scope (the shape of `Frame::vars`).
type Scopes = Vec<std::collections::HashMap<String, (Val, Span)>>;

impl Checker<'_> {
    /// Ends the segment being built at the current node count.
    pub(super) fn host_cut(&mut self) {
        self.host.cut(&self.graph);
    }

    /// Before a host loop: every variable the body assigns reads, in the body, a placeholder
    /// that holds its value from the previous iteration (first: its value now).
    pub(super) fn carry_into_loop(&mut self, body: &ast::Block) -> Vec<(String, Val)> {
        let mut carried = Vec::new();
        for (name, at) in crate::host::assigned_names(body) {
            let Some((v, _)) = self.find_var(&name) else { continue };
            match self.placeholder(&format!("carry {name}"), &v) {
                Some(p) => {
                    let mut copies = Vec::new();
                    copy_stmts(&v, &p, &mut copies);
                    copies.into_iter().for_each(|c| self.host.push(c));
                    self.set_var(&name, p.clone());
                    carried.push((name, p));
                }
                None => {
                    let kind = v.kind_name();
                    self.host.unsupported(format!(
                        "`{name}` is {kind} assigned inside a sampler loop; only tensors can change from one \
                         iteration to the next"
                    ));
                    // Said here too, so `genc check` reports it where it is written.
                    self.host_error(
                        at,
                        &format!("`{name}` is {kind}, changed inside a sampler loop; only tensors carry from one iteration to the next"),
                        &format!("keep `{name}` as a tensor (`let {name} = zeros([])`), or compute it from the loop variable"),
                    );
                }
            }
        }
        carried
    }

    /// E0124: what a sampler's host loop or branch does that the host cannot run, where it is
    /// written (the planner would refuse it later, without a place).
    pub(super) fn host_error(&mut self, at: Span, what: &str, help: &str) {
        self.error(
            TypeError::new("E0124", at, format!("the host cannot run this sampler: {what}"))
                .label("sampler loops and branches on tensors run on the host")
                .help(help.to_string()),
        );
    }

    /// At the end of a host loop's body: each carried variable's new value goes back into its
    /// placeholder, which is also its value after the loop.
    pub(super) fn carry_back(&mut self, carried: Vec<(String, Val)>) {
        for (name, p) in carried {
            let Some((v, _)) = self.find_var(&name) else { continue };
            let mut copies = Vec::new();
            copy_stmts(&v, &p, &mut copies);
            copies.into_iter().for_each(|c| self.host.push(c));
            self.set_var(&name, p);
        }
    }

    /// A host branch on the scalar `cond`: each side is its own block, elaborated from the
    /// same variables; a variable either side changes is merged into a placeholder.
    pub(super) fn host_branch(
        &mut self,
        cond: NodeId,
        then: &ast::Block,
        otherwise: Option<&ast::Else>,
    ) -> Flow {
        self.host_cut();
        let before: Scopes = self.frame().vars.clone();
        self.host.open();
        let t = self.exec_block(then);
        self.host_cut();
        let after_then = std::mem::replace(&mut self.frame().vars, before.clone());
        let mut then_stmts = self.host.close();
        self.host.open();
        let e = match otherwise {
            None => Flow::Next,
            Some(ast::Else::Block(b)) => self.exec_block(b),
            Some(ast::Else::If(stmt)) => self.exec(stmt),
        };
        self.host_cut();
        let after_else: Scopes = self.frame().vars.clone();
        let mut else_stmts = self.host.close();
        for (depth, scope) in before.iter().enumerate() {
            // Sorted, so placeholders are numbered the same way every time.
            let mut names: Vec<&String> = scope.keys().collect();
            names.sort();
            for name in names {
                let old = &scope[name].0;
                let value_in =
                    |side: &Scopes| side.get(depth).and_then(|s| s.get(name)).map(|(v, _)| v.clone());
                let (Some(tv), Some(ev)) = (value_in(&after_then), value_in(&after_else)) else { continue };
                if same(&tv, old) && same(&ev, old) {
                    continue;
                }
                let merged = if tv.is_poison() || ev.is_poison() {
                    Val::Poison
                } else {
                    match self.placeholder(&format!("branch {name}"), &tv) {
                        Some(p) => {
                            copy_stmts(&tv, &p, &mut then_stmts);
                            copy_stmts(&ev, &p, &mut else_stmts);
                            p
                        }
                        None => {
                            let what = format!(
                                "`{name}` is {} that a sampler branch changes; only tensors can depend \
                                 on a tensor condition",
                                tv.kind_name()
                            );
                            self.host.unsupported(what.clone());
                            let at = crate::host::assigned_names(then)
                                .get(name)
                                .copied()
                                .or_else(|| match otherwise {
                                    Some(ast::Else::Block(b)) => {
                                        crate::host::assigned_names(b).get(name).copied()
                                    }
                                    _ => None,
                                })
                                .unwrap_or(then.span);
                            self.host_error(
                                at,
                                &what,
                                &format!("keep `{name}` as a tensor, or use select(..) on the condition"),
                            );
                            ev
                        }
                    }
                };
                if let Some(slot) = self.frame().vars.get_mut(depth).and_then(|s| s.get_mut(name)) {
                    slot.0 = merged;
                }
            }
        }
        self.host.push(HostStmt::If { cond, then: then_stmts, otherwise: else_stmts });
        match (t, e) {
            (Flow::Return(v, s), _) | (_, Flow::Return(v, s)) => {
                self.host.unsupported("a `return` inside a sampler branch".into());
                self.host_error(
                    s,
                    "a `return` inside a sampler branch",
                    "set a variable in each branch and return it after the `if`",
                );
                Flow::Return(v, s)
            }
            _ => Flow::Next,
        }
    }

    /// A fresh placeholder shaped like `v` (a tensor, or a tuple of them), or `None` for a
    /// compile-time value, which the host cannot carry.
    fn placeholder(&mut self, label: &str, v: &Val) -> Option<Val> {
        match v {
            Val::Tensor(n) => {
                let (ty, span) = (self.ty(*n).clone(), self.graph.node(*n).span);
                let index = self.graph.input_names.len();
                self.graph.input_names.push(label.to_string());
                Some(Val::Tensor(self.push_node(Prim::Input { index }, ty, &[], span)))
            }
            Val::Tuple(xs) => {
                let parts: Option<Vec<Val>> = xs
                    .iter()
                    .enumerate()
                    .map(|(i, x)| self.placeholder(&format!("{label}.{i}"), x))
                    .collect();
                parts.map(Val::Tuple)
            }
            Val::Poison => Some(Val::Poison),
            Val::Int(_) | Val::Float(_) | Val::Bool(_) | Val::Str(_) | Val::List(_) | Val::Def(_) => None,
        }
    }
}

/// The copies that give placeholder `to` the value `from`, tensor by tensor.
fn copy_stmts(from: &Val, to: &Val, out: &mut Vec<HostStmt>) {
    match (from, to) {
        (Val::Tensor(a), Val::Tensor(b)) if a != b => out.push(HostStmt::Copy { from: *a, to: *b }),
        (Val::Tuple(xs), Val::Tuple(ys)) => xs.iter().zip(ys).for_each(|(x, y)| copy_stmts(x, y, out)),
        _ => {}
    }
}

/// The same value (the same node for tensors).
fn same(a: &Val, b: &Val) -> bool {
    match (a, b) {
        (Val::Tensor(x), Val::Tensor(y)) => x == y,
        (Val::Int(x), Val::Int(y)) => x == y,
        (Val::Float(x), Val::Float(y)) => x.to_bits() == y.to_bits(),
        (Val::Bool(x), Val::Bool(y)) => x == y,
        (Val::Str(x), Val::Str(y)) | (Val::Def(x), Val::Def(y)) => x == y,
        (Val::Tuple(xs), Val::Tuple(ys)) | (Val::List(xs), Val::List(ys)) => {
            xs.len() == ys.len() && xs.iter().zip(ys).all(|(x, y)| same(x, y))
        }
        (Val::Poison, Val::Poison) => true,
        _ => false,
    }
}
