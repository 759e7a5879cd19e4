//! MoCo (+ CO2) pre-training (`co2-moco.md` §2.1, §4.1) on burn-train's Learner with the shared
//! pieces (`core_train::fit_supervised`: run directory, atomic checkpoints that hold both encoders
//! and the queue, schedule, the divergence guard, `metrics.csv`), run by MoCo's own learning
//! strategy ([`super::learner`]); then the linear evaluation and the semi-supervised stage.

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use burn::{
    module::{AutodiffModule, Module},
    tensor::backend::AutodiffBackend,
    train::TrainingStrategy,
};
use core_train::{
    AtomicRecorder, EpochLog, EpochMeans, EpochMetrics, FitOptions, Outcome, Part, Session,
    checkpoint::write_atomically,
    metrics_csv::{MetricsRow, read_rows},
};
use datasets::{ClassificationBatcher, EpochLoader};

use super::{
    config::Co2Experiment,
    data::{Co2Sources, PairBatcher},
    evaluate::{KnnMemory, embed, knn_accuracy, similarity_samples, write_outputs},
    learner::{KnnMetric, MocoStrategy, MocoTraining, Objective, STEP_VALUES, step_metrics},
    lincls::{Stage, SupervisedResult, supervised_stage},
};
use crate::Moco;

/// One pre-training epoch.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Co2Row {
    pub epoch: usize,
    pub lr: f64,
    /// InfoNCE + α · consistency.
    pub loss: f64,
    pub info_nce: f64,
    pub consistency: f64,
    /// Mean `q·k` of the positive pairs and `q·n` over the queue.
    pub positive_similarity: f64,
    pub negative_similarity: f64,
    /// kNN top-1 on the validation split (%).
    pub knn_top1: f64,
    pub train_images_per_s: f64,
    pub epoch_seconds: f64,
}

impl MetricsRow for Co2Row {
    const HEADER: &'static str = "epoch,lr,loss,info_nce,consistency,positive_similarity,negative_similarity,knn_top1,train_images_per_s,epoch_seconds";

    fn values(&self) -> Vec<f64> {
        vec![
            self.epoch as f64,
            self.lr,
            self.loss,
            self.info_nce,
            self.consistency,
            self.positive_similarity,
            self.negative_similarity,
            self.knn_top1,
            self.train_images_per_s,
            self.epoch_seconds,
        ]
    }

    fn from_values(v: &[f64]) -> Self {
        Self {
            epoch: v[0] as usize,
            lr: v[1],
            loss: v[2],
            info_nce: v[3],
            consistency: v[4],
            positive_similarity: v[5],
            negative_similarity: v[6],
            knn_top1: v[7],
            train_images_per_s: v[8],
            epoch_seconds: v[9],
        }
    }
}

impl EpochMetrics for Co2Row {
    fn record(&mut self, part: Part, means: &EpochMeans) {
        match part {
            Part::Train => {
                let [loss, info_nce, consistency, positive, negative] =
                    STEP_VALUES.map(|name| means.of(|n| n == name));
                (
                    self.loss,
                    self.info_nce,
                    self.consistency,
                    self.positive_similarity,
                    self.negative_similarity,
                ) = (loss, info_nce, consistency, positive, negative);
                self.lr = means.of(|n| n == "Learning Rate");
            }
            Part::Valid => self.knn_top1 = means.of(|n| n == KnnMetric::NAME),
        }
    }

    core_train::epoch_timing!();

    fn summary(&self) -> String {
        format!(
            "lr {:.2e} | loss {:.4} (InfoNCE {:.4}, CO2 {:.4}) | sim pos {:.3} neg {:.3} | kNN top-1 {:5.1}% | {:.0} img/s | {:.0}s",
            self.lr,
            self.loss,
            self.info_nce,
            self.consistency,
            self.positive_similarity,
            self.negative_similarity,
            self.knn_top1,
            self.train_images_per_s,
            self.epoch_seconds,
        )
    }

