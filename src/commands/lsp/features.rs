//! What the server answers about a document: hover, go to definition, document symbols,
//! formatting and completion. Each works from whatever the document has — a half-typed file
//! gets the answers its syntax tree allows, never a failure.

use genc_compiler::graph::Node;
use genc_grammar::{Span, ast};
use lsp_types::{
    CompletionItem, CompletionItemKind, DocumentSymbol, Hover, HoverContents, Location, MarkupContent,
    MarkupKind, SymbolKind, TextEdit,
};

use super::document::Document;

/// The language reference, whose built-in table is the hover text of each built-in.
const LANGUAGE_DOC: &str = include_str!("../../../docs/language.md");

/// Markdown for the thing at byte `offset`: a definition's signature (a net's parameter
/// count), a dim's value and where it is bound, a param's value, a built-in's signature, or
/// the type of the innermost expression there.
pub fn hover(doc: &Document, offset: usize) -> Option<Hover> {
    let (word, start, end) = doc.word_at(offset).unwrap_or(("", offset, offset));
    let text = match (named_hover(doc, word), expression_hover(doc, offset)) {
        // A built-in's doc line, and what this call of it makes (with a layer's weights).
        (Some(named), Some(ty)) if builtin(word) => {
            format!("{ty}{}\n\n{named}", layer_weights(doc, start).unwrap_or_default())
        }
        (Some(named), _) => named,
        (None, ty) => ty?,
    };
    Some(Hover {
        contents: HoverContents::Markup(MarkupContent { kind: MarkupKind::Markdown, value: text }),
        range: (!word.is_empty()).then(|| doc.lines.range(&doc.text, start, end)),
    })
}

fn named_hover(doc: &Document, word: &str) -> Option<String> {
    if word.is_empty() {
        return None;
    }
    if let Some(def) = doc.defs().find(|d| d.name.name == word) {
        let mut text = format!("```gen\n{}\n```", signature(doc, def));
        if def.kind == ast::DefKind::Net {
            if let Some(c) = &doc.checked {
                let owned = c.table.params.iter().filter(|p| p.owner.as_deref() == Some(word));
                let (tensors, count) = owned.fold((0, 0), |(t, n), p| (t + 1, n + p.numel()));
                text.push_str(&format!(
                    "\n\n{} trainable parameters in {tensors} tensors",
                    genc_compiler::stages::group(count)
                ));
            }
        }
        return Some(text);
    }
    if let Some((decl, line)) = dim_decl(doc, word) {
        let value = doc.checked.as_ref().and_then(|c| c.dims.get(word).copied());
        let batch = doc
            .checked
            .as_ref()
            .and_then(|c| c.schedule.as_ref())
            .and_then(|s| s.batch.as_ref())
            .filter(|b| b.0 == word)
            .map(|b| b.1);
        let what = match (value, batch, &decl.value) {
            (Some(v), _, _) => format!("dim `{word}` = {v}"),
            (None, Some(b), _) => format!("dim `{word}`: free, the batch size ({b} in training)"),
            (None, None, Some(_)) => format!("dim `{word}` (its value does not check)"),
            (None, None, None) => format!("dim `{word}`: free, bound by each call"),
        };
        return Some(format!("{what}\n\ndeclared on line {line}"));
    }
    if let Some(b) = binding(doc, word) {
        return Some(format!("```gen\n{}\n```", doc.text.get(b.span.range()).unwrap_or(word).trim()));
    }
    builtin_hover(word)
}

/// A definition's header: `net G(z: [B, Z]) -> [B, C, H, W]`.
fn signature(doc: &Document, def: &ast::Def) -> String {
    let body = match &def.body {
        ast::Body::Block(b) => b.span.start,
        ast::Body::Expr(e) => e.span.start,
    };
    let header = doc.text.get(def.span.start..body.max(def.span.start)).unwrap_or("");
    header.trim_end().trim_end_matches('=').trim_end().to_string()
}

fn dim_decl<'a>(doc: &'a Document, name: &str) -> Option<(&'a ast::DimDecl, usize)> {
    doc.ast.items.iter().find_map(|i| match i {
        ast::Item::Dims(d) => d
            .dims
            .iter()
            .find(|d| d.name.name == name)
            .map(|d| (d, doc.lines.position(&doc.text, d.span.start).line as usize + 1)),
        _ => None,
    })
}

fn binding<'a>(doc: &'a Document, name: &str) -> Option<&'a ast::Binding> {
    doc.ast.items.iter().find_map(|i| match i {
        ast::Item::Param(b) | ast::Item::Const(b) if b.name.name == name => Some(b),
        _ => None,
    })
}

/// The trainable weights the layer call starting at `offset` made: "; 1,792 parameters in
/// `UNet.res0.conv2d0`".
fn layer_weights(doc: &Document, offset: usize) -> Option<String> {
    let checked = doc.checked.as_ref()?;
    let made: Vec<_> = checked.table.params.iter().filter(|p| p.span.start == offset).collect();
    let first = made.first()?;
    let layer = first.name.rsplit_once('.').map_or(first.name.as_str(), |(l, _)| l);
    let count: usize = made.iter().map(|p| p.numel()).sum();
    Some(format!("; {} parameters in `{layer}`", genc_compiler::stages::group(count)))
}

