//! The Axial-DeepLab experiment: Panoptic-DeepLab on an Axial-ResNet (`axial-deeplab.md` §3.3,
//! §4.2–4.4) trained on ShapeWorld panoptic scenes or COCO/Cityscapes panoptic files. One run:
//! Adam with a polynomial schedule (DeepLab2's recipe), targets built per image by the batcher,
//! PQ/SQ/RQ and mIoU of the post-processed predictions every epoch, atomic checkpoints and
//! `--resume`, a NaN guard, `metrics.csv`, `curves.png`, `predictions.png` and `report.md`.
//!
//! * [`config`]: the TOML configuration and its validation.
//! * [`data`]: items, label space, batcher (targets of §4.2), loaders.
//! * [`train`]: the epoch loop ([`train::fit`]) and `metrics.csv` rows.
//! * [`evaluate`]: post-processing, PQ/mIoU, pictures and the report.
//! * [`infer`]: `vireo infer axial` on image files, or an official Axial-ResNet checkpoint.

pub mod config;
pub mod data;
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

pub use config::PanopticConfig;

/// The Axial-DeepLab experiment (`vireo train axial`).
pub struct Axial;

/// The registry entry.
pub const AXIAL: Axial = Axial;

const CARD: Card = Card {
    name: "axial",
    description: "Axial-DeepLab (arXiv 2003.07853): axial-attention Panoptic-DeepLab, panoptic segmentation",
    presets: &[
        Preset {
            name: "smoke",
            toml: include_str!("../../presets/smoke.toml"),
        },
        Preset {
            name: "mini",
            toml: include_str!("../../presets/mini.toml"),
        },
        Preset {
            name: "paper",
            toml: include_str!("../../presets/paper.toml"),
        },
    ],
    study_metric: "valid PQ (%)",
};

impl Experiment for Axial {
    type Config = PanopticConfig;

    fn card(&self) -> &Card {
        &CARD
    }

    fn validate(&self, config: &PanopticConfig) -> Result<()> {
        config.validate()
    }

    fn epochs(&self, config: &PanopticConfig) -> usize {
        config.train.epochs
    }

    fn fit<B: AutodiffBackend>(
        &self,
        config: PanopticConfig,
        session: Session,
        device: &B::Device,
    ) -> Result<Outcome> {
        train::fit::<B>(config, session, device)
    }

    fn evaluate<B: Backend>(
        &self,
        config: PanopticConfig,
        run: &RunDir,
        device: &B::Device,
    ) -> Result<String> {
        evaluate::evaluate_run::<B>(config, run, device)
    }

    fn predict<B: Backend>(
        &self,
        weights: Weights<PanopticConfig>,
        images: &[PathBuf],
        options: &InferOptions,
        device: &B::Device,
    ) -> Result<Vec<Prediction>> {
        infer::predict::<B>(weights, images, options, device)
    }

    fn models(&self) -> Vec<ModelCount> {
        use burn::backend::Flex;
        let count = |name: &str, parameters: usize| ModelCount {
            name: name.to_string(),
            group: "Axial-DeepLab".into(),
            parameters,
            gflops: None,
        };
        let device = Default::default();
        let backbones = crate::BACKBONE_PRESETS.iter().map(|p| {
            count(
                p.name,
                core_nets::count_parameters::<Flex, _>(&(p.config)().init::<Flex>(&device)),
            )
        });
        let resnets = crate::AXIAL_PRESETS.iter().map(|p| {
            count(
                p.name,
                core_nets::count_parameters::<Flex, _>(&(p.config)().init::<Flex>(&device)),
            )
        });
        backbones.chain(resnets).collect()
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
    use train::PanopticRow;

    fn smoke(overrides: &[&str]) -> Result<PanopticConfig> {
        let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
        AXIAL.config("smoke", &overrides)
    }

    #[test]
    fn presets_parse_and_validate() {
        smoke(&[]).unwrap();
        let paper = AXIAL.config("paper", &[]).unwrap();
        // DeepLab2's 60,000 steps at batch 32 over Cityscapes' 2,975 training images.
        assert!((60_000..60_100).contains(&(paper.train.epochs * 2975usize.div_ceil(32))));
        assert!(core_train::study::check_variants(&AXIAL).unwrap() >= 2);
        let err = AXIAL.config("full", &[]).unwrap_err().to_string();
        assert!(err.contains("smoke, mini, paper"), "{err}");
    }

    #[test]
    fn wrong_class_count_and_bad_values_are_named() {
        let err = format!("{:#}", smoke(&["model.num_classes=5"]).unwrap_err());
        assert!(err.contains("model.num_classes = 5"), "{err}");
        let err = format!("{:#}", smoke(&["data.world.image_size=65"]).unwrap_err());
        assert!(
            err.contains("data.world.image_size = [65, 65]") && err.contains("33 positions"),
            "{err}"
        );
        let err = format!("{:#}", smoke(&["postprocess.nms_kernel=4"]).unwrap_err());
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
        core_train::metrics_csv::write_rows(&rows, &path).unwrap();
        assert_eq!(
            core_train::metrics_csv::read_rows::<PanopticRow>(
                &std::fs::read_to_string(&path).unwrap()
            )
            .unwrap(),
            rows
        );
        assert!(core_train::metrics_csv::read_rows::<PanopticRow>("epoch,lr\n1,2").is_err());
    }
}
