//! The experiment interface every paper crate implements, once: what the paper is called, its
//! presets, its config type, and how it trains into a run directory, evaluates a run, predicts on
//! images and lists its models. Everything generic (preset lookup, `--config`, `--set`, `--resume`,
//! run directories, the mini study, backend dispatch) is written once on top of it
//! ([`crate::command`]); a paper implements only what is its own.
//!
//! A library user trains without the `vireo` binary:
//!
//! ```ignore
//! let config = WS.config("smoke", &[])?;
//! let outcome = WS.fit::<Autodiff<Flex>>(config, Session::new("ws", "smoke", "runs"), &device)?;
//! ```

use std::{
    fmt::Debug,
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Result, bail};
use burn::tensor::backend::{AutodiffBackend, Backend};
use serde::{Serialize, de::DeserializeOwned};

use crate::{
    RunDir, RunMeta,
    preset::{Preset, find_preset, load_table, parse_config},
    run_dir::git_revision,
};

/// What the command line and the docs say about a paper's experiment.
#[derive(Debug)]
pub struct Card {
    /// The name on the command line: `vireo train <name>`.
    pub name: &'static str,
    /// One line: the paper and what the experiment does.
    pub description: &'static str,
    /// `smoke` first (the default), then `mini` (a study file, see [`crate::study`]), then the
    /// paper's recipes.
    pub presets: &'static [Preset],
    /// The number a mini study tabulates, e.g. "valid top-1 (%)".
    pub study_metric: &'static str,
}

/// One model a paper defines, with its exact parameter count (`vireo models`).
#[derive(Clone, Debug)]
pub struct ModelCount {
    pub name: String,
    /// The paper or baseline it belongs to.
    pub group: String,
    pub parameters: usize,
    /// GFLOPs per image where the paper counts them (its own counting rule), e.g. ELASTIC's.
    pub gflops: Option<f64>,
}

/// What a finished run gives back.
#[derive(Debug)]
pub struct Outcome {
    pub run: RunDir,
    /// The final value of [`Card::study_metric`].
    pub metric: f64,
    /// One line for the terminal, e.g. "valid top-1 84.50 %, top-5 …".
    pub summary: String,
    /// Further numbers a study tabulates beside [`Card::study_metric`], `(name, value)`.
    pub extra: Vec<(String, f64)>,
}

/// Where a run's files go.
#[derive(Debug)]
pub enum Destination {
    /// A new run directory `<out>/<paper>/<time>/`, made once the data is found.
    New { out: PathBuf },
    /// The directory of a run being resumed after its checkpoint `epoch`.
    Resume { run: RunDir, epoch: usize },
}

/// One training run: where it goes, and what `config.json` records about it.
#[derive(Debug)]
pub struct Session {
    pub destination: Destination,
    pub meta: RunMeta,
    /// Print where the run went and one line per epoch (mini studies print less).
    pub verbose: bool,
}

impl Session {
    /// A fresh run of `paper`'s `preset` under `out`.
    pub fn new(paper: &str, preset: &str, out: impl Into<PathBuf>) -> Self {
        Self {
            destination: Destination::New { out: out.into() },
            meta: RunMeta {
                paper: paper.to_string(),
                preset: preset.to_string(),
                git_revision: git_revision(),
                backend: String::new(),
                device: String::new(),
                started: chrono::Local::now().to_rfc3339(),
                command: std::env::args().collect::<Vec<_>>().join(" "),
                vireo_version: env!("CARGO_PKG_VERSION").into(),
            },
            verbose: true,
        }
    }

    /// The checkpoint epoch a resumed run continues after.
    pub fn resume_epoch(&self) -> Option<usize> {
        match self.destination {
            Destination::Resume { epoch, .. } => Some(epoch),
            Destination::New { .. } => None,
        }
    }

    /// The run directory: a resumed run's own, or a fresh one with `config.json` written. Call it
    /// once the data is found, so a missing dataset leaves no directory behind.
    pub fn open<B: Backend, C: Serialize>(
        &mut self,
        config: &C,
        device: &B::Device,
    ) -> Result<RunDir> {
        match &self.destination {
            Destination::Resume { run, .. } => Ok(run.clone()),
            Destination::New { out } => {
                let run = RunDir::create(out, &self.meta.paper)?;
                if self.meta.backend.is_empty() {
                    self.meta.backend = B::name(device);
                }
                self.meta.device = format!("{device:?}");
                run.write_config(&self.meta, config)?;
                self.destination = Destination::Resume {
                    run: run.clone(),
                    epoch: 0,
                };
                Ok(run)
            }
        }
    }

