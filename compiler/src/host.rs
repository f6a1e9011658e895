//! Host control flow: the loops and tensor-steered branches of a sampler body, recorded by
//! the checker over the nodes of the unit's graph.
//!
//! The checker elaborates a host loop's body once. To make that one graph mean every
//! iteration, it cuts the graph at each loop and branch boundary: the nodes made between two
//! cuts form a *segment* (a node-index range; nodes are only ever appended, so ranges follow
//! elaboration order). A tensor variable that a loop assigns is read in the body through a
//! placeholder `Input` node (`carry x`), which the host fills before the first iteration and
//! again at the end of each one (`Copy`); after the loop the variable *is* the placeholder. A
//! branch merges a variable that either side assigns the same way (`branch x`).
//!
//! Invariants the planner ([`crate::sampler`]) and the reference evaluator rely on:
//! - a node outside every segment is an `Input` (a unit input, a loop variable or a
//!   placeholder), and its value is the host's: nothing computes it;
//! - a node read by a later segment was computed by a segment that has run by then (bodies
//!   only see earlier values through variables, and variables cross boundaries as
//!   placeholders).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use genc_grammar::{Span, ast};

use crate::graph::{Graph, NodeId};
use crate::prim::Prim;

/// One recorded statement of the host program, over the unit graph's nodes.
#[derive(Clone, Debug, PartialEq)]
pub enum HostStmt {
    /// Compute the nodes `start..end` (those something needs).
    Segment { start: usize, end: usize },
    /// Give placeholder `to` the current value of `from`.
    Copy { from: NodeId, to: NodeId },
    /// Run `body` for `var` = `first`, then toward `last` by one (inclusive).
    Loop { var: NodeId, first: i64, last: i64, body: Vec<HostStmt> },
    /// `then` when the scalar `cond` is non-zero, else `otherwise`.
    If { cond: NodeId, then: Vec<HostStmt>, otherwise: Vec<HostStmt> },
}

/// A unit's host program. `unsupported` says why it cannot run (the checker accepts the
/// spec; the planner reports this).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HostBody {
    pub stmts: Vec<HostStmt>,
    pub unsupported: Option<String>,
}

impl HostBody {
    /// True when the body has a loop or a branch (else it is one straight-line graph).
    pub fn has_control(&self) -> bool {
        self.stmts.iter().any(|s| !matches!(s, HostStmt::Segment { .. })) || self.unsupported.is_some()
    }