fn builtin(word: &str) -> bool {
    genc_compiler::check::builtin_names().any(|n| n == word)
}

/// A built-in's entry in the language reference's table of built-ins, with its group.
fn builtin_hover(word: &str) -> Option<String> {
    if !builtin(word) {
        return None;
    }
    let table = LANGUAGE_DOC.split("### Built-in functions").nth(1)?;
    for row in table.lines().skip_while(|l| !l.starts_with('|')).take_while(|l| l.starts_with('|')) {
        let row = row.replace("\\|", "\u{1}");
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let (Some(group), Some(entries)) = (cells.get(1), cells.get(2)) else { continue };
        for entry in entries.split('`').skip(1).step_by(2) {
            let name = entry.split(['(', ' ']).next().unwrap_or("");
            if name == word {
                let kind = if genc_compiler::check::is_layer(word) { "layer" } else { "built-in" };
                return Some(format!("```gen\n{}\n```\n\n{kind}: {group}", entry.replace('\u{1}', "|")));
            }
        }
    }
    Some(format!("built-in `{word}`"))
}

/// The type of what the spec text at `offset` makes: the innermost graph node whose span
/// holds it, else the innermost call whose arguments hold it (a call's nodes carry the
/// callee's span). Among nodes with one span the last made in a unit (a layer's output) wins,
/// and the first unit that has one (a training phase, in terms of `B`, before samplers).
fn expression_hover(doc: &Document, offset: usize) -> Option<String> {
    let checked = doc.checked.as_ref()?;
    let text = doc.text.as_bytes();
    let holds = |n: &&Node| n.span.start <= offset && offset < n.span.end;
    let calls = |n: &&Node| {
        n.span.end <= offset && text.get(n.span.end) == Some(&b'(') && closing(text, n.span.end) > offset
    };
    // Smaller is better: the innermost span, then (for calls) the one starting last.
    let by_size = |n: &Node| (n.span.len(), 0);
    let by_start = |n: &Node| (usize::MAX - n.span.start, 0);
    let pick = |filter: &dyn Fn(&&Node) -> bool, key: &dyn Fn(&Node) -> (usize, usize)| {
        let mut best: Option<&Node> = None;
        for unit in &checked.units {
            let in_unit =
                unit.graph.dag.node_weights().filter(|n| filter(n)).fold(None::<&Node>, |b, n| match b {
                    Some(b) if key(b) < key(n) => Some(b),
                    _ => Some(n),
                });
            if let Some(n) = in_unit {
                if best.is_none_or(|b| key(n) < key(b)) {
                    best = Some(n);
                }
            }
        }
        best
    };
    let node = pick(&holds, &by_size).or_else(|| pick(&calls, &by_start))?;
    let ty = node.ty.to_string();
    Some(if node.origin.is_empty() {
        format!("`{ty}`")
    } else {
        format!("`{ty}` — from `{}`", node.origin)
    })
}

/// The index of the bracket closing the one at `open` (the text's end if it never closes).
fn closing(text: &[u8], open: usize) -> usize {
    let mut depth = 0usize;
    for (i, &b) in text.iter().enumerate().skip(open) {
        match b {
            b'(' | b'[' => depth += 1,
            b')' | b']' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return i;
                }
            }
            _ => {}
        }
    }
    text.len()
}

/// Where the name at `offset` is defined: a net, block, loss or sampler, a dim, a param or
/// const, or a parameter or `let` of the enclosing definition.
pub fn definition(doc: &Document, offset: usize) -> Option<Location> {
    let (word, _, _) = doc.word_at(offset)?;
    let span = local_definition(doc, word, offset)
        .or_else(|| doc.defs().find(|d| d.name.name == word).map(|d| d.name.span))
        .or_else(|| dim_decl(doc, word).map(|(d, _)| d.name.span))
        .or_else(|| binding(doc, word).map(|b| b.name.span))?;
    Some(Location::new(doc.uri.clone(), doc.lines.range(&doc.text, span.start, span.end)))
}

/// A parameter of the definition around `offset`, or the last `let` that binds `word`
/// before `offset` in it.
fn local_definition(doc: &Document, word: &str, offset: usize) -> Option<Span> {
    let def = doc.def_at(offset)?;
    let mut found = def.params.iter().find(|p| p.name.name == word).map(|p| p.name.span);
    let text = doc.text.get(def.span.start..offset.min(def.span.end))?;
    let mut search = 0;
    while let Some(at) = text[search..].find("let ") {
        let start = search + at + 4;
        let pattern_end = text[start..].find(['=', '~', ':']).map_or(text.len(), |e| start + e);
        let pattern = &text[start..pattern_end];
        if let Some(i) = find_word(pattern, word) {
            let begin = def.span.start + start + i;
            found = Some(Span::new(begin, begin + word.len()));
        }
        search = start;
    }
    found
}

