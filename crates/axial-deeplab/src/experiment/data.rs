//! The panoptic experiment's data: ShapeWorld scenes or COCO/Cityscapes panoptic files as items
//! (image + canonical panoptic map), their label space, and the batcher that builds the targets of
//! §4.2 on the loader's threads.

use std::sync::{Arc, atomic::AtomicUsize};

use anyhow::Result;
use burn::{
    data::{dataloader::batcher::Batcher, dataset::Dataset},
    tensor::{Int, Tensor, TensorData, backend::AutodiffBackend, backend::Backend},
};
use datasets::{
    EpochLoader, ShapeWorld, Split,
    formats::coco::CocoPanoptic,
    panoptic::{Geometry, LabelledImage},
};

use crate::{
    PanopticTargetBatch,
    targets::{LabelSpace, panoptic_targets},
};

use super::config::{FileFormat, PanopticConfig, PanopticData};

/// Divisor, void label, classes and thing classes of the data.
#[derive(Clone, Debug)]
pub struct Labels {
    pub divisor: u32,
    pub void: u32,
    pub classes: usize,
    pub things: Vec<u32>,
    pub names: Vec<String>,
}

type ItemSet = Arc<dyn Dataset<PanopticItem>>;

/// The data of a run: its label space, the two splits, the epoch the train augmentation reads.
pub struct Sources {
    pub labels: Labels,
    pub train: ItemSet,
    pub valid: ItemSet,
    pub epoch: Arc<AtomicUsize>,
}

impl PanopticData {
    /// Reads the annotations (files) or sets up the world; a missing or malformed file is named.
    pub fn sources(&self, seed: u64) -> Result<Sources> {
        let epoch = Arc::new(AtomicUsize::new(0));
        match self {
            PanopticData::Shapeworld {
                train_size,
                valid_size,
                world,
            } => {
                let stuff = ShapeWorld::STUFF_CLASSES as u32;
                let names: Vec<String> = world
                    .semantic_classes()
                    .iter()
                    .map(|s| s.to_string())
                    .collect();
                let set = |split, len| -> ItemSet {
                    Arc::new(ShapeWorldPanoptic {
                        world: world.clone(),
                        split,
                        len,
                    })
                };
                Ok(Sources {
                    labels: Labels {
                        divisor: datasets::shapeworld::PanopticSample::LABEL_DIVISOR,
                        void: 255,
                        classes: names.len(),
                        things: (stuff..names.len() as u32).collect(),
                        names,
                    },
                    train: set(Split::Train, *train_size),
                    valid: set(Split::Val, *valid_size),
                    epoch,
                })
            }
            PanopticData::Files {
                format,
                root,
                train_split,
                valid_split,
                augmentation,
                eval_size,
                ..
            } => {
                let read = |split: &str| match format {
                    FileFormat::Coco => CocoPanoptic::coco(root, split),
                    FileFormat::Cityscapes => CocoPanoptic::cityscapes(root, split),
                };
                let train = Arc::new(read(train_split)?);
                let valid = Arc::new(read(valid_split)?);
                let mapping = &train.mapping;
                let classes = mapping
                    .train_id
                    .values()
                    .copied()
                    .max()
                    .map_or(0, |m| m as usize + 1)
                    .max(if *format == FileFormat::Coco { 1 } else { 0 });
                let mut names: Vec<String> = (0..classes).map(|c| format!("class {c}")).collect();
                if *format == FileFormat::Coco {
                    names[0] = "void".into();
                }
                for category in &train.categories {
                    if let Some(&t) = mapping.train_id.get(&category.id)
                        && (t as usize) < classes
                    {
                        names[t as usize] = category.name.clone();
                    }
                }
                let labels = Labels {
                    divisor: mapping.divisor,
                    void: mapping.ignore_label,
                    classes,
                    things: mapping.thing_train_ids.iter().copied().collect(),
                    names,
                };
                let void_id = mapping.ignore_label * mapping.divisor;
                Ok(Sources {
                    train: Arc::new(PanopticFiles {
                        reader: train,
                        geometry: Geometry::Train {
                            augmentation: augmentation.clone(),
                            seed,
                            epoch: epoch.clone(),
                        },
                        void_id,
                    }),
                    valid: Arc::new(PanopticFiles {
                        reader: valid,
                        geometry: Geometry::Eval { size: *eval_size },
                        void_id,
                    }),
                    labels,
                    epoch,
                })
            }
        }
    }
}

/// One image and its canonical panoptic map (`semantic · divisor + instance`).
#[derive(Clone, Debug)]
pub struct PanopticItem {
    /// `[H, W, 3]` in `[0, 1]`.
    pub pixels: Vec<f32>,
    pub panoptic: Vec<u32>,
    pub size: [usize; 2],
}

struct ShapeWorldPanoptic {
    world: ShapeWorld,
    split: Split,
    len: usize,
}

impl Dataset<PanopticItem> for ShapeWorldPanoptic {
    fn get(&self, index: usize) -> Option<PanopticItem> {
        (index < self.len).then(|| {
            let sample = self.world.panoptic_scene(self.split, index as u64);
            let n = sample.scene.size;
            PanopticItem {
                pixels: sample.scene.render(),
                panoptic: sample.panoptic(),
                size: [n, n],
            }
        })
    }
    fn len(&self) -> usize {
        self.len
    }
}

struct PanopticFiles {
    reader: Arc<CocoPanoptic>,
    geometry: Geometry,
    /// `void · divisor`, the padding label.
    void_id: u32,
}

