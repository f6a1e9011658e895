//! Training on real Fashion-MNIST on the device (lavapipe in CI), a few hundred images and a
//! handful of steps: the VAE's negative ELBO falls, and WGAN-GP's critic step (a second-order
//! gradient penalty) runs and stays finite. Batch norm's running statistics follow the
//! batches as the reference interpreter says. DCGAN starts from its paper's initialisation.

mod common;

use std::cell::RefCell;

use common::{checked, device, on_every_device};

use genc_compiler::check::Checked;
use genc_compiler::interp::{self, Value};
use genc_compiler::plan;
use genc_compiler::prim::DType;
use genc_compiler::program::{PhaseProgram, Program, TensorSpec};
use genc_compiler::train_spec::TrainSpec;
use genc_runtime::data::{Dataset, Split};
use genc_runtime::device::DeviceTensor;
use genc_runtime::labels::FeedError;
use genc_runtime::train::Trainer;

/// A trainer for a checked spec's program on the test device.
fn new_trainer(c: &Checked, program: Program, seed: u64, steps: u64) -> Trainer {
    let spec = TrainSpec::from_checked(c).unwrap_or_else(|e| panic!("{e}"));
    Trainer::new(device(), &spec, program, seed, steps).unwrap_or_else(|e| panic!("{e}"))
}

/// A feed that fills element `i` of every input `spec` with `value(spec, i)`.
fn feed_with(
    value: impl Fn(&TensorSpec, usize) -> f32,
) -> impl FnMut(&PhaseProgram) -> Result<Vec<DeviceTensor>, FeedError> {
    move |phase: &PhaseProgram| {
        Ok(phase
            .inputs
            .iter()
            .map(|spec| {
                let values: Vec<f32> = (0..spec.shape.iter().product()).map(|i| value(spec, i)).collect();
                DeviceTensor::from_f32(device(), spec.dtype, &spec.shape, &values)
                    .unwrap_or_else(|e| panic!("{e}"))
            })
            .collect())
    }
}

