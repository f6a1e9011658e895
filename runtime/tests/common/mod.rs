//! Helpers shared by the runtime's integration tests: one device per test binary, and specs
//! loaded and checked from `specs/`.

#![allow(dead_code)]

pub mod devices;
pub mod reference;
pub mod stepwise;

#[allow(unused_imports)]
pub use devices::{device, device_choice, on_every_device};

use genc_compiler::check;
use genc_compiler::interp::Value;
use genc_compiler::prim::DType;
use genc_compiler::program::Program;
use genc_grammar::ast;
use genc_runtime::device::DeviceTensor;

/// `specs/NAME.gen`, parsed and type-checked (it must be clean).
pub fn checked(name: &str) -> check::Checked {
    checked_with(name, &[], &[])
}

/// `specs/NAME.gen` with some bound dims given other values (`("F", 8)` for `F = 64`) and
/// some params overridden (as `--set` does): the same architecture at a size a debug-build
/// interpreter evaluates in seconds.
pub fn checked_with(name: &str, dims: &[(&str, u64)], params: &[(&str, &str)]) -> check::Checked {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../specs").join(format!("{name}.gen"));
    let source = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (mut ast, errors) = genc_grammar::parse(&source);
    assert!(errors.is_empty(), "{name}: {errors:?}");
    for (dim, value) in dims {
        let decl = ast.items.iter_mut().find_map(|item| match item {
            ast::Item::Dims(d) => d.dims.iter_mut().find(|d| d.name.name == *dim),
            _ => None,
        });
        let decl = decl.unwrap_or_else(|| panic!("{name}: no dim {dim}"));
        let span = decl.value.as_ref().map_or(decl.span, |v| v.span);
        decl.value = Some(ast::Expr { kind: ast::ExprKind::Int(*value, value.to_string()), span });
    }
    let overrides: Vec<check::Override> =
        params.iter().map(|(n, v)| check::Override { name: n.to_string(), value: v.to_string() }).collect();
    let c = check::check(&ast, &overrides);
    assert!(c.errors.is_empty(), "{name}: {:?}", c.errors);
    c
}

/// Leaves exactly representable in f32: small weights, data in (0.1, 0.9), labels in 0..3.
pub fn leaves(program: &Program, phase: usize) -> (Vec<Value>, Vec<Value>, Vec<Value>) {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut make = |dtype: DType, shape: &[usize], scale: f64, offset: f64| {
        let n: usize = shape.iter().product();
        let data = (0..n)
            .map(|_| match dtype {
                DType::F32 => (offset + scale * next()) as f32 as f64,
                DType::I32 => (next() * 3.0).floor(),
                DType::Bool => f64::from(u8::from(next() < 0.5)),
            })
            .collect();
        Value { dtype, shape: shape.to_vec(), data }
    };
    let inputs = program.phases[phase].inputs.iter().map(|t| make(t.dtype, &t.shape, 0.8, 0.1)).collect();
    let params = program.params.iter().map(|t| make(t.dtype, &t.shape, 0.1, -0.05)).collect();
    let buffers = program.buffers.iter().map(|t| make(t.dtype, &t.shape, 0.8, 0.1)).collect();
    (inputs, params, buffers)
}

pub fn upload(values: &[Value]) -> Vec<DeviceTensor> {
    values.iter().map(|v| DeviceTensor::from_value(device(), v).unwrap_or_else(|e| panic!("{e}"))).collect()
}
