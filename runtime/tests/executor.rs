//! Every training phase of the specs that fit a test budget, executed as a fused Program on
//! the device (lavapipe in CI), equals the unfused graph on the reference interpreter: the
//! loss, every logged metric and every parameter gradient.
//!
//! Tolerance, per output tensor: |device - reference| <= 1e-4 + 2e-3 * max|reference| (1e-2 for
//! the deep specs, whose bias gradients sum thousands of f32 products). The device computes in
//! f32 (matmul sums of up to 784 products, transcendental approximations) against the
//! interpreter's f64.

mod common;

use common::{checked, device};

use genc_compiler::interp::{self, Value};
use genc_compiler::plan;
use genc_compiler::prim::DType;
use genc_compiler::program::Program;
use genc_runtime::device::DeviceTensor;
use genc_runtime::executor::LoadedPhase;
use genc_runtime::kernels::Leaves;

/// Leaves exactly representable in f32: small weights, data in (0.1, 0.9), labels in 0..3.
fn leaves(program: &Program, phase: usize) -> (Vec<Value>, Vec<Value>, Vec<Value>) {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut make = |dtype: DType, shape: &[usize], scale: f64, offset: f64| {
        let n: usize = shape.iter().product();
        let data = (0..n)
            .map(|_| match dtype {
                DType::F32 => (offset + scale * next()) as f32 as f64,
                DType::I32 => (next() * 3.0).floor(),
                DType::Bool => f64::from(u8::from(next() < 0.5)),
            })
            .collect();
        Value { dtype, shape: shape.to_vec(), data }
    };
    let inputs = program.phases[phase].inputs.iter().map(|t| make(t.dtype, &t.shape, 0.8, 0.1)).collect();
    let params = program.params.iter().map(|t| make(t.dtype, &t.shape, 0.1, -0.05)).collect();
    let buffers = program.buffers.iter().map(|t| make(t.dtype, &t.shape, 0.8, 0.1)).collect();
    (inputs, params, buffers)
}

fn upload(values: &[Value]) -> Vec<DeviceTensor> {
    values.iter().map(|v| DeviceTensor::from_value(device(), v)).collect()
}

fn device_matches_reference(name: &str) {
    device_matches_reference_within(name, 2e-3);
}

fn device_matches_reference_within(name: &str, rtol: f64) {
    let c = checked(name);
    // GENC_TEST_BATCH overrides the batch (a larger one conditions batch norm better).
    let batch = std::env::var("GENC_TEST_BATCH").ok().and_then(|b| b.parse().ok()).unwrap_or(3);
    let (program, stages) = plan::plan(&c, Some(batch)).unwrap_or_else(|e| panic!("{name}: {e}"));
    for (k, stage) in stages.iter().enumerate() {
        let (inputs, params, buffers) = leaves(&program, k);
        let host = interp::Leaves { seed: 5, inputs: &inputs, params: &params, buffers: &buffers };
        let expected = interp::eval_outputs(&stage.grad, &host).unwrap_or_else(|e| panic!("{name}: {e}"));
        let fed =
            Leaves { inputs: upload(&inputs), params: upload(&params), buffers: upload(&buffers), seed: 5 };
        let loaded =
            LoadedPhase::load(device(), &program.phases[k]).unwrap_or_else(|e| panic!("{name}: {e}"));
        let got = loaded.run(device(), &fed).unwrap_or_else(|e| panic!("{name} {}: {e}", stage.name));
        assert_eq!(expected.len(), got.len());
        for (want, (out, t)) in expected.iter().zip(&got) {
            let have = t.to_value(device()).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(want.shape, have.shape, "{name} {out}");
            let scale = want.data.iter().fold(0.0f64, |m, x| m.max(x.abs()));
            for (i, (r, d)) in want.data.iter().zip(&have.data).enumerate() {
                assert!(
                    (r - d).abs() <= 1e-4 + rtol * scale,
                    "{name} / {} / {out}[{i}]: device {d}, reference {r} (max |ref| {scale})",
                    stage.name
                );
            }
        }
    }
}

#[test]
fn autoencoders_and_vae() {
    for name in ["ae", "vae", "sparse_ae", "denoising_ae", "contractive_ae", "stacked_ae"] {
        device_matches_reference(name);
    }
}

#[test]
fn gans() {
    for name in ["gan", "cgan", "wgan", "dcgan"] {
        device_matches_reference(name);
    }
}

/// Second order on the device: the critic step differentiates the gradient penalty.
#[test]
fn wgan_gp_second_order() {
    device_matches_reference("wgan_gp");
}

/// The large specs: minutes on lavapipe against a debug-build interpreter, so not in the
/// default run (`cargo test -p genc-runtime --test executor -- --ignored`).
#[test]
#[ignore]
fn large_specs() {
    let only = std::env::var("GENC_TEST_SPEC").ok();
    for name in ["inpainting", "pix2pix", "pixelcnn", "dcgan64", "srgan", "realnvp", "pixelrnn", "ddpm"] {
        if only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        eprintln!("{name}");
        device_matches_reference_within(name, 1e-2);
    }
}
