//! Supervised image classification on the ResNets of `core-nets`, as the Weight Standardization
//! (Qiao et al., arXiv 1903.10520; spec `ws.md`) and Batch-Channel Normalization (Qiao et al., arXiv
//! 1911.09738; spec `bcn.md`) papers train them: one experiment, two papers — [`WS`] and [`BCN`]
//! differ only in their presets (`presets/ws/`, `presets/bcn/`, the shared micro-batch study
//! `presets/mini-study.toml`).
//!
//! * [`ClassificationConfig`]: training recipe (SGD + schedule), model (`ResNetConfig` with its
//!   conv/norm switches), data (ShapeWorld or an ImageNet-style folder).
//! * [`train::fit`]: burn-train's Learner through `core_train::fit_classifier` (checkpoints, resume,
//!   NaN guard, `metrics.csv`, `curves.png`, `report.md`).
//! * [`evaluate::evaluate`], [`infer::predict`]: a run's model or an official checkpoint on images.
//!
//! Training and predicting through the library, without the `vireo` binary
//! (`cargo run --release -p classification --example train_ws`):
//!
#![doc = concat!("```ignore\n", include_str!("../examples/train_ws.rs"), "```")]

pub mod config;
pub mod evaluate;
pub mod infer;
pub mod train;

use std::path::{Path, PathBuf};

use anyhow::Result;
use burn::tensor::backend::{AutodiffBackend, Backend};
use core_train::{
    Card, Experiment, InferOptions, ModelCount, Outcome, Prediction, Preset, RunDir, Session,
    Weights,
};

pub use config::{ClassificationConfig, DataConfig};
pub use infer::{EvalTransform, IMAGENET_CLASSES, classify_images};

/// A classification paper: its card, the model groups `vireo models` lists for it, and the
/// checkpoint an official `vireo infer` loads by default.
pub struct Classification {
    pub card: Card,
    /// `core_nets::MODEL_PRESETS` groups of this paper.
    pub model_groups: &'static [&'static str],
    pub default_model: &'static str,
}

const MINI: Preset = Preset {
    name: "mini",
    toml: include_str!("../presets/mini-study.toml"),
};

/// Weight Standardization: GN+WS ResNets.
pub const WS: Classification = Classification {
    card: Card {
        name: "ws",
        description: "Weight Standardization (arXiv 1903.10520): GN+WS ResNets, image classification",
        presets: &[
            Preset {
                name: "smoke",
                toml: include_str!("../presets/ws/smoke.toml"),
            },
            MINI,
            Preset {
                name: "paper",
                toml: include_str!("../presets/ws/paper.toml"),
            },
        ],
        study_metric: "valid top-1 (%)",
    },
    model_groups: &["baseline (BN)", "ws"],
    default_model: "resnet50_gn_ws",
};

/// Batch-Channel Normalization: BCN+WS ResNets.
pub const BCN: Classification = Classification {
    card: Card {
        name: "bcn",
        description: "Batch-Channel Normalization (arXiv 1911.09738): BCN+WS ResNets, image classification",
        presets: &[
            Preset {
                name: "smoke",
                toml: include_str!("../presets/bcn/smoke.toml"),
            },
            MINI,
            Preset {
                name: "paper",
                toml: include_str!("../presets/bcn/paper.toml"),
            },
        ],
        study_metric: "valid top-1 (%)",
    },
    model_groups: &["bcn"],
    default_model: "resnet50_bcn_ws",
};

impl Experiment for Classification {
    type Config = ClassificationConfig;

    fn card(&self) -> &Card {
        &self.card
    }

    fn validate(&self, config: &ClassificationConfig) -> Result<()> {
        config.validate()
    }

    fn epochs(&self, config: &ClassificationConfig) -> usize {
        config.train.epochs
    }

    fn fit<B: AutodiffBackend>(
        &self,
        config: ClassificationConfig,
        session: Session,
        device: &B::Device,
    ) -> Result<Outcome> {
        train::fit::<B>(config, session, device)
    }

