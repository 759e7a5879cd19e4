//! Multi-label training of the two-path ResNeXt on burn-train's `SupervisedTraining`
//! (`core_train::fit_supervised`: checkpoints, resume, divergence guard, `metrics.csv`): binary
//! cross-entropy on the logits over the classes (`BCEWithLogits`, §4.2), SGD + schedule; per
//! epoch the loss and burn-train's overall F1 (logit > 0, micro, averaged over batches) for the
//! curves; after training the exact scores of [`crate::metrics`] on the whole validation split.

use std::sync::Arc;

use anyhow::{Context, Result};
use burn::{
    module::Module,
    nn::loss::BinaryCrossEntropyLossConfig,
    tensor::{
        Int, Tensor,
        backend::{AutodiffBackend, Backend},
    },
    train::{
        InferenceStep, MultiLabelClassificationOutput, TrainOutput, TrainStep,
        metric::{ClassReduction, FBetaScoreMetric, LossMetric},
    },
};
use core_nets::ResNet;
use core_train::{
    AtomicRecorder, EpochLog, EpochMeans, EpochMetrics, FitOptions, Outcome, Part, Session,
    metrics_csv::MetricsRow,
};
use datasets::{ClassificationBatcher, EpochLoader, MultiLabelBatch, MultiLabelBatcher};

use super::{config::ElasticExperiment, evaluate};

/// A ResNet with one logit per label, trained with binary cross-entropy.
#[derive(Module, Debug)]
pub struct MultiLabelNet<B: Backend> {
    pub net: ResNet<B>,
}

impl<B: Backend> MultiLabelNet<B> {
    /// Logits `[B, classes]` and the mean binary cross-entropy against the 0/1 `targets`.
    pub fn forward_multilabel(
        &self,
        images: Tensor<B, 4>,
        targets: Tensor<B, 2, Int>,
    ) -> MultiLabelClassificationOutput<B> {
        let logits = self.net.forward(images);
        let loss = BinaryCrossEntropyLossConfig::new()
            .with_logits(true)
            .init(&logits.device())
            .forward(logits.clone(), targets.clone());
        MultiLabelClassificationOutput::new(loss, logits, targets)
    }
}

impl<B: AutodiffBackend> TrainStep for MultiLabelNet<B> {
    type Input = MultiLabelBatch<B>;
    type Output = MultiLabelClassificationOutput<B>;

    fn step(&self, batch: MultiLabelBatch<B>) -> TrainOutput<Self::Output> {
        let item = self.forward_multilabel(batch.images, batch.targets);
        TrainOutput::new(self, item.loss.backward(), item)
    }
}

impl<B: Backend> InferenceStep for MultiLabelNet<B> {
    type Input = MultiLabelBatch<B>;
    type Output = MultiLabelClassificationOutput<B>;

    fn step(&self, batch: MultiLabelBatch<B>) -> Self::Output {
        self.forward_multilabel(batch.images, batch.targets)
    }
}

/// One epoch of `metrics.csv`. F1 in percent (burn-train's, averaged over batches).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ElasticRow {
    pub epoch: usize,
    pub lr: f64,
    pub train_loss: f64,
    pub train_f1: f64,
    pub valid_loss: f64,
    pub valid_f1: f64,
    pub train_images_per_s: f64,
    pub epoch_seconds: f64,
}

impl MetricsRow for ElasticRow {
    const HEADER: &'static str =
        "epoch,lr,train_loss,train_f1,valid_loss,valid_f1,train_images_per_s,epoch_seconds";

    fn values(&self) -> Vec<f64> {
        vec![
            self.epoch as f64,
            self.lr,
            self.train_loss,
            self.train_f1,
            self.valid_loss,
            self.valid_f1,
            self.train_images_per_s,
            self.epoch_seconds,
        ]
    }

    fn from_values(v: &[f64]) -> Self {
        Self {
            epoch: v[0] as usize,
            lr: v[1],
            train_loss: v[2],
            train_f1: v[3],
            valid_loss: v[4],
            valid_f1: v[5],
            train_images_per_s: v[6],
            epoch_seconds: v[7],
        }
    }
}

impl EpochMetrics for ElasticRow {
    fn record(&mut self, part: Part, means: &EpochMeans) {
        let loss = means.of(|n| n == "Loss");
        let f1 = means.of(|n| n.starts_with("FBetaScore"));
        match part {
            Part::Train => {
                (self.train_loss, self.train_f1) = (loss, f1);
                self.lr = means.of(|n| n == "Learning Rate");
            }
            Part::Valid => (self.valid_loss, self.valid_f1) = (loss, f1),
        }
    }

    core_train::epoch_timing!();