    /// The rows of a resumed run's `metrics.csv` up to its checkpoint (none for a fresh run).
    /// `read` parses the file; a missing file is said once on stderr, since its history is lost.
    pub fn previous_rows<R>(
        &self,
        read: impl FnOnce(&str) -> Result<Vec<R>>,
        epoch_of: impl Fn(&R) -> usize,
    ) -> Result<Vec<R>> {
        let Destination::Resume { run, epoch } = &self.destination else {
            return Ok(Vec::new());
        };
        let path = run.file("metrics.csv");
        match fs::read_to_string(&path) {
            Ok(text) => Ok(read(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e:#}", path.display()))?
                .into_iter()
                .filter(|r| epoch_of(r) <= *epoch)
                .collect()),
            Err(_) => {
                eprintln!(
                    "warning: {} is missing: epochs 1–{epoch} will be absent from metrics.csv, curves.png and report.md",
                    path.display()
                );
                Ok(Vec::new())
            }
        }
    }
}

/// The weights `vireo infer` predicts with.
#[derive(Debug)]
pub enum Weights<C> {
    /// A vireo run: its config and the weights file (its `model.mpk` or a checkpoint).
    Run {
        run: RunDir,
        config: C,
        file: PathBuf,
    },
    /// An official PyTorch checkpoint; `model` names one of the paper's model presets (each paper
    /// has a default) or a TOML file of the model's config, `num_classes` its classifier (default
    /// 1000, ImageNet), `image_size` the evaluation crop.
    PyTorch {
        file: PathBuf,
        model: Option<String>,
        num_classes: Option<usize>,
        image_size: usize,
    },
}

/// How predictions are shown.
#[derive(Clone, Debug)]
pub struct InferOptions {
    /// Where pictures go.
    pub out: PathBuf,
    /// Classes listed per image (retrieval: gallery images per query).
    pub top_k: usize,
    /// Retrieval papers: the folder of images each query is ranked against.
    pub gallery: Option<PathBuf>,
    /// CompNet with a released checkpoint: the background images its occluder models are built
    /// from.
    pub backgrounds: Option<PathBuf>,
}

/// What a model says about one image.
#[derive(Clone, Debug, Serialize)]
pub struct Prediction {
    pub image: PathBuf,
    /// Human-readable lines (top-k classes, segments).
    #[serde(skip)]
    pub lines: Vec<String>,
    /// The same, machine-readable (`--json`).
    pub result: serde_json::Value,
    /// A picture of the prediction, if the paper draws one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub picture: Option<PathBuf>,
}

/// A paper's experiment. Implement it in the paper crate; register it in the `vireo` binary with one
/// line.
pub trait Experiment: Sync + 'static {
    /// The paper's configuration as its presets spell it (serde, `deny_unknown_fields`).
    type Config: Serialize + DeserializeOwned + Clone + Debug + Send + 'static;

    fn card(&self) -> &Card;

    /// Rejects a config no run can use, naming the key and what was expected.
    fn validate(&self, config: &Self::Config) -> Result<()>;

    /// How many epochs a run of `config` trains (for `--resume`).
    fn epochs(&self, config: &Self::Config) -> usize;

    /// Trains into `session`'s run directory, fresh or resumed, and leaves `metrics.csv`,
    /// `curves.png`, `report.md`, `model.mpk` and checkpoints there.
    fn fit<B: AutodiffBackend>(
        &self,
        config: Self::Config,
        session: Session,
        device: &B::Device,
    ) -> Result<Outcome>;

    /// Scores a run's final model (or newest intact checkpoint) on its validation data; returns
    /// one line.
    fn evaluate<B: Backend>(
        &self,
        config: Self::Config,
        run: &RunDir,
        device: &B::Device,
    ) -> Result<String>;

    /// Predicts on image files (PNG/JPEG, any size), preprocessed as the paper's evaluation.
    fn predict<B: Backend>(
        &self,
        weights: Weights<Self::Config>,
        images: &[PathBuf],
        options: &InferOptions,
        device: &B::Device,
    ) -> Result<Vec<Prediction>>;

    /// The paper's models with their exact parameter counts.
    fn models(&self) -> Vec<ModelCount>;

    /// Loads an official checkpoint into the model preset `model` and says what matched;
    /// `num_classes`: its classifier's classes (none: the paper's default, ImageNet's 1000 for a
    /// classifier).
    fn import(
        &self,
        model: &str,
        _checkpoint: &Path,
        _num_classes: Option<usize>,
    ) -> Result<String> {
        bail!(
            "{} has no official checkpoint loader for '{model}'",
            self.card().name
        )
    }

    /// The config of preset `preset` with `--set` overrides, validated.
    fn config(&self, preset: &str, overrides: &[String]) -> Result<Self::Config> {
        let card = self.card();
        let text = find_preset(card.presets, card.name, preset)?.toml;
        self.config_from_text(text, &format!("preset {}/{preset}", card.name), overrides)
    }

    /// The config in TOML `text` (from `origin`, for errors) with overrides, validated.
    fn config_from_text(
        &self,
        text: &str,
        origin: &str,
        overrides: &[String],
    ) -> Result<Self::Config> {
        let config: Self::Config = parse_config(load_table(text, origin, overrides)?, origin)?;
        self.validate(&config)
            .map_err(|e| anyhow::anyhow!("{origin}: {e:#}"))?;
        Ok(config)
    }
}