    fn evaluate<B: Backend>(
        &self,
        config: ClassificationConfig,
        run: &RunDir,
        device: &B::Device,
    ) -> Result<String> {
        evaluate::evaluate::<B>(config, run, device)
    }

    fn predict<B: Backend>(
        &self,
        weights: Weights<ClassificationConfig>,
        images: &[PathBuf],
        options: &InferOptions,
        device: &B::Device,
    ) -> Result<Vec<Prediction>> {
        infer::predict::<B>(weights, images, options, self.default_model, device)
    }

    fn models(&self) -> Vec<ModelCount> {
        use burn::backend::Flex;
        core_nets::MODEL_PRESETS
            .iter()
            .filter(|p| self.model_groups.contains(&p.paper))
            .map(|p| ModelCount {
                name: p.name.to_string(),
                group: p.paper.to_string(),
                parameters: core_nets::count_parameters::<Flex, _>(
                    &(p.config)().init::<Flex>(&Default::default()),
                ),
                gflops: None,
            })
            .collect()
    }

    fn import(&self, model: &str, checkpoint: &Path, num_classes: Option<usize>) -> Result<String> {
        let (_, report) = infer::load_official::<burn::backend::Flex>(
            model,
            checkpoint,
            num_classes.unwrap_or(1000),
            &Default::default(),
        )?;
        Ok(format!(
            "{} into {model}: {}",
            checkpoint.display(),
            report.summary()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn smoke(paper: &Classification, overrides: &[&str]) -> Result<ClassificationConfig> {
        let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
        paper.config("smoke", &overrides)
    }

    #[test]
    fn every_preset_parses_and_validates() {
        for paper in [&WS, &BCN] {
            for preset in paper.card.presets.iter().filter(|p| p.name != "mini") {
                paper
                    .config(preset.name, &[])
                    .unwrap_or_else(|e| panic!("{}/{}: {e:#}", paper.card.name, preset.name));
            }
            let variants = core_train::study::check_variants(paper).unwrap();
            assert!(variants >= 2, "{variants}");
        }
    }

    #[test]
    fn overrides_apply_and_bad_values_are_named() {
        let config = smoke(&WS, &["train.epochs=7", "train.optimizer.lr=0.05"]).unwrap();
        assert_eq!(config.train.epochs, 7);
        assert_eq!(config.train.optimizer.lr, 0.05);
        let err = format!("{:#}", smoke(&WS, &["train.epoch=7"]).unwrap_err());
        assert!(err.contains("epoch"), "{err}");
        let err = format!("{:#}", smoke(&WS, &["train.batch_size=0"]).unwrap_err());
        assert!(err.contains("train.batch_size"), "{err}");
        // A type error names its key too (it used to lose it).
        let err = format!("{:#}", smoke(&BCN, &["train.batch_size=-4"]).unwrap_err());
        assert!(
            err.contains("train.batch_size") && err.contains("-4"),
            "{err}"
        );
        let err = format!("{:#}", smoke(&WS, &["model.num_classes=7"]).unwrap_err());
        assert!(err.contains("num_classes"), "{err}");
        let err = format!(
            "{:#}",
            smoke(&WS, &["model.num_classes=1", "data.world.num_classes=1"]).unwrap_err()
        );
        assert!(err.contains("at least 2 classes"), "{err}");
        assert!(smoke(&WS, &["noequals"]).is_err());
    }

    #[test]
    fn unknown_presets_are_named() {
        let err = WS.config("huge", &[]).unwrap_err().to_string();
        assert!(err.contains("unknown preset 'huge' for ws"), "{err}");
    }

    #[test]
    fn the_imagenet_names_are_the_thousand_classes_in_label_order() {
        let names: Vec<_> = IMAGENET_CLASSES.lines().collect();
        assert_eq!(names.len(), 1000);
        assert_eq!(
            (names[0], names[1], names[999]),
            ("tench", "goldfish", "toilet tissue")
        );
    }
}
