//! `genc`: check, format, compile and (later) train `.gen` model specs.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use genc::commands::{self, Status, compile::Stage, fmt::Mode};
use genc::report::{ColorChoice, MessageFormat, Reporter};

/// genc compiles generative image models written as `.gen` specs.
///
/// Exit status: 0 when clean, 1 when a spec has diagnostics (or is not formatted, with
/// `fmt --check`), 2 on a usage or I/O error.
#[derive(Parser)]
#[command(
    name = "genc",
    version,
    about,
    after_help = "The language: docs/language.md. Error codes: docs/errors.md."
)]
struct Cli {
    /// When to colour diagnostics.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    color: ColorChoice,

    /// `human` reports on stderr, or `json`: one object per diagnostic per line on stdout.
    #[arg(long, global = true, value_enum, default_value_t = MessageFormat::Human)]
    message_format: MessageFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Parse and type-check specs; report every diagnostic.
    Check {
        /// The `.gen` files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Override a `param`: `--set lambda=5` (repeatable).
        #[arg(long = "set", value_name = "NAME=VALUE")]
        set: Vec<String>,
    },
    /// Print, per net, its layers, output shapes and parameter counts.
    Summary {
        file: PathBuf,
        /// Override a `param`: `--set ngf=32` (repeatable).
        #[arg(long = "set", value_name = "NAME=VALUE")]
        set: Vec<String>,
    },
    /// Snapshot tests of your own specs: each stage's stable text in
    /// `snapshots/<spec>.<stage>.snap` beside the spec (insta's file format). New snapshots are
    /// written; a changed stage gets its diff printed and its new text in `.snap.new`, and the
    /// exit status is 1.
    Snap {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The stages to keep (repeatable, or comma-separated).
        #[arg(long, value_enum, value_delimiter = ',', default_values = ["summary", "typed"])]
        stage: Vec<commands::snap::SnapStage>,
        /// Write nothing: exit 1 with a unified diff if a stage changed or has no snapshot (for CI).
        #[arg(long, conflicts_with_all = ["accept", "review"])]
        check: bool,
        /// Write every snapshot as it is now.
        #[arg(long, conflicts_with = "review")]
        accept: bool,
        /// Show each change and ask on stdin whether to accept it.
        #[arg(long)]
        review: bool,
        /// Override a `param`: `--set ngf=32` (repeatable).
        #[arg(long = "set", value_name = "NAME=VALUE")]
        set: Vec<String>,
    },
    /// A language server over stdio for editors: diagnostics while typing, hover with shapes,
    /// go to definition, symbols, formatting and completion (docs/editors.md).
    Lsp,
    /// Print specs in the canonical layout.
    Fmt {
        /// Change nothing; exit 1 if a file is not formatted.
        #[arg(long, conflicts_with = "write")]
        check: bool,
        /// Rewrite the files in place.
        #[arg(long, short)]
        write: bool,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print a compiler stage of a spec in its stable text form.
    Compile {
        file: PathBuf,
        /// The stage to print.
        #[arg(long, value_enum, default_value_t = Stage::Ast)]
        emit: Stage,
        /// Override a `param` (repeatable).
        #[arg(long = "set", value_name = "NAME=VALUE")]
        set: Vec<String>,
    },
    /// List the Vulkan adapters and open the device `--device` picks.
    Devices {
        /// `auto` (a GPU when there is one, else the host CPU), `gpu` (hardware only), `cpu`
        /// (genc's own CPU kernels) or `vulkan-cpu` (the GPU kernels on lavapipe).
        #[arg(long, default_value = "auto")]
        device: genc_runtime::device::DeviceChoice,
    },
    /// Train a spec on its data: metrics, sample grids, a loss plot and checkpoints in a run folder.
    Train {
        /// The spec (or give it in the config's `spec`).
        spec: Option<PathBuf>,
        /// A YAML run config.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Override a run setting or a `param`: `--set steps=200`, `--set lambda=5` (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// The run folder (default `runs/<spec>-<time>`).
        #[arg(long, conflicts_with = "resume")]
        out: Option<PathBuf>,
        /// Continue the run in this folder from its checkpoint, exactly as if it had never
        /// stopped (raise its length with `--set steps=N`).
        #[arg(long, value_name = "RUN_DIR")]
        resume: Option<PathBuf>,
        /// Time each kind of work in a step (library ops, fused kernels, the data feed,
        /// optimizer updates) from the second step on, and print where the time goes at the
        /// end (also written to RUN/profile.md). Waits for the device after each kernel.
        #[arg(long)]
        profile: bool,
    },
    /// Sample from a trained run's last checkpoint (EMA weights when kept) into a PNG grid, a
    /// `.npy` array or a folder of PNGs.
    Sample {
        /// The run folder `genc train` wrote.
        run: PathBuf,
        /// How many samples.
        #[arg(long, default_value_t = 64)]
        n: usize,
        /// A `sampler` of the spec, or the name of a `sample` entry (default: the first sampler).
        #[arg(long)]
        sampler: Option<String>,
        /// The file to write, by its extension: `.png` a grid, `.npy` the samples as a float32
        /// array [N, C, H, W] (default `RUN/sample-<sampler>.png`); the folder with
        /// `--format png-dir`.
        #[arg(long)]
        out: Option<PathBuf>,
        /// `grid`, `npy` or `png-dir` (one PNG per sample, `000000.png`, ..), whatever
        /// `--out`'s extension (default: by the extension, else `grid`).
        #[arg(long, value_parser = parse_format)]
        format: Option<commands::sample::OutputFormat>,
        /// The seed of the random draws (default: the run's seed).
        #[arg(long)]
        seed: Option<u64>,
        /// The spec, when the run's `config.yaml` does not name it.
        #[arg(long)]
        spec: Option<PathBuf>,
    },
    /// Score a trained run: the spec's `eval` entries on its last checkpoint over the whole
    /// test set (test NLL, reconstruction error, PSNR/SSIM), and generated 28x28 grayscale
    /// images against Fashion-MNIST's test set with genc's own classifier: Fréchet distance
    /// of its features (FID's formula), KID, classifier score and the classes covered.
    Eval {
        /// A run folder `genc train` wrote: its evals run, and samples are drawn from its sampler.
        run: Option<PathBuf>,
        /// How many samples to draw from the run (0: the spec's evals alone).
        #[arg(long, default_value_t = 10_000)]
        n: usize,
        /// The run's sampler, or a `sample` entry (default: its first sampler).
        #[arg(long)]
        sampler: Option<String>,
        /// The seed of the first draw (default: the run's).
        #[arg(long)]
        seed: Option<u64>,
        /// Score a float32 `.npy` array [N, 1, 28, 28] instead of a run.
        #[arg(long, conflicts_with = "run")]
        images: Option<PathBuf>,
        /// The images' value range, `LO,HI`, with `--images` (a run's samples use its data range).
        #[arg(long, default_value = "0,1", value_parser = parse_range, allow_hyphen_values = true)]
        range: (f32, f32),
        /// Where the classifier runs: `auto`, `gpu`, `cpu` or `vulkan-cpu`.
        #[arg(long, default_value = "auto")]
        device: genc_runtime::device::DeviceChoice,
        /// KID's random subsets, and the images in each.
        #[arg(long, default_value_t = 10)]
        kid_subsets: usize,
        #[arg(long, default_value_t = 1000)]
        kid_size: usize,
        /// Compare with the first N test images only (default: all 10,000).
        #[arg(long, value_name = "N")]
        reference: Option<usize>,
        /// Print the metrics as JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// The k-th sample was asked for class k mod 10 (a conditional sampler labelled
        /// `arange(n) % 10`): also report how often the classifier agrees.
        #[arg(long)]
        conditional: bool,
    },
    /// Write a run's trained weights (parameters and buffers, EMA copies where kept; no
    /// optimizer state) to a safetensors file.
    Weights {
        /// The run folder `genc train` wrote.
        run: PathBuf,
        /// The safetensors file to write (atomically).
        #[arg(long)]
        out: PathBuf,
    },
}

/// `LO,HI` as a pair of numbers.
fn parse_format(text: &str) -> Result<commands::sample::OutputFormat, String> {
    text.parse()
}

fn parse_range(text: &str) -> Result<(f32, f32), String> {
    let parse = |t: &str| t.trim().parse::<f32>().map_err(|_| format!("`{t}` is not a number"));
    match text.split_once(',') {
        Some((lo, hi)) => Ok((parse(lo)?, parse(hi)?)),
        None => Err(format!("`{text}` is not LO,HI")),
    }
}

fn main() -> ExitCode {
    install_panic_hook();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { Status::Usage as u8 } else { 0 });
        }
    };
    let reporter = Reporter::new(cli.message_format, cli.color);
    let status = match &cli.command {
        Command::Check { files, set } => commands::check::run(files, set, &reporter),
        Command::Summary { file, set } => commands::summary::run(file, set, &reporter),
        Command::Lsp => commands::lsp::run(),
        Command::Snap { files, stage, check, accept, review, set } => {
            use commands::snap::Mode;
            let mode = match (check, accept, review) {
                (true, _, _) => Mode::Check,
                (_, true, _) => Mode::Accept,
                (_, _, true) => Mode::Review,
                _ => Mode::Write,
            };
            let args =
                commands::snap::Args { specs: files.clone(), stages: stage.clone(), mode, sets: set.clone() };
            commands::snap::run(&args, &reporter)
        }
        Command::Fmt { check, write, files } => {
            let mode = if *check {
                Mode::Check
            } else if *write {
                Mode::Write
            } else {
                Mode::Print
            };
            commands::fmt::run(files, mode, &reporter)
        }
        Command::Compile { file, emit, set } => commands::compile::run(file, *emit, set, &reporter),
        Command::Devices { device } => commands::devices::run(*device, &reporter),
        Command::Train { spec, config, set, out, resume, profile } => {
            let args = commands::train::Args {
                spec: spec.clone(),
                config: config.clone(),
                set: set.clone(),
                out: out.clone(),
                resume: resume.clone(),
                profile: *profile,
            };
            commands::train::run(&args, &reporter)
        }
        Command::Eval {
            run,
            n,
            sampler,
            seed,
            images,
            range,
            device,
            kid_subsets,
            kid_size,
            reference,
            json,
            conditional,
        } => {
            let args = commands::eval::Args {
                run: run.clone(),
                n: *n,
                sampler: sampler.clone(),
                seed: *seed,
                images: images.clone(),
                range: *range,
                device: *device,
                kid_subsets: *kid_subsets,
                kid_size: *kid_size,
                reference: *reference,
                json: *json,
                conditional: *conditional,
            };
            commands::eval::run(&args, &reporter)
        }
        Command::Weights { run, out } => commands::weights::run(run, out, &reporter),
        Command::Sample { run, n, sampler, out, format, seed, spec } => {
            let args = commands::sample::Args {
                run: run.clone(),
                n: *n,
                sampler: sampler.clone(),
                out: out.clone(),
                format: *format,
                seed: *seed,
                spec: spec.clone(),
            };
            commands::sample::run(&args, &reporter)
        }
    };
    ExitCode::from(status as u8)
}

/// A bug in genc is reported as one, with a request to file it, instead of a raw panic.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        eprintln!("error: internal compiler error: {info}");
        eprintln!("  genc hit a bug; please report it with the spec that caused it.");
    }));
}
