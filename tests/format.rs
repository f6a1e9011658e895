//! The formatter on inputs in every layout but the canonical one (`tests/format/`): the
//! output is snapshotted, and the three properties (same AST, idempotent, comments kept)
//! hold for them, for every spec and for the syntax corpus inputs that parse.

mod common;

#[test]
fn messy_inputs_format_canonically() {
    let files = common::gen_files("tests/format");
    assert!(!files.is_empty());
    for path in files {
        let source = common::read(&path);
        let name = common::stem(&path);
        let formatted = common::assert_format_properties(&name, &source);
        insta::with_settings!({ snapshot_suffix => name, prepend_module_to_snapshot => false }, {
            insta::assert_snapshot!("format", formatted);
        });
    }
}

#[test]
fn canonical_layout_is_a_fixed_point() {
    let source = "dims B, Z = 64\n\nnet G(z: [B, Z]) -> [B, Z] {\n    return z |> linear(Z) |> tanh\n}\n";
    assert_eq!(genc_grammar::format::format_source(source).ok().as_deref(), Some(source));
}

#[test]
fn long_pipe_chains_break_one_stage_per_line() {
    let source = "net G(z: [B, Z]) -> [B, C, H, W] {\n    return z |> linear(128 * H * W) |> batch_norm |> relu |> reshape([B, 128, H, W]) |> conv2d(C, kernel: 3, pad: 1) |> tanh\n}\n";
    let formatted = common::assert_format_properties("long", source);
    assert!(formatted.contains("\n        |> batch_norm\n"), "{formatted}");
    assert!(formatted.lines().all(|l| l.len() <= genc_grammar::format::MAX_WIDTH), "{formatted}");
}

#[test]
fn broken_files_are_not_rewritten() {
    assert!(genc_grammar::format::format_source("net G(").is_err());
}
