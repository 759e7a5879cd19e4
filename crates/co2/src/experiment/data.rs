//! The CO2 experiment's data: labelled images (ShapeWorld or class folders) whose labels only the
//! kNN monitor and the linear evaluation read, and two augmented views of each for pre-training.

use std::sync::{Arc, atomic::AtomicUsize};

use anyhow::{Result, bail};
use burn::{
    data::{
        dataloader::batcher::Batcher,
        dataset::{Dataset, transform::SelectionDataset},
    },
    tensor::{Tensor, backend::Backend},
};
use datasets::{
    Augmented, ClassificationBatcher, ClassificationItem, ImageFolder, Pipeline,
    ShapeWorldClassification, Split, TwoViews, ViewPair, balanced_subset,
    formats::imagenet::{ClassIndex, SemiSupervisedSubset},
};

use classification::DataConfig;

use super::config::{Co2Experiment, LabelSubset};

pub type Items = Arc<dyn Dataset<ClassificationItem>>;

/// The labelled splits at evaluation size, the two-view pre-training set, the class names.
#[derive(Clone)]
pub struct Co2Sources {
    /// Training images as the kNN memory and the linear evaluation see them (no augmentation).
    pub train: Items,
    pub valid: Items,
    pub views: Arc<dyn Dataset<ViewPair>>,
    /// The labelled training images at their own size (what a supervised stage crops), and
    /// their classes.
    pub raw_train: Items,
    pub train_labels: Vec<usize>,
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
        let (train, valid, pairs, classes, raw_train, train_labels): (
            Items,
            Items,
            _,
            Vec<String>,
            Items,
            Vec<usize>,
        ) = match &self.data {
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
                let labels = (0..*train_size as u64)
                    .map(|i| world.classification_scene(Split::Train, i).1)
                    .collect();
                (
                    train.clone(),
                    split(Split::Val, *valid_size),
                    views(train.clone(), augmentation)?,
                    world.class_names().iter().map(|s| s.to_string()).collect(),
                    train,
                    labels,
                )
            }
            DataConfig::ImageFolder {
                root, image_size, ..
            } => {
                let train = ImageFolder::scan(root, "train", None)?;
                let valid = ImageFolder::scan(root, "val", Some(&train.classes))?;
                let classes = train.classes.clone();
                let labels = train.labels();
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
                    views(train.clone(), augmentation)?,
                    classes,
                    train,
                    labels,
                )
            }
        };
        Ok(Co2Sources {
            train,
            valid,
            views: pairs,
            raw_train,
            train_labels,
            classes,
            epoch,
        })
    }

    /// The training images of a supervised stage (linear evaluation, fine-tuning): `subset` of the
    /// labelled split (all of it when none), with `main_lincls.py`'s RandomResizedCrop + flip when
    /// `augment`, else at evaluation size; and the epoch counter the crops read (share it with the
    /// loader).
    pub fn supervised_train(
        &self,
        sources: &Co2Sources,
        subset: Option<&LabelSubset>,
        augment: bool,
    ) -> Result<(Items, Arc<AtomicUsize>)> {
        let seed = self.train.seed;
        let chosen: Items = match subset {
            None => sources.raw_train.clone(),
            Some(LabelSubset::Fraction(fraction)) => Arc::new(SelectionDataset::<
                Items,
                ClassificationItem,
            >::from_indices_checked(
                sources.raw_train.clone(),
                balanced_subset(&sources.train_labels, *fraction, seed ^ 0x7365_6d69),
            )),
            Some(LabelSubset::File(list)) => {
                let DataConfig::ImageFolder { root, .. } = &self.data else {
                    bail!("semi.subset.file needs data.source = \"image_folder\"");
                };
                let classes = ClassIndex::from_wnids(sources.classes.clone());
                Arc::new(SemiSupervisedSubset::read(list, root, &classes)?)
            }
        };
        let epoch = Arc::new(AtomicUsize::new(0));
        let size = self.data.image_size();
        let pipeline = match (augment, &self.data) {
            (true, _) => Pipeline::imagenet_train(size),
            (false, DataConfig::ImageFolder { .. }) => Pipeline::imagenet_eval(size),
            (false, DataConfig::Shapeworld { .. }) => return Ok((chosen, epoch)),
        };
        let items = Augmented::new(chosen, pipeline, seed)
            .map_err(|e| anyhow::anyhow!("data.image_size: {e}"))?
            .with_epoch(epoch.clone());
        Ok((Arc::new(items), epoch))
    }
}

/// The two views of a batch, each `[B, 3, H, W]`, normalised.
pub struct PairBatch<B: Backend> {
    pub query: Tensor<B, 4>,
    pub key: Tensor<B, 4>,
    /// The order the key encoder sees the key batch in (`KeyBn::Split`): the batcher leaves it
    /// in order; the training strategy, which knows the epoch and the step, shuffles it.
    pub key_order: Vec<usize>,
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
        let key_order = (0..query.images.dims()[0]).collect();
        PairBatch {
            query: query.images,
            key: key.images,
            key_order,
        }
    }
}
