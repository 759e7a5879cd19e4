//! The CompNet experiment (`vireo train compnet`): the DCNN (trained first on the L0 images), the
//! initialisation (vMF dictionary, mixtures by spectral clustering and ML/EM, occluder models,
//! CN-WACV's Bernoulli model), CN-vMF's end-to-end training on burn-train's Learner (the released
//! recipe), then accuracy per occlusion level and occluder kind for the DCNN, CN-WACV and CN-vMF,
//! and occluder localisation (ROC, AUC) with pictures; `metrics.csv`, `curves.png`,
//! `accuracy.png`, `roc.png`, `occluders-L*.png`, `evaluation.json`, `report.md`, `model.mpk`.
//!
//! * [`config`]: the TOML configuration and its validation.
//! * [`data`]: ShapeWorld's occlusion task and the background images.
//! * [`train`]: the run's stages; [`evaluate`]: the evaluation, pictures and report.

pub mod config;
pub mod data;
pub mod evaluate;
pub mod infer;
pub mod train;

use std::path::PathBuf;

use anyhow::{Context, Result};
use burn::tensor::backend::{AutodiffBackend, Backend};
use core_nets::vgg::{VggConfig, VggCut};
use core_train::{
    Card, Experiment, InferOptions, ModelCount, Outcome, Prediction, Preset, RunDir, Session,
    Weights,
};

pub use config::CompNetExperiment;

use datasets::Normalization;

pub use infer::{ReleasedModel, released_model};

use crate::{bernoulli::BernoulliNet, dcnn::Dcnn, model::CompNet};

/// The CompNet experiment (`vireo train compnet`).
pub struct CompNetPaper;

/// The registry entry.
pub const COMPNET: CompNetPaper = CompNetPaper;

const CARD: Card = Card {
    name: "compnet",
    description: "Compositional Nets (arXiv 1905.11826, 2003.04490, 1911.08571): vMF compositional heads robust to occlusion, CN-WACV's DCNN switch, occluder localisation",
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
            name: "pascal3d_occ",
            toml: include_str!("../../presets/pascal3d_occ.toml"),
        },
        Preset {
            name: "coco_occ",
            toml: include_str!("../../presets/coco_occ.toml"),
        },
    ],
    study_metric: "CN-vMF mean top-1 over L0–L3 (%)",
};

/// A run's three models.
pub struct RunModels<B: Backend> {
    pub dcnn: Dcnn<B>,
    /// CN-vMF from `file`.
    pub model: CompNet<B>,
    pub bernoulli: BernoulliNet<B>,
    /// The run's `model.mpk` or newest intact checkpoint.
    pub file: PathBuf,
}

/// A run's three models: the DCNN, CN-vMF (its `model.mpk` or newest intact checkpoint) and
/// CN-WACV's Bernoulli model.
pub fn load_run<B: Backend>(
    config: &CompNetExperiment,
    run: &RunDir,
    device: &B::Device,
) -> Result<RunModels<B>> {
    let dcnn_file = run.path.join("dcnn").join("model.mpk");
    let dcnn = RunDir::load_model(config.dcnn().init::<B>(device), &dcnn_file, device)
        .with_context(|| format!("{}: the run's DCNN", dcnn_file.display()))?;
    let (template, bernoulli, _) = train::load_init(config, run, &dcnn, device)?;
    let file = run.final_weights()?;
    let model = RunDir::load_model(template, &file, device)?;
    Ok(RunModels {
        dcnn,
        model,
        bernoulli,
        file,
    })
}

impl Experiment for CompNetPaper {
    type Config = CompNetExperiment;

    fn card(&self) -> &Card {
        &CARD
    }

    fn validate(&self, config: &CompNetExperiment) -> Result<()> {
        config.validate()
    }

    fn epochs(&self, config: &CompNetExperiment) -> usize {
        config.train.epochs
    }

    fn fit<B: AutodiffBackend>(
        &self,
        config: CompNetExperiment,
        session: Session,
        device: &B::Device,
    ) -> Result<Outcome> {
        train::fit::<B>(config, session, device)
    }

    /// Accuracy per level and occluder localisation of a run's models on its test images.
    fn evaluate<B: Backend>(
        &self,
        config: CompNetExperiment,
        run: &RunDir,
        device: &B::Device,
    ) -> Result<String> {
        let m = load_run::<B>(&config, run, device)?;
        let e = evaluate::evaluate(&config, &m.dcnn, &m.model, &m.bernoulli, None, device)?;
        Ok(format!("{}: {}", m.file.display(), e.summary()))
    }

