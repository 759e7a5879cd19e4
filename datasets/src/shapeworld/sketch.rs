//! The sketch domain (SAKE, `sake.md` §1, §2 and §7): a hand-drawn-looking rendering of each class
//! beside the photo-like one, a class hierarchy with a semantic similarity matrix (the stand-in for
//! SAKE's WordNet `cid_mask`), a seen/unseen split for zero-shot retrieval, and a pretraining superset
//! of classes for the teacher (all of [`ShapeClass::ALL`], as ImageNet is a superset for SAKE).
//!
//! A sketch is the contour of a class's shape, traced through a smooth random warp (the hand's
//! wobble), with stroke width, pressure, gaps and an occasional second pass varying per drawing,
//! in grey ink on white.

use rand::{RngExt, rngs::Xoshiro256PlusPlus};

use super::{Scene, ShapeClass, ShapeInstance, ShapeWorld, Split, value_noise};

/// The class tree: root → group → class. Its path similarity plays the part of WordNet's in SAKE.
pub struct Hierarchy;

impl Hierarchy {
    pub const GROUPS: [&'static str; 3] = ["round", "polygon", "symbol"];

    /// The group of `class`, an index into [`Self::GROUPS`].
    pub fn group(class: ShapeClass) -> usize {
        use ShapeClass::*;
        match class {
            Disk | Ring | Ellipse | Crescent | Semicircle => 0,
            Square | Triangle | Diamond | Hexagon | Pentagon | Octagon => 1,
            Star | Cross | Heart | Arrow | Chevron => 2,
        }
    }

    /// Path similarity `1 / (1 + path length)` in the tree: 1 for the same class, 1/3 within a
    /// group, 1/5 across groups (WordNet's `path_similarity`, as SAKE's `cid_mask` uses).
    pub fn similarity(a: ShapeClass, b: ShapeClass) -> f32 {
        let path = if a == b {
            0
        } else if Self::group(a) == Self::group(b) {
            2
        } else {
            4
        };
        1.0 / (1.0 + path as f32)
    }

    /// Zero-shot classes, one per group, never seen in training.
    pub const UNSEEN: [ShapeClass; 3] =
        [ShapeClass::Crescent, ShapeClass::Hexagon, ShapeClass::Heart];

    /// The task classes that training sees.
    pub fn seen() -> Vec<ShapeClass> {
        ShapeClass::ALL[..ShapeClass::TASK_CLASSES]
            .iter()
            .copied()
            .filter(|c| !Self::UNSEEN.contains(c))
            .collect()
    }

    /// The teacher's classes: every class of the world, a superset of seen and unseen.
    pub fn teacher_classes() -> &'static [ShapeClass] {
        &ShapeClass::ALL
    }

    /// `[rows.len(), cols.len()]` similarities, e.g. seen classes × teacher classes (SAKE's `cid_mask`).
    pub fn similarity_matrix(rows: &[ShapeClass], cols: &[ShapeClass]) -> Vec<Vec<f32>> {
        rows.iter()
            .map(|&a| cols.iter().map(|&b| Self::similarity(a, b)).collect())
            .collect()
    }
}

/// A sketch: RGB `[H, W, 3]` in `[0, 1]`, grey ink on white.
#[derive(Clone, Debug)]
pub struct SketchSample {
    pub pixels: Vec<f32>,
    pub size: usize,
    pub class: ShapeClass,
    /// Index of `class` in the class list it was drawn from.
    pub label: usize,
}

const SKETCH_STREAM: u64 = 0x534B_4554;
const PHOTO_STREAM: u64 = 0x5048_4F54;

impl ShapeWorld {
    /// Sketch `index` of `split`, of a class drawn uniformly from `classes`.
    pub fn sketch(&self, split: Split, index: u64, classes: &[ShapeClass]) -> SketchSample {
        let mut rng = self.task_rng(split, index, SKETCH_STREAM);
        let label = rng.random_range(0..classes.len());
        let object = self.object(&mut rng, classes[label]);
        SketchSample {
            pixels: draw_sketch(&object, self.image_size, &mut rng),
            size: self.image_size,
            class: classes[label],
            label,
        }
    }

    /// Photo `index` of `split` (a classification scene) of a class drawn uniformly from `classes`.
    pub fn photo(&self, split: Split, index: u64, classes: &[ShapeClass]) -> (Scene, usize) {
        self.single_object_scene(&mut self.task_rng(split, index, PHOTO_STREAM), classes)
    }
}

