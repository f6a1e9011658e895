//! `upsample(x, mode: "bicubic")` on the reference interpreter: against PyTorch's
//! `interpolate(mode="bicubic", align_corners=False)` at a few positions (values printed by
//! PyTorch 2.15 for the same input), against the definition written out per output pixel, and
//! a constant image staying constant.

#![allow(clippy::unwrap_used)]

use genc_compiler::check::{self, UnitKind};
use genc_compiler::interp::{self, Leaves, Value};

const SPEC: &str = r#"
dims B, C = 1, H = 4, W = 5

net Up(x: [B, C, H, W]) -> [B, C, 3 * H, 3 * W] = upsample(x, scale: 3, mode: "bicubic")
"#;

fn upsampled(x: &Value) -> Value {
    let (ast, errors) = genc_grammar::parse(SPEC);
    assert!(errors.is_empty(), "{errors:?}");
    let c = check::check(&ast, &[]);
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    let unit = c.units.iter().find(|u| u.kind == UnitKind::Net && u.name == "Up").unwrap();
    let graph = unit.graph.bind_dims(&|d| (d == "B").then_some(x.shape[0] as i64)).unwrap();
    let inputs = [x.clone()];
    let leaves = Leaves { seed: 1, inputs: &inputs, params: &[], buffers: &[] };
    interp::eval_outputs(&graph, &leaves).unwrap().remove(0)
}

fn input() -> Value {
    let data: Vec<f64> = (0..40).map(|i| ((i * 7 + 3) % 11) as f64 / 5.0 - 1.0).collect();
    Value::f32(&[2, 1, 4, 5], &data).unwrap()
}

/// The cubic convolution kernel, a = -0.75.
fn cubic(d: f64) -> f64 {
    let (a, d) = (-0.75, d.abs());
    if d <= 1.0 {
        (a + 2.0) * d * d * d - (a + 3.0) * d * d + 1.0
    } else if d < 2.0 {
        a * d * d * d - 5.0 * a * d * d + 8.0 * a * d - 4.0 * a
    } else {
        0.0
    }
}

/// Output pixel (b, oy, ox) by the definition: 4x4 taps around the half-pixel source
/// position, clamped at the borders.
fn by_definition(x: &Value, b: usize, oy: usize, ox: usize) -> f64 {
    let (h, w) = (x.shape[2] as i64, x.shape[3] as i64);
    let (sy, sx) = ((oy as f64 + 0.5) / 3.0 - 0.5, (ox as f64 + 0.5) / 3.0 - 0.5);
    let (iy, ix) = (sy.floor(), sx.floor());
    let mut total = 0.0;
    for ky in -1..=2i64 {
        for kx in -1..=2i64 {
            let wy = cubic(sy - (iy + ky as f64));
            let wx = cubic(sx - (ix + kx as f64));
            let (y, xx) = ((iy as i64 + ky).clamp(0, h - 1), (ix as i64 + kx).clamp(0, w - 1));
            total += wy * wx * x.data[b * (h * w) as usize + (y * w + xx) as usize];
        }
    }
    total
}

#[test]
fn matches_pytorch_at_sampled_positions() {
    let y = upsampled(&input());
    assert_eq!(y.shape, [2, 1, 12, 15]);
    let torch =
        [(0, -0.627161), (7, 0.155556), (33, 0.200343), (100, 0.051852), (250, -0.8), (359, -1.116049)];
    for (k, want) in torch {
        assert!((y.data[k] - want).abs() < 1e-5, "element {k}: {} where PyTorch gives {want}", y.data[k]);
    }
}

#[test]
fn matches_the_definition_everywhere() {
    let x = input();
    let y = upsampled(&x);
    for b in 0..2 {
        for oy in 0..12 {
            for ox in 0..15 {
                let (got, want) = (y.data[b * 180 + oy * 15 + ox], by_definition(&x, b, oy, ox));
                assert!((got - want).abs() < 1e-9, "({b}, {oy}, {ox}): {got}, by definition {want}");
            }
        }
    }
}

#[test]
fn a_constant_image_stays_constant() {
    let y = upsampled(&Value::f32(&[1, 1, 4, 5], &[0.25; 20]).unwrap());
    assert!(y.data.iter().all(|v| (v - 0.25).abs() < 1e-12), "{:?}", y.data);
}
