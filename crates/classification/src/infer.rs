//! Prediction on image files and the official checkpoints: the evaluation transform of a run (or of
//! the ImageNet recipe), top-k classes with names, and the loader of the authors' PyTorch files.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::tensor::{Tensor, TensorData, activation::softmax, backend::Backend};
use core_train::{InferOptions, Prediction, RunDir, Weights};
use datasets::{
    Normalization,
    transforms::{Image, center_crop, normalize, resize_short_side},
};

use crate::{ClassificationConfig, DataConfig, train::class_names};

/// The 1000 ImageNet class names in label order (torchvision's list), for official checkpoints.
pub const IMAGENET_CLASSES: &str = include_str!("../assets/imagenet_classes.txt");

/// How an image file becomes a model input: short side resized, centre crop, normalisation.
#[derive(Clone, Copy, Debug)]
pub struct EvalTransform {
    pub resize: usize,
    pub crop: usize,
    pub normalization: Normalization,
}

impl EvalTransform {
    /// The ImageNet evaluation of every official recipe: short side 256, centre 224.
    pub const IMAGENET: EvalTransform = EvalTransform {
        resize: 256,
        crop: 224,
        normalization: Normalization::IMAGENET,
    };

    /// The ImageNet evaluation at another crop (short side `round(crop · 8/7)`).
    pub fn imagenet(crop: usize) -> EvalTransform {
        EvalTransform {
            resize: datasets::transforms::ResizeCenterCrop { size: crop }.resize(),
            crop,
            normalization: Normalization::IMAGENET,
        }
    }

    /// `[1, 3, crop, crop]` from an image file; a missing or corrupt file is named.
    pub fn load<B: Backend>(&self, path: &Path, device: &B::Device) -> Result<Tensor<B, 4>> {
        let image: Image =
            image::DynamicImage::ImageRgb8(datasets::formats::decode_rgb(path)?).into_rgb32f();
        let image = center_crop(&resize_short_side(&image, self.resize), self.crop);
        let data = normalize(&image, &self.normalization);
        Ok(Tensor::from_data(
            TensorData::new(data, [1, 3, self.crop, self.crop]),
            device,
        ))
    }
}

/// The evaluation transform of a run's config (what its validation images went through).
pub fn run_transform(config: &ClassificationConfig) -> EvalTransform {
    match &config.data {
        DataConfig::Shapeworld {
            world,
            normalization,
            ..
        } => EvalTransform {
            resize: world.image_size,
            crop: world.image_size,
            normalization: *normalization,
        },
        DataConfig::ImageFolder {
            image_size,
            normalization,
            ..
        } => EvalTransform {
            resize: datasets::transforms::ResizeCenterCrop { size: *image_size }.resize(),
            crop: *image_size,
            normalization: *normalization,
        },
    }
}

/// Classifies each image with `forward` (`[1, 3, H, W] -> [1, classes]` logits) and lists its
/// `top_k` classes by softmax probability.
pub fn classify_images<B: Backend>(
    images: &[PathBuf],
    transform: &EvalTransform,
    names: &[String],
    top_k: usize,
    device: &B::Device,
    forward: impl Fn(Tensor<B, 4>) -> Tensor<B, 2>,
) -> Result<Vec<Prediction>> {
    images
        .iter()
        .map(|path| {
            let input = transform.load::<B>(path, device)?;
            let probabilities: Vec<f32> = softmax(forward(input), 1)
                .into_data()
                .iter::<f32>()
                .collect();
            let mut order: Vec<usize> = (0..probabilities.len()).collect();
            // Highest first; equal probabilities keep the lower class first.
            order.sort_by(|&a, &b| {
                probabilities[b]
                    .total_cmp(&probabilities[a])
                    .then(a.cmp(&b))
            });
            let top: Vec<(usize, f32)> = order
                .into_iter()
                .take(top_k)
                .map(|k| (k, probabilities[k]))
                .collect();
            let name = |k: usize| {
                names
                    .get(k)
                    .cloned()
                    .unwrap_or_else(|| format!("class {k}"))
            };
            Ok(Prediction {
                image: path.clone(),
                lines: top
                    .iter()
                    .map(|&(k, p)| format!("{:6.2} %  {k:>4}  {}", 100.0 * p, name(k)))
                    .collect(),
                result: serde_json::json!({
                    "top": top.iter().map(|&(k, p)| serde_json::json!({
                        "class": k, "name": name(k), "probability": p
                    })).collect::<Vec<_>>()
                }),
                picture: None,
            })
        })
        .collect()
}

