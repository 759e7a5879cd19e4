//! `vireo infer compnet`: CN-vMF's classes for image files and its occluder map for the top
//! class, drawn beside the image — with a vireo run, or with a released `best.pth` (`compnet.md`
//! §5) whose occluder models are built from a folder of background images (§2.5) and whose images
//! are preprocessed as released (short side to 224, aspect kept, ImageNet statistics; §2.2).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use burn::tensor::backend::Backend;
use core_nets::vgg::{VggConfig, VggCut};
use core_train::{InferOptions, Prediction};
use datasets::{Normalization, formats::occluded::COMPNET_CLASSES};
use serde::{Deserialize, Serialize};

use super::evaluate::map_picture;
use crate::{
    features::features_of,
    head::HeadConfig,
    init::InitConfig,
    model::{CompNet, LossConfig},
    official::{
        background_images_from_folder, background_maps, load_best_checkpoint,
        occluder_models_tensor,
    },
    score::{MapMode, occluder_map},
};

/// A released checkpoint's model: its backbone, head settings and class names (`--model`: the
/// preset `compnet_vmf_pool5`, or a TOML file of these keys).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReleasedModel {
    pub vgg: VggConfig,
    pub head: HeadConfig,
    pub classes: Vec<String>,
}

impl Default for ReleasedModel {
    fn default() -> Self {
        Self {
            vgg: VggConfig::vgg16(VggCut::Pool5),
            head: HeadConfig::default(),
            classes: COMPNET_CLASSES.iter().map(|c| c.to_string()).collect(),
        }
    }
}

/// The released model presets.
pub const RELEASED: [&str; 1] = ["compnet_vmf_pool5"];

/// `--model` (none: `compnet_vmf_pool5`, the released PASCAL3D+ and COCO models).
pub fn released_model(name: Option<&str>) -> Result<ReleasedModel> {
    let name = name.unwrap_or(RELEASED[0]);
    core_train::preset::model_preset_or_file(
        name,
        |n| (n == RELEASED[0]).then(ReleasedModel::default),
        &RELEASED,
    )
}

/// A released checkpoint as a [`CompNet`], its occluder models built from the background images
/// of `backgrounds` with the loaded dictionary.
pub fn released_compnet<B: Backend>(
    released: &ReleasedModel,
    file: &Path,
    backgrounds: &Path,
    device: &B::Device,
) -> Result<CompNet<B>> {
    let (backbone, head, report) =
        load_best_checkpoint::<B>(file, &released.vgg, released.head.clone(), device)?;
    let backbone = crate::backbone::Backbone::Vgg(backbone);
    let rows = head.mix_model.dims()[0];
    let classes = rows / released.head.mixtures_per_class;
    if classes != released.classes.len() {
        anyhow::bail!(
            "{}: {rows} mixture rows are {classes} classes × {} mixtures, but the model names {} classes (give a --model TOML with `classes`)",
            file.display(),
            released.head.mixtures_per_class,
            released.classes.len()
        );
    }
    eprintln!("{}: {}", file.display(), report.summary());
    let maps = background_maps(
        &background_images_from_folder(backgrounds)?,
        &backbone,
        &head.conv1o1,
        &Normalization::IMAGENET,
        1,
        device,
    );
    let occluders =
        occluder_models_tensor(&maps, &released.head, &InitConfig::default(), device)
            .with_context(|| format!("the occluder models from {}", backgrounds.display()))?;
    Ok(CompNet::new(
        backbone,
        head,
        occluders,
        LossConfig::default(),
    ))
}

/// How images are brought to the model.
#[derive(Clone, Copy, Debug)]
pub enum Resize {
    /// To `side × side` (the embedded data's square images).
    Square(usize),
    /// Short side to `side`, the other `⌊size·side/short⌋`, unless the short side already is.
    ShortSide(usize),
}

impl Resize {
    fn apply(self, image: &image::RgbImage) -> image::RgbImage {
        let (w, h) = image.dimensions();
        let (nw, nh) = match self {
            Resize::Square(side) => (side as u32, side as u32),
            Resize::ShortSide(side) => {
                let short = w.min(h);
                if short == side as u32 {
                    return image.clone();
                }
                let scale = |v: u32| (u64::from(v) * side as u64 / u64::from(short)) as u32;
                (scale(w), scale(h))
            }
        };
        image::imageops::resize(image, nw, nh, image::imageops::FilterType::Lanczos3)
    }
}

/// CN-vMF's classes (top-k) and the occluder map of the top class for each image file.
pub fn predict_images<B: Backend>(
    model: &CompNet<B>,
    names: &[String],
    normalization: &Normalization,
    resize: Resize,
    images: &[PathBuf],
    options: &InferOptions,
    device: &B::Device,
) -> Result<Vec<Prediction>> {
    std::fs::create_dir_all(&options.out)
        .with_context(|| format!("creating {}", options.out.display()))?;
    let mut predictions = Vec::new();
    for path in images {
        let image = image::open(path)
            .with_context(|| format!("reading {}", path.display()))?
            .to_rgb8();
        let image = resize.apply(&image);
        let (iw, ih) = image.dimensions();
        let pixels: Vec<f32> = image.as_raw().iter().map(|&b| b as f32 / 255.0).collect();
        let features = features_of(
            &model.backbone,
            std::iter::once((pixels.as_slice(), [ih as usize, iw as usize])),
            normalization,
            device,
        );
        let [_, _, h, w] = features.dims();
        let out = model.forward_features(features);
        let p: Vec<f32> = out
            .probabilities
            .clone()
            .into_data()
            .iter::<f32>()
            .collect();
        let mut order: Vec<usize> = (0..p.len()).collect();
        order.sort_by(|&a, &b| p[b].total_cmp(&p[a]));
        let class = order[0];
        let map = occluder_map(&out.terms, 0, class, MapMode::MixtureBg);
        let picture = options.out.join(format!(
            "{}-occluders.png",
            path.file_stem().and_then(|s| s.to_str()).unwrap_or("image")
        ));
        let tiles = [
            datasets::shapeworld::tile(image.clone(), "image"),
            datasets::shapeworld::tile(
                map_picture(&map, [h, w], [ih as usize, iw as usize], 7.0),
                "occluder map (CN-vMF, [0, 7])",
            ),
        ];
        let refs: Vec<(&image::RgbImage, &str)> = tiles
            .iter()
            .map(|t| (&t.image, t.caption.as_str()))
            .collect();
        core_train::plot::draw_tile_grid(
            &refs,
            2,
            &format!("{}: {}", path.display(), names[class]),
            &picture,
        )?;
        let occluded = map.iter().filter(|&&v| v > 0.0).count();
        let mut lines: Vec<String> = order
            .iter()
            .take(options.top_k)
            .map(|&c| format!("{:>6.2} %  {}", 100.0 * p[c], names[c]))
            .collect();
        lines.push(format!(
            "occluder map: {occluded} of {} positions better explained by an occluder ({})",
            map.len(),
            picture.display()
        ));
        predictions.push(Prediction {
            image: path.clone(),
            lines,
            result: serde_json::json!({
                "class": names[class],
                "probabilities": order.iter().take(options.top_k).map(|&c| serde_json::json!({"class": names[c], "p": p[c]})).collect::<Vec<_>>(),
                "occluder_map": { "height": h, "width": w, "values": map },
            }),
            picture: Some(picture),
        });
    }
    Ok(predictions)
}