    /// The nodes the host itself reads: copy sources and branch conditions.
    pub fn roots(&self) -> Vec<NodeId> {
        fn walk(stmts: &[HostStmt], out: &mut Vec<NodeId>) {
            for s in stmts {
                match s {
                    HostStmt::Segment { .. } => {}
                    HostStmt::Copy { from, .. } => out.push(*from),
                    HostStmt::Loop { body, .. } => walk(body, out),
                    HostStmt::If { cond, then, otherwise } => {
                        out.push(*cond);
                        walk(then, out);
                        walk(otherwise, out);
                    }
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.stmts, &mut out);
        out
    }

    /// The text form for the `graph`/`typed` stages; `number` gives a node's printed number
    /// (`None` for nodes the listing does not show).
    pub fn to_text(&self, number: &dyn Fn(NodeId) -> Option<usize>) -> String {
        let mut out = String::new();
        let show = |n: NodeId| number(n).map_or_else(|| "%?".to_string(), |k| format!("%{k}"));
        fn walk(
            stmts: &[HostStmt],
            depth: usize,
            out: &mut String,
            show: &dyn Fn(NodeId) -> String,
            number: &dyn Fn(NodeId) -> Option<usize>,
        ) {
            let pad = "  ".repeat(depth);
            for s in stmts {
                match s {
                    HostStmt::Segment { start, end } => {
                        let shown: Vec<usize> =
                            (*start..*end).filter_map(|i| number(NodeId::new(i))).collect();
                        if let (Some(a), Some(b)) = (shown.first(), shown.last()) {
                            let _ = writeln!(out, "{pad}compute %{a}..=%{b}");
                        }
                    }
                    HostStmt::Copy { from, to } => {
                        let _ = writeln!(out, "{pad}{} = {}", show(*to), show(*from));
                    }
                    HostStmt::Loop { var, first, last, body } => {
                        let _ = writeln!(out, "{pad}for {} in {first}..={last} {{", show(*var));
                        walk(body, depth + 1, out, show, number);
                        let _ = writeln!(out, "{pad}}}");
                    }
                    HostStmt::If { cond, then, otherwise } => {
                        let _ = writeln!(out, "{pad}if {} {{", show(*cond));
                        walk(then, depth + 1, out, show, number);
                        let _ = writeln!(out, "{pad}}} else {{");
                        walk(otherwise, depth + 1, out, show, number);
                        let _ = writeln!(out, "{pad}}}");
                    }
                }
            }
        }
        walk(&self.stmts, 2, &mut out, &show, number);
        if let Some(why) = &self.unsupported {
            let _ = writeln!(out, "    unsupported: {why}");
        }
        out
    }
}

/// Records host statements while the checker elaborates one unit: a stack of open blocks and
/// the first node of the segment being built.
#[derive(Clone, Debug, Default)]
pub struct Recorder {
    blocks: Vec<Vec<HostStmt>>,
    mark: usize,
    unsupported: Option<String>,
}

impl Recorder {
    /// Closes the current segment at the end of `g`. A range of nothing but `Input` nodes
    /// (placeholders) computes nothing and is not recorded.
    pub fn cut(&mut self, g: &Graph) {
        let len = g.len();
        let computes = (self.mark..len).any(|i| !matches!(g.node(NodeId::new(i)).prim, Prim::Input { .. }));
        if computes {
            let seg = HostStmt::Segment { start: self.mark, end: len };
            self.top().push(seg);
        }
        self.mark = len;
    }

    pub fn push(&mut self, stmt: HostStmt) {
        self.top().push(stmt);
    }

    /// Opens a nested block (a loop body or a branch side).
    pub fn open(&mut self) {
        self.top();
        self.blocks.push(Vec::new());
    }

    /// Closes the innermost block, returning its statements.
    pub fn close(&mut self) -> Vec<HostStmt> {
        if self.blocks.len() > 1 { self.blocks.pop().unwrap_or_default() } else { Vec::new() }
    }

    /// Notes (the first) reason the host program cannot run.
    pub fn unsupported(&mut self, why: String) {
        self.unsupported.get_or_insert(why);
    }

    /// The finished body of a unit whose graph is `g`.
    pub fn finish(mut self, g: &Graph) -> HostBody {
        self.cut(g);
        let mut blocks = self.blocks;
        // Blocks left open (a diagnostic cut elaboration short) fold into their parents.
        let mut stmts = Vec::new();
        while let Some(b) = blocks.pop() {
            let mut b = b;
            b.append(&mut stmts);
            stmts = b;
        }
        HostBody { stmts, unsupported: self.unsupported }
    }

    fn top(&mut self) -> &mut Vec<HostStmt> {
        if self.blocks.is_empty() {
            self.blocks.push(Vec::new());
        }
        let last = self.blocks.len() - 1;
        &mut self.blocks[last]
    }
}

/// The variable names a block assigns (`x = ..`, `x[i] = ..`, `x += ..`) at any depth of its
/// own statements, each with its first assignment. It over-approximates when an inner `let`
/// shadows the name, which only costs a placeholder that is never changed.
pub fn assigned_names(block: &ast::Block) -> BTreeMap<String, Span> {
    fn stmts(list: &[ast::Stmt], out: &mut BTreeMap<String, Span>) {
        for s in list {
            stmt(s, out);
        }
    }
    fn stmt(s: &ast::Stmt, out: &mut BTreeMap<String, Span>) {
        match &s.kind {
            ast::StmtKind::Assign { target, .. } => {
                out.entry(target.name.name.clone()).or_insert(s.span);
            }
            ast::StmtKind::For { body, .. } => stmts(&body.stmts, out),
            ast::StmtKind::If { then, otherwise, .. } => {
                stmts(&then.stmts, out);
                match otherwise {
                    Some(ast::Else::Block(b)) => stmts(&b.stmts, out),
                    Some(ast::Else::If(s)) => stmt(s, out),
                    None => {}
                }
            }
            ast::StmtKind::Let { .. } | ast::StmtKind::Return(_) | ast::StmtKind::Log { .. } => {}
        }
    }
    let mut out = BTreeMap::new();
    stmts(&block.stmts, &mut out);
    out
}
