//! The occlusion task (CompNet, `compnet.md` §4 and §7): the classification scene of an image,
//! with occluders in front of its object covering a controlled fraction of it.
//!
//! As in occluded PASCAL3D+, training images have no occluders (level L0) and each test image exists
//! at every level with the same object and background: `occlusion_scene(split, i, L0)` is
//! `classification_scene(split, i)`, and the occluders of levels L1–L3 come from a stream of their own.
//! The occluded fraction is measured on the pixel grid, `|object ∩ occluder| / |object|`, and each
//! occluder is grown by bisection until that fraction falls in the level's range.

use std::f32::consts::{PI, TAU};

use rand::{RngExt, rngs::Xoshiro256PlusPlus};
use serde::{Deserialize, Serialize};

use super::{Scene, ShapeClass, ShapeInstance, ShapeWorld, Split, Texture, TextureKind};

/// The occlusion levels of occluded PASCAL3D+ (`compnet.md` §1): fraction of the object hidden.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OcclusionLevel {
    L0,
    L1,
    L2,
    L3,
}

impl OcclusionLevel {
    pub const ALL: [OcclusionLevel; 4] = [Self::L0, Self::L1, Self::L2, Self::L3];

    /// The range of the occluded fraction of the object.
    pub fn range(self) -> [f32; 2] {
        match self {
            Self::L0 => [0.0, 0.0],
            Self::L1 => [0.2, 0.4],
            Self::L2 => [0.4, 0.6],
            Self::L3 => [0.6, 0.8],
        }
    }
}

/// The kinds of occluder of the CompNet benchmarks: textured patches (its `_texture`, `_noise`,
/// `_white` boxes), clutter, and other objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OccluderKind {
    Patch,
    Clutter,
    Object,
}

impl OccluderKind {
    pub const ALL: [OccluderKind; 3] = [Self::Patch, Self::Clutter, Self::Object];
}

#[derive(Clone, Debug)]
pub enum Occluder {
    /// A textured rotated rectangle with half-sides `half`, in pixels.
    Patch {
        center: [f32; 2],
        half: [f32; 2],
        rotation: f32,
        texture: Texture,
    },
    /// A cluster of textured disks `(center, radius)`, in pixels.
    Clutter {
        blobs: Vec<([f32; 2], f32)>,
        texture: Texture,
    },
    /// An object of another class.
    Object(ShapeInstance),
}

impl Occluder {
    pub fn kind(&self) -> OccluderKind {
        match self {
            Occluder::Patch { .. } => OccluderKind::Patch,
            Occluder::Clutter { .. } => OccluderKind::Clutter,
            Occluder::Object(_) => OccluderKind::Object,
        }
    }

    pub fn covers(&self, x: f32, y: f32) -> bool {
        match self {
            Occluder::Patch {
                center,
                half,
                rotation,
                ..
            } => {
                let (dx, dy) = (x - center[0], y - center[1]);
                let (s, c) = rotation.sin_cos();
                (dx * c + dy * s).abs() <= half[0] && (-dx * s + dy * c).abs() <= half[1]
            }
            Occluder::Clutter { blobs, .. } => blobs.iter().any(|&(c, r)| {
                let (dx, dy) = (x - c[0], y - c[1]);
                dx * dx + dy * dy <= r * r
            }),
            Occluder::Object(o) => o.covers(x, y),
        }
    }

    pub(super) fn colour(&self, x: f32, y: f32) -> [f32; 3] {
        match self {
            Occluder::Patch { texture, half, .. } => {
                texture.colour(x / half[0].max(1.0), y / half[0].max(1.0))
            }
            Occluder::Clutter { texture, .. } => texture.colour(x / 8.0, y / 8.0),
            Occluder::Object(o) => o
                .texture
                .colour((x - o.center[0]) / o.radius, (y - o.center[1]) / o.radius),
        }
    }

    /// The same occluder with its extent scaled by `factor` about its own centre(s).
    fn scaled(&self, factor: f32) -> Occluder {
        match self {
            Occluder::Patch {
                center,
                half,
                rotation,
                texture,
            } => Occluder::Patch {
                center: *center,
                half: [half[0] * factor, half[1] * factor],
                rotation: *rotation,
                texture: *texture,
            },
            Occluder::Clutter { blobs, texture } => Occluder::Clutter {
                blobs: blobs.iter().map(|&(c, r)| (c, r * factor)).collect(),
                texture: *texture,
            },
            Occluder::Object(o) => Occluder::Object(ShapeInstance {
                radius: o.radius * factor,
                ..*o
            }),
        }
    }
}

