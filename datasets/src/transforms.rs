//! Image augmentations of the training recipes, torchvision's tensor definitions on `f32` images.
//!
//! * ImageNet (`ws.md` §4.1): train RandomResizedCrop(224, scale (0.08, 1), ratio (3/4, 4/3),
//!   bilinear) → horizontal flip p 0.5; eval short side resized to 256 (bilinear) → center crop 224.
//! * MoCo v1 (`co2-moco.md` §4.1): RandomResizedCrop(224, scale (0.2, 1)) → RandomGrayscale(0.2) →
//!   ColorJitter(0.4, 0.4, 0.4, 0.4) → horizontal flip.
//! * MoCo v2 (`co2-moco.md` §4.1): RandomResizedCrop(224, scale (0.2, 1)) → with p 0.8
//!   ColorJitter(0.4, 0.4, 0.4, 0.1) → RandomGrayscale(0.2) → with p 0.5 Gaussian blur,
//!   σ ~ U[0.1, 2.0] → horizontal flip. Each image yields two independent views ([`TwoCrops`]).
//!
//! Reference: torchvision 0.29 `transforms/transforms.py` (the random draws, `get_params`) and
//! `transforms/_functional_tensor.py` (the arithmetic). Every transform keeps the two apart:
//! `sample(rng, [H, W]) -> params` draws, `apply(image, &params)` computes, so tests feed fixed
//! parameters (`datasets/tests/transforms.rs` checks each against torchvision).
//!
//! Deviations:
//! * The RNG is vireo's ([`augmentation_rng`]), not torch's: same distributions, other numbers.
//! * Gaussian blur is torchvision's true Gaussian with kernel size `2·ceil(3σ) + 1`. MoCo v2's
//!   official code blurs with PIL's `ImageFilter.GaussianBlur(radius = σ)`, which approximates the
//!   same Gaussian by repeated box filters; the two differ by a few grey levels.
//! * Reflect padding of the blur also works for kernels wider than the image (repeated
//!   reflection), where torch refuses.
//! * Normalisation happens in [`crate::ClassificationBatcher`]; [`normalize`] is the same equation
//!   for one image.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use burn::data::dataset::Dataset;
use image::{
    Rgb32FImage,
    imageops::{self, FilterType},
};
use rand::{Rng, RngExt, SeedableRng, rngs::Xoshiro256PlusPlus, seq::SliceRandom};
use serde::{Deserialize, Serialize};

use crate::{ClassificationItem, Normalization};

/// RGB in `[0, 1]`, row-major `[H, W, 3]`: the layout of [`ClassificationItem::pixels`].
pub type Image = Rgb32FImage;

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum TransformError {
    #[error("{field} = {value}: expected {expected}")]
    OutOfRange {
        field: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("an item of size {size:?} holds {len} values: expected H·W·3 = {expected}")]
    PixelCount {
        size: [usize; 2],
        len: usize,
        expected: usize,
    },
}

fn check(
    ok: bool,
    field: &'static str,
    value: impl std::fmt::Debug,
    expected: &'static str,
) -> Result<(), TransformError> {
    if ok {
        Ok(())
    } else {
        Err(TransformError::OutOfRange {
            field,
            value: format!("{value:?}"),
            expected,
        })
    }
}

fn check_probability(field: &'static str, p: f64) -> Result<(), TransformError> {
    check(
        (0.0..=1.0).contains(&p),
        field,
        p,
        "a probability in [0, 1]",
    )
}

/// `torch.empty(1).uniform_(lo, hi)`: `[lo, hi)`, and `lo` itself when the range is empty.
fn uniform<R: Rng + ?Sized>(rng: &mut R, [lo, hi]: [f64; 2]) -> f64 {
    lo + (hi - lo) * rng.random::<f64>()
}

/// `[H, W]` of an image.
fn dims(image: &Image) -> [usize; 2] {
    [image.height() as usize, image.width() as usize]
}

