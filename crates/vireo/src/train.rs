//! `vireo train|eval` for the classification papers (WS, BCN): one run on the chosen backend.

use std::{
    fs,
    path::PathBuf,
    sync::{Arc, atomic::AtomicUsize},
};

use anyhow::{Context, Result, bail};
use burn::{
    backend::{Autodiff, Flex},
    data::{dataloader::DataLoader, dataset::Dataset},
    module::Module,
    tensor::backend::AutodiffBackend,
};
use core_train::{
    AtomicRecorder, EpochLog, EpochRow, FitOptions, ReportInput, RunDir, RunMeta,
    plot::draw_curves, render_report, run_dir::git_revision,
};
use datasets::{
    Augmented, ClassificationBatcher, ClassificationItem, EpochLoader, ImageFolder, Pipeline,
    ShapeWorldClassification, Split,
};

use crate::{
    BackendArgs, BackendKind, EvalArgs, TrainArgs,
    experiment::{ClassificationExperiment, DataConfig, load_table, preset_text, read_config_file},
};

/// Work that needs a concrete backend; [`on_backend`] picks it from `--backend`.
pub trait OnBackend {
    type Output;
    fn run<B: AutodiffBackend>(self, device: B::Device, backend: &str) -> Result<Self::Output>;
}

pub fn on_backend<T: OnBackend>(args: &BackendArgs, task: T) -> Result<T::Output> {
    match args.backend {
        BackendKind::Cpu => task.run::<Autodiff<Flex>>(Default::default(), "cpu (burn-flex)"),
        BackendKind::Wgpu => {
            #[cfg(feature = "wgpu")]
            {
                use burn::backend::{Wgpu, wgpu::WgpuDevice};
                let device = if args.device == 0 {
                    WgpuDevice::DefaultDevice
                } else {
                    WgpuDevice::DiscreteGpu(args.device)
                };
                task.run::<Autodiff<Wgpu>>(device, "wgpu")
            }
            #[cfg(not(feature = "wgpu"))]
            bail!(
                "this vireo binary was built without wgpu: build with `--features wgpu` (cargo xtask train <paper> --backend wgpu does)"
            )
        }
        BackendKind::Cuda => {
            #[cfg(feature = "cuda")]
            {
                use burn::backend::{Cuda, cuda::CudaDevice};
                task.run::<Autodiff<Cuda>>(CudaDevice::new(args.device), "cuda")
            }
            #[cfg(not(feature = "cuda"))]
            bail!(
                "this vireo binary was built without CUDA: build with `--features cuda` (cargo xtask train <paper> --backend cuda does)"
            )
        }
    }
}

/// The command line that started this process, for config.json and reports.
pub fn command_line() -> String {
    std::env::args().collect::<Vec<_>>().join(" ")
}

/// Where a run's files go.
pub enum Destination {
    /// A new run directory under `<out>/<paper>/`, made once the data is found.
    New { out: PathBuf },
    /// The existing directory of a run being resumed.
    Resume(RunDir),
}

/// One classification run: fresh, or resumed from its last complete checkpoint.
pub struct SingleRun {
    pub experiment: ClassificationExperiment,
    pub destination: Destination,
    pub meta: RunMeta,
    pub resume_epoch: Option<usize>,
    pub previous_rows: Vec<EpochRow>,
    /// Whether to print where the run went and what it gave.
    pub verbose: bool,
}

impl SingleRun {
    /// A fresh run directory for `experiment`.
    pub fn fresh(
        experiment: ClassificationExperiment,
        args: &TrainArgs,
        preset: &str,
        out: &std::path::Path,
    ) -> Self {
        let meta = RunMeta {
            paper: args.paper.clone(),
            preset: preset.to_string(),
            git_revision: git_revision(),
            backend: format!("{:?}", args.backend.backend).to_lowercase(),
            device: String::new(),
            started: chrono::Local::now().to_rfc3339(),
            command: command_line(),
            vireo_version: env!("CARGO_PKG_VERSION").into(),
        };
        Self {
            experiment,
            destination: Destination::New {
                out: out.to_path_buf(),
            },
            meta,
            resume_epoch: None,
            previous_rows: Vec::new(),
            verbose: true,
        }
    }
}

