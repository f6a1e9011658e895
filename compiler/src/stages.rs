//! The stable text forms of the checked stages: `graph` (ops and edges), `typed` (the same
//! with every node's type), `dot` (Graphviz), and the per-net `summary`.

use std::fmt::Write as _;

use crate::check::Checked;
use crate::params::{Entry, Init, Kind};

/// Every unit's graph, with types when `typed`; the parameter table first.
pub fn graph_text(checked: &Checked, typed: bool) -> String {
    let mut out = String::new();
    out.push_str(&table_text(checked));
    if !checked.consts.outputs.is_empty()
        || checked.table.buffers.iter().any(|b| matches!(b.init, Init::Computed { .. }))
    {
        let mut consts = checked.consts.clone();
        consts.outputs = checked
            .table
            .buffers
            .iter()
            .filter_map(|b| match b.init {
                Init::Computed { node } => Some(crate::graph::Output { name: b.name.clone(), node }),
                _ => None,
            })
            .collect();
        let _ = writeln!(out, "\nconsts {{\n{}}}", consts.to_text(typed));
    }
    for unit in &checked.units {
        let text = match &unit.host {
            None => unit.graph.to_text(typed),
            Some(host) => {
                let (mut text, number) = unit.graph.to_text_rooted(typed, &host.roots());
                let shown =
                    |n: crate::graph::NodeId| number.get(n.index()).copied().filter(|&k| k != usize::MAX);
                text.push_str("  host {\n");
                text.push_str(&host.to_text(&shown));
                text.push_str("  }\n");
                text
            }
        };
        let _ = writeln!(out, "\n{} {} {{\n{}}}", unit.kind.name(), unit.name, text);
    }
    out
}

/// The parameter and buffer tables: name, shape, initialiser.
pub fn table_text(checked: &Checked) -> String {
    let mut out = String::new();
    for (kind, list) in [("param", &checked.table.params), ("buffer", &checked.table.buffers)] {
        for (i, e) in list.iter().enumerate() {
            let _ = writeln!(out, "{kind}[{i}] {} : {:?} = {}", e.name, e.shape, init_text(e));
        }
    }
    out
}

fn init_text(e: &Entry) -> String {
    match &e.init {
        Init::Zeros => "zeros".into(),
        Init::Ones => "ones".into(),
        Init::Uniform { bound } => format!("uniform(±{bound:.6})"),
        Init::Normal { mean: 0.0, std } => format!("normal(std={std})"),
        Init::Normal { mean, std } => format!("normal(mean={mean}, std={std})"),
        Init::UniformRange { lo, hi } => format!("uniform({lo}, {hi})"),
        Init::Orthogonal { gain } => format!("orthogonal(gain={gain})"),
        Init::CausalMask { kind } => format!("causal_mask({kind})"),
        Init::Computed { node } => format!("consts %{}", node.index()),
    }
}

/// Graphviz source for every unit, one `digraph` each.
pub fn dot_text(checked: &Checked) -> String {
    checked
        .units
        .iter()
        .map(|u| {
            let roots = u.host.as_ref().map(|h| h.roots()).unwrap_or_default();
            u.graph.to_dot(&format!("{} {}", u.kind.name(), u.name), &roots)
        })
        .collect()
}

/// Per net, a Keras-style table of layers, output shapes and parameter counts, and totals.
pub fn summary(checked: &Checked) -> String {
    let mut out = String::new();
    for unit in checked.units.iter().filter(|u| u.kind == crate::check::UnitKind::Net) {
        let g = &unit.graph;
        let mut rows: Vec<(String, String, usize)> = Vec::new();
        for n in g.live_nodes() {
            let node = g.node(n);
            if node.origin.is_empty()
                || matches!(node.prim, crate::prim::Prim::Param { .. } | crate::prim::Prim::Buffer { .. })
            {
                continue;
            }
            let shape = node.ty.to_string();
            match rows.last_mut() {
                Some(last) if last.0 == node.origin => last.1 = shape,
                _ => {
                    let prefix = format!("{}.", node.origin);
                    let count = if node.origin.contains('.') {
                        checked
                            .table
                            .params
                            .iter()
                            .filter(|p| p.name.starts_with(&prefix))
                            .map(Entry::numel)
                            .sum()
                    } else {
                        0
                    };
                    rows.push((node.origin.clone(), shape, count));
                }
            }
        }
        // A layer that appears twice (reused through a net call) counts its weights once.
        let mut seen = std::collections::HashSet::new();
        for row in &mut rows {
            if !seen.insert(row.0.clone()) {
                row.2 = 0;
            }
        }
        let trainable: usize = checked.table.owned_by(&unit.name).map(|(_, e)| e.numel()).sum();
        let buffers: usize = checked
            .table
            .buffers
            .iter()
            .filter(|b| b.owner.as_deref() == Some(&unit.name))
            .map(Entry::numel)
            .sum();
        let wname = rows.iter().map(|r| r.0.len()).max().unwrap_or(5).max(5);
        let wshape = rows.iter().map(|r| r.1.len()).max().unwrap_or(12).max(12);
        let _ = writeln!(out, "net {}", unit.name);
        let _ = writeln!(out, "  {:<wname$}  {:<wshape$}  {:>12}", "layer", "output shape", "params");
        let _ = writeln!(out, "  {}", "-".repeat(wname + wshape + 16));
        for (name, shape, count) in &rows {
            let _ = writeln!(out, "  {name:<wname$}  {shape:<wshape$}  {:>12}", group(*count));
        }
        let _ = writeln!(out, "  {}", "-".repeat(wname + wshape + 16));
        let _ = writeln!(out, "  trainable params: {}", group(trainable));
        let _ = writeln!(out, "  buffers:          {}\n", group(buffers));
    }
    let total: usize = checked.table.params.iter().map(Entry::numel).sum();
    let buffers: usize =
        checked.table.buffers.iter().filter(|b| b.kind == Kind::Buffer).map(Entry::numel).sum();
    let _ = writeln!(out, "total trainable params: {}", group(total));
    let _ = writeln!(out, "total buffers:          {}", group(buffers));
    out
}

/// `3576704` as `3,576,704`.
pub fn group(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}