    fn reference_loss(&self) -> Option<f64> {
        Some(self.loss)
    }
}

/// Pre-trains `config` into `session`'s run directory (fresh or resumed), then evaluates linearly.
pub fn fit<B: AutodiffBackend>(
    config: Co2Experiment,
    mut session: Session,
    device: &B::Device,
) -> Result<Outcome> {
    if let Some(source) = config.pretrained.clone() {
        return linear_evaluation_only::<B>(config, session, &source, device);
    }
    let t = &config.train;
    B::seed(device, t.seed);
    let resume_epoch = session.resume_epoch();
    let start = resume_epoch.unwrap_or(0);
    // Data first: a missing or malformed dataset leaves no run directory behind.
    let sources = config.sources()?;
    let Co2Sources { views, epoch, .. } = &sources;
    let (views, epoch) = (views.clone(), epoch.clone());
    if views.len() < t.batch_size {
        bail!(
            "{} training images: fewer than train.batch_size = {} (MoCo trains on full batches only)",
            views.len(),
            t.batch_size
        );
    }
    let images = ClassificationBatcher {
        normalization: config.data.normalization(),
    };
    let skip = config.data.skip_corrupt();
    let train_loader = EpochLoader::<B, _, _>::new(
        views.clone(),
        PairBatcher {
            images: images.clone(),
        },
        t.batch_size,
        device.clone(),
    )
    .shuffle(t.seed)
    .workers(t.num_workers)
    .sharing_epoch(epoch)
    .starting_at_epoch(start)
    .skip_failures(skip)
    .drop_last();
    let valid_loader = EpochLoader::<B::InnerBackend, _, _>::new(
        sources.valid.clone(),
        images.clone(),
        t.batch_size,
        device.clone(),
    )
    .workers(t.num_workers)
    .skip_failures(skip);
    let previous_rows = session.previous_rows(read_rows::<Co2Row>, |r| r.epoch)?;
    let run = session.open::<B, _>(&config, device)?;
    let meta = &session.meta;
    let verbose = session.verbose;
    let moco: Moco<B> = config.model.init(device);
    let parameters = core_nets::count_parameters::<B, _>(&moco.encoder_q);
    let model = MocoTraining::new(
        moco,
        Objective {
            tau: config.model.tau,
            co2: config.co2.clone(),
            key_bn: config.model.key_bn,
            momentum: config.model.momentum,
        },
    );
    if let Some(epoch) = resume_epoch {
        let file = run.checkpoint_dir().join(format!("model-{epoch}.mpk"));
        core_train::RunDir::load_model(model.clone(), &file, device).with_context(|| {
            format!("{} is not a checkpoint of this run's model", file.display())
        })?;
    }
    let steps_per_epoch = views.len() / t.batch_size;
    if verbose {
        println!("run directory: {}", run.path.display());
        println!("model: {}", config.model_summary(parameters));
        println!(
            "data: {} pre-training images ({} steps of {}), kNN memory {} / {} validation images, {} epochs on {}",
            views.len(),
            steps_per_epoch,
            t.batch_size,
            sources.train.len(),
            sources.valid.len(),
            t.epochs,
            meta.backend
        );
    }
    if resume_epoch.is_none() {
        // The reference every kNN number is read against: the untrained encoder's.
        let untrained = knn_accuracy(
            &model.moco.encoder_q.valid(),
            &sources,
            &images,
            &config,
            device,
        )?;
        write_atomically(
            &run.file("knn-untrained.txt"),
            format!("{untrained}\n").as_bytes(),
        )?;
        if verbose {
            println!("kNN top-1 of the untrained encoder: {untrained:.1} %");
        }
    }
    let statuses = [train_loader.status(), valid_loader.status()];
    let stop = datasets::stop_on_load_failure(&statuses);
    let log = EpochLog::resumed(previous_rows);
    let strategy = MocoStrategy::<B> {
        seed: t.seed,
        memory: {
            let (sources, images, config, device) = (
                sources.clone(),
                images.clone(),
                config.clone(),
                device.clone(),
            );
            Arc::new(move |encoder| KnnMemory::of(encoder, &sources, &images, &config, &device))
        },
    };
    let outcome = core_train::fit_supervised(
        model,
        Arc::new(train_loader),
        Arc::new(valid_loader),
        FitOptions {
            run: &run,
            train: t,
            num_classes: sources.classes.len(),
            iters_per_epoch: steps_per_epoch,
            train_images: steps_per_epoch * t.batch_size,
            resume_epoch,
            log: log.clone(),
            stop,
            grad_accumulation: None,
        },
        |training| {
            let [loss, info_nce, consistency, positive, negative] = step_metrics();
            training
                .with_training_strategy(TrainingStrategy::Custom(Arc::new(strategy)))
                .metric_train_numeric(loss)
                .metric_train_numeric(info_nce)
                .metric_train_numeric(consistency)
                .metric_train_numeric(positive)
                .metric_train_numeric(negative)
                .metric_valid_numeric(KnnMetric::default())
        },
    );
    let rows = log.rows();
    let model = match outcome {
        Ok(outcome) => outcome.model.moco,
        Err(error) => {
            // The first error is the one reported; the stopped run's report comes second.
            let _ = write_outputs(
                &run,
                meta,
                &config,
                parameters,
                &rows,
                &[],
                None,
                None,
                &knn_lines(&run, &rows),
                &sources.classes,
                Some(&format!("{error:#}")),
            );
            return Err(error);
        }
    };
    model
        .clone()
        .save_file(run.file("model"), &AtomicRecorder)
        .with_context(|| format!("writing {}", run.file("model.mpk").display()))?;
    // Linear evaluation of the frozen query encoder (`main_lincls.py`), semi-supervised fine-tuning.
    let stages = supervised_stages::<B>(
        &model.encoder_q.backbone,
        &config,
        &sources,
        &images,
        &run,
        verbose,
        device,
    )?;
    let embedding = embed(&model.encoder_q, &sources.valid, &images, &config, device)?;
    let similarities = similarity_samples(&model, &sources, &images, &config, device)?;
    write_outputs(
        &run,
        meta,
        &config,
        parameters,
        &rows,
        &stages,
        Some(&embedding),
        Some(&similarities),
        &knn_lines(&run, &rows),
        &sources.classes,
        None,
    )?;
    let knn = rows.last().map_or(f64::NAN, |r| r.knn_top1);
    let (metric, summary) = match stages.first() {
        Some(first) => (
            first.final_top1,
            format!(
                "{}, kNN top-1 {knn:.2} % after {} epochs",
                stages_summary(&stages),
                rows.len()
            ),
        ),
        None => (
            knn,
            format!("kNN top-1 {knn:.2} % after {} epochs", rows.len()),
        ),
    };
    if verbose {
        println!(
            "done: {summary}; report: {}",
            run.file("report.md").display()
        );
    }
    Ok(Outcome {
        metric,
        summary,
        run,
        extra: Vec::new(),
    })
}

