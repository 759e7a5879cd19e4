//! The experiment's images. ShapeWorld's occlusion task (`datasets::shapeworld::occlusion`): L0
//! training and validation sets for the Learner, occluded test images with their masks, held-out
//! occluded images for CN-WACV's τ, and background images drawn from the world's own generator
//! (scenes with their objects removed, a white and a noise image; the released 15 photographs are
//! not embedded). Occluded PASCAL3D+ and occluded MS-COCO vehicles (`compnet.md` §7, the readers
//! of `datasets::formats`): every class's L0 list, a seeded fraction held out for model selection
//! and τ; the 6 vehicle classes at ZERO/ONE/FIVE/NINE (PASCAL3D+: per occluder type, with the
//! occluder and object masks; COCO: no masks, so no localisation ROC); background images from a
//! folder (the released `background_images/`). Test images are described, then loaded a batch at
//! a time.

use std::sync::Arc;

use anyhow::{Context, Result};
use burn::data::dataset::Dataset;
use datasets::{
    ClassificationItem, ShapeWorld, ShapeWorldClassification,
    formats::{
        coco_occluded::OccludedCoco,
        occluded::{
            COMPNET_CLASSES, COMPNET_TEST_CLASSES, OccludedPascal3d, OccluderType,
            OcclusionLevel as FileLevel,
        },
    },
    shapeworld::{OcclusionLevel, Split},
};
use rand::{RngExt, SeedableRng, rngs::Xoshiro256PlusPlus};

use super::config::{CompNetData, PascalOccluder};
use crate::official::{BackgroundImages, background_images_from_folder};

/// One evaluation image with its annotations.
#[derive(Clone, Debug)]
pub struct OccludedImage {
    /// RGB in `[0, 1]`, row-major `[H, W, 3]`.
    pub pixels: Vec<f32>,
    /// `[H, W]`
    pub size: [usize; 2],
    pub label: usize,
    pub level: OcclusionLevel,
    /// The occluder's kind (`None` at L0 and where the data does not say).
    pub kind: Option<String>,
    /// Occluder ∧ object per pixel (the localisation's ground truth, §4.3); `None` without masks.
    pub occluded_object: Option<Vec<bool>>,
}

/// A labelled training image of a real dataset, its short side resized to 224.
#[derive(Clone)]
pub enum Source {
    Pascal(Arc<OccludedPascal3d>),
    Coco(Arc<OccludedCoco>),
}

impl Source {
    fn len(&self) -> usize {
        match self {
            Source::Pascal(s) => s.len(),
            Source::Coco(s) => s.len(),
        }
    }

    fn label(&self, index: usize) -> usize {
        match self {
            Source::Pascal(s) => s.items[index].label,
            Source::Coco(s) => s.items[index].label,
        }
    }

    fn load(&self, index: usize) -> Result<image::RgbImage> {
        Ok(match self {
            Source::Pascal(s) => s.load(index)?,
            Source::Coco(s) => s.load(index)?,
        })
    }
}

fn pixels_of(image: &image::RgbImage) -> (Vec<f32>, [usize; 2]) {
    let (w, h) = image.dimensions();
    (
        image.as_raw().iter().map(|&b| b as f32 / 255.0).collect(),
        [h as usize, w as usize],
    )
}

/// Items `indices` of a real training source.
pub struct FileImages {
    source: Source,
    indices: Vec<usize>,
}

impl Dataset<ClassificationItem> for FileImages {
    fn get(&self, index: usize) -> Option<ClassificationItem> {
        let &i = self.indices.get(index)?;
        match self.source.load(i) {
            Ok(image) => {
                let (pixels, size) = pixels_of(&image);
                Some(ClassificationItem {
                    pixels,
                    size,
                    label: self.source.label(i),
                })
            }
            Err(e) => datasets::load_failed(format!("{e:#}")),
        }
    }

    fn len(&self) -> usize {
        self.indices.len()
    }
}

/// The released split (§4.1): each training image goes to validation with probability
/// `fraction`, from a fixed-seed generator (the same split for every run).
fn split(n: usize, fraction: f64) -> (Vec<usize>, Vec<usize>) {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(0x5EED);
    (0..n).partition(|_| rng.random::<f64>() >= fraction)
}

fn training_source(data: &CompNetData) -> Result<Option<(Source, f64)>> {
    let classes: Vec<&str> = COMPNET_CLASSES.to_vec();
    Ok(match data {
        CompNetData::Shapeworld { .. } => None,
        CompNetData::Pascal3dOcc {
            root,
            valid_fraction,
            ..
        } => Some((
            Source::Pascal(Arc::new(OccludedPascal3d::train(root, &classes)?)),
            *valid_fraction,
        )),
        CompNetData::CocoOcc {
            root,
            valid_fraction,
            ..
        } => Some((
            Source::Coco(Arc::new(OccludedCoco::train(root, &classes)?)),
            *valid_fraction,
        )),
    })
}

