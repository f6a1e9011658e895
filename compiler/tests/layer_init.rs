//! A layer's own `init:` (and `weight(.., init:)`) sets its weight's initialiser in the table,
//! and `init NET(std:)` in the train block replaces only the defaults.

#![allow(clippy::unwrap_used)]

use genc_compiler::check;
use genc_compiler::params::Init;

const SPEC: &str = r#"
dims B, C = 1, H = 28, W = 28, N = 32

net G(x: [B, C, H, W]) -> [B, N] {
    let h = x |> conv2d(N, kernel: 3, pad: 1, init: "orthogonal", gain: 2.0) |> relu
    let m = weight([N, N], init: "normal", std: 0.5)
    return (h |> flatten |> linear(N, init: "zeros")) @ m |> linear(N)
}

loss l(x: [B, C, H, W]) = mean(G(x))

train {
    data x = fashion_mnist(split: "train", range: [0, 1])
    batch B = 4
    steps 1
    optimizer opt = adam(G, lr: 1e-3)
    init G(std: 0.02)
    step {
        minimize l(x) with opt
    }
}
"#;

#[test]
fn explicit_inits_win_over_the_nets_default() {
    let (ast, errors) = genc_grammar::parse(SPEC);
    assert!(errors.is_empty(), "{errors:?}");
    let c = check::check(&ast, &[]);
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    let init = |name: &str| c.table.params.iter().find(|p| p.name == name).unwrap().init.clone();
    assert_eq!(init("G.conv2d0.weight"), Init::Orthogonal { gain: 2.0 });
    assert_eq!(init("G.weight0"), Init::Normal { mean: 0.0, std: 0.5 });
    assert_eq!(init("G.linear0.weight"), Init::Zeros);
    // The layer without one takes the train block's N(0, 0.02); biases become 0.
    assert_eq!(init("G.linear1.weight"), Init::Normal { mean: 0.0, std: 0.02 });
    assert_eq!(init("G.conv2d0.bias"), Init::Zeros);
}

#[test]
fn a_layer_given_its_weight_makes_none_of_its_own() {
    let spec = r#"
dims B, C = 1, Z = 8

net G(z: [B, Z, 7, 7]) -> [B, C, 14, 14] {
    let w = weight([Z, C, 4, 4], init: "normal", std: 0.02)
    return z |> conv_transpose2d(C, kernel: 4, stride: 2, pad: 1, weight: w / sum(w ^ 2) ^ 0.5)
}
"#;
    let (ast, errors) = genc_grammar::parse(spec);
    assert!(errors.is_empty(), "{errors:?}");
    let c = check::check(&ast, &[]);
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    let names: Vec<&str> = c.table.params.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["G.weight0", "G.conv_transpose2d0.bias"]);
}
