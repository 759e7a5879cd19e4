//! `vireo train|eval axial`: Axial-DeepLab panoptic segmentation (`axial-deeplab.md` §3.3, §4.2–4.4)
//! on the ShapeWorld panoptic task. One run: Adam with a polynomial schedule (DeepLab2's recipe),
//! targets built per image by the batcher, PQ/SQ/RQ and mIoU of the post-processed
//! predictions every epoch, atomic checkpoints and `--resume`, a NaN guard, `metrics.csv`,
//! `curves.png`, `predictions.png` and `report.md`.
//!
//! The loop is written out here rather than run by burn-train's `SupervisedTraining`: validation
//! needs whole-image post-processing and a dataset-level PQ, not per-batch metric means.

use std::{
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Instant,
};

use anyhow::{Context, Result, bail};
use axial_deeplab::{
    PanopticDeepLab, PanopticDeepLabConfig, PanopticLossConfig, PanopticTargetBatch,
    metrics::{PanopticQuality, PqSummary, SemanticConfusion},
    postprocess::{PostProcessConfig, StuffAreaRule, find_centers, group_pixels, merge_panoptic},
    targets::{LabelSpace, panoptic_targets},
};
use burn::{
    data::{
        dataloader::{DataLoader, batcher::Batcher},
        dataset::Dataset,
    },
    module::{AutodiffModule, Module},
    optim::{AdamConfig, GradientsParams, Optimizer, decay::WeightDecayConfig},
    record::Recorder,
    tensor::{Int, Tensor, TensorData, backend::AutodiffBackend, backend::Backend},
};
use core_train::{
    AtomicRecorder, RunDir, RunMeta, Schedule, ScheduleConfig,
    checkpoint::{save_checkpoint, write_atomically},
    epoch_log::format_duration,
    latest_checkpoint,
    plot::{Panel, draw_panels, draw_tile_grid},
    run_dir::git_revision,
};
use datasets::{
    EpochLoader, ShapeWorld, Split,
    formats::coco::CocoPanoptic,
    panoptic::{LabelledImage, PanopticAugmentation, fit_and_pad},
    shapeworld::{heatmap_picture, instance_picture, rgb_picture, semantic_picture, tile},
};
use serde::{Deserialize, Serialize};

use crate::{
    EvalArgs, TrainArgs,
    experiment::{load_table, read_config_file},
    train::{Destination, OnBackend, command_line, on_backend, resume_path},
};

pub const PRESETS: &[(&str, &str)] = &[
    ("smoke", include_str!("../presets/axial/smoke.toml")),
    ("mini", include_str!("../presets/axial/mini.toml")),
    ("paper", include_str!("../presets/axial/paper.toml")),
];

fn preset(name: &str) -> Result<&'static str> {
    PRESETS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, text)| *text)
        .with_context(|| {
            let names: Vec<_> = PRESETS.iter().map(|(n, _)| *n).collect();
            format!(
                "unknown preset '{name}' for axial: expected one of {}",
                names.join(", ")
            )
        })
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PanopticExperiment {
    #[serde(default)]
    pub description: String,
    pub train: PanopticTrain,
    pub model: PanopticDeepLabConfig,
    #[serde(default)]
    pub loss: PanopticLossConfig,
    #[serde(default)]
    pub targets: TargetSettings,
    #[serde(default)]
    pub postprocess: PostSettings,
    pub data: PanopticData,
}

/// Adam (DeepLab2's optimizer) with a schedule; DeepLab2's Cityscapes recipe is lr 1e-4, poly 0.9,
/// no weight decay.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PanopticTrain {
    pub epochs: usize,
    pub batch_size: usize,
    #[serde(default)]
    pub seed: u64,
    #[serde(default = "two")]
    pub num_workers: usize,
    #[serde(default = "two")]
    pub checkpoints_kept: usize,
    pub lr: f64,
    #[serde(default)]
    pub weight_decay: f64,
    pub schedule: ScheduleConfig,
    /// Images of the validation split drawn in `predictions.png`.
    #[serde(default = "four")]
    pub pictures: usize,
}

fn two() -> usize {
    2
}
fn four() -> usize {
    4
}

/// Target generation settings (§4.2); the label space itself comes from the data.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetSettings {
    pub sigma: f32,
    pub small_instance_area: usize,
    pub small_instance_weight: f32,
}

impl Default for TargetSettings {
    fn default() -> Self {
        let c = LabelSpace::cityscapes();
        Self {
            sigma: c.sigma,
            small_instance_area: c.small_instance_area,
            small_instance_weight: c.small_instance_weight,
        }
    }
}

/// Post-processing settings (§4.3); the label space itself comes from the data.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostSettings {
    pub center_threshold: f32,
    pub nms_kernel: usize,
    pub keep_k_centers: usize,
    pub stuff_area_limit: usize,
    #[serde(default)]
    pub stuff_area_rule: StuffAreaRule,
}