/// The names of a classifier with `classes` outputs loaded from an official checkpoint.
pub fn official_class_names(classes: usize) -> Vec<String> {
    if classes == 1000 {
        IMAGENET_CLASSES.lines().map(str::to_string).collect()
    } else {
        (0..classes).map(|k| format!("class {k}")).collect()
    }
}

/// `vireo infer ws|bcn`: a run's model on its evaluation transform, or an official checkpoint
/// (`default_model` unless `--model`) on ImageNet's.
pub fn predict<B: Backend>(
    weights: Weights<ClassificationConfig>,
    images: &[PathBuf],
    options: &InferOptions,
    default_model: &str,
    device: &B::Device,
) -> Result<Vec<Prediction>> {
    match weights {
        Weights::Run { run, config, file } => {
            let model = RunDir::load_model(config.model.init::<B>(device), &file, device)?;
            let names = class_names(&run, &config)?;
            classify_images(
                images,
                &run_transform(&config),
                &names,
                options.top_k,
                device,
                |x| model.forward(x),
            )
        }
        Weights::PyTorch {
            file,
            model,
            num_classes,
            image_size,
        } => {
            let name = model.as_deref().unwrap_or(default_model);
            let classes = num_classes.unwrap_or(1000);
            let (model, _) = load_official::<B>(name, &file, classes, device)?;
            classify_images(
                images,
                &EvalTransform::imagenet(image_size),
                &official_class_names(classes),
                options.top_k,
                device,
                |x| model.forward(x),
            )
        }
    }
}

/// An official WS/BCN/torchvision-layout checkpoint in the model `name`: a preset of
/// `core_nets::MODEL_PRESETS`, or a TOML file of a `ResNetConfig`.
pub fn load_official<B: Backend>(
    name: &str,
    file: &Path,
    num_classes: usize,
    device: &B::Device,
) -> Result<(core_nets::ResNet<B>, core_nets::ImportReport)> {
    let names: Vec<_> = core_nets::MODEL_PRESETS.iter().map(|p| p.name).collect();
    load_official_from(name, file, num_classes, device, &names, |n| {
        core_nets::MODEL_PRESETS
            .iter()
            .find(|p| p.name == n)
            .map(|p| (p.config)())
    })
}

/// An official checkpoint in the model `name`: one of `names` (found by `lookup`) or a TOML file
/// of a `ResNetConfig`, with a `num_classes` classifier.
pub fn load_official_from<B: Backend>(
    name: &str,
    file: &Path,
    num_classes: usize,
    device: &B::Device,
    names: &[&str],
    lookup: impl Fn(&str) -> Option<core_nets::ResNetConfig>,
) -> Result<(core_nets::ResNet<B>, core_nets::ImportReport)> {
    if num_classes < 2 {
        bail!("--num-classes {num_classes}: expected at least 2");
    }
    let config = core_train::preset::model_preset_or_file(name, lookup, names)?;
    let config = config.with_num_classes(Some(num_classes));
    config
        .validate()
        .map_err(|e| anyhow::anyhow!("model {name}: {e}"))?;
    core_nets::load_pytorch_resnet(config.init::<B>(device), file, name)
        .with_context(|| format!("loading {} into {name}", file.display()))
}