    fn summary(&self) -> String {
        format!(
            "lr {:.2e} | train loss {:.4} F1 {:5.1}% | valid loss {:.4} F1 {:5.1}% | {:.0} img/s | {:.0}s",
            self.lr,
            self.train_loss,
            self.train_f1,
            self.valid_loss,
            self.valid_f1,
            self.train_images_per_s,
            self.epoch_seconds
        )
    }

    fn reference_loss(&self) -> Option<f64> {
        Some(self.train_loss)
    }
}

/// The network a config describes, initialised as it asks.
pub fn init_model<B: Backend>(config: &ElasticExperiment, device: &B::Device) -> MultiLabelNet<B> {
    let net = config.model.init::<B>(device);
    let net = if config.init.official {
        crate::official_init(net, config.init.elastic_init_quirk)
    } else {
        net
    };
    MultiLabelNet { net }
}

/// `model` with every tensor but its classifier from a released checkpoint of the same
/// architecture (the "fake resume" of the official fine-tuning scripts, made explicit).
fn from_pretrained<B: Backend>(
    model: MultiLabelNet<B>,
    config: &ElasticExperiment,
    pretrained: &super::config::Pretrained,
    verbose: bool,
    device: &B::Device,
) -> Result<MultiLabelNet<B>> {
    let source = config
        .model
        .clone()
        .with_num_classes(Some(pretrained.classes))
        .init::<B>(device);
    let (net, report) = core_nets::load_pytorch_resnet(
        source,
        &pretrained.file,
        "this config's model with the checkpoint's classifier (pretrained.classes)",
    )
    .with_context(|| format!("pretrained.file = {}", pretrained.file.display()))?;
    if verbose {
        println!(
            "initialised from {} ({}); a new {}-way classifier",
            pretrained.file.display(),
            report.summary(),
            config.model.num_classes.unwrap_or(0)
        );
    }
    Ok(MultiLabelNet {
        net: ResNet {
            fc: model.net.fc,
            ..net
        },
    })
}

pub fn batcher_of(config: &ElasticExperiment) -> MultiLabelBatcher {
    MultiLabelBatcher {
        images: ClassificationBatcher {
            normalization: config.data.normalization(),
        },
    }
}