fn map_pixels(image: &Image, f: impl Fn([f32; 3]) -> [f32; 3]) -> Image {
    let mut out = image.clone();
    for p in out.pixels_mut() {
        p.0 = f(p.0);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Conversions
// ---------------------------------------------------------------------------------------------

/// The image of an item; an error when its pixel count disagrees with its size.
pub fn item_image(item: &ClassificationItem) -> Result<Image, TransformError> {
    let [h, w] = item.size;
    let expected = h * w * 3;
    let mismatch = || TransformError::PixelCount {
        size: item.size,
        len: item.pixels.len(),
        expected,
    };
    if item.pixels.len() != expected {
        return Err(mismatch());
    }
    Image::from_raw(w as u32, h as u32, item.pixels.clone()).ok_or_else(mismatch)
}

/// An item holding `image` with class `label`.
pub fn image_item(image: Image, label: usize) -> ClassificationItem {
    let size = dims(&image);
    ClassificationItem {
        pixels: image.into_raw(),
        size,
        label,
    }
}

// ---------------------------------------------------------------------------------------------
// Equations (torchvision `_functional_tensor.py`)
// ---------------------------------------------------------------------------------------------

/// Luma of `rgb_to_grayscale`: `0.2989 R + 0.587 G + 0.114 B` (ITU-R 601-2, as torchvision).
pub fn luma([r, g, b]: [f32; 3]) -> f32 {
    0.2989 * r + 0.587 * g + 0.114 * b
}

/// `F.rgb_to_grayscale(img, num_output_channels=3)`: the luma in all three channels.
pub fn rgb_to_grayscale(image: &Image) -> Image {
    map_pixels(image, |p| [luma(p); 3])
}

/// `_blend(img1, img2, ratio)`: `clamp(ratio·img1 + (1 - ratio)·img2, 0, 1)`.
pub fn blend(a: f32, b: f32, ratio: f32) -> f32 {
    (ratio * a + (1.0 - ratio) * b).clamp(0.0, 1.0)
}

/// `F.adjust_brightness(img, f)`: `_blend(img, 0, f)` = `clamp(f·x, 0, 1)`.
pub fn adjust_brightness(image: &Image, factor: f32) -> Image {
    map_pixels(image, |p| p.map(|x| blend(x, 0.0, factor)))
}

/// `F.adjust_contrast(img, f)`: `_blend(img, mean(rgb_to_grayscale(img)), f)`, one mean per image.
pub fn adjust_contrast(image: &Image, factor: f32) -> Image {
    let n = (image.width() as usize * image.height() as usize).max(1);
    let sum: f64 = image.pixels().map(|p| luma(p.0) as f64).sum();
    let mean = (sum / n as f64) as f32;
    map_pixels(image, |p| p.map(|x| blend(x, mean, factor)))
}

/// `F.adjust_saturation(img, f)`: `_blend(img, rgb_to_grayscale(img), f)`, per pixel.
pub fn adjust_saturation(image: &Image, factor: f32) -> Image {
    map_pixels(image, |p| {
        let grey = luma(p);
        p.map(|x| blend(x, grey, factor))
    })
}

/// `_rgb2hsv`: hue in `[0, 1)`, saturation `(max - min) / max`, value `max`; grey pixels get hue
/// and saturation 0 (torchvision's `eqc` guard).
pub fn rgb_to_hsv([r, g, b]: [f32; 3]) -> [f32; 3] {
    let maxc = r.max(g).max(b);
    let minc = r.min(g).min(b);
    let eqc = maxc == minc;
    let cr = maxc - minc;
    let s = cr / if eqc { 1.0 } else { maxc };
    let cr_divisor = if eqc { 1.0 } else { cr };
    let (rc, gc, bc) = (
        (maxc - r) / cr_divisor,
        (maxc - g) / cr_divisor,
        (maxc - b) / cr_divisor,
    );
    let h = if maxc == r {
        bc - gc
    } else if maxc == g {
        2.0 + rc - bc
    } else {
        4.0 + gc - rc
    };
    // torch.fmod: the sign of the dividend, which is positive here (h ≥ -1).
    let h = (h / 6.0 + 1.0) % 1.0;
    [h, s, maxc]
}

/// `_hsv2rgb`: sector `i = floor(6h) mod 6`, with `p, q, t` clamped to `[0, 1]`.
pub fn hsv_to_rgb([h, s, v]: [f32; 3]) -> [f32; 3] {
    let i = (h * 6.0).floor();
    let f = h * 6.0 - i;
    let i = (i as i32).rem_euclid(6);
    let p = (v * (1.0 - s)).clamp(0.0, 1.0);
    let q = (v * (1.0 - s * f)).clamp(0.0, 1.0);
    let t = (v * (1.0 - s * (1.0 - f))).clamp(0.0, 1.0);
    match i {
        0 => [v, t, p],
        1 => [q, v, p],
        2 => [p, v, t],
        3 => [p, q, v],
        4 => [t, p, v],
        _ => [v, p, q],
    }
}

/// `torch.remainder(x, 1.0)` (Python's `%`): the sign of the divisor, so in `[0, 1]`.
fn python_mod_1(x: f32) -> f32 {
    let m = x % 1.0;
    if m < 0.0 { m + 1.0 } else { m }
}

/// `F.adjust_hue(img, f)`: `h ← (h + f) mod 1` in `_rgb2hsv` space, `f ∈ [-0.5, 0.5]`.
pub fn adjust_hue(image: &Image, factor: f32) -> Image {
    map_pixels(image, |p| {
        let [h, s, v] = rgb_to_hsv(p);
        hsv_to_rgb([python_mod_1(h + factor), s, v]).map(|x| x.clamp(0.0, 1.0))
    })
}

/// vireo's Gaussian kernel size for `σ`: `2·ceil(3σ) + 1`, three standard deviations each side.
pub fn gaussian_kernel_size(sigma: f32) -> usize {
    2 * (3.0 * sigma).ceil().max(0.0) as usize + 1
}

/// `_get_gaussian_kernel1d(k, σ)`: `x = linspace(-(k-1)/2, (k-1)/2, k)`, `exp(-½(x/σ)²)`,
/// normalised to sum 1.
pub fn gaussian_kernel(size: usize, sigma: f32) -> Vec<f32> {
    let half = (size as f32 - 1.0) * 0.5;
    let pdf: Vec<f32> = (0..size)
        .map(|i| {
            let x = i as f32 - half;
            (-0.5 * (x / sigma).powi(2)).exp()
        })
        .collect();
    let sum: f32 = pdf.iter().sum();
    pdf.into_iter().map(|p| p / sum).collect()
}

/// Index `i` of a reflect-padded axis of length `n` (`torch.nn.functional.pad(mode="reflect")`,
/// the edge not repeated), folded again when `i` lies more than `n - 1` outside.
fn reflect(i: isize, n: usize) -> usize {
    if n <= 1 {
        return 0;
    }
    let period = 2 * (n as isize - 1);
    let m = i.rem_euclid(period);
    (if m >= n as isize { period - m } else { m }) as usize
}

/// `F.gaussian_blur(img, [k, k], [σ, σ])`: reflect padding of `k // 2`, then the separable 2-D
/// kernel `g gᵀ` (equal to torchvision's single 2-D convolution up to rounding).
pub fn gaussian_blur(image: &Image, size: usize, sigma: f32) -> Image {
    let kernel = gaussian_kernel(size, sigma);
    let half = (size / 2) as isize;
    let (w, h) = (image.width() as usize, image.height() as usize);
    let pixel = |img: &Image, x: usize, y: usize| img.get_pixel(x as u32, y as u32).0;
    let mut rows = image.clone();
    for y in 0..h {
        for x in 0..w {
            let mut acc = [0.0f32; 3];
            for (k, &g) in kernel.iter().enumerate() {
                let p = pixel(image, reflect(x as isize + k as isize - half, w), y);
                (0..3).for_each(|c| acc[c] += g * p[c]);
            }
            rows.put_pixel(x as u32, y as u32, image::Rgb(acc));
        }
    }
    let mut out = rows.clone();
    for y in 0..h {
        for x in 0..w {
            let mut acc = [0.0f32; 3];
            for (k, &g) in kernel.iter().enumerate() {
                let p = pixel(&rows, x, reflect(y as isize + k as isize - half, h));
                (0..3).for_each(|c| acc[c] += g * p[c]);
            }
            out.put_pixel(x as u32, y as u32, image::Rgb(acc));
        }
    }
    out
}

/// `F.hflip(img)`.
pub fn hflip(image: &Image) -> Image {
    imageops::flip_horizontal(image)
}

/// The `[top, left, height, width]` box of a crop, in pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CropBox {
    pub top: usize,
    pub left: usize,
    pub height: usize,
    pub width: usize,
}

/// `F.resized_crop(img, top, left, h, w, [H, W], antialias=True)`: crop, then bilinear resize with
/// torchvision's antialiasing (a triangle filter widened by the downscale factor, PIL's
/// convention), which is the `image` crate's `FilterType::Triangle`. A box reaching outside the
/// image is clipped (torchvision pads with zeros).
pub fn resized_crop(image: &Image, crop: CropBox, [height, width]: [usize; 2]) -> Image {
    let cropped = imageops::crop_imm(
        image,
        crop.left as u32,
        crop.top as u32,
        crop.width as u32,
        crop.height as u32,
    )
    .to_image();
    imageops::resize(&cropped, width as u32, height as u32, FilterType::Triangle)
}

/// `F.resize(img, short, antialias=True)`: the short side becomes `short`, the long side
/// `int(short · long / short_side)` (truncated, as torchvision's `_compute_resized_output_size`).
pub fn resize_short_side<P: image::Pixel + 'static>(
    image: &image::ImageBuffer<P, Vec<P::Subpixel>>,
    short: usize,
) -> image::ImageBuffer<P, Vec<P::Subpixel>> {
    let (w, h) = image.dimensions();
    let (w, h) = (w as usize, h as usize);
    let (short_side, long_side) = if w <= h { (w, h) } else { (h, w) };
    let long = (short as f64 * long_side as f64 / short_side.max(1) as f64) as usize;
    let (new_h, new_w) = if w <= h { (long, short) } else { (short, long) };
    imageops::resize(image, new_w as u32, new_h as u32, FilterType::Triangle)
}

