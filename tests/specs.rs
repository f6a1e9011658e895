//! The model specs: each parses, is already in canonical layout, and keeps snapshots of its
//! formatted text, its syntax tree, its typed graphs and its summary.

mod common;

#[test]
fn every_spec_parses_and_is_formatted() {
    let specs = common::gen_files("specs");
    assert_eq!(specs.len(), 20, "one spec per model family, and the metrics' classifier");
    for path in specs {
        let source = common::read(&path);
        let name = common::stem(&path);
        let formatted = common::assert_format_properties(&name, &source);
        assert!(formatted == source, "specs/{name}.gen is not in canonical layout; run `genc fmt --write`");
        let (ast, _) = genc_grammar::parse(&source);
        insta::with_settings!({ snapshot_suffix => name.clone(), prepend_module_to_snapshot => false }, {
            insta::assert_snapshot!("fmt", formatted);
            insta::assert_snapshot!("ast", genc_grammar::dump::dump(&ast));
        });
    }
}

#[test]
fn every_spec_type_checks_with_snapshots_of_typed_and_summary() {
    for path in common::gen_files("specs") {
        let source = common::read(&path);
        let name = common::stem(&path);
        let checked = common::check(&name, &source);
        assert!(
            checked.errors.is_empty(),
            "specs/{name}.gen has type errors:\n{}",
            common::render_type_errors(&name, &source)
        );
        insta::with_settings!({ snapshot_suffix => name.clone(), prepend_module_to_snapshot => false }, {
            insta::assert_snapshot!("typed", genc_compiler::stages::graph_text(&checked, true));
            insta::assert_snapshot!("summary", genc_compiler::stages::summary(&checked));
        });
    }
}

/// The DCGAN-64 of the paper has these parameter counts in every framework.
#[test]
fn dcgan64_parameter_counts_match_the_reference() {
    let source = common::read(&common::root().join("specs/dcgan64.gen"));
    let checked = common::check("dcgan64", &source);
    let count = |net: &str| checked.table.owned_by(net).map(|(_, e)| e.numel()).sum::<usize>();
    assert_eq!(count("G"), 3_576_704);
    assert_eq!(count("D"), 2_765_568);
}

/// The checker counts the primitive ops and names the weights the way checkpoints will.
#[test]
fn dcgan_parameter_names_are_hierarchical() {
    let source = common::read(&common::root().join("specs/dcgan.gen"));
    let checked = common::check("dcgan", &source);
    let names: Vec<&str> = checked.table.params.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names[0], "G.linear0.weight");
    assert!(names.contains(&"D.batch_norm0.weight"), "{names:?}");
    let buffers: Vec<&str> = checked.table.buffers.iter().map(|e| e.name.as_str()).collect();
    assert!(buffers.contains(&"G.batch_norm0.running_mean"), "{buffers:?}");
}

#[test]
fn every_spec_plans_with_snapshots_of_grad_fused_and_program() {
    for path in common::gen_files("specs") {
        let source = common::read(&path);
        let name = common::stem(&path);
        let checked = common::check(&name, &source);
        let (program, stages) =
            genc_compiler::plan::plan(&checked, None).unwrap_or_else(|e| panic!("specs/{name}.gen: {e}"));
        let grad: String =
            stages.iter().map(|s| format!("phase {} {{\n{}}}\n\n", s.name, s.grad.to_text(true))).collect();
        let fused: String = stages
            .iter()
            .map(|s| format!("phase {} {{\n{}}}\n\n", s.name, s.partition.to_text(&s.simplified)))
            .collect();
        insta::with_settings!({ snapshot_suffix => name.clone(), prepend_module_to_snapshot => false }, {
            insta::assert_snapshot!("grad", grad);
            insta::assert_snapshot!("fused", fused);
            insta::assert_snapshot!("program", program.to_text());
        });
    }
}

/// Primitive ops and kernels per training phase, and kernels per weight update, pinned so a
/// fusion regression fails here. An optimizer without a gradient clip updates each parameter
/// and sums its gradient's squares in one kernel (two parameters of one shape share it), and
/// adds the sums in one more.
#[test]
fn kernel_counts_per_phase() {
    let counts = |name: &str| -> (Vec<(usize, usize)>, Vec<usize>) {
        let source = common::read(&common::root().join(format!("specs/{name}.gen")));
        let (program, _) =
            genc_compiler::plan::plan(&common::check(name, &source), None).unwrap_or_else(|e| panic!("{e}"));
        let u = &program.updates;
        (
            program.phases.iter().map(|p| (p.primitive_ops, p.kernels)).collect(),
            u.optimizers.iter().chain(&u.ema).chain(&u.clips).map(|p| p.kernels).collect(),
        )
    };
    assert_eq!(counts("vae"), (vec![(111, 33)], vec![11]));
    assert_eq!(counts("dcgan"), (vec![(295, 80), (228, 56)], vec![7, 7]));
    assert_eq!(counts("wgan_gp"), (vec![(630, 168), (243, 62)], vec![11, 9]));
}

/// The host programs of the samplers with loops (DDPM's reverse process, PixelCNN's pixel
/// loop): variables, host steps and every planned segment.
#[test]
fn samplers_with_host_loops_have_snapshots_of_their_host_program() {
    for name in ["ddpm", "pixelcnn"] {
        let source = common::read(&common::root().join(format!("specs/{name}.gen")));
        let checked = common::check(name, &source);
        let text: String = checked
            .units
            .iter()
            .filter(|u| u.kind == genc_compiler::check::UnitKind::Sampler)
            .map(|u| {
                let program = genc_compiler::sampler::plan_sampler(&checked, u, &|_| Some(64))
                    .unwrap_or_else(|e| panic!("specs/{name}.gen: {e}"));
                program.to_text()
            })
            .collect();
        insta::with_settings!({ snapshot_suffix => name, prepend_module_to_snapshot => false }, {
            insta::assert_snapshot!("sampler", text);
        });
    }
}
