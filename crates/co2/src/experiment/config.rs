//! The CO2 experiment's configuration (`co2-moco.md` §4): MoCo pre-training (SGD + schedule, the
//! encoders, the queue, the CO2 term), the kNN monitor, and the linear evaluation that follows.

use std::path::PathBuf;

use anyhow::{Result, bail};
use classification::DataConfig;
use core_train::{ScheduleConfig, TrainConfig};
use serde::{Deserialize, Serialize};

use crate::{Co2Config, MocoConfig};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Co2Experiment {
    #[serde(default)]
    pub description: String,
    /// Pre-training: SGD with momentum and weight decay, the schedule, epochs, batch.
    pub train: TrainConfig,
    pub model: MocoConfig,
    /// The consistency term; `alpha = 0` is plain MoCo.
    pub co2: Co2Config,
    #[serde(default)]
    pub knn: KnnConfig,
    /// Linear evaluation after pre-training (`main_lincls.py`); none: skip it.
    #[serde(default)]
    pub lincls: Option<LinclsConfig>,
    /// Semi-supervised fine-tuning after pre-training (§4.3); none: skip it.
    #[serde(default)]
    pub semi: Option<SemiConfig>,
    /// Evaluation only (`[lincls]` and/or `[semi]`), of a pre-trained encoder instead of
    /// pre-training: a vireo CO2 run (its directory or a `.mpk`) or an official MoCo checkpoint
    /// (`.pth.tar`, §5).
    #[serde(default)]
    pub pretrained: Option<PathBuf>,
    /// The images (ShapeWorld or class folders); `augmentation` is the two views' pipeline and
    /// required here. Labels only serve the kNN monitor and the linear evaluation.
    pub data: DataConfig,
}

/// The kNN monitor of self-supervised training: cosine similarity to the labelled memory,
/// the `k` nearest vote with weights `exp(sim / temperature)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KnnConfig {
    #[serde(default = "two_hundred")]
    pub k: usize,
    #[serde(default = "knn_temperature")]
    pub temperature: f64,
}

fn two_hundred() -> usize {
    200
}
fn knn_temperature() -> f64 {
    0.1
}

impl Default for KnnConfig {
    fn default() -> Self {
        Self {
            k: 200,
            temperature: 0.1,
        }
    }
}

/// `main_lincls.py`: the frozen encoder in eval mode, only a new fc trained (SGD, momentum 0.9,
/// no weight decay, lr 30, ×0.1 at the milestones).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinclsConfig {
    pub epochs: usize,
    pub batch_size: usize,
    #[serde(default = "thirty")]
    pub lr: f64,
    pub schedule: ScheduleConfig,
    /// `main_lincls.py`'s RandomResizedCrop (scale 0.08–1) + horizontal flip of the training
    /// images; false: the evaluation-size images as they are.
    #[serde(default = "yes")]
    pub augment: bool,
}

fn thirty() -> f64 {
    30.0
}

fn yes() -> bool {
    true
}

/// Semi-supervised fine-tuning (`co2-moco.md` §4.3): the whole pre-trained network (BN in training
/// mode) and a new fc trained on a labelled subset, SGD with momentum 0.9 and no weight decay, one
/// learning rate for the backbone and one for the head, both following `schedule`. The paper's
/// optimiser and schedule are not published: the defaults of the presets are a starting point.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SemiConfig {
    /// Which labelled images: `{ fraction = 0.01 }` (class-balanced, drawn by the seed) or
    /// `{ file = "imagenet_subsets/1percent.txt" }` (SimCLR's lists; class folders only).
    pub subset: LabelSubset,
    pub epochs: usize,
    pub batch_size: usize,
    pub lr_backbone: f64,
    pub lr_head: f64,
    pub schedule: ScheduleConfig,
    /// RandomResizedCrop + flip of the training images, as in linear evaluation.
    #[serde(default = "yes")]
    pub augment: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum LabelSubset {
    Fraction(f64),
    File(PathBuf),
}

impl SemiConfig {
    fn validate(&self, data: &DataConfig) -> Result<()> {
        let positive = |v: f64| v.is_finite() && v > 0.0;
        if self.epochs == 0
            || self.batch_size == 0
            || !positive(self.lr_backbone)
            || !positive(self.lr_head)
        {
            bail!("semi: expected epochs >= 1, batch_size >= 1, lr_backbone > 0 and lr_head > 0");
        }
        match &self.subset {
            LabelSubset::Fraction(f) if !(*f > 0.0 && *f <= 1.0) => {
                bail!("semi.subset.fraction = {f}: expected a fraction in (0, 1]")
            }
            LabelSubset::File(path) if !matches!(data, DataConfig::ImageFolder { .. }) => bail!(
                "semi.subset.file = {}: subset lists name ImageNet files; with data.source = \"shapeworld\" use semi.subset = {{ fraction = 0.1 }}",
                path.display()
            ),
            _ => Ok(()),
        }
    }

    /// How the report names this stage.
    pub fn describe(&self) -> String {
        match &self.subset {
            LabelSubset::Fraction(f) => {
                format!("semi-supervised fine-tuning, {} % of the labels", f * 100.0)
            }
            LabelSubset::File(path) => format!(
                "semi-supervised fine-tuning, the labels of {}",
                path.display()
            ),
        }
    }
}

impl Co2Experiment {
    pub fn validate(&self) -> Result<()> {
        self.train.validate().map_err(anyhow::Error::msg)?;
        self.model
            .validate("model", self.train.batch_size)
            .map_err(anyhow::Error::msg)?;
        self.co2.validate("co2").map_err(anyhow::Error::msg)?;
        if self.knn.k == 0 || self.knn.temperature.is_nan() || self.knn.temperature <= 0.0 {
            bail!(
                "knn.k = {}, knn.temperature = {}: expected k >= 1 and a positive temperature",
                self.knn.k,
                self.knn.temperature
            );
        }
        if self.pretrained.is_some() && self.lincls.is_none() && self.semi.is_none() {
            bail!("pretrained is set: [lincls] or [semi] must say how to evaluate it");
        }
        if let Some(semi) = &self.semi {
            semi.validate(&self.data)?;
        }
        if let Some(lincls) = &self.lincls
            && (lincls.epochs == 0
                || lincls.batch_size == 0
                || lincls.lr.is_nan()
                || lincls.lr <= 0.0)
        {
            bail!("lincls: expected epochs >= 1, batch_size >= 1 and lr > 0");
        }
        if self.data.augmentation().is_none() {
            bail!(
                "data.augmentation: MoCo needs the pipeline of its two views, e.g. {{ moco_v2 = {{ size = 32 }} }}"
            );
        }
        self.data.validate()?;
        if let DataConfig::Shapeworld { train_size, .. } = &self.data
            && *train_size < self.train.batch_size
        {
            bail!(
                "data.train_size = {train_size}: expected at least one batch (train.batch_size = {}) of training images",
                self.train.batch_size
            );
        }
        Ok(())
    }

    /// One line about the model for logs and reports.
    pub fn model_summary(&self, parameters: usize) -> String {
        let m = &self.model;
        format!(
            "MoCo ({:?} head, dim {}, K {}, m {}, τ {}) on a {:?} ResNet {:?}, planes {:?}; CO2 α {} τ_con {} ({:?}); {} parameters per encoder",
            m.head,
            m.dim,
            m.queue,
            m.momentum,
            m.tau,
            m.backbone.block,
            m.backbone.layers,
            m.backbone.planes,
            self.co2.alpha,
            self.co2.tau_con,
            self.co2.form,
            core_train::report::group_thousands(parameters)
        )
    }
}
