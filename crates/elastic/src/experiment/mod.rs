//! The ELASTIC experiment (`vireo train elastic`): multi-label classification with the two-path
//! ResNeXt, plain or elastic, on ShapeWorld's scale task (embedded) or MS-COCO 2014 — scores
//! overall and per object size — and single-label classification (ImageNet folders, §4.1) on the
//! classification experiment's run; the scale-policy picture, `metrics.csv`, `curves.png`,
//! `report.md`, checkpoints and `model.mpk`.
//!
//! * [`config`]: the TOML configuration and its validation.
//! * [`data`]: the scale task and the COCO images with their per-size targets.
//! * [`train`]: burn-train's supervised loop with binary cross-entropy ([`train::fit`]).
//! * [`evaluate`]: the final scores, the pictures and the report.

pub mod config;
pub mod data;
pub mod evaluate;
pub mod segment;
pub mod train;

use std::path::PathBuf;

use anyhow::Result;
use burn::tensor::{
    activation::sigmoid,
    backend::{AutodiffBackend, Backend},
};
use classification::EvalTransform;
use core_train::{
    Card, Experiment, InferOptions, ModelCount, Outcome, Prediction, Preset, RunDir, Session,
    Weights,
};

pub use config::ElasticExperiment;

use crate::models::{Arch, find_model};

/// A released network: the ResNeXt family, DLA-X or DenseNet (one per command; boxing buys
/// nothing).
#[allow(clippy::large_enum_variant)]
pub enum OfficialNet<B: Backend> {
    ResNeXt(core_nets::ResNet<B>),
    Dla(core_nets::Dla<B>),
    DenseNet(core_nets::DenseNet<B>),
}

impl<B: Backend> OfficialNet<B> {
    pub fn forward(&self, x: burn::tensor::Tensor<B, 4>) -> burn::tensor::Tensor<B, 2> {
        match self {
            OfficialNet::ResNeXt(net) => net.forward(x),
            OfficialNet::Dla(net) => net.forward(x),
            OfficialNet::DenseNet(net) => net.forward(x),
        }
    }
}

/// A released checkpoint in the ELASTIC model `name` (or a model TOML file of a two-path ResNeXt)
/// with a `num_classes` classifier.
pub fn load_official<B: Backend>(
    name: &str,
    file: &std::path::Path,
    num_classes: usize,
    device: &B::Device,
) -> Result<(OfficialNet<B>, core_nets::ImportReport)> {
    use anyhow::Context as _;
    if let Some(Arch::DenseNet(config)) = find_model(name).map(|m| (m.arch)()) {
        let config = core_nets::DenseNetConfig {
            num_classes: Some(num_classes),
            ..config
        };
        let remaps = core_nets::densenet_key_remapping(64);
        let remaps: Vec<(&str, &str)> = remaps
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        let (net, report) =
            core_nets::load_pytorch_checkpoint_with(config.init::<B>(device), file, name, &remaps)
                .with_context(|| format!("loading {} into {name}", file.display()))?;
        return Ok((OfficialNet::DenseNet(net), report));
    }
    if let Some(Arch::Dla(config)) = find_model(name).map(|m| (m.arch)()) {
        let config = core_nets::DlaConfig {
            num_classes: Some(num_classes),
            ..config
        };
        let (net, report) = core_nets::load_pytorch_checkpoint_with(
            config.init::<B>(device),
            file,
            name,
            core_nets::DLA_KEY_REMAPPING,
        )
        .with_context(|| format!("loading {} into {name}", file.display()))?;
        return Ok((OfficialNet::Dla(net), report));
    }
    let names: Vec<&str> = crate::ELASTIC_MODELS.iter().map(|m| m.name).collect();
    let (net, report) =
        classification::infer::load_official_from(name, file, num_classes, device, &names, |n| {
            match find_model(n).map(|m| (m.arch)()) {
                Some(Arch::ResNeXt(config)) => Some(config),
                _ => None,
            }
        })?;
    Ok((OfficialNet::ResNeXt(net), report))
}

/// The ELASTIC experiment (`vireo train elastic`).
pub struct Elastic;

/// The registry entry.
pub const ELASTIC: Elastic = Elastic;

const CARD: Card = Card {
    name: "elastic",
    description: "ELASTIC (arXiv 1812.05262): two-path ResNeXt with learned scale policies; multi-label classification by object size, ImageNet classification, VOC segmentation",
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
            name: "coco",
            toml: include_str!("../../presets/coco.toml"),
        },
        Preset {
            name: "imagenet",
            toml: include_str!("../../presets/imagenet.toml"),
        },
        Preset {
            name: "segmentation",
            toml: include_str!("../../presets/segmentation.toml"),
        },
        Preset {
            name: "segmentation-mini",
            toml: include_str!("../../presets/segmentation-mini.toml"),
        },
        Preset {
            name: "voc",
            toml: include_str!("../../presets/voc.toml"),
        },
    ],
    study_metric: "valid overall F1 (%)",
};

