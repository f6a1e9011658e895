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

/// `init KIND = RULE` sets one tensor of every layer of a kind, with `torch.nn.init`'s
/// argument order; a layer's own `init:` and a net's `init NET(std:)` are more specific and
/// win, wherever the default is written.
#[test]
fn a_layer_kind_default_reaches_every_layer_of_the_kind() {
    let spec = r#"
dims B, C = 1, H = 28, W = 28, N = 8

net G(x: [B, C, H, W]) -> [B, N] {
    let h = x |> conv2d(N, kernel: 3, pad: 1) |> relu |> conv2d(N, kernel: 3, pad: 1, init: "zeros")
    return h |> flatten |> linear(N) |> linear(N)
}

net D(x: [B, N]) -> [B, 1] {
    return x |> linear(1)
}

loss l(x: [B, C, H, W]) = mean(D(G(x)))

train {
    data x = fashion_mnist(split: "train", range: [0, 1])
    batch B = 4
    steps 1
    optimizer opt = adam([G, D], lr: 1e-3)
    init D(std: 0.05)
    init conv2d = normal(0, 0.02)
    init linear = uniform(-0.1, 0.2)
    init linear.bias = ones
    step {
        minimize l(x) with opt
    }
}
"#;
    let (ast, errors) = genc_grammar::parse(spec);
    assert!(errors.is_empty(), "{errors:?}");
    let c = check::check(&ast, &[]);
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    let init = |name: &str| c.table.params.iter().find(|p| p.name == name).unwrap().init.clone();
    assert_eq!(init("G.conv2d0.weight"), Init::Normal { mean: 0.0, std: 0.02 });
    assert_eq!(init("G.conv2d1.weight"), Init::Zeros, "its own init: wins");
    assert!(matches!(init("G.conv2d0.bias"), Init::Uniform { .. }), "biases keep PyTorch's default");
    assert_eq!(init("G.linear0.weight"), Init::UniformRange { lo: -0.1, hi: 0.2 });
    assert_eq!(init("G.linear1.bias"), Init::Ones);
    // D's own `init D(std:)` wins over the kind defaults, written before or after them.
    assert_eq!(init("D.linear0.weight"), Init::Normal { mean: 0.0, std: 0.05 });
    assert_eq!(init("D.linear0.bias"), Init::Zeros);
}
