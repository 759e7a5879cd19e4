//! What `vireo train|eval|infer|models|import <paper>` do with any [`Experiment`], written once:
//! preset or `--config` with `--set` overrides, `--resume`, the mini study, backend dispatch, run
//! directories, and printing. [`Paper`] is the object-safe face of an experiment the binary's
//! registry lists; every `E: Experiment` is one.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::tensor::backend::AutodiffBackend;

use crate::{
    BackendChoice, Card, Destination, Experiment, InferOptions, ModelCount, OnBackend, Prediction,
    RunDir, Session, Weights, on_backend, preset::read_config_file,
};

/// `vireo train <paper> …`
#[derive(Clone, Debug, clap::Args)]
pub struct TrainRequest {
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
    pub backend: BackendChoice,
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

/// `vireo eval <paper> …`
#[derive(Clone, Debug, clap::Args)]
pub struct EvalRequest {
    /// The run directory to evaluate (its config and final model or newest checkpoint).
    #[arg(long)]
    pub run: PathBuf,
    #[command(flatten)]
    pub backend: BackendChoice,
}

/// `vireo infer <paper> …`
#[derive(Clone, Debug, clap::Args)]
pub struct InferRequest {
    /// A vireo run directory (its final model, or newest intact checkpoint).
    #[arg(
        long,
        required_unless_present = "checkpoint",
        conflicts_with = "checkpoint"
    )]
    pub run: Option<PathBuf>,
    /// A weights file: a vireo `model.mpk` / `checkpoint/model-N.mpk`, or an official PyTorch
    /// checkpoint (.pth, .pth.tar).
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// The model of a PyTorch checkpoint: a preset of `vireo models` (each paper has a default), or
    /// a TOML file holding the model's config (the `[model]` table of a preset, on its own).
    #[arg(long)]
    pub model: Option<String>,
    /// Centre-crop side for a PyTorch checkpoint (the short side is resized to side·8/7 first).
    #[arg(long, default_value_t = 224)]
    pub image_size: usize,
    /// Classes of a PyTorch checkpoint's classifier (default 1000: ImageNet, named).
    #[arg(long)]
    pub num_classes: Option<usize>,
    /// Images to predict on (PNG/JPEG, any size); repeatable.
    #[arg(long = "image", value_name = "PATH", required = true)]
    pub images: Vec<PathBuf>,
    /// Where pictures of the predictions go.
    #[arg(long, default_value = "predictions")]
    pub out: PathBuf,
    /// Classes listed per image (retrieval: gallery images listed per query).
    #[arg(long, default_value_t = 5)]
    pub top_k: usize,
    /// Retrieval papers (SAKE): a folder of photos (PNG/JPEG) to rank for each `--image` sketch.
    #[arg(long, value_name = "DIR")]
    pub gallery: Option<PathBuf>,
    /// CompNet with a released `best.pth`: a folder of background images (the released
    /// `background_images/`) its occluder models are built from.
    #[arg(long, value_name = "DIR")]
    pub backgrounds: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub backend: BackendChoice,
}

/// An experiment as the command line sees it: no generic methods, so a registry can list papers of
/// different config types side by side.
pub trait Paper: Sync {
    fn about(&self) -> &Card;
    fn train(&self, request: &TrainRequest) -> Result<()>;
    fn eval(&self, request: &EvalRequest) -> Result<()>;
    fn infer(&self, request: &InferRequest) -> Result<()>;
    fn model_counts(&self) -> Vec<ModelCount>;
    fn import_checkpoint(
        &self,
        model: &str,
        checkpoint: &Path,
        num_classes: Option<usize>,
    ) -> Result<String>;
}

impl<E: Experiment> Paper for E {
    fn about(&self) -> &Card {
        self.card()
    }