impl Experiment for Elastic {
    type Config = ElasticExperiment;

    fn card(&self) -> &Card {
        &CARD
    }

    fn validate(&self, config: &ElasticExperiment) -> Result<()> {
        config.validate()
    }

    fn epochs(&self, config: &ElasticExperiment) -> usize {
        config.train.epochs
    }

    fn fit<B: AutodiffBackend>(
        &self,
        config: ElasticExperiment,
        session: Session,
        device: &B::Device,
    ) -> Result<Outcome> {
        train::fit::<B>(config, session, device)
    }

    fn evaluate<B: Backend>(
        &self,
        config: ElasticExperiment,
        run: &RunDir,
        device: &B::Device,
    ) -> Result<String> {
        if let Some(task) = config.classification() {
            return classification::evaluate::evaluate::<B>(task, run, device);
        }
        if config.data.is_segmentation() {
            let (model, path) =
                run.load_final_model(segment::init_segmentation::<B>(&config, device), device)?;
            let sources = config.segmentation_sources()?;
            let e = segment::evaluate_segmentation(&model, &sources, &config, device)?;
            return Ok(format!(
                "{}: {} validation images, mIoU {:.2} % over {} classes",
                path.display(),
                e.images,
                e.counts.miou(),
                sources.classes.len()
            ));
        }
        let (model, path) =
            run.load_final_model(train::init_model::<B>(&config, device), device)?;
        let sources = config.sources()?;
        let e = evaluate::evaluate(&model, &sources, &config, device)?;
        let s = &e.scores;
        Ok(format!(
            "{}: {} validation images, F1 overall {:.2} % / per class {:.2} %, mAP {:.2} %, recall small/medium/large {:.1} / {:.1} / {:.1} %",
            path.display(),
            e.images,
            s.f1_overall,
            s.f1_per_class,
            s.map,
            s.recall_by_size[0],
            s.recall_by_size[1],
            s.recall_by_size[2]
        ))
    }

    /// A run's multi-label model on images: every label with its probability, those above 0.5
    /// marked as predicted. A released ImageNet checkpoint (`--checkpoint`, `--model`, default
    /// `resnext50_elastic`) classifies with ImageNet's names.
    fn predict<B: Backend>(
        &self,
        weights: Weights<ElasticExperiment>,
        images: &[PathBuf],
        options: &InferOptions,
        device: &B::Device,
    ) -> Result<Vec<Prediction>> {
        let (config, file, classes) = match weights {
            Weights::Run { config, file, run } if config.classification().is_some() => {
                let task = config.classification().expect("checked by the guard");
                return classification::infer::predict::<B>(
                    Weights::Run {
                        run,
                        config: task,
                        file,
                    },
                    images,
                    options,
                    "resnext50_elastic",
                    device,
                );
            }
            Weights::Run { config, file, run } if config.data.is_segmentation() => {
                let model = RunDir::load_model(
                    segment::init_segmentation::<B>(&config, device),
                    &file,
                    device,
                )?;
                let classes = match std::fs::read_to_string(run.file("classes.txt")) {
                    Ok(text) => text.lines().map(str::to_string).collect(),
                    Err(_) => config.segmentation_sources()?.classes,
                };
                return segment::predict_segmentation(
                    &model,
                    config.data.image_size(),
                    config.data.normalization(),
                    &classes,
                    images,
                    options,
                    device,
                );
            }
            Weights::Run { config, file, run } => {
                // Written by the run; an older run's names come from its data.
                let classes = match std::fs::read_to_string(run.file("classes.txt")) {
                    Ok(text) => text.lines().map(str::to_string).collect(),
                    Err(_) => config.sources()?.classes,
                };
                (config, file, classes)
            }
            Weights::PyTorch {
                file,
                model: Some(name),
                num_classes,
                image_size,
            } if name.ends_with(segment::VOC_SUFFIX) => {
                // A released VOC model: 21 classes unless told; each image shrunk to fit and padded
                // to `--image-size`² (`segment.py` evaluates on 513², pass --image-size 513).
                let classes = num_classes.unwrap_or(21);
                let (model, _) =
                    segment::load_official_segmentation::<B>(&name, &file, classes, device)?;
                let names = match classes {
                    21 => segment::voc_class_names(),
                    n => (0..n).map(|c| format!("class {c}")).collect(),
                };
                return segment::predict_segmentation(
                    &model,
                    image_size,
                    datasets::Normalization::IMAGENET,
                    &names,
                    images,
                    options,
                    device,
                );
            }
            Weights::PyTorch {
                file,
                model,
                num_classes,
                image_size,
            } => {
                let classes = num_classes.unwrap_or(1000);
                let name = model.as_deref().unwrap_or("resnext50_elastic");
                let (model, _) = load_official::<B>(name, &file, classes, device)?;
                return classification::classify_images(
                    images,
                    &EvalTransform::imagenet(image_size),
                    &classification::infer::official_class_names(classes),
                    options.top_k,
                    device,
                    |x| model.forward(x),
                );
            }
        };
        let model = RunDir::load_model(train::init_model::<B>(&config, device), &file, device)?;
        let size = config.data.image_size();
        let transform = EvalTransform {
            resize: size,
            crop: size,
            normalization: config.data.normalization(),
        };
        images
            .iter()
            .map(|path| {
                let x = transform.load::<B>(path, device)?;
                let probabilities: Vec<f32> = sigmoid(model.net.forward(x))
                    .into_data()
                    .iter::<f32>()
                    .collect();
                let mut ranked: Vec<(usize, f32)> =
                    probabilities.iter().copied().enumerate().collect();
                ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
                let shown = ranked
                    .iter()
                    .take(options.top_k.max(ranked.iter().filter(|r| r.1 > 0.5).count()));
                let lines = shown
                    .clone()
                    .map(|&(c, p)| {
                        format!(
                            "{}{:<12} {:5.1} %",
                            if p > 0.5 { "+ " } else { "  " },
                            classes[c],
                            100.0 * p
                        )
                    })
                    .collect();
                let labels: Vec<_> = shown
                    .map(|&(c, p)| {
                        serde_json::json!({"label": classes[c], "probability": p, "predicted": p > 0.5})
                    })
                    .collect();
                Ok(Prediction {
                    image: path.clone(),
                    lines,
                    result: serde_json::json!({ "labels": labels }),
                    picture: None,
                })
            })
            .collect()
    }

