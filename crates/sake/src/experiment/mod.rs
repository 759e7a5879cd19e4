//! The SAKE experiment (`vireo train sake`): teacher (ImageNet SE-ResNet-50 file, or trained first
//! on ShapeWorld photos), SAKE fine-tuning of the CSE-ResNet student on zipped sketch/photo
//! batches, model selection on held-out seen-class sketches, zero-shot retrieval real-valued and
//! as ITQ codes; `metrics.csv`, `curves.png`, `pr-curves.png`, `retrieval.png`, `retrieval.json`,
//! `report.md`, `model.mpk` (the student) and checkpoints (student and teacher).
//!
//! * [`config`]: the TOML configuration and its validation.
//! * [`data`]: the image sets, the zipped training stream, batches with relation rows.
//! * [`learner`]: the Learner's model and step.
//! * [`train`]: the run; [`evaluate`]: retrieval, curves and the retrieval sheet.

pub mod config;
pub mod data;
pub mod evaluate;
pub mod learner;
pub mod train;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use burn::tensor::backend::{AutodiffBackend, Backend};
use core_train::{
    Card, Experiment, InferOptions, ModelCount, Outcome, Prediction, Preset, RunDir, Session,
    Weights,
};
use datasets::Normalization;

pub use config::SakeExperiment;

use crate::{
    Domain, SakeModelConfig, SakeNet,
    official::{load_imagenet_teacher, load_sake_checkpoint},
    retrieval::{euclidean_scores, l2_normalize, ranking},
};

/// The SAKE experiment (`vireo train sake`).
pub struct Sake;

/// The registry entry.
pub const SAKE: Sake = Sake;

const CARD: Card = Card {
    name: "sake",
    description: "SAKE (arXiv 1904.03208): zero-shot sketch-based image retrieval, CSE-ResNet with semantic-aware knowledge preservation, real-valued and ITQ binary retrieval",
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
            name: "sake_tu",
            toml: include_str!("../../presets/sake_tu.toml"),
        },
        Preset {
            name: "sake_sketchy",
            toml: include_str!("../../presets/sake_sketchy.toml"),
        },
        Preset {
            name: "sake_sketchy_512",
            toml: include_str!("../../presets/sake_sketchy_512.toml"),
        },
    ],
    study_metric: "unseen mAP@all, real-valued (%)",
};

/// The released models (`sake.md` §3): name, D, classes.
pub const RELEASED: [(&str, usize, usize); 3] = [
    ("sake_tu", 64, 220),
    ("sake_sketchy", 64, 100),
    ("sake_sketchy_512", 512, 100),
];

/// The student config of released model `name` (or a TOML file of a [`SakeModelConfig`]), its
/// classes overridable.
pub fn released_config(name: &str, num_classes: Option<usize>) -> Result<SakeModelConfig> {
    let config: SakeModelConfig = core_train::preset::model_preset_or_file(
        name,
        |n| {
            RELEASED
                .iter()
                .find(|(r, ..)| *r == n)
                .map(|&(_, hashing_dim, num_classes)| SakeModelConfig {
                    hashing_dim,
                    num_classes,
                    ..SakeModelConfig::default()
                })
        },
        &RELEASED.map(|r| r.0),
    )?;
    Ok(SakeModelConfig {
        num_classes: num_classes.unwrap_or(config.num_classes),
        ..config
    })
}

impl Experiment for Sake {
    type Config = SakeExperiment;

    fn card(&self) -> &Card {
        &CARD
    }

    fn validate(&self, config: &SakeExperiment) -> Result<()> {
        config.validate()
    }

    fn epochs(&self, config: &SakeExperiment) -> usize {
        config.train.epochs
    }

    fn fit<B: AutodiffBackend>(
        &self,
        config: SakeExperiment,
        session: Session,
        device: &B::Device,
    ) -> Result<Outcome> {
        train::fit::<B>(config, session, device)
    }

    /// The run's student on its zero-shot split: mAP@all and P@k, real-valued and binary.
    fn evaluate<B: Backend>(
        &self,
        config: SakeExperiment,
        run: &RunDir,
        device: &B::Device,
    ) -> Result<String> {
        let (student, path) = load_run_student::<B>(&config, run, device)?;
        let sources = config.sources()?;
        let size = sources.image_size;
        let queries = evaluate::embed(&student, &sources.queries, &config, size, device)?;
        let gallery = evaluate::embed(&student, &sources.gallery, &config, size, device)?;
        let retrieval = evaluate::retrieve(&queries, &gallery, &config)?;
        Ok(format!(
            "{}: {}",
            path.display(),
            train::retrieval_summary(&retrieval, &config)
        ))
    }

