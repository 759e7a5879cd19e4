//! `vireo`: train, evaluate and inspect the models of the vireo papers on any burn backend.
//!
//! One binary serves every backend compiled into it (`--backend cpu|wgpu|cuda`); library code is
//! generic over `B: Backend` and instantiated here, once per backend.

mod bench;
mod dataset;
mod experiment;
mod panoptic;
mod study;
mod train;

use std::path::PathBuf;

/// Tensors of tens of megabytes are allocated and freed at every operation; glibc's allocator
/// returns such blocks to the OS and takes page faults to get them back each time, mimalloc keeps
/// them (axial attention forward 1.4–1.5× faster on the CPU backend, docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::{Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "vireo",
    version,
    about = "Eight computer-vision papers on burn: train, evaluate, inspect"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a paper's model from a preset (default: smoke, embedded data, CPU).
    Train(TrainArgs),
    /// Evaluate a run's checkpoint on its validation data.
    Eval(EvalArgs),
    /// List the model presets with their exact parameter counts.
    Models,
    /// Load an official PyTorch checkpoint into a model preset and report what matched.
    Import(ImportArgs),
    /// Speed next to PyTorch on this machine, as throughput ratios (`cargo xtask bench`).
    Bench(bench::BenchArgs),
    /// Look at the data: `vireo dataset preview shapeworld --task panoptic`.
    #[command(subcommand)]
    Dataset(dataset::DatasetCommand),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BackendKind {
    /// burn-flex on the CPU (always compiled in).
    Cpu,
    /// Vulkan/Metal/DX12 through wgpu (build with `--features wgpu`).
    Wgpu,
    /// NVIDIA CUDA (build with `--features cuda`).
    Cuda,
}

#[derive(Args, Clone, Debug)]
pub struct BackendArgs {
    #[arg(long, value_enum, default_value = "cpu")]
    pub backend: BackendKind,
    /// Device index for wgpu/cuda.
    #[arg(long, default_value_t = 0)]
    pub device: usize,
}

#[derive(Args, Clone, Debug)]
pub struct TrainArgs {
    /// The paper: ws, bcn or axial.
    pub paper: String,
    /// smoke (fresh machine, minutes), mini (the paper's claim in miniature), paper (the full recipe).
    #[arg(long, default_value = "smoke")]
    pub preset: String,
    /// A TOML config file instead of a preset.
    #[arg(long, conflicts_with = "preset")]
    pub config: Option<PathBuf>,
    /// Override a config value, e.g. --set train.epochs=3 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    #[command(flatten)]
    pub backend: BackendArgs,
    /// Where run directories go: <out>/<paper>/<time>/.
    #[arg(long, default_value = "runs")]
    pub out: PathBuf,
    /// Continue a killed run from its last complete checkpoint: the given run directory, or (no
    /// value, or `latest`) the newest run of this paper under --out.
    #[arg(long, num_args = 0..=1, default_missing_value = "latest", value_name = "RUN_DIR")]
    pub resume: Option<PathBuf>,
    /// Where `--preset mini` writes its table.
    #[arg(long, default_value = "docs/results.md")]
    pub results: PathBuf,
}

#[derive(Args, Clone, Debug)]
pub struct EvalArgs {
    pub paper: String,
    /// The run directory to evaluate (its config and newest checkpoint).
    #[arg(long)]
    pub run: PathBuf,
    #[command(flatten)]
    pub backend: BackendArgs,
}

#[derive(Args, Clone, Debug)]
pub struct ImportArgs {
    /// A model preset from `vireo models`, e.g. resnet50_gn_ws.
    #[arg(long)]
    pub model: String,
    /// The PyTorch checkpoint (.pth / .pth.tar).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Number of classes of the checkpoint's classifier.
    #[arg(long, default_value_t = 1000)]
    pub num_classes: usize,
}

fn main() {
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("VIREO_LOG").unwrap_or_else(|_| "warn".into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    if let Err(err) = run(Cli::parse()) {
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train(args) if args.paper == "axial" => panoptic::dispatch(args),
        Command::Eval(args) if args.paper == "axial" => panoptic::dispatch_eval(args),
        Command::Train(args) => train::dispatch(args),
        Command::Eval(args) => train::dispatch_eval(args),
        Command::Models => {
            list_models();
            Ok(())
        }
        Command::Import(args) => import(args),
        Command::Dataset(command) => dataset::dispatch(command),
        Command::Bench(args) => bench::dispatch(args),
    }
}

fn list_models() {
    use burn::backend::Flex;
    let device = Default::default();
    let row = |name: &str, paper: &str, count: usize| {
        println!("{name:<20} {paper:<15} {:>14}", group_thousands(count));
    };
    println!("{:<20} {:<15} {:>14}", "model", "paper", "parameters");
    for preset in core_nets::MODEL_PRESETS {
        let model = (preset.config)().init::<Flex>(&device);
        row(
            preset.name,
            preset.paper,
            core_nets::count_parameters::<Flex, _>(&model),
        );
    }
    for preset in axial_deeplab::BACKBONE_PRESETS {
        let model = (preset.config)().init::<Flex>(&device);
        row(
            preset.name,
            "Axial-DeepLab",
            core_nets::count_parameters::<Flex, _>(&model),
        );
    }
    for preset in axial_deeplab::AXIAL_PRESETS {
        let model = (preset.config)().init::<Flex>(&device);
        row(
            preset.name,
            "Axial-DeepLab",
            core_nets::count_parameters::<Flex, _>(&model),
        );
    }
}

fn group_thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn import(args: ImportArgs) -> Result<()> {
    use burn::backend::Flex;
    if let Some(preset) = axial_deeplab::AXIAL_PRESETS
        .iter()
        .find(|p| p.name == args.model)
    {
        let model = (preset.config)()
            .with_num_classes(args.num_classes)
            .init::<Flex>(&Default::default());
        let (_, report) =
            axial_deeplab::load_axial_checkpoint(model, &args.checkpoint, preset.name)?;
        println!(
            "{}: loaded {} tensors into {}; ignored {} bookkeeping entries (num_batches_tracked, flatten_index)",
            args.checkpoint.display(),
            report.applied,
            preset.name,
            report.ignored.len()
        );
        return Ok(());
    }
    let Some(preset) = core_nets::MODEL_PRESETS
        .iter()
        .find(|p| p.name == args.model)
    else {
        let names: Vec<_> = core_nets::MODEL_PRESETS
            .iter()
            .map(|p| p.name)
            .chain(axial_deeplab::AXIAL_PRESETS.iter().map(|p| p.name))
            .collect();
        bail!(
            "unknown model '{}': expected one of {}",
            args.model,
            names.join(", ")
        );
    };
    let config = (preset.config)().with_num_classes(Some(args.num_classes));
    let model = config.init::<Flex>(&Default::default());
    let (_, report) = core_nets::load_pytorch_resnet(model, &args.checkpoint, preset.name)?;
    println!(
        "{}: loaded {} tensors into {}; ignored {} bookkeeping entries (num_batches_tracked, estbn_moving_speed)",
        args.checkpoint.display(),
        report.applied,
        preset.name,
        report.ignored.len()
    );
    Ok(())
}
