//! Helpers shared by the integration tests.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The `.gen` files in a folder of the repository, sorted.
pub fn gen_files(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
        .map(|entries| entries.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "gen"));
    files.sort();
    files
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

pub fn stem(path: &Path) -> String {
    path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
}

/// Every diagnostic of `source`, rendered as a person sees them (without colour).
pub fn render_syntax_errors(name: &str, source: &str) -> String {
    let (_, errors) = genc_grammar::parse(source);
    errors
        .iter()
        .map(|e| genc::report::render_human(e, name, Some(source), false))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Checks the formatter's three properties on a source that parses: the output parses to
/// the same AST (spans aside), formatting it again changes nothing, and every comment
/// survives.
pub fn assert_format_properties(name: &str, source: &str) -> String {
    let (ast, errors) = genc_grammar::parse(source);
    assert!(errors.is_empty(), "{name} should parse: {errors:?}");
    let once = genc_grammar::format::format_file(&ast, source);
    let (reparsed, errors) = genc_grammar::parse(&once);
    assert!(errors.is_empty(), "{name}: the formatted text does not parse: {errors:?}\n{once}");
    assert_eq!(
        genc_grammar::dump::dump(&ast),
        genc_grammar::dump::dump(&reparsed),
        "{name}: formatting changed the meaning\n{once}"
    );
    let twice = genc_grammar::format::format_file(&reparsed, &once);
    assert_eq!(once, twice, "{name}: formatting is not idempotent");
    let texts = |f: &genc_grammar::ast::File| {
        let mut t: Vec<String> = f.comments.iter().map(|c| c.text.clone()).collect();
        t.sort();
        t
    };
    assert_eq!(texts(&ast), texts(&reparsed), "{name}: formatting lost or changed a comment");
    once
}

/// Parses and type-checks `source` (which must parse cleanly), returning the checker's result.
pub fn check(name: &str, source: &str) -> genc_compiler::check::Checked {
    let (ast, errors) = genc_grammar::parse(source);
    assert!(errors.is_empty(), "{name} should parse: {errors:?}");
    genc_compiler::check::check(&ast, &[])
}

/// Every semantic diagnostic of `source`, rendered as a person sees them (without colour).
pub fn render_type_errors(name: &str, source: &str) -> String {
    check(name, source)
        .errors
        .iter()
        .map(|e| genc::report::render_human(e, name, Some(source), false))
        .collect::<Vec<_>>()
        .join("\n")
}
