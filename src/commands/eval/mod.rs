//! `genc eval RUN_DIR` or `genc eval --images F.npy`: how good a trained model is.
//!
//! For a run: the spec's own `eval` entries (test NLL, reconstruction error, PSNR/SSIM) on its
//! last checkpoint over the whole test set ([`spec_evals`]), then the sample metrics of `--n`
//! draws from its sampler. The sample metrics say how close generated 28x28 grayscale images
//! are to Fashion-MNIST's test set, through genc's own [`classifier`]: the Fréchet distance
//! between Gaussians fitted to its 128 penultimate features (FID's formula with this network,
//! not Inception), KID, the classifier score (the Inception-score formula), and the class
//! histogram with the modes it covers.

mod classifier;
mod spec_evals;

use std::path::{Path, PathBuf};

use genc_runtime::data::{Dataset, Split};
use genc_runtime::device::{Device, DeviceChoice};
use genc_runtime::metrics::{self, Gaussian};

use super::{Status, fail};
use crate::report::Reporter;
use classifier::{BATCH, CLASSES, Classifier, FEATURES};
use spec_evals::SpecEval;

pub struct Args {
    /// A run folder to draw samples from.
    pub run: Option<PathBuf>,
    /// How many samples to draw from the run (0: the spec's evals only).
    pub n: usize,
    /// The run's sampler (default: its first).
    pub sampler: Option<String>,
    pub seed: Option<u64>,
    /// An array of images instead of a run.
    pub images: Option<PathBuf>,
    /// The value range of the images (mapped to the classifier's [0, 1]); a run's own range
    /// when sampling from a run.
    pub range: (f32, f32),
    pub device: DeviceChoice,
    /// KID's subsets and their size.
    pub kid_subsets: usize,
    pub kid_size: usize,
    /// Use the first this many test images as the reference (default: all 10,000).
    pub reference: Option<usize>,
    pub json: bool,
    /// Sample `k` was asked for class `k % 10`: report how often the classifier agrees.
    pub conditional: bool,
}

pub fn run(args: &Args, reporter: &Reporter) -> Status {
    match evaluate(args, reporter) {
        Ok(()) => Status::Ok,
        Err(status) => status,
    }
}

/// The sample metrics of one image set against the reference.
#[derive(Debug, serde::Serialize)]
struct SampleReport {
    images: usize,
    reference_images: usize,
    frechet_distance: f64,
    kid: f64,
    kid_std: f64,
    classifier_score: f64,
    reference_classifier_score: f64,
    class_histogram: Vec<usize>,
    modes_covered: usize,
    /// With `--conditional`: the fraction of samples the classifier puts in their class.
    #[serde(skip_serializing_if = "Option::is_none")]
    class_agreement: Option<f64>,
}

/// Everything `genc eval` measured: the run's checkpoint step and spec evals (for a run), and
/// the sample metrics (unless `--n 0`), flattened into one JSON object.
#[derive(Debug, serde::Serialize)]
struct Report {
    #[serde(skip_serializing_if = "Option::is_none")]
    step: Option<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    evals: Vec<SpecEval>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    samples: Option<SampleReport>,
}

/// Images as values, their shape `[N, 1, 28, 28]` and their value range.
type Images = (Vec<f32>, Vec<usize>, (f32, f32));

/// Draws `args.n` samples from the run's sampler, in runs of at most [`BATCH`] with seeds
/// `seed, seed + 1, ..`; the images, their shape and the run's value range.
fn draw(run: &Path, args: &Args, reporter: &Reporter) -> Result<Images, Status> {
    let per = args.n.clamp(2, BATCH);
    let sample_args = super::sample::Args {
        run: run.to_path_buf(),
        n: per,
        sampler: args.sampler.clone(),
        out: None,
        format: None,
        seed: args.seed,
        spec: None,
    };
    let prepared = super::sample::prepare(&sample_args, reporter)?;
    eprintln!(
        "drawing {} samples of `{}` from step {} of {} on {}",
        args.n,
        prepared.label,
        prepared.step,
        run.display(),
        prepared.device.info().adapter.name
    );
    let mut images = Vec::with_capacity(args.n * 784);
    let mut shape = vec![0, 1, 28, 28];
    for k in 0.. {
        if images.len() >= args.n * 784 {
            break;
        }
        let (pixels, s) = prepared.draw(prepared.seed.wrapping_add(k), reporter)?;
        if s[1..] != [1, 28, 28] {
            return Err(fail(format!(
                "`{}` draws images of shape {:?}; genc's classifier reads 28x28 grayscale images \
                 (`--n 0` reports the spec's evals alone; `--sampler` picks another sampler)",
                prepared.label,
                &s[1..]
            )));
        }
        images.extend_from_slice(&pixels);
    }
    images.truncate(args.n.max(2) * 784);
    shape[0] = images.len() / 784;
    Ok((images, shape, prepared.range))
}

fn evaluate(args: &Args, reporter: &Reporter) -> Result<(), Status> {
    let device = || {
        Device::open(args.device).map_err(|e| {
            reporter.emit(&e, "device", None);
            Status::Diagnostics
        })
    };
    let report = match (&args.run, &args.images) {
        (Some(run), None) => {
            let device = device()?;
            let (evals, step) = spec_evals::run(run, &device, reporter)?;
            let samples = if args.n == 0 {
                None
            } else {
                let images = draw(run, args, reporter)?;
                Some(score(&images, args, &device, reporter)?)
            };
            Report { step: Some(step), evals, samples }
        }
        (None, Some(path)) => {
            let images = read_images(path, args.range)?;
            Report {
                step: None,
                evals: Vec::new(),
                samples: Some(score(&images, args, &device()?, reporter)?),
            }
        }
        _ => return Err(fail("give a run folder (`genc eval runs/dcgan`) or `--images F.npy`, not both")),
    };
    print(&report, args.json)
}