/// The run `--resume` names: a directory, or (`latest`) the newest run of the paper under `--out`.
/// Nothing else may change a resumed run.
pub fn resume_path(args: &TrainArgs, resume: &std::path::Path) -> Result<PathBuf> {
    if args.config.is_some() || !args.overrides.is_empty() || args.preset != "smoke" {
        bail!(
            "--resume continues a run with its stored config: --preset, --config and --set cannot change it"
        );
    }
    Ok(if resume.as_os_str() == "latest" {
        RunDir::latest(&args.out, &args.paper)?.path
    } else {
        resume.to_path_buf()
    })
}

pub fn dispatch(args: TrainArgs) -> Result<()> {
    if let Some(resume) = &args.resume {
        let path = resume_path(&args, resume)?;
        let (run, meta, experiment, epoch) =
            RunDir::open_for_resume(&path, &args.paper, |e: &ClassificationExperiment| {
                e.train.epochs
            })?;
        let csv = run.file("metrics.csv");
        let previous_rows = match fs::read_to_string(&csv) {
            Ok(text) => EpochRow::read_csv(&text)
                .map_err(anyhow::Error::msg)?
                .into_iter()
                .filter(|r| r.epoch <= epoch)
                .collect(),
            Err(_) => Vec::new(),
        };
        println!("resuming {} after epoch {epoch}", run.path.display());
        let job = SingleRun {
            experiment,
            destination: Destination::Resume(run),
            meta,
            resume_epoch: Some(epoch),
            previous_rows,
            verbose: true,
        };
        return on_backend(&args.backend, job).map(|_| ());
    }
    if args.preset == "mini" && args.config.is_none() {
        return crate::study::run(&args);
    }
    let (text, origin) = match &args.config {
        Some(path) => (read_config_file(path)?, path.display().to_string()),
        None => (
            preset_text(&args.paper, &args.preset)?.to_string(),
            format!("preset {}/{}", args.paper, args.preset),
        ),
    };
    let table = load_table(&text, &origin, &args.overrides)?;
    let experiment = ClassificationExperiment::from_table(table, &origin)?;
    let preset = args
        .config
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| args.preset.clone());
    let job = SingleRun::fresh(experiment, &args, &preset, &args.out);
    on_backend(&args.backend, job).map(|_| ())
}

type ItemDataset = Arc<dyn Dataset<ClassificationItem>>;

/// The datasets an experiment names, and the epoch counter its augmentations read.
pub struct ExperimentData {
    pub train: ItemDataset,
    pub valid: ItemDataset,
    /// Shared with the train loader (`EpochLoader::sharing_epoch`).
    pub epoch: Arc<AtomicUsize>,
    /// Class folder names in label order, for image folders (written to the run as `classes.txt`).
    pub classes: Option<Vec<String>>,
}

/// The train and validation datasets an experiment names, train augmentation applied.
pub fn datasets_of(experiment: &ClassificationExperiment) -> Result<ExperimentData> {
    let seed = experiment.train.seed;
    let epoch = Arc::new(AtomicUsize::new(0));
    let augmented = |data: ItemDataset, pipeline: Pipeline| -> Result<ItemDataset> {
        Ok(Arc::new(
            Augmented::new(data, pipeline, seed)
                .map_err(|e| anyhow::anyhow!("data.augmentation: {e}"))?
                .with_epoch(epoch.clone()),
        ))
    };
    let mut classes = None;
    let (train, valid): (ItemDataset, ItemDataset) = match &experiment.data {
        DataConfig::Shapeworld {
            train_size,
            valid_size,
            world,
            augmentation,
            ..
        } => {
            let train: ItemDataset = Arc::new(ShapeWorldClassification {
                world: world.clone(),
                split: Split::Train,
                len: *train_size,
            });
            let valid = Arc::new(ShapeWorldClassification {
                world: world.clone(),
                split: Split::Val,
                len: *valid_size,
            });
            let train = match augmentation {
                Some(pipeline) => augmented(train, pipeline.clone())?,
                None => train,
            };
            (train, valid)
        }
        DataConfig::ImageFolder {
            root,
            image_size,
            augmentation,
            ..
        } => {
            let train = ImageFolder::scan(root, "train", None)?;
            let valid = ImageFolder::scan(root, "val", Some(&train.classes))?;
            if train.classes.len() != experiment.num_classes() {
                bail!(
                    "{} has {} class folders but model.num_classes = {}",
                    root.join("train").display(),
                    train.classes.len(),
                    experiment.num_classes()
                );
            }
            let pipeline = augmentation
                .clone()
                .unwrap_or_else(|| Pipeline::imagenet_train(*image_size));
            classes = Some(train.classes.clone());
            (
                augmented(Arc::new(train), pipeline)?,
                augmented(Arc::new(valid), Pipeline::imagenet_eval(*image_size))?,
            )
        }
    };
    Ok(ExperimentData {
        train,
        valid,
        epoch,
        classes,
    })
}

