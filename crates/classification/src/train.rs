//! One classification run on burn-train's Learner (`core_train::fit_classifier`): data first, then
//! the run directory, the model, the loop, and `curves.png`, `report.md`, `model.mpk`.

use std::sync::{Arc, atomic::AtomicUsize};

use anyhow::{Context, Result, bail};
use burn::{data::dataset::Dataset, module::Module, tensor::backend::AutodiffBackend};
use core_nets::ResNet;
use core_train::{
    AtomicRecorder, EpochLog, EpochRow, FitOptions, Outcome, ReportInput, RunDir, RunMeta, Session,
    plot::draw_curves, render_report,
};
use datasets::{
    Augmented, ClassificationBatcher, ClassificationItem, EpochLoader, ImageFolder, Pipeline,
    ShapeWorldClassification, Split,
};

use crate::{ClassificationConfig, DataConfig};

type ItemDataset = Arc<dyn Dataset<ClassificationItem>>;

/// The datasets a config names, and the epoch counter its augmentations read.
pub struct ExperimentData {
    pub train: ItemDataset,
    pub valid: ItemDataset,
    /// Shared with the train loader (`EpochLoader::sharing_epoch`).
    pub epoch: Arc<AtomicUsize>,
    /// Class names in label order: image-folder names (written to the run as `classes.txt`), or
    /// ShapeWorld's shape names.
    pub classes: Vec<String>,
    /// Whether `classes` came from folders (and so belong in `classes.txt`).
    pub from_folders: bool,
}

/// The train and validation datasets a config names, train augmentation applied.
pub fn datasets_of(config: &ClassificationConfig) -> Result<ExperimentData> {
    let seed = config.train.seed;
    let epoch = Arc::new(AtomicUsize::new(0));
    let augmented = |data: ItemDataset, pipeline: Pipeline| -> Result<ItemDataset> {
        Ok(Arc::new(
            Augmented::new(data, pipeline, seed)
                .map_err(|e| anyhow::anyhow!("data.augmentation: {e}"))?
                .with_epoch(epoch.clone()),
        ))
    };
    let (train, valid, classes, from_folders): (ItemDataset, ItemDataset, _, _) = match &config.data
    {
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
            let names = world.class_names().iter().map(|s| s.to_string()).collect();
            (train, valid, names, false)
        }
        DataConfig::ImageFolder {
            root,
            image_size,
            augmentation,
            ..
        } => {
            let train = ImageFolder::scan(root, "train", None)?;
            let valid = ImageFolder::scan(root, "val", Some(&train.classes))?;
            if train.classes.len() != config.num_classes() {
                bail!(
                    "{} has {} class folders but model.num_classes = {}",
                    root.join("train").display(),
                    train.classes.len(),
                    config.num_classes()
                );
            }
            let pipeline = augmentation
                .clone()
                .unwrap_or_else(|| Pipeline::imagenet_train(*image_size));
            let classes = train.classes.clone();
            (
                augmented(Arc::new(train), pipeline)?,
                augmented(Arc::new(valid), Pipeline::imagenet_eval(*image_size))?,
                classes,
                true,
            )
        }
    };
    Ok(ExperimentData {
        train,
        valid,
        epoch,
        classes,
        from_folders,
    })
}

pub fn batcher_of(config: &ClassificationConfig) -> ClassificationBatcher {
    ClassificationBatcher {
        normalization: config.data.normalization(),
    }
}

/// Trains `config` into `session`'s run directory (fresh or resumed).
pub fn fit<B: AutodiffBackend>(
    config: ClassificationConfig,
    session: Session,
    device: &B::Device,
) -> Result<Outcome> {
    fit_setup(
        RunSetup {
            experiment: &config,
            config: &config,
            model: |device: &B::Device| Ok(config.model.init::<B>(device)),
            summary: |parameters| config.model_summary(parameters),
            devices: 1,
        },
        session,
        device,
    )
}