/// Trains `name` for `steps` steps at `batch` on the first 512 training images scaled to
/// `range`; returns each step's first metric.
fn train(name: &str, batch: usize, steps: usize, range: (f32, f32)) -> Vec<f64> {
    let data = Dataset::fashion_mnist(Split::Train, None).unwrap_or_else(|e| panic!("{e}")).limit(512);
    let c = checked(name);
    let (program, _) = plan::plan(&c, Some(batch as u64)).unwrap_or_else(|e| panic!("{e}"));
    let d = device();
    let mut trainer = new_trainer(&c, program, 7, steps as u64);
    let mut cursor = 0usize;
    let mut feed = |phase: &genc_compiler::program::PhaseProgram| -> Result<Vec<DeviceTensor>, FeedError> {
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
    on_every_device(|| {
        let losses = train("vae", 32, 40, (0.0, 1.0));
        let first: f64 = losses[..5].iter().sum::<f64>() / 5.0;
        let last: f64 = losses[35..].iter().sum::<f64>() / 5.0;
        eprintln!("vae loss: first steps {first:.1}, last steps {last:.1}");
        assert!(losses.iter().all(|l| l.is_finite()));
        assert!(last < 0.8 * first, "the negative ELBO should fall: {first} -> {last}");
    });
}

#[test]
fn wgan_gp_trains_with_its_second_order_penalty() {
    on_every_device(|| {
        let losses = train("wgan_gp", 8, 1, (-1.0, 1.0));
        assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    });
}

/// One convolution and a batch norm, nothing random: a step is reproducible on the host.
const BATCH_NORM_SPEC: &str = r#"
dims B, C = 1, H = 28, W = 28

net E(x: [B, C, H, W]) -> [B, 4, 14, 14] {
    return x |> conv2d(4, kernel: 4, stride: 2, pad: 1) |> batch_norm |> relu
}

loss fit(x: [B, C, H, W]) = mean(E(x) ^ 2)

train {
    data x = fashion_mnist(split: "train", range: [-1, 1])
    batch B = 8
    steps 3
    optimizer opt = adam(E, lr: 1e-2)
    step {
        minimize fit(x) with opt
    }
}
"#;

/// Batch `call` for an input: deterministic values in [-1, 1], exact in f32.
fn synthetic(spec: &TensorSpec, call: usize) -> Value {
    let n: usize = spec.shape.iter().product();
    let data: Vec<f64> =
        (0..n).map(|i| f64::from((((i * 7919 + call * 104_729) % 2001) as f32) / 1000.0 - 1.0)).collect();
    Value::f32(&spec.shape, &data).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn batch_norm_running_statistics_follow_the_batches() {
    on_every_device(|| {
        let (ast, errors) = genc_grammar::parse(BATCH_NORM_SPEC);
        assert!(errors.is_empty(), "{errors:?}");
        let c = genc_compiler::check::check(&ast, &[]);
        assert!(c.errors.is_empty(), "{:?}", c.errors);
        let (program, _) = plan::plan(&c, None).unwrap_or_else(|e| panic!("{e}"));
        let d = device();
        let mut trainer = new_trainer(&c, program.clone(), 7, 1);
        let host = |ts: &[DeviceTensor]| -> Vec<Value> {
            ts.iter().map(|t| t.to_value(d).unwrap_or_else(|e| panic!("{e}"))).collect()
        };
        let (params, buffers) = (host(&trainer.params), host(&trainer.buffers));
        assert!(buffers[0].data.iter().all(|&m| m == 0.0), "running means start at zero");
        let fed: RefCell<Vec<Vec<Value>>> = RefCell::new(Vec::new());
        let mut feed = |phase: &PhaseProgram| -> Result<Vec<DeviceTensor>, FeedError> {
            let call = fed.borrow().len();
            let values: Vec<Value> = phase.inputs.iter().map(|spec| synthetic(spec, call)).collect();
            let tensors = values
                .iter()
                .map(|v| DeviceTensor::from_value(d, v))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| e.to_string())?;
            fed.borrow_mut().push(values);
            Ok(tensors)
        };
        let mut step =
            |trainer: &mut Trainer| trainer.train_step(d, &mut feed).unwrap_or_else(|e| panic!("{e}"));
        step(&mut trainer);
        // Step 1 on the reference interpreter, from the same weights, buffers and batch.
        let inputs = fed.borrow()[0].clone();
        let leaves = interp::Leaves { seed: 0, inputs: &inputs, params: &params, buffers: &buffers };
        let expected = interp::run_phase(&program.phases[0], &leaves).unwrap_or_else(|e| panic!("{e}"));
        let after_one = host(&trainer.buffers);
        for (spec, have) in program.buffers.iter().zip(&after_one) {
            let name = format!("buffer.{}", spec.name);
            let want = &expected.iter().find(|(n, _)| *n == name).unwrap_or_else(|| panic!("no {name}")).1;
            for (w, h) in want.data.iter().zip(&have.data) {
                assert!((w - h).abs() <= 1e-5 + 1e-4 * w.abs(), "{name}: device {h}, reference {w}");
            }
        }
        assert!(after_one[0].data.iter().all(|&m| m != 0.0), "running means moved: {:?}", after_one[0].data);
        step(&mut trainer);
        step(&mut trainer);
        let after_three = host(&trainer.buffers);
        assert_ne!(after_one, after_three, "every step moves the running statistics");
    });
}

/// Each run of a repeated phase draws its own noise: with SGD at lr 1, the bias-free weight
/// moves by the sum of the runs' noise means, while the logged square of the mean averages
/// their squares; the two agree only if every run drew the same numbers.
const REPEAT_SPEC: &str = r#"
dims B, D = 4

net F(v: [B, D]) -> [B, 1] {
    return v |> linear(1, bias: false)
}

loss l(x: [B, 1, 28, 28]) {
    let noise ~ normal([B, D])
    let m = mean(noise[:, 0:1])
    log m2 = m * m
    return mean(F(noise)) + 0 * mean(x)
}

train {
    data x = fashion_mnist(split: "train", range: [0, 1])
    batch B = 16
    steps 1
    optimizer opt = sgd(F, lr: 1.0)
    step {
        repeat 3 {
            minimize l(x) with opt
        }
    }
}
"#;

#[test]
fn every_repeat_of_a_phase_draws_fresh_noise() {
    on_every_device(|| {
        let (ast, errors) = genc_grammar::parse(REPEAT_SPEC);
        assert!(errors.is_empty(), "{errors:?}");
        let c = genc_compiler::check::check(&ast, &[]);
        assert!(c.errors.is_empty(), "{:?}", c.errors);
        let (program, _) = plan::plan(&c, Some(16)).unwrap_or_else(|e| panic!("{e}"));
        let d = device();
        let mut trainer = new_trainer(&c, program, 3, 1);
        let before = trainer.params[0].to_f64(d).unwrap_or_else(|e| panic!("{e}"));
        let mut feed = feed_with(|_, _| 0.5);
        let report = trainer.train_step(d, &mut feed).unwrap_or_else(|e| panic!("{e}"));
        let after = trainer.params[0].to_f64(d).unwrap_or_else(|e| panic!("{e}"));
        let m2 = report.metrics.iter().find(|(n, _)| n == "m2").map(|m| m.1).unwrap_or(f64::NAN);
        // Per run, d loss / d weight[0] is the batch mean of noise[:, 0]: the weight moved by
        // the sum of the runs' means.
        let mean_of_means = (before[0] - after[0]) / 3.0;
        assert!(
            m2 - mean_of_means * mean_of_means > 1e-4,
            "the runs drew the same noise: mean square {m2}, square of the mean {}",
            mean_of_means * mean_of_means
        );
    });
}

/// `init G(std: 0.02)` and `init D(std: 0.02)` in specs/dcgan.gen: every weight of a linear
/// or convolution layer starts ~ N(0, 0.02) with a zero bias, every batch-norm scale ~ N(1, 0.02).
#[test]
fn dcgan_starts_from_its_papers_initialisation() {
    let c = checked("dcgan");
    let (program, _) = plan::plan(&c, Some(8)).unwrap_or_else(|e| panic!("{e}"));
    on_every_device(|| {
        let d = device();
        let trainer = new_trainer(&c, program.clone(), 11, 1);
        for (entry, tensor) in c.table.params.iter().zip(&trainer.params) {
            let v = tensor.to_f64(d).unwrap_or_else(|e| panic!("{e}"));
            let n = v.len() as f64;
            let mean = v.iter().sum::<f64>() / n;
            let std = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
            let name = &entry.name;
            if name.ends_with(".bias") {
                assert!(v.iter().all(|&x| x == 0.0), "{name} starts at zero");
            } else if name.contains("batch_norm") {
                assert!(
                    (mean - 1.0).abs() < 0.01 && (std - 0.02).abs() < 0.01,
                    "{name}: mean {mean}, std {std}"
                );
            } else if v.len() >= 1000 {
                assert!(mean.abs() < 0.002 && (std - 0.02).abs() < 0.001, "{name}: mean {mean}, std {std}");
            }
        }
    });
}

/// Two stages, as SRGAN and the stacked autoencoder schedule them: `second` has a zero rate
/// for 3 updates. Its phase is skipped then (no loss logged, weights and Adam state untouched,
/// the schedule moving on), and its first real update is Adam's first: a step of about `lr`.
const STAGES_SPEC: &str = r#"
dims B, D = 4

net P(v: [B, D]) -> [B, 1] = v |> linear(1, bias: false)
net Q(v: [B, D]) -> [B, 1] = v |> linear(1, bias: false)

loss first(x: [B, 1, 28, 28]) = mean(P(ones([B, D]))) + 0 * mean(x)
loss second(x: [B, 1, 28, 28]) = mean(Q(ones([B, D]))) + 0 * mean(x)

train {
    data x = fashion_mnist(split: "train", range: [0, 1])
    batch B = 4
    steps 4
    optimizer opt_p = adam(P, lr: 0.01)
    optimizer opt_q = adam(Q, lr: 0.01)
    schedule opt_q = piecewise(boundaries: [3], values: [0.0, 1.0])
    step {
        minimize first(x) with opt_p
        minimize second(x) with opt_q
    }
}
"#;

#[test]
fn a_phase_at_a_zero_rate_is_skipped_and_its_stage_starts_fresh() {
    on_every_device(|| {
        let (ast, errors) = genc_grammar::parse(STAGES_SPEC);
        assert!(errors.is_empty(), "{errors:?}");
        let c = genc_compiler::check::check(&ast, &[]);
        assert!(c.errors.is_empty(), "{:?}", c.errors);
        let (program, _) = plan::plan(&c, Some(4)).unwrap_or_else(|e| panic!("{e}"));
        let d = device();
        let mut trainer = new_trainer(&c, program, 5, 4);
        let q = |t: &Trainer| t.params[1].to_f64(d).unwrap_or_else(|e| panic!("{e}"));
        let start = q(&trainer);
        let mut feed = feed_with(|_, _| 0.0);
        for step in 1..=3 {
            let report = trainer.train_step(d, &mut feed).unwrap_or_else(|e| panic!("{e}"));
            let losses: Vec<&str> =
                report.metrics.iter().map(|(n, _)| n.as_str()).filter(|n| !n.starts_with("lr.")).collect();
            assert_eq!(losses, ["first"], "step {step}: the zero-rate phase ran");
        }
        assert_eq!(q(&trainer), start, "a zero rate moved the weights");
        let opt_q = &trainer.optimizers[1];
        assert_eq!((opt_q.steps, opt_q.applied), (3, 0));
        let report = trainer.train_step(d, &mut feed).unwrap_or_else(|e| panic!("{e}"));
        assert!(report.metrics.iter().any(|(n, _)| n == "second"));
        // d/dq of mean(Q(ones)) is 1 for every weight: Adam's first step is lr * 1 / (1 + eps).
        for (a, b) in start.iter().zip(q(&trainer)) {
            assert!(((a - b) - 0.01).abs() < 1e-6, "first real update moved {a} to {b}, not by lr");
        }
        assert_eq!((trainer.optimizers[1].steps, trainer.optimizers[1].applied), (4, 1));
    });
}

/// `clip F to norm(1)` after an SGD step at lr 0: each row of the linear weight (one output
/// unit's weights) keeps its direction and has a norm of at most 1; rows inside the ball stay.
const CLIP_NORM_SPEC: &str = r#"
dims B, D = 4, U = 6

net F(v: [B, D]) -> [B, U] = v |> linear(U)

loss l(x: [B, 1, 28, 28]) = mean(F(ones([B, D]))) + 0 * mean(x)

train {
    data x = fashion_mnist(split: "train", range: [0, 1])
    batch B = 4
    steps 1
    optimizer opt = sgd(F, lr: 0.0001)
    step {
        minimize l(x) with opt
        clip F to norm(1)
    }
}
"#;

#[test]
fn clip_to_norm_bounds_each_units_weights() {
    on_every_device(|| {
        let (ast, errors) = genc_grammar::parse(CLIP_NORM_SPEC);
        assert!(errors.is_empty(), "{errors:?}");
        let c = genc_compiler::check::check(&ast, &[]);
        assert!(c.errors.is_empty(), "{:?}", c.errors);
        let (program, _) = plan::plan(&c, Some(4)).unwrap_or_else(|e| panic!("{e}"));
        let d = device();
        let mut trainer = new_trainer(&c, program, 9, 1);
        // Rows of norm 0.5 (kept) and 3 (scaled to 1).
        let rows: Vec<f32> = (0..6)
            .flat_map(|r| {
                let scale = if r % 2 == 0 { 0.25 } else { 1.5 };
                [scale, -scale, scale, -scale]
            })
            .collect();
        trainer.params[0] =
            DeviceTensor::from_f32(d, DType::F32, &[6, 4], &rows).unwrap_or_else(|e| panic!("{e}"));
        let bias_before = trainer.params[1].to_f64(d).unwrap_or_else(|e| panic!("{e}"));
        let mut feed = feed_with(|_, _| 0.0);
        trainer.train_step(d, &mut feed).unwrap_or_else(|e| panic!("{e}"));
        let w = trainer.params[0].to_f64(d).unwrap_or_else(|e| panic!("{e}"));
        for (r, row) in w.chunks(4).enumerate() {
            let norm = row.iter().map(|v| v * v).sum::<f64>().sqrt();
            let want = if r % 2 == 0 { 0.5 } else { 1.0 };
            assert!((norm - want).abs() < 1e-3, "row {r}: norm {norm}, want {want}");
            assert!(row[0] > 0.0 && row[1] < 0.0, "row {r} changed direction: {row:?}");
        }
        // The bias (rank 1) is not a unit's weight vector: only SGD's tiny step moved it.
        let bias = trainer.params[1].to_f64(d).unwrap_or_else(|e| panic!("{e}"));
        for (a, b) in bias_before.iter().zip(&bias) {
            assert!((a - b).abs() < 1e-3);
        }
    });
}

/// specs/cgan.gen's schedule as Mirza & Osindero state it: the rate starts at 0.1, is divided
/// by 1.00004 each update (each step logs `lr.opt_d`, falling), and never goes below the
/// paper's 1e-6.
#[test]
fn cgan_learning_rate_falls_by_the_papers_factor_to_its_floor() {
    let c = checked("cgan");
    let (program, _) = plan::plan(&c, Some(8)).unwrap_or_else(|e| panic!("{e}"));
    let d = device();
    let steps = 60_000;
    let mut trainer = new_trainer(&c, program, 3, steps);
    let opt_d = trainer.optimizers.iter().find(|o| o.name == "opt_d").unwrap_or_else(|| panic!("no opt_d"));
    assert_eq!(opt_d.lr_at(0), 0.1);
    assert!((opt_d.lr_at(steps - 1) - 0.1 / 1.00004f64.powf((steps - 1) as f64)).abs() < 1e-12);
    // 288k updates would take it below 1e-6: the floor holds it there.
    assert_eq!(opt_d.lr_at(400_000), 1e-6);
    let mut feed = feed_with(|spec, i| match spec.dtype {
        DType::I32 => (i % 10) as f32,
        _ => ((i * 37) % 101) as f32 / 101.0,
    });
    let mut logged = Vec::new();
    for _ in 0..3 {
        let report = trainer.train_step(d, &mut feed).unwrap_or_else(|e| panic!("{e}"));
        let lr = report.metrics.iter().find(|(n, _)| n == "lr.opt_d").map(|m| m.1);
        logged.push(lr.unwrap_or_else(|| panic!("no lr.opt_d in {:?}", report.metrics)));
    }
    for (t, lr) in logged.iter().enumerate() {
        assert!((lr - 0.1 / 1.00004f64.powi(t as i32)).abs() < 1e-15, "update {t}: {lr}");
    }
}

/// `state` and `keep` carry spectral normalisation's power-iteration vector from step to step
/// (specs/variants/sngan.gen, as the paper): after a step each `D.snK.state0` buffer holds the
/// unit vector `u = W v / |W v|` that step computed, and the next step starts from it.
#[test]
fn a_kept_state_carries_from_one_step_to_the_next() {
    on_every_device(|| {
        let c = common::checked_with("variants/sngan", &[("F", 8)], &[]);
        let (program, _) = plan::plan(&c, Some(4)).unwrap_or_else(|e| panic!("{e}"));
        let d = device();
        let mut trainer = new_trainer(&c, program, 5, 10);
        let states: Vec<usize> = trainer
            .program
            .buffers
            .iter()
            .enumerate()
            .filter(|(_, b)| b.name.contains(".state"))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(states.len(), 4, "one state per spectrally normalised weight");
        let read = |t: &Trainer, i: usize| t.buffers[i].to_f64(d).unwrap_or_else(|e| panic!("{e}"));
        let before: Vec<Vec<f64>> = states.iter().map(|&i| read(&trainer, i)).collect();
        let mut feed = feed_with(|_, i| ((i * 37) % 101) as f32 / 50.5 - 1.0);
        for step in 0..2 {
            trainer.train_step(d, &mut feed).unwrap_or_else(|e| panic!("{e}"));
            for (k, &i) in states.iter().enumerate() {
                let u = read(&trainer, i);
                let norm = u.iter().map(|x| x * x).sum::<f64>().sqrt();
                assert!((norm - 1.0).abs() < 1e-5, "step {step}, state {k}: |u| = {norm}");
                if step == 0 && u.len() > 1 {
                    assert_ne!(u, before[k], "state {k} was not updated");
                }
            }
        }
    });
}

/// An index the spec computes (`to_int(round(x * 3))`) is counted out of range on the device
/// and the step refused (E0945), where a gather would have clamped it; in range, the step runs.
#[test]
fn a_computed_index_out_of_range_stops_the_step() {
    let spec = r#"
dims B, C = 1, H = 28, W = 28, K = 4

net G(x: [B, C, H, W]) -> [B, K, C, H, W] {
    return reshape(x |> conv2d(K, kernel: 1), [B, K, C, H, W])
}

loss nll(x: [B, C, H, W]) = cross_entropy(G(x), to_int(round(x * (K - 1))))

train {
    data x = fashion_mnist(split: "train", range: [-1, 1])
    batch B = 2
    steps 1
    optimizer opt = sgd(G, lr: 0.1)
    step {
        minimize nll(x) with opt
    }
}
"#;
    let (ast, errors) = genc_grammar::parse(spec);
    assert!(errors.is_empty(), "{errors:?}");
    let c = genc_compiler::check::check(&ast, &[]);
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    on_every_device(|| {
        let d = device();
        for (lo, want_error) in [(0.0f32, false), (-1.0f32, true)] {
            let (program, _) = plan::plan(&c, Some(2)).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(program.phases[0].index_guards.len(), 1);
            let mut trainer = new_trainer(&c, program, 1, 1);
            let mut feed = feed_with(|_, i| lo + (1.0 - lo) * (i % 9) as f32 / 8.0);
            match trainer.train_step(d, &mut feed) {
                Ok(_) => assert!(!want_error, "data from {lo}: the out-of-range targets were not caught"),
                Err(genc_runtime::train::TrainError::Index(e)) => {
                    assert!(want_error, "data from {lo}: {e}");
                    // Values -1, -0.75, -0.5, -0.25 of each 9 round to -3, -2, -2 (-1.5 away
                    // from zero) and -1: 4 of every 9.
                    assert_eq!(
                        (e.count, e.classes, e.op.as_str()),
                        ((0..2 * 784).filter(|i| i % 9 < 4).count() as u64, 4, "cross_entropy")
                    );
                }
                Err(e) => panic!("data from {lo}: {e}"),
            }
        }
    });
}
