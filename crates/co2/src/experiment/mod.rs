//! The CO2 experiment (`vireo train co2`): MoCo v1/v2 pre-training with the CO2 term on ShapeWorld
//! or ImageNet-style folders, the kNN monitor every epoch, then linear evaluation of the frozen
//! encoder; `metrics.csv`, `curves.png`, `embedding.png`, `report.md`, checkpoints holding both
//! encoders and the queue (so `--resume` continues exactly), `model.mpk` and `classifier.mpk`.
//!
//! * [`config`]: the TOML configuration and its validation.
//! * [`data`]: labelled splits and two-view pre-training images.
//! * [`train`]: pre-training ([`train::fit`]) on burn-train's Learner, run by [`learner`]'s
//!   MoCo strategy (momentum update, enqueue, key-BN shuffle, kNN validation).
//! * [`lincls`]: `main_lincls.py`'s linear evaluation.
//! * [`evaluate`]: the kNN monitor, embeddings, curves and report; [`pictures`]: the PCA picture.

pub mod config;
pub mod data;
pub mod evaluate;
pub mod learner;
pub mod lincls;
pub mod pictures;
pub mod train;

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use burn::tensor::backend::{AutodiffBackend, Backend};
use classification::{EvalTransform, classify_images};
use core_train::{
    Card, Experiment, InferOptions, ModelCount, Outcome, Prediction, Preset, RunDir, Session,
    Weights,
};

pub use config::Co2Experiment;

use crate::MocoConfig;

/// The CO2 experiment (`vireo train co2`).
pub struct Co2;

/// The registry entry.
pub const CO2: Co2 = Co2;

const CARD: Card = Card {
    name: "co2",
    description: "CO2 (arXiv 2010.02217) on MoCo v1/v2: self-supervised pre-training with a consistency term, kNN monitor, linear evaluation",
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
            name: "moco_v1",
            toml: include_str!("../../presets/moco_v1.toml"),
        },
        Preset {
            name: "moco_v2",
            toml: include_str!("../../presets/moco_v2.toml"),
        },
        Preset {
            name: "co2_moco_v1",
            toml: include_str!("../../presets/co2_moco_v1.toml"),
        },
        Preset {
            name: "co2_moco_v2",
            toml: include_str!("../../presets/co2_moco_v2.toml"),
        },
        Preset {
            name: "lincls",
            toml: include_str!("../../presets/lincls.toml"),
        },
        Preset {
            name: "semi",
            toml: include_str!("../../presets/semi.toml"),
        },
    ],
    study_metric: "linear eval top-1 (%)",
};

impl Experiment for Co2 {
    type Config = Co2Experiment;

    fn card(&self) -> &Card {
        &CARD
    }

    fn validate(&self, config: &Co2Experiment) -> Result<()> {
        config.validate()
    }

    fn epochs(&self, config: &Co2Experiment) -> usize {
        config.train.epochs
    }

    fn fit<B: AutodiffBackend>(
        &self,
        config: Co2Experiment,
        session: Session,
        device: &B::Device,
    ) -> Result<Outcome> {
        train::fit::<B>(config, session, device)
    }

    /// The kNN top-1 of the run's final query encoder on its validation split.
    fn evaluate<B: Backend>(
        &self,
        config: Co2Experiment,
        run: &RunDir,
        device: &B::Device,
    ) -> Result<String> {
        let (model, path) = run.load_final_model(config.model.init::<B>(device), device)?;
        let sources = config.sources()?;
        let images = datasets::ClassificationBatcher {
            normalization: config.data.normalization(),
        };
        let top1 = evaluate::knn_accuracy(&model.encoder_q, &sources, &images, &config, device)?;
        Ok(format!(
            "{}: {} validation images, kNN top-1 {top1:.2} % (k = {}, T = {})",
            path.display(),
            sources.valid.len(),
            config.knn.k,
            config.knn.temperature
        ))
    }

    /// A run's classifier on images, with the run's class names: the linear one (`classifier.mpk`),
    /// else the fine-tuned one (`classifier-semi.mpk`).
    fn predict<B: Backend>(
        &self,
        weights: Weights<Co2Experiment>,
        images: &[PathBuf],
        options: &InferOptions,
        device: &B::Device,
    ) -> Result<Vec<Prediction>> {
        let Weights::Run { run, config, .. } = weights else {
            bail!(
                "co2 predicts with a run's linear classifier (--run DIR); MoCo's released checkpoints are encoders without a classifier"
            );
        };
        let Some(file) = ["classifier.mpk", "classifier-semi.mpk"]
            .map(|name| run.file(name))
            .into_iter()
            .find(|f| f.is_file())
        else {
            bail!(
                "{} has no classifier.mpk or classifier-semi.mpk: the run had no linear evaluation or fine-tuning (set [lincls] or [semi] in its config)",
                run.path.display()
            );
        };
        let classes = config.sources()?.classes;
        let classifier = config
            .model
            .backbone
            .clone()
            .with_num_classes(Some(classes.len()))
            .init::<B>(device);
        let classifier = RunDir::load_model(classifier, &file, device)?;
        let size = config.data.image_size();
        let transform = EvalTransform {
            resize: size,
            crop: size,
            normalization: config.data.normalization(),
        };
        classify_images(images, &transform, &classes, options.top_k, device, |x| {
            classifier.forward(x)
        })
        .with_context(|| format!("classifying with {}", file.display()))
    }