/// A classification run a paper crate sets up (ELASTIC's ImageNet task): its own config, which
/// `config.json` and the report carry (so `--resume` reads it back); the recipe and the data as
/// a [`ClassificationConfig`]; how the network starts (called on fresh runs and resumed ones:
/// a resumed run then loads its checkpoint over it); and the per-device BN emulation.
pub struct RunSetup<'a, C, F, S> {
    pub experiment: &'a C,
    pub config: &'a ClassificationConfig,
    pub model: F,
    /// The model's line in logs and the report, from its parameter count.
    pub summary: S,
    /// Loader batches per optimizer step, each with its own BatchNorm statistics
    /// ([`core_train::TrainConfig::per_device`]); 1: none.
    pub devices: usize,
}

/// Trains a [`RunSetup`] into `session`'s run directory (fresh or resumed).
pub fn fit_setup<B, C, F, S>(
    setup: RunSetup<'_, C, F, S>,
    mut session: Session,
    device: &B::Device,
) -> Result<Outcome>
where
    B: AutodiffBackend,
    C: serde::Serialize,
    F: FnOnce(&B::Device) -> Result<ResNet<B>>,
    S: FnOnce(usize) -> String,
{
    let RunSetup {
        experiment,
        config,
        model,
        summary,
        devices,
    } = setup;
    let train = &config.train;
    B::seed(device, train.seed);
    let resume_epoch = session.resume_epoch();
    // Data first: a missing or malformed dataset leaves no run directory behind.
    let data = datasets_of(config)?;
    let previous_rows = session.previous_rows(
        |text| EpochRow::read_csv(text).map_err(anyhow::Error::msg),
        |r| r.epoch,
    )?;
    let fresh = resume_epoch.is_none();
    let run = session.open::<B, _>(experiment, device)?;
    if fresh && data.from_folders {
        // The label of each output: line k names class k (ImageNet: its synset).
        datasets::formats::imagenet::ClassIndex::from_wnids(data.classes.clone())
            .write(&run.file("classes.txt"))?;
    }
    let meta = &session.meta;
    let verbose = session.verbose;
    let model = model(device)?;
    if let Some(epoch) = resume_epoch {
        // burn-train panics on a checkpoint it cannot load: check the model's file first.
        let file = run.checkpoint_dir().join(format!("model-{epoch}.mpk"));
        RunDir::load_model(model.clone(), &file, device).with_context(|| {
            format!("{} is not a checkpoint of this run's model", file.display())
        })?;
    }
    let model_summary = summary(core_nets::count_parameters::<B, _>(&model));
    let (train_set, valid_set) = (data.train, data.valid);
    let (train_images, iters_per_epoch) =
        (train_set.len(), train_set.len().div_ceil(train.batch_size));
    if verbose {
        println!("run directory: {}", run.path.display());
        println!("model: {model_summary}");
        println!(
            "data: {} train / {} valid images, batch {}, {} epochs on {}",
            train_set.len(),
            valid_set.len(),
            train.batch_size,
            train.epochs,
            meta.backend
        );
    }
    let batcher = batcher_of(config);
    // Batches are a function of (seed, epoch, index): a resumed run continues the same sequence.
    let train_loader =
        EpochLoader::<B, _, _>::new(train_set, batcher.clone(), train.batch_size, device.clone())
            .shuffle(train.seed)
            .workers(train.num_workers)
            .sharing_epoch(data.epoch)
            .starting_at_epoch(resume_epoch.unwrap_or(0))
            .skip_failures(config.skip_corrupt());
    let valid_loader = EpochLoader::<B::InnerBackend, _, _>::new(
        valid_set,
        batcher,
        train.batch_size,
        device.clone(),
    )
    .workers(train.num_workers)
    .skip_failures(config.skip_corrupt());
    let statuses = [train_loader.status(), valid_loader.status()];
    let stop = datasets::stop_on_load_failure(&statuses);
    let log = EpochLog::resumed(previous_rows);
    let stepped = train.per_device(devices);
    let outcome = core_train::fit_classifier(
        model,
        Arc::new(train_loader),
        Arc::new(valid_loader),
        FitOptions {
            run: &run,
            train: &stepped,
            num_classes: config.num_classes(),
            iters_per_epoch,
            train_images,
            resume_epoch,
            log: log.clone(),
            stop,
            grad_accumulation: (devices > 1).then_some(devices),
        },
    );
    let mut notes = vec![format!(
        "Chance level: {:.1} % top-1 ({} classes).",
        100.0 / config.num_classes() as f64,
        config.num_classes()
    )];
    if let Some(epoch) = resume_epoch {
        notes.push(format!("Resumed after epoch {epoch} from its checkpoint."));
    }
    let skipped: Vec<String> = statuses.iter().flat_map(|s| s.skipped()).collect();
    notes.extend(core_train::report::skipped_note(&skipped));
    if let Err(error) = &outcome {
        notes.push(format!("Stopped early: {error:#}"));
    }
    let rows = log.rows();
    // The first error is the one reported: a failed run's report and plot come second.
    let finished = finish_run(
        &run,
        meta,
        experiment,
        &config.description,
        &model_summary,
        &rows,
        &notes,
    );
    let outcome = outcome?;
    finished?;
    let model_file = run.file("model.mpk");
    outcome
        .model
        .save_file(run.file("model"), &AtomicRecorder)
        .with_context(|| format!("writing {}", model_file.display()))?;
    let last = rows
        .last()
        .context("the run finished without a completed epoch")?;
    let summary = format!(
        "valid top-1 {:.2} %, top-5 {:.2} % after {} epochs",
        last.valid_top1, last.valid_top5, last.epoch
    );
    if verbose {
        println!(
            "done: {summary}; report: {}",
            run.file("report.md").display()
        );
    }
    Ok(Outcome {
        metric: last.valid_top1,
        summary,
        run,
        extra: Vec::new(),
    })
}

