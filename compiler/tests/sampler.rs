//! Samplers with host control flow: the planned `SamplerProgram` (segments, variables, host
//! steps) computes what the reference run of the checker's host program computes node by
//! node, for a small spec with a descending loop, a tensor branch, an indexed assignment and
//! draws in the loop, and for DDPM's and PixelCNN's samplers at small sizes.

#![allow(clippy::unwrap_used)]

use genc_compiler::check::{self, Checked, UnitKind};
use genc_compiler::interp::{self, Leaves, Value};
use genc_compiler::params::Init;
use genc_compiler::prim::DType;
use genc_compiler::sampler::{HostStep, SamplerProgram, plan_sampler};

/// The shared small spec of the sampler tests.
fn small() -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/samplers/host_control.gen");
    std::fs::read_to_string(path).unwrap()
}

fn checked(source: &str, overrides: &[(&str, &str)]) -> Checked {
    called(source, overrides, None)
}

/// Checked with sampler `call.0` elaborated for `call.1` samples.
fn called(source: &str, overrides: &[(&str, &str)], call: Option<(&str, i64)>) -> Checked {
    let (ast, errors) = genc_grammar::parse(source);
    assert!(errors.is_empty(), "{errors:?}");
    let overrides: Vec<check::Override> = overrides
        .iter()
        .map(|(n, v)| check::Override { name: n.to_string(), value: v.to_string() })
        .collect();
    let c = match call {
        Some((name, n)) => check::check_call(&ast, &overrides, &check::SamplerCall { name: name.into(), n }),
        None => check::check(&ast, &overrides),
    };
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    c
}

fn spec(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../specs").join(format!("{name}.gen"));
    std::fs::read_to_string(path).unwrap()
}

/// `source` with `from` replaced, which must occur, and without its `train` block (its data
/// has the full image size).
fn shrink(source: &str, from: &str, to: &str) -> String {
    assert!(source.contains(from), "`{from}` is not in the spec");
    let source = source.replace(from, to);
    source.split("\ntrain {").next().unwrap_or_default().to_string()
}

/// Small deterministic parameters; buffers from the constant graph where it computes them.
fn leaves(c: &Checked, program: &SamplerProgram) -> (Vec<Value>, Vec<Value>) {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut make = |shape: &[usize], scale: f64, offset: f64| {
        let n: usize = shape.iter().product();
        Value::new(DType::F32, shape.to_vec(), (0..n).map(|_| offset + scale * next()).collect()).unwrap()
    };
    let params = program.params.iter().map(|t| make(&t.shape, 0.4, -0.2)).collect();
    let consts = interp::eval_graph(&c.consts, &Leaves::default()).unwrap();
    let buffers = c
        .table
        .buffers
        .iter()
        .map(|e| match e.init {
            Init::Computed { node } => consts[node.index()].clone(),
            _ => make(&e.shape, 0.8, 0.1),
        })
        .collect();
    (params, buffers)
}

/// The sampler `name` planned and run on the interpreter, next to the reference run of the
/// checker's host program; both outputs, reference first.
fn both(c: &Checked, name: &str, seed: u64) -> (SamplerProgram, Vec<Value>, Vec<Value>) {
    let unit = c.units.iter().find(|u| u.kind == UnitKind::Sampler && u.name == name).unwrap();
    let bind = |_: &str| Some(2);
    let program = plan_sampler(c, unit, &bind).unwrap_or_else(|e| panic!("{name}: {e}"));
    let (params, buffers) = leaves(c, &program);
    let bound = unit.graph.bind_dims(&bind).unwrap();
    let host = unit.host.as_ref().unwrap();
    let reference = interp::eval_host(&bound, host, &params, &buffers, &[], seed).unwrap();
    let planned = interp::run_sampler(&program, &params, &buffers, Vec::new(), seed)
        .unwrap()
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    (program, reference, planned)
}

fn assert_close(name: &str, reference: &[Value], planned: &[Value]) {
    assert_eq!(reference.len(), planned.len());
    for (r, p) in reference.iter().zip(planned) {
        assert_eq!(r.shape, p.shape, "{name}");
        for (i, (a, b)) in r.data.iter().zip(&p.data).enumerate() {
            assert!(a.is_finite(), "{name}: element {i} is {a}");
            assert!(
                (a - b).abs() <= 1e-9 * (1.0 + a.abs()),
                "{name}: element {i}: reference {a}, planned {b}"
            );
        }
    }
}

fn count_steps(steps: &[HostStep]) -> (usize, usize) {
    steps.iter().fold((0, 0), |(loops, ifs), s| match s {
        HostStep::Loop { body, .. } => {
            let (l, i) = count_steps(body);
            (loops + 1 + l, ifs + i)
        }
        HostStep::If { then, otherwise, .. } => {
            let (l1, i1) = count_steps(then);
            let (l2, i2) = count_steps(otherwise);
            (loops + l1 + l2, ifs + 1 + i1 + i2)
        }
        HostStep::Run { .. } | HostStep::Copy { .. } => (loops, ifs),
    })
}

#[test]
fn a_loop_with_a_branch_and_an_indexed_assignment_matches_the_reference() {
    let c = checked(&small(), &[]);
    let (program, reference, planned) = both(&c, "walk", 11);
    assert_eq!(count_steps(&program.body), (1, 1), "{}", program.to_text());
    assert_close("walk", &reference, &planned);
    // Another seed, other samples.
    let (_, other, _) = both(&c, "walk", 12);
    assert_ne!(reference[0].data, other[0].data);
}