impl Default for PostSettings {
    fn default() -> Self {
        let c = PostProcessConfig::cityscapes();
        Self {
            center_threshold: c.center_threshold,
            nms_kernel: c.nms_kernel,
            keep_k_centers: c.keep_k_centers,
            stuff_area_limit: c.stuff_area_limit,
            stuff_area_rule: c.stuff_area_rule,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case", deny_unknown_fields)]
pub enum PanopticData {
    /// The embedded ShapeWorld panoptic task: stuff classes first, then the shapes.
    Shapeworld {
        train_size: usize,
        valid_size: usize,
        #[serde(default)]
        world: ShapeWorld,
    },
    /// Panoptic annotations on disk in the COCO panoptic format: COCO itself
    /// (`root/annotations/panoptic_{split}2017{.json,/}`, images in `root/{split}2017/`) or
    /// Cityscapes from cityscapesScripts' `createPanopticImgs.py --use-train-id`
    /// (`root/gtFine/cityscapes_panoptic_{split}_trainId{.json,/}`, `root/leftImg8bit/{split}/`).
    Files {
        format: FileFormat,
        root: PathBuf,
        #[serde(default = "train_split")]
        train_split: String,
        #[serde(default = "valid_split")]
        valid_split: String,
        /// Training: DeepLab2's random scale, crop and flip.
        augmentation: PanopticAugmentation,
        /// Validation images are shrunk to fit (never enlarged) and padded to this size.
        eval_size: [usize; 2],
    },
}

fn train_split() -> String {
    "train".into()
}
fn valid_split() -> String {
    "val".into()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileFormat {
    /// 133 classes + void 0, label divisor 256.
    Coco,
    /// 19 train ids, void 255, label divisor 1000, things 11–18.
    Cityscapes,
}

/// Divisor, void label, classes and thing classes of the data.
#[derive(Clone, Debug)]
pub struct Labels {
    pub divisor: u32,
    pub void: u32,
    pub classes: usize,
    pub things: Vec<u32>,
    pub names: Vec<String>,
}

type ItemSet = Arc<dyn Dataset<PanopticItem>>;

/// The data of a run: its label space, the two splits, the epoch the train augmentation reads.
pub struct Sources {
    pub labels: Labels,
    pub train: ItemSet,
    pub valid: ItemSet,
    pub epoch: Arc<AtomicUsize>,
}

impl PanopticData {
    /// Reads the annotations (files) or sets up the world; a missing or malformed file is named.
    pub fn sources(&self, seed: u64) -> Result<Sources> {
        let epoch = Arc::new(AtomicUsize::new(0));
        match self {
            PanopticData::Shapeworld {
                train_size,
                valid_size,
                world,
            } => {
                let stuff = ShapeWorld::STUFF_CLASSES as u32;
                let names: Vec<String> = world
                    .semantic_classes()
                    .iter()
                    .map(|s| s.to_string())
                    .collect();
                let set = |split, len| -> ItemSet {
                    Arc::new(ShapeWorldPanoptic {
                        world: world.clone(),
                        split,
                        len,
                    })
                };
                Ok(Sources {
                    labels: Labels {
                        divisor: datasets::shapeworld::PanopticSample::LABEL_DIVISOR,
                        void: 255,
                        classes: names.len(),
                        things: (stuff..names.len() as u32).collect(),
                        names,
                    },
                    train: set(Split::Train, *train_size),
                    valid: set(Split::Val, *valid_size),
                    epoch,
                })
            }
            PanopticData::Files {
                format,
                root,
                train_split,
                valid_split,
                augmentation,
                eval_size,
            } => {
                let read = |split: &str| match format {
                    FileFormat::Coco => CocoPanoptic::coco(root, split),
                    FileFormat::Cityscapes => CocoPanoptic::cityscapes(root, split),
                };
                let train = Arc::new(read(train_split)?);
                let valid = Arc::new(read(valid_split)?);
                let mapping = &train.mapping;
                let classes = mapping
                    .train_id
                    .values()
                    .copied()
                    .max()
                    .map_or(0, |m| m as usize + 1)
                    .max(if *format == FileFormat::Coco { 1 } else { 0 });
                let mut names: Vec<String> = (0..classes).map(|c| format!("class {c}")).collect();
                if *format == FileFormat::Coco {
                    names[0] = "void".into();
                }
                for category in &train.categories {
                    if let Some(&t) = mapping.train_id.get(&category.id)
                        && (t as usize) < classes
                    {
                        names[t as usize] = category.name.clone();
                    }
                }
                let labels = Labels {
                    divisor: mapping.divisor,
                    void: mapping.ignore_label,
                    classes,
                    things: mapping.thing_train_ids.iter().copied().collect(),
                    names,
                };
                let void_id = mapping.ignore_label * mapping.divisor;
                Ok(Sources {
                    train: Arc::new(PanopticFiles {
                        reader: train,
                        geometry: Geometry::Train {
                            augmentation: augmentation.clone(),
                            seed,
                            epoch: epoch.clone(),
                        },
                        void_id,
                    }),
                    valid: Arc::new(PanopticFiles {
                        reader: valid,
                        geometry: Geometry::Eval { size: *eval_size },
                        void_id,
                    }),
                    labels,
                    epoch,
                })
            }
        }
    }
}

impl PanopticExperiment {
    pub fn from_table(table: toml::Table, origin: &str) -> Result<Self> {
        let experiment: Self = table
            .try_into()
            .with_context(|| format!("{origin} is not a valid axial experiment"))?;
        experiment
            .validate()
            .with_context(|| format!("{origin} is not a valid axial experiment"))?;
        Ok(experiment)
    }

    /// Checks every setting that needs no file; [`Self::check_labels`] checks the rest once the
    /// data is read.
    pub fn validate(&self) -> Result<()> {
        let t = &self.train;
        if t.epochs == 0 || t.batch_size == 0 {
            bail!("train.epochs and train.batch_size must be at least 1");
        }
        if !(t.lr > 0.0 && t.lr.is_finite()) {
            bail!("train.lr = {}: expected a positive number", t.lr);
        }
        self.model.validate().map_err(anyhow::Error::msg)?;
        self.loss.validate().map_err(anyhow::Error::msg)?;
        if self.postprocess.nms_kernel.is_multiple_of(2) {
            bail!(
                "postprocess.nms_kernel = {}: expected an odd size",
                self.postprocess.nms_kernel
            );
        }
        if self.targets.sigma.is_nan() || self.targets.sigma <= 0.0 {
            bail!("targets.sigma = {}: expected > 0", self.targets.sigma);
        }
        let sizes: Vec<(&str, [usize; 2])> = match &self.data {
            PanopticData::Shapeworld { world, .. } => {
                vec![("data.world.image_size", [world.image_size; 2])]
            }
            PanopticData::Files {
                augmentation,
                eval_size,
                ..
            } => vec![
                ("data.augmentation.crop", augmentation.crop),
                ("data.eval_size", *eval_size),
            ],
        };
        if let axial_deeplab::EncoderConfig::Axial(encoder) = &self.model.encoder {
            for (key, size) in sizes {
                encoder
                    .check_input(size)
                    .map_err(|e| anyhow::anyhow!("{key} = {size:?}: {e}"))?;
            }
        }
        match &self.data {
            PanopticData::Shapeworld {
                train_size,
                valid_size,
                world,
            } => {
                world
                    .validate()
                    .map_err(|e| anyhow::anyhow!("data.world: {e}"))?;
                if *train_size == 0 || *valid_size == 0 {
                    bail!("data.train_size and data.valid_size must be at least 1");
                }
                self.check_labels(&self.data.sources(t.seed)?.labels)?;
            }
            PanopticData::Files {
                augmentation,
                eval_size,
                ..
            } => {
                augmentation
                    .validate()
                    .map_err(|e| anyhow::anyhow!("data.augmentation: {e}"))?;
                if eval_size.contains(&0) {
                    bail!("data.eval_size = {eval_size:?}: expected positive sizes");
                }
            }
        }
        Ok(())
    }

    /// The model must predict the data's classes.
    pub fn check_labels(&self, labels: &Labels) -> Result<()> {
        if self.model.num_classes != labels.classes {
            bail!(
                "model.num_classes = {} but the data has {} semantic classes ({})",
                self.model.num_classes,
                labels.classes,
                labels.names.join(", ")
            );
        }
        Ok(())
    }

    pub fn label_space(&self, labels: &Labels) -> LabelSpace {
        LabelSpace {
            divisor: labels.divisor,
            ignore_label: labels.void,
            thing_classes: labels.things.clone(),
            sigma: self.targets.sigma,
            small_instance_area: self.targets.small_instance_area,
            small_instance_weight: self.targets.small_instance_weight,
        }
    }

    pub fn postprocess_config(&self, labels: &Labels) -> PostProcessConfig {
        let p = &self.postprocess;
        PostProcessConfig {
            center_threshold: p.center_threshold,
            nms_kernel: p.nms_kernel,
            keep_k_centers: p.keep_k_centers,
            stuff_area_limit: p.stuff_area_limit,
            stuff_area_rule: p.stuff_area_rule,
            divisor: labels.divisor,
            void_label: labels.void,
            thing_classes: labels.things.clone(),
        }
    }

    pub fn model_summary(&self, parameters: usize) -> String {
        let encoder = match &self.model.encoder {
            axial_deeplab::EncoderConfig::Axial(c) => format!(
                "Axial-ResNet ({:?} stem, blocks {:?}, width {})",
                c.stem, c.layers, c.width
            ),
            axial_deeplab::EncoderConfig::Resnet(c) => format!(
                "conv ResNet ({:?}, blocks {:?}, planes {:?})",
                c.block, c.layers, c.planes
            ),
        };
        format!(
            "Panoptic-DeepLab on {encoder}, output stride 16, {} classes; {} parameters",
            self.model.num_classes,
            crate::group_thousands(parameters)
        )
    }
}

/// One image and its canonical panoptic map (`semantic · divisor + instance`).
#[derive(Clone, Debug)]
pub struct PanopticItem {
    /// `[H, W, 3]` in `[0, 1]`.
    pub pixels: Vec<f32>,
    pub panoptic: Vec<u32>,
    pub size: [usize; 2],
}

struct ShapeWorldPanoptic {
    world: ShapeWorld,
    split: Split,
    len: usize,
}

impl Dataset<PanopticItem> for ShapeWorldPanoptic {
    fn get(&self, index: usize) -> Option<PanopticItem> {
        (index < self.len).then(|| {
            let sample = self.world.panoptic_scene(self.split, index as u64);
            let n = sample.scene.size;
            PanopticItem {
                pixels: sample.scene.render(),
                panoptic: sample.panoptic(),
                size: [n, n],
            }
        })
    }
    fn len(&self) -> usize {
        self.len
    }
}

/// Where a file item's pixels come from: DeepLab2's training geometry or the evaluation fit.
enum Geometry {
    Train {
        augmentation: PanopticAugmentation,
        seed: u64,
        epoch: Arc<AtomicUsize>,
    },
    Eval {
        size: [usize; 2],
    },
}

struct PanopticFiles {
    reader: Arc<CocoPanoptic>,
    geometry: Geometry,
    /// `void · divisor`, the padding label.
    void_id: u32,
}

impl PanopticFiles {
    fn load(&self, index: usize) -> Result<PanopticItem, datasets::formats::FormatError> {
        let image = self.reader.load_image(index)?;
        let label = self.reader.load_label(index)?;
        if image.dimensions() != (label.width, label.height) {
            return Err(datasets::formats::FormatError::Malformed {
                path: self
                    .reader
                    .png_dir
                    .join(&self.reader.annotations[index].file_name),
                line: None,
                expected: format!("the size of its image, {:?}", image.dimensions()),
                found: format!("{}×{}", label.width, label.height),
            });
        }
        let item = LabelledImage {
            image,
            panoptic: label.panoptic.iter().map(|&id| id as u32).collect(),
        };
        let out = match &self.geometry {
            Geometry::Train {
                augmentation,
                seed,
                epoch,
            } => {
                let mut rng = datasets::augmentation_rng(
                    *seed,
                    epoch.load(Ordering::SeqCst) as u64,
                    index as u64,
                );
                augmentation.apply(&item, self.void_id, &mut rng)
            }
            Geometry::Eval { size } => fit_and_pad(&item, *size, self.void_id),
        };
        let (w, h) = out.image.dimensions();
        Ok(PanopticItem {
            pixels: out
                .image
                .as_raw()
                .iter()
                .map(|&v| v as f32 / 255.0)
                .collect(),
            panoptic: out.panoptic,
            size: [h as usize, w as usize],
        })
    }
}

impl Dataset<PanopticItem> for PanopticFiles {
    fn get(&self, index: usize) -> Option<PanopticItem> {
        // burn's loader has no error channel: a corrupt file stops the run with its path.
        (index < self.reader.len()).then(|| self.load(index).unwrap_or_else(|e| panic!("{e}")))
    }
    fn len(&self) -> usize {
        self.reader.len()
    }
}

/// Images scaled to `x/127.5 − 1` (DeepLab2's input scaling) and the targets of §4.2.
#[derive(Clone)]
struct PanopticBatcher {
    space: LabelSpace,
}

pub struct PanopticBatch<B: Backend> {
    pub images: Tensor<B, 4>,
    pub targets: PanopticTargetBatch<B>,
    pub items: Vec<PanopticItem>,
}

impl<B: Backend> Batcher<B, PanopticItem, PanopticBatch<B>> for PanopticBatcher {
    fn batch(&self, items: Vec<PanopticItem>, device: &B::Device) -> PanopticBatch<B> {
        let [h, w] = items.first().map(|i| i.size).unwrap_or([0, 0]);
        let (n, p) = (items.len(), h * w);
        let mut images = vec![0f32; n * 3 * p];
        let mut semantic = Vec::with_capacity(n * p);
        let (mut semantic_weights, mut center, mut center_weights, mut offset_weights) = (
            Vec::with_capacity(n * p),
            Vec::with_capacity(n * p),
            Vec::with_capacity(n * p),
            Vec::with_capacity(n * p),
        );
        let mut offsets = vec![0f32; n * 2 * p];
        for (i, item) in items.iter().enumerate() {
            assert_eq!(
                item.size,
                [h, w],
                "every image of a batch must have the same size"
            );
            for (q, rgb) in item.pixels.chunks_exact(3).enumerate() {
                for c in 0..3 {
                    images[(i * 3 + c) * p + q] = rgb[c] * 2.0 - 1.0;
                }
            }
            let t = panoptic_targets(&item.panoptic, [h, w], &self.space, |_| false);
            // Void pixels weigh 0; any valid class stands in for their label.
            semantic.extend(t.semantic.iter().map(|&s| {
                if s == self.space.ignore_label {
                    0
                } else {
                    s as i64
                }
            }));
            semantic_weights.extend(t.semantic_weights);
            center.extend(t.center);
            center_weights.extend(t.center_weights);
            offset_weights.extend(t.offset_weights);
            for (q, [dy, dx]) in t.offsets.into_iter().enumerate() {
                offsets[(i * 2) * p + q] = dy;
                offsets[(i * 2 + 1) * p + q] = dx;
            }
        }
        let map = |v: Vec<f32>| Tensor::<B, 3>::from_data(TensorData::new(v, [n, h, w]), device);
        PanopticBatch {
            images: Tensor::from_data(TensorData::new(images, [n, 3, h, w]), device),
            targets: PanopticTargetBatch {
                semantic: Tensor::<B, 3, Int>::from_data(
                    TensorData::new(semantic, [n, h, w]),
                    device,
                ),
                semantic_weights: map(semantic_weights),
                center: map(center),
                center_weights: map(center_weights),
                offsets: Tensor::from_data(TensorData::new(offsets, [n, 2, h, w]), device),
                offset_weights: map(offset_weights),
            },
            items,
        }
    }
}

/// One finished epoch.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PanopticRow {
    pub epoch: usize,
    pub lr: f64,
    pub loss: f64,
    pub semantic_loss: f64,
    pub center_loss: f64,
    pub offset_loss: f64,
    /// Percent, on the validation split.
    pub pq: f64,
    pub sq: f64,
    pub rq: f64,
    pub pq_things: f64,
    pub pq_stuff: f64,
    pub miou: f64,
    pub train_images_per_s: f64,
    pub epoch_seconds: f64,
}

impl PanopticRow {
    const HEADER: &str = "epoch,lr,loss,semantic_loss,center_loss,offset_loss,pq,sq,rq,pq_things,pq_stuff,miou,train_images_per_s,epoch_seconds";

    fn values(&self) -> [f64; 14] {
        [
            self.epoch as f64,
            self.lr,
            self.loss,
            self.semantic_loss,
            self.center_loss,
            self.offset_loss,
            self.pq,
            self.sq,
            self.rq,
            self.pq_things,
            self.pq_stuff,
            self.miou,
            self.train_images_per_s,
            self.epoch_seconds,
        ]
    }

    fn write_csv(rows: &[Self], path: &Path) -> Result<()> {
        let mut csv = String::from(Self::HEADER);
        for r in rows {
            let v = r.values().map(|x| format!("{x}"));
            let _ = write!(csv, "\n{}", v.join(","));
        }
        csv.push('\n');
        write_atomically(path, csv.as_bytes())
            .with_context(|| format!("writing {}", path.display()))
    }

    fn read_csv(text: &str) -> Result<Vec<Self>> {
        let mut lines = text.lines();
        if lines.next() != Some(Self::HEADER) {
            bail!(
                "not a panoptic metrics.csv (expected the header `{}`)",
                Self::HEADER
            );
        }
        lines
            .filter(|l| !l.trim().is_empty())
            .map(|line| {
                let v: Vec<f64> = line
                    .split(',')
                    .map(|x| x.parse::<f64>())
                    .collect::<Result<_, _>>()
                    .with_context(|| format!("metrics.csv line `{line}`"))?;
                if v.len() != 14 {
                    bail!("metrics.csv line `{line}`: expected 14 values");
                }
                Ok(Self {
                    epoch: v[0] as usize,
                    lr: v[1],
                    loss: v[2],
                    semantic_loss: v[3],
                    center_loss: v[4],
                    offset_loss: v[5],
                    pq: v[6],
                    sq: v[7],
                    rq: v[8],
                    pq_things: v[9],
                    pq_stuff: v[10],
                    miou: v[11],
                    train_images_per_s: v[12],
                    epoch_seconds: v[13],
                })
            })
            .collect()
    }
}

/// `vireo train axial`: a preset or config, `--resume`, or the mini study.
pub fn dispatch(args: TrainArgs) -> Result<()> {
    if let Some(resume) = &args.resume {
        let path = resume_path(&args, resume)?;
        let (run, meta, experiment, epoch) =
            RunDir::open_for_resume(&path, &args.paper, |e: &PanopticExperiment| e.train.epochs)?;
        let previous_rows = match fs::read_to_string(run.file("metrics.csv")) {
            Ok(text) => PanopticRow::read_csv(&text)
                .with_context(|| run.file("metrics.csv").display().to_string())?
                .into_iter()
                .filter(|r| r.epoch <= epoch)
                .collect(),
            Err(_) => Vec::new(),
        };
        println!("resuming {} after epoch {epoch}", run.path.display());
        let job = PanopticRun {
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
        return crate::study::run_study(
            &args,
            preset("mini")?,
            "valid PQ (%)",
            |origin, table, dir| {
                let experiment = PanopticExperiment::from_table(table, origin)?;
                let mut job = PanopticRun::fresh(experiment, &args, "mini", dir);
                job.verbose = false;
                let rows = on_backend(&args.backend, job)?;
                let last = rows
                    .last()
                    .context("a study run finished without a completed epoch")?;
                println!("    valid PQ {:.2} %, mIoU {:.2} %", last.pq, last.miou);
                Ok(last.pq)
            },
        );
    }
    let (text, origin) = match &args.config {
        Some(path) => (read_config_file(path)?, path.display().to_string()),
        None => (
            preset(&args.preset)?.to_string(),
            format!("preset axial/{}", args.preset),
        ),
    };
    let experiment =
        PanopticExperiment::from_table(load_table(&text, &origin, &args.overrides)?, &origin)?;
    let preset_name = args
        .config
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| args.preset.clone());
    let job = PanopticRun::fresh(experiment, &args, &preset_name, &args.out);
    on_backend(&args.backend, job).map(|_| ())
}

pub struct PanopticRun {
    pub experiment: PanopticExperiment,
    pub destination: Destination,
    pub meta: RunMeta,
    pub resume_epoch: Option<usize>,
    pub previous_rows: Vec<PanopticRow>,
    pub verbose: bool,
}

impl PanopticRun {
    pub fn fresh(
        experiment: PanopticExperiment,
        args: &TrainArgs,
        preset: &str,
        out: &Path,
    ) -> Self {
        Self {
            experiment,
            destination: Destination::New {
                out: out.to_path_buf(),
            },
            meta: RunMeta {
                paper: args.paper.clone(),
                preset: preset.to_string(),
                git_revision: git_revision(),
                backend: format!("{:?}", args.backend.backend).to_lowercase(),
                device: String::new(),
                started: chrono::Local::now().to_rfc3339(),
                command: command_line(),
                vireo_version: env!("CARGO_PKG_VERSION").into(),
            },
            resume_epoch: None,
            previous_rows: Vec::new(),
            verbose: true,
        }
    }
}

type Loader<B> = EpochLoader<B, PanopticItem, PanopticBatch<B>>;

fn loaders<B: AutodiffBackend>(
    experiment: &PanopticExperiment,
    sources: &Sources,
    device: &B::Device,
    start_epoch: usize,
) -> (Loader<B>, Loader<B::InnerBackend>) {
    let batcher = PanopticBatcher {
        space: experiment.label_space(&sources.labels),
    };
    let t = &experiment.train;
    // Items are a function of (seed, epoch, index): a resumed run continues the same sequence.
    let train = EpochLoader::new(sources.train.clone(), batcher, t.batch_size, device.clone())
        .shuffle(t.seed)
        .workers(t.num_workers)
        .sharing_epoch(sources.epoch.clone())
        .starting_at_epoch(start_epoch);
    let valid = valid_loader::<B::InnerBackend>(experiment, sources, device);
    (train, valid)
}

fn valid_loader<B: Backend>(
    experiment: &PanopticExperiment,
    sources: &Sources,
    device: &B::Device,
) -> EpochLoader<B, PanopticItem, PanopticBatch<B>> {
    let valid_set = sources.valid.clone();
    let batcher = PanopticBatcher {
        space: experiment.label_space(&sources.labels),
    };
    EpochLoader::new(
        valid_set,
        batcher,
        experiment.train.batch_size,
        device.clone(),
    )
    .workers(experiment.train.num_workers)
}

impl OnBackend for PanopticRun {
    type Output = Vec<PanopticRow>;

    fn run<B: AutodiffBackend>(self, device: B::Device, backend: &str) -> Result<Vec<PanopticRow>> {
        let PanopticRun {
            experiment,
            destination,
            mut meta,
            resume_epoch,
            previous_rows,
            verbose,
        } = self;
        let t = &experiment.train;
        B::seed(&device, t.seed);
        let start = resume_epoch.unwrap_or(0);
        // Data first: a missing or malformed dataset leaves no run directory behind.
        let sources = experiment.data.sources(t.seed)?;
        experiment.check_labels(&sources.labels)?;
        let (train_loader, valid_loader) = loaders::<B>(&experiment, &sources, &device, start);
        let run = match destination {
            Destination::Resume(run) => run,
            Destination::New { out } => {
                let run = RunDir::create(&out, &meta.paper)?;
                meta.device = format!("{device:?}");
                run.write_config(&meta, &experiment)?;
                run
            }
        };
        let mut model: PanopticDeepLab<B> = experiment.model.init(&device);
        let parameters = core_nets::count_parameters::<B, _>(&model);
        let train_len = sources.train.len();
        let iters_per_epoch = train_len.div_ceil(t.batch_size);
        let mut optimizer = AdamConfig::new()
            .with_weight_decay(
                (t.weight_decay > 0.0).then(|| WeightDecayConfig::new(t.weight_decay as f32)),
            )
            .init::<B, PanopticDeepLab<B>>();
        let mut schedule = Schedule::new(t.schedule.clone(), t.lr, t.epochs, iters_per_epoch);
        if let Some(epoch) = resume_epoch {
            let dir = run.checkpoint_dir();
            let file = |part: &str| dir.join(format!("{part}-{epoch}"));
            let record = Recorder::<B>::load(&AtomicRecorder, file("model"), &device)
                .with_context(|| format!("loading {}", file("model").display()))?;
            model = model.load_record(record);
            let record = Recorder::<B>::load(&AtomicRecorder, file("optim"), &device)
                .with_context(|| format!("loading {}", file("optim").display()))?;
            optimizer = optimizer.load_record(record);
            let iteration: usize = Recorder::<B>::load(&AtomicRecorder, file("scheduler"), &device)
                .with_context(|| format!("loading {}", file("scheduler").display()))?;
            schedule.iteration = iteration;
        }
        if verbose {
            println!("run directory: {}", run.path.display());
            println!("model: {}", experiment.model_summary(parameters));
            println!(
                "data: {} train / {} valid images, batch {}, {} epochs on {backend}",
                train_len,
                sources.valid.len(),
                t.batch_size,
                t.epochs
            );
        }
        let labels = &sources.labels;
        let post = experiment.postprocess_config(labels);
        let mut rows = previous_rows;
        let mut error = None;
        for epoch in start + 1..=t.epochs {
            let began = Instant::now();
            let (mut sums, mut lr_sum, mut steps, mut images) = ([0f64; 4], 0.0, 0usize, 0usize);
            for batch in train_loader.iter() {
                let lr = schedule.lr_at(schedule.iteration);
                schedule.iteration += 1;
                let out = model.forward(batch.images);
                let loss =
                    experiment
                        .loss
                        .forward(out.semantic, out.center, out.offset, &batch.targets);
                let terms = [&loss.total, &loss.semantic, &loss.center, &loss.offset];
                let terms: Vec<f64> = Tensor::cat(terms.map(|t| t.clone().detach()).to_vec(), 0)
                    .into_data()
                    .iter::<f64>()
                    .collect();
                let values = [terms[0], terms[1], terms[2], terms[3]];
                if !values[0].is_finite() {
                    error = Some(format!(
                        "the training loss became {} at epoch {epoch}, iteration {} (lower the learning rate or check the data); {}",
                        values[0],
                        steps + 1,
                        match latest_checkpoint(&run.checkpoint_dir()) {
                            Some(e) => format!(
                                "the last good checkpoint is epoch {e} in {}",
                                run.checkpoint_dir().display()
                            ),
                            None => "no epoch completed, so there is no checkpoint".into(),
                        }
                    ));
                    break;
                }
                let grads = GradientsParams::from_grads(loss.total.backward(), &model);
                model = optimizer.step(lr, model, grads);
                for (s, v) in sums.iter_mut().zip(values) {
                    *s += v;
                }
                lr_sum += lr;
                steps += 1;
                images += batch.items.len();
            }
            if error.is_some() {
                break;
            }
            let train_seconds = began.elapsed().as_secs_f64();
            let evaluation = evaluate(&model.valid(), &valid_loader, labels, &post, 0);
            let steps_f = steps.max(1) as f64;
            let row = PanopticRow {
                epoch,
                lr: lr_sum / steps_f,
                loss: sums[0] / steps_f,
                semantic_loss: sums[1] / steps_f,
                center_loss: sums[2] / steps_f,
                offset_loss: sums[3] / steps_f,
                pq: 100.0 * evaluation.pq.pq,
                sq: 100.0 * evaluation.pq.sq,
                rq: 100.0 * evaluation.pq.rq,
                pq_things: 100.0 * evaluation.pq.pq_things,
                pq_stuff: 100.0 * evaluation.pq.pq_stuff,
                miou: 100.0 * evaluation.miou,
                train_images_per_s: images as f64 / train_seconds.max(1e-9),
                epoch_seconds: began.elapsed().as_secs_f64(),
            };
            // The row first: a resume keeps only rows up to its checkpoint, so a row without one is
            // recomputed, while a checkpoint without its row would leave a gap.
            rows.push(row.clone());
            PanopticRow::write_csv(&rows, &run.file("metrics.csv"))?;
            save_checkpoint(
                &run.checkpoint_dir(),
                epoch,
                &model,
                optimizer.to_record(),
                schedule.iteration,
                t.checkpoints_kept,
            )
            .with_context(|| format!("writing the epoch {epoch} checkpoint"))?;
            if verbose {
                println!(
                    "epoch {epoch:>3}/{} | lr {:.2e} | loss {:.4} (sem {:.4}, ctr {:.5}, off {:.3}) | valid PQ {:5.1}% (Th {:.1}, St {:.1}) mIoU {:5.1}% | {:.1} img/s | {:.0}s, ETA {}",
                    t.epochs,
                    row.lr,
                    row.loss,
                    row.semantic_loss,
                    row.center_loss,
                    row.offset_loss,
                    row.pq,
                    row.pq_things,
                    row.pq_stuff,
                    row.miou,
                    row.train_images_per_s,
                    row.epoch_seconds,
                    format_duration(row.epoch_seconds * (t.epochs - epoch) as f64)
                );
            }
        }
        let model = model.valid();
        // The final pictures and the per-class table come from one more pass over the validation
        // split (the same numbers as the last row).
        let evaluation = evaluate(&model, &valid_loader, labels, &post, t.pictures);
        draw_predictions(&evaluation.pictures, labels, &run.file("predictions.png"))?;
        write_outputs(
            &run,
            &meta,
            &experiment,
            parameters,
            &rows,
            &evaluation,
            labels,
            resume_epoch,
            error.as_deref(),
        )?;
        if let Some(error) = error {
            bail!("training stopped: {error}");
        }
        model
            .save_file(run.file("model"), &AtomicRecorder)
            .with_context(|| format!("writing {}", run.file("model.mpk").display()))?;
        if verbose && let Some(last) = rows.last() {
            println!(
                "done: valid PQ {:.2} % (SQ {:.2}, RQ {:.2}; things {:.2}, stuff {:.2}), mIoU {:.2} % after {} epochs; report: {}",
                last.pq,
                last.sq,
                last.rq,
                last.pq_things,
                last.pq_stuff,
                last.miou,
                last.epoch,
                run.file("report.md").display()
            );
        }
        Ok(rows)
    }
}

/// What one prediction looks like next to its truth.
pub struct Picture {
    pub item: PanopticItem,
    pub semantic: Vec<u32>,
    pub instance: Vec<u32>,
    pub centers: Vec<[usize; 2]>,
    pub heatmap: Vec<f32>,
}

pub struct Evaluation {
    pub pq: PqSummary,
    pub quality: PanopticQuality,
    pub miou: f64,
    pub images: usize,
    pub pictures: Vec<Picture>,
}

/// Post-processes every validation image (§4.3) and scores it (§4.4); keeps the first `pictures`.
pub fn evaluate<B: Backend>(
    model: &PanopticDeepLab<B>,
    loader: &EpochLoader<B, PanopticItem, PanopticBatch<B>>,
    labels: &Labels,
    post: &PostProcessConfig,
    pictures: usize,
) -> Evaluation {
    let mut quality = PanopticQuality::new(labels.divisor, labels.void, labels.things.clone());
    let mut confusion = SemanticConfusion::new(labels.classes, labels.void);
    let mut kept = Vec::new();
    let mut images = 0;
    for batch in loader.iter() {
        let out = model.forward(batch.images);
        let [n, _, h, w] = out.semantic.dims();
        let p = h * w;
        let semantic: Vec<u32> = out
            .semantic
            .argmax(1)
            .into_data()
            .iter::<i64>()
            .map(|c| c as u32)
            .collect();
        let heat: Vec<f32> = out.center.into_data().iter::<f32>().collect();
        let offsets: Vec<f32> = out.offset.into_data().iter::<f32>().collect();
        for (i, item) in batch.items.into_iter().enumerate().take(n) {
            let semantic = &semantic[i * p..(i + 1) * p];
            let heat = &heat[i * p..(i + 1) * p];
            let offsets: Vec<[f32; 2]> = (0..p)
                .map(|q| [offsets[(i * 2) * p + q], offsets[(i * 2 + 1) * p + q]])
                .collect();
            let centers = find_centers(heat, [h, w], post);
            let instance = group_pixels(semantic, &offsets, &centers, w, &post.thing_classes);
            let panoptic = merge_panoptic(semantic, &instance, post);
            quality.update(&panoptic, &item.panoptic);
            let truth: Vec<u32> = item.panoptic.iter().map(|id| id / labels.divisor).collect();
            confusion.update(semantic, &truth);
            if kept.len() < pictures {
                kept.push(Picture {
                    semantic: semantic.to_vec(),
                    instance: thing_segments(&panoptic, labels),
                    centers,
                    heatmap: heat.to_vec(),
                    item,
                });
            }
            images += 1;
        }
    }
    Evaluation {
        pq: quality.summary(),
        miou: confusion.mean_iou(),
        quality,
        images,
        pictures: kept,
    }
}

/// `predictions.png`: per image, the input, semantic truth and prediction, instance truth and
/// prediction with centres, the predicted centre heatmap.
fn draw_predictions(pictures: &[Picture], labels: &Labels, path: &Path) -> Result<()> {
    let mut tiles = Vec::new();
    for picture in pictures {
        let item = &picture.item;
        let [h, w] = item.size;
        let image = rgb_picture(&item.pixels, [h, w]);
        let truth_semantic: Vec<u32> = item.panoptic.iter().map(|id| id / labels.divisor).collect();
        let truth_instance = thing_segments(&item.panoptic, labels);
        let truth_centers = truth_centres(&item.panoptic, [h, w], labels);
        tiles.push(tile(image.clone(), "input"));
        tiles.push(tile(
            semantic_picture(&image, &truth_semantic),
            "semantic, truth",
        ));
        tiles.push(tile(
            semantic_picture(&image, &picture.semantic),
            "semantic, predicted",
        ));
        tiles.push(tile(
            instance_picture(&image, &truth_instance, &truth_centers),
            "instances, truth",
        ));
        tiles.push(tile(
            instance_picture(&image, &picture.instance, &picture.centers),
            &format!("instances, predicted ({} centres)", picture.centers.len()),
        ));
        tiles.push(tile(
            heatmap_picture(&picture.heatmap, [h, w]),
            "centre heatmap",
        ));
    }
    let refs: Vec<(&image::RgbImage, &str)> = tiles
        .iter()
        .map(|t| (&t.image, t.caption.as_str()))
        .collect();
    draw_tile_grid(
        &refs,
        6,
        "validation predictions next to ground truth",
        path,
    )
}

/// The panoptic id on thing pixels (one segment per instance), 0 elsewhere.
fn thing_segments(panoptic: &[u32], labels: &Labels) -> Vec<u32> {
    panoptic
        .iter()
        .map(|&id| {
            if labels.things.contains(&(id / labels.divisor)) {
                id
            } else {
                0
            }
        })
        .collect()
}

/// Each thing instance's centre as the target generator computes it (rounded mean).
fn truth_centres(panoptic: &[u32], [h, w]: [usize; 2], labels: &Labels) -> Vec<[usize; 2]> {
    let space = LabelSpace {
        divisor: labels.divisor,
        ignore_label: labels.void,
        thing_classes: labels.things.clone(),
        ..LabelSpace::cityscapes()
    };
    panoptic_targets(panoptic, [h, w], &space, |_| false).centers
}

#[allow(clippy::too_many_arguments)]
fn write_outputs(
    run: &RunDir,
    meta: &RunMeta,
    experiment: &PanopticExperiment,
    parameters: usize,
    rows: &[PanopticRow],
    evaluation: &Evaluation,
    labels: &Labels,
    resumed: Option<usize>,
    error: Option<&str>,
) -> Result<()> {
    let title = format!(
        "{} — {} ({})",
        meta.paper, experiment.description, meta.preset
    );
    if !rows.is_empty() {
        let series = |pick: fn(&PanopticRow) -> f64| {
            rows.iter()
                .map(|r| (r.epoch as f64, pick(r)))
                .collect::<Vec<_>>()
        };
        draw_panels(
            &[
                Panel {
                    name: "training loss (weighted terms)".into(),
                    series: vec![
                        ("total".into(), series(|r| r.loss)),
                        ("semantic".into(), series(|r| r.semantic_loss)),
                        ("200 · centre".into(), series(|r| 200.0 * r.center_loss)),
                        ("0.01 · offset".into(), series(|r| 0.01 * r.offset_loss)),
                    ],
                },
                Panel {
                    name: "validation (%)".into(),
                    series: vec![
                        ("PQ".into(), series(|r| r.pq)),
                        ("PQ things".into(), series(|r| r.pq_things)),
                        ("PQ stuff".into(), series(|r| r.pq_stuff)),
                        ("mIoU".into(), series(|r| r.miou)),
                    ],
                },
            ],
            &title,
            &run.file("curves.png"),
        )?;
    }
    let mut md = String::new();
    let total: f64 = rows.iter().map(|r| r.epoch_seconds).sum();
    core_train::report::write_header(
        &mut md,
        &title,
        meta,
        total,
        rows.len(),
        &experiment.model_summary(parameters),
    );
    if let Some(error) = error {
        let _ = writeln!(md, "**Stopped early:** {error}\n");
    }
    if let Some(epoch) = resumed {
        let _ = writeln!(md, "Resumed after epoch {epoch} from its checkpoint.\n");
    }
    let pq = &evaluation.pq;
    let _ = writeln!(md, "## Result on {} validation images\n", evaluation.images);
    let _ = writeln!(
        md,
        "| PQ | SQ | RQ | PQ things | PQ stuff | mIoU |\n|---|---|---|---|---|---|"
    );
    let _ = writeln!(
        md,
        "| {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |\n",
        100.0 * pq.pq,
        100.0 * pq.sq,
        100.0 * pq.rq,
        100.0 * pq.pq_things,
        100.0 * pq.pq_stuff,
        100.0 * evaluation.miou
    );
    let _ = writeln!(md, "Per class (PQ, SQ, RQ in %; TP/FP/FN segments):\n");
    let _ = writeln!(
        md,
        "| class | kind | PQ | SQ | RQ | TP | FP | FN |\n|---|---|---|---|---|---|---|---|"
    );
    let mut classes: Vec<_> = evaluation.quality.per_class.iter().collect();
    classes.sort_by_key(|(c, _)| **c);
    for (class, q) in classes {
        let name = labels
            .names
            .get(*class as usize)
            .map(String::as_str)
            .unwrap_or("?");
        let kind = if labels.things.contains(class) {
            "thing"
        } else {
            "stuff"
        };
        let (pq, sq, rq) = q.quality().unwrap_or((f64::NAN, f64::NAN, f64::NAN));
        let _ = writeln!(
            md,
            "| {name} | {kind} | {:.1} | {:.1} | {:.1} | {} | {} | {} |",
            100.0 * pq,
            100.0 * sq,
            100.0 * rq,
            q.tp,
            q.fp,
            q.fn_
        );
    }
    let _ = writeln!(md, "\n![losses and validation PQ per epoch](curves.png)\n");
    let _ = writeln!(
        md,
        "![validation predictions next to ground truth](predictions.png)\n"
    );
    let _ = writeln!(md, "## Epochs\n");
    let _ = writeln!(
        md,
        "| epoch | mean lr | loss | semantic | centre | offset | PQ | PQ th | PQ st | mIoU | img/s | s |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        let _ = writeln!(
            md,
            "| {} | {:.2e} | {:.4} | {:.4} | {:.5} | {:.3} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} | {:.0} |",
            r.epoch,
            r.lr,
            r.loss,
            r.semantic_loss,
            r.center_loss,
            r.offset_loss,
            r.pq,
            r.pq_things,
            r.pq_stuff,
            r.miou,
            r.train_images_per_s,
            r.epoch_seconds
        );
    }
    let config = toml::to_string_pretty(experiment).context("serialising the config as TOML")?;
    let _ = writeln!(md, "\n## Configuration\n\n```toml\n{config}```");
    write_atomically(&run.file("report.md"), md.as_bytes())
        .with_context(|| format!("writing {}", run.file("report.md").display()))
}

/// `vireo eval axial --run DIR`: PQ/SQ/RQ and mIoU of a run's final model (or newest checkpoint)
/// on its validation split, and `eval-predictions.png` in the run directory.
pub fn dispatch_eval(args: EvalArgs) -> Result<()> {
    let run = RunDir::open(&args.run)?;
    let (_, experiment): (RunMeta, PanopticExperiment) = run.read_config()?;
    on_backend(&args.backend, Evaluate { experiment, run })
}

struct Evaluate {
    experiment: PanopticExperiment,
    run: RunDir,
}

impl OnBackend for Evaluate {
    type Output = ();

    fn run<B: AutodiffBackend>(self, device: B::Device, backend: &str) -> Result<()> {
        let Evaluate { experiment, run } = self;
        let (model, path) =
            run.load_final_model(experiment.model.init::<B::InnerBackend>(&device), &device)?;
        let sources = experiment.data.sources(experiment.train.seed)?;
        experiment.check_labels(&sources.labels)?;
        let labels = &sources.labels;
        let loader = valid_loader::<B::InnerBackend>(&experiment, &sources, &device);
        let evaluation = evaluate(
            &model,
            &loader,
            labels,
            &experiment.postprocess_config(labels),
            experiment.train.pictures,
        );
        let pictures = run.file("eval-predictions.png");
        draw_predictions(&evaluation.pictures, labels, &pictures)?;
        let pq = &evaluation.pq;
        println!(
            "{} on {backend}: {} validation images, PQ {:.2} % (SQ {:.2}, RQ {:.2}; things {:.2}, stuff {:.2}), mIoU {:.2} %; pictures: {}",
            path.display(),
            evaluation.images,
            100.0 * pq.pq,
            100.0 * pq.sq,
            100.0 * pq.rq,
            100.0 * pq.pq_things,
            100.0 * pq.pq_stuff,
            100.0 * evaluation.miou,
            pictures.display()
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_parse_and_validate() {
        let smoke = load_table(preset("smoke").unwrap(), "smoke", &[]).unwrap();
        PanopticExperiment::from_table(smoke, "smoke").unwrap();
        let paper = load_table(preset("paper").unwrap(), "paper", &[]).unwrap();
        let paper = PanopticExperiment::from_table(paper, "paper").unwrap();
        // DeepLab2's 60,000 steps at batch 32 over Cityscapes' 2,975 training images.
        assert!((60_000..60_100).contains(&(paper.train.epochs * 2975usize.div_ceil(32))));
        let err = preset("full").unwrap_err().to_string();
        assert!(err.contains("smoke, mini, paper"), "{err}");
    }

    #[test]
    fn wrong_class_count_and_bad_values_are_named() {
        let table = load_table(
            preset("smoke").unwrap(),
            "smoke",
            &["model.num_classes=5".into()],
        )
        .unwrap();
        let err = format!(
            "{:#}",
            PanopticExperiment::from_table(table, "smoke").unwrap_err()
        );
        assert!(err.contains("model.num_classes = 5"), "{err}");
        let table = load_table(
            preset("smoke").unwrap(),
            "smoke",
            &["data.world.image_size=65".into()],
        )
        .unwrap();
        let err = format!(
            "{:#}",
            PanopticExperiment::from_table(table, "smoke").unwrap_err()
        );
        assert!(
            err.contains("data.world.image_size = [65, 65]") && err.contains("33 positions"),
            "{err}"
        );
        let table = load_table(
            preset("smoke").unwrap(),
            "smoke",
            &["postprocess.nms_kernel=4".into()],
        )
        .unwrap();
        let err = format!(
            "{:#}",
            PanopticExperiment::from_table(table, "smoke").unwrap_err()
        );
        assert!(err.contains("nms_kernel = 4"), "{err}");
    }

    #[test]
    fn metrics_csv_round_trips() {
        let rows = vec![PanopticRow {
            epoch: 1,
            pq: 12.5,
            miou: 40.25,
            ..Default::default()
        }];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.csv");
        PanopticRow::write_csv(&rows, &path).unwrap();
        assert_eq!(
            PanopticRow::read_csv(&fs::read_to_string(&path).unwrap()).unwrap(),
            rows
        );
        assert!(PanopticRow::read_csv("epoch,lr\n1,2").is_err());
    }
}