/// `curves.png` and `report.md` from the rows so far.
fn finish_run<C: serde::Serialize>(
    run: &RunDir,
    meta: &RunMeta,
    experiment: &C,
    description: &str,
    model_summary: &str,
    rows: &[EpochRow],
    notes: &[String],
) -> Result<()> {
    let title = format!("{} — {} ({})", meta.paper, description, meta.preset);
    if !rows.is_empty() {
        draw_curves(rows, &title, &run.file("curves.png"))?;
    }
    let config_toml =
        toml::to_string_pretty(experiment).context("serialising the config as TOML")?;
    let report = render_report(&ReportInput {
        title: &title,
        meta,
        config_toml: &config_toml,
        model_summary,
        rows,
        notes,
    });
    core_train::checkpoint::write_atomically(&run.file("report.md"), report.as_bytes())
        .with_context(|| format!("writing {}", run.file("report.md").display()))
}

/// The class names of a run's outputs: its `classes.txt` (image folders), else ShapeWorld's.
pub fn class_names(run: &RunDir, config: &ClassificationConfig) -> Result<Vec<String>> {
    let file = run.file("classes.txt");
    if file.is_file() {
        let index = datasets::formats::imagenet::ClassIndex::read(&file)?;
        return Ok(index
            .wnids
            .iter()
            .zip(&index.names)
            .map(|(w, n)| {
                if n.is_empty() {
                    w.clone()
                } else {
                    format!("{w} {n}")
                }
            })
            .collect());
    }
    Ok(match &config.data {
        DataConfig::Shapeworld { world, .. } => {
            world.class_names().iter().map(|s| s.to_string()).collect()
        }
        DataConfig::ImageFolder { .. } => (0..config.num_classes())
            .map(|k| format!("class {k}"))
            .collect(),
    })
}
