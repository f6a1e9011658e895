//! Batch norm's running statistics, on the reference interpreter: a training phase outputs
//! them moved towards the batch statistics (unbiased variance, chained over the calls of a
//! layer) without touching the loss or the gradients; sample and eval units normalise with
//! them and keep every unit that dropout would drop.

#![allow(clippy::unwrap_used)]

use genc_compiler::check::{self, Checked, UnitKind};
use genc_compiler::interp::{self, Leaves, Value};
use genc_compiler::plan;
use genc_compiler::prim::Prim;
use genc_compiler::program::{PhaseProgram, Step};

/// `N` is applied twice per loss, to `h` and to `2 h`: its statistics move twice per phase.
const SPEC: &str = r#"
dims B, C = 4, H = 14, W = 14

net N(x: [B, C, H, W]) -> [B, C, H, W] = x |> batch_norm(momentum: 0.25) |> dropout(0.5)

loss fit(x: [B, 1, 28, 28]) {
    let h = reshape(x, [B, C, H, W])
    return mean(N(h) * h) + mean(N(2 * h) * h)
}

train {
    data x = fashion_mnist(split: "train", range: [-1, 1])
    batch B = 3
    steps 1
    optimizer opt = sgd(N, lr: 0.1)
    step {
        minimize fit(x) with opt
    }
    sample every 1 steps: N(reshape(x, [B, C, H, W]))
    eval every 1 steps: fit(x)
}
"#;

const BATCH: usize = 3;
const CHANNELS: usize = 4;
/// Elements per channel of one sample (14 x 14).
const PLANE: usize = 196;
const MOMENTUM: f64 = 0.25;
const EPS: f64 = 1e-5;

fn checked() -> Checked {
    let (ast, errors) = genc_grammar::parse(SPEC);
    assert!(errors.is_empty(), "{errors:?}");
    let c = check::check(&ast, &[]);
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    c
}

/// A data batch in [-1, 1], deterministic.
fn batch() -> Value {
    let n = BATCH * CHANNELS * PLANE;
    let data: Vec<f64> =
        (0..n).map(|i| ((i * 37 % 101) as f64 / 50.0 - 1.0) * (1.0 + (i % 7) as f64)).collect();
    Value::f32(&[BATCH, 1, 28, 28], &data).unwrap()
}

/// Non-trivial running statistics, or another set of them.
fn buffers(shift: f64) -> Vec<Value> {
    vec![
        Value::f32(&[CHANNELS], &[0.3 + shift, -0.2, 0.1, 0.5]).unwrap(),
        Value::f32(&[CHANNELS], &[1.5, 0.7 + shift, 2.0, 0.9]).unwrap(),
    ]
}

/// The affine weight and bias.
fn params() -> Vec<Value> {
    vec![
        Value::f32(&[CHANNELS], &[1.2, 0.8, -0.5, 1.0]).unwrap(),
        Value::f32(&[CHANNELS], &[0.1, -0.3, 0.0, 0.25]).unwrap(),
    ]
}

/// The values of channel `c` of `x` viewed as `[B, C, 14, 14]`.
fn channel(x: &Value, c: usize) -> Vec<f64> {
    (0..BATCH).flat_map(|b| x.data[(b * CHANNELS + c) * PLANE..][..PLANE].iter().copied()).collect()
}

/// Mean and unbiased variance, the plain way.
fn mean_and_unbiased_var(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var)
}

fn output<'a>(outputs: &'a [(String, Value)], name: &str) -> &'a Value {
    &outputs.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no output {name}")).1
}

fn assert_close(want: &[f64], have: &[f64], what: &str) {
    assert_eq!(want.len(), have.len(), "{what}");
    for (w, h) in want.iter().zip(have) {
        assert!((w - h).abs() <= 1e-9 * (1.0 + w.abs()), "{what}: want {want:?}, have {have:?}");
    }
}

/// The training phase's outputs, from the unfused graph and from the planned program.
fn train_outputs(buffers: &[Value]) -> [Vec<(String, Value)>; 2] {
    let c = checked();
    let (program, stages) = plan::plan(&c, None).unwrap();
    let inputs = [batch()];
    let params = params();
    let leaves = Leaves { seed: 3, inputs: &inputs, params: &params, buffers };
    let graph = &stages[0].grad;
    let values = interp::eval_outputs(graph, &leaves).unwrap();
    let from_graph = graph.outputs.iter().map(|o| o.name.clone()).zip(values).collect();
    let from_program = interp::run_phase(&program.phases[0], &leaves).unwrap();
    [from_graph, from_program]
}