    fn train(&self, request: &TrainRequest) -> Result<()> {
        let name = self.card().name;
        if let Some(resume) = &request.resume {
            if request.config.is_some()
                || !request.overrides.is_empty()
                || request.preset != "smoke"
            {
                bail!(
                    "--resume continues a run with its stored config: --preset, --config and --set cannot change it"
                );
            }
            let path = if resume.as_os_str() == "latest" {
                RunDir::latest(&request.out, name)?.path
            } else {
                resume.clone()
            };
            let (run, meta, config, epoch) =
                RunDir::open_for_resume(&path, name, |c: &E::Config| self.epochs(c))?;
            self.validate(&config)
                .map_err(|e| anyhow::anyhow!("{}: {e:#}", run.file("config.json").display()))?;
            println!("resuming {} after epoch {epoch}", run.path.display());
            let session = Session {
                destination: Destination::Resume { run, epoch },
                meta,
                verbose: true,
            };
            return fit(self, config, session, request.backend).map(|_| ());
        }
        if request.config.is_none() && crate::study::is_study(self.card(), &request.preset) {
            return crate::study::run(self, request);
        }
        let (config, label) = match &request.config {
            Some(path) => {
                let text = read_config_file(path)?;
                let origin = path.display().to_string();
                (
                    self.config_from_text(&text, &origin, &request.overrides)?,
                    origin,
                )
            }
            None => (
                self.config(&request.preset, &request.overrides)?,
                request.preset.clone(),
            ),
        };
        let session = Session::new(name, &label, &request.out);
        fit(self, config, session, request.backend).map(|_| ())
    }

    fn eval(&self, request: &EvalRequest) -> Result<()> {
        let (run, config) = open_run(self, &request.run)?;
        struct Task<'a, E: Experiment>(&'a E, E::Config, RunDir);
        impl<E: Experiment> OnBackend for Task<'_, E> {
            type Output = String;
            fn run<B: AutodiffBackend>(self, device: B::Device, label: &str) -> Result<String> {
                let Task(experiment, config, run) = self;
                let line = experiment.evaluate::<B::InnerBackend>(config, &run, &device)?;
                Ok(format!("{line} (on {label})"))
            }
        }
        println!("{}", on_backend(request.backend, Task(self, config, run))?);
        Ok(())
    }

    fn infer(&self, request: &InferRequest) -> Result<()> {
        let weights = match (&request.run, &request.checkpoint) {
            (Some(dir), _) => {
                let (run, config) = open_run(self, dir)?;
                let file = run.final_weights()?;
                Weights::Run { run, config, file }
            }
            (None, Some(file)) if file.extension().is_some_and(|e| e == "mpk") => {
                let dir = run_of_weights(file)?;
                let (run, config) = open_run(self, &dir)?;
                Weights::Run {
                    run,
                    config,
                    file: file.clone(),
                }
            }
            (None, Some(file)) => Weights::PyTorch {
                file: file.clone(),
                model: request.model.clone(),
                num_classes: request.num_classes,
                image_size: request.image_size,
            },
            (None, None) => bail!("vireo infer needs --run DIR or --checkpoint FILE"),
        };
        if request.top_k == 0 {
            bail!("--top-k 0: expected at least 1");
        }
        let options = InferOptions {
            out: request.out.clone(),
            top_k: request.top_k,
            gallery: request.gallery.clone(),
            backgrounds: request.backgrounds.clone(),
        };
        struct Task<'a, E: Experiment>(&'a E, Weights<E::Config>, &'a [PathBuf], InferOptions);
        impl<E: Experiment> OnBackend for Task<'_, E> {
            type Output = Vec<Prediction>;
            fn run<B: AutodiffBackend>(self, device: B::Device, _: &str) -> Result<Self::Output> {
                let Task(experiment, weights, images, options) = self;
                experiment.predict::<B::InnerBackend>(weights, images, &options, &device)
            }
        }
        let predictions = on_backend(
            request.backend,
            Task(self, weights, &request.images, options),
        )?;
        if request.json {
            println!("{}", serde_json::to_string_pretty(&predictions)?);
        } else {
            for p in &predictions {
                println!("{}", p.image.display());
                for line in &p.lines {
                    println!("  {line}");
                }
                if let Some(picture) = &p.picture {
                    println!("  picture: {}", picture.display());
                }
            }
        }
        Ok(())
    }

    fn model_counts(&self) -> Vec<ModelCount> {
        self.models()
    }

    fn import_checkpoint(
        &self,
        model: &str,
        checkpoint: &Path,
        num_classes: Option<usize>,
    ) -> Result<String> {
        self.import(model, checkpoint, num_classes)
    }
}

