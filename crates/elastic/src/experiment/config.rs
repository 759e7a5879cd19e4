//! The ELASTIC experiment's configuration (`elastic.md` §4): the training recipe, the two-path
//! ResNeXt (plain or elastic), its initialisation, and the multi-label data — ShapeWorld's scale
//! task (embedded) or MS-COCO 2014 (`multilabel_classify.py`). Every error names the key.

use std::path::PathBuf;

use anyhow::{Result, bail};
use core_nets::{BlockKind, ResNetConfig};
use core_train::TrainConfig;
use datasets::{Normalization, ShapeWorld};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ElasticExperiment {
    /// What the preset is for and what it should give (shown in reports).
    #[serde(default)]
    pub description: String,
    pub train: TrainConfig,
    /// A two-path ResNeXt (`block = "two_path"`); `elastic = true` for the ELASTIC model.
    pub model: ResNetConfig,
    #[serde(default)]
    pub init: InitConfig,
    /// The official batch emulation (§4.1): the optimizer steps once per `devices` loader batches
    /// of `train.batch_size`, each normalised with its own BatchNorm statistics (per-device BN),
    /// their gradients summed, the learning rate divided and the weight decay multiplied by
    /// `devices` as `docker_classify.py` / `multilabel_classify.py` do — so `train.optimizer` holds
    /// the recipe's values for the whole batch `devices × train.batch_size`. 1: no emulation.
    #[serde(default = "one")]
    pub devices: usize,
    /// Start from a released checkpoint of the same architecture (the paper fine-tunes MS-COCO
    /// from the ImageNet models): every tensor but the classifier, which is new (its class count
    /// differs); `--resume` continues from the run's own checkpoint instead.
    #[serde(default)]
    pub pretrained: Option<Pretrained>,
    /// Segmentation only: the ASPP head.
    #[serde(default)]
    pub aspp: AsppOptions,
    pub data: ElasticData,
}

/// The segmentation head's size and its BN momentum.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AsppOptions {
    /// Channels of the branches and of the projection (256 in the paper).
    #[serde(default = "two_fifty_six")]
    pub channels: usize,
    /// The head's BN momentum (PyTorch convention): 0.0003 in the official code, made for 50 VOC
    /// epochs of 660 steps; a short run's running statistics barely move at that rate.
    #[serde(default = "aspp_momentum")]
    pub bn_momentum: f64,
}

fn two_fifty_six() -> usize {
    256
}
fn aspp_momentum() -> f64 {
    0.0003
}

