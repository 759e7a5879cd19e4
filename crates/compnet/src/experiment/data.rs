//! The experiment's images: ShapeWorld's occlusion task (`datasets::shapeworld::occlusion`) — L0
//! training and validation sets for the Learner, occluded images with their masks for the
//! evaluation — and the background images the occluder models are built from (§2.5): scenes with
//! their objects removed (`general`), a white image and a noise image, drawn from the world's
//! own generator (the released code's 15 photographs are not embedded).

use std::sync::Arc;

use datasets::{
    ShapeWorld, ShapeWorldClassification,
    shapeworld::{OccluderKind, OcclusionLevel, Split},
};
use rand::{RngExt, SeedableRng, rngs::Xoshiro256PlusPlus};

use super::config::CompNetData;

/// One evaluation image with its annotations.
#[derive(Clone, Debug)]
pub struct OccludedImage {
    /// RGB in `[0, 1]`, row-major `[H, W, 3]`.
    pub pixels: Vec<f32>,
    pub size: usize,
    pub label: usize,
    pub level: OcclusionLevel,
    /// `None` at L0.
    pub kind: Option<OccluderKind>,
    /// Occluder ∧ object, per pixel (the localisation's ground truth, §4.3).
    pub occluded_object: Vec<bool>,
}

/// The L0 training and validation sets.
pub fn l0_sets(
    data: &CompNetData,
) -> (Arc<ShapeWorldClassification>, Arc<ShapeWorldClassification>) {
    match data {
        CompNetData::Shapeworld {
            world,
            train_size,
            valid_size,
            ..
        } => (
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
        ),
    }
}

fn occluded(world: &ShapeWorld, split: Split, index: u64, level: OcclusionLevel) -> OccludedImage {
    let s = world.occlusion_scene(split, index, level);
    OccludedImage {
        pixels: s.scene.render(),
        size: s.scene.size,
        label: s.label,
        level,
        kind: s.scene.occluders.first().map(|o| o.kind()),
        occluded_object: s
            .object_mask
            .iter()
            .zip(&s.occluder_mask)
            .map(|(o, c)| *o && *c)
            .collect(),
    }
}

/// The test images of `level` (the same objects at every level).
pub fn test_images(data: &CompNetData, level: OcclusionLevel) -> Vec<OccludedImage> {
    match data {
        CompNetData::Shapeworld {
            world, test_size, ..
        } => (0..*test_size as u64)
            .map(|i| occluded(world, Split::Test, i, level))
            .collect(),
    }
}

/// The held-out images of `level` CN-WACV's τ is chosen on (validation split, after the
/// validation set's L0 images).
pub fn heldout_images(data: &CompNetData, level: OcclusionLevel) -> Vec<OccludedImage> {
    match data {
        CompNetData::Shapeworld {
            world,
            valid_size,
            heldout_size,
            ..
        } => (0..*heldout_size as u64)
            .map(|i| occluded(world, Split::Val, *valid_size as u64 + i, level))
            .collect(),
    }
}

/// Background images by type, RGB `[H, W, 3]` at the data's size.
#[derive(Clone, Debug)]
pub struct Backgrounds {
    pub white: Vec<Vec<f32>>,
    pub noise: Vec<Vec<f32>>,
    pub general: Vec<Vec<f32>>,
    pub size: usize,
}

pub fn backgrounds(data: &CompNetData) -> Backgrounds {
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
                    scene.render()
                })
                .collect();
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(world.seed ^ 0xB6_0CC1);
            let noise = vec![(0..size * size * 3).map(|_| rng.random::<f32>()).collect()];
            Backgrounds {
                white: vec![vec![1.0; size * size * 3]],
                noise,
                general,
                size,
            }
        }
    }
}

/// The feature-grid ground truth of a pixel mask: a cell is occluded when any of its pixels is
/// (the released bilinear resize thresholded at `> 0`).
pub fn mask_at_features(mask: &[bool], size: usize, [h, w]: [usize; 2]) -> Vec<bool> {
    let mut cells = vec![false; h * w];
    for (p, &m) in mask.iter().enumerate() {
        if m {
            let (y, x) = (p / size, p % size);
            let (cy, cx) = ((y * h / size).min(h - 1), (x * w / size).min(w - 1));
            cells[cy * w + cx] = true;
        }
    }
    cells
}