/// Trains `config` into `session`'s run directory (fresh or resumed), then evaluates the final
/// model on the validation split and writes the report and pictures.
pub fn fit<B: AutodiffBackend>(
    config: ElasticExperiment,
    mut session: Session,
    device: &B::Device,
) -> Result<Outcome> {
    if let Some(task) = config.classification() {
        return fit_classification::<B>(&config, &task, session, device);
    }
    if config.data.is_segmentation() {
        return super::segment::fit_segmentation::<B>(&config, session, device);
    }
    let train = &config.train;
    B::seed(device, train.seed);
    let resume_epoch = session.resume_epoch();
    // Data first: a missing or malformed dataset leaves no run directory behind.
    let sources = config.sources()?;
    let previous_rows = session
        .previous_rows(core_train::metrics_csv::read_rows::<ElasticRow>, |r| {
            r.epoch
        })?;
    let run = session.open::<B, _>(&config, device)?;
    // The label names, so that `vireo infer` need not read the dataset again (COCO's JSONs).
    core_train::checkpoint::write_atomically(
        &run.file("classes.txt"),
        (sources.classes.join("\n") + "\n").as_bytes(),
    )?;
    let meta = &session.meta;
    let verbose = session.verbose;
    let model = init_model::<B>(&config, device);
    let model = match (&config.pretrained, resume_epoch) {
        (Some(pretrained), None) => from_pretrained(model, &config, pretrained, verbose, device)?,
        _ => model,
    };
    if let Some(epoch) = resume_epoch {
        let file = run.checkpoint_dir().join(format!("model-{epoch}.mpk"));
        core_train::RunDir::load_model(model.clone(), &file, device).with_context(|| {
            format!("{} is not a checkpoint of this run's model", file.display())
        })?;
    }
    let parameters = core_nets::count_parameters::<B, _>(&model);
    let (train_images, iters_per_epoch) = (
        sources.train.len(),
        sources.train.len().div_ceil(train.batch_size),
    );
    if verbose {
        println!("run directory: {}", run.path.display());
        println!("model: {}", config.model_summary(parameters));
        println!(
            "data: {} train / {} valid images ({} labels), batch {}, {} epochs on {}",
            train_images,
            sources.valid.len(),
            sources.classes.len(),
            train.batch_size,
            train.epochs,
            meta.backend
        );
    }
    let batcher = batcher_of(&config);
    let skip = config.data.skip_corrupt();
    let train_loader = EpochLoader::<B, _, _>::new(
        sources.train.clone(),
        batcher.clone(),
        train.batch_size,
        device.clone(),
    )
    .shuffle(train.seed)
    .workers(train.num_workers)
    .sharing_epoch(sources.epoch.clone())
    .starting_at_epoch(resume_epoch.unwrap_or(0))
    .skip_failures(skip);
    let valid_loader = EpochLoader::<B::InnerBackend, _, _>::new(
        sources.valid.clone(),
        batcher,
        train.batch_size,
        device.clone(),
    )
    .workers(train.num_workers)
    .skip_failures(skip);
    let statuses = [train_loader.status(), valid_loader.status()];
    let stop = datasets::stop_on_load_failure(&statuses);
    let log = EpochLog::resumed(previous_rows);
    // Per-device BN emulation (§4.1): the recipe's values for the whole batch.
    let stepped = train.per_device(config.devices);
    let outcome = core_train::fit_supervised(
        model,
        Arc::new(train_loader),
        Arc::new(valid_loader),
        FitOptions {
            run: &run,
            train: &stepped,
            num_classes: sources.classes.len(),
            iters_per_epoch,
            train_images,
            resume_epoch,
            log: log.clone(),
            stop,
            grad_accumulation: Some(config.devices),
        },
        |training| {
            training.metrics((
                LossMetric::new(),
                FBetaScoreMetric::multilabel(1.0, 0.0, ClassReduction::Micro),
            ))
        },
    );
    let rows = log.rows();
    let skipped: Vec<String> = statuses.iter().flat_map(|s| s.skipped()).collect();
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(error) => {
            // The first error is the one reported; the stopped run's report comes second.
            let _ = evaluate::write_outputs(
                &run,
                meta,
                &config,
                parameters,
                &rows,
                None,
                &sources.classes,
                &skipped,
                Some(&format!("{error:#}")),
            );
            return Err(error);
        }
    };
    let model_file = run.file("model.mpk");
    outcome
        .model
        .clone()
        .save_file(run.file("model"), &AtomicRecorder)
        .with_context(|| format!("writing {}", model_file.display()))?;
    let evaluation = evaluate::evaluate(&outcome.model, &sources, &config, device)?;
    evaluate::draw_scale_policy(
        &outcome.model.net,
        &sources,
        &config,
        &run.file("scale-policy.png"),
        device,
    )?;
    evaluate::write_outputs(
        &run,
        meta,
        &config,
        parameters,
        &rows,
        Some(&evaluation),
        &sources.classes,
        &skipped,
        None,
    )?;
    let s = &evaluation.scores;
    let summary = format!(
        "valid F1 overall {:.2} % / per class {:.2} %, mAP {:.2} %, recall small/medium/large {:.1} / {:.1} / {:.1} % after {} epochs",
        s.f1_overall,
        s.f1_per_class,
        s.map,
        s.recall_by_size[0],
        s.recall_by_size[1],
        s.recall_by_size[2],
        rows.len()
    );
    if verbose {
        println!(
            "done: {summary}; report: {}",
            run.file("report.md").display()
        );
    }
    Ok(Outcome {
        metric: s.f1_overall,
        summary,
        run,
        extra: Vec::new(),
    })
}

/// The single-label task (§4.1, ImageNet) on the classification experiment's run
/// (`classification::train::fit_setup`: top-1/top-5, curves, report, checkpoints, resume), with
/// ELASTIC's initialisation, released weights and per-device BN; then the scale-policy picture.
fn fit_classification<B: AutodiffBackend>(
    config: &ElasticExperiment,
    task: &classification::ClassificationConfig,
    session: Session,
    device: &B::Device,
) -> Result<Outcome> {
    let fresh = session.resume_epoch().is_none();
    let verbose = session.verbose;
    let outcome = classification::train::fit_setup(
        classification::train::RunSetup {
            experiment: config,
            config: task,
            model: |device: &B::Device| {
                let model = init_model::<B>(config, device);
                Ok(match (&config.pretrained, fresh) {
                    (Some(pretrained), true) => {
                        from_pretrained(model, config, pretrained, verbose, device)?
                    }
                    _ => model,
                }
                .net)
            },
            summary: |parameters| config.model_summary(parameters),
            devices: config.devices,
        },
        session,
        device,
    )?;
    let (net, _) = outcome
        .run
        .load_final_model(config.model.init::<B::InnerBackend>(device), device)?;
    let data = classification::train::datasets_of(task)?;
    let images = (0..data.valid.len().min(4))
        .filter_map(|i| data.valid.get(i))
        .map(|item| (item.pixels, item.size))
        .collect();
    evaluate::draw_scale_policy_of(
        &net,
        images,
        config.data.normalization(),
        &outcome.run.file("scale-policy.png"),
        device,
    )?;
    Ok(outcome)
}