pub fn batcher_of(experiment: &ClassificationExperiment) -> ClassificationBatcher {
    let normalization = match &experiment.data {
        DataConfig::Shapeworld { normalization, .. }
        | DataConfig::ImageFolder { normalization, .. } => *normalization,
    };
    ClassificationBatcher { normalization }
}

impl OnBackend for SingleRun {
    type Output = Vec<EpochRow>;

    fn run<B: AutodiffBackend>(self, device: B::Device, backend: &str) -> Result<Vec<EpochRow>> {
        let SingleRun {
            experiment,
            destination,
            mut meta,
            resume_epoch,
            previous_rows,
            verbose,
        } = self;
        let train = &experiment.train;
        B::seed(&device, train.seed);
        // Data first: a missing or malformed dataset leaves no run directory behind.
        let ExperimentData {
            train: train_set,
            valid: valid_set,
            epoch,
            classes,
        } = datasets_of(&experiment)?;
        let run = match destination {
            Destination::Resume(run) => run,
            Destination::New { out } => {
                let run = RunDir::create(&out, &meta.paper)?;
                meta.device = format!("{device:?}");
                run.write_config(&meta, &experiment)?;
                if let Some(classes) = classes {
                    // The label of each output: line k names class k (ImageNet: its synset).
                    datasets::formats::imagenet::ClassIndex::from_wnids(classes)
                        .write(&run.file("classes.txt"))?;
                }
                run
            }
        };
        let model = experiment.model.init::<B>(&device);
        let parameters = core_nets::count_parameters::<B, _>(&model);
        let (train_images, iters_per_epoch) =
            (train_set.len(), train_set.len().div_ceil(train.batch_size));
        if verbose {
            println!("run directory: {}", run.path.display());
            println!("model: {}", experiment.model_summary(parameters));
            println!(
                "data: {} train / {} valid images, batch {}, {} epochs on {backend}",
                train_set.len(),
                valid_set.len(),
                train.batch_size,
                train.epochs
            );
        }
        let batcher = batcher_of(&experiment);
        // Batches are a function of (seed, epoch, index): a resumed run continues the same sequence.
        let train_loader = EpochLoader::<B, _, _>::new(
            train_set,
            batcher.clone(),
            train.batch_size,
            device.clone(),
        )
        .shuffle(train.seed)
        .workers(train.num_workers)
        .sharing_epoch(epoch)
        .starting_at_epoch(resume_epoch.unwrap_or(0));
        let valid_loader = EpochLoader::<B::InnerBackend, _, _>::new(
            valid_set,
            batcher,
            train.batch_size,
            device.clone(),
        )
        .workers(train.num_workers);
        let log = EpochLog::resumed(previous_rows);
        let outcome = core_train::fit_classifier(
            model,
            Arc::new(train_loader),
            Arc::new(valid_loader),
            FitOptions {
                run: &run,
                train,
                num_classes: experiment.num_classes(),
                iters_per_epoch,
                train_images,
                resume_epoch,
                log: log.clone(),
            },
        );
        let mut notes = vec![format!(
            "Chance level: {:.1} % top-1 ({} classes).",
            100.0 / experiment.num_classes() as f64,
            experiment.num_classes()
        )];
        if let Some(epoch) = resume_epoch {
            notes.push(format!("Resumed after epoch {epoch} from its checkpoint."));
        }
        let error = outcome.as_ref().err().map(|e| format!("{e:#}"));
        if let Some(error) = &error {
            notes.push(format!("Stopped early: {error}"));
        }
        let rows = log.rows();
        finish_run(&run, &meta, &experiment, parameters, &rows, &notes)?;
        let outcome = outcome?;
        outcome
            .model
            .save_file(run.file("model"), &AtomicRecorder)
            .with_context(|| format!("writing {}", run.file("model.mpk").display()))?;
        if verbose && let Some(last) = rows.last() {
            println!(
                "done: valid top-1 {:.2} %, top-5 {:.2} % after {} epochs; report: {}",
                last.valid_top1,
                last.valid_top5,
                last.epoch,
                run.file("report.md").display()
            );
        }
        Ok(rows)
    }
}

