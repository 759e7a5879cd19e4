//! ELASTIC's semantic segmentation task (`elastic.md` §4.3, `segment.py`): the DeepLabv3 variant of
//! the two-path ResNeXt ([`crate::models::segmentation`]: elastic stages 1–3, the unstrided
//! multi-grid stage 4, the ASPP head, logits upsampled to the input), pixel cross-entropy that
//! ignores void, SGD + poly schedule, mIoU accumulated over the whole split (`ws.md` §4.4) — on
//! burn-train's Learner through `core_train::fit_supervised` (checkpoints, resume, the divergence
//! guard, `metrics.csv`, per-device BN) — then the per-class IoU of the final model, the prediction
//! and scale-policy pictures and the report.

use std::{
    fmt::Write as _,
    path::Path,
    sync::{Arc, atomic::AtomicUsize},
};

use anyhow::{Context, Result, bail};
use burn::{
    backend::Flex,
    data::{dataloader::DataLoader, dataset::Dataset},
    module::Module,
    tensor::{
        Int, Tensor,
        activation::log_softmax,
        backend::{AutodiffBackend, Backend},
    },
    train::{
        InferenceStep, ItemLazy, TrainOutput, TrainStep,
        metric::{
            Adaptor, LossInput, LossMetric, Metric, MetricAttributes, MetricMetadata, MetricName,
            Numeric, NumericAttributes, NumericEntry, SerializedEntry,
        },
    },
};
use core_nets::DeepLab;
use core_train::{
    AtomicRecorder, EpochLog, EpochMeans, EpochMetrics, FitOptions, LossValue, Outcome, Part,
    RunDir, RunMeta, Session,
    checkpoint::write_atomically,
    metrics_csv::{MetricsRow, read_rows},
    plot::draw_tile_grid,
};
use datasets::{
    EpochLoader, Split,
    formats::voc::VocSegmentation,
    panoptic::{Geometry, LabelledImage, PanopticAugmentation},
    semantic::{
        SemanticBatch, SemanticBatcher, SemanticItem, ShapeWorldSemantic, VOID, VocSemantic,
    },
    shapeworld::{rgb_picture, semantic_picture},
};

use super::{
    config::ElasticData,
    config::ElasticExperiment,
    evaluate::{ReportRow, TaskReport, draw_scale_policy_of, write_report},
};
use crate::metrics::IouCounts;

/// The DeepLabv3 network, trained with pixel cross-entropy.
#[derive(Module, Debug)]
pub struct SegmentationNet<B: Backend> {
    pub net: DeepLab<B>,
}

/// Mean cross-entropy over the pixels whose label is a class (void, 255, and any other label
/// outside `0..C` count nowhere, as in [`IouCounts`]): `logits` `[B, C, H, W]`, `labels`
/// `[B, H, W]`.
pub fn pixel_cross_entropy<B: Backend>(
    logits: Tensor<B, 4>,
    labels: Tensor<B, 3, Int>,
) -> Tensor<B, 1> {
    let classes = logits.dims()[1] as i64;
    let void = labels.clone().greater_equal_elem(classes); // [B, H, W]
    let safe = labels.mask_fill(void.clone(), 0);
    let log_p = log_softmax(logits, 1);
    let picked: Tensor<B, 3> = log_p.gather(1, safe.unsqueeze_dim(1)).squeeze_dim(1);
    let counted = void.bool_not().float();
    let count = counted.clone().sum().clamp_min(1.0);
    (picked * counted).sum().neg() / count
}

/// One step's loss and the labels it predicted (argmax) next to the true ones.
pub struct SegmentationOutput<B: Backend> {
    pub loss: Tensor<B, 1>,
    pub predicted: Tensor<B, 3, Int>,
    pub labels: Tensor<B, 3, Int>,
}

/// [`SegmentationOutput`] on burn-train's metric thread.
#[derive(Clone, Debug)]
pub struct SegmentationValues {
    pub loss: f64,
    pub predicted: Vec<i64>,
    pub labels: Vec<i64>,
    pub images: usize,
}