#[test]
fn training_moves_the_running_statistics_once_per_call() {
    let old = buffers(0.0);
    let x = batch();
    let (mut mean, mut var) = (old[0].data.clone(), old[1].data.clone());
    // Two calls, on h and on 2 h: each moves the statistics from where the last one left them.
    for scale in [1.0, 2.0] {
        for c in 0..CHANNELS {
            let (m, v) = mean_and_unbiased_var(&channel(&x, c));
            mean[c] = (1.0 - MOMENTUM) * mean[c] + MOMENTUM * scale * m;
            var[c] = (1.0 - MOMENTUM) * var[c] + MOMENTUM * scale * scale * v;
        }
    }
    for outputs in train_outputs(&old) {
        let names: Vec<&str> = outputs.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names.iter().filter(|n| n.starts_with("buffer.")).count(),
            2,
            "one output per buffer, however often the layer runs: {names:?}"
        );
        let got_mean = output(&outputs, "buffer.N.batch_norm0.running_mean");
        let got_var = output(&outputs, "buffer.N.batch_norm0.running_var");
        assert_eq!(got_mean.shape, [CHANNELS]);
        assert_close(&mean, &got_mean.data, "running_mean");
        assert_close(&var, &got_var.data, "running_var");
    }
}

#[test]
fn running_statistics_change_neither_the_loss_nor_the_gradients() {
    let [graph_a, program_a] = train_outputs(&buffers(0.0));
    let [graph_b, program_b] = train_outputs(&buffers(0.4));
    for (a, b) in [(graph_a, graph_b), (program_a, program_b)] {
        let trained: Vec<_> = a.iter().filter(|(n, _)| !n.starts_with("buffer.")).collect();
        assert!(trained.iter().any(|(n, _)| n == "grad.N.batch_norm0.weight"), "{trained:?}");
        for (name, value) in trained {
            assert_eq!(value, output(&b, name), "{name} depends on the running statistics");
        }
    }
}

/// `(x - running_mean) / sqrt(running_var + eps) * weight + bias` over `x` as `[B, C, 14, 14]`.
fn normalised(x: &Value, scale: f64) -> Vec<f64> {
    let (stats, affine) = (buffers(0.0), params());
    let mut y = x.data.iter().map(|v| v * scale).collect::<Vec<_>>();
    for (i, v) in y.iter_mut().enumerate() {
        let c = i / PLANE % CHANNELS;
        let inv = 1.0 / (stats[1].data[c] + EPS).sqrt();
        *v = (*v - stats[0].data[c]) * inv * affine[0].data[c] + affine[1].data[c];
    }
    y
}

fn run_forward(kind: UnitKind) -> (PhaseProgram, Vec<(String, Value)>) {
    let program = plan::plan_forward(&checked(), kind, 0, BATCH as u64).unwrap();
    let (inputs, params, buffers) = ([batch()], params(), buffers(0.0));
    let leaves = Leaves { seed: 3, inputs: &inputs, params: &params, buffers: &buffers };
    let outputs = interp::run_phase(&program, &leaves).unwrap();
    (program, outputs)
}

#[test]
fn samples_normalise_with_the_running_statistics_and_drop_nothing() {
    let (program, outputs) = run_forward(UnitKind::Sample);
    let names: Vec<&str> = outputs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["out"], "evaluation updates no buffer");
    let randoms = program.steps.iter().filter(|s| matches!(s, Step::Op { prim: Prim::Random { .. }, .. }));
    assert_eq!(randoms.count(), 0, "dropout draws nothing in evaluation");
    assert_close(&normalised(&batch(), 1.0), &output(&outputs, "out").data, "sample");
}

#[test]
fn evals_normalise_with_the_running_statistics_too() {
    let (_, outputs) = run_forward(UnitKind::Eval);
    let x = batch();
    let n = x.data.len() as f64;
    let dot = |y: Vec<f64>| y.iter().zip(&x.data).map(|(a, b)| a * b).sum::<f64>() / n;
    let want = dot(normalised(&x, 1.0)) + dot(normalised(&x, 2.0));
    assert_close(&[want], &output(&outputs, "out").data, "eval");
}