/// `curves.png` and `report.md` from the rows so far.
fn finish_run(
    run: &RunDir,
    meta: &RunMeta,
    experiment: &ClassificationExperiment,
    parameters: usize,
    rows: &[EpochRow],
    notes: &[String],
) -> Result<()> {
    let title = format!(
        "{} — {} ({})",
        meta.paper, experiment.description, meta.preset
    );
    if !rows.is_empty() {
        draw_curves(rows, &title, &run.file("curves.png"))?;
    }
    let config_toml =
        toml::to_string_pretty(experiment).context("serialising the config as TOML")?;
    let report = render_report(&ReportInput {
        title: &title,
        meta,
        config_toml: &config_toml,
        model_summary: &experiment.model_summary(parameters),
        rows,
        notes,
    });
    core_train::checkpoint::write_atomically(&run.file("report.md"), report.as_bytes())
        .with_context(|| format!("writing {}", run.file("report.md").display()))
}

pub fn dispatch_eval(args: EvalArgs) -> Result<()> {
    let run = RunDir::open(&args.run)?;
    let (_, experiment): (RunMeta, ClassificationExperiment) = run.read_config()?;
    on_backend(&args.backend, Evaluation { experiment, run })
}

/// Top-1/top-5 and loss of a run's final model (or newest checkpoint) on its validation data.
struct Evaluation {
    experiment: ClassificationExperiment,
    run: RunDir,
}

impl OnBackend for Evaluation {
    type Output = ();

    fn run<B: AutodiffBackend>(self, device: B::Device, backend: &str) -> Result<()> {
        let Evaluation { experiment, run } = self;
        let (model, path) =
            run.load_final_model(experiment.model.init::<B::InnerBackend>(&device), &device)?;
        let valid_set = datasets_of(&experiment)?.valid;
        let loader = EpochLoader::<B::InnerBackend, _, _>::new(
            valid_set,
            batcher_of(&experiment),
            experiment.train.batch_size,
            device.clone(),
        )
        .workers(experiment.train.num_workers);
        let (mut top1, mut top5, mut loss_sum, mut count) = (0usize, 0usize, 0.0f64, 0usize);
        for batch in loader.iter() {
            let n = batch.targets.dims()[0];
            let out = model.forward_classification(batch.images, batch.targets);
            let logits: Vec<f32> = out.output.into_data().iter::<f32>().collect();
            let targets: Vec<i64> = out.targets.into_data().iter::<i64>().collect();
            let classes = logits.len() / n;
            for (row, &target) in logits.chunks(classes).zip(&targets) {
                let target_logit = row[target as usize];
                // Rank = how many classes score strictly higher (ties broken in the target's favour).
                let rank = row.iter().filter(|&&v| v > target_logit).count();
                top1 += (rank < 1) as usize;
                top5 += (rank < 5) as usize;
            }
            loss_sum += out
                .loss
                .into_data()
                .iter::<f64>()
                .next()
                .unwrap_or(f64::NAN)
                * n as f64;
            count += n;
        }
        println!(
            "{} on {backend}: {} validation images, top-1 {:.2} %, top-5 {:.2} %, loss {:.4}",
            path.display(),
            count,
            100.0 * top1 as f64 / count as f64,
            100.0 * top5 as f64 / count as f64,
            loss_sum / count as f64
        );
        Ok(())
    }
}
