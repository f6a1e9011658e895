//! Each optimizer's planned update against `torch.optim` itself: three steps with changing
//! gradients, with and without weight decay, gradient clipping and maximization, compared
//! with the weights PyTorch 2.15 computed in f64 for the same steps (the script that wrote
//! the numbers is in the comment on [`TORCH`]).

mod common;

use common::{device, on_every_device};

use std::collections::BTreeMap;

use genc_compiler::check::{OptimizerSpec, OptionValue};
use genc_compiler::optimizer::OptimizerConfig;
use genc_compiler::params::{Entry, Init, Kind};
use genc_compiler::plan::plan_graph;
use genc_compiler::prim::DType;
use genc_compiler::update::optimizer::update_graph;
use genc_runtime::device::DeviceTensor;
use genc_runtime::optim::Optimizer;

/// `(kind, weight_decay, grad_clip, maximize, weights after three steps)`.
type TorchRun = (&'static str, f64, Option<f64>, bool, [f64; 7]);

/// [`TorchRun`]s from:
///
/// ```python
/// p0 = [(i - 3.0) * 0.25 for i in range(7)]
/// grads = [[((i * 7 + s * 3) % 5) * 0.3 - 0.6 for i in range(7)] for s in range(3)]
/// # lr=0.05, weight_decay=wd, maximize=m; SGD momentum=0.9 (nesterov=True for "nesterov");
/// # Adam/AdamW betas=(0.5, 0.999); RMSprop and Adagrad at their defaults
/// for g in grads:
///     p.grad = torch.tensor(g)
///     if clip: torch.nn.utils.clip_grad_norm_([p], clip)
///     opt.step()
/// ```
#[rustfmt::skip]
const TORCH: &[TorchRun] = &[
        ("sgd", 0.0, None, false, [-6.822000000000e-01, -4.580000000000e-01, -3.013000000000e-01, -1.635000000000e-02, 2.078500000000e-01, 5.678000000000e-01, 7.920000000000e-01]),
        ("sgd", 0.1, Some(0.5), false, [-6.981073945637e-01, -4.687874851724e-01, -2.645440280490e-01, -6.484172678063e-03, 2.228357367132e-01, 5.169799491863e-01, 7.462998585776e-01]),
        ("sgd", 0.1, None, true, [-7.963581562500e-01, -5.278849375000e-01, -1.922867187500e-01, 1.648462500000e-02, 2.849578437500e-01, 4.187291875000e-01, 6.872024062500e-01]),
        ("nesterov", 0.0, None, false, [-6.589800000000e-01, -4.472000000000e-01, -2.961700000000e-01, -2.971500000000e-02, 1.820650000000e-01, 5.910200000000e-01, 8.028000000000e-01]),
        ("nesterov", 0.1, Some(0.5), false, [-6.784710162649e-01, -4.590100818591e-01, -2.578711068397e-01, -1.211801636166e-02, 2.073429180442e-01, 5.216562870163e-01, 7.411172214221e-01]),
        ("nesterov", 0.1, None, true, [-8.098275762188e-01, -5.323094213125e-01, -1.953950164063e-01, 2.994327787500e-02, 3.074614327812e-01, 3.902997270625e-01, 6.678178819687e-01]),
        ("adam", 0.0, None, false, [-6.797918960763e-01, -4.528713356180e-01, -2.973315921340e-01, 1.781804624427e-03, 1.813201709640e-01, 5.702081039237e-01, 7.971286643820e-01]),
        ("adam", 0.1, Some(0.5), false, [-6.521240261633e-01, -3.905571461652e-01, -2.838393668441e-01, 1.866056935276e-03, 1.673093968117e-01, 5.462608990357e-01, 7.113608668344e-01]),
        ("adam", 0.1, None, true, [-8.031719398331e-01, -4.884692822628e-01, -1.990328521289e-01, -1.435612827269e-03, 3.117839113491e-01, 4.211447726795e-01, 6.423076715240e-01]),
        ("adamw", 0.0, None, false, [-6.797918960763e-01, -4.528713356180e-01, -2.973315921340e-01, 1.781804624427e-03, 1.813201709640e-01, 5.702081039237e-01, 7.971286643820e-01]),
        ("adamw", 0.1, Some(0.5), false, [-6.666017399453e-01, -4.481934065853e-01, -2.913206130144e-01, 2.338832085209e-03, 1.753775170123e-01, 5.647418538047e-01, 7.831501871647e-01]),
        ("adamw", 0.1, None, true, [-8.085155101820e-01, -5.394304585601e-01, -1.995537572236e-01, -1.441144797122e-03, 3.145331311331e-01, 4.228280835680e-01, 6.919131351899e-01]),
        ("rmsprop", 0.0, None, false, [-2.688411478157e-01, -2.245066772646e-01, -3.946744042470e-01, 5.233841909780e-02, -3.048285855806e-01, 9.811588521843e-01, 1.025493322735e+00]),
        ("rmsprop", 0.1, Some(0.5), false, [-1.657755082292e-01, 1.937174912663e-01, -1.957016871507e-01, 3.477789095901e-02, -3.035834000922e-01, 7.610197776073e-01, 3.936818413946e-01]),
        ("rmsprop", 0.1, None, true, [-1.081741907796e+00, -2.461466021530e-01, -1.247012792388e-01, -4.241594982182e-02, 7.333061499118e-01, 4.240355339975e-03, -1.636612783970e-02]),
        ("adagrad", 0.0, None, false, [-7.019482652596e-01, -4.723606797800e-01, -2.646446609365e-01, 5.278640440004e-03, 1.945305100268e-01, 5.480517347404e-01, 7.776393202200e-01]),
        ("adagrad", 0.1, Some(0.5), false, [-6.821743834408e-01, -4.167325677340e-01, -2.541909185142e-01, 5.325350670590e-03, 1.858013164659e-01, 5.331331539529e-01, 7.097454506854e-01]),
        ("adagrad", 0.1, None, true, [-7.869469836590e-01, -4.732055488857e-01, -2.324078120060e-01, -5.166306553856e-03, 3.016162771167e-01, 4.460172948535e-01, 6.667657393081e-01]),
];

/// `kind(options)` as a spec's train block would give it, through the optimizer table.
fn spec(kind: &str, options: &[(&str, OptionValue)]) -> OptimizerSpec {
    let options: BTreeMap<String, OptionValue> =
        options.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    let config = OptimizerConfig::from_options(kind, &options).unwrap_or_else(|p| panic!("{kind}: {p:?}"));
    OptimizerSpec { name: "opt".into(), config, params: vec![0], schedule: None }
}

/// The spec options of a row of [`TORCH`].
fn options(kind: &str, wd: f64, clip: Option<f64>) -> (&str, Vec<(&'static str, OptionValue)>) {
    let mut options = vec![("lr", OptionValue::Number(0.05)), ("weight_decay", OptionValue::Number(wd))];
    let kind = match kind {
        "sgd" | "nesterov" => {
            options.push(("momentum", OptionValue::Number(0.9)));
            options.push(("nesterov", OptionValue::Bool(kind == "nesterov")));
            "sgd"
        }
        "adam" | "adamw" => {
            options.push(("betas", OptionValue::List(vec![0.5, 0.999])));
            kind
        }
        _ => kind,
    };
    if let Some(c) = clip {
        options.push(("grad_clip", OptionValue::Number(c)));
    }
    (kind, options)
}

#[test]
fn every_optimizer_matches_pytorch() {
    on_every_device(|| {
        let p0: Vec<f64> = (0..7).map(|i| (i as f64 - 3.0) * 0.25).collect();
        let grads: Vec<Vec<f64>> =
            (0..3).map(|s| (0..7).map(|i| ((i * 7 + s * 3) % 5) as f64 * 0.3 - 0.6).collect()).collect();
        let entry = Entry {
            name: "w".into(),
            shape: vec![7],
            init: Init::Zeros,
            kind: Kind::Trainable,
            owner: None,
            span: Default::default(),
        };
        for &(row, wd, clip, maximize, want) in TORCH {
            let what = format!("{row} weight_decay={wd} grad_clip={clip:?} maximize={maximize}");
            let (kind, options) = options(row, wd, clip);
            let spec = spec(kind, &options);
            let update = plan_graph(&update_graph("opt", &spec.config, &[(0, &entry)]), "opt")
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            let d = device();
            let mut opt = Optimizer::new(d, &spec, &[vec![7]], 3, &update).unwrap_or_else(|e| panic!("{e}"));
            let upload = |x: &[f64]| {
                let x: Vec<f32> = x.iter().map(|&v| v as f32).collect();
                DeviceTensor::from_f32(d, DType::F32, &[7], &x).unwrap_or_else(|e| panic!("{e}"))
            };
            let mut params = vec![upload(&p0)];
            for g in &grads {
                let norm2 =
                    opt.step(d, &mut params, &[upload(g)], maximize).unwrap_or_else(|e| panic!("{e}"));
                let want_norm2: f64 = g.iter().map(|x| x * x).sum();
                assert!((norm2 - want_norm2).abs() < 1e-5, "{what}: |g|^2 {norm2}, want {want_norm2}");
            }
            let got = params[0].to_f64(d).unwrap_or_else(|e| panic!("{e}"));
            for (a, b) in got.iter().zip(want) {
                assert!((a - b).abs() < 2e-5, "{what}: genc {a}, PyTorch {b}");
            }
        }
    });
}

/// A non-finite gradient replaces nothing: the weights, the state and the step count stay.
#[test]
fn a_non_finite_gradient_leaves_the_weights_alone() {
    on_every_device(|| {
        let d = device();
        let (kind, options) = options("adam", 0.0, Some(1.0));
        let spec = spec(kind, &options);
        let entry = Entry {
            name: "w".into(),
            shape: vec![2],
            init: Init::Zeros,
            kind: Kind::Trainable,
            owner: None,
            span: Default::default(),
        };
        let update = plan_graph(&update_graph("opt", &spec.config, &[(0, &entry)]), "opt")
            .unwrap_or_else(|e| panic!("{e}"));
        let mut opt = Optimizer::new(d, &spec, &[vec![2]], 3, &update).unwrap_or_else(|e| panic!("{e}"));
        let t =
            |x: [f32; 2]| DeviceTensor::from_f32(d, DType::F32, &[2], &x).unwrap_or_else(|e| panic!("{e}"));
        let mut params = vec![t([1.0, 2.0])];
        let norm2 = opt.step(d, &mut params, &[t([f32::NAN, 0.5])], false).unwrap_or_else(|e| panic!("{e}"));
        assert!(norm2.is_nan());
        assert_eq!(params[0].to_f32(d).unwrap_or_else(|e| panic!("{e}")), vec![1.0, 2.0]);
        assert_eq!((opt.steps, opt.applied), (0, 0));
        let m = opt.state[0][0].to_f32(d).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(m, vec![0.0, 0.0]);
    });
}
