//! The classification experiment's configuration (WS, BCN presets): training recipe, model, data,
//! and its validation. Every error names the key and what was expected.

use std::path::PathBuf;

use anyhow::{Result, bail};
use core_nets::ResNetConfig;
use core_train::TrainConfig;
use datasets::{Normalization, Pipeline, ShapeWorld};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassificationConfig {
    /// What the preset is for and what it should give (shown in reports).
    #[serde(default)]
    pub description: String,
    pub train: TrainConfig,
    pub model: ResNetConfig,
    pub data: DataConfig,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case", deny_unknown_fields)]
pub enum DataConfig {
    /// The embedded procedural world; nothing to download.
    Shapeworld {
        train_size: usize,
        valid_size: usize,
        #[serde(default)]
        world: ShapeWorld,
        #[serde(default = "shapeworld_normalization")]
        normalization: Normalization,
        /// Train-split augmentation (datasets::transforms), e.g.
        /// `{ imagenet_train = { size = 32 } }`; none by default (ShapeWorld varies on its own).
        #[serde(default)]
        augmentation: Option<Pipeline>,
    },
    /// An ImageNet-style folder: `root/train/<class>/*`, `root/val/<class>/*`.
    ImageFolder {
        root: PathBuf,
        /// Square side of the training crops and of the evaluation center crop.
        image_size: usize,
        /// Train-split augmentation; default the ImageNet recipe's RandomResizedCrop + flip
        /// (`ws.md` §4.1). Validation always resizes to `image_size · 8/7` and center-crops.
        #[serde(default)]
        augmentation: Option<Pipeline>,
        #[serde(default = "imagenet_normalization")]
        normalization: Normalization,
        /// Leave out images that cannot be decoded (each named once on stderr, counted in the
        /// report) instead of stopping the run with the first one's error.
        #[serde(default)]
        skip_corrupt: bool,
    },
}

impl DataConfig {
    /// Rejects data settings no run can use, naming the key.
    pub fn validate(&self) -> Result<()> {
        if let Some(pipeline) = self.augmentation() {
            pipeline
                .validate()
                .map_err(|e| anyhow::anyhow!("data.augmentation: {e}"))?;
        }
        match self {
            DataConfig::Shapeworld {
                train_size,
                valid_size,
                world,
                ..
            } => {
                world.validate().map_err(anyhow::Error::msg)?;
                if *train_size == 0 || *valid_size == 0 {
                    bail!("data.train_size and data.valid_size must be positive");
                }
            }
            DataConfig::ImageFolder { image_size, .. } => {
                if *image_size < 8 {
                    bail!("data.image_size = {image_size}: expected at least 8 pixels");
                }
            }
        }
        Ok(())
    }

    /// The per-channel normalisation of every image this data gives.
    pub fn normalization(&self) -> Normalization {
        match self {
            DataConfig::Shapeworld { normalization, .. }
            | DataConfig::ImageFolder { normalization, .. } => *normalization,
        }
    }

    /// Whether unreadable images are left out rather than fatal (`data.skip_corrupt`).
    pub fn skip_corrupt(&self) -> bool {
        matches!(
            self,
            DataConfig::ImageFolder {
                skip_corrupt: true,
                ..
            }
        )
    }

    /// The training pipeline given in the config, if any.
    pub fn augmentation(&self) -> Option<&Pipeline> {
        match self {
            DataConfig::Shapeworld { augmentation, .. }
            | DataConfig::ImageFolder { augmentation, .. } => augmentation.as_ref(),
        }
    }

    /// The side of the images a model sees at evaluation.
    pub fn image_size(&self) -> usize {
        match self {
            DataConfig::Shapeworld { world, .. } => world.image_size,
            DataConfig::ImageFolder { image_size, .. } => *image_size,
        }
    }
}

fn shapeworld_normalization() -> Normalization {
    Normalization {
        mean: [0.5; 3],
        std: [0.25; 3],
    }
}
fn imagenet_normalization() -> Normalization {
    Normalization::IMAGENET
}

impl ClassificationConfig {
    /// Whether unreadable images are left out rather than fatal (`data.skip_corrupt`).
    pub fn skip_corrupt(&self) -> bool {
        self.data.skip_corrupt()
    }

    pub fn num_classes(&self) -> usize {
        self.model.num_classes.unwrap_or(0)
    }

    pub fn validate(&self) -> Result<()> {
        self.train.validate().map_err(anyhow::Error::msg)?;
        self.model.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
        let Some(classes) = self.model.num_classes else {
            bail!("model.num_classes must be set for classification");
        };
        if classes < 2 {
            bail!("model.num_classes = {classes}: a classifier needs at least 2 classes");
        }
        self.data.validate()?;
        if let DataConfig::Shapeworld { world, .. } = &self.data
            && world.num_classes != classes
        {
            bail!(
                "model.num_classes = {classes} but data.world.num_classes = {}: they must agree",
                world.num_classes
            );
        }
        Ok(())
    }

    /// One line about the model for logs and reports.
    pub fn model_summary(&self, parameters: usize) -> String {
        let m = &self.model;
        format!(
            "{:?} ResNet, blocks {:?}, planes {:?}, conv {:?}, norm {:?}, {} parameters",
            m.block, m.layers, m.planes, m.conv, m.norm, parameters
        )
    }
}
