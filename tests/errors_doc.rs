//! `docs/errors.md` is the registry of diagnostic codes: each code in the source is listed
//! there, and each example there still produces its code.

mod common;

use std::collections::BTreeSet;

/// `(code, example)` for every `### E0xxx` (or `W0xxx`) heading, with the first fenced block
/// after it.
fn documented() -> Vec<(String, String, String)> {
    let doc = common::read(&common::root().join("docs/errors.md"));
    let mut out = Vec::new();
    for section in doc.split("### ").skip(1) {
        let code: String = section.chars().take(5).collect();
        let Some(fence) = section.find("```") else {
            continue;
        };
        let after = &section[fence + 3..];
        let lang: String = after.chars().take_while(|c| *c != '\n').collect();
        let body_start = lang.len() + 1;
        let body_end = after[body_start..].find("```").map_or(after.len(), |e| body_start + e);
        out.push((code, lang, after[body_start..body_end].to_string()));
    }
    out
}

/// The Rust files under `dir`, recursively.
fn rust_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())).flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every `code(E....)` a diagnostic derives, in every crate, and the checker's table.
fn codes_in_source() -> BTreeSet<String> {
    let mut codes = BTreeSet::new();
    let mut files = Vec::new();
    for dir in ["grammar/src", "src", "runtime/src"] {
        rust_files(&common::root().join(dir), &mut files);
    }
    for file in files {
        let text = common::read(&file);
        for (i, _) in text.match_indices("code(E") {
            codes.insert(text[i + 5..i + 10].to_string());
        }
    }
    codes.extend(genc_compiler::diag::CODES.iter().map(|(c, _)| c.to_string()));
    codes
}

#[test]
fn every_code_is_documented_once() {
    let docs: Vec<String> = documented().into_iter().map(|(code, _, _)| code).collect();
    let unique: BTreeSet<String> = docs.iter().cloned().collect();
    assert_eq!(unique.len(), docs.len(), "a code is documented twice: {docs:?}");
    assert_eq!(unique, codes_in_source(), "docs/errors.md and the source disagree on the codes");
}

#[test]
fn every_syntax_example_produces_its_code() {
    for (code, lang, example) in documented() {
        if lang != "gen" {
            continue;
        }
        let (ast, errors) = genc_grammar::parse(&example);
        let mut produced: Vec<String> =
            errors.iter().filter_map(|e| miette::Diagnostic::code(e).map(|c| c.to_string())).collect();
        if errors.is_empty() {
            let checked = genc_compiler::check::check(&ast, &[]);
            produced.extend(checked.errors.iter().chain(&checked.warnings).map(|e| e.code.to_string()));
        }
        assert!(produced.contains(&code), "the example of {code} produced {produced:?}:\n{example}");
    }
}

#[test]
fn every_run_config_example_produces_its_code() {
    for (code, lang, example) in documented() {
        if lang != "yaml" {
            continue;
        }
        let produced = match genc_runtime::config::RunConfig::parse(&example, "run.yaml") {
            Ok(_) => None,
            Err(e) => miette::Diagnostic::code(&e).map(|c| c.to_string()),
        };
        assert_eq!(produced.as_deref(), Some(code.as_str()), "the example of {code}:\n{example}");
    }
}
