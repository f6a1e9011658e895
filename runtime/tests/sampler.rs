//! Samplers with host loops and branches run on the device (lavapipe in CI) and give what
//! the reference interpreter gives running the checker's host program node by node: the
//! small test spec (descending loop, tensor branch, indexed assignment, a draw per
//! iteration) and DDPM's reverse process at small sizes.
//!
//! Tolerance, per output tensor: |device - reference| <= 1e-4 + 2e-3 * max|reference| (the
//! device computes in f32, the interpreter in f64; normal draws agree to float precision).

mod common;

use common::{device, on_every_device};

use genc_compiler::check::{self, Checked, UnitKind};
use genc_compiler::interp::{self, Leaves, Value};
use genc_compiler::params::Init;
use genc_compiler::prim::DType;
use genc_compiler::sampler::{SamplerProgram, plan_sampler};
use genc_runtime::device::DeviceTensor;
use genc_runtime::sample::LoadedSampler;

fn read(path: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn called(source: &str, name: &str, n: i64) -> Checked {
    let (ast, errors) = genc_grammar::parse(source);
    assert!(errors.is_empty(), "{errors:?}");
    let c = check::check_call(&ast, &[], &check::SamplerCall { name: name.into(), n });
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    c
}

/// Small f32-exact parameters; buffers from the constant graph where it computes them.
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
        let data = (0..n).map(|_| (offset + scale * next()) as f32 as f64).collect();
        Value { dtype: DType::F32, shape: shape.to_vec(), data }
    };
    let params = program.params.iter().map(|t| make(&t.shape, 0.4, -0.2)).collect();
    let consts = interp::eval_graph(&c.consts, &Leaves::default()).unwrap_or_else(|e| panic!("{e}"));
    let buffers = c
        .table
        .buffers
        .iter()
        .map(|e| match e.init {
            Init::Computed { node } => {
                let v = &consts[node.index()];
                Value { data: v.data.iter().map(|&x| x as f32 as f64).collect(), ..v.clone() }
            }
            _ => make(&e.shape, 0.8, 0.1),
        })
        .collect();
    (params, buffers)
}

/// Runs sampler `name` on the device and on the reference; asserts they agree.
fn device_matches_reference(c: &Checked, name: &str, seed: u64) -> Vec<f64> {
    let unit = c
        .units
        .iter()
        .find(|u| u.kind == UnitKind::Sampler && u.name == name)
        .unwrap_or_else(|| panic!("{name}"));
    let bind = |_: &str| Some(2);
    let program = plan_sampler(c, unit, &bind).unwrap_or_else(|e| panic!("{name}: {e}"));
    let (params, buffers) = leaves(c, &program);
    let bound = unit.graph.bind_dims(&bind).unwrap_or_else(|e| panic!("{e}"));
    let host = unit.host.as_ref().unwrap_or_else(|| panic!("{name} has no host control"));
    let reference =
        interp::eval_host(&bound, host, &params, &buffers, &[], seed).unwrap_or_else(|e| panic!("{e}"));

    let d = device();
    let up = |vs: &[Value]| {
        vs.iter()
            .map(|v| DeviceTensor::from_value(d, v))
            .collect::<Result<Vec<_>, _>>()
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let sampler = LoadedSampler::load(d, &program).unwrap_or_else(|e| panic!("{e}"));
    let outputs =
        sampler.run(d, &up(&params), &up(&buffers), Vec::new(), seed).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(outputs.len(), reference.len());
    for ((out, t), r) in outputs.iter().zip(&reference) {
        let got = t.to_f64(d).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.shape, r.shape, "{name} {out}");
        let scale = r.data.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        let tol = 1e-4 + 2e-3 * scale;
        for (i, (a, b)) in r.data.iter().zip(&got).enumerate() {
            assert!(a.is_finite(), "{name} {out}[{i}] is {a}");
            assert!((a - b).abs() <= tol, "{name} {out}[{i}]: device {b}, reference {a} (tolerance {tol})");
        }
    }
    reference[0].data.clone()
}

#[test]
fn a_loop_with_a_branch_an_indexed_assignment_and_draws_matches_on_the_device() {
    on_every_device(|| {
        let source = read("../tests/samplers/host_control.gen");
        let c = called(&source, "walk", 2);
        let a = device_matches_reference(&c, "walk", 3);
        let b = device_matches_reference(&c, "walk", 4);
        assert_ne!(a, b, "another seed draws other samples");
        let c = called(&source, "count", 2);
        assert_eq!(device_matches_reference(&c, "count", 0), vec![11.0, 11.0]);
        let c = called(&source, "draws", 2);
        let rows = device_matches_reference(&c, "draws", 8);
        assert_ne!(rows[0..4].to_vec(), rows[4..8].to_vec());
        assert!(rows.iter().all(|&u| u > 0.0 && u < 1.0), "every iteration drew: {rows:?}");
    });
}

#[test]
fn ddpm_reverse_process_at_small_sizes_matches_on_the_device() {
    on_every_device(|| {
        let spec = read("../specs/ddpm.gen");
        let from = "H = 28, W = 28, T = 1000, F = 64, E = 64";
        assert!(spec.contains(from));
        // Without the train block: its data are 28x28 images.
        let spec = spec.replace(from, "H = 8, W = 8, T = 3, F = 4, E = 8");
        let spec = spec.split("\ntrain {").next().unwrap_or_default();
        let c = called(spec, "reverse", 2);
        let x = device_matches_reference(&c, "reverse", 21);
        assert_eq!(x.len(), 2 * 8 * 8);
    });
}

/// A loop-free sampler that computes an index (`one_hot(to_int(..), K)`) counts its values
/// out of range on the device and refuses to return samples (E0945), where a kernel would
/// have given zero rows; an index known to be in range (`arange(n) % K`) has no guard.
#[test]
fn a_samplers_computed_index_out_of_range_is_refused() {
    let source = r#"
dims K = 4

sampler wild(n: int = 6) -> [n, K] {
    return one_hot(to_int(arange(n) * 3 - 5), K)
}

sampler tame(n: int = 6) -> [n, K] {
    return one_hot(arange(n) % K, K)
}
"#;
    on_every_device(|| {
        for (name, out_of_range) in [("wild", Some(5)), ("tame", None)] {
            let c = called(source, name, 6);
            let unit = c.units.iter().find(|u| u.kind == UnitKind::Sampler && u.name == name);
            let unit = unit.unwrap_or_else(|| panic!("no sampler {name}"));
            let program = plan_sampler(&c, unit, &|_| None).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(program.index_guards.len(), usize::from(out_of_range.is_some()), "{name}");
            let sampler = LoadedSampler::load(device(), &program).unwrap_or_else(|e| panic!("{e}"));
            match (sampler.run(device(), &[], &[], Vec::new(), 1), out_of_range) {
                (Err(genc_runtime::sample::SampleError::Index(e)), Some(count)) => {
                    // arange(6) * 3 - 5 = -5, -2, 1, 4, 7, 10: all but 1 outside 0..4.
                    assert_eq!((e.count, e.classes), (count, 4));
                }
                (Ok(_), None) => {}
                (Err(e), _) => panic!("{name}: {e}"),
                (Ok(_), Some(_)) => panic!("{name}: the out-of-range indices were not caught"),
            }
        }
    });
}
