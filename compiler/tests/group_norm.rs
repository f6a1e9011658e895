//! `group_norm` on the reference interpreter against PyTorch's `GroupNorm` computed directly:
//! each sample's channels split into groups, each group normalised over its channels and
//! positions (biased variance, eps 1e-5), then a per-channel scale and shift.

#![allow(clippy::unwrap_used)]

use genc_compiler::check::{self, UnitKind};
use genc_compiler::interp::{self, Leaves, Value};

const SPEC: &str = r#"
dims B, C = 6, H = 3, W = 2

net N(x: [B, C, H, W]) -> [B, C, H, W] = x |> group_norm(3)
"#;

/// Samples, channels, groups, positions per channel.
const B: usize = 2;
const C: usize = 6;
const G: usize = 3;
const P: usize = 6;

#[test]
fn each_group_is_normalised_then_scaled_per_channel() {
    let (ast, errors) = genc_grammar::parse(SPEC);
    assert!(errors.is_empty(), "{errors:?}");
    let c = check::check(&ast, &[]);
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    let names: Vec<&str> = c.table.params.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["N.group_norm0.weight", "N.group_norm0.bias"]);
    let unit = c.units.iter().find(|u| u.kind == UnitKind::Net && u.name == "N").unwrap();
    let graph = unit.graph.bind_dims(&|d| (d == "B").then_some(B as i64)).unwrap();
    let x: Vec<f64> = (0..B * C * P).map(|i| ((i * 37 % 23) as f64 - 11.0) / 4.0).collect();
    let (scale, shift): (Vec<f64>, Vec<f64>) =
        (0..C).map(|k| (0.5 + k as f64 * 0.25, k as f64 * 0.1 - 0.2)).unzip();
    let inputs = [Value::f32(&[B, C, 3, 2], &x).unwrap()];
    let params = [Value::f32(&[C], &scale).unwrap(), Value::f32(&[C], &shift).unwrap()];
    let leaves = Leaves { seed: 1, inputs: &inputs, params: &params, buffers: &[] };
    let got = &interp::eval_outputs(&graph, &leaves).unwrap()[0];
    let per_group = C / G * P;
    for b in 0..B {
        for g in 0..G {
            let start = (b * C + g * C / G) * P;
            let group = &inputs[0].data[start..start + per_group];
            let mean = group.iter().sum::<f64>() / per_group as f64;
            let var = group.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / per_group as f64;
            for (k, v) in group.iter().enumerate() {
                let channel = g * C / G + k / P;
                let want = (v - mean) / (var + 1e-5).sqrt() * scale[channel] + shift[channel];
                let have = got.data[start + k];
                assert!(
                    (want - have).abs() < 1e-5,
                    "sample {b}, group {g}, element {k}: want {want}, have {have}"
                );
            }
        }
    }
}

#[test]
fn groups_must_divide_the_channels() {
    let (ast, _) = genc_grammar::parse(&SPEC.replace("group_norm(3)", "group_norm(4)"));
    let c = check::check(&ast, &[]);
    assert!(
        c.errors.iter().any(|e| e.message.contains("4 groups do not divide 6 channels")),
        "{:?}",
        c.errors
    );
}