#[test]
fn loops_and_branches_compute_what_they_say() {
    let c = checked(&small(), &[]);
    let (_, reference, planned) = both(&c, "count", 0);
    assert_eq!(reference[0].data, vec![11.0, 11.0]);
    assert_eq!(planned[0].data, vec![11.0, 11.0]);
}

#[test]
fn every_iteration_draws_afresh() {
    let c = checked(&small(), &[]);
    let (_, reference, planned) = both(&c, "draws", 3);
    assert_close("draws", &reference, &planned);
    let rows = &reference[0];
    assert_eq!(rows.shape, vec![3, 4]);
    let column = |j: usize| (0..3).map(|i| rows.data[i * 4 + j]).collect::<Vec<_>>();
    for a in 0..4 {
        assert!(column(a).iter().all(|&u| (0.0..1.0).contains(&u) && u != 0.0), "{:?}", rows.data);
        for b in a + 1..4 {
            assert_ne!(column(a), column(b), "iterations {a} and {b} drew the same numbers");
        }
    }
}

#[test]
fn ddpm_reverse_process_at_small_sizes_matches_the_reference() {
    let source = shrink(
        &spec("ddpm"),
        "H = 28, W = 28, T = 1000, F = 64, E = 64",
        "H = 8, W = 8, T = 3, F = 4, E = 8",
    );
    let c = called(&source, &[], Some(("reverse", 2)));
    let (program, reference, planned) = both(&c, "reverse", 5);
    assert_eq!(count_steps(&program.body), (1, 1));
    assert_eq!(reference[0].shape, vec![2, 1, 8, 8]);
    assert_close("ddpm", &reference, &planned);
}

#[test]
fn pixelcnn_pixel_loop_at_small_sizes_matches_the_reference() {
    let source = shrink(&spec("pixelcnn"), "H = 28, W = 28, K = 256, F = 64", "H = 3, W = 3, K = 4, F = 4");
    let c = called(&source, &[("n_res", "1")], Some(("autoregressive", 2)));
    let (program, reference, planned) = both(&c, "autoregressive", 9);
    assert_eq!(count_steps(&program.body), (2, 0));
    assert_close("pixelcnn", &reference, &planned);
    // Every pixel was drawn: values are levels k / (K - 1), and not all zero.
    let levels = &reference[0].data;
    assert!(levels.iter().all(|v| [0.0, 1.0 / 3.0, 2.0 / 3.0, 1.0].iter().any(|l| (v - l).abs() < 1e-6)));
    assert!(levels.iter().any(|&v| v != 0.0), "{levels:?}");
}

#[test]
fn every_sampler_of_every_spec_plans() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../specs");
    let mut planned = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "gen") {
            continue;
        }
        let c = checked(&std::fs::read_to_string(&path).unwrap(), &[]);
        for unit in c.units.iter().filter(|u| u.kind == UnitKind::Sampler) {
            let program = plan_sampler(&c, unit, &|_| Some(2))
                .unwrap_or_else(|e| panic!("{} {}: {e}", path.display(), unit.name));
            assert!(!program.outputs.is_empty());
            planned += 1;
        }
    }
    assert_eq!(
        planned, 10,
        "the specs have ten samplers (nine of the families, the classifier's `classify`)"
    );
}

#[test]
fn a_sampler_the_host_cannot_run_is_reported_by_the_checker() {
    let source = r#"
dims C = 1
sampler counted(n: int = 2) -> [n] {
    let k = 0
    let x = zeros([n])
    for i in 0..3 {
        k = k + 1
        x = x + 1.0
    }
    return x
}
sampler early(n: int = 2) -> [n] {
    let x = zeros([n])
    for i in 0..3 {
        x = x + 1.0
        return x
    }
    return x
}
"#;
    // `genc check` reports each where it is written (E0124), so none reaches the planner.
    let (ast, _) = genc_grammar::parse(source);
    let c = check::check(&ast, &[]);
    let errors: Vec<(&str, &str)> = c.errors.iter().map(|e| (e.code, e.message.as_str())).collect();
    assert_eq!(errors.len(), 2, "{errors:?}");
    for ((name, why), (code, message)) in
        [("counted", "`k` is an int"), ("early", "a `return` inside a sampler loop")].into_iter().zip(errors)
    {
        assert_eq!(code, "E0124");
        assert!(message.contains(why), "{name}: {message}");
    }
}

#[test]
fn a_sampler_program_survives_serde() {
    let c = checked(&small(), &[]);
    let (program, _, _) = both(&c, "walk", 1);
    let json = serde_json::to_string(&program).unwrap();
    let back: SamplerProgram = serde_json::from_str(&json).unwrap();
    assert_eq!(back, program);
}

#[test]
fn the_sampler_call_sets_the_sample_count() {
    let (ast, _) = genc_grammar::parse(&small());
    let c = check::check_call(&ast, &[], &check::SamplerCall { name: "walk".into(), n: 5 });
    assert!(c.errors.is_empty());
    let unit = c.units.iter().find(|u| u.name == "walk").unwrap();
    let program = plan_sampler(&c, unit, &|_| None).unwrap();
    let out = program.outputs[0].1;
    assert_eq!(program.vars[out].shape, vec![5, 1, 4, 4]);
}
