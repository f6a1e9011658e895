//! `psnr` and `ssim` on the reference interpreter, against closed forms (constant images,
//! identical images) and against the definitions computed directly here in f64 (scikit-image's
//! `structural_similarity` defaults: uniform 7x7 windows where they fit, sample covariances).

#![allow(clippy::unwrap_used)]

use genc_compiler::check::{self, Checked, UnitKind};
use genc_compiler::interp::{self, Leaves, Value};
use genc_compiler::plan;

const BATCH: usize = 2;
const SIDE: usize = 28;

/// Each eval compares `x` with a transform of it; `x` is [B, 1, 28, 28].
fn spec(range: f64) -> String {
    format!(
        r#"
dims B, C = 1, H = 28, W = 28

net N(x: [B, C, H, W]) -> [B, C, H, W] = x |> conv2d(1, kernel: 1)

loss unused(x: [B, C, H, W]) = mean(N(x))

train {{
    data x = fashion_mnist(split: "train", range: [0, 1])
    batch B = 2
    steps 1
    optimizer opt = sgd(N, lr: 0.1)
    step {{
        minimize unused(x) with opt
    }}
    eval psnr_same every 1 steps: psnr(x, x, range: {range})
    eval psnr_scaled every 1 steps: psnr(x, 0.5 * x + 0.1, range: {range})
    eval ssim_same every 1 steps: ssim(x, x, range: {range})
    eval ssim_scaled every 1 steps: ssim(x, 0.5 * x + 0.1, range: {range})
    eval ssim_flipped every 1 steps: ssim(x, 1 - x, range: {range})
}}
"#
    )
}

fn checked(range: f64) -> Checked {
    let (ast, errors) = genc_grammar::parse(&spec(range));
    assert!(errors.is_empty(), "{errors:?}");
    let c = check::check(&ast, &[]);
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    c
}

/// The value of eval `index` on `x`.
fn eval(checked: &Checked, index: usize, x: &Value) -> f64 {
    let program = plan::plan_forward(checked, UnitKind::Eval, index, BATCH as u64).unwrap();
    let (inputs, none) = ([x.clone()], Vec::<Value>::new());
    let leaves = Leaves { seed: 1, inputs: &inputs, params: &none, buffers: &none };
    let outputs = interp::run_phase(&program, &leaves).unwrap();
    outputs.iter().find(|(n, _)| n == "out").unwrap().1.data[0]
}

fn images(values: impl Fn(usize) -> f64) -> Value {
    let data: Vec<f64> = (0..BATCH * SIDE * SIDE).map(values).collect();
    Value::f32(&[BATCH, 1, SIDE, SIDE], &data).unwrap()
}

/// A deterministic pattern in [0, 1] with structure at several scales.
fn pattern() -> Value {
    images(|i| {
        let (b, y, x) = (i / (SIDE * SIDE), i / SIDE % SIDE, i % SIDE);
        let v =
            0.5 + 0.3 * ((x as f64 * 0.7 + b as f64).sin() * (y as f64 * 0.4).cos()) + 0.02 * (i % 5) as f64;
        (v * 255.0).round() / 255.0 // f32-exact steps, as real pixels are
    })
}

fn close(got: f64, want: f64, what: &str) {
    assert!((got - want).abs() <= 1e-4 * want.abs().max(1.0), "{what}: got {got}, want {want}");
}

/// SSIM of two single-channel images as scikit-image defines it, straight from the formula.
fn ssim_direct(a: &[f64], b: &[f64], range: f64) -> f64 {
    let (k, n) = (7usize, 49.0);
    let (c1, c2) = ((0.01 * range).powi(2), (0.03 * range).powi(2));
    let mut total = 0.0;
    let positions = SIDE - k + 1;
    for y0 in 0..positions {
        for x0 in 0..positions {
            let at = |img: &[f64], y: usize, x: usize| img[(y0 + y) * SIDE + x0 + x];
            let pixels = || (0..k).flat_map(|y| (0..k).map(move |x| (y, x)));
            let ma = pixels().map(|(y, x)| at(a, y, x)).sum::<f64>() / n;
            let mb = pixels().map(|(y, x)| at(b, y, x)).sum::<f64>() / n;
            let va = pixels().map(|(y, x)| (at(a, y, x) - ma).powi(2)).sum::<f64>() / (n - 1.0);
            let vb = pixels().map(|(y, x)| (at(b, y, x) - mb).powi(2)).sum::<f64>() / (n - 1.0);
            let cov = pixels().map(|(y, x)| (at(a, y, x) - ma) * (at(b, y, x) - mb)).sum::<f64>() / (n - 1.0);
            total += (2.0 * ma * mb + c1) * (2.0 * cov + c2) / ((ma * ma + mb * mb + c1) * (va + vb + c2));
        }
    }
    total / (positions * positions) as f64
}

fn per_image(x: &Value) -> Vec<Vec<f64>> {
    x.data.chunks(SIDE * SIDE).map(<[f64]>::to_vec).collect()
}

#[test]
fn constant_images_have_closed_forms() {
    // x = 0.6 everywhere: 0.5 x + 0.1 = 0.4, a difference of 0.2.
    let c = checked(1.0);
    let x = images(|_| 0.6);
    close(eval(&c, 1, &x), 10.0 * (1.0 / 0.04f64).log10(), "psnr of a 0.2 offset");
    // Zero variances: SSIM is the luminance term (2ab + C1) / (a^2 + b^2 + C1).
    let c1 = 0.01f64.powi(2);
    close(eval(&c, 3, &x), (2.0 * 0.6 * 0.4 + c1) / (0.36 + 0.16 + c1), "ssim of 0.6 against 0.4");
}

#[test]
fn identical_images_score_the_maximum() {
    for range in [1.0, 2.0] {
        let c = checked(range);
        close(eval(&c, 0, &pattern()), 100.0, "psnr of identical images (the mse floor)");
        close(eval(&c, 2, &pattern()), 1.0, "ssim of identical images");
    }
}

#[test]
fn psnr_is_the_mean_of_each_images_psnr() {
    for range in [1.0, 2.0] {
        let x = pattern();
        let want = per_image(&x)
            .iter()
            .map(|img| {
                let mse = img.iter().map(|v| (v - (0.5 * v + 0.1)).powi(2)).sum::<f64>() / img.len() as f64;
                10.0 * (range * range / mse).log10()
            })
            .sum::<f64>()
            / BATCH as f64;
        close(eval(&checked(range), 1, &x), want, &format!("psnr, range {range}"));
    }
}

#[test]
fn ssim_matches_its_definition() {
    for range in [1.0, 2.0] {
        let c = checked(range);
        let x = pattern();
        for (index, f) in [(3, (|v| 0.5 * v + 0.1) as fn(f64) -> f64), (4, |v| 1.0 - v)] {
            let want = per_image(&x)
                .iter()
                .map(|img| ssim_direct(img, &img.iter().map(|&v| f(v)).collect::<Vec<_>>(), range))
                .sum::<f64>()
                / BATCH as f64;
            close(eval(&c, index, &x), want, &format!("ssim eval {index}, range {range}"));
        }
    }
    // An inverted image is structurally anti-correlated.
    assert!(eval(&checked(1.0), 4, &pattern()) < 0.0);
}