/// The report's kNN lines: the untrained encoder's (the reference) and the last epoch's.
fn knn_lines(run: &core_train::RunDir, rows: &[Co2Row]) -> Vec<(String, f64)> {
    let untrained = std::fs::read_to_string(run.file("knn-untrained.txt"))
        .ok()
        .and_then(|t| t.trim().parse::<f64>().ok());
    untrained
        .map(|v| ("untrained encoder (the reference)".to_string(), v))
        .into_iter()
        .chain(
            rows.last()
                .map(|r| (format!("epoch {}", r.epoch), r.knn_top1)),
        )
        .collect()
}

/// The encoder of `source`: a vireo CO2 run (directory or `.mpk`) or an official MoCo checkpoint.
pub fn load_pretrained<B: burn::tensor::backend::Backend>(
    config: &crate::MocoConfig,
    source: &std::path::Path,
    device: &B::Device,
) -> Result<Moco<B>> {
    let model = config.init::<B>(device);
    if source.is_dir() {
        let run = core_train::RunDir::open(source)?;
        return core_train::RunDir::load_model(model, &run.final_weights()?, device);
    }
    if source.extension().is_some_and(|e| e == "mpk") {
        return core_train::RunDir::load_model(model, source, device);
    }
    let (model, report) =
        crate::official::load_moco_checkpoint(model, source, "the MoCo model of this config")
            .with_context(|| format!("pretrained = {}", source.display()))?;
    eprintln!("{}: {}", source.display(), report.summary());
    Ok(model)
}

