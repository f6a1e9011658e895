//! `genc eval RUN_DIR` (samples drawn from the run's sampler) or `genc eval --images F.npy`:
//! how close a set of generated 28x28 grayscale images is to
//! Fashion-MNIST's test set, through genc's own classifier (`specs/fmnist_classifier.gen`,
//! weights in `assets/`, both built into the binary): the Fréchet distance between Gaussians
//! fitted to the classifier's 128 penultimate features (FID's formula with this network, not
//! Inception), KID, the classifier score (the Inception-score formula), and the class
//! histogram with the modes it covers.

use std::path::{Path, PathBuf};

use genc_compiler::check::{self, SamplerCall, UnitKind};
use genc_compiler::prim::DType;
use genc_compiler::sampler::plan_sampler;
use genc_runtime::checkpoint;
use genc_runtime::data::{Dataset, Split};
use genc_runtime::device::{Device, DeviceChoice, DeviceTensor};
use genc_runtime::metrics::{self, Gaussian};
use genc_runtime::sample::LoadedSampler;

use super::sample::{check_weights, upload_weights};
use super::{Status, fail};
use crate::report::Reporter;

const CLASSIFIER_SPEC: &str = include_str!("../../specs/fmnist_classifier.gen");
const CLASSIFIER_WEIGHTS: &[u8] = include_bytes!("../../assets/fmnist_classifier.safetensors");
/// Features, then class probabilities, per image (the spec's `classify` sampler).
const FEATURES: usize = 128;
const CLASSES: usize = 10;
/// Images per classifier run.
const BATCH: usize = 500;

pub struct Args {
    /// A run folder to draw samples from.
    pub run: Option<PathBuf>,
    /// How many samples to draw from the run.
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
}

pub fn run(args: &Args, reporter: &Reporter) -> Status {
    match evaluate(args, reporter) {
        Ok(()) => Status::Ok,
        Err(status) => status,
    }
}

/// The classifier, loaded on a device for batches of [`BATCH`] images.
struct Classifier {
    sampler: LoadedSampler,
    params: Vec<DeviceTensor>,
    buffers: Vec<DeviceTensor>,
}

impl Classifier {
    fn load(device: &Device) -> Result<Classifier, String> {
        let (ast, errors) = genc_grammar::parse(CLASSIFIER_SPEC);
        if !errors.is_empty() {
            return Err("the built-in classifier spec does not parse (a bug in genc)".into());
        }
        let call = SamplerCall { name: "classify".into(), n: BATCH as i64 };
        let checked = check::check_call(&ast, &[], &call);
        let unit = checked
            .units
            .iter()
            .find(|u| u.kind == UnitKind::Sampler && u.name == "classify")
            .ok_or("the built-in classifier has no `classify` sampler (a bug in genc)")?;
        let program = plan_sampler(&checked, unit, &|_| Some(BATCH as i64)).map_err(|e| e.to_string())?;
        let ck =
            checkpoint::from_bytes(Path::new("assets/fmnist_classifier.safetensors"), CLASSIFIER_WEIGHTS)
                .map_err(|e| e.to_string())?;
        check_weights(&program, &ck).map_err(|e| e.to_string())?;
        let (params, buffers) = upload_weights(device, &program, &ck).map_err(|e| e.to_string())?;
        let sampler = LoadedSampler::load(device, &program).map_err(|e| e.to_string())?;
        Ok(Classifier { sampler, params, buffers })
    }

    /// Features `[n, 128]` and class probabilities `[n, 10]` of `n` images in [0, 1]; the last
    /// batch is padded with blank images (batch norm runs on its running statistics, so the
    /// padding changes no other image's result) and the padding dropped.
    fn classify(&self, device: &Device, images: &[f32]) -> Result<(Vec<f32>, Vec<f32>), String> {
        const PIXELS: usize = 28 * 28;
        let n = images.len() / PIXELS;
        let (mut features, mut probs) = (Vec::with_capacity(n * FEATURES), Vec::with_capacity(n * CLASSES));
        for chunk in images.chunks(BATCH * PIXELS) {
            let mut batch = chunk.to_vec();
            batch.resize(BATCH * PIXELS, 0.0);
            let x = DeviceTensor::from_f32(device, DType::F32, &[BATCH, 1, 28, 28], &batch)
                .map_err(|e| e.to_string())?;
            let out = self
                .sampler
                .run(device, &self.params, &self.buffers, vec![x], 0)
                .map_err(|e| e.to_string())?;
            let values = out
                .first()
                .ok_or("the classifier gave no output")?
                .1
                .to_f32(device)
                .map_err(|e| e.to_string())?;
            for row in values.chunks_exact(FEATURES + CLASSES).take(chunk.len() / PIXELS) {
                features.extend_from_slice(&row[..FEATURES]);
                probs.extend_from_slice(&row[FEATURES..]);
            }
        }
        Ok((features, probs))
    }
}

