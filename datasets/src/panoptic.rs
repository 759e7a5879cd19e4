//! Joint image + panoptic-label geometry for dense training (`axial-deeplab.md` §4.2, DeepLab2's
//! `input_preprocessing`): random scale from a grid (0.5–2.0 in steps of 0.1), random crop with
//! padding to a fixed size, horizontal flip; and the evaluation resize-and-pad. Images resize
//! bilinearly, labels by nearest neighbour; padding is grey 128 for images (≈ 0.004 after
//! `x/127.5 − 1`; DeepLab2 pads with 127.5, exactly 0) and the void id for labels.
//! Departure: resizing maps pixel centres (the `image` crate's filters), where DeepLab2 resizes
//! with aligned corners; image and label stay aligned with each other either way.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use image::{RgbImage, imageops::FilterType};
use rand::{Rng, RngExt};
use serde::{Deserialize, Serialize};

/// An image and its canonical panoptic map (`semantic · divisor + instance`), row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct LabelledImage {
    pub image: RgbImage,
    pub panoptic: Vec<u32>,
}

/// DeepLab2's training preprocessing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PanopticAugmentation {
    /// `[height, width]` of every training crop (DeepLab2 Cityscapes: 1025 × 2049).
    pub crop: [usize; 2],
    /// Scale factors `min, min + step, …, max` (0.5, 2.0, 0.1).
    #[serde(default = "scale_range")]
    pub scale: [f64; 2],
    #[serde(default = "scale_step")]
    pub scale_step: f64,
    #[serde(default = "yes")]
    pub flip: bool,
    /// Draw the scale log-uniformly from `scale` (`s = 2^U(log2 min, log2 max)`, DeepLabv3.pytorch's
    /// VOC augmentation, `ws.md` §4.2) instead of from the grid.
    #[serde(default)]
    pub log_uniform: bool,
}

fn scale_range() -> [f64; 2] {
    [0.5, 2.0]
}
fn scale_step() -> f64 {
    0.1
}
fn yes() -> bool {
    true
}

impl PanopticAugmentation {
    pub fn validate(&self) -> Result<(), String> {
        let [lo, hi] = self.scale;
        if self.crop.contains(&0) {
            return Err(format!("crop = {:?}: expected positive sizes", self.crop));
        }
        if !(lo > 0.0 && lo <= hi && self.scale_step > 0.0) {
            return Err(format!(
                "scale = [{lo}, {hi}], scale_step = {}: expected 0 < min ≤ max and step > 0",
                self.scale_step
            ));
        }
        Ok(())
    }

    /// The scale factors to draw from.
    pub fn scales(&self) -> Vec<f64> {
        let [lo, hi] = self.scale;
        let steps = ((hi - lo) / self.scale_step + 1e-9).floor() as usize;
        (0..=steps)
            .map(|k| lo + k as f64 * self.scale_step)
            .collect()
    }

    /// Scale, crop (padding where the scaled image is smaller) and flip, drawn from `rng`.
    pub fn apply(&self, item: &LabelledImage, void: u32, rng: &mut impl Rng) -> LabelledImage {
        let scale = if self.log_uniform {
            let [lo, hi] = self.scale;
            if lo < hi {
                rng.random_range(lo.log2()..hi.log2()).exp2()
            } else {
                lo
            }
        } else {
            let scales = self.scales();
            scales[rng.random_range(0..scales.len())]
        };
        let (w, h) = item.image.dimensions();
        let size = [
            ((h as f64 * scale).round() as usize).max(1),
            ((w as f64 * scale).round() as usize).max(1),
        ];
        let scaled = resize(item, size);
        let [ch, cw] = self.crop;
        let top = rng.random_range(0..=size[0].saturating_sub(ch));
        let left = rng.random_range(0..=size[1].saturating_sub(cw));
        let cropped = crop_or_pad(&scaled, [top, left], self.crop, void);
        if self.flip && rng.random_bool(0.5) {
            flip(&cropped)
        } else {
            cropped
        }
    }
}

/// How a labelled image is laid out for the network: the random training geometry (a function of
/// seed, epoch and index, so a resumed run sees the same crops), or the evaluation fit to one size.
#[derive(Clone, Debug)]
pub enum Geometry {
    Train {
        augmentation: PanopticAugmentation,
        seed: u64,
        /// The epoch the loader is in (shared with it).
        epoch: Arc<AtomicUsize>,
    },
    Eval {
        size: [usize; 2],
    },
}

impl Geometry {
    /// `item` (index `index` of its split) laid out; `void` labels the pixels padding adds.
    pub fn apply(&self, item: &LabelledImage, void: u32, index: usize) -> LabelledImage {
        match self {
            Geometry::Train {
                augmentation,
                seed,
                epoch,
            } => {
                let mut rng = crate::augmentation_rng(
                    *seed,
                    epoch.load(Ordering::SeqCst) as u64,
                    index as u64,
                );
                augmentation.apply(item, void, &mut rng)
            }
            Geometry::Eval { size } => fit_and_pad(item, *size, void),
        }
    }
}

