//! `make bench-kernels`: kernel timings on each device of this machine, one block per device:
//! the host device (`cpu`) and Vulkan (`vulkan-cpu`, lavapipe, without a GPU; `gpu` with one).
//! `BENCH_DEVICES="cpu gpu"` picks the devices (default `cpu vulkan-cpu`).
//!
//! Prints matmul GFLOP/s (512³, 1024³, the DCGAN shape 12544x1024x128) for each matmul path,
//! forward and backward times of the DCGAN-28 convolution layers at batch 64, the fused
//! element-wise `tanh(a*b+c)` bandwidth on 16M floats, reductions with a fused element-wise
//! prologue against the same work in two kernels, and the cost of one kernel launch.
//! Each figure is the median of several repetitions, each ending with a device sync;
//! the first call (which compiles the kernel) is not timed. `BENCH_QUICK=1` runs fewer reps.

use std::time::Instant;

use genc_compiler::prim::{BinaryOp, ConvGeometry, DType, Prim, ReduceOp, UnaryOp};
use genc_runtime::device::{Device, DeviceChoice, DeviceTensor};
use genc_runtime::kernels::elementwise::{EwOp, FusedProgram, Instr, run_fused};
use genc_runtime::kernels::matmul::{MatmulPath, matmul};
use genc_runtime::kernels::reduce::{FusedReduce, Reduction, run_fused_reduce};
use genc_runtime::kernels::{self, Leaves};

fn fail(e: impl std::fmt::Display) -> ! {
    eprintln!("bench failed: {e}");
    std::process::exit(1)
}