impl<B: Backend> ItemLazy for SegmentationOutput<B> {
    type ItemSync = SegmentationValues;

    fn sync(self) -> SegmentationValues {
        SegmentationValues {
            images: self.labels.dims()[0],
            loss: self
                .loss
                .into_data()
                .iter::<f64>()
                .next()
                .unwrap_or(f64::NAN),
            predicted: self.predicted.into_data().iter::<i64>().collect(),
            labels: self.labels.into_data().iter::<i64>().collect(),
        }
    }
}

impl Adaptor<LossValue> for SegmentationValues {
    fn adapt(&self) -> LossValue {
        LossValue(self.loss)
    }
}

impl Adaptor<LossInput<Flex>> for SegmentationValues {
    fn adapt(&self) -> LossInput<Flex> {
        LossInput::new(Tensor::from_floats([self.loss as f32], &Default::default()))
    }
}

impl Adaptor<SegmentationValues> for SegmentationValues {
    fn adapt(&self) -> SegmentationValues {
        self.clone()
    }
}

impl<B: Backend> SegmentationNet<B> {
    pub fn forward_segmentation(&self, batch: SemanticBatch<B>) -> SegmentationOutput<B> {
        let logits = self.net.forward(batch.images);
        let predicted: Tensor<B, 3, Int> = logits.clone().argmax(1).squeeze_dim(1);
        SegmentationOutput {
            loss: pixel_cross_entropy(logits, batch.labels.clone()),
            predicted,
            labels: batch.labels,
        }
    }
}

impl<B: AutodiffBackend> TrainStep for SegmentationNet<B> {
    type Input = SemanticBatch<B>;
    type Output = SegmentationOutput<B>;

    fn step(&self, batch: SemanticBatch<B>) -> TrainOutput<SegmentationOutput<B>> {
        let output = self.forward_segmentation(batch);
        TrainOutput::new(self, output.loss.backward(), output)
    }
}

impl<B: Backend> InferenceStep for SegmentationNet<B> {
    type Input = SemanticBatch<B>;
    type Output = SegmentationOutput<B>;

    fn step(&self, batch: SemanticBatch<B>) -> SegmentationOutput<B> {
        self.forward_segmentation(batch)
    }
}

/// mIoU (%) of the epoch so far, accumulated over all its pixels (not a mean of batch values).
#[derive(Clone)]
pub struct MiouMetric {
    name: MetricName,
    counts: IouCounts,
}

impl MiouMetric {
    pub const NAME: &str = "mIoU";

    pub fn new(classes: usize) -> Self {
        Self {
            name: Arc::new(Self::NAME.into()),
            counts: IouCounts::new(classes),
        }
    }
}

impl Metric for MiouMetric {
    type Input = SegmentationValues;

    fn name(&self) -> MetricName {
        self.name.clone()
    }

    fn update(&mut self, item: &SegmentationValues, _metadata: &MetricMetadata) -> SerializedEntry {
        self.counts.add(&item.predicted, &item.labels);
        let miou = self.counts.miou();
        SerializedEntry::new(format!("{miou:.2} %"), miou.to_string())
    }

    fn clear(&mut self) {
        self.counts = IouCounts::new(self.counts.intersection.len());
    }

    fn attributes(&self) -> MetricAttributes {
        NumericAttributes {
            unit: Some("%".into()),
            higher_is_better: true,
        }
        .into()
    }
}

impl Numeric for MiouMetric {
    fn value(&self) -> NumericEntry {
        NumericEntry::Value(self.counts.miou())
    }

    fn running_value(&self) -> NumericEntry {
        NumericEntry::Value(self.counts.miou())
    }
}