    /// Ranks the photos of `--gallery DIR` for each `--image` sketch (sketch domain bit 0,
    /// photos 1, L2-normalised embeddings, −distance).
    fn predict<B: Backend>(
        &self,
        weights: Weights<SakeExperiment>,
        images: &[PathBuf],
        options: &InferOptions,
        device: &B::Device,
    ) -> Result<Vec<Prediction>> {
        let gallery_dir = options.gallery.as_ref().context(
            "sake ranks a gallery for each sketch: give --gallery DIR (a folder of photos)",
        )?;
        let (student, size, normalization, dim) = match weights {
            Weights::Run { run, config, file } => {
                let (student, _) = load_student_file::<B>(&config, &run, &file, device)?;
                (
                    student,
                    config.data.image_size(),
                    config.data.normalization(),
                    config.model.hashing_dim,
                )
            }
            Weights::PyTorch {
                file,
                model,
                num_classes,
                image_size,
            } => {
                let name = model.as_deref().unwrap_or_else(|| {
                    eprintln!(
                        "--model not given: reading the file as sake_sketchy (D = 64, 100 classes)"
                    );
                    "sake_sketchy"
                });
                let config = released_config(name, num_classes)?;
                let (student, report) = load_sake_checkpoint::<B>(&config, &file, device)?;
                eprintln!("{}: {}", file.display(), report.summary());
                (
                    student,
                    image_size,
                    Normalization::IMAGENET,
                    config.hashing_dim,
                )
            }
        };
        let gallery = datasets::image_folder::image_files(gallery_dir, "--gallery")
            .map_err(anyhow::Error::msg)?;
        let embed = |files: &[PathBuf], domain: Domain| -> Result<Vec<f32>> {
            let mut features = Vec::new();
            for chunk in files.chunks(32) {
                let items = chunk
                    .iter()
                    .map(|path| {
                        let image = image::open(path)
                            .with_context(|| format!("reading {}", path.display()))?
                            .to_rgb8();
                        let image = image::imageops::resize(
                            &image,
                            size as u32,
                            size as u32,
                            image::imageops::FilterType::Triangle,
                        );
                        Ok(image.as_raw().iter().map(|&b| b as f32 / 255.0).collect())
                    })
                    .collect::<Result<Vec<Vec<f32>>>>()?;
                let x = datasets::classification::images_tensor::<B>(
                    items.iter().map(|p| (p.as_slice(), [size, size])),
                    &normalization,
                    device,
                );
                let domains = vec![domain; chunk.len()];
                let e = student.embed(x, crate::domain_codes(&domains, device));
                features.extend(e.into_data().iter::<f32>());
            }
            Ok(l2_normalize(&features, dim))
        };
        let gallery_features = embed(&gallery, Domain::Photo)?;
        let query_features = embed(images, Domain::Sketch)?;
        let predictions = images
            .iter()
            .enumerate()
            .map(|(q, image)| {
                let scores = euclidean_scores(
                    &query_features[q * dim..(q + 1) * dim],
                    &gallery_features,
                    dim,
                );
                let top: Vec<usize> = ranking(&scores).into_iter().take(options.top_k).collect();
                let lines = top
                    .iter()
                    .enumerate()
                    .map(|(rank, &g)| {
                        format!(
                            "{:>3}. {} (distance {:.4})",
                            rank + 1,
                            gallery[g].display(),
                            -scores[g]
                        )
                    })
                    .collect();
                let result = serde_json::json!(
                    top.iter()
                        .map(|&g| serde_json::json!({
                            "image": gallery[g],
                            "distance": -scores[g],
                        }))
                        .collect::<Vec<_>>()
                );
                Prediction {
                    image: image.clone(),
                    lines,
                    result,
                    picture: None,
                }
            })
            .collect();
        Ok(predictions)
    }

