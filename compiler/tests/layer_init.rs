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