/// `F.center_crop(img, size)` on an image at least `size` on each side: top
/// `int(round((H - size) / 2))`, Python's round (half to even). A smaller image is returned
/// clipped (torchvision pads with zeros).
pub fn center_crop(image: &Image, size: usize) -> Image {
    let [h, w] = dims(image);
    let offset = |side: usize| (side.saturating_sub(size) as f64 / 2.0).round_ties_even() as u32;
    imageops::crop_imm(image, offset(w), offset(h), size as u32, size as u32).to_image()
}

/// `F.normalize(img, mean, std)`: `(x - mean_c) / std_c`, returned CHW (what
/// [`crate::ClassificationBatcher`] computes when batching).
pub fn normalize(image: &Image, normalization: &Normalization) -> Vec<f32> {
    let Normalization { mean, std } = *normalization;
    (0..3)
        .flat_map(|c| image.pixels().map(move |p| (p.0[c] - mean[c]) / std[c]))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Random transforms (torchvision `transforms.py`)
// ---------------------------------------------------------------------------------------------

fn default_crop_scale() -> [f64; 2] {
    [0.08, 1.0]
}

fn default_crop_ratio() -> [f64; 2] {
    [3.0 / 4.0, 4.0 / 3.0]
}

fn default_half() -> f64 {
    0.5
}

fn default_grayscale_p() -> f64 {
    0.1
}

fn default_blur_sigma() -> [f32; 2] {
    [0.1, 2.0]
}

/// `T.RandomResizedCrop(size, scale, ratio, antialias=True)`, square output `size × size`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandomResizedCrop {
    pub size: usize,
    /// Range of the crop's area as a fraction of the image's.
    #[serde(default = "default_crop_scale")]
    pub scale: [f64; 2],
    /// Range of the crop's aspect ratio `w / h`, drawn log-uniformly.
    #[serde(default = "default_crop_ratio")]
    pub ratio: [f64; 2],
}

impl RandomResizedCrop {
    pub fn new(size: usize) -> Self {
        Self {
            size,
            scale: default_crop_scale(),
            ratio: default_crop_ratio(),
        }
    }

    pub fn validate(&self) -> Result<(), TransformError> {
        check(
            self.size > 0,
            "random_resized_crop.size",
            self.size,
            "at least 1 pixel",
        )?;
        let [lo, hi] = self.scale;
        check(
            0.0 <= lo && lo <= hi && hi.is_finite(),
            "random_resized_crop.scale",
            self.scale,
            "0 <= min <= max (area fractions)",
        )?;
        let [lo, hi] = self.ratio;
        check(
            0.0 < lo && lo <= hi && hi.is_finite(),
            "random_resized_crop.ratio",
            self.ratio,
            "0 < min <= max (aspect ratios w/h)",
        )
    }

    /// `RandomResizedCrop.get_params`: 10 attempts of area `A·U(scale)` and ratio
    /// `exp(U(log ratio))`, `w = round(√(a·r))`, `h = round(√(a/r))`; the first that fits is placed
    /// uniformly; otherwise [`fallback_crop`].
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R, [height, width]: [usize; 2]) -> CropBox {
        let area = (height * width) as f64;
        let log_ratio = self.ratio.map(f64::ln);
        for _ in 0..10 {
            let target_area = area * uniform(rng, self.scale);
            let aspect_ratio = uniform(rng, log_ratio).exp();
            // Python's round: half to even.
            let w = (target_area * aspect_ratio).sqrt().round_ties_even();
            let h = (target_area / aspect_ratio).sqrt().round_ties_even();
            if 0.0 < w && w <= width as f64 && 0.0 < h && h <= height as f64 {
                let (h, w) = (h as usize, w as usize);
                return CropBox {
                    top: rng.random_range(0..=height - h),
                    left: rng.random_range(0..=width - w),
                    height: h,
                    width: w,
                };
            }
        }
        fallback_crop([height, width], self.ratio)
    }

    pub fn apply(&self, image: &Image, crop: &CropBox) -> Image {
        resized_crop(image, *crop, [self.size; 2])
    }
}