/// One epoch of a segmentation run's `metrics.csv` (mIoU in percent, over the epoch's pixels).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SegmentationRow {
    pub epoch: usize,
    pub lr: f64,
    pub train_loss: f64,
    pub train_miou: f64,
    pub valid_loss: f64,
    pub valid_miou: f64,
    pub train_images_per_s: f64,
    pub epoch_seconds: f64,
}

impl MetricsRow for SegmentationRow {
    const HEADER: &'static str =
        "epoch,lr,train_loss,train_miou,valid_loss,valid_miou,train_images_per_s,epoch_seconds";

    fn values(&self) -> Vec<f64> {
        vec![
            self.epoch as f64,
            self.lr,
            self.train_loss,
            self.train_miou,
            self.valid_loss,
            self.valid_miou,
            self.train_images_per_s,
            self.epoch_seconds,
        ]
    }

    fn from_values(v: &[f64]) -> Self {
        Self {
            epoch: v[0] as usize,
            lr: v[1],
            train_loss: v[2],
            train_miou: v[3],
            valid_loss: v[4],
            valid_miou: v[5],
            train_images_per_s: v[6],
            epoch_seconds: v[7],
        }
    }
}

impl EpochMetrics for SegmentationRow {
    fn record(&mut self, part: Part, means: &EpochMeans) {
        let loss = means.of(|n| n == "Loss");
        let miou = means.of(|n| n == MiouMetric::NAME);
        match part {
            Part::Train => {
                (self.train_loss, self.train_miou) = (loss, miou);
                self.lr = means.of(|n| n == "Learning Rate");
            }
            Part::Valid => (self.valid_loss, self.valid_miou) = (loss, miou),
        }
    }

    core_train::epoch_timing!();

    fn summary(&self) -> String {
        format!(
            "lr {:.2e} | train loss {:.4} mIoU {:5.1}% | valid loss {:.4} mIoU {:5.1}% | {:.0} img/s | {:.0}s",
            self.lr,
            self.train_loss,
            self.train_miou,
            self.valid_loss,
            self.valid_miou,
            self.train_images_per_s,
            self.epoch_seconds,
        )
    }

    fn reference_loss(&self) -> Option<f64> {
        Some(self.train_loss)
    }
}

type Items = Arc<dyn Dataset<SemanticItem>>;

/// A segmentation run's data: both splits, the class names, the epoch the training crops read.
pub struct SegmentationSources {
    pub train: Items,
    pub valid: Items,
    pub classes: Vec<String>,
    pub epoch: Arc<AtomicUsize>,
}

/// VOC's 21 classes, background first (`ws.md` §7).
pub fn voc_class_names() -> Vec<String> {
    std::iter::once("background")
        .chain(datasets::formats::voc::VOC_CLASSES)
        .map(str::to_string)
        .collect()
}

impl ElasticExperiment {
    /// The segmentation data: ShapeWorld's scenes or the VOC lists (a missing or malformed file is
    /// named).
    pub fn segmentation_sources(&self) -> Result<SegmentationSources> {
        let epoch = Arc::new(AtomicUsize::new(0));
        match &self.data {
            ElasticData::ShapeworldSegmentation {
                train_size,
                valid_size,
                world,
                ..
            } => {
                let set = |split, len| -> Items {
                    Arc::new(ShapeWorldSemantic {
                        world: world.clone(),
                        split,
                        len,
                    })
                };
                Ok(SegmentationSources {
                    train: set(Split::Train, *train_size),
                    valid: set(Split::Val, *valid_size),
                    classes: world
                        .semantic_classes()
                        .iter()
                        .map(|s| s.to_string())
                        .collect(),
                    epoch,
                })
            }
            ElasticData::Voc {
                root,
                crop,
                train_list,
                val_list,
                ..
            } => {
                let read = |list: &str| -> Result<Arc<VocSegmentation>> {
                    Ok(Arc::new(VocSegmentation::read(root, list)?))
                };
                let train: Items = Arc::new(VocSemantic {
                    reader: read(train_list)?,
                    geometry: Geometry::Train {
                        augmentation: PanopticAugmentation {
                            crop: [*crop, *crop],
                            scale: [0.5, 2.0],
                            scale_step: 0.1,
                            flip: true,
                            log_uniform: true,
                        },
                        seed: self.train.seed,
                        epoch: epoch.clone(),
                    },
                });
                let valid: Items = Arc::new(VocSemantic {
                    reader: read(val_list)?,
                    geometry: Geometry::Eval {
                        size: [*crop, *crop],
                    },
                });
                Ok(SegmentationSources {
                    train,
                    valid,
                    classes: voc_class_names(),
                    epoch,
                })
            }
            _ => bail!("data.source: not a segmentation task"),
        }
    }
}