/// `pretrained` set: the kNN of that encoder and its linear evaluation, no pre-training.
fn linear_evaluation_only<B: AutodiffBackend>(
    config: Co2Experiment,
    mut session: Session,
    source: &std::path::Path,
    device: &B::Device,
) -> Result<Outcome> {
    B::seed(device, config.train.seed);
    let sources = config.sources()?;
    let model = load_pretrained::<B::InnerBackend>(&config.model, source, device)?;
    let run = session.open::<B, _>(&config, device)?;
    let images = ClassificationBatcher {
        normalization: config.data.normalization(),
    };
    let parameters = core_nets::count_parameters::<B::InnerBackend, _>(&model.encoder_q);
    let knn = knn_accuracy(&model.encoder_q, &sources, &images, &config, device)?;
    if session.verbose {
        println!("run directory: {}", run.path.display());
        println!(
            "pretrained encoder {}: kNN top-1 {knn:.2} %",
            source.display()
        );
    }
    let stages = supervised_stages::<B>(
        &model.encoder_q.backbone,
        &config,
        &sources,
        &images,
        &run,
        session.verbose,
        device,
    )?;
    let first = stages
        .first()
        .context("pretrained is set but neither [lincls] nor [semi] is")?;
    let embedding = embed(&model.encoder_q, &sources.valid, &images, &config, device)?;
    write_outputs(
        &run,
        &session.meta,
        &config,
        parameters,
        &[],
        &stages,
        Some(&embedding),
        Some(&similarity_samples(
            &model, &sources, &images, &config, device,
        )?),
        &[(format!("pretrained encoder {}", source.display()), knn)],
        &sources.classes,
        None,
    )?;
    let metric = first.final_top1;
    let summary = format!(
        "{}, kNN top-1 {knn:.2} % of {}",
        stages_summary(&stages),
        source.display()
    );
    if session.verbose {
        println!(
            "done: {summary}; report: {}",
            run.file("report.md").display()
        );
    }
    Ok(Outcome {
        metric,
        summary,
        run,
        extra: Vec::new(),
    })
}

/// The configured supervised stages on the pre-trained `backbone`: linear evaluation, then
/// semi-supervised fine-tuning.
fn supervised_stages<B: AutodiffBackend>(
    backbone: &core_nets::ResNet<B::InnerBackend>,
    config: &Co2Experiment,
    sources: &Co2Sources,
    images: &ClassificationBatcher,
    run: &core_train::RunDir,
    verbose: bool,
    device: &B::Device,
) -> Result<Vec<SupervisedResult>> {
    let stages = config
        .lincls
        .iter()
        .map(Stage::Linear)
        .chain(config.semi.iter().map(Stage::Semi));
    stages
        .map(|stage| {
            supervised_stage::<B>(
                stage, backbone, config, sources, images, run, verbose, device,
            )
        })
        .collect()
}

/// "linear evaluation top-1 45.50 % (best 47.00 %); semi-supervised ... top-1 ..."
fn stages_summary(stages: &[SupervisedResult]) -> String {
    stages
        .iter()
        .map(|s| {
            format!(
                "{} top-1 {:.2} % (best {:.2} %)",
                s.name, s.final_top1, s.best_top1
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}