/// `RandomResizedCrop.get_params` after 10 failed attempts: the central crop of the whole image
/// with its aspect ratio clamped to `ratio` (`h = round(W / min)` or `w = round(H · max)`).
pub fn fallback_crop([height, width]: [usize; 2], ratio: [f64; 2]) -> CropBox {
    let whole = CropBox {
        top: 0,
        left: 0,
        height,
        width,
    };
    if height == 0 || width == 0 {
        return whole;
    }
    let in_ratio = width as f64 / height as f64;
    let (min, max) = (ratio[0].min(ratio[1]), ratio[0].max(ratio[1]));
    let (h, w) = if in_ratio < min {
        ((width as f64 / min).round_ties_even() as usize, width)
    } else if in_ratio > max {
        (height, (height as f64 * max).round_ties_even() as usize)
    } else {
        return whole;
    };
    CropBox {
        top: height.saturating_sub(h) / 2,
        left: width.saturating_sub(w) / 2,
        height: h,
        width: w,
    }
}

/// `T.RandomHorizontalFlip(p)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandomHorizontalFlip {
    #[serde(default = "default_half")]
    pub p: f64,
}

impl Default for RandomHorizontalFlip {
    fn default() -> Self {
        Self { p: default_half() }
    }
}

impl RandomHorizontalFlip {
    pub fn validate(&self) -> Result<(), TransformError> {
        check_probability("random_horizontal_flip.p", self.p)
    }

    /// `torch.rand(1) < p`.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> bool {
        rng.random::<f64>() < self.p
    }

    pub fn apply(&self, image: &Image, flip: &bool) -> Image {
        if *flip { hflip(image) } else { image.clone() }
    }
}

/// `T.RandomGrayscale(p)`: `F.rgb_to_grayscale(img, num_output_channels=3)` with probability `p`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandomGrayscale {
    #[serde(default = "default_grayscale_p")]
    pub p: f64,
}

impl RandomGrayscale {
    pub fn validate(&self) -> Result<(), TransformError> {
        check_probability("random_grayscale.p", self.p)
    }

    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> bool {
        rng.random::<f64>() < self.p
    }

    pub fn apply(&self, image: &Image, grey: &bool) -> Image {
        if *grey {
            rgb_to_grayscale(image)
        } else {
            image.clone()
        }
    }
}

/// `T.ColorJitter(brightness, contrast, saturation, hue)`: factors drawn from
/// `U[max(0, 1 - b), 1 + b]` (hue from `U[-h, h]`), applied in a random order; a zero strength
/// turns its adjustment off.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColorJitter {
    #[serde(default)]
    pub brightness: f64,
    #[serde(default)]
    pub contrast: f64,
    #[serde(default)]
    pub saturation: f64,
    /// In `[0, 0.5]`.
    #[serde(default)]
    pub hue: f64,
}

/// One draw of [`ColorJitter`]: `order` is torchvision's `fn_idx` (0 brightness, 1 contrast,
/// 2 saturation, 3 hue); `None` where the strength is zero.
#[derive(Clone, Debug, PartialEq)]
pub struct JitterParams {
    pub order: [usize; 4],
    pub brightness: Option<f32>,
    pub contrast: Option<f32>,
    pub saturation: Option<f32>,
    pub hue: Option<f32>,
}

impl ColorJitter {
    pub fn new(brightness: f64, contrast: f64, saturation: f64, hue: f64) -> Self {
        Self {
            brightness,
            contrast,
            saturation,
            hue,
        }
    }

    pub fn validate(&self) -> Result<(), TransformError> {
        for (field, value) in [
            ("color_jitter.brightness", self.brightness),
            ("color_jitter.contrast", self.contrast),
            ("color_jitter.saturation", self.saturation),
        ] {
            check(
                value >= 0.0 && value.is_finite(),
                field,
                value,
                "a non-negative strength",
            )?;
        }
        check(
            (0.0..=0.5).contains(&self.hue),
            "color_jitter.hue",
            self.hue,
            "a strength in [0, 0.5]",
        )
    }

    /// `ColorJitter.get_params`: `fn_idx = randperm(4)`, then each enabled factor.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> JitterParams {
        let mut order = [0, 1, 2, 3];
        order.shuffle(rng);
        let mut factor = |strength: f64| {
            (strength > 0.0)
                .then(|| uniform(rng, [(1.0 - strength).max(0.0), 1.0 + strength]) as f32)
        };
        let (brightness, contrast, saturation) = (
            factor(self.brightness),
            factor(self.contrast),
            factor(self.saturation),
        );
        let hue = (self.hue > 0.0).then(|| uniform(rng, [-self.hue, self.hue]) as f32);
        JitterParams {
            order,
            brightness,
            contrast,
            saturation,
            hue,
        }
    }

    pub fn apply(&self, image: &Image, params: &JitterParams) -> Image {
        let mut image = image.clone();
        for step in params.order {
            image = match (step, params) {
                (
                    0,
                    JitterParams {
                        brightness: Some(f),
                        ..
                    },
                ) => adjust_brightness(&image, *f),
                (
                    1,
                    JitterParams {
                        contrast: Some(f), ..
                    },
                ) => adjust_contrast(&image, *f),
                (
                    2,
                    JitterParams {
                        saturation: Some(f),
                        ..
                    },
                ) => adjust_saturation(&image, *f),
                (3, JitterParams { hue: Some(f), .. }) => adjust_hue(&image, *f),
                _ => image,
            };
        }
        image
    }
}

/// `T.GaussianBlur` with `σ ~ U[sigma]` and kernel size [`gaussian_kernel_size`]`(σ)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GaussianBlur {
    #[serde(default = "default_blur_sigma")]
    pub sigma: [f32; 2],
}

impl Default for GaussianBlur {
    fn default() -> Self {
        Self {
            sigma: default_blur_sigma(),
        }
    }
}

impl GaussianBlur {
    pub fn validate(&self) -> Result<(), TransformError> {
        let [lo, hi] = self.sigma;
        check(
            0.0 < lo && lo <= hi && hi.is_finite(),
            "gaussian_blur.sigma",
            self.sigma,
            "0 < min <= max (pixels)",
        )
    }

