//! A classification experiment (WS, BCN): its TOML configuration, the presets, `--set` overrides
//! and validation. Every error names the key and what was expected.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use core_nets::ResNetConfig;
use core_train::TrainConfig;
use datasets::{Normalization, Pipeline, ShapeWorld};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassificationExperiment {
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
    },
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

/// The presets compiled into the binary: `(paper, preset, TOML)`.
pub const PRESETS: &[(&str, &str, &str)] = &[
    ("ws", "smoke", include_str!("../presets/ws/smoke.toml")),
    ("ws", "mini", include_str!("../presets/mini-study.toml")),
    ("ws", "paper", include_str!("../presets/ws/paper.toml")),
    ("bcn", "smoke", include_str!("../presets/bcn/smoke.toml")),
    ("bcn", "mini", include_str!("../presets/mini-study.toml")),
    ("bcn", "paper", include_str!("../presets/bcn/paper.toml")),
];

/// Papers trained through this module; `axial` has its own (`crate::panoptic`).
pub const PAPERS: &[&str] = &["ws", "bcn"];

pub fn preset_text(paper: &str, preset: &str) -> Result<&'static str> {
    if !PAPERS.contains(&paper) {
        bail!(
            "unknown paper '{paper}': expected one of {}",
            PAPERS.join(", ")
        );
    }
    PRESETS
        .iter()
        .find(|(p, name, _)| *p == paper && *name == preset)
        .map(|(_, _, text)| *text)
        .with_context(|| {
            let names: Vec<_> = PRESETS
                .iter()
                .filter(|(p, ..)| *p == paper)
                .map(|(_, n, _)| *n)
                .collect();
            format!(
                "unknown preset '{preset}' for {paper}: expected one of {}",
                names.join(", ")
            )
        })
}

/// Parses TOML text (a preset or `--config FILE`) and applies `--set key=value` overrides.
pub fn load_table(text: &str, origin: &str, overrides: &[String]) -> Result<toml::Table> {
    let mut table: toml::Table =
        toml::from_str(text).with_context(|| format!("{origin} is not valid TOML"))?;
    for assignment in overrides {
        set_key(&mut table, assignment)?;
    }
    Ok(table)
}

pub fn read_config_file(path: &Path) -> Result<String> {
    std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))
}

/// `a.b.c=value`: the value is read as TOML (`0.1`, `true`, `[1, 2]`, `"text"`), or as a string.
fn set_key(table: &mut toml::Table, assignment: &str) -> Result<()> {
    let (key, raw) = assignment
        .split_once('=')
        .with_context(|| format!("--set {assignment}: expected key=value, e.g. train.epochs=3"))?;
    let value = match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
        Ok(mut t) => t.remove("v").expect("parsed key v"),
        Err(_) => toml::Value::String(raw.to_string()),
    };
    let parts: Vec<&str> = key.trim().split('.').collect();
    let (last, parents) = parts.split_last().expect("split yields at least one part");
    let mut node = table;
    for (depth, part) in parents.iter().enumerate() {
        node = node
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .with_context(|| {
                format!(
                    "--set {key}: '{}' is a value, not a table",
                    parts[..=depth].join(".")
                )
            })?;
    }
    node.insert(last.to_string(), value);
    Ok(())
}

impl ClassificationExperiment {
    pub fn from_table(table: toml::Table, origin: &str) -> Result<Self> {
        let experiment: Self = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| anyhow::anyhow!("{origin}: {}", e.message()))?;
        experiment
            .validate()
            .with_context(|| format!("{origin}: invalid configuration"))?;
        Ok(experiment)
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
        match &self.data {
            DataConfig::Shapeworld {
                train_size,
                valid_size,
                world,
                augmentation,
                ..
            } => {
                world.validate().map_err(anyhow::Error::msg)?;
                if let Some(pipeline) = augmentation {
                    pipeline
                        .validate()
                        .map_err(|e| anyhow::anyhow!("data.augmentation: {e}"))?;
                }
                if *train_size == 0 || *valid_size == 0 {
                    bail!("data.train_size and data.valid_size must be positive");
                }
                if world.num_classes != classes {
                    bail!(
                        "model.num_classes = {classes} but data.world.num_classes = {}: they must agree",
                        world.num_classes
                    );
                }
            }
            DataConfig::ImageFolder {
                image_size,
                augmentation,
                ..
            } => {
                if *image_size < 8 {
                    bail!("data.image_size = {image_size}: expected at least 8 pixels");
                }
                if let Some(pipeline) = augmentation {
                    pipeline
                        .validate()
                        .map_err(|e| anyhow::anyhow!("data.augmentation: {e}"))?;
                }
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn smoke(paper: &str, overrides: &[&str]) -> Result<ClassificationExperiment> {
        let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
        let table = load_table(preset_text(paper, "smoke")?, "preset", &overrides)?;
        ClassificationExperiment::from_table(table, "preset")
    }

    #[test]
    fn every_single_run_preset_parses_and_validates() {
        for (paper, preset, text) in PRESETS {
            if *preset == "mini" {
                continue;
            }
            let table = load_table(text, "preset", &[]).unwrap();
            ClassificationExperiment::from_table(table, &format!("{paper}/{preset}"))
                .unwrap_or_else(|e| panic!("{paper}/{preset}: {e:#}"));
        }
    }

    #[test]
    fn overrides_apply_and_unknown_keys_are_named() {
        let exp = smoke("ws", &["train.epochs=7", "train.optimizer.lr=0.05"]).unwrap();
        assert_eq!(exp.train.epochs, 7);
        assert_eq!(exp.train.optimizer.lr, 0.05);
        let err = format!("{:#}", smoke("ws", &["train.epoch=7"]).unwrap_err());
        assert!(err.contains("epoch"), "{err}");
        let err = format!("{:#}", smoke("ws", &["train.batch_size=0"]).unwrap_err());
        assert!(err.contains("train.batch_size"), "{err}");
        let err = format!("{:#}", smoke("ws", &["model.num_classes=7"]).unwrap_err());
        assert!(err.contains("num_classes"), "{err}");
        assert!(smoke("ws", &["noequals"]).is_err());
    }

    #[test]
    fn unknown_paper_and_preset_are_named() {
        assert!(
            preset_text("wss", "smoke")
                .unwrap_err()
                .to_string()
                .contains("unknown paper 'wss'")
        );
        assert!(
            preset_text("ws", "huge")
                .unwrap_err()
                .to_string()
                .contains("unknown preset 'huge'")
        );
    }
}
