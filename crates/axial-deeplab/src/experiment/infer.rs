//! `vireo infer axial`: a panoptic run's model on image files (shrunk to fit the run's evaluation
//! size and padded, as its validation images; an overlay PNG and the segment list per image), or an
//! official Axial-ResNet ImageNet checkpoint (top-k ImageNet classes).

use std::{collections::BTreeMap, path::PathBuf};

use anyhow::{Context, Result, bail};
use burn::tensor::{Tensor, TensorData, backend::Backend};
use classification::{EvalTransform, classify_images, infer::official_class_names};
use core_train::{InferOptions, Prediction, RunDir, Weights};
use datasets::{
    panoptic::{LabelledImage, fit_and_pad},
    shapeworld::{instance_picture, semantic_picture, tile},
};

use super::{
    config::{PanopticConfig, PanopticData},
    data::Labels,
    evaluate::{PanopticPrediction, predict_panoptic, thing_segments},
};
use crate::AXIAL_PRESETS;

/// The Axial-ResNet an official checkpoint loads into when `--model` is not given.
pub const DEFAULT_MODEL: &str = "axial26s";

pub fn predict<B: Backend>(
    weights: Weights<PanopticConfig>,
    images: &[PathBuf],
    options: &InferOptions,
    device: &B::Device,
) -> Result<Vec<Prediction>> {
    match weights {
        Weights::Run { config, file, .. } => {
            predict_panoptic_files::<B>(&config, &file, images, options, device)
        }
        Weights::PyTorch {
            file,
            model,
            num_classes,
            image_size,
        } => {
            let name = model.as_deref().unwrap_or(DEFAULT_MODEL);
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

/// An official Axial-ResNet checkpoint (the repository's layout) in the preset `name`.
pub fn load_official<B: Backend>(
    name: &str,
    file: &std::path::Path,
    num_classes: usize,
    device: &B::Device,
) -> Result<(crate::AxialResNet<B>, core_nets::ImportReport)> {
    if num_classes < 2 {
        bail!("--num-classes {num_classes}: expected at least 2");
    }
    let names: Vec<_> = AXIAL_PRESETS.iter().map(|p| p.name).collect();
    let config = core_train::preset::model_preset_or_file(
        name,
        |n| AXIAL_PRESETS.iter().find(|p| p.name == n).map(|p| (p.config)()),
        &names,
    )
    .with_context(|| {
        format!(
            "'{name}' has no official checkpoint loader: the released checkpoints are the ImageNet Axial-ResNets; DeepLab2's TensorFlow checkpoints of axial_resnet_*/axial_deeplab_* are not converted"
        )
    })?;
    let model = config.with_num_classes(num_classes).init::<B>(device);
    crate::load_axial_checkpoint(model, file, name)
        .with_context(|| format!("loading {} into {name}", file.display()))
}

fn predict_panoptic_files<B: Backend>(
    config: &PanopticConfig,
    file: &std::path::Path,
    images: &[PathBuf],
    options: &InferOptions,
    device: &B::Device,
) -> Result<Vec<Prediction>> {
    let model = RunDir::load_model(config.model.init::<B>(device), file, device)?;
    let labels = config.data.sources(config.train.seed)?.labels;
    let post = config.postprocess_config(&labels);
    let size = match &config.data {
        PanopticData::Shapeworld { world, .. } => [world.image_size; 2],
        PanopticData::Files { eval_size, .. } => *eval_size,
    };
    std::fs::create_dir_all(&options.out)
        .with_context(|| format!("creating {}", options.out.display()))?;
    let void_id = labels.void * labels.divisor;
    images
        .iter()
        .map(|path| {
            let image = datasets::formats::decode_rgb(path)?;
            let (w, h) = image.dimensions();
            let item = LabelledImage {
                panoptic: vec![void_id; (w * h) as usize],
                image,
            };
            let fitted = fit_and_pad(&item, size, void_id);
            // DeepLab2's input scaling x/127.5 − 1, as the batcher.
            let pixels: Vec<f32> = fitted
                .image
                .as_raw()
                .iter()
                .map(|&v| v as f32 / 127.5 - 1.0)
                .collect();
            let [hh, ww] = size;
            let chw: Vec<f32> = (0..3)
                .flat_map(|c| {
                    pixels
                        .iter()
                        .skip(c)
                        .step_by(3)
                        .copied()
                        .collect::<Vec<_>>()
                })
                .collect();
            let input = Tensor::<B, 4>::from_data(TensorData::new(chw, [1, 3, hh, ww]), device);
            let prediction = predict_panoptic(&model, input, &post)
                .pop()
                .expect("one image in, one prediction out");
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "image".into());
            let picture = options.out.join(format!("{stem}-panoptic.png"));
            draw_overlay(&fitted.image, &prediction, &labels, &picture)?;
            let segments = segments(&prediction, &labels, size);
            Ok(Prediction {
                image: path.clone(),
                lines: std::iter::once(format!(
                    "{} segments in the {}×{} evaluation frame ({} thing centres)",
                    segments.len(),
                    ww,
                    hh,
                    prediction.centers.len()
                ))
                .chain(segments.iter().map(|s| {
                    format!(
                        "{:>8}  {:<12} {:<5} {:>6} px  centre ({:.1}, {:.1})",
                        s.id, s.name, s.kind, s.area, s.centre[0], s.centre[1]
                    )
                }))
                .collect(),
                result: serde_json::json!({
                    "frame": [hh, ww],
                    "segments": segments.iter().map(|s| serde_json::json!({
                        "id": s.id, "class": s.class, "name": s.name, "kind": s.kind,
                        "area": s.area, "centre": s.centre,
                    })).collect::<Vec<_>>(),
                }),
                picture: Some(picture),
            })
        })
        .collect()
}

/// One panoptic segment of a prediction.
struct Segment {
    id: u32,
    class: u32,
    name: String,
    kind: &'static str,
    area: usize,
    /// Mean `[row, col]` of its pixels.
    centre: [f64; 2],
}

fn segments(prediction: &PanopticPrediction, labels: &Labels, [_, w]: [usize; 2]) -> Vec<Segment> {
    let mut sums: BTreeMap<u32, (usize, f64, f64)> = BTreeMap::new();
    for (q, &id) in prediction.panoptic.iter().enumerate() {
        if id / labels.divisor == labels.void {
            continue;
        }
        let entry = sums.entry(id).or_default();
        entry.0 += 1;
        entry.1 += (q / w) as f64;
        entry.2 += (q % w) as f64;
    }
    sums.into_iter()
        .map(|(id, (area, rows, cols))| {
            let class = id / labels.divisor;
            Segment {
                id,
                class,
                name: labels
                    .names
                    .get(class as usize)
                    .cloned()
                    .unwrap_or_else(|| format!("class {class}")),
                kind: if labels.things.contains(&class) {
                    "thing"
                } else {
                    "stuff"
                },
                area,
                centre: [rows / area as f64, cols / area as f64],
            }
        })
        .collect()
}

/// input | semantic overlay | instances with centres.
fn draw_overlay(
    image: &image::RgbImage,
    prediction: &PanopticPrediction,
    labels: &Labels,
    path: &std::path::Path,
) -> Result<()> {
    let base = image.clone();
    let tiles = [
        tile(base.clone(), "input (fitted, padded)"),
        tile(semantic_picture(&base, &prediction.semantic), "semantic"),
        tile(
            instance_picture(
                &base,
                &thing_segments(&prediction.panoptic, labels),
                &prediction.centers,
            ),
            &format!("instances ({} centres)", prediction.centers.len()),
        ),
    ];
    let refs: Vec<(&image::RgbImage, &str)> = tiles
        .iter()
        .map(|t| (&t.image, t.caption.as_str()))
        .collect();
    core_train::plot::draw_tile_grid(&refs, 3, "panoptic prediction", path)
}