/// The metrics of one image set against the reference.
#[derive(Debug, serde::Serialize)]
struct Report {
    images: usize,
    reference_images: usize,
    frechet_distance: f64,
    kid: f64,
    kid_std: f64,
    classifier_score: f64,
    reference_classifier_score: f64,
    class_histogram: Vec<usize>,
    modes_covered: usize,
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
                "`{}` draws images of shape {:?}; genc's classifier reads 28x28 grayscale images",
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
    let (mut images, shape, (lo, hi)) = match (&args.run, &args.images) {
        (Some(run), None) => draw(run, args, reporter)?,
        (None, Some(path)) => {
            let bytes =
                std::fs::read(path).map_err(|e| fail(format!("cannot read `{}`: {e}", path.display())))?;
            let (images, shape) = genc_runtime::npy::decode_f32(&bytes)
                .map_err(|e| fail(format!("`{}`: {e}", path.display())))?;
            if shape.len() != 4 || shape[1..] != [1, 28, 28] || shape[0] < 2 {
                return Err(fail(format!(
                    "`{}` holds an array of shape {shape:?}; the classifier reads at least two 28x28 grayscale \
                     images [N, 1, 28, 28] (write them with `genc sample RUN --n 10000 --out samples.npy`)",
                    path.display()
                )));
            }
            (images, shape, args.range)
        }
        _ => return Err(fail("give a run folder (`genc eval runs/dcgan`) or `--images F.npy`, not both")),
    };
    if hi.partial_cmp(&lo) != Some(std::cmp::Ordering::Greater) {
        return Err(fail(format!("the range [{lo}, {hi}] is empty: give `--range LO,HI` with LO < HI")));
    }
    images.iter_mut().for_each(|v| *v = (*v - lo) / (hi - lo));
    let device = Device::open(args.device).map_err(|e| {
        reporter.emit(&e, "device", None);
        Status::Diagnostics
    })?;
    let mut test = Dataset::fashion_mnist(Split::Test, None).map_err(|e| {
        reporter.emit(&e, "data", None);
        Status::Usage
    })?;
    if let Some(n) = args.reference {
        test = test.limit(n.max(2));
    }
    let classifier = Classifier::load(&device).map_err(fail)?;
    eprintln!(
        "classifying {} images and the {} test images on {}",
        shape[0],
        test.len(),
        device.info().adapter.name
    );
    let (f_gen, p_gen) = classifier.classify(&device, &images).map_err(fail)?;
    let (f_ref, p_ref) = classifier.classify(&device, &test.images).map_err(fail)?;
    let fit = |f: &[f32]| Gaussian::fit(f, FEATURES).ok_or_else(|| fail("too few images to fit a Gaussian"));
    let (g_gen, g_ref) = (fit(&f_gen)?, fit(&f_ref)?);
    let frechet = metrics::frechet_distance(&g_gen, &g_ref).ok_or_else(|| fail("feature sizes differ"))?;
    let (kid, kid_std) = metrics::kid(&f_gen, &f_ref, FEATURES, args.kid_subsets, args.kid_size, 0)
        .ok_or_else(|| fail("too few images for KID's subsets"))?;
    let histogram = metrics::class_histogram(&p_gen, CLASSES);
    let report = Report {
        images: shape[0],
        reference_images: test.len(),
        frechet_distance: frechet,
        kid,
        kid_std,
        classifier_score: metrics::classifier_score(&p_gen, CLASSES).unwrap_or(f64::NAN),
        reference_classifier_score: metrics::classifier_score(&p_ref, CLASSES).unwrap_or(f64::NAN),
        modes_covered: metrics::modes_covered(&histogram),
        class_histogram: histogram,
    };
    if args.json {
        let text = serde_json::to_string_pretty(&report).map_err(|e| fail(e.to_string()))?;
        println!("{text}");
    } else {
        println!("| metric (genc's Fashion-MNIST classifier) | value |");
        println!("| --- | --- |");
        println!("| images | {} (reference: {} test images) |", report.images, report.reference_images);
        println!("| Fréchet distance (FID formula) | {:.3} |", report.frechet_distance);
        println!("| KID | {:.5} ± {:.5} |", report.kid, report.kid_std);
        println!(
            "| classifier score | {:.3} (test set: {:.3}) |",
            report.classifier_score, report.reference_classifier_score
        );
        println!("| modes covered | {} of {CLASSES} |", report.modes_covered);
        println!("| class histogram | {:?} |", report.class_histogram);
    }
    Ok(())
}