/// Evaluation: shrink to fit `size` keeping the aspect ratio (never enlarge), pad bottom/right.
pub fn fit_and_pad(item: &LabelledImage, size: [usize; 2], void: u32) -> LabelledImage {
    let (w, h) = item.image.dimensions();
    let factor = (size[0] as f64 / h as f64)
        .min(size[1] as f64 / w as f64)
        .min(1.0);
    let fitted = if factor < 1.0 {
        resize(
            item,
            [
                ((h as f64 * factor).round() as usize).max(1),
                ((w as f64 * factor).round() as usize).max(1),
            ],
        )
    } else {
        item.clone()
    };
    crop_or_pad(&fitted, [0, 0], size, void)
}

/// Image bilinear, label nearest, to `[height, width]`.
pub fn resize(item: &LabelledImage, [h, w]: [usize; 2]) -> LabelledImage {
    let (w0, h0) = item.image.dimensions();
    if (w0 as usize, h0 as usize) == (w, h) {
        return item.clone();
    }
    let image = image::imageops::resize(&item.image, w as u32, h as u32, FilterType::Triangle);
    let (w0, h0) = (w0 as usize, h0 as usize);
    let mut panoptic = Vec::with_capacity(h * w);
    for r in 0..h {
        // Nearest source pixel centre (half-pixel mapping).
        let sr = (((r as f64 + 0.5) * h0 as f64 / h as f64) as usize).min(h0 - 1);
        for c in 0..w {
            let sc = (((c as f64 + 0.5) * w0 as f64 / w as f64) as usize).min(w0 - 1);
            panoptic.push(item.panoptic[sr * w0 + sc]);
        }
    }
    LabelledImage { image, panoptic }
}

/// The `size` window at `(top, left)`; outside the source: grey 128 and the label `void`.
fn crop_or_pad(
    item: &LabelledImage,
    [top, left]: [usize; 2],
    [h, w]: [usize; 2],
    void: u32,
) -> LabelledImage {
    let (w0, h0) = item.image.dimensions();
    let (w0, h0) = (w0 as usize, h0 as usize);
    let mut image = RgbImage::from_pixel(w as u32, h as u32, image::Rgb([128, 128, 128]));
    let mut panoptic = vec![void; h * w];
    for r in 0..h.min(h0.saturating_sub(top)) {
        for c in 0..w.min(w0.saturating_sub(left)) {
            let (sr, sc) = (top + r, left + c);
            image.put_pixel(
                c as u32,
                r as u32,
                *item.image.get_pixel(sc as u32, sr as u32),
            );
            panoptic[r * w + c] = item.panoptic[sr * w0 + sc];
        }
    }
    LabelledImage { image, panoptic }
}

fn flip(item: &LabelledImage) -> LabelledImage {
    let (w, _) = item.image.dimensions();
    let w = w as usize;
    LabelledImage {
        image: image::imageops::flip_horizontal(&item.image),
        panoptic: item
            .panoptic
            .chunks_exact(w)
            .flat_map(|row| row.iter().rev().copied())
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(w: u32, h: u32) -> LabelledImage {
        LabelledImage {
            image: RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 0])),
            panoptic: (0..w * h).collect(),
        }
    }

    #[test]
    fn scales_follow_the_grid_and_crops_have_the_crop_size() {
        let aug = PanopticAugmentation {
            crop: [5, 7],
            scale: [0.5, 2.0],
            scale_step: 0.1,
            flip: true,
            log_uniform: false,
        };
        let scales = aug.scales();
        assert_eq!(scales.len(), 16);
        assert!((scales[15] - 2.0).abs() < 1e-9);
        let mut rng = crate::augmentation_rng(0, 0, 0);
        for _ in 0..20 {
            let out = aug.apply(&item(6, 4), 255, &mut rng);
            assert_eq!(out.image.dimensions(), (7, 5));
            assert_eq!(out.panoptic.len(), 35);
        }
    }

    #[test]
    fn padding_is_void_and_flip_mirrors_both() {
        let padded = crop_or_pad(&item(2, 2), [0, 0], [3, 3], 255);
        assert_eq!(padded.panoptic, [0, 1, 255, 2, 3, 255, 255, 255, 255]);
        assert_eq!(padded.image.get_pixel(2, 2).0, [128, 128, 128]);
        let flipped = flip(&item(3, 1));
        assert_eq!(flipped.panoptic, [2, 1, 0]);
        assert_eq!(flipped.image.get_pixel(0, 0).0, [2, 0, 0]);
        // Nearest-neighbour labels keep their ids (no blending) when scaled up.
        let up = resize(&item(2, 1), [1, 4]);
        assert_eq!(up.panoptic, [0, 0, 1, 1]);
        // Evaluation: 1024 × 2048 fits 1025 × 2049 unscaled, padded by one row and column.
        let fitted = fit_and_pad(&item(4, 2), [3, 5], 7);
        assert_eq!(
            fitted.panoptic,
            [0, 1, 2, 3, 7, 4, 5, 6, 7, 7, 7, 7, 7, 7, 7]
        );
    }
}