/// One image of the occlusion task with its annotations (masks row-major `[H, W]`).
#[derive(Clone, Debug)]
pub struct OcclusionSample {
    pub scene: Scene,
    pub label: usize,
    pub level: OcclusionLevel,
    /// The object's full extent, hidden parts included.
    pub object_mask: Vec<bool>,
    /// Pixels covered by an occluder.
    pub occluder_mask: Vec<bool>,
    /// `|object ∩ occluder| / |object|`.
    pub occluded_fraction: f32,
}

/// `|object ∩ occluder| / |object|` on the pixel grid.
pub fn occluded_fraction(object_mask: &[bool], occluder_mask: &[bool]) -> f32 {
    let object = object_mask.iter().filter(|&&m| m).count();
    let hidden = object_mask
        .iter()
        .zip(occluder_mask)
        .filter(|&(&o, &c)| o && c)
        .count();
    hidden as f32 / object.max(1) as f32
}

fn mask_of(size: usize, covers: impl Fn(f32, f32) -> bool) -> Vec<bool> {
    (0..size * size)
        .map(|p| covers((p % size) as f32 + 0.5, (p / size) as f32 + 0.5))
        .collect()
}

impl ShapeWorld {
    /// Image `index` of `split` at occlusion `level`. Level L0 is the plain classification scene.
    pub fn occlusion_scene(
        &self,
        split: Split,
        index: u64,
        level: OcclusionLevel,
    ) -> OcclusionSample {
        let (mut scene, label) = self.classification_scene(split, index);
        let object = scene.objects[0];
        let object_mask = mask_of(scene.size, |x, y| object.covers(x, y));
        if level == OcclusionLevel::L0 {
            return OcclusionSample {
                occluder_mask: vec![false; object_mask.len()],
                scene,
                label,
                level,
                object_mask,
                occluded_fraction: 0.0,
            };
        }
        let level_stream = 0x4F43_4300 + level as u64;
        let mut rng = self.task_rng(split, index, level_stream);
        let [lo, hi] = level.range();
        let mut best: Option<(f32, Occluder)> = None;
        // A few kinds and placements are tried; growing a patch about the object's centre always
        // reaches the range, so it is the last resort.
        for attempt in 0..12 {
            let kind = if attempt < 11 {
                OccluderKind::ALL[rng.random_range(0..3)]
            } else {
                OccluderKind::Patch
            };
            let offset = if attempt < 11 {
                rng.random_range(0.2..0.9)
            } else {
                0.0
            };
            let base = self.occluder(&mut rng, kind, &object, offset);
            let target = rng.random_range(lo..hi);
            let occluder = grow_to_fraction(&base, &object_mask, scene.size, target);
            let fraction = occluded_fraction(
                &object_mask,
                &mask_of(scene.size, |x, y| occluder.covers(x, y)),
            );
            let miss = (fraction - target).abs();
            if (lo..=hi).contains(&fraction) {
                best = Some((fraction, occluder));
                break;
            }
            if best.as_ref().is_none_or(|(f, _)| miss < (f - target).abs()) {
                best = Some((fraction, occluder));
            }
        }
        let (occluded_fraction, occluder) = best.expect("at least one attempt is made");
        let occluder_mask = mask_of(scene.size, |x, y| occluder.covers(x, y));
        scene.occluders.push(occluder);
        OcclusionSample {
            scene,
            label,
            level,
            object_mask,
            occluder_mask,
            occluded_fraction,
        }
    }