    /// An official MoCo checkpoint into MoCo v1 or v2 on ResNet-50 (`moco_v1_encoder`,
    /// `moco_v2_encoder`): both encoders, the queue and its pointer.
    fn import(
        &self,
        model: &str,
        checkpoint: &std::path::Path,
        _num_classes: Option<usize>,
    ) -> Result<String> {
        let config = match model {
            "moco_v1_encoder" => MocoConfig::moco_v1(),
            "moco_v2_encoder" => MocoConfig::moco_v2(),
            other => bail!("unknown model '{other}': expected moco_v1_encoder or moco_v2_encoder"),
        };
        let (_, report) = crate::official::load_moco_checkpoint(
            config.init::<burn::backend::Flex>(&Default::default()),
            checkpoint,
            model,
        )?;
        Ok(format!(
            "{} into {model}: {}",
            checkpoint.display(),
            report.summary()
        ))
    }

    fn models(&self) -> Vec<ModelCount> {
        use burn::backend::Flex;
        [
            ("moco_v1_encoder", MocoConfig::moco_v1()),
            ("moco_v2_encoder", MocoConfig::moco_v2()),
        ]
        .into_iter()
        .map(|(name, config)| ModelCount {
            name: name.into(),
            group: "CO2 / MoCo".into(),
            parameters: core_nets::count_parameters::<Flex, _>(
                &config.init_encoder::<Flex>(&Default::default()),
            ),
            gflops: None,
        })
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_parses_and_bad_values_are_named() {
        for preset in CARD.presets.iter().filter(|p| p.name != "mini") {
            CO2.config(preset.name, &[])
                .unwrap_or_else(|e| panic!("{}: {e:#}", preset.name));
        }
        assert_eq!(core_train::study::check_variants(&CO2).unwrap(), 4);
        // The paper recipes: MoCo's 200 epochs and K, the v1/v2 differences.
        let v1 = CO2.config("co2_moco_v1", &[]).unwrap();
        assert_eq!(
            (v1.train.epochs, v1.model.queue, v1.model.tau),
            (200, 65_536, 0.07)
        );
        assert_eq!((v1.co2.alpha, v1.co2.tau_con), (10.0, 0.04));
        let v2 = CO2.config("moco_v2", &[]).unwrap();
        assert_eq!(
            (v2.model.head, v2.model.tau, v2.co2.alpha),
            (crate::Head::Mlp, 0.2, 0.0)
        );
        // An encoder to evaluate needs a stage that evaluates it.
        let mut config = CO2
            .config("smoke", &["pretrained=\"x.pth\"".into()])
            .unwrap();
        (config.lincls, config.semi) = (None, None);
        let err = format!("{:#}", config.validate().unwrap_err());
        assert!(err.contains("[lincls] or [semi]"), "{err}");
        let semi = CO2.config("semi", &[]).unwrap().semi.unwrap();
        assert_eq!((semi.lr_backbone, semi.lr_head), (0.01, 1.0));
        for (set, named) in [
            ("semi.subset={ fraction = 0 }", "semi.subset.fraction = 0"),
            (
                "semi.subset={ file = \"1percent.txt\" }",
                "semi.subset.file",
            ),
            ("semi.lr_head=0", "lr_head > 0"),
        ] {
            let err = format!("{:#}", CO2.config("smoke", &[set.into()]).unwrap_err());
            assert!(err.contains(named), "{set}: {err}");
        }
        let err = format!(
            "{:#}",
            CO2.config("smoke", &["model.queue=1000".into()])
                .unwrap_err()
        );
        assert!(err.contains("model.queue = 1000"), "{err}");
        let err = format!(
            "{:#}",
            CO2.config("smoke", &["co2.tau_con=0".into()]).unwrap_err()
        );
        assert!(err.contains("co2.tau_con = 0"), "{err}");
        let err = format!(
            "{:#}",
            CO2.config("smoke", &["co2.form=\"lightly\"".into()])
                .unwrap_err()
        );
        assert!(err.contains("co2.form"), "{err}");
    }
}