    /// The class of each image by CN-vMF (all classes' scores listed) and its occluder map for
    /// that class, drawn beside the image.
    fn predict<B: Backend>(
        &self,
        weights: Weights<CompNetExperiment>,
        images: &[PathBuf],
        options: &InferOptions,
        device: &B::Device,
    ) -> Result<Vec<Prediction>> {
        let (run, config, file) = match weights {
            Weights::Run { run, config, file } => (run, config, file),
            Weights::PyTorch {
                file,
                model,
                image_size,
                ..
            } => {
                let released = released_model(model.as_deref())?;
                let backgrounds = options.backgrounds.as_ref().context(
                    "a released CompNet checkpoint has no occluder models: give --backgrounds DIR (the released background_images/, or any folder of background photos; *_white* and *_noise* files are those types)",
                )?;
                let model = infer::released_compnet::<B>(&released, &file, backgrounds, device)?;
                return infer::predict_images(
                    &model,
                    &released.classes,
                    &Normalization::IMAGENET,
                    infer::Resize::ShortSide(image_size),
                    images,
                    options,
                    device,
                );
            }
        };
        let model = RunDir::load_model(load_run::<B>(&config, &run, device)?.model, &file, device)?;
        infer::predict_images(
            &model,
            &config.data.class_names(),
            &config.data.normalization(),
            if config.data.square() {
                infer::Resize::Square(config.data.image_size())
            } else {
                infer::Resize::ShortSide(config.data.image_size())
            },
            images,
            options,
            device,
        )
    }

    /// `compnet_vmf_pool5` (or a TOML file of a [`ReleasedModel`]): a released `best.pth`.
    fn import(
        &self,
        model: &str,
        checkpoint: &std::path::Path,
        _num_classes: Option<usize>,
    ) -> Result<String> {
        use burn::backend::Flex;
        let released = released_model(Some(model))?;
        let (_, head, report) = crate::official::load_best_checkpoint::<Flex>(
            checkpoint,
            &released.vgg,
            released.head,
            &Default::default(),
        )?;
        let [rows, k, h, w] = head.mix_model.dims();
        Ok(format!(
            "{} into {model}: {}; {k} vMF kernels, {rows} mixtures of {h} × {w}",
            checkpoint.display(),
            report.summary()
        ))
    }

    fn models(&self) -> Vec<ModelCount> {
        use burn::backend::Flex;
        let device = Default::default();
        let mut models = Vec::new();
        for (name, cut) in [
            ("vgg16_pool5", VggCut::Pool5),
            ("vgg16_pool4", VggCut::Pool4),
        ] {
            models.push(ModelCount {
                name: name.into(),
                group: "CompNet backbone (VGG-16 features, frozen)".into(),
                parameters: core_nets::count_parameters::<Flex, _>(
                    &VggConfig::vgg16(cut).init::<Flex>(&device),
                ),
                gflops: None,
            });
        }
        // The released model (`vireo import --model compnet_vmf_pool5`): the backbone and the 512
        // kernels; its 48 mixtures' size [Hm, Wm] comes from the init files, so they are not
        // counted.
        let kernels =
            core_nets::count_parameters::<Flex, _>(&crate::vmf::VmfKernels::<Flex>::from_rows(
                burn::tensor::Tensor::zeros([512, 512], &device),
            ));
        models.push(ModelCount {
            name: infer::RELEASED[0].into(),
            group: "CN-vMF: VGG-16 pool5 + 512 vMF kernels (+ 48 mixtures [512, Hm, Wm], sized by the file, not counted)".into(),
            parameters: models[0].parameters + kernels,
            gflops: None,
        });
        models
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_parses_and_the_study_has_its_variant() {
        for preset in ["smoke", "pascal3d_occ", "coco_occ"] {
            COMPNET
                .config(preset, &[])
                .unwrap_or_else(|e| panic!("{preset}: {e:#}"));
        }
        let p3d = COMPNET.config("pascal3d_occ", &[]).unwrap();
        assert_eq!((p3d.kernels(), p3d.head.mixtures_per_class), (512, 4));
        assert_eq!((p3d.train.epochs, p3d.train.batch_size), (50, 1));
        assert_eq!(
            p3d.backbone.vgg,
            core_nets::vgg::VggConfig::vgg16(VggCut::Pool5)
        );
        assert_eq!(core_train::study::check_variants(&COMPNET).unwrap(), 1);
        let smoke = COMPNET.config("smoke", &["train.seed=2".into()]).unwrap();
        // A run's seed reaches every stage.
        assert_eq!(smoke.pretrain().seed, smoke.backbone.pretrain.seed + 2);
        assert_eq!(smoke.init_config().seed, smoke.init.seed + 2);
        // The released recipe (§4.1).
        assert_eq!(
            smoke.train.optimizer.kind,
            core_train::OptimizerKind::Adagrad
        );
        assert_eq!(
            (smoke.train.optimizer.lr, smoke.train.schedule.gamma),
            (0.01, 0.98)
        );
    }
}
