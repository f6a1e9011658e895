//! Training on real Fashion-MNIST on the device (lavapipe in CI), a few hundred images and a
//! handful of steps: the VAE's negative ELBO falls, and WGAN-GP's critic step (a second-order
//! gradient penalty) runs and stays finite.

mod common;

use common::{checked, device};

use genc_compiler::plan;
use genc_runtime::data::{Dataset, Split};
use genc_runtime::device::DeviceTensor;
use genc_runtime::train::Trainer;

/// Trains `name` for `steps` steps at `batch` on the first 512 training images scaled to
/// `range`; returns each step's first metric.
fn train(name: &str, batch: usize, steps: usize, range: (f32, f32)) -> Vec<f64> {
    let data = Dataset::fashion_mnist(Split::Train, None).unwrap_or_else(|e| panic!("{e}")).limit(512);
    let c = checked(name);
    let (program, _) = plan::plan(&c, Some(batch as u64)).unwrap_or_else(|e| panic!("{e}"));
    let d = device();
    let mut trainer = Trainer::new(d, &c, program, 7).unwrap_or_else(|e| panic!("{e}"));
    let mut cursor = 0usize;
    let mut feed = |phase: &genc_compiler::program::PhaseProgram| -> Result<Vec<DeviceTensor>, String> {
        Ok(phase
            .inputs
            .iter()
            .map(|spec| {
                let n: usize = spec.shape.iter().product();
                let per = data.image_size();
                let mut values = Vec::with_capacity(n);
                for _ in 0..n / per {
                    let img = data.image(cursor % data.len());
                    cursor += 1;
                    values.extend(img.iter().map(|&p| range.0 + (range.1 - range.0) * p));
                }
                DeviceTensor::from_f32(d, spec.dtype, &spec.shape, &values).unwrap_or_else(|e| panic!("{e}"))
            })
            .collect())
    };
    (0..steps)
        .map(|_| {
            let report = trainer.train_step(d, &mut feed).unwrap_or_else(|e| panic!("{name}: {e}"));
            report.metrics.first().map_or(f64::NAN, |m| m.1)
        })
        .collect()
}

#[test]
fn vae_negative_elbo_falls() {
    let losses = train("vae", 32, 40, (0.0, 1.0));
    let first: f64 = losses[..5].iter().sum::<f64>() / 5.0;
    let last: f64 = losses[35..].iter().sum::<f64>() / 5.0;
    eprintln!("vae loss: first steps {first:.1}, last steps {last:.1}");
    assert!(losses.iter().all(|l| l.is_finite()));
    assert!(last < 0.8 * first, "the negative ELBO should fall: {first} -> {last}");
}

#[test]
fn wgan_gp_trains_with_its_second_order_penalty() {
    let losses = train("wgan_gp", 8, 1, (-1.0, 1.0));
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
}
