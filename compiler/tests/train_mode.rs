//! `train_mode(e)` evaluates `e` with its layers as in training — dropout draws masks, batch
//! norm uses the batch's statistics — in a sample or an eval, and leaves the running
//! statistics alone; outside it the same call is the evaluation-mode network.

#![allow(clippy::unwrap_used)]

use genc_compiler::check::{self, UnitKind};
use genc_compiler::interp::{self, Value};
use genc_compiler::prim::{Distribution, Prim};

const SPEC: &str = r#"
dims B, C = 1, H = 28, W = 28

net G(x: [B, C, H, W]) -> [B, C, H, W] {
    return x |> conv2d(2, kernel: 1) |> batch_norm |> dropout(0.5) |> conv2d(C, kernel: 1)
}

loss l(x: [B, C, H, W]) = mean(G(x) * G(x))

train {
    data x = fashion_mnist(split: "train", range: [0, 1])
    data x_test = fashion_mnist(split: "test", range: [0, 1])
    batch B = 4
    steps 1
    optimizer opt = sgd(G, lr: 0.1)
    step {
        minimize l(x) with opt
    }
    eval plain every 1 steps: mean(G(x_test))
    eval trained every 1 steps: mean(train_mode(G(x_test)))
}
"#;

#[test]
fn train_mode_uses_batch_statistics_and_dropout_and_updates_nothing() {
    let (ast, errors) = genc_grammar::parse(SPEC);
    assert!(errors.is_empty(), "{errors:?}");
    let c = check::check(&ast, &[]);
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    let evals: Vec<_> = c.units.iter().filter(|u| u.kind == UnitKind::Eval).collect();
    let prims = |k: usize| -> Vec<Prim> {
        evals[k].graph.live_nodes().iter().map(|&n| evals[k].graph.node(n).prim.clone()).collect()
    };
    let dropout =
        |ps: &[Prim]| ps.iter().any(|p| matches!(p, Prim::Random { dist: Distribution::Uniform, .. }));
    let reads_running = |ps: &[Prim]| ps.iter().any(|p| matches!(p, Prim::Buffer { .. }));
    // Evaluation mode: the running statistics, no dropout.
    assert!(!dropout(&prims(0)) && reads_running(&prims(0)));
    // Training mode: a dropout mask, batch statistics, and no buffer read or written.
    assert!(dropout(&prims(1)) && !reads_running(&prims(1)));
    for eval in &evals {
        let names: Vec<&str> = eval.graph.outputs.iter().map(|o| o.name.as_str()).collect();
        assert!(names.iter().all(|n| !n.starts_with("buffer.")), "{names:?}");
    }
    // On a batch: batch norm in training mode centres each channel over the batch, so after
    // a 1x1 convolution a constant added to x changes nothing; with the running statistics
    // it does.
    let plain = genc_compiler::plan::plan_forward(&c, UnitKind::Eval, 0, 4).unwrap();
    let batch = genc_compiler::plan::plan_forward(&c, UnitKind::Eval, 1, 4).unwrap();
    let x =
        Value::f32(&[4, 1, 28, 28], &(0..4 * 784).map(|i| (i % 7) as f64 / 7.0).collect::<Vec<_>>()).unwrap();
    let params: Vec<Value> = c
        .table
        .params
        .iter()
        .map(|p| {
            Value::f32(&p.shape, &(0..p.numel()).map(|i| 0.1 + (i % 3) as f64 * 0.05).collect::<Vec<_>>())
                .unwrap()
        })
        .collect();
    let buffers: Vec<Value> =
        c.table.buffers.iter().map(|b| Value::f32(&b.shape, &vec![0.5; b.numel()]).unwrap()).collect();
    let run_on = |unit: &genc_compiler::program::PhaseProgram, x: &Value| {
        let inputs: Vec<Value> = unit
            .inputs
            .iter()
            .map(|t| if t.name == "x_test" { x.clone() } else { Value::zeros(t.dtype, &t.shape) })
            .collect();
        let leaves = interp::Leaves { seed: 3, inputs: &inputs, params: &params, buffers: &buffers };
        interp::run_phase(unit, &leaves).unwrap()[0].1.data[0]
    };
    let shifted = Value::f32(&x.shape, &x.data.iter().map(|v| v + 0.25).collect::<Vec<_>>()).unwrap();
    assert!(
        (run_on(&batch, &x) - run_on(&batch, &shifted)).abs() < 1e-9,
        "batch statistics absorb the shift"
    );
    assert!((run_on(&plain, &x) - run_on(&plain, &shifted)).abs() > 1e-6, "running statistics do not");
}
