//! `vireo bench`: vireo's speed next to PyTorch's on the same machine, in one run, as ratios of
//! throughput (vireo / PyTorch; above 1 means vireo is faster).
//!
//! Each case of the registry ([`cases`]) is prepared on both sides, warmed up by duration, then
//! timed in alternating rounds (vireo, PyTorch, vireo, PyTorch, ...) so that drift of the machine
//! affects both alike. Both sides use the same thread count. Results go to
//! `runs/bench/<time>/{results.json, report.md, ratios.png}` and into the backend's section of
//! `docs/benchmarks.md`.

mod cases;
mod measure;
mod report;
mod torch;

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use burn::tensor::backend::AutodiffBackend;
use clap::Args;

use cases::{Context, Suite};
use core_train::{BackendChoice, BackendKind, OnBackend, on_backend};
use measure::{Summary, summarize};

#[derive(Args, Clone, Debug)]
pub struct BenchArgs {
    #[command(flatten)]
    pub backend: BackendChoice,
    /// layers, models, data or all.
    #[arg(long, default_value = "all")]
    pub suite: String,
    /// Fewer, shorter samples: a check that everything runs, with rougher numbers.
    #[arg(long)]
    pub quick: bool,
    /// The Python that runs bench/pytorch/bench.py; without torch there, vireo runs alone
    /// (`none`: vireo alone, not asked).
    #[arg(long, default_value = "python3")]
    pub torch: String,
    /// Only the cases whose name contains one of these (repeatable).
    #[arg(long = "case")]
    pub cases: Vec<String>,
    /// Threads on both sides (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Where the run directory goes: <out>/bench/<time>/.
    #[arg(long, default_value = "runs")]
    pub out: PathBuf,
    /// The page whose section for this backend is regenerated; `none` to leave docs alone.
    #[arg(long, default_value = "docs/benchmarks.md")]
    pub docs: PathBuf,
}

/// The samples of one case on one side.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Side {
    pub items: usize,
    pub seconds: Vec<f64>,
    pub throughput: Option<Summary>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct CaseResult {
    pub name: String,
    pub suite: Suite,
    pub what: String,
    pub vireo: Result<Side, String>,
    /// `Err` says why there is no PyTorch number (torch missing, no such case, it failed).
    pub pytorch: Result<Side, String>,
}

impl CaseResult {
    /// vireo / PyTorch median throughput.
    pub fn ratio(&self) -> Option<f64> {
        let v = self.vireo.as_ref().ok()?.throughput?.median;
        let t = self.pytorch.as_ref().ok()?.throughput?.median;
        Some(v / t)
    }
}

/// Everything about where and how the numbers were made.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Machine {
    pub cpu: String,
    pub threads: usize,
    pub backend: String,
    pub device: String,
    pub burn: String,
    pub git_revision: String,
    pub pytorch: String,
    pub command: String,
    pub date: String,
    pub quick: bool,
}

/// Warm-up seconds, samples, and the minimum length of one sample, per mode.
struct Plan {
    warmup_s: f64,
    rounds: usize,
    reps_per_round: usize,
    min_rep_s: f64,
}

impl Plan {
    fn new(quick: bool) -> Plan {
        if quick {
            Plan {
                warmup_s: 0.3,
                rounds: 1,
                reps_per_round: 3,
                min_rep_s: 0.05,
            }
        } else {
            Plan {
                warmup_s: 2.0,
                rounds: 3,
                reps_per_round: 3,
                min_rep_s: 0.3,
            }
        }
    }
}

pub fn dispatch(args: BenchArgs) -> Result<()> {
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    // burn-flex and gemm split work over rayon's global pool: size it like PyTorch's.
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .context("setting the thread count")?;
    let suites: Vec<Suite> = match args.suite.as_str() {
        "layers" => vec![Suite::Layers],
        "models" => vec![Suite::Models],
        "data" => vec![Suite::Data],
        "all" => vec![Suite::Layers, Suite::Models, Suite::Data],
        other => bail!("--suite {other}: expected layers, models, data or all"),
    };
    let job = Bench {
        args: args.clone(),
        suites,
        threads,
    };
    on_backend(args.backend, job)
}

struct Bench {
    args: BenchArgs,
    suites: Vec<Suite>,
    threads: usize,
}

impl OnBackend for Bench {
    type Output = ();

