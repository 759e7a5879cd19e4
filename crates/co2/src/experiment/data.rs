//! The CO2 experiment's data: labelled images (ShapeWorld or class folders) whose labels only the
//! kNN monitor and the linear evaluation read, and two augmented views of each for pre-training.

use std::sync::{Arc, atomic::AtomicUsize};

use anyhow::Result;
use burn::{
    data::{dataloader::batcher::Batcher, dataset::Dataset},
    tensor::{Tensor, backend::Backend},
};
use datasets::{
    Augmented, ClassificationBatcher, ClassificationItem, ImageFolder, Pipeline,
    ShapeWorldClassification, Split, TwoViews, ViewPair,
};

use classification::DataConfig;

use super::config::Co2Experiment;

pub type Items = Arc<dyn Dataset<ClassificationItem>>;

/// The labelled splits at evaluation size, the two-view pre-training set, the class names.
pub struct Co2Sources {
    /// Training images as the kNN memory and the linear evaluation see them (no augmentation).
    pub train: Items,
    pub valid: Items,
    pub views: Arc<dyn Dataset<ViewPair>>,
    pub classes: Vec<String>,
    /// The epoch the views are drawn for (shared with the loader).
    pub epoch: Arc<AtomicUsize>,
}

impl Co2Experiment {
    /// Reads the folders (a missing or malformed one is named) or sets up the world.
    pub fn sources(&self) -> Result<Co2Sources> {
        let seed = self.train.seed;
        let epoch = Arc::new(AtomicUsize::new(0));
        let views = |base: Items, pipeline: &Pipeline| -> Result<Arc<dyn Dataset<ViewPair>>> {
            Ok(Arc::new(
                TwoViews::new(base, pipeline.clone(), seed, epoch.clone())
                    .map_err(|e| anyhow::anyhow!("data.augmentation: {e}"))?,
            ))
        };
        let augmentation = self
            .data
            .augmentation()
            .ok_or_else(|| anyhow::anyhow!("data.augmentation is missing"))?;
        let (train, valid, pairs, classes): (Items, Items, _, Vec<String>) = match &self.data {
            DataConfig::Shapeworld {
                train_size,
                valid_size,
                world,
                ..
            } => {
                let split = |split, len| -> Items {
                    Arc::new(ShapeWorldClassification {
                        world: world.clone(),
                        split,
                        len,
                    })
                };
                let train = split(Split::Train, *train_size);
                (
                    train.clone(),
                    split(Split::Val, *valid_size),
                    views(train, augmentation)?,
                    world.class_names().iter().map(|s| s.to_string()).collect(),
                )
            }
            DataConfig::ImageFolder {
                root, image_size, ..
            } => {
                let train = ImageFolder::scan(root, "train", None)?;
                let valid = ImageFolder::scan(root, "val", Some(&train.classes))?;
                let classes = train.classes.clone();
                let train: Items = Arc::new(train);
                let eval = |items: Items| -> Result<Items> {
                    Ok(Arc::new(
                        Augmented::new(items, Pipeline::imagenet_eval(*image_size), seed)
                            .map_err(|e| anyhow::anyhow!("data.image_size: {e}"))?,
                    ))
                };
                (
                    eval(train.clone())?,
                    eval(Arc::new(valid))?,
                    views(train, augmentation)?,
                    classes,
                )
            }
        };
        Ok(Co2Sources {
            train,
            valid,
            views: pairs,
            classes,
            epoch,
        })
    }
}

/// The two views of a batch, each `[B, 3, H, W]`, normalised.
pub struct PairBatch<B: Backend> {
    pub query: Tensor<B, 4>,
    pub key: Tensor<B, 4>,
}

#[derive(Clone)]
pub struct PairBatcher {
    pub images: ClassificationBatcher,
}

impl<B: Backend> Batcher<B, ViewPair, PairBatch<B>> for PairBatcher {
    fn batch(&self, items: Vec<ViewPair>, device: &B::Device) -> PairBatch<B> {
        let (queries, keys): (Vec<_>, Vec<_>) = items.into_iter().map(|p| (p.query, p.key)).unzip();
        let query: datasets::ClassificationBatch<B> = self.images.batch(queries, device);
        let key: datasets::ClassificationBatch<B> = self.images.batch(keys, device);
        PairBatch {
            query: query.images,
            key: key.images,
        }
    }
}
