//! The model specs: each parses, is already in canonical layout, and keeps snapshots of its
//! formatted text and its syntax tree.

mod common;

#[test]
fn every_spec_parses_and_is_formatted() {
    let specs = common::gen_files("specs");
    assert_eq!(specs.len(), 19, "one spec per model family");
    for path in specs {
        let source = common::read(&path);
        let name = common::stem(&path);
        let formatted = common::assert_format_properties(&name, &source);
        assert!(formatted == source, "specs/{name}.gen is not in canonical layout; run `genc fmt --write`");
        let (ast, _) = genc_grammar::parse(&source);
        insta::with_settings!({ snapshot_suffix => name.clone(), prepend_module_to_snapshot => false }, {
            insta::assert_snapshot!("fmt", formatted);
            insta::assert_snapshot!("ast", genc_grammar::dump::dump(&ast));
        });
    }
}