    fn run<B: AutodiffBackend>(self, device: B::Device, backend: &str) -> Result<()> {
        let Bench {
            args,
            suites,
            threads,
        } = self;
        let plan = Plan::new(args.quick);
        let chosen: Vec<_> = cases::registry::<B>()
            .into_iter()
            .filter(|c| suites.contains(&c.suite))
            .filter(|c| {
                args.cases.is_empty() || args.cases.iter().any(|p| c.name.contains(p.as_str()))
            })
            .collect();
        if chosen.is_empty() {
            bail!("no benchmark case matches --case {:?}", args.cases);
        }
        let run = core_train::RunDir::create(&args.out, "bench")?;
        let jpeg_folder = run.path.join("jpeg-folder");
        if chosen.iter().any(|c| c.name.starts_with("imagefolder")) {
            write_jpeg_folder(&jpeg_folder, 128)?;
        }
        let torch_device = match args.backend.backend {
            BackendKind::Cuda => format!("cuda:{}", args.backend.device),
            _ => "cpu".to_string(),
        };
        let mut torch = torch::Torch::start(
            &args.torch,
            Path::new("bench/pytorch/bench.py"),
            threads,
            &torch_device,
        )
        .map_err(|e| format!("{e:#}"));
        match &torch {
            Ok(t) => println!(
                "PyTorch {} on {} with {} threads: every case runs both ways, alternating",
                t.version, t.device, t.threads
            ),
            Err(why) => println!("PyTorch not available ({why}): vireo alone"),
        }
        let context = Context::<B> {
            device: device.clone(),
            threads,
            jpeg_folder: jpeg_folder.clone(),
        };
        let mut results = Vec::new();
        for case in &chosen {
            println!("{:<28} {}", case.name, case.what);
            let vireo = (|| -> Result<(cases::Prepared, f64)> {
                let mut prepared = (case.build)(&context)?;
                let per = measure::warm_up(&mut prepared, plan.warmup_s)?;
                Ok((prepared, per))
            })()
            .map_err(|e| format!("{e:#}"));
            let pytorch_items = match &mut torch {
                Ok(t) => t
                    .prepare(case.name, plan.warmup_s, &jpeg_folder)
                    .map_err(|e| format!("{e:#}")),
                Err(why) => Err(format!("PyTorch not available: {why}")),
            };
            let (mut v_seconds, mut t_seconds) = (Vec::new(), Vec::new());
            let mut vireo = vireo;
            let mut v_error = None;
            let mut t_error = pytorch_items.as_ref().err().cloned();
            for _ in 0..plan.rounds {
                if let Ok((prepared, per)) = &mut vireo
                    && v_error.is_none()
                {
                    match measure::measure(prepared, plan.reps_per_round, plan.min_rep_s, *per) {
                        Ok(s) => v_seconds.extend(s),
                        Err(e) => v_error = Some(format!("{e:#}")),
                    }
                }
                if let Ok(t) = &mut torch
                    && t_error.is_none()
                {
                    match t.measure(case.name, plan.reps_per_round, plan.min_rep_s) {
                        Ok(s) => t_seconds.extend(s),
                        Err(e) => t_error = Some(format!("{e:#}")),
                    }
                }
            }
            if let Ok(t) = &mut torch
                && pytorch_items.is_ok()
            {
                let _ = t.release(case.name);
            }
            let vireo_side = match (vireo, v_error) {
                (Ok((prepared, _)), None) => Ok(Side {
                    items: prepared.items,
                    throughput: summarize(prepared.items, &v_seconds),
                    seconds: v_seconds,
                }),
                (Err(e), _) | (_, Some(e)) => Err(e),
            };
            let torch_side = match (pytorch_items, t_error) {
                (Ok(items), None) => Ok(Side {
                    items,
                    throughput: summarize(items, &t_seconds),
                    seconds: t_seconds,
                }),
                (Err(e), _) | (_, Some(e)) => Err(e),
            };
            let result = CaseResult {
                name: case.name.to_string(),
                suite: case.suite,
                what: case.what.to_string(),
                vireo: vireo_side,
                pytorch: torch_side,
            };
            println!("{:<28} {}", "", report::one_line(&result));
            results.push(result);
        }
        let machine = Machine {
            cpu: cpu_model(),
            threads,
            backend: backend.to_string(),
            device: format!("{device:?}"),
            burn: BURN_VERSION.to_string(),
            git_revision: core_train::run_dir::git_revision(),
            pytorch: match &torch {
                Ok(t) => format!(
                    "torch {} on {} ({} threads)",
                    t.version, t.device, t.threads
                ),
                Err(why) => format!("not available: {why}"),
            },
            command: std::env::args().collect::<Vec<_>>().join(" "),
            date: chrono::Local::now().format("%Y-%m-%d %H:%M").to_string(),
            quick: args.quick,
        };
        drop(torch);
        let _ = std::fs::remove_dir_all(&jpeg_folder);
        report::write(&run.path, &machine, &results)?;
        if args.docs.as_os_str() != "none" {
            report::update_docs(
                &args.docs,
                args.backend.backend,
                &machine,
                &results,
                !args.cases.is_empty(),
            )?;
            println!("updated {}", args.docs.display());
        }
        println!("results: {}", run.path.display());
        Ok(())
    }
}

/// burn as pinned in the workspace's Cargo.toml.
const BURN_VERSION: &str = "0.21.0";

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

/// `count` JPEGs of ImageNet's typical size (500×375) in 4 class folders, rendered from ShapeWorld.
fn write_jpeg_folder(dir: &Path, count: usize) -> Result<()> {
    let world = datasets::ShapeWorld {
        image_size: 400,
        num_classes: 4,
        ..datasets::ShapeWorld::default()
    };
    for index in 0..count {
        let (scene, label) = world.classification_scene(datasets::Split::Train, index as u64);
        let bytes: Vec<u8> = scene
            .render()
            .iter()
            .map(|&p| (p * 255.0).round() as u8)
            .collect();
        let square = image::RgbImage::from_raw(400, 400, bytes).context("render size")?;
        let photo =
            image::imageops::resize(&square, 500, 375, image::imageops::FilterType::Triangle);
        let class_dir = dir.join("train").join(format!("class{label}"));
        std::fs::create_dir_all(&class_dir)
            .with_context(|| format!("creating {}", class_dir.display()))?;
        let path = class_dir.join(format!("{index:04}.jpg"));
        photo
            .save(&path)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