/// One drawing of `object`'s contour: supersampled 2×2, ink where the (warped) shape's inside
/// changes within half a stroke width.
fn draw_sketch(object: &ShapeInstance, size: usize, rng: &mut Xoshiro256PlusPlus) -> Vec<f32> {
    let r = object.radius;
    let width = (size as f32 / 48.0).max(0.7) * rng.random_range(0.8..1.5);
    let passes = if rng.random_bool(0.4) { 2 } else { 1 };
    let strokes: Vec<Stroke> = (0..passes)
        .map(|pass| Stroke {
            wobble: r * rng.random_range(0.04..0.1),
            frequency: rng.random_range(2.0..4.0) / r,
            seeds: [rng.random(), rng.random(), rng.random()],
            gaps: rng.random_range(0.0..0.3),
            ink: rng.random_range(0.7..0.95) * if pass == 0 { 1.0 } else { 0.6 },
            half_width: 0.5 * width,
        })
        .collect();
    let mut pixels = Vec::with_capacity(size * size * 3);
    for row in 0..size {
        for col in 0..size {
            let mut ink = 0.0f32;
            for sub in 0..4 {
                let x = col as f32 + 0.25 + 0.5 * (sub % 2) as f32;
                let y = row as f32 + 0.25 + 0.5 * (sub / 2) as f32;
                let darkest = strokes
                    .iter()
                    .map(|s| s.ink_at(object, x, y))
                    .fold(0.0f32, f32::max);
                ink += darkest / 4.0;
            }
            let value = 1.0 - ink;
            pixels.extend_from_slice(&[value; 3]);
        }
    }
    pixels
}

struct Stroke {
    /// Displacement amplitude of the warp, in pixels.
    wobble: f32,
    /// Warp frequency, per pixel.
    frequency: f32,
    seeds: [u32; 3],
    /// Fraction of the contour left out.
    gaps: f32,
    ink: f32,
    half_width: f32,
}

impl Stroke {
    fn ink_at(&self, object: &ShapeInstance, x: f32, y: f32) -> f32 {
        let (fx, fy) = (x * self.frequency, y * self.frequency);
        let warp = |s: u32| (value_noise(fx, fy, s) - 0.5) * 2.0 * self.wobble;
        let (wx, wy) = (x + warp(self.seeds[0]), y + warp(self.seeds[1]));
        let inside = object.covers(wx, wy);
        let d = self.half_width;
        let on_contour = [(d, 0.0), (-d, 0.0), (0.0, d), (0.0, -d)]
            .iter()
            .any(|&(dx, dy)| object.covers(wx + dx, wy + dy) != inside);
        let lifted = value_noise(fx * 1.5, fy * 1.5, self.seeds[2]) < self.gaps;
        if on_contour && !lifted { self.ink } else { 0.0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hierarchy_splits_and_scores_classes() {
        let seen = Hierarchy::seen();
        assert_eq!(seen.len(), 9);
        assert!(Hierarchy::UNSEEN.iter().all(|c| !seen.contains(c)));
        assert!(Hierarchy::teacher_classes().len() > ShapeClass::TASK_CLASSES);
        let m = Hierarchy::similarity_matrix(&seen, Hierarchy::teacher_classes());
        for (i, row) in m.iter().enumerate() {
            assert_eq!(row[seen[i].index()], 1.0);
            assert_eq!(row.iter().filter(|&&s| s == 1.0).count(), 1);
            assert!(
                row.iter()
                    .all(|&s| [1.0, 1.0 / 3.0, 1.0 / 5.0].contains(&s))
            );
        }
        assert_eq!(
            Hierarchy::similarity(ShapeClass::Disk, ShapeClass::Ring),
            1.0 / 3.0
        );
        assert_eq!(
            Hierarchy::similarity(ShapeClass::Disk, ShapeClass::Star),
            1.0 / 5.0
        );
    }

    #[test]
    fn sketches_are_ink_on_white_along_the_contour() {
        let world = ShapeWorld {
            image_size: 48,
            ..ShapeWorld::default()
        };
        let classes = Hierarchy::seen();
        for index in 0..20 {
            let s = world.sketch(Split::Train, index, &classes);
            assert_eq!(s.class, classes[s.label]);
            let grey = s.pixels.chunks(3).map(|p| p[0]).collect::<Vec<_>>();
            assert!(s.pixels.chunks(3).all(|p| p[0] == p[1] && p[1] == p[2]));
            let inked = grey.iter().filter(|&&v| v < 0.9).count() as f32 / grey.len() as f32;
            // A contour, not a filled shape: some ink, mostly paper.
            assert!((0.01..0.35).contains(&inked), "image {index}: {inked}");
            assert_eq!(s.pixels, world.sketch(Split::Train, index, &classes).pixels);
        }
        let (_, label) = world.photo(Split::Train, 3, &Hierarchy::UNSEEN);
        assert!(label < 3);
    }
}