/// Trains one config on the chosen backend.
pub fn fit<E: Experiment>(
    experiment: &E,
    config: E::Config,
    mut session: Session,
    backend: BackendChoice,
) -> Result<crate::Outcome> {
    struct Task<'a, E: Experiment>(&'a E, E::Config, Session);
    impl<E: Experiment> OnBackend for Task<'_, E> {
        type Output = crate::Outcome;
        fn run<B: AutodiffBackend>(self, device: B::Device, label: &str) -> Result<Self::Output> {
            let Task(experiment, config, mut session) = self;
            if session.meta.backend.is_empty() {
                session.meta.backend = label.to_string();
            }
            experiment.fit::<B>(config, session, &device)
        }
    }
    if matches!(session.destination, Destination::New { .. }) {
        session.meta.backend = backend.backend.name().to_string();
    }
    on_backend(backend, Task(experiment, config, session))
}

/// A run directory of this paper and its config.
fn open_run<E: Experiment>(experiment: &E, dir: &Path) -> Result<(RunDir, E::Config)> {
    let run = RunDir::open(dir)?;
    let name = experiment.card().name;
    let paper = run.paper()?;
    if paper != name {
        bail!(
            "{} is a run of '{paper}', not '{name}': use `vireo … {paper}`",
            run.path.display()
        );
    }
    let (_, config) = run.read_config::<E::Config>()?;
    Ok((run, config))
}

/// The run directory a vireo weights file belongs to (`<run>/model.mpk`,
/// `<run>/checkpoint/model-N.mpk`).
fn run_of_weights(file: &Path) -> Result<PathBuf> {
    if !file.is_file() {
        bail!("checkpoint {} does not exist", file.display());
    }
    let parent = file.parent().unwrap_or(Path::new("."));
    let dir = if parent.file_name().is_some_and(|n| n == "checkpoint") {
        parent.parent().unwrap_or(Path::new("."))
    } else {
        parent
    };
    if !dir.join("config.json").is_file() {
        bail!(
            "{} is a burn record outside a vireo run directory: expected {}/config.json beside it (its config names the model)",
            file.display(),
            dir.display()
        );
    }
    Ok(dir.to_path_buf())
}

/// `vireo models`: every registered paper's models with their exact parameter counts.
pub fn print_models(papers: &[&dyn Paper]) {
    println!(
        "{:<22} {:<15} {:>14} {:>8}",
        "model", "paper", "parameters", "GFLOPs"
    );
    for paper in papers {
        for m in paper.model_counts() {
            let gflops = m.gflops.map_or(String::new(), |g| format!("{g:.3}"));
            println!(
                "{:<22} {:<15} {:>14} {:>8}",
                m.name,
                m.group,
                crate::report::group_thousands(m.parameters),
                gflops
            );
        }
    }
}

/// The registered paper called `name`.
pub fn find_paper<'a>(papers: &[&'a dyn Paper], name: &str) -> Result<&'a dyn Paper> {
    papers
        .iter()
        .find(|p| p.about().name == name)
        .copied()
        .with_context(|| {
            let names: Vec<_> = papers.iter().map(|p| p.about().name).collect();
            format!(
                "unknown paper '{name}': expected one of {}",
                names.join(", ")
            )
        })
}
