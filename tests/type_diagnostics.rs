//! Every ill-typed spec in `tests/diagnostics/types/` parses cleanly, gets the codes its
//! first line promises (`// expect: E0106 E0107`), and its rendering is kept as a snapshot;
//! every spec in `tests/diagnostics/warnings/` checks with the warnings it promises.

mod common;

/// The codes listed on a `// expect:` line.
fn expected_codes(source: &str) -> Vec<String> {
    source
        .lines()
        .find_map(|l| l.trim().strip_prefix("// expect:"))
        .map(|rest| rest.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

#[test]
fn every_ill_typed_spec_is_reported() {
    let files = common::gen_files("tests/diagnostics/types");
    assert!(files.len() >= 60, "the type corpus should hold at least 60 specs, found {}", files.len());
    for path in files {
        let source = common::read(&path);
        let name = format!("{}.gen", common::stem(&path));
        let checked = common::check(&name, &source);
        assert!(!checked.errors.is_empty(), "{name} type-checked without a diagnostic");
        let produced: Vec<String> = checked.errors.iter().map(|e| e.code.to_string()).collect();
        let expected = expected_codes(&source);
        assert!(!expected.is_empty(), "{name} has no `// expect: E0xxx` line");
        for code in &expected {
            assert!(produced.contains(code), "{name} should report {code}, reported {produced:?}");
        }
        let rendered = common::render_type_errors(&name, &source);
        insta::with_settings!({ snapshot_suffix => common::stem(&path), prepend_module_to_snapshot => false }, {
            let report = format!("----- SOURCE\n{source}\n----- DIAGNOSTICS\n{rendered}");
            insta::assert_snapshot!("types", report);
        });
    }
}

#[test]
fn every_warned_spec_checks_with_its_warnings() {
    let files = common::gen_files("tests/diagnostics/warnings");
    assert!(files.len() >= 2, "the warning corpus should hold every W code, found {}", files.len());
    for path in files {
        let source = common::read(&path);
        let name = format!("{}.gen", common::stem(&path));
        let checked = common::check(&name, &source);
        assert!(checked.errors.is_empty(), "{name} should check: {:?}", checked.errors);
        let produced: Vec<String> = checked.warnings.iter().map(|e| e.code.to_string()).collect();
        assert_eq!(produced, expected_codes(&source), "{name}");
        let rendered: Vec<String> = checked
            .warnings
            .iter()
            .map(|w| genc::report::render_human(w, &name, Some(&source), false))
            .collect();
        insta::with_settings!({ snapshot_suffix => common::stem(&path), prepend_module_to_snapshot => false }, {
            let report = format!("----- SOURCE\n{source}\n----- WARNINGS\n{}", rendered.join("\n"));
            insta::assert_snapshot!("warnings", report);
        });
    }
}