    /// `GaussianBlur.get_params`: `σ = torch.empty(1).uniform_(min, max)`.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f32 {
        uniform(rng, self.sigma.map(f64::from)) as f32
    }

    pub fn apply(&self, image: &Image, sigma: &f32) -> Image {
        gaussian_blur(image, gaussian_kernel_size(*sigma), *sigma)
    }
}

/// `T.RandomApply(transforms, p)`: all of `transforms` with probability `p`, else none.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandomApply {
    #[serde(default = "default_half")]
    pub p: f64,
    pub transforms: Vec<Transform>,
}

impl RandomApply {
    pub fn validate(&self) -> Result<(), TransformError> {
        check_probability("random_apply.p", self.p)?;
        self.transforms.iter().try_for_each(Transform::validate)
    }

    /// `p < torch.rand(1)` skips.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> bool {
        rng.random::<f64>() < self.p
    }

    pub fn apply<R: Rng + ?Sized>(&self, image: Image, applied: &bool, rng: &mut R) -> Image {
        if !*applied {
            return image;
        }
        self.transforms
            .iter()
            .fold(image, |image, t| t.apply(image, rng))
    }
}

/// `T.Resize(round(size · 8/7))` → `T.CenterCrop(size)`: the evaluation view (256 → 224).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResizeCenterCrop {
    pub size: usize,
}

impl ResizeCenterCrop {
    pub fn validate(&self) -> Result<(), TransformError> {
        check(
            self.size > 0,
            "resize_center_crop.size",
            self.size,
            "at least 1 pixel",
        )
    }

    /// The short side before cropping: `round(size · 8/7)`, 256 for 224.
    pub fn resize(&self) -> usize {
        (self.size as f64 * 8.0 / 7.0).round_ties_even() as usize
    }

    pub fn apply(&self, image: &Image) -> Image {
        center_crop(&resize_short_side(image, self.resize()), self.size)
    }
}

/// One step of a [`Pipeline`], as configs name it (`{"random_grayscale": {"p": 0.2}}`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transform {
    RandomResizedCrop(RandomResizedCrop),
    RandomHorizontalFlip(RandomHorizontalFlip),
    ColorJitter(ColorJitter),
    RandomGrayscale(RandomGrayscale),
    GaussianBlur(GaussianBlur),
    RandomApply(RandomApply),
    ResizeCenterCrop(ResizeCenterCrop),
}

impl Transform {
    pub fn validate(&self) -> Result<(), TransformError> {
        match self {
            Transform::RandomResizedCrop(t) => t.validate(),
            Transform::RandomHorizontalFlip(t) => t.validate(),
            Transform::ColorJitter(t) => t.validate(),
            Transform::RandomGrayscale(t) => t.validate(),
            Transform::GaussianBlur(t) => t.validate(),
            Transform::RandomApply(t) => t.validate(),
            Transform::ResizeCenterCrop(t) => t.validate(),
        }
    }

