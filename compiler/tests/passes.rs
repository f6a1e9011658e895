//! The simplification passes preserve meaning: on the training phases of the small specs, the
//! loss and every parameter gradient evaluate to the same values before and after
//! DCE, CSE, constant folding and algebraic simplification, with fewer ops after.

#![allow(clippy::unwrap_used)]

use genc_compiler::autodiff;
use genc_compiler::check::{self, UnitKind};
use genc_compiler::graph::{Graph, Output};
use genc_compiler::interp::{self, Leaves, Value};
use genc_compiler::passes;
use genc_compiler::prim::{DType, Prim};

fn spec(name: &str) -> check::Checked {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../specs").join(format!("{name}.gen"));
    let source = std::fs::read_to_string(path).unwrap();
    let (ast, errors) = genc_grammar::parse(&source);
    assert!(errors.is_empty());
    let checked = check::check(&ast, &[]);
    assert!(checked.errors.is_empty(), "{name}: {:?}", checked.errors);
    checked
}

/// Deterministic values for every leaf the graph reads.
fn leaves_for(g: &Graph) -> (Vec<Value>, Vec<Value>, Vec<Value>) {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let (mut inputs, mut params, mut buffers) = (Vec::new(), Vec::new(), Vec::new());
    for n in g.dag.node_indices() {
        let node = g.node(n);
        let (table, index) = match node.prim {
            Prim::Input { index } => (&mut inputs, index),
            Prim::Param { index } => (&mut params, index),
            Prim::Buffer { index } => (&mut buffers, index),
            _ => continue,
        };
        let shape = node.ty.concrete().unwrap();
        let len: usize = shape.iter().product();
        let is_param = matches!(node.prim, Prim::Param { .. });
        let data: Vec<f64> = (0..len)
            .map(|_| match node.ty.dtype {
                // Small weights keep sigmoids away from saturation, so gradients are alive.
                DType::F32 if is_param => 0.1 * next() - 0.05,
                DType::F32 => 0.1 + 0.8 * next(),
                DType::I32 => (next() * 3.0).floor(),
                DType::Bool => f64::from(u8::from(next() < 0.5)),
            })
            .collect();
        while table.len() <= index {
            table.push(Value::zeros(DType::F32, &[0]));
        }
        table[index] = Value::new(node.ty.dtype, shape, data).unwrap();
    }
    (inputs, params, buffers)
}

#[test]
fn simplification_preserves_losses_and_gradients() {
    for name in ["ae", "vae", "sparse_ae", "denoising_ae", "gan", "cgan", "contractive_ae"] {
        let checked = spec(name);
        for unit in checked.units.iter().filter(|u| u.kind == UnitKind::Phase) {
            let bound = unit.graph.bind_dims(&|s| (s == "B" || s == "n").then_some(3)).unwrap();
            let mut g = autodiff::expand_grads(&bound).unwrap();
            let loss = g.outputs.iter().find(|o| o.name == "loss").unwrap().node;
            let params: Vec<_> =
                g.dag.node_indices().filter(|&n| matches!(g.node(n).prim, Prim::Param { .. })).collect();
            let grads = autodiff::grad(&mut g, loss, &params).unwrap();
            g.outputs = std::iter::once(Output { name: "loss".into(), node: loss })
                .chain(grads.iter().enumerate().map(|(i, &node)| Output { name: format!("grad{i}"), node }))
                .collect();
            let simple = passes::simplify(&g);
            assert!(passes::op_count(&simple) <= passes::op_count(&g), "{name}: simplification added ops");
            let (inputs, params, buffers) = leaves_for(&g);
            let leaves = Leaves { seed: 11, inputs: &inputs, params: &params, buffers: &buffers };
            let before = interp::eval_outputs(&g, &leaves).unwrap();
            let after = interp::eval_outputs(&simple, &leaves).unwrap();
            for (o, (a, b)) in g.outputs.iter().zip(before.iter().zip(&after)) {
                assert_eq!(a.shape, b.shape, "{name} {}: {}", unit.name, o.name);
                for (x, y) in a.data.iter().zip(&b.data) {
                    assert!(
                        (x - y).abs() <= 1e-9 * (1.0 + x.abs()),
                        "{name} {} {}: {x} vs {y}",
                        unit.name,
                        o.name
                    );
                }
            }
            eprintln!(
                "{name} / {}: {} ops -> {} after simplification",
                unit.name,
                passes::op_count(&g),
                passes::op_count(&simple)
            );
        }
    }
}