/// The network a segmentation config describes (DeepLabv3 variant of `model`).
pub fn init_segmentation<B: Backend>(
    config: &ElasticExperiment,
    device: &B::Device,
) -> SegmentationNet<B> {
    let classes = config.model.num_classes.unwrap_or(0);
    let mut deeplab = crate::models::segmentation(config.model.clone(), classes);
    deeplab.aspp.channels = config.aspp.channels;
    deeplab.aspp.norm = core_norm::NormKind::Batch {
        eps: 1e-5,
        statistics: core_norm::BatchStatistics::Batch {
            momentum: config.aspp.bn_momentum,
        },
    };
    SegmentationNet {
        net: deeplab.init(device),
    }
}

/// `model` with its backbone from a released ImageNet checkpoint of the same architecture (the
/// official script's non-strict "fake resume": every backbone tensor, a new head).
fn backbone_from_pretrained<B: Backend>(
    model: SegmentationNet<B>,
    config: &ElasticExperiment,
    pretrained: &super::config::Pretrained,
    verbose: bool,
    device: &B::Device,
) -> Result<SegmentationNet<B>> {
    let classifier = config
        .model
        .clone()
        .with_num_classes(Some(pretrained.classes));
    let classifier = core_nets::ResNetConfig {
        layers: model_layers(&model),
        ..classifier
    };
    let (loaded, report) = core_nets::load_pytorch_resnet(
        classifier.init::<B>(device),
        &pretrained.file,
        "this config's model with the checkpoint's classifier (pretrained.classes)",
    )
    .with_context(|| format!("pretrained.file = {}", pretrained.file.display()))?;
    if verbose {
        println!(
            "backbone from {} ({}); a new ASPP head",
            pretrained.file.display(),
            report.summary()
        );
    }
    // Load the weights into the segmentation backbone's own structure (its strides and dilations
    // are the module's, not the record's).
    let record = core_nets::ResNet { fc: None, ..loaded }.into_record();
    let SegmentationNet { net } = model;
    Ok(SegmentationNet {
        net: DeepLab {
            backbone: net.backbone.load_record(record),
            aspp: net.aspp,
        },
    })
}

fn model_layers<B: Backend>(model: &SegmentationNet<B>) -> [usize; 4] {
    let b = &model.net.backbone;
    [
        b.layer1.len(),
        b.layer2.len(),
        b.layer3.len(),
        b.layer4.len(),
    ]
}

fn batcher_of(config: &ElasticExperiment) -> SemanticBatcher {
    SemanticBatcher {
        normalization: config.data.normalization(),
    }
}