/// The byte index of `word` as a whole word in `text`.
fn find_word(text: &str, word: &str) -> Option<usize> {
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text.match_indices(word).map(|(i, _)| i).find(|&i| {
        let before = text[..i].chars().next_back().is_none_or(|c| !is_word(c));
        let after = text[i + word.len()..].chars().next().is_none_or(|c| !is_word(c));
        before && after
    })
}

/// The file's outline: dims, params and consts, definitions, the train block.
#[allow(deprecated)] // DocumentSymbol's `deprecated` field must still be written
pub fn symbols(doc: &Document) -> Vec<DocumentSymbol> {
    let symbol = |name: String, detail: Option<String>, kind: SymbolKind, span: Span, name_span: Span| {
        DocumentSymbol {
            name,
            detail,
            kind,
            tags: None,
            deprecated: None,
            range: doc.lines.range(&doc.text, span.start, span.end),
            selection_range: doc.lines.range(&doc.text, name_span.start, name_span.end),
            children: None,
        }
    };
    let mut out = Vec::new();
    for item in &doc.ast.items {
        match item {
            ast::Item::Dims(d) => out.extend(d.dims.iter().map(|d| {
                symbol(
                    d.name.name.clone(),
                    Some("dim".into()),
                    SymbolKind::TYPE_PARAMETER,
                    d.span,
                    d.name.span,
                )
            })),
            ast::Item::Param(b) => out.push(symbol(
                b.name.name.clone(),
                Some("param".into()),
                SymbolKind::CONSTANT,
                b.span,
                b.name.span,
            )),
            ast::Item::Const(b) => out.push(symbol(
                b.name.name.clone(),
                Some("const".into()),
                SymbolKind::CONSTANT,
                b.span,
                b.name.span,
            )),
            ast::Item::Def(d) => {
                let kind = match d.kind {
                    ast::DefKind::Net | ast::DefKind::Block => SymbolKind::CLASS,
                    ast::DefKind::Loss | ast::DefKind::Sampler => SymbolKind::FUNCTION,
                };
                let detail = Some(signature(doc, d));
                out.push(symbol(d.name.name.clone(), detail, kind, d.span, d.name.span));
            }
            ast::Item::Train(t) => out.push(symbol("train".into(), None, SymbolKind::MODULE, t.span, t.span)),
            ast::Item::Where(_) => {}
        }
    }
    out
}

/// `genc fmt`'s layout as one edit of the whole file; none when it is formatted already or
/// does not parse.
pub fn formatting(doc: &Document) -> Vec<TextEdit> {
    match genc_grammar::format::format_source(&doc.text) {
        Ok(formatted) if formatted != doc.text => {
            vec![TextEdit::new(doc.lines.range(&doc.text, 0, doc.text.len()), formatted)]
        }
        _ => Vec::new(),
    }
}

/// Built-in functions and layers, their option names (`kernel: `), the train block's
/// keywords, and the file's own definitions, dims and params.
pub fn completion(doc: &Document) -> Vec<CompletionItem> {
    let item = |label: &str, kind: CompletionItemKind, detail: &str| CompletionItem {
        label: label.to_string(),
        kind: Some(kind),
        detail: Some(detail.to_string()),
        ..Default::default()
    };
    let mut out: Vec<CompletionItem> = genc_compiler::check::builtin_names()
        .map(|n| {
            let layer = genc_compiler::check::is_layer(n);
            let kind = if layer { CompletionItemKind::CLASS } else { CompletionItemKind::FUNCTION };
            item(n, kind, if layer { "layer" } else { "built-in" })
        })
        .collect();
    out.extend(genc_compiler::check::option_names().iter().map(|o| CompletionItem {
        insert_text: Some(format!("{o}: ")),
        ..item(&format!("{o}:"), CompletionItemKind::PROPERTY, "option")
    }));
    let keywords = genc_grammar::ITEM_KEYWORDS.iter().chain(&genc_grammar::RESERVED);
    for keyword in keywords.chain(&genc_grammar::TRAIN_ENTRIES).chain(&genc_grammar::STEP_ENTRIES) {
        out.push(item(keyword, CompletionItemKind::KEYWORD, "keyword"));
    }
    for d in doc.defs() {
        out.push(item(&d.name.name, CompletionItemKind::MODULE, d.kind.keyword()));
    }
    for i in &doc.ast.items {
        match i {
            ast::Item::Dims(d) => out
                .extend(d.dims.iter().map(|d| item(&d.name.name, CompletionItemKind::TYPE_PARAMETER, "dim"))),
            ast::Item::Param(b) | ast::Item::Const(b) => {
                out.push(item(&b.name.name, CompletionItemKind::CONSTANT, "param"))
            }
            _ => {}
        }
    }
    out
}
