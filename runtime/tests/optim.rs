//! Each optimizer's fused update against a plain host implementation of PyTorch's rule, over
//! three steps with changing gradients, weight decay and gradient clipping.

mod common;

use common::{device, on_every_device};

use std::collections::BTreeMap;

use genc_compiler::check::{OptimizerSpec, OptionValue};
use genc_compiler::optimizer::OptimizerConfig;
use genc_compiler::prim::DType;
use genc_runtime::device::DeviceTensor;
use genc_runtime::optim::Optimizer;

/// `kind(options)` as a spec's train block would give it, through the optimizer table.
fn spec(kind: &str, options: &[(&str, OptionValue)]) -> OptimizerSpec {
    let options: BTreeMap<String, OptionValue> =
        options.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    let config = OptimizerConfig::from_options(kind, &options).unwrap_or_else(|p| panic!("{kind}: {p:?}"));
    OptimizerSpec { name: "opt".into(), config, params: vec![0], schedule: None }
}

/// PyTorch's rules on the host, in f64.
fn reference(kind: &str, lr: f64, wd: f64, clip: Option<f64>, p: &mut [f64], grads: &[Vec<f64>]) {
    let n = p.len();
    let (mut m, mut v, mut buf) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    for (t, g0) in grads.iter().enumerate() {
        let t = t as i32 + 1;
        let norm = g0.iter().map(|x| x * x).sum::<f64>().sqrt();
        let scale = clip.map_or(1.0, |c| if norm > c { c / (norm + 1e-6) } else { 1.0 });
        for i in 0..n {
            let mut g = g0[i] * scale;
            match kind {
                "sgd" => {
                    g += wd * p[i];
                    buf[i] = 0.9 * buf[i] + g;
                    p[i] -= lr * buf[i];
                }
                "adam" | "adamw" => {
                    if kind == "adam" {
                        g += wd * p[i];
                    } else {
                        p[i] *= 1.0 - lr * wd;
                    }
                    m[i] = 0.5 * m[i] + 0.5 * g;
                    v[i] = 0.999 * v[i] + 0.001 * g * g;
                    let bc1 = 1.0 - 0.5f64.powi(t);
                    let bc2 = 1.0 - 0.999f64.powi(t);
                    p[i] -= lr / bc1 * m[i] / (v[i].sqrt() / bc2.sqrt() + 1e-8);
                }
                "rmsprop" => {
                    g += wd * p[i];
                    v[i] = 0.99 * v[i] + 0.01 * g * g;
                    p[i] -= lr * g / (v[i].sqrt() + 1e-8);
                }
                _ => {
                    g += wd * p[i];
                    v[i] += g * g;
                    p[i] -= lr * g / (v[i].sqrt() + 1e-10);
                }
            }
        }
    }
}

#[test]
fn every_optimizer_matches_the_reference_rule() {
    on_every_device(|| {
        let p0: Vec<f64> = (0..7).map(|i| (i as f64 - 3.0) * 0.25).collect();
        let grads: Vec<Vec<f64>> =
            (0..3).map(|s| (0..7).map(|i| ((i * 7 + s * 3) % 5) as f64 * 0.3 - 0.6).collect()).collect();
        for kind in ["sgd", "adam", "adamw", "rmsprop", "adagrad"] {
            for (wd, clip) in [(0.0, None), (0.1, Some(0.5))] {
                let mut options =
                    vec![("lr", OptionValue::Number(0.05)), ("weight_decay", OptionValue::Number(wd))];
                if kind == "sgd" {
                    options.push(("momentum", OptionValue::Number(0.9)));
                }
                if kind.starts_with("adam") {
                    options.push(("betas", OptionValue::List(vec![0.5, 0.999])));
                }
                if let Some(c) = clip {
                    options.push(("grad_clip", OptionValue::Number(c)));
                }
                let d = device();
                let mut opt =
                    Optimizer::new(d, &spec(kind, &options), &[vec![7]], 3).unwrap_or_else(|e| panic!("{e}"));
                let to32 = |x: &[f64]| x.iter().map(|&v| v as f32).collect::<Vec<_>>();
                let mut params = vec![
                    DeviceTensor::from_f32(d, DType::F32, &[7], &to32(&p0)).unwrap_or_else(|e| panic!("{e}")),
                ];
                for g in &grads {
                    let gt = DeviceTensor::from_f32(d, DType::F32, &[7], &to32(g))
                        .unwrap_or_else(|e| panic!("{e}"));
                    opt.step(d, &mut params, &[gt], false).unwrap_or_else(|e| panic!("{e}"));
                }
                let got = params[0].to_f64(d).unwrap_or_else(|e| panic!("{e}"));
                let mut want = p0.clone();
                reference(kind, 0.05, wd, clip, &mut want, &grads);
                for (a, b) in got.iter().zip(&want) {
                    assert!((a - b).abs() < 1e-5, "{kind} wd={wd} clip={clip:?}: device {a}, reference {b}");
                }
            }
        }
    });
}