    /// An occluder of `kind` near `object`, its centre `offset` object radii away, before scaling.
    fn occluder(
        &self,
        rng: &mut Xoshiro256PlusPlus,
        kind: OccluderKind,
        object: &ShapeInstance,
        offset: f32,
    ) -> Occluder {
        let angle = rng.random_range(0.0..TAU);
        let r = object.radius;
        let center = [
            object.center[0] + angle.cos() * offset * r,
            object.center[1] + angle.sin() * offset * r,
        ];
        let texture_kind = TextureKind::ALL[rng.random_range(0..TextureKind::ALL.len())];
        let (hue, frequency) = (rng.random_range(0.0..360.0), rng.random_range(2.0..5.0));
        let texture = Texture::sample(rng, texture_kind, hue, frequency);
        match kind {
            OccluderKind::Patch => Occluder::Patch {
                center,
                half: [
                    r * rng.random_range(0.3..0.6),
                    r * rng.random_range(0.3..0.6),
                ],
                rotation: rng.random_range(0.0..PI),
                texture,
            },
            OccluderKind::Clutter => {
                let blobs = (0..rng.random_range(4..8))
                    .map(|_| {
                        let (a, d) = (rng.random_range(0.0..TAU), rng.random_range(0.0..0.7));
                        (
                            [center[0] + a.cos() * d * r, center[1] + a.sin() * d * r],
                            r * rng.random_range(0.12..0.3),
                        )
                    })
                    .collect();
                Occluder::Clutter { blobs, texture }
            }
            OccluderKind::Object => {
                let others: Vec<ShapeClass> = ShapeClass::ALL[..ShapeClass::TASK_CLASSES]
                    .iter()
                    .copied()
                    .filter(|&c| c != object.class)
                    .collect();
                let class = others[rng.random_range(0..others.len())];
                let mut other = self.object(rng, class);
                other.center = center;
                other.radius = r * 0.5;
                Occluder::Object(other)
            }
        }
    }
}

/// Scales `base` by bisection so that it hides about `target` of the object.
fn grow_to_fraction(base: &Occluder, object_mask: &[bool], size: usize, target: f32) -> Occluder {
    let fraction = |factor: f32| {
        let o = base.scaled(factor);
        occluded_fraction(object_mask, &mask_of(size, |x, y| o.covers(x, y)))
    };
    let (mut lo, mut hi) = (0.0f32, 1.0f32);
    while fraction(hi) < target && hi < 64.0 {
        (lo, hi) = (hi, hi * 2.0);
    }
    for _ in 0..14 {
        let mid = 0.5 * (lo + hi);
        if fraction(mid) < target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    base.scaled(hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn world() -> ShapeWorld {
        ShapeWorld {
            image_size: 48,
            num_classes: 12,
            scale_range: [0.3, 0.45],
            ..ShapeWorld::default()
        }
    }

    #[test]
    fn occluded_fraction_is_within_each_level() {
        let world = world();
        let mut kinds = std::collections::HashSet::new();
        for index in 0..40 {
            for level in OcclusionLevel::ALL {
                let s = world.occlusion_scene(Split::Test, index, level);
                let [lo, hi] = level.range();
                let measured = occluded_fraction(&s.object_mask, &s.occluder_mask);
                assert_eq!(measured, s.occluded_fraction);
                assert!(
                    (lo..=hi).contains(&measured),
                    "image {index} {level:?}: {measured}"
                );
                // The occluder mask is what the picture shows in front.
                let layers = s.scene.layers();
                for (p, &covered) in s.occluder_mask.iter().enumerate() {
                    assert_eq!(
                        covered,
                        matches!(layers[p], crate::shapeworld::Layer::Occluder(_))
                    );
                }
                if let Some(o) = s.scene.occluders.first() {
                    kinds.insert(format!("{:?}", o.kind()));
                }
            }
        }
        assert_eq!(kinds.len(), 3, "every occluder kind is used: {kinds:?}");
    }

    #[test]
    fn levels_share_the_object_and_l0_is_the_classification_scene() {
        let world = world();
        let (plain, label) = world.classification_scene(Split::Test, 5);
        let l0 = world.occlusion_scene(Split::Test, 5, OcclusionLevel::L0);
        assert_eq!((l0.scene.render(), l0.label), (plain.render(), label));
        let l2 = world.occlusion_scene(Split::Test, 5, OcclusionLevel::L2);
        assert_eq!((l2.object_mask, l2.label), (l0.object_mask, label));
        let again = world.occlusion_scene(Split::Test, 5, OcclusionLevel::L2);
        assert_eq!(again.scene.render(), l2.scene.render());
    }
}