/// The L0 training and validation sets.
pub type L0Sets = (
    Arc<dyn Dataset<ClassificationItem>>,
    Arc<dyn Dataset<ClassificationItem>>,
);

/// The L0 training and validation sets; real data's lists are read (and checked) here.
pub fn l0_sets(data: &CompNetData) -> Result<L0Sets> {
    if let CompNetData::Shapeworld {
        world,
        train_size,
        valid_size,
        ..
    } = data
    {
        return Ok((
            Arc::new(ShapeWorldClassification {
                world: world.clone(),
                split: Split::Train,
                len: *train_size,
            }),
            Arc::new(ShapeWorldClassification {
                world: world.clone(),
                split: Split::Val,
                len: *valid_size,
            }),
        ));
    }
    let (source, fraction) = training_source(data)?.expect("a real dataset");
    if source.len() == 0 {
        anyhow::bail!(
            "{}: no training image listed (expected {{cat}}_imagenet_train.txt or {{cat}}_ZERO_train.txt lists)",
            data.root()
                .map_or(String::new(), |r| r.display().to_string())
        );
    }
    let (train, valid) = split(source.len(), fraction);
    Ok((
        Arc::new(FileImages {
            source: source.clone(),
            indices: train,
        }),
        Arc::new(FileImages {
            source,
            indices: valid,
        }),
    ))
}

/// An evaluation image before it is loaded.
#[derive(Clone)]
pub enum TestItem {
    Shapeworld {
        world: Arc<ShapeWorld>,
        split: Split,
        index: u64,
        level: OcclusionLevel,
    },
    Pascal {
        set: Arc<OccludedPascal3d>,
        index: usize,
        level: OcclusionLevel,
        kind: Option<PascalOccluder>,
    },
    /// A real training source's held-out L0 image, or an occluded COCO crop.
    File {
        source: Source,
        index: usize,
        level: OcclusionLevel,
    },
}

impl TestItem {
    pub fn level(&self) -> OcclusionLevel {
        match self {
            TestItem::Shapeworld { level, .. }
            | TestItem::Pascal { level, .. }
            | TestItem::File { level, .. } => *level,
        }
    }

    pub fn load(&self) -> Result<OccludedImage> {
        match self {
            TestItem::Shapeworld {
                world,
                split,
                index,
                level,
            } => {
                let s = world.occlusion_scene(*split, *index, *level);
                Ok(OccludedImage {
                    pixels: s.scene.render(),
                    size: [s.scene.size; 2],
                    label: s.label,
                    level: *level,
                    kind: s.scene.occluders.first().map(|o| format!("{:?}", o.kind())),
                    occluded_object: Some(
                        s.object_mask
                            .iter()
                            .zip(&s.occluder_mask)
                            .map(|(o, c)| *o && *c)
                            .collect(),
                    ),
                })
            }
            TestItem::Pascal {
                set,
                index,
                level,
                kind,
            } => {
                let (pixels, size) = pixels_of(&set.load(*index)?);
                // §4.3: occluder mask ∧ object mask, both exactly 255 after resizing.
                let truth = match (
                    set.load_occluder_mask(*index)?,
                    set.load_object_mask(*index)?,
                ) {
                    (Some(occluder), Some(object)) => Some(
                        occluder
                            .as_raw()
                            .iter()
                            .zip(object.as_raw())
                            .map(|(a, b)| *a == 255 && *b == 255)
                            .collect(),
                    ),
                    _ => None,
                };
                Ok(OccludedImage {
                    pixels,
                    size,
                    label: set.items[*index].label,
                    level: *level,
                    kind: kind.map(|k| k.name().to_string()),
                    occluded_object: truth,
                })
            }
            TestItem::File {
                source,
                index,
                level,
            } => {
                let (pixels, size) = pixels_of(&source.load(*index)?);
                Ok(OccludedImage {
                    pixels,
                    size,
                    label: source.label(*index),
                    level: *level,
                    kind: None,
                    occluded_object: None,
                })
            }
        }
    }
}

fn file_level(level: OcclusionLevel) -> FileLevel {
    match level {
        OcclusionLevel::L0 => FileLevel::Zero,
        OcclusionLevel::L1 => FileLevel::One,
        OcclusionLevel::L2 => FileLevel::Five,
        OcclusionLevel::L3 => FileLevel::Nine,
    }
}

