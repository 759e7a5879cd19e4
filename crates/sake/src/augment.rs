//! SAKE's training augmentation (`sake.md` §4, pitfall 8): with probability 0.7 an affine warp
//! assembled from independent parts — a horizontal mirror (p 0.5), scales `sx, sy ~ U(0.7, 1.3)`
//! (p 0.5), a rotation `~ U(−30°, 30°)` (p 0.5), a translation `tx, ty ~ U(−10, 10)` px (p 0.5) —
//! about the **top-left** origin, bilinear, black outside the image (sketches on white paper get
//! black borders too), truncated to 8 bits. The official code mirrors the array, then warps with
//! scikit-image's `AffineTransform(scale, rotation, translation)`:
//! `[x', y'] = [[sx·cos r, −sy·sin r], [sx·sin r, sy·cos r]]·[x, y] + [tx, ty]` in pixel
//! coordinates (x the column), each output pixel sampling the input at the inverse map.

use image::{Rgb, RgbImage};
use rand::{Rng, RngExt};
use serde::{Deserialize, Serialize};

/// The augmentation's settings (the official values by default).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AffineAugment {
    /// Probability that an image is warped at all (0: no augmentation).
    pub probability: f64,
    /// Each part's own probability.
    pub part_probability: f64,
    pub scale: [f64; 2],
    /// Degrees, symmetric about 0.
    pub max_rotation: f64,
    /// Pixels, symmetric about 0 (at the stored image's resolution).
    pub max_translation: f64,
}

impl Default for AffineAugment {
    fn default() -> Self {
        Self {
            probability: 0.7,
            part_probability: 0.5,
            scale: [0.7, 1.3],
            max_rotation: 30.0,
            max_translation: 10.0,
        }
    }
}

/// One draw of the augmentation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AffineDraw {
    pub mirror: bool,
    pub scale: [f64; 2],
    /// Radians.
    pub rotation: f64,
    pub translation: [f64; 2],
}

impl AffineDraw {
    pub const IDENTITY: AffineDraw = AffineDraw {
        mirror: false,
        scale: [1.0, 1.0],
        rotation: 0.0,
        translation: [0.0, 0.0],
    };
}

impl AffineAugment {
    /// Rejects settings the draw cannot use, naming the key.
    pub fn validate(&self) -> Result<(), String> {
        let unit = |v: f64| (0.0..=1.0).contains(&v);
        if !unit(self.probability) || !unit(self.part_probability) {
            return Err(format!(
                "augment.probability = {}, augment.part_probability = {}: expected probabilities in [0, 1]",
                self.probability, self.part_probability
            ));
        }
        let [lo, hi] = self.scale;
        if !(lo > 0.0 && lo <= hi && hi.is_finite()) {
            return Err(format!(
                "augment.scale = {:?}: expected 0 < low <= high",
                self.scale
            ));
        }
        let bound = |v: f64| v.is_finite() && v >= 0.0;
        if !(bound(self.max_rotation) && bound(self.max_translation)) {
            return Err("augment.max_rotation and augment.max_translation: expected >= 0".into());
        }
        Ok(())
    }

    /// The warp for one image: `None` when it is left as it is (probability 1 − p).
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> Option<AffineDraw> {
        if !rng.random_bool(self.probability) {
            return None;
        }
        let mut part = || rng.random_bool(self.part_probability);
        let (mirror, scaled, rotated, translated) = (part(), part(), part(), part());
        let [lo, hi] = self.scale;
        let uniform = |rng: &mut R, a: f64, b: f64| if a < b { rng.random_range(a..b) } else { a };
        let scale = if scaled {
            [uniform(rng, lo, hi), uniform(rng, lo, hi)]
        } else {
            [1.0, 1.0]
        };
        let r = self.max_rotation.to_radians();
        let rotation = if rotated { uniform(rng, -r, r) } else { 0.0 };
        let t = self.max_translation;
        let translation = if translated {
            [uniform(rng, -t, t), uniform(rng, -t, t)]
        } else {
            [0.0, 0.0]
        };
        Some(AffineDraw {
            mirror,
            scale,
            rotation,
            translation,
        })
    }
}

/// `image` mirrored (if drawn) and warped by the draw about the top-left origin: each output pixel
/// `p` takes the bilinear value of the input at `A⁻¹(p − t)`, black where that falls outside,
/// truncated to 8 bits as `astype('uint8')` does.
pub fn affine_warp(image: &RgbImage, draw: &AffineDraw) -> RgbImage {
    let (w, h) = image.dimensions();
    let source = if draw.mirror {
        image::imageops::flip_horizontal(image)
    } else {
        image.clone()
    };
    let [sx, sy] = draw.scale;
    let (sin, cos) = draw.rotation.sin_cos();
    // A = [[sx·cos, −sy·sin], [sx·sin, sy·cos]]; A⁻¹ = adj(A) / det(A), det = sx·sy.
    let det = sx * sy;
    let inverse = [
        [sy * cos / det, sy * sin / det],
        [-sx * sin / det, sx * cos / det],
    ];
    let [tx, ty] = draw.translation;
    RgbImage::from_fn(w, h, |col, row| {
        let (dx, dy) = (col as f64 - tx, row as f64 - ty);
        let x = inverse[0][0] * dx + inverse[0][1] * dy;
        let y = inverse[1][0] * dx + inverse[1][1] * dy;
        Rgb(bilinear_black(&source, x, y))
    })
}