/// Median seconds per call of `f` (after one untimed warm-up call).
fn time(device: &Device, mut f: impl FnMut()) -> f64 {
    f();
    device.sync().unwrap_or_else(|e| fail(e));
    let reps = if std::env::var("BENCH_QUICK").is_ok() { 3 } else { 7 };
    let mut times = Vec::new();
    for _ in 0..reps {
        // Enough calls to last ~0.2 s, then one sync.
        let start = Instant::now();
        let mut calls = 0;
        while calls == 0 || start.elapsed().as_secs_f64() < 0.2 {
            f();
            device.sync().unwrap_or_else(|e| fail(e));
            calls += 1;
        }
        times.push(start.elapsed().as_secs_f64() / calls as f64);
    }
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn parse_path(s: &str) -> MatmulPath {
    if s == "cubek" {
        return MatmulPath::Cubek;
    }
    let tile = s.strip_prefix("tiled:").and_then(|t| t.split_once('x'));
    match tile.map(|(a, b)| (a.parse::<usize>(), b.parse::<usize>())) {
        Some((Ok(tm), Ok(tn))) => MatmulPath::Tiled { tm, tn },
        _ => fail(format!("unknown matmul path `{s}` (cubek or tiled:TMxTN)")),
    }
}

fn random(device: &Device, shape: &[usize], stream: u32) -> DeviceTensor {
    let leaves = Leaves { seed: 1, ..Leaves::default() };
    let prim = Prim::Random { dist: genc_compiler::prim::Distribution::Uniform, stream };
    kernels::eval(device, &prim, &[], shape, DType::F32, &leaves).unwrap_or_else(|e| fail(e))
}

/// A fused reduction to time: `(a - b)^2` (`square`) or `a * b` over `shape` (`b` has shape
/// `other`, broadcast), reduced over `axes`, the element value also written when `write`.
struct ReduceCase {
    what: &'static str,
    shape: &'static [usize],
    other: &'static [usize],
    axes: &'static [usize],
    square: bool,
    write: bool,
}

fn main() {
    // `cargo bench` passes `--bench`; the first other argument picks one group.
    let only = std::env::args().skip(1).find(|a| !a.starts_with("--")).unwrap_or_default();
    let devices = std::env::var("BENCH_DEVICES").unwrap_or_else(|_| "cpu vulkan-cpu".into());
    for name in devices.split([' ', ',']).filter(|n| !n.is_empty()) {
        let choice: DeviceChoice = name.parse().unwrap_or_else(|e: String| fail(e));
        match Device::open(choice) {
            Ok(device) => {
                println!("\n## device `{name}`: {}", device.info());
                bench(&device, &only);
            }
            // One device missing (no Vulkan driver) leaves the others' figures.
            Err(e) => println!("\n## device `{name}`: cannot be opened ({e}); skipped"),
        }
    }
}

fn bench(device: &Device, only: &str) {
    let device = device.clone();
    let leaves = Leaves::default();

    if only.is_empty() || only == "matmul" {
        // BENCH_PATHS=cubek,tiled:8x8,... picks the paths; BENCH_SHAPES=512 only the first shape.
        let paths: Vec<MatmulPath> = match std::env::var("BENCH_PATHS") {
            // The host device has one matmul: the `gemm` crate.
            _ if matches!(device, Device::Host(_)) => vec![genc_runtime::kernels::matmul::DEFAULT_PATH],
            Ok(list) => list.split(',').map(parse_path).collect(),
            Err(_) => vec![
                MatmulPath::Tiled { tm: 4, tn: 4 },
                MatmulPath::Tiled { tm: 8, tn: 8 },
                MatmulPath::Cubek,
                genc_runtime::kernels::matmul::DEFAULT_PATH,
            ],
        };
        // BENCH_SHAPES=MxKxN,... picks the shapes.
        let shapes: Vec<(usize, usize, usize)> = match std::env::var("BENCH_SHAPES") {
            Ok(list) => list
                .split(',')
                .map(|s| {
                    let d: Vec<usize> = s.split('x').filter_map(|v| v.parse().ok()).collect();
                    if d.len() != 3 {
                        fail(format!("bad shape `{s}` (MxKxN)"));
                    }
                    (d[0], d[1], d[2])
                })
                .collect(),
            Err(_) => vec![(512, 512, 512), (1024, 1024, 1024), (12544, 1024, 128)],
        };
        for &(m, k, n) in &shapes {
            let a = random(&device, &[m, k], 0);
            let b = random(&device, &[k, n], 1);
            for &path in &paths {
                let s = time(&device, || {
                    matmul(&device, &a, &b, &[m, n], path).unwrap_or_else(|e| fail(e));
                });
                let gflops = 2.0 * (m * k * n) as f64 / s / 1e9;
                let path = match device {
                    Device::Host(_) => "gemm crate".to_string(),
                    Device::Cube(_) => format!("{path:?}"),
                };
                println!("matmul {m}x{k}x{n} {path}: {:.2} ms, {gflops:.1} GFLOP/s", s * 1e3);
            }
        }
    }

    if only.is_empty() || only == "conv" {
        // DCGAN-28 (4x4 kernels, pad 1) and WGAN-GP's critic (5x5, pad 2) at batch 64, all
        // stride 2: (name, transposed, pad, x shape, w shape, y shape).
        type Layer = (&'static str, bool, usize, [usize; 4], [usize; 4], [usize; 4]);
        let layers: [Layer; 7] = [
            (
                "G conv_transpose2d 256->128 7->14",
                true,
                1,
                [64, 256, 7, 7],
                [256, 128, 4, 4],
                [64, 128, 14, 14],
            ),
            ("G conv_transpose2d 128->1 14->28", true, 1, [64, 128, 14, 14], [128, 1, 4, 4], [64, 1, 28, 28]),
            ("D conv2d 1->64 28->14", false, 1, [64, 1, 28, 28], [64, 1, 4, 4], [64, 64, 14, 14]),
            ("D conv2d 64->128 14->7", false, 1, [64, 64, 14, 14], [128, 64, 4, 4], [64, 128, 7, 7]),
            ("WGAN-GP D conv2d 1->64 k5 28->14", false, 2, [64, 1, 28, 28], [64, 1, 5, 5], [64, 64, 14, 14]),
            (
                "WGAN-GP D conv2d 64->128 k5 14->7",
                false,
                2,
                [64, 64, 14, 14],
                [128, 64, 5, 5],
                [64, 128, 7, 7],
            ),
            (
                "WGAN-GP D conv2d 128->256 k5 7->4",
                false,
                2,
                [64, 128, 7, 7],
                [256, 128, 5, 5],
                [64, 256, 4, 4],
            ),
        ];
        let mut total = 0.0;
        for (i, (name, transposed, pad, xs, ws, ys)) in layers.into_iter().enumerate() {
            let geo = ConvGeometry { stride: [2, 2], pad: [pad, pad], dilation: [1, 1], groups: 1 };
            let (conv, convt, wgrad) = (
                Prim::Conv2d(geo),
                Prim::ConvTranspose2d { geometry: geo, output_padding: [0, 0] },
                Prim::Conv2dWeightGrad(geo),
            );
            let x = random(&device, &xs, 2);
            let w = random(&device, &ws, 3);
            let dy = random(&device, &ys, 4);
            let run = |p: &Prim, ins: &[&DeviceTensor], shape: &[usize]| {
                kernels::eval(&device, p, ins, shape, DType::F32, &leaves).unwrap_or_else(|e| fail(e));
            };
            let (fwd, bwd_x, bwd_w) = if transposed {
                (
                    time(&device, || run(&convt, &[&x, &w], &ys)),
                    time(&device, || run(&conv, &[&dy, &w], &xs)),
                    time(&device, || run(&wgrad, &[&dy, &x], &ws)),
                )
            } else {
                (
                    time(&device, || run(&conv, &[&x, &w], &ys)),
                    time(&device, || run(&convt, &[&dy, &w], &xs)),
                    time(&device, || run(&wgrad, &[&x, &dy], &ws)),
                )
            };
            if i < 4 {
                total += fwd + bwd_x + bwd_w;
            }
            println!(
                "{name}: forward {:.2} ms, backward data {:.2} ms, backward weight {:.2} ms",
                fwd * 1e3,
                bwd_x * 1e3,
                bwd_w * 1e3
            );
        }
        println!("DCGAN-28 conv layers, forward + backward, batch 64: {:.1} ms", total * 1e3);
    }

    if only.is_empty() || only == "elementwise" {
        let n = 16 * 1024 * 1024;
        let (a, b, c) = (random(&device, &[n], 5), random(&device, &[n], 6), random(&device, &[n], 7));
        let program = FusedProgram {
            n_inputs: 3,
            instrs: vec![
                Instr { op: EwOp::Mul, a: 0, b: 1, c: 0 },
                Instr { op: EwOp::Add, a: 3, b: 2, c: 0 },
                Instr { op: EwOp::Tanh, a: 4, b: 0, c: 0 },
            ],
            outputs: vec![5],
        };
        let s = time(&device, || {
            run_fused(&device, &program, &[&a, &b, &c], &[n], &[DType::F32]).unwrap_or_else(|e| fail(e));
        });
        println!(
            "fused tanh(a*b+c), 16M f32: {:.2} ms, {:.2} GB/s (16 B/element)",
            s * 1e3,
            16.0 * n as f64 / s / 1e9
        );
        // The same as three separate kernels, for comparison.
        let run = |p: Prim, ins: &[&DeviceTensor]| {
            kernels::eval(&device, &p, ins, &[n], DType::F32, &leaves).unwrap_or_else(|e| fail(e))
        };
        let s3 = time(&device, || {
            let ab = run(Prim::Binary(BinaryOp::Mul), &[&a, &b]);
            let s = run(Prim::Binary(BinaryOp::Add), &[&ab, &c]);
            run(Prim::Unary(UnaryOp::Tanh), &[&s]);
        });
        println!("unfused (3 kernels): {:.2} ms", s3 * 1e3);
    }

    if only.is_empty() || only == "reduce" {
        // Batch-norm variance, a bias gradient, a loss mean.
        let cases = [
            ReduceCase {
                what: "sum((x - m)^2) over 0,2,3 of [128, 256, 7, 7]",
                shape: &[128, 256, 7, 7],
                other: &[1, 256, 1, 1],
                axes: &[0, 2, 3],
                square: true,
                write: false,
            },
            ReduceCase {
                what: "sum(a * b) over 0 of [100, 784], a * b written",
                shape: &[100, 784],
                other: &[100, 784],
                axes: &[0],
                square: false,
                write: true,
            },
            ReduceCase {
                what: "mean((a - b)^2) over all of [100, 784]",
                shape: &[100, 784],
                other: &[100, 784],
                axes: &[0, 1],
                square: true,
                write: false,
            },
        ];
        for ReduceCase { what, shape, other, axes, square, write } in cases {
            let (a, b) = (random(&device, shape, 9), random(&device, other, 10));
            let instrs = if square {
                vec![Instr { op: EwOp::Sub, a: 0, b: 1, c: 0 }, Instr { op: EwOp::Mul, a: 2, b: 2, c: 0 }]
            } else {
                vec![Instr { op: EwOp::Mul, a: 0, b: 1, c: 0 }]
            };
            let last = 1 + instrs.len();
            let written = if write { vec![last] } else { vec![] };
            let op = if what.starts_with("mean") { ReduceOp::Mean } else { ReduceOp::Sum };
            let mut out_shape = shape.to_vec();
            for &ax in axes {
                out_shape[ax] = 1;
            }
            let two = FusedProgram { n_inputs: 2, instrs: instrs.clone(), outputs: vec![last] };
            let unfused = time(&device, || {
                let outs =
                    run_fused(&device, &two, &[&a, &b], shape, &[DType::F32]).unwrap_or_else(|e| fail(e));
                let prim = Prim::Reduce { op, axes: axes.to_vec() };
                kernels::eval(&device, &prim, &[&outs[0]], &out_shape, DType::F32, &leaves)
                    .unwrap_or_else(|e| fail(e));
            });
            let one = FusedProgram { n_inputs: 2, instrs, outputs: written.clone() };
            let reductions = [Reduction { arg: last, op, dtype: DType::F32 }];
            let spec = FusedReduce { program: &one, axes, reductions: &reductions };
            let dtypes = vec![DType::F32; written.len()];
            let fused = time(&device, || {
                run_fused_reduce(&device, &spec, &[&a, &b], shape, &dtypes).unwrap_or_else(|e| fail(e));
            });
            println!("{what}: fused {:.3} ms, two kernels {:.3} ms", fused * 1e3, unfused * 1e3);
        }
    }

    if only.is_empty() || only == "launch" {
        let x = random(&device, &[1], 8);
        let prim = Prim::Unary(UnaryOp::Neg);
        let launches = 1000;
        let s = time(&device, || {
            for _ in 0..launches {
                kernels::eval(&device, &prim, &[&x], &[1], DType::F32, &leaves).unwrap_or_else(|e| fail(e));
            }
        });
        println!(
            "launch overhead: {:.1} us per kernel ({launches} one-element launches, one sync)",
            s / launches as f64 * 1e6
        );
    }
}