    fn models(&self) -> Vec<ModelCount> {
        use burn::backend::Flex;
        let device = Default::default();
        let count =
            |m: &SakeModelConfig| core_nets::count_parameters::<Flex, _>(&m.init::<Flex>(&device));
        let mut models: Vec<ModelCount> = RELEASED
            .iter()
            .map(|&(name, ..)| {
                let config = released_config(name, None).expect("a released model");
                ModelCount {
                    name: name.into(),
                    group: format!(
                        "SAKE (CSEResnetModel_KDHashing, D = {}, {} classes)",
                        config.hashing_dim, config.num_classes
                    ),
                    parameters: count(&config),
                    gflops: None,
                }
            })
            .collect();
        let teacher = SakeModelConfig::default();
        let plain = core_nets::ResNetConfig {
            se_condition: 0,
            ..teacher.teacher_config()
        };
        for (name, group, config) in [
            (
                "cse_resnet50_teacher",
                "SAKE teacher (SE-ResNet-50 + domain columns)",
                teacher.teacher_config(),
            ),
            (
                "se_resnet50",
                "SAKE teacher before conversion (Cadene ImageNet)",
                plain,
            ),
        ] {
            models.push(ModelCount {
                name: name.into(),
                group: group.into(),
                parameters: core_nets::count_parameters::<Flex, _>(&config.init::<Flex>(&device)),
                gflops: None,
            });
        }
        models
    }

    /// `sake_tu`, `sake_sketchy`, `sake_sketchy_512`: a released SAKE checkpoint;
    /// `cse_resnet50_teacher` (or `se_resnet50`): Cadene's `se_resnet50-ce0d4300.pth` as the
    /// teacher.
    fn import(&self, model: &str, checkpoint: &Path, num_classes: Option<usize>) -> Result<String> {
        use burn::backend::Flex;
        let device = Default::default();
        let report = if matches!(model, "cse_resnet50_teacher" | "se_resnet50") {
            load_imagenet_teacher::<Flex>(&SakeModelConfig::default(), checkpoint, &device)?.1
        } else {
            let config = released_config(model, num_classes)?;
            load_sake_checkpoint::<Flex>(&config, checkpoint, &device)?.1
        };
        Ok(format!(
            "{} into {model}: {}",
            checkpoint.display(),
            report.summary()
        ))
    }
}

/// The student of a run: its `model.mpk`, or the newest intact checkpoint's.
fn load_run_student<B: Backend>(
    config: &SakeExperiment,
    run: &RunDir,
    device: &B::Device,
) -> Result<(SakeNet<B>, PathBuf)> {
    let file = run.final_weights()?;
    load_student_file(config, run, &file, device)
}

/// `file` is a student (`model.mpk`) or a training checkpoint (student and teacher).
fn load_student_file<B: Backend>(
    config: &SakeExperiment,
    _run: &RunDir,
    file: &Path,
    device: &B::Device,
) -> Result<(SakeNet<B>, PathBuf)> {
    let student = match RunDir::load_model(config.model.init::<B>(device), file, device) {
        Ok(student) => student,
        Err(as_student) => {
            let template = learner::SakeTraining {
                student: config.model.init::<B>(device),
                teacher: config.model.init_teacher::<B>(device),
                loss: config.loss.clone(),
            };
            RunDir::load_model(template, file, device)
                .map(|t| t.student)
                .map_err(|_| as_student)?
        }
    };
    Ok((student, file.to_path_buf()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_parses_and_bad_values_are_named() {
        for preset in CARD.presets.iter().filter(|p| p.name != "mini") {
            SAKE.config(preset.name, &[])
                .unwrap_or_else(|e| panic!("{}: {e:#}", preset.name));
        }
        assert_eq!(core_train::study::check_variants(&SAKE).unwrap(), 3);
        // The paper's recipe (§4).
        let tu = SAKE.config("sake_tu", &[]).unwrap();
        assert_eq!((tu.batching.sketches, tu.batching.photos), (4, 36));
        assert_eq!((tu.model.hashing_dim, tu.model.num_classes), (64, 220));
        assert_eq!((tu.train.epochs, tu.train.optimizer.lr), (20, 1e-4));
        assert_eq!(tu.train.optimizer.weight_decay, 5e-4);
        let sketchy = SAKE.config("sake_sketchy", &[]).unwrap();
        assert_eq!(
            (sketchy.batching.sketches, sketchy.batching.photos),
            (13, 26)
        );
        let wide = SAKE.config("sake_sketchy_512", &[]).unwrap();
        assert_eq!(wide.model.hashing_dim, 512);
        for (set, named) in [
            ("train.optimizer.kind=\"sgd\"", "train.optimizer.kind"),
            ("batching.photos=0", "batching"),
            ("eval.itq.bits=999", "eval.itq.bits"),
            ("model.num_classes=5", "model.num_classes"),
            ("loss.sake_lambda=-1", "loss.sake_lambda"),
            ("teacher.file=\"x.pth\"", "exactly one"),
            ("augment.probability=2", "augment.probability"),
        ] {
            let err = format!("{:#}", SAKE.config("smoke", &[set.into()]).unwrap_err());
            assert!(err.contains(named), "{set}: {err}");
        }
    }
}