    /// A released ImageNet checkpoint into one of the paper's models (`resnext50_elastic`, …).
    fn import(
        &self,
        model: &str,
        checkpoint: &std::path::Path,
        num_classes: Option<usize>,
    ) -> Result<String> {
        if model.ends_with(segment::VOC_SUFFIX) {
            let (_, report) = segment::load_official_segmentation::<burn::backend::Flex>(
                model,
                checkpoint,
                num_classes.unwrap_or(21),
                &Default::default(),
            )?;
            return Ok(report.summary());
        }
        let (_, report) = load_official::<burn::backend::Flex>(
            model,
            checkpoint,
            num_classes.unwrap_or(1000),
            &Default::default(),
        )?;
        Ok(report.summary())
    }

    /// The paper's models with their exact parameter counts and the official counter's GFLOPs
    /// (computed here, not copied); then the segmentation variants of the released VOC models
    /// (21 classes; `resnext50_elastic_voc`'s 38,738,005 is the spec's, tested).
    fn models(&self) -> Vec<ModelCount> {
        crate::ELASTIC_MODELS
            .iter()
            .map(|m| {
                let arch = (m.arch)();
                ModelCount {
                    name: m.name.into(),
                    group: "ELASTIC".into(),
                    parameters: arch.parameters(),
                    gflops: Some(arch.gflops(224)),
                }
            })
            .chain(
                [
                    "resnext50",
                    "resnext50_elastic",
                    "resnext101",
                    "resnext101_elastic",
                ]
                .into_iter()
                .filter_map(|base| match find_model(base).map(|m| (m.arch)()) {
                    Some(Arch::ResNeXt(classifier)) => {
                        let net = crate::models::segmentation(classifier, 21)
                            .init::<burn::backend::Flex>(&Default::default());
                        Some(ModelCount {
                            name: format!("{base}{}", segment::VOC_SUFFIX),
                            group: "ELASTIC VOC".into(),
                            parameters: core_nets::count_parameters(&net),
                            gflops: None,
                        })
                    }
                    _ => None,
                }),
            )
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_parses_and_validates() {
        for preset in CARD.presets {
            if core_train::study::is_study(&CARD, preset.name) {
                continue;
            }
            let config = ELASTIC.config(preset.name, &[]).unwrap();
            ELASTIC.validate(&config).unwrap();
        }
        assert_eq!(core_train::study::check_variants(&ELASTIC).unwrap(), 2);
    }
}