impl PanopticFiles {
    fn load(&self, index: usize) -> Result<PanopticItem, datasets::formats::FormatError> {
        let image = self.reader.load_image(index)?;
        let label = self.reader.load_label(index)?;
        if image.dimensions() != (label.width, label.height) {
            return Err(datasets::formats::FormatError::Malformed {
                path: self
                    .reader
                    .png_dir
                    .join(&self.reader.annotations[index].file_name),
                line: None,
                expected: format!("the size of its image, {:?}", image.dimensions()),
                found: format!("{}×{}", label.width, label.height),
            });
        }
        let item = LabelledImage {
            image,
            panoptic: label.panoptic.iter().map(|&id| id as u32).collect(),
        };
        let out = self.geometry.apply(&item, self.void_id, index);
        let (w, h) = out.image.dimensions();
        Ok(PanopticItem {
            pixels: out
                .image
                .as_raw()
                .iter()
                .map(|&v| v as f32 / 255.0)
                .collect(),
            panoptic: out.panoptic,
            size: [h as usize, w as usize],
        })
    }
}

impl Dataset<PanopticItem> for PanopticFiles {
    fn get(&self, index: usize) -> Option<PanopticItem> {
        if index >= self.reader.len() {
            return None;
        }
        // A corrupt file is an error naming it (or a skipped item), never a short epoch.
        self.load(index).map_or_else(datasets::load_failed, Some)
    }
    fn len(&self) -> usize {
        self.reader.len()
    }
}

/// Images scaled to `x/127.5 − 1` (DeepLab2's input scaling) and the targets of §4.2.
#[derive(Clone)]
pub struct PanopticBatcher {
    pub space: LabelSpace,
}

pub struct PanopticBatch<B: Backend> {
    pub images: Tensor<B, 4>,
    pub targets: PanopticTargetBatch<B>,
    pub items: Vec<PanopticItem>,
}

impl<B: Backend> Batcher<B, PanopticItem, PanopticBatch<B>> for PanopticBatcher {
    fn batch(&self, items: Vec<PanopticItem>, device: &B::Device) -> PanopticBatch<B> {
        let [h, w] = items.first().map(|i| i.size).unwrap_or([0, 0]);
        let (n, p) = (items.len(), h * w);
        let mut images = vec![0f32; n * 3 * p];
        let mut semantic = Vec::with_capacity(n * p);
        let (mut semantic_weights, mut center, mut center_weights, mut offset_weights) = (
            Vec::with_capacity(n * p),
            Vec::with_capacity(n * p),
            Vec::with_capacity(n * p),
            Vec::with_capacity(n * p),
        );
        let mut offsets = vec![0f32; n * 2 * p];
        for (i, item) in items.iter().enumerate() {
            assert_eq!(
                item.size,
                [h, w],
                "every image of a batch must have the same size"
            );
            for (q, rgb) in item.pixels.chunks_exact(3).enumerate() {
                for c in 0..3 {
                    images[(i * 3 + c) * p + q] = rgb[c] * 2.0 - 1.0;
                }
            }
            let t = panoptic_targets(&item.panoptic, [h, w], &self.space, |_| false);
            // Void pixels weigh 0; any valid class stands in for their label.
            semantic.extend(t.semantic.iter().map(|&s| {
                if s == self.space.ignore_label {
                    0
                } else {
                    s as i64
                }
            }));
            semantic_weights.extend(t.semantic_weights);
            center.extend(t.center);
            center_weights.extend(t.center_weights);
            offset_weights.extend(t.offset_weights);
            for (q, [dy, dx]) in t.offsets.into_iter().enumerate() {
                offsets[(i * 2) * p + q] = dy;
                offsets[(i * 2 + 1) * p + q] = dx;
            }
        }
        let map = |v: Vec<f32>| Tensor::<B, 3>::from_data(TensorData::new(v, [n, h, w]), device);
        PanopticBatch {
            images: Tensor::from_data(TensorData::new(images, [n, 3, h, w]), device),
            targets: PanopticTargetBatch {
                semantic: Tensor::<B, 3, Int>::from_data(
                    TensorData::new(semantic, [n, h, w]),
                    device,
                ),
                semantic_weights: map(semantic_weights),
                center: map(center),
                center_weights: map(center_weights),
                offsets: Tensor::from_data(TensorData::new(offsets, [n, 2, h, w]), device),
                offset_weights: map(offset_weights),
            },
            items,
        }
    }
}

pub type Loader<B> = EpochLoader<B, PanopticItem, PanopticBatch<B>>;

pub fn loaders<B: AutodiffBackend>(
    config: &PanopticConfig,
    sources: &Sources,
    device: &B::Device,
    start_epoch: usize,
) -> (Loader<B>, Loader<B::InnerBackend>) {
    let batcher = PanopticBatcher {
        space: config.label_space(&sources.labels),
    };
    let t = &config.train;
    // Items are a function of (seed, epoch, index): a resumed run continues the same sequence.
    let train = EpochLoader::new(sources.train.clone(), batcher, t.batch_size, device.clone())
        .shuffle(t.seed)
        .workers(t.num_workers)
        .sharing_epoch(sources.epoch.clone())
        .starting_at_epoch(start_epoch)
        .skip_failures(config.skip_corrupt());
    let valid = valid_loader::<B::InnerBackend>(config, sources, device);
    (train, valid)
}

pub fn valid_loader<B: Backend>(
    config: &PanopticConfig,
    sources: &Sources,
    device: &B::Device,
) -> EpochLoader<B, PanopticItem, PanopticBatch<B>> {
    let valid_set = sources.valid.clone();
    let batcher = PanopticBatcher {
        space: config.label_space(&sources.labels),
    };
    EpochLoader::new(valid_set, batcher, config.train.batch_size, device.clone())
        .workers(config.train.num_workers)
        .skip_failures(config.skip_corrupt())
}
