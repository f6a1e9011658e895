//! Every malformed input in `tests/diagnostics/syntax/` gets at least one coded diagnostic,
//! and its rendering is kept as a snapshot (source first, then what the user sees).

mod common;

#[test]
fn every_malformed_input_is_reported() {
    let files = common::gen_files("tests/diagnostics/syntax");
    assert!(files.len() >= 40, "the syntax corpus should hold at least 40 inputs, found {}", files.len());
    for path in files {
        let source = common::read(&path);
        let (_, errors) = genc_grammar::parse(&source);
        assert!(!errors.is_empty(), "{} parsed without a diagnostic", path.display());
        let name = format!("{}.gen", common::stem(&path));
        let rendered = common::render_syntax_errors(&name, &source);
        insta::with_settings!({ snapshot_suffix => common::stem(&path), prepend_module_to_snapshot => false }, {
            let report = format!("----- SOURCE\n{source}\n----- DIAGNOSTICS\n{rendered}");
            insta::assert_snapshot!("syntax", report);
        });
    }
}
