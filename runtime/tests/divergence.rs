//! A diagnostic, not a check: where does a phase's device run depart from the interpreter?
//!
//! `GENC_TEST_SPEC=srgan [GENC_TEST_BATCH=3] [GENC_TEST_PHASE=discrim] cargo test -p
//! genc-runtime --test divergence -- --ignored --nocapture` prints, per phase:
//! - each output's error, device vs f64 interpreter and f32-storage interpreter vs f64 (how
//!   much rounding every stored value to f32 alone explains);
//! - the first values of the whole device run that differ from the f64 interpreter by more
//!   than 1e-4 of their scale, with their first bad elements;
//! - the kernels with the largest error of their own (each run alone from the same f32
//!   operands on both sides), relative to the larger of their output's and operands' scale.

mod common;

use common::stepwise::{HostLeaves, host_chain, keep_everything, max_abs, relative_diff, step_errors};
use common::{checked, device, leaves, upload};

use genc_compiler::interp::Value;
use genc_compiler::plan;
use genc_compiler::program::{Operand, PhaseProgram, Step};
use genc_runtime::executor::LoadedPhase;
use genc_runtime::kernels::Leaves;

#[test]
#[ignore]
fn locate_divergence() {
    let name = std::env::var("GENC_TEST_SPEC").unwrap_or_else(|_| "srgan".into());
    let batch = std::env::var("GENC_TEST_BATCH").ok().and_then(|b| b.parse().ok()).unwrap_or(3);
    let only = std::env::var("GENC_TEST_PHASE").ok();
    let (program, _) = plan::plan(&checked(&name), Some(batch)).unwrap_or_else(|e| panic!("{e}"));
    for (k, phase) in program.phases.iter().enumerate() {
        if only.as_deref().is_some_and(|o| !phase.name.contains(o)) {
            continue;
        }
        let (inputs, params, buffers) = leaves(&program, k);
        let host = HostLeaves { inputs: &inputs, params: &params, buffers: &buffers, seed: 5 };
        let fed =
            Leaves { inputs: upload(&inputs), params: upload(&params), buffers: upload(&buffers), seed: 5 };
        let exact = host_chain(phase, &host, false);
        let every = run_keeping_everything(phase, &fed);
        eprintln!("phase {}", phase.name);
        print_outputs(phase, &exact, &host_chain(phase, &host, true), &every);
        print_first_divergence(phase, &exact, &every);
        print_worst_kernels(phase, &host, &exact);
    }
}

/// Every value of one device run of the phase.
fn run_keeping_everything(phase: &PhaseProgram, fed: &Leaves) -> Vec<Value> {
    let loaded = LoadedPhase::load(device(), &keep_everything(phase)).unwrap_or_else(|e| panic!("{e}"));
    let got = loaded.run(device(), fed).unwrap_or_else(|e| panic!("{e}"));
    got.iter().map(|(_, t)| t.to_value(device()).unwrap_or_else(|e| panic!("{e}"))).collect()
}

fn print_outputs(phase: &PhaseProgram, exact: &[Option<Value>], rounded: &[Option<Value>], every: &[Value]) {
    eprintln!("  output: device vs f64, f32 storage vs f64 (max |diff| / max |f64|)");
    for (out, o) in &phase.outputs {
        let Operand::Value(v) = *o else { continue };
        let (Some(want), Some(stored)) = (&exact[v], &rounded[v]) else { continue };
        let (d, s) = (relative_diff(&every[v], want), relative_diff(stored, want));
        eprintln!("    {out}: {d:.2e} {s:.2e}");
    }
}

fn print_first_divergence(phase: &PhaseProgram, exact: &[Option<Value>], every: &[Value]) {
    let diverging = (0..every.len()).filter_map(|v| {
        let want = exact[v].as_ref()?;
        let d = relative_diff(&every[v], want);
        (d > 1e-4).then_some((v, d, want))
    });
    for (n, (v, d, want)) in diverging.take(8).enumerate() {
        let step = phase.steps.iter().position(|s| defines(s, v));
        eprintln!("  diverging: %{v} by {d:.2e}, shape {:?}, from step {step:?}", want.shape);
        if n == 0 {
            let tol = 1e-4 * max_abs(want);
            let pairs = want.data.iter().zip(&every[v].data).enumerate();
            let bad: Vec<_> = pairs.filter(|(_, (a, b))| (*a - *b).abs() > tol).take(6).collect();
            eprintln!("    first bad elements (index, (f64, device)): {bad:?}");
        }
    }
}

fn print_worst_kernels(phase: &PhaseProgram, host: &HostLeaves, exact: &[Option<Value>]) {
    let mut errors = step_errors(phase, host, exact);
    errors.sort_by(|a, b| b.relative.total_cmp(&a.relative));
    eprintln!("  kernels with the largest own error (of {}):", errors.len());
    for e in errors.iter().take(8) {
        let (s, r, a, o, m) = (e.step, e.relative, e.absolute, e.scale, e.operands);
        eprintln!("    step {s}: {r:.2e} (abs {a:.2e}, max |out| {o:.2e}, max |in| {m:.2e}): {}", e.text);
    }
}

fn defines(step: &Step, v: usize) -> bool {
    match step {
        Step::Op { output, .. } | Step::View { output, .. } => *output == v,
        Step::Fused { outputs, .. } => outputs.iter().any(|(_, o)| *o == v),
        Step::Release { .. } => false,
    }
}