/// An `.npy` array of at least two 28x28 grayscale images.
fn read_images(path: &Path, range: (f32, f32)) -> Result<Images, Status> {
    let bytes = std::fs::read(path).map_err(|e| fail(format!("cannot read `{}`: {e}", path.display())))?;
    let (images, shape) =
        genc_runtime::npy::decode_f32(&bytes).map_err(|e| fail(format!("`{}`: {e}", path.display())))?;
    if shape.len() != 4 || shape[1..] != [1, 28, 28] || shape[0] < 2 {
        return Err(fail(format!(
            "`{}` holds an array of shape {shape:?}; the classifier reads at least two 28x28 grayscale \
             images [N, 1, 28, 28] (write them with `genc sample RUN --n 10000 --out samples.npy`)",
            path.display()
        )));
    }
    Ok((images, shape, range))
}

/// The sample metrics of `images` against the test set.
fn score(images: &Images, args: &Args, device: &Device, reporter: &Reporter) -> Result<SampleReport, Status> {
    let (images, shape, (lo, hi)) = images;
    let (lo, hi) = (*lo, *hi);
    if hi.partial_cmp(&lo) != Some(std::cmp::Ordering::Greater) {
        return Err(fail(format!("the range [{lo}, {hi}] is empty: give `--range LO,HI` with LO < HI")));
    }
    let images: Vec<f32> = images.iter().map(|v| (v - lo) / (hi - lo)).collect();
    let mut test = Dataset::fashion_mnist(Split::Test, None).map_err(|e| {
        reporter.emit(&e, "data", None);
        Status::Usage
    })?;
    if let Some(n) = args.reference {
        test = test.limit(n.max(2));
    }
    let classifier = Classifier::load(device).map_err(fail)?;
    eprintln!(
        "classifying {} images and the {} test images on {}",
        shape[0],
        test.len(),
        device.info().adapter.name
    );
    let (f_gen, p_gen) = classifier.classify(device, &images).map_err(fail)?;
    let (f_ref, p_ref) = classifier.classify(device, &test.images).map_err(fail)?;
    let fit = |f: &[f32]| Gaussian::fit(f, FEATURES).ok_or_else(|| fail("too few images to fit a Gaussian"));
    let (g_gen, g_ref) = (fit(&f_gen)?, fit(&f_ref)?);
    let frechet = metrics::frechet_distance(&g_gen, &g_ref).ok_or_else(|| fail("feature sizes differ"))?;
    let (kid, kid_std) = metrics::kid(&f_gen, &f_ref, FEATURES, args.kid_subsets, args.kid_size, 0)
        .ok_or_else(|| fail("too few images for KID's subsets"))?;
    let histogram = metrics::class_histogram(&p_gen, CLASSES);
    Ok(SampleReport {
        images: shape[0],
        reference_images: test.len(),
        frechet_distance: frechet,
        kid,
        kid_std,
        classifier_score: metrics::classifier_score(&p_gen, CLASSES).unwrap_or(f64::NAN),
        reference_classifier_score: metrics::classifier_score(&p_ref, CLASSES).unwrap_or(f64::NAN),
        modes_covered: metrics::modes_covered(&histogram),
        class_histogram: histogram,
        class_agreement: if args.conditional {
            metrics::cyclic_class_agreement(&p_gen, CLASSES)
        } else {
            None
        },
    })
}

fn print(report: &Report, json: bool) -> Result<(), Status> {
    if json {
        let text = serde_json::to_string_pretty(report).map_err(|e| fail(e.to_string()))?;
        println!("{text}");
        return Ok(());
    }
    if !report.evals.is_empty() {
        let step = report.step.unwrap_or(0);
        println!("| the spec's evals (test set, step {step}) | value | examples |");
        println!("| --- | --- | --- |");
        for e in &report.evals {
            println!("| {} | {:.5} | {} |", e.name, e.value, e.examples);
        }
        println!();
    }
    if let Some(r) = &report.samples {
        println!("| metric (genc's Fashion-MNIST classifier) | value |");
        println!("| --- | --- |");
        println!("| images | {} (reference: {} test images) |", r.images, r.reference_images);
        println!("| Fréchet distance (FID formula) | {:.3} |", r.frechet_distance);
        println!("| KID | {:.5} ± {:.5} |", r.kid, r.kid_std);
        println!(
            "| classifier score | {:.3} (test set: {:.3}) |",
            r.classifier_score, r.reference_classifier_score
        );
        println!("| modes covered | {} of {CLASSES} |", r.modes_covered);
        println!("| class histogram | {:?} |", r.class_histogram);
        if let Some(a) = r.class_agreement {
            println!("| class agreement (sample k asked for class k mod 10) | {:.1} % |", 100.0 * a);
        }
    }
    if report.evals.is_empty() && report.samples.is_none() {
        println!("nothing to report: the spec has no `eval` entries and `--n 0` draws no samples");
    }
    Ok(())
}
