//! `vireo`: train, evaluate, run and inspect the models of the vireo papers on any burn backend.
//!
//! The binary is a registry: every paper crate owns its experiment ([`core_train::Experiment`]) and
//! is listed once in [`PAPERS`]; the verbs (`train`, `eval`, `infer`, `models`, `import`) are
//! written once in `core_train::command`. Besides the registry, the binary holds only what spans
//! papers: `bench` and `dataset preview`.

mod bench;
mod dataset;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use core_train::{
    EvalRequest, InferRequest, Paper, TrainRequest,
    command::{find_paper, print_models},
};

/// Tensors of tens of megabytes are allocated and freed at every operation; glibc's allocator
/// returns such blocks to the OS and takes page faults to get them back each time, mimalloc keeps
/// them (axial attention forward 1.4–1.5× faster on the CPU backend, docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Every paper `vireo` knows, one line each: adding a paper is its crate, a line here and its bench
/// cases.
pub const PAPERS: &[&dyn Paper] = &[
    &classification::WS,
    &classification::BCN,
    &axial_deeplab::experiment::AXIAL,
    &co2::CO2,
    &elastic::ELASTIC,
    &sake::SAKE,
    &compnet::COMPNET,
];

#[derive(Parser)]
#[command(
    name = "vireo",
    version,
    about = "Eight computer-vision papers on burn: train, evaluate, predict, inspect"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a paper's model from a preset (default: smoke, embedded data, CPU).
    Train {
        /// The paper (`vireo papers` lists them): ws, bcn, axial, co2, elastic.
        paper: String,
        #[command(flatten)]
        request: TrainRequest,
    },
    /// Evaluate a run's final model (or newest intact checkpoint) on its validation data.
    Eval {
        paper: String,
        #[command(flatten)]
        request: EvalRequest,
    },
    /// Predict on image files with a run's model or an official PyTorch checkpoint.
    Infer {
        paper: String,
        #[command(flatten)]
        request: InferRequest,
    },
    /// The papers, their presets and what each does.
    Papers,
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

#[derive(Args, Clone, Debug)]
struct ImportArgs {
    /// A model preset from `vireo models`, e.g. resnet50_gn_ws.
    #[arg(long)]
    model: String,
    /// The PyTorch checkpoint (.pth / .pth.tar).
    #[arg(long)]
    checkpoint: PathBuf,
    /// Number of classes of the checkpoint's classifier (default: the model's — 1000 for an
    /// ImageNet classifier, 21 for a VOC segmentation model).
    #[arg(long)]
    num_classes: Option<usize>,
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
        Command::Train { paper, request } => find_paper(PAPERS, &paper)?.train(&request),
        Command::Eval { paper, request } => find_paper(PAPERS, &paper)?.eval(&request),
        Command::Infer { paper, request } => find_paper(PAPERS, &paper)?.infer(&request),
        Command::Papers => {
            for paper in PAPERS {
                let card = paper.about();
                let presets: Vec<_> = card.presets.iter().map(|p| p.name).collect();
                println!(
                    "{:<6} {} (presets: {})",
                    card.name,
                    card.description,
                    presets.join(", ")
                );
            }
            Ok(())
        }
        Command::Models => {
            print_models(PAPERS);
            Ok(())
        }
        Command::Import(args) => import(args),
        Command::Dataset(command) => dataset::dispatch(command),
        Command::Bench(args) => bench::dispatch(args),
    }
}

/// The paper whose models include `args.model` loads the checkpoint.
fn import(args: ImportArgs) -> Result<()> {
    let owner = PAPERS
        .iter()
        .find(|p| p.model_counts().iter().any(|m| m.name == args.model));
    let Some(paper) = owner else {
        let names: Vec<String> = PAPERS
            .iter()
            .flat_map(|p| p.model_counts())
            .map(|m| m.name)
            .collect();
        anyhow::bail!(
            "unknown model '{}': expected one of {}",
            args.model,
            names.join(", ")
        );
    };
    println!(
        "{}",
        paper.import_checkpoint(&args.model, &args.checkpoint, args.num_classes)?
    );
    Ok(())
}