/// The bilinear value at `(x, y)` (pixel centres at integers), neighbours outside the image 0.
fn bilinear_black(image: &RgbImage, x: f64, y: f64) -> [u8; 3] {
    let (w, h) = (image.width() as i64, image.height() as i64);
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = (x - x0, y - y0);
    let (x0, y0) = (x0 as i64, y0 as i64);
    let at = |xi: i64, yi: i64, c: usize| -> f64 {
        if xi < 0 || yi < 0 || xi >= w || yi >= h {
            0.0
        } else {
            image.get_pixel(xi as u32, yi as u32)[c] as f64
        }
    };
    std::array::from_fn(|c| {
        let v = (1.0 - fy) * ((1.0 - fx) * at(x0, y0, c) + fx * at(x0 + 1, y0, c))
            + fy * ((1.0 - fx) * at(x0, y0 + 1, c) + fx * at(x0 + 1, y0 + 1, c));
        v.clamp(0.0, 255.0) as u8 // truncation, as `astype('uint8')`
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn white(size: u32) -> RgbImage {
        RgbImage::from_pixel(size, size, Rgb([255, 255, 255]))
    }

    #[test]
    fn the_identity_and_the_mirror_are_exact() {
        let mut image = white(8);
        image.put_pixel(1, 2, Rgb([10, 20, 30]));
        assert_eq!(affine_warp(&image, &AffineDraw::IDENTITY), image);
        let mirrored = affine_warp(
            &image,
            &AffineDraw {
                mirror: true,
                ..AffineDraw::IDENTITY
            },
        );
        assert_eq!(*mirrored.get_pixel(6, 2), Rgb([10, 20, 30]));
    }

    #[test]
    fn warps_keep_the_shape_and_leave_black_borders_spec_8_6() {
        let image = white(32);
        // Rotation about the top-left corner: the corner opposite swings out, black comes in.
        let rotated = affine_warp(
            &image,
            &AffineDraw {
                rotation: 20f64.to_radians(),
                ..AffineDraw::IDENTITY
            },
        );
        assert_eq!(rotated.dimensions(), (32, 32));
        assert_eq!(*rotated.get_pixel(0, 0), Rgb([255, 255, 255]));
        // Points with x·sin > y·cos (above the rotated top edge) come from y < 0: black.
        assert_eq!(*rotated.get_pixel(31, 2), Rgb([0, 0, 0]));
        // Translation right/down by 5: the first 4 columns and rows are black (the fifth blends).
        let moved = affine_warp(
            &image,
            &AffineDraw {
                translation: [5.0, 5.0],
                ..AffineDraw::IDENTITY
            },
        );
        assert!((0..4).all(|i| moved.get_pixel(i, 20)[0] == 0 && moved.get_pixel(20, i)[0] == 0));
        assert_eq!(*moved.get_pixel(20, 20), Rgb([255, 255, 255]));
        // Half scale about the origin: the image shrinks toward the top-left corner.
        let shrunk = affine_warp(
            &image,
            &AffineDraw {
                scale: [0.5, 0.5],
                ..AffineDraw::IDENTITY
            },
        );
        assert_eq!(shrunk.get_pixel(10, 10)[0], 255);
        assert_eq!(shrunk.get_pixel(20, 20)[0], 0);
    }

    #[test]
    fn draws_follow_the_probabilities() {
        use rand::SeedableRng;
        let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(3);
        let augment = AffineAugment::default();
        let draws: Vec<_> = (0..2000).map(|_| augment.sample(&mut rng)).collect();
        let warped = draws.iter().flatten().count() as f64 / 2000.0;
        assert!((warped - 0.7).abs() < 0.04, "{warped}");
        let rotated = draws.iter().flatten().filter(|d| d.rotation != 0.0).count() as f64;
        assert!((rotated / (warped * 2000.0) - 0.5).abs() < 0.05);
        assert!(
            draws
                .iter()
                .flatten()
                .all(|d| d.rotation.abs() <= 30f64.to_radians()
                    && d.scale.iter().all(|s| (0.7..=1.3).contains(s))
                    && d.translation.iter().all(|t| t.abs() <= 10.0))
        );
        let none = AffineAugment {
            probability: 0.0,
            ..augment
        };
        assert!(none.sample(&mut rng).is_none());
    }
}
