//! The weight updates of a training step as planned programs: each optimizer's update, each
//! EMA and each clip of the `step` block becomes a small graph of primitives, simplified,
//! fused and lowered by the same planner as the phases, so it runs on every device, shows in
//! `--emit program` and is checked against the interpreter like any phase.

mod builder;
pub mod optimizer;
mod weights;

use crate::params::Entry;
use crate::plan::{PlanError, plan_graph};
use crate::program::{PhaseProgram, Updates};
use crate::train_spec::{RunSpec, StepOp};

/// The clips of a step in the order their programs are planned (depth first, in order).
pub fn clips(step: &[StepOp]) -> Vec<&StepOp> {
    let mut out = Vec::new();
    for op in step {
        match op {
            StepOp::Clip { .. } | StepOp::ClipNorm { .. } => out.push(op),
            StepOp::Repeat { body, .. } => out.extend(clips(body)),
            StepOp::Phase { .. } => {}
        }
    }
    out
}

/// Plans the updates a run declares over the parameter table `params`.
pub fn plan_updates(run: &RunSpec, params: &[Entry]) -> Result<Updates, PlanError> {
    let entries = |indices: &[usize]| -> Vec<(usize, &Entry)> {
        indices.iter().filter_map(|&i| params.get(i).map(|e| (i, e))).collect()
    };
    let planned = |graph: crate::graph::Graph, name: String| {
        plan_graph(&graph, &name).map_err(|message| PlanError::Phase { phase: name, message })
    };
    let optimizers = run
        .optimizers
        .iter()
        .map(|o| {
            let graph = optimizer::update_graph(&o.name, &o.config, &entries(&o.params));
            planned(graph, format!("{}: {}", o.name, o.config.kind.name()))
        })
        .collect::<Result<Vec<PhaseProgram>, _>>()?;
    let ema = run
        .ema
        .iter()
        .map(|(ps, decay)| planned(weights::ema_graph(&entries(ps), *decay), format!("ema (decay {decay})")))
        .collect::<Result<Vec<_>, _>>()?;
    let clips = clips(&run.step)
        .into_iter()
        .filter_map(|op| match op {
            StepOp::ClipNorm { params, max } => {
                Some(planned(weights::clip_norm_graph(&entries(params), *max), format!("clip to norm {max}")))
            }
            StepOp::Clip { params, lo, hi } => Some(planned(
                weights::clamp_graph(&entries(params), *lo, *hi),
                format!("clip to [{lo}, {hi}]"),
            )),
            StepOp::Phase { .. } | StepOp::Repeat { .. } => None,
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Updates { optimizers, ema, clips })
}