/// The test images of `level` (ShapeWorld: the same objects at every level).
pub fn test_items(data: &CompNetData, level: OcclusionLevel) -> Result<Vec<TestItem>> {
    let vehicles: Vec<&str> = COMPNET_TEST_CLASSES.to_vec();
    Ok(match data {
        CompNetData::Shapeworld {
            world, test_size, ..
        } => {
            let world = Arc::new(world.clone());
            (0..*test_size as u64)
                .map(|index| TestItem::Shapeworld {
                    world: world.clone(),
                    split: Split::Test,
                    index,
                    level,
                })
                .collect()
        }
        CompNetData::Pascal3dOcc {
            root, occluders, ..
        } => {
            let kinds: Vec<Option<PascalOccluder>> = if level == OcclusionLevel::L0 {
                vec![None]
            } else {
                occluders.iter().copied().map(Some).collect()
            };
            let mut items = Vec::new();
            for kind in kinds {
                let set = Arc::new(OccludedPascal3d::test(
                    root,
                    &vehicles,
                    file_level(level),
                    kind.map_or(OccluderType::Object, PascalOccluder::reader_type),
                )?);
                items.extend((0..set.len()).map(|index| TestItem::Pascal {
                    set: set.clone(),
                    index,
                    level,
                    kind,
                }));
            }
            items
        }
        CompNetData::CocoOcc { root, .. } => {
            let set = Arc::new(OccludedCoco::test(root, &vehicles, file_level(level))?);
            let source = Source::Coco(set);
            (0..source.len())
                .map(|index| TestItem::File {
                    source: source.clone(),
                    index,
                    level,
                })
                .collect()
        }
    })
}

/// The held-out images CN-WACV's τ is chosen on: ShapeWorld's validation split at every level
/// (after the validation set's L0 images); real data's held-out L0 training images (no occluded
/// images are held out there, so τ is chosen on unoccluded ones).
pub fn heldout_items(data: &CompNetData) -> Result<Vec<TestItem>> {
    if let CompNetData::Shapeworld {
        world,
        valid_size,
        heldout_size,
        ..
    } = data
    {
        let world = Arc::new(world.clone());
        return Ok(OcclusionLevel::ALL
            .iter()
            .flat_map(|&level| {
                let world = world.clone();
                (0..*heldout_size as u64).map(move |i| TestItem::Shapeworld {
                    world: world.clone(),
                    split: Split::Val,
                    index: *valid_size as u64 + i,
                    level,
                })
            })
            .collect());
    }
    let (source, fraction) = training_source(data)?.expect("a real dataset");
    let (_, valid) = split(source.len(), fraction);
    Ok(valid
        .into_iter()
        .map(|index| TestItem::File {
            source: source.clone(),
            index,
            level: OcclusionLevel::L0,
        })
        .collect())
}

/// The background images the occluder models are built from.
pub fn backgrounds(data: &CompNetData) -> Result<BackgroundImages> {
    match data {
        CompNetData::Shapeworld {
            world, backgrounds, ..
        } => {
            let size = world.image_size;
            let general = (0..*backgrounds as u64)
                .map(|i| {
                    // Indices far beyond any training set: scenes no image of the task uses.
                    let (mut scene, _) = world.classification_scene(Split::Train, u64::MAX - i);
                    scene.objects.clear();
                    (scene.render(), [size, size])
                })
                .collect();
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(world.seed ^ 0xB6_0CC1);
            let noise = (0..size * size * 3).map(|_| rng.random::<f32>()).collect();
            Ok(BackgroundImages {
                white: vec![(vec![1.0; size * size * 3], [size, size])],
                noise: vec![(noise, [size, size])],
                general,
            })
        }
        CompNetData::Pascal3dOcc { backgrounds, .. } | CompNetData::CocoOcc { backgrounds, .. } => {
            background_images_from_folder(backgrounds)
                .with_context(|| "data.backgrounds (the released background_images/)".to_string())
        }
    }
}

/// The feature-grid ground truth of a pixel mask `[ih, iw]`: a cell is occluded when any of its
/// pixels is (the released bilinear resize thresholded at `> 0`).
pub fn mask_at_features(mask: &[bool], [ih, iw]: [usize; 2], [h, w]: [usize; 2]) -> Vec<bool> {
    let mut cells = vec![false; h * w];
    for (p, &m) in mask.iter().enumerate() {
        if m {
            let (y, x) = (p / iw, p % iw);
            let (cy, cx) = ((y * h / ih).min(h - 1), (x * w / iw).min(w - 1));
            cells[cy * w + cx] = true;
        }
    }
    cells
}
