//! The ELASTIC experiment's multi-label data: ShapeWorld's scale task or MS-COCO 2014.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use anyhow::{Context, Result};
use burn::data::dataset::Dataset;
use datasets::{
    MultiLabelItem, Pipeline, ShapeWorldScale, Split,
    formats::coco::{CocoMultiLabel, ObjectSize},
    formats::unit_rgb_hwc,
    transforms::{augmentation_rng, item_image},
};

use super::config::{ElasticData, ElasticExperiment};

pub type Items = Arc<dyn Dataset<MultiLabelItem>>;

/// The training and validation images, the class names, and the epoch counter the training
/// augmentation reads (shared with the loader).
pub struct ElasticSources {
    pub train: Items,
    pub valid: Items,
    pub classes: Vec<String>,
    pub epoch: Arc<AtomicUsize>,
}

impl ElasticExperiment {
    /// Sets up the world or reads the COCO annotations (a missing or malformed file is named):
    /// the multi-label tasks' data (the single-label task's is the classification experiment's).
    pub fn sources(&self) -> Result<ElasticSources> {
        let epoch = Arc::new(AtomicUsize::new(0));
        let sources: Result<ElasticSources> = match &self.data {
            ElasticData::Classification { .. } => Err(anyhow::anyhow!(
                "data.source = \"classification\" is a single-label task: its data is read by the classification experiment"
            )),
            ElasticData::ShapeworldSegmentation { .. } | ElasticData::Voc { .. } => Err(
                anyhow::anyhow!("a segmentation task: its data is `segmentation_sources`"),
            ),
            ElasticData::ShapeworldScale {
                train_size,
                valid_size,
                world,
                ..
            } => {
                let split = |split, len| -> Items {
                    Arc::new(ShapeWorldScale {
                        world: world.clone(),
                        split,
                        len,
                    })
                };
                Ok(ElasticSources {
                    train: split(Split::Train, *train_size),
                    valid: split(Split::Val, *valid_size),
                    classes: world.class_names().iter().map(|s| s.to_string()).collect(),
                    epoch,
                })
            }
            ElasticData::Coco {
                root, image_size, ..
            } => {
                let read = |split: &str| -> Result<Arc<CocoMultiLabel>> {
                    Ok(Arc::new(CocoMultiLabel::read(
                        &root.join(format!("annotations/instances_{split}2014.json")),
                        &root.join(format!("{split}2014")),
                    )?))
                };
                let (train, valid) = (read("train")?, read("val")?);
                let classes = train.category_names.clone();
                Ok(ElasticSources {
                    train: Arc::new(CocoImages {
                        coco: train,
                        size: *image_size,
                        train: Some((Pipeline::imagenet_train(*image_size), self.train.seed)),
                        epoch: epoch.clone(),
                    }),
                    valid: Arc::new(CocoImages {
                        coco: valid,
                        size: *image_size,
                        train: None,
                        epoch: epoch.clone(),
                    }),
                    classes,
                    epoch,
                })
            }
        };
        sources.context("data")
    }
}

/// COCO images with their multi-label targets (§4.2): training images through RandomResizedCrop
/// and flip (a function of seed, epoch and index), validation images resized to `size × size`
/// (aspect not kept, as the official script).
struct CocoImages {
    coco: Arc<CocoMultiLabel>,
    size: usize,
    /// The training pipeline and seed; none for validation.
    train: Option<(Pipeline, u64)>,
    epoch: Arc<AtomicUsize>,
}

impl CocoImages {
    fn load(&self, index: usize) -> Result<MultiLabelItem, String> {
        let image = self.coco.load(index).map_err(|e| e.to_string())?;
        let pixels = match &self.train {
            Some((pipeline, seed)) => {
                let item = datasets::ClassificationItem {
                    pixels: unit_rgb_hwc(&image),
                    size: [image.height() as usize, image.width() as usize],
                    label: 0,
                };
                let epoch = self.epoch.load(Ordering::Relaxed) as u64;
                let mut rng = augmentation_rng(*seed, epoch, index as u64);
                let image = item_image(&item).map_err(|e| e.to_string())?;
                pipeline.apply(image, &mut rng).into_raw()
            }
            None => {
                let size = self.size as u32;
                let resized = image::imageops::resize(
                    &image,
                    size,
                    size,
                    image::imageops::FilterType::Triangle,
                );
                unit_rgb_hwc(&resized)
            }
        };
        let target = |size| {
            self.coco
                .target_of_size(index, size)
                .map_err(|e| e.to_string())
        };
        Ok(MultiLabelItem {
            pixels,
            size: [self.size; 2],
            targets: self.coco.target(index).map_err(|e| e.to_string())?,
            by_size: [
                target(ObjectSize::Small)?,
                target(ObjectSize::Medium)?,
                target(ObjectSize::Large)?,
            ],
        })
    }
}

impl Dataset<MultiLabelItem> for CocoImages {
    fn get(&self, index: usize) -> Option<MultiLabelItem> {
        if index >= self.coco.len() {
            return None;
        }
        // A corrupt file is an error naming it (or a skipped item), never a short epoch.
        self.load(index).map_or_else(datasets::load_failed, Some)
    }

    fn len(&self) -> usize {
        self.coco.len()
    }
}
