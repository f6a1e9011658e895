//! genc's Fashion-MNIST classifier (`specs/fmnist_classifier.gen`, weights in `assets/`, both
//! built into the binary) loaded on a device: the penultimate features and class
//! probabilities the sample metrics compare.

use std::path::Path;

use genc_compiler::check::{self, SamplerCall, UnitKind};
use genc_compiler::prim::DType;
use genc_compiler::sampler::plan_sampler;
use genc_runtime::checkpoint;
use genc_runtime::device::{Device, DeviceTensor};
use genc_runtime::sample::LoadedSampler;

use crate::commands::sample::{check_weights, upload_weights};

const CLASSIFIER_SPEC: &str = include_str!("../../../specs/fmnist_classifier.gen");
const CLASSIFIER_WEIGHTS: &[u8] = include_bytes!("../../../assets/fmnist_classifier.safetensors");
/// Features, then class probabilities, per image (the spec's `classify` sampler).
pub const FEATURES: usize = 128;
pub const CLASSES: usize = 10;
/// Images per classifier run.
pub const BATCH: usize = 500;

/// The classifier, loaded on a device for batches of [`BATCH`] images.
pub struct Classifier {
    sampler: LoadedSampler,
    params: Vec<DeviceTensor>,
    buffers: Vec<DeviceTensor>,
}

impl Classifier {
    pub fn load(device: &Device) -> Result<Classifier, String> {
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
    pub fn classify(&self, device: &Device, images: &[f32]) -> Result<(Vec<f32>, Vec<f32>), String> {
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
