//! Scalar parameters of nets: a `bool` flag without a default is checked on its own with the
//! flag off, and each call checks the branch its value picks.

#![allow(clippy::unwrap_used)]

use genc_compiler::check;

fn codes(source: &str) -> Vec<String> {
    let (ast, errors) = genc_grammar::parse(source);
    assert!(errors.is_empty(), "{errors:?}");
    check::check(&ast, &[]).errors.iter().map(|e| e.code.to_string()).collect()
}

const NET: &str = r#"
dims B, C = 1, H = 28, W = 28

net G(x: [B, C, H, W], wrong: bool) -> [B, C, H, W] {
    let h = x |> conv2d(C, kernel: 3, pad: 1)
    if wrong {
        h = h |> conv2d(C, kernel: 3)
    }
    return h
}
"#;

#[test]
fn a_bool_flag_needs_no_default() {
    assert_eq!(codes(NET), Vec::<String>::new());
}

#[test]
fn each_call_checks_the_branch_it_picks() {
    let off = format!("{NET}\nloss l(x: [B, C, H, W]) = mean(G(x, false))\n");
    assert_eq!(codes(&off), Vec::<String>::new());
    // The unpadded convolution makes 26x26 where G declares 28x28.
    let on = format!("{NET}\nloss l(x: [B, C, H, W]) = mean(G(x, true))\n");
    assert_eq!(codes(&on), vec!["E0107".to_string()]);
}