/// Trains a segmentation config into `session`'s run directory (fresh or resumed), then
/// evaluates the final model and writes the pictures and the report.
pub fn fit_segmentation<B: AutodiffBackend>(
    config: &ElasticExperiment,
    mut session: Session,
    device: &B::Device,
) -> Result<Outcome> {
    let train = &config.train;
    B::seed(device, train.seed);
    let resume_epoch = session.resume_epoch();
    // Data first: a missing or malformed dataset leaves no run directory behind.
    let sources = config.segmentation_sources()?;
    let previous_rows = session.previous_rows(read_rows::<SegmentationRow>, |r| r.epoch)?;
    let run = session.open::<B, _>(config, device)?;
    write_atomically(
        &run.file("classes.txt"),
        (sources.classes.join("\n") + "\n").as_bytes(),
    )?;
    let meta = &session.meta;
    let verbose = session.verbose;
    let model = init_segmentation::<B>(config, device);
    let model = match (&config.pretrained, resume_epoch) {
        (Some(pretrained), None) => {
            backbone_from_pretrained(model, config, pretrained, verbose, device)?
        }
        _ => model,
    };
    if let Some(epoch) = resume_epoch {
        let file = run.checkpoint_dir().join(format!("model-{epoch}.mpk"));
        RunDir::load_model(model.clone(), &file, device).with_context(|| {
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
            "data: {} train / {} valid images ({} classes), batch {}, {} epochs on {}",
            train_images,
            sources.valid.len(),
            sources.classes.len(),
            train.batch_size,
            train.epochs,
            meta.backend
        );
    }
    let skip = config.data.skip_corrupt();
    let train_loader = EpochLoader::<B, _, _>::new(
        sources.train.clone(),
        batcher_of(config),
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
        batcher_of(config),
        train.batch_size,
        device.clone(),
    )
    .workers(train.num_workers)
    .skip_failures(skip);
    let statuses = [train_loader.status(), valid_loader.status()];
    let stop = datasets::stop_on_load_failure(&statuses);
    let log = EpochLog::resumed(previous_rows);
    let classes = sources.classes.len();
    let outcome = core_train::fit_supervised(
        model,
        Arc::new(train_loader),
        Arc::new(valid_loader),
        FitOptions {
            run: &run,
            train: &train.per_device(config.devices),
            num_classes: classes,
            iters_per_epoch,
            train_images,
            resume_epoch,
            log: log.clone(),
            stop,
            grad_accumulation: Some(config.devices),
        },
        |training| {
            training
                .metric_train_numeric(LossMetric::new())
                .metric_valid_numeric(LossMetric::new())
                .metric_train_numeric(MiouMetric::new(classes))
                .metric_valid_numeric(MiouMetric::new(classes))
        },
    );
    let rows = log.rows();
    let skipped: Vec<String> = statuses.iter().flat_map(|s| s.skipped()).collect();
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(error) => {
            let _ = write_outputs(
                &run,
                meta,
                config,
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
    let evaluation = evaluate_segmentation(&outcome.model, &sources, config, device)?;
    draw_predictions(
        &outcome.model,
        &sources,
        config,
        &run.file("predictions.png"),
        device,
    )?;
    let images = (0..sources.valid.len().min(4))
        .filter_map(|i| sources.valid.get(i))
        .map(|item| (item.pixels, item.size))
        .collect();
    draw_scale_policy_of(
        &outcome.model.net.backbone,
        images,
        config.data.normalization(),
        &run.file("scale-policy.png"),
        device,
    )?;
    write_outputs(
        &run,
        meta,
        config,
        parameters,
        &rows,
        Some(&evaluation),
        &sources.classes,
        &skipped,
        None,
    )?;
    let summary = format!(
        "valid mIoU {:.2} % over {} classes ({} images) after {} epochs",
        evaluation.counts.miou(),
        classes,
        evaluation.images,
        rows.len()
    );
    if verbose {
        println!(
            "done: {summary}; report: {}",
            run.file("report.md").display()
        );
    }
    Ok(Outcome {
        metric: evaluation.counts.miou(),
        summary,
        run,
        extra: Vec::new(),
    })
}

/// The final model's per-class intersections and unions on the validation split.
pub struct SegmentationEvaluation {
    pub counts: IouCounts,
    pub images: usize,
}

pub fn evaluate_segmentation<B: Backend>(
    model: &SegmentationNet<B>,
    sources: &SegmentationSources,
    config: &ElasticExperiment,
    device: &B::Device,
) -> Result<SegmentationEvaluation> {
    let loader = EpochLoader::<B, _, _>::new(
        sources.valid.clone(),
        batcher_of(config),
        config.train.batch_size,
        device.clone(),
    )
    .workers(config.train.num_workers)
    .skip_failures(config.data.skip_corrupt());
    let status = loader.status();
    let mut counts = IouCounts::new(sources.classes.len());
    let mut images = 0;
    for batch in loader.iter() {
        let values = model.forward_segmentation(batch).sync();
        counts.add(&values.predicted, &values.labels);
        images += values.images;
    }
    if let Some(failure) = status.failure() {
        bail!("evaluation stopped: {failure}");
    }
    if images == 0 {
        bail!("no validation image could be evaluated");
    }
    Ok(SegmentationEvaluation { counts, images })
}

/// `predictions.png`: for a few validation images, the image, the true and the predicted classes.
fn draw_predictions<B: Backend>(
    model: &SegmentationNet<B>,
    sources: &SegmentationSources,
    config: &ElasticExperiment,
    path: &Path,
    device: &B::Device,
) -> Result<()> {
    let items: Vec<SemanticItem> = (0..sources.valid.len().min(4))
        .filter_map(|i| sources.valid.get(i))
        .collect();
    if items.is_empty() {
        return Ok(());
    }
    let batch: SemanticBatch<B> =
        burn::data::dataloader::batcher::Batcher::batch(&batcher_of(config), items.clone(), device);
    let predicted = model.forward_segmentation(batch).sync().predicted;
    let mut tiles = Vec::new();
    for (k, item) in items.iter().enumerate() {
        let [h, w] = item.size;
        let image = rgb_picture(&item.pixels, item.size);
        let truth: Vec<u32> = item.labels.iter().map(|&l| l as u32).collect();
        let pred: Vec<u32> = predicted[k * h * w..(k + 1) * h * w]
            .iter()
            .map(|&l| l as u32)
            .collect();
        // Small images are enlarged (nearest) so that a tile stays readable.
        let factor = (128 / h.max(w).max(1)).max(1) as u32;
        let enlarge = |picture: image::RgbImage| {
            image::imageops::resize(
                &picture,
                w as u32 * factor,
                h as u32 * factor,
                image::imageops::FilterType::Nearest,
            )
        };
        tiles.push((enlarge(image.clone()), "image".to_string()));
        tiles.push((
            enlarge(semantic_picture(&image, &truth)),
            "truth".to_string(),
        ));
        tiles.push((
            enlarge(semantic_picture(&image, &pred)),
            "prediction".to_string(),
        ));
    }
    let refs: Vec<(&image::RgbImage, &str)> = tiles.iter().map(|(t, c)| (t, c.as_str())).collect();
    draw_tile_grid(&refs, 3, "classes: truth and prediction", path)
}

/// `curves.png` and `report.md` of a segmentation run (per-class IoU as its result).
#[allow(clippy::too_many_arguments)]
fn write_outputs(
    run: &RunDir,
    meta: &RunMeta,
    config: &ElasticExperiment,
    parameters: usize,
    rows: &[SegmentationRow],
    evaluation: Option<&SegmentationEvaluation>,
    classes: &[String],
    skipped: &[String],
    error: Option<&str>,
) -> Result<()> {
    let result = evaluation.map(|e| {
        let mut md = String::new();
        let _ = writeln!(
            md,
            "## Validation mIoU of the final model: {:.2} % ({} images, {} classes)\n",
            e.counts.miou(),
            e.images,
            classes.len()
        );
        let _ = writeln!(
            md,
            "| class | IoU (%) | pixels in truth ∪ prediction |\n|---|---|---|"
        );
        for ((name, iou), union) in classes.iter().zip(e.counts.iou()).zip(&e.counts.union) {
            let _ = writeln!(md, "| {name} | {iou:.2} | {union} |");
        }
        md.push('\n');
        md
    });
    let rows: Vec<ReportRow> = rows
        .iter()
        .map(|r| ReportRow {
            epoch: r.epoch,
            lr: r.lr,
            train_loss: r.train_loss,
            train_score: r.train_miou,
            valid_loss: r.valid_loss,
            valid_score: r.valid_miou,
            images_per_s: r.train_images_per_s,
            seconds: r.epoch_seconds,
        })
        .collect();
    let task = TaskReport {
        loss: "pixel cross-entropy",
        score: "mIoU",
        score_curve: "mIoU (%, over the epoch's pixels)",
        result,
    };
    write_report(run, meta, config, parameters, &rows, &task, skipped, error)
}

/// `vireo infer elastic` with a segmentation model: each image padded (or shrunk and padded) to
/// `size`², its classes by pixel share, and `<stem>-segmentation.png` in `out`.
pub fn predict_segmentation<B: Backend>(
    model: &SegmentationNet<B>,
    size: usize,
    normalization: datasets::Normalization,
    classes: &[String],
    images: &[std::path::PathBuf],
    options: &core_train::InferOptions,
    device: &B::Device,
) -> Result<Vec<core_train::Prediction>> {
    let batcher = SemanticBatcher { normalization };
    std::fs::create_dir_all(&options.out)
        .with_context(|| format!("creating {}", options.out.display()))?;
    images
        .iter()
        .map(|path| {
            let image = datasets::formats::decode_rgb(path)?;
            let (w0, h0) = image.dimensions();
            let labelled = LabelledImage {
                panoptic: vec![0; (w0 * h0) as usize],
                image,
            };
            let item = SemanticItem::from_labelled(Geometry::Eval { size: [size, size] }.apply(
                &labelled,
                VOID as u32,
                0,
            ));
            let batch: SemanticBatch<B> = burn::data::dataloader::batcher::Batcher::batch(
                &batcher,
                vec![item.clone()],
                device,
            );
            let predicted: Vec<u32> = model
                .forward_segmentation(batch)
                .sync()
                .predicted
                .iter()
                .map(|&l| l as u32)
                .collect();
            let picture = semantic_picture(&rgb_picture(&item.pixels, item.size), &predicted);
            let stem = path
                .file_stem()
                .map_or("image".into(), |s| s.to_string_lossy().to_string());
            let out = options.out.join(format!("{stem}-segmentation.png"));
            core_train::plot::save_png(&picture, &out)?;
            let mut pixels = vec![0usize; classes.len()];
            for &l in &predicted {
                if let Some(count) = pixels.get_mut(l as usize) {
                    *count += 1;
                }
            }
            let total = predicted.len().max(1) as f64;
            let mut ranked: Vec<(usize, usize)> = pixels.into_iter().enumerate().collect();
            ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            let shown: Vec<(usize, f64)> = ranked
                .into_iter()
                .filter(|&(_, n)| n > 0)
                .take(options.top_k)
                .map(|(c, n)| (c, 100.0 * n as f64 / total))
                .collect();
            Ok(core_train::Prediction {
                image: path.clone(),
                lines: shown
                    .iter()
                    .map(|&(c, share)| format!("{:<14} {share:5.1} % of the pixels", classes[c]))
                    .collect(),
                result: serde_json::json!({
                    "classes": shown.iter().map(|&(c, share)| serde_json::json!({
                        "name": classes[c], "pixel_share": share
                    })).collect::<Vec<_>>()
                }),
                picture: Some(out),
            })
        })
        .collect()
}

/// The suffix that names a released VOC model in `--model` (`resnext50_elastic_voc`).
pub const VOC_SUFFIX: &str = "_voc";

/// A released VOC checkpoint (`deeplab_{a}_pascal_v3_original_epoch50.pth`, `elastic.md` §5) in
/// the segmentation variant of the ELASTIC model `name` + [`VOC_SUFFIX`], `num_classes` outputs.
pub fn load_official_segmentation<B: Backend>(
    name: &str,
    file: &Path,
    num_classes: usize,
    device: &B::Device,
) -> Result<(SegmentationNet<B>, core_nets::ImportReport)> {
    let base = name.strip_suffix(VOC_SUFFIX).unwrap_or(name);
    let Some(crate::models::Arch::ResNeXt(classifier)) =
        crate::models::find_model(base).map(|m| (m.arch)())
    else {
        bail!(
            "--model {name}: expected a ResNeXt-family ELASTIC model with {VOC_SUFFIX} (resnext50_voc, resnext50_elastic_voc, resnext101_voc, resnext101_elastic_voc)"
        );
    };
    let config = crate::models::segmentation(classifier, num_classes);
    let (net, report) = core_nets::load_pytorch_checkpoint_with(
        config.init::<B>(device),
        file,
        name,
        core_nets::DEEPLAB_KEY_REMAPPING,
    )
    .with_context(|| format!("loading {} into {name}", file.display()))?;
    Ok((SegmentationNet { net }, report))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Distribution, TensorData};

    #[test]
    fn released_imagenet_weights_fill_the_backbone_and_keep_its_dilations() {
        // The fixture classifier's stage 4 is strided and undilated; loaded into the
        // segmentation backbone, its tensors arrive and the structure stays the backbone's.
        let mut config: ElasticExperiment =
            toml::from_str(include_str!("../../presets/voc.toml")).unwrap();
        config.model = core_nets::ResNetConfig {
            planes: [8, 8, 16, 16],
            stem_width: 8,
            groups: 4,
            ..crate::models::two_path_resnext([1, 1, 1, 3], true, false)
        };
        config.model.num_classes = Some(21);
        config.aspp.channels = 8;
        let file =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/seg_backbone_tiny.pth.tar");
        let pretrained = super::super::config::Pretrained { file, classes: 5 };
        let device = Default::default();
        let model = init_segmentation::<Flex>(&config, &device);
        let model = backbone_from_pretrained(model, &config, &pretrained, false, &device).unwrap();
        let core_nets::ResidualBlock::TwoPath(first) = &model.net.backbone.layer4[0] else {
            panic!("two-path blocks")
        };
        assert_eq!((first.conv2.stride, first.conv2.dilation), (1, 2));
        let (loaded, _) = core_nets::load_pytorch_resnet(
            core_nets::ResNetConfig {
                num_classes: Some(5),
                ..config.model.clone()
            }
            .init::<Flex>(&device),
            &pretrained.file,
            "fixture",
        )
        .unwrap();
        let core_nets::ResidualBlock::TwoPath(reference) = &loaded.layer4[0] else {
            panic!("two-path blocks")
        };
        first
            .conv2
            .weight
            .val()
            .into_data()
            .assert_eq(&reference.conv2.weight.val().into_data(), true);
    }

    #[test]
    fn pixel_cross_entropy_averages_over_the_non_void_pixels() {
        let device = Default::default();
        let logits =
            Tensor::<Flex, 4>::random([2, 3, 2, 2], Distribution::Normal(0.0, 1.0), &device);
        let labels = [0i64, 2, 255, 1, 1, 255, 0, 2];
        let loss = pixel_cross_entropy(
            logits.clone(),
            Tensor::from_data(TensorData::new(labels.to_vec(), [2, 2, 2]), &device),
        )
        .into_scalar();
        // By hand: −log softmax at the label, averaged over the six labelled pixels.
        let values: Vec<f32> = logits.into_data().iter::<f32>().collect();
        let mut sum = 0.0f64;
        for (p, &label) in labels.iter().enumerate() {
            if label == 255 {
                continue;
            }
            let (b, pixel) = (p / 4, p % 4);
            let at = |c: usize| values[b * 12 + c * 4 + pixel] as f64;
            let log_z = (0..3).map(|c| at(c).exp()).sum::<f64>().ln();
            sum += log_z - at(label as usize);
        }
        assert!(
            (loss as f64 - sum / 6.0).abs() < 1e-5,
            "{loss} vs {}",
            sum / 6.0
        );
    }
}