    /// Draws the parameters for `image` (its size as it arrives here) and applies them.
    pub fn apply<R: Rng + ?Sized>(&self, image: Image, rng: &mut R) -> Image {
        match self {
            Transform::RandomResizedCrop(t) => {
                let crop = t.sample(rng, dims(&image));
                t.apply(&image, &crop)
            }
            Transform::RandomHorizontalFlip(t) => {
                let flip = t.sample(rng);
                t.apply(&image, &flip)
            }
            Transform::ColorJitter(t) => {
                let params = t.sample(rng);
                t.apply(&image, &params)
            }
            Transform::RandomGrayscale(t) => {
                let grey = t.sample(rng);
                t.apply(&image, &grey)
            }
            Transform::GaussianBlur(t) => {
                let sigma = t.sample(rng);
                t.apply(&image, &sigma)
            }
            Transform::RandomApply(t) => {
                let applied = t.sample(rng);
                t.apply(image, &applied, rng)
            }
            Transform::ResizeCenterCrop(t) => t.apply(&image),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Pipelines
// ---------------------------------------------------------------------------------------------

/// An augmentation recipe: a named preset or an explicit list of transforms. Configs write
/// `{"moco_v2": {"size": 224}}` or `{"custom": [{"random_horizontal_flip": {}}]}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Pipeline {
    /// `ws.md` §4.1 train: RandomResizedCrop(size) → flip.
    ImagenetTrain {
        size: usize,
    },
    /// `ws.md` §4.1 eval: resize short side to `round(size · 8/7)` → center crop `size`.
    ImagenetEval {
        size: usize,
    },
    /// `co2-moco.md` §4.1 v1.
    MocoV1 {
        size: usize,
    },
    /// `co2-moco.md` §4.1 v2 (`aug_plus`).
    MocoV2 {
        size: usize,
    },
    Custom(Vec<Transform>),
}

impl Pipeline {
    pub fn imagenet_train(size: usize) -> Self {
        Pipeline::ImagenetTrain { size }
    }

    pub fn imagenet_eval(size: usize) -> Self {
        Pipeline::ImagenetEval { size }
    }

    pub fn moco_v1(size: usize) -> Self {
        Pipeline::MocoV1 { size }
    }

    pub fn moco_v2(size: usize) -> Self {
        Pipeline::MocoV2 { size }
    }

    /// The transforms, in order.
    pub fn transforms(&self) -> Vec<Transform> {
        let moco_crop = |size| RandomResizedCrop {
            scale: [0.2, 1.0],
            ..RandomResizedCrop::new(size)
        };
        let flip = Transform::RandomHorizontalFlip(RandomHorizontalFlip::default());
        let grayscale = Transform::RandomGrayscale(RandomGrayscale { p: 0.2 });
        match *self {
            Pipeline::ImagenetTrain { size } => vec![
                Transform::RandomResizedCrop(RandomResizedCrop::new(size)),
                flip,
            ],
            Pipeline::ImagenetEval { size } => {
                vec![Transform::ResizeCenterCrop(ResizeCenterCrop { size })]
            }
            Pipeline::MocoV1 { size } => vec![
                Transform::RandomResizedCrop(moco_crop(size)),
                grayscale,
                Transform::ColorJitter(ColorJitter::new(0.4, 0.4, 0.4, 0.4)),
                flip,
            ],
            Pipeline::MocoV2 { size } => vec![
                Transform::RandomResizedCrop(moco_crop(size)),
                Transform::RandomApply(RandomApply {
                    p: 0.8,
                    transforms: vec![Transform::ColorJitter(ColorJitter::new(0.4, 0.4, 0.4, 0.1))],
                }),
                grayscale,
                Transform::RandomApply(RandomApply {
                    p: 0.5,
                    transforms: vec![Transform::GaussianBlur(GaussianBlur::default())],
                }),
                flip,
            ],
            Pipeline::Custom(ref transforms) => transforms.clone(),
        }
    }

    pub fn validate(&self) -> Result<(), TransformError> {
        self.transforms().iter().try_for_each(Transform::validate)
    }

    pub fn apply<R: Rng + ?Sized>(&self, image: Image, rng: &mut R) -> Image {
        self.transforms()
            .iter()
            .fold(image, |image, t| t.apply(image, rng))
    }
}

/// Two views of one image drawn independently from the same pipeline: MoCo's query and key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwoCrops {
    pub pipeline: Pipeline,
}

impl TwoCrops {
    /// `[query, key]`, drawn one after the other from `rng`.
    pub fn apply<R: Rng + ?Sized>(&self, image: &Image, rng: &mut R) -> [Image; 2] {
        let query = self.pipeline.apply(image.clone(), rng);
        let key = self.pipeline.apply(image.clone(), rng);
        [query, key]
    }
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The generator of the augmentation of image `index` in `epoch`: an image's views are a function
/// of (seed, epoch, index) alone, whatever thread renders it and in whatever order.
pub fn augmentation_rng(seed: u64, epoch: u64, index: u64) -> Xoshiro256PlusPlus {
    let mixed = splitmix64(splitmix64(splitmix64(seed) ^ epoch) ^ index);
    Xoshiro256PlusPlus::seed_from_u64(mixed)
}

/// A dataset whose items pass through `pipeline`, augmented as a function of
/// (seed, epoch, index).
///
/// The epoch is a shared counter that the training loop sets before it iterates the epoch:
///
/// ```ignore
/// let train = Augmented::new(dataset, Pipeline::imagenet_train(224), seed)?;
/// let epoch = train.epoch();
/// let loader = EpochLoader::new(Arc::new(train), batcher, 256, device).shuffle(seed);
/// for e in start_epoch..epochs {
///     epoch.store(e, Ordering::SeqCst);
///     for batch in loader.iter() { /* ... */ }
/// }
/// ```
///
/// [`crate::EpochLoader`] counts its own epochs and renders ahead only within the epoch of an
/// `iter()`, so storing `e` before that `iter()` and leaving it until the epoch is consumed keeps
/// both in step (a resumed run stores its first epoch, as it passes it to `starting_at_epoch`).
pub struct Augmented<D> {
    dataset: D,
    pipeline: Pipeline,
    seed: u64,
    epoch: Arc<AtomicUsize>,
}

impl<D> Augmented<D> {
    /// Checks the pipeline; the epoch starts at 0.
    pub fn new(dataset: D, pipeline: Pipeline, seed: u64) -> Result<Self, TransformError> {
        pipeline.validate()?;
        Ok(Self {
            dataset,
            pipeline,
            seed,
            epoch: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// The epoch counter, to set from the training loop (or share with another dataset).
    pub fn epoch(&self) -> Arc<AtomicUsize> {
        self.epoch.clone()
    }

    pub fn with_epoch(self, epoch: Arc<AtomicUsize>) -> Self {
        Self { epoch, ..self }
    }
}

impl<D: Dataset<ClassificationItem>> Dataset<ClassificationItem> for Augmented<D> {
    fn get(&self, index: usize) -> Option<ClassificationItem> {
        let (image, label, mut rng) =
            image_to_augment(&self.dataset, index, self.seed, &self.epoch)?;
        Some(image_item(self.pipeline.apply(image, &mut rng), label))
    }

    fn len(&self) -> usize {
        self.dataset.len()
    }
}

/// Item `index` as an image, its label, and the generator of its augmentation in the current epoch;
/// an inconsistent item is reported through [`crate::load_failed`].
fn image_to_augment<D: Dataset<ClassificationItem>>(
    dataset: &D,
    index: usize,
    seed: u64,
    epoch: &AtomicUsize,
) -> Option<(Image, usize, Xoshiro256PlusPlus)> {
    let item = dataset.get(index)?;
    let image = match item_image(&item) {
        Ok(image) => image,
        Err(e) => return crate::load_failed(format!("item {index}: {e}")),
    };
    let epoch = epoch.load(Ordering::SeqCst) as u64;
    Some((
        image,
        item.label,
        augmentation_rng(seed, epoch, index as u64),
    ))
}

/// Two views of each item (MoCo's query and key, [`TwoCrops`]), as a function of
/// (seed, epoch, index) like [`Augmented`]; the item's label is kept.
pub struct TwoViews<D> {
    dataset: D,
    crops: TwoCrops,
    seed: u64,
    epoch: Arc<AtomicUsize>,
}

/// An image's two views, `[H, W, 3]` each in `[0, 1]`, and its label (unused by pre-training).
#[derive(Clone, Debug, PartialEq)]
pub struct ViewPair {
    pub query: ClassificationItem,
    pub key: ClassificationItem,
}

impl<D> TwoViews<D> {
    pub fn new(
        dataset: D,
        pipeline: Pipeline,
        seed: u64,
        epoch: Arc<AtomicUsize>,
    ) -> Result<Self, TransformError> {
        pipeline.validate()?;
        Ok(Self {
            dataset,
            crops: TwoCrops { pipeline },
            seed,
            epoch,
        })
    }
}

impl<D: Dataset<ClassificationItem>> Dataset<ViewPair> for TwoViews<D> {
    fn get(&self, index: usize) -> Option<ViewPair> {
        let (image, label, mut rng) =
            image_to_augment(&self.dataset, index, self.seed, &self.epoch)?;
        let [query, key] = self.crops.apply(&image, &mut rng);
        Some(ViewPair {
            query: image_item(query, label),
            key: image_item(key, label),
        })
    }

    fn len(&self) -> usize {
        self.dataset.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::data::dataset::InMemDataset;

    fn gradient(h: u32, w: u32) -> Image {
        Image::from_fn(w, h, |x, y| {
            image::Rgb([
                x as f32 / w as f32,
                y as f32 / h as f32,
                ((x + 2 * y) % 7) as f32 / 7.0,
            ])
        })
    }

    #[test]
    fn crops_lie_inside_the_image_with_area_and_ratio_in_range() {
        let crop = RandomResizedCrop::new(32);
        let (h, w) = (1000usize, 1200usize);
        let mut rng = augmentation_rng(1, 2, 3);
        for _ in 0..2000 {
            let b = crop.sample(&mut rng, [h, w]);
            assert!(b.height > 0 && b.width > 0, "{b:?}");
            assert!(b.top + b.height <= h && b.left + b.width <= w, "{b:?}");
            // Rounding w and h to pixels moves area and ratio by well under 1% at this size.
            let area = (b.height * b.width) as f64 / (h * w) as f64;
            assert!((0.08 * 0.99..=1.0).contains(&area), "area {area}");
            let ratio = b.width as f64 / b.height as f64;
            assert!(
                (0.75 * 0.99..=4.0 / 3.0 * 1.01).contains(&ratio),
                "ratio {ratio}"
            );
        }
        // Small images too: always inside.
        for dims in [[1, 1], [3, 17], [9, 12], [17, 3]] {
            for _ in 0..200 {
                let b = crop.sample(&mut rng, dims);
                assert!(b.top + b.height <= dims[0] && b.left + b.width <= dims[1]);
                assert!(b.height > 0 && b.width > 0, "{dims:?}: {b:?}");
            }
        }
    }

    #[test]
    fn impossible_ranges_fall_back_to_the_clamped_central_crop() {
        let mut rng = augmentation_rng(0, 0, 0);
        let crop = |scale, ratio| RandomResizedCrop {
            size: 8,
            scale,
            ratio,
        };
        // Image wider (12/9) than any ratio allows: full width, h = round(12 / 10).
        let b = crop([0.5, 1.0], [10.0, 20.0]).sample(&mut rng, [9, 12]);
        assert_eq!(
            b,
            CropBox {
                top: 4,
                left: 0,
                height: 1,
                width: 12
            }
        );
        // Taller than allowed: full height, w = round(9 · 0.2) = 2.
        let b = crop([0.5, 1.0], [0.1, 0.2]).sample(&mut rng, [9, 12]);
        assert_eq!(
            b,
            CropBox {
                top: 0,
                left: 5,
                height: 9,
                width: 2
            }
        );
        // Areas above the image's: the whole image.
        let b = crop([1.5, 2.0], [1.0, 2.0]).sample(&mut rng, [9, 12]);
        assert_eq!(
            b,
            CropBox {
                top: 0,
                left: 0,
                height: 9,
                width: 12
            }
        );
        assert_eq!(
            fallback_crop([0, 5], [0.75, 4.0 / 3.0]),
            CropBox {
                top: 0,
                left: 0,
                height: 0,
                width: 5
            }
        );
    }

    #[test]
    fn jitter_draws_a_permutation_and_factors_in_range() {
        let jitter = ColorJitter::new(0.4, 1.5, 0.0, 0.1);
        let mut rng = augmentation_rng(5, 0, 0);
        let mut orders = std::collections::HashSet::new();
        for _ in 0..500 {
            let p = jitter.sample(&mut rng);
            let mut sorted = p.order;
            sorted.sort();
            assert_eq!(sorted, [0, 1, 2, 3]);
            orders.insert(p.order);
            assert!((0.6..1.4).contains(&p.brightness.unwrap()));
            // max(0, 1 - 1.5) = 0.
            assert!((0.0..2.5).contains(&p.contrast.unwrap()));
            assert_eq!(p.saturation, None, "zero strength turns it off");
            assert!((-0.1..0.1).contains(&p.hue.unwrap()));
        }
        assert_eq!(orders.len(), 24, "every order occurs");
    }

    #[test]
    fn gaussian_kernels_are_normalised_and_three_sigma_wide() {
        assert_eq!(gaussian_kernel_size(0.1), 3);
        assert_eq!(gaussian_kernel_size(1.0), 7);
        assert_eq!(gaussian_kernel_size(2.0), 13);
        let k = gaussian_kernel(13, 2.0);
        assert!((k.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert_eq!(k[0], k[12]);
        assert!(k[6] > k[5] && k[5] > k[0]);
        // A kernel wider than the image still blurs (repeated reflection), and keeps constants.
        let flat = Image::from_pixel(3, 2, image::Rgb([0.25, 0.5, 0.75]));
        let blurred = gaussian_blur(&flat, 13, 2.0);
        for (a, b) in blurred.as_raw().iter().zip(flat.as_raw()) {
            assert!((a - b).abs() < 1e-6);
        }
        assert_eq!(reflect(-1, 4), 1);
        assert_eq!(reflect(4, 4), 2);
        assert_eq!(reflect(-7, 4), 1);
    }

    #[test]
    fn probabilities_zero_and_one_are_never_and_always() {
        let image = gradient(6, 8);
        let mut rng = augmentation_rng(0, 0, 0);
        let never = Pipeline::Custom(vec![
            Transform::RandomHorizontalFlip(RandomHorizontalFlip { p: 0.0 }),
            Transform::RandomGrayscale(RandomGrayscale { p: 0.0 }),
            Transform::RandomApply(RandomApply {
                p: 0.0,
                transforms: vec![Transform::GaussianBlur(GaussianBlur::default())],
            }),
        ]);
        assert_eq!(never.apply(image.clone(), &mut rng), image);
        let flip = Transform::RandomHorizontalFlip(RandomHorizontalFlip { p: 1.0 });
        assert_eq!(flip.apply(image.clone(), &mut rng), hflip(&image));
        let grey = Transform::RandomGrayscale(RandomGrayscale { p: 1.0 });
        assert_eq!(
            grey.apply(image.clone(), &mut rng),
            rgb_to_grayscale(&image)
        );
    }

    #[test]
    fn presets_give_their_sizes_and_stay_in_range() {
        let image = gradient(40, 50);
        for (pipeline, size) in [
            (Pipeline::imagenet_train(16), [16, 16]),
            (Pipeline::imagenet_eval(16), [16, 16]),
            (Pipeline::moco_v1(16), [16, 16]),
            (Pipeline::moco_v2(16), [16, 16]),
        ] {
            pipeline.validate().unwrap();
            for index in 0..20 {
                let out = pipeline.apply(image.clone(), &mut augmentation_rng(3, 0, index));
                assert_eq!(dims(&out), size, "{pipeline:?}");
                assert!(out.as_raw().iter().all(|x| (0.0..=1.0).contains(x)));
            }
        }
        assert_eq!(ResizeCenterCrop { size: 224 }.resize(), 256);
        // torchvision Resize: the long side truncated, int(256 · 500 / 375) = 341.
        let resized = resize_short_side(&gradient(375, 500), 256);
        assert_eq!(dims(&resized), [256, 341]);
    }

    #[test]
    fn augmentations_are_a_function_of_seed_epoch_and_index() {
        let image = gradient(24, 30);
        let pipeline = Pipeline::moco_v2(12);
        let view = |seed, epoch, index| {
            pipeline.apply(image.clone(), &mut augmentation_rng(seed, epoch, index))
        };
        assert_eq!(view(7, 3, 11), view(7, 3, 11));
        assert_ne!(view(7, 3, 11), view(7, 4, 11));
        assert_ne!(view(7, 3, 11), view(7, 3, 12));
        assert_ne!(view(7, 3, 11), view(8, 3, 11));
        let [query, key] = TwoCrops { pipeline }.apply(&image, &mut augmentation_rng(7, 3, 11));
        assert_ne!(query, key, "query and key are drawn independently");
    }

    #[test]
    fn the_augmented_dataset_follows_the_epoch_counter() {
        let image = gradient(20, 20);
        let items = vec![image_item(image, 4); 3];
        let data =
            Augmented::new(InMemDataset::new(items), Pipeline::imagenet_train(8), 9).unwrap();
        assert_eq!(data.len(), 3);
        let first = data.get(1).unwrap();
        assert_eq!(
            (first.size, first.label, first.pixels.len()),
            ([8, 8], 4, 8 * 8 * 3)
        );
        assert_eq!(data.get(1), Some(first.clone()));
        data.epoch().store(1, Ordering::SeqCst);
        assert_ne!(data.get(1), Some(first.clone()));
        data.epoch().store(0, Ordering::SeqCst);
        assert_eq!(data.get(1), Some(first));
        assert_eq!(data.get(3), None);
    }

    #[test]
    fn invalid_settings_name_the_field_and_the_range() {
        let cases: Vec<(Transform, &str)> = vec![
            (
                Transform::ColorJitter(ColorJitter::new(-0.1, 0.0, 0.0, 0.0)),
                "color_jitter.brightness",
            ),
            (
                Transform::ColorJitter(ColorJitter::new(0.0, 0.0, 0.0, 0.6)),
                "color_jitter.hue",
            ),
            (
                Transform::RandomResizedCrop(RandomResizedCrop {
                    scale: [0.9, 0.2],
                    ..RandomResizedCrop::new(8)
                }),
                "random_resized_crop.scale",
            ),
            (
                Transform::RandomResizedCrop(RandomResizedCrop::new(0)),
                "random_resized_crop.size",
            ),
            (
                Transform::RandomGrayscale(RandomGrayscale { p: 1.5 }),
                "random_grayscale.p",
            ),
            (
                Transform::RandomApply(RandomApply {
                    p: 0.5,
                    transforms: vec![Transform::GaussianBlur(GaussianBlur { sigma: [0.0, 1.0] })],
                }),
                "gaussian_blur.sigma",
            ),
            (
                Transform::ResizeCenterCrop(ResizeCenterCrop { size: 0 }),
                "resize_center_crop.size",
            ),
        ];
        for (transform, field) in cases {
            let err = transform.validate().unwrap_err().to_string();
            assert!(err.contains(field) && err.contains("expected"), "{err}");
        }
        let bad = Pipeline::Custom(vec![Transform::RandomHorizontalFlip(
            RandomHorizontalFlip { p: f64::NAN },
        )]);
        let data: Vec<ClassificationItem> = vec![];
        assert!(Augmented::new(InMemDataset::new(data), bad, 0).is_err());
        let item = ClassificationItem {
            pixels: vec![0.0; 5],
            size: [2, 2],
            label: 0,
        };
        assert!(item_image(&item).unwrap_err().to_string().contains("12"));
    }

    #[test]
    fn configs_name_presets_and_transforms_with_torchvision_defaults() {
        let preset: Pipeline = serde_json::from_str(r#"{"moco_v2": {"size": 224}}"#).unwrap();
        assert_eq!(preset, Pipeline::moco_v2(224));
        let custom: Pipeline = serde_json::from_str(
            r#"{"custom": [{"random_resized_crop": {"size": 32}}, {"random_horizontal_flip": {}},
                {"random_apply": {"p": 0.8, "transforms": [{"color_jitter": {"hue": 0.1}}]}}]}"#,
        )
        .unwrap();
        let transforms = custom.transforms();
        assert_eq!(
            transforms[0],
            Transform::RandomResizedCrop(RandomResizedCrop::new(32))
        );
        assert_eq!(
            transforms[1],
            Transform::RandomHorizontalFlip(RandomHorizontalFlip { p: 0.5 })
        );
        for pipeline in [Pipeline::moco_v1(8), custom] {
            let json = serde_json::to_string(&pipeline).unwrap();
            assert_eq!(serde_json::from_str::<Pipeline>(&json).unwrap(), pipeline);
        }
        let typo = serde_json::from_str::<Pipeline>(
            r#"{"custom": [{"random_grayscale": {"prob": 0.2}}]}"#,
        );
        assert!(typo.unwrap_err().to_string().contains("prob"));
    }
}
