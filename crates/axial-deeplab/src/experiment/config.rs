//! The panoptic experiment's configuration (`axial-deeplab.md` §4): Adam + schedule, the
//! Panoptic-DeepLab model, losses, target and post-processing settings, and the data (ShapeWorld
//! or COCO/Cityscapes panoptic files). Every error names the key and what was expected.

use std::path::PathBuf;

use anyhow::{Result, bail};
use core_train::ScheduleConfig;
use datasets::{ShapeWorld, panoptic::PanopticAugmentation};
use serde::{Deserialize, Serialize};

use crate::{
    EncoderConfig, PanopticDeepLabConfig, PanopticLossConfig,
    postprocess::{PostProcessConfig, StuffAreaRule},
    targets::LabelSpace,
};

use super::data::Labels;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PanopticConfig {
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
    /// A training loss above this many times the first epoch's mean stops the run as diverged
    /// (non-finite losses always do).
    #[serde(default = "divergence_factor")]
    pub divergence_factor: f64,
}

fn divergence_factor() -> f64 {
    core_train::guard::DEFAULT_DIVERGENCE_FACTOR
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
        /// Leave out image/label pairs that cannot be read (each named once on stderr) instead of
        /// stopping the run with the first one's error.
        #[serde(default)]
        skip_corrupt: bool,
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

impl PanopticConfig {
    /// Checks every setting that needs no file; [`Self::check_labels`] checks the rest once the
    /// data is read.
    pub fn validate(&self) -> Result<()> {
        let t = &self.train;
        if t.epochs == 0 || t.batch_size == 0 {
            bail!("train.epochs and train.batch_size must be at least 1");
        }
        core_train::guard::validate_factor("train.divergence_factor", t.divergence_factor)
            .map_err(anyhow::Error::msg)?;
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
        if let EncoderConfig::Axial(encoder) = &self.model.encoder {
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
    /// Whether unreadable files are left out rather than fatal (`data.skip_corrupt`).
    pub fn skip_corrupt(&self) -> bool {
        matches!(
            self.data,
            PanopticData::Files {
                skip_corrupt: true,
                ..
            }
        )
    }

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
            EncoderConfig::Axial(c) => format!(
                "Axial-ResNet ({:?} stem, blocks {:?}, width {})",
                c.stem, c.layers, c.width
            ),
            EncoderConfig::Resnet(c) => format!(
                "conv ResNet ({:?}, blocks {:?}, planes {:?})",
                c.block, c.layers, c.planes
            ),
        };
        format!(
            "Panoptic-DeepLab on {encoder}, output stride 16, {} classes; {} parameters",
            self.model.num_classes,
            core_train::report::group_thousands(parameters)
        )
    }
}