impl Default for AsppOptions {
    fn default() -> Self {
        Self {
            channels: two_fifty_six(),
            bn_momentum: aspp_momentum(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pretrained {
    /// A released `.pth.tar` (ImageNet layout, `elastic.md` §5).
    pub file: PathBuf,
    /// Its classifier's classes (1000 for ImageNet).
    #[serde(default = "thousand")]
    pub classes: usize,
}

fn thousand() -> usize {
    1000
}

fn one() -> usize {
    1
}

/// How the network starts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitConfig {
    /// The released classification init (`elastic.md` §3: fan_in kaiming, bn3 zero, fc N(0, 0.01));
    /// false: core-nets' defaults (kaiming fan_out, BN 1/0).
    #[serde(default = "yes")]
    pub official: bool,
    /// With `official`: the projection convs keep PyTorch's default init, as released.
    #[serde(default = "yes")]
    pub elastic_init_quirk: bool,
}

fn yes() -> bool {
    true
}

impl Default for InitConfig {
    fn default() -> Self {
        Self {
            official: true,
            elastic_init_quirk: true,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case", deny_unknown_fields)]
pub enum ElasticData {
    /// ShapeWorld's scale task: several objects from tiny to image-filling per image, multi-label
    /// targets, split by object size (`datasets::ShapeWorldScale`).
    ShapeworldScale {
        train_size: usize,
        valid_size: usize,
        #[serde(default = "ShapeWorld::scale_task")]
        world: ShapeWorld,
        #[serde(default = "shapeworld_normalization")]
        normalization: Normalization,
    },
    /// MS-COCO 2014 multi-label (§4.2, §7): `root/annotations/instances_{train,val}2014.json`,
    /// `root/{train,val}2014/`; train RandomResizedCrop + flip, val resized to `image_size`².
    Coco {
        root: PathBuf,
        #[serde(default = "two_twenty_four")]
        image_size: usize,
        /// Leave out images that cannot be decoded (named and counted) instead of stopping.
        #[serde(default)]
        skip_corrupt: bool,
    },
    /// Single-label classification (§4.1, ImageNet): the classification experiment's data — an
    /// ImageNet-style folder (`images.source = "image_folder"`: `root/train/<class>/*`,
    /// `root/val/<class>/*`, RandomResizedCrop + flip, eval resize 8/7 and center crop) or
    /// ShapeWorld's classification images (`"shapeworld"`) — softmax cross-entropy, top-1/top-5.
    Classification { images: classification::DataConfig },
    /// Semantic segmentation on ShapeWorld's panoptic scenes (their semantic map: stuff regions
    /// and shapes), embedded; the DeepLabv3 variant of the model (§3).
    ShapeworldSegmentation {
        train_size: usize,
        valid_size: usize,
        #[serde(default)]
        world: ShapeWorld,
        #[serde(default = "shapeworld_normalization")]
        normalization: Normalization,
    },
    /// PASCAL VOC 2012 semantic segmentation (§4.3, `segment.py`): DeepLabv3.pytorch's lists
    /// `root/list/{train_list,val_list}.txt` under `root` = `VOCdevkit/VOC2012` (SBD-augmented
    /// `SegmentationClassAug`); training flip, log-uniform scale in [0.5, 2], pad, random `crop`²;
    /// evaluation padded to `crop`² (void), single scale; mIoU over 21 classes.
    Voc {
        root: PathBuf,
        #[serde(default = "five_thirteen")]
        crop: usize,
        #[serde(default = "train_aug")]
        train_list: String,
        #[serde(default = "val")]
        val_list: String,
        /// Leave out images that cannot be decoded (named and counted) instead of stopping.
        #[serde(default)]
        skip_corrupt: bool,
    },
}

fn five_thirteen() -> usize {
    513
}
fn train_aug() -> String {
    "train_aug".into()
}
fn val() -> String {
    "val".into()
}

fn shapeworld_normalization() -> Normalization {
    Normalization {
        mean: [0.5; 3],
        std: [0.25; 3],
    }
}

fn two_twenty_four() -> usize {
    224
}

impl ElasticData {
    pub fn normalization(&self) -> Normalization {
        match self {
            ElasticData::ShapeworldScale { normalization, .. } => *normalization,
            ElasticData::Coco { .. } => Normalization::IMAGENET,
            ElasticData::Classification { images } => images.normalization(),
            ElasticData::ShapeworldSegmentation { normalization, .. } => *normalization,
            ElasticData::Voc { .. } => Normalization::IMAGENET,
        }
    }

    /// Whether this is a semantic segmentation task (the DeepLabv3 variant of the model).
    pub fn is_segmentation(&self) -> bool {
        matches!(
            self,
            ElasticData::ShapeworldSegmentation { .. } | ElasticData::Voc { .. }
        )
    }

    pub fn skip_corrupt(&self) -> bool {
        match self {
            ElasticData::ShapeworldScale { .. } | ElasticData::ShapeworldSegmentation { .. } => {
                false
            }
            ElasticData::Coco { skip_corrupt, .. } | ElasticData::Voc { skip_corrupt, .. } => {
                *skip_corrupt
            }
            ElasticData::Classification { images } => images.skip_corrupt(),
        }
    }

    /// The side of the (square) images the network sees.
    pub fn image_size(&self) -> usize {
        match self {
            ElasticData::ShapeworldScale { world, .. } => world.image_size,
            ElasticData::Coco { image_size, .. } => *image_size,
            ElasticData::Classification { images } => images.image_size(),
            ElasticData::ShapeworldSegmentation { world, .. } => world.image_size,
            ElasticData::Voc { crop, .. } => *crop,
        }
    }
}

impl ElasticExperiment {
    pub fn validate(&self) -> Result<()> {
        self.train.validate().map_err(anyhow::Error::msg)?;
        self.model.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
        if self.model.block != BlockKind::TwoPath {
            bail!(
                "model.block = {:?}: ELASTIC trains the two-path ResNeXt (block = \"two_path\")",
                self.model.block
            );
        }
        if self.aspp.channels == 0 || !(self.aspp.bn_momentum > 0.0 && self.aspp.bn_momentum <= 1.0)
        {
            bail!(
                "aspp = {{ channels = {}, bn_momentum = {} }}: expected channels >= 1 and 0 < bn_momentum <= 1",
                self.aspp.channels,
                self.aspp.bn_momentum
            );
        }
        if self.devices == 0 {
            bail!("devices = 0: expected at least 1 (batches per optimizer step)");
        }
        let Some(classes) = self.model.num_classes else {
            bail!("model.num_classes must be set (one output per label)");
        };
        match &self.data {
            ElasticData::ShapeworldScale {
                train_size,
                valid_size,
                world,
                ..
            } => {
                world.validate().map_err(anyhow::Error::msg)?;
                if *train_size == 0 || *valid_size == 0 {
                    bail!("data.train_size and data.valid_size must be positive");
                }
                if classes != world.num_classes {
                    bail!(
                        "model.num_classes = {classes} but data.world.num_classes = {}: one output per ShapeWorld class",
                        world.num_classes
                    );
                }
            }
            ElasticData::Classification { .. } => {
                if let Some(classification) = self.classification() {
                    // The classification experiment names its data keys `data.*`; here they
                    // live under `data.images`.
                    classification.validate().map_err(|e| {
                        anyhow::anyhow!("{}", format!("{e:#}").replace("data.", "data.images."))
                    })?;
                }
            }
            ElasticData::ShapeworldSegmentation {
                train_size,
                valid_size,
                world,
                ..
            } => {
                world.validate().map_err(anyhow::Error::msg)?;
                if *train_size == 0 || *valid_size == 0 {
                    bail!("data.train_size and data.valid_size must be positive");
                }
                let semantic = world.semantic_classes().len();
                if classes != semantic {
                    bail!(
                        "model.num_classes = {classes}: ShapeWorld's segmentation has {semantic} semantic classes (stuff and shapes)"
                    );
                }
            }
            ElasticData::Voc { crop, .. } => {
                if *crop < 32 {
                    bail!("data.crop = {crop}: expected at least 32 pixels");
                }
                if classes != 21 {
                    bail!(
                        "model.num_classes = {classes}: PASCAL VOC has 21 classes (background and 20 objects)"
                    );
                }
            }
            ElasticData::Coco { image_size, .. } => {
                if *image_size < 32 {
                    bail!("data.image_size = {image_size}: expected at least 32 pixels");
                }
                if classes != 80 {
                    bail!("model.num_classes = {classes}: MS-COCO has 80 categories");
                }
            }
        }
        Ok(())
    }

    /// The single-label task as the classification experiment runs it (`data.source =
    /// "classification"`); none for the multi-label tasks.
    pub fn classification(&self) -> Option<classification::ClassificationConfig> {
        let ElasticData::Classification { images } = &self.data else {
            return None;
        };
        Some(classification::ClassificationConfig {
            description: self.description.clone(),
            train: self.train.clone(),
            model: self.model.clone(),
            data: images.clone(),
        })
    }

    /// One line about the model for logs and reports.
    pub fn model_summary(&self, parameters: usize) -> String {
        let m = &self.model;
        let size = self.data.image_size();
        let task = if self.data.is_segmentation() {
            "classes (DeepLabv3: multi-grid stage 4, ASPP)"
        } else if self.classification().is_some() {
            "classes"
        } else {
            "outputs (multi-label)"
        };
        let flops = if m.small_stem || m.output_stride != 32 || self.data.is_segmentation() {
            String::new()
        } else {
            format!(
                ", {:.2} MFLOPs per {size}² image (the official counter)",
                crate::resnext_flops(m, size) as f64 / 1e6
            )
        };
        format!(
            "{} two-path ResNeXt {:?}, planes {:?}, cardinality {}{}, {} {task}; {} parameters{flops}",
            if m.elastic { "elastic" } else { "plain" },
            m.layers,
            m.planes,
            m.groups,
            if m.se { ", SE" } else { "" },
            m.num_classes.unwrap_or(0),
            core_train::report::group_thousands(parameters)
        )
    }
}
