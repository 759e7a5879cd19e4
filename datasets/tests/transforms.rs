//! Every transform against torchvision 0.29.2 (torch 2.15, CPU), on the fixed 9×12 image of
//! `fixtures/make_transform_fixtures.py`. The input is `img`, a `[3, 9, 12]` float32 tensor; the
//! fixture stores it and every output HWC (`normalize`: CHW) with 8 significant digits.

use datasets::{
    Normalization,
    transforms::{
        self, ColorJitter, CropBox, GaussianBlur, Image, JitterParams, RandomResizedCrop,
        ResizeCenterCrop,
    },
};
use serde_json::Value;

// A module so that `cargo test -p datasets transforms` selects these tests too.
mod transforms_vs_torchvision {
    use super::*;

    fn fixture() -> Value {
        let text = include_str!("fixtures/transforms.json");
        serde_json::from_str(text).expect("fixtures/transforms.json is valid JSON")
    }

    fn floats(v: &Value) -> Vec<f32> {
        v.as_array()
            .expect("an array of numbers")
            .iter()
            .map(|x| x.as_f64().expect("a number") as f32)
            .collect()
    }

    fn image(v: &Value) -> Image {
        let size: Vec<u32> = v["size"]
            .as_array()
            .expect("[h, w]")
            .iter()
            .map(|x| x.as_u64().expect("a size") as u32)
            .collect();
        Image::from_raw(size[1], size[0], floats(&v["pixels"])).expect("H·W·3 pixels")
    }

    /// The `index`-th fixture case called `name`.
    fn case(name: &str, index: usize) -> (Image, Value) {
        let fixture = fixture();
        let found = fixture["cases"]
            .as_array()
            .expect("cases")
            .iter()
            .filter(|c| c["name"] == name)
            .nth(index)
            .unwrap_or_else(|| panic!("fixture case {name} #{index}"))
            .clone();
        (image(&found["output"]), found)
    }

    fn input() -> Image {
        image(&fixture()["input"])
    }

    /// Max |got - expected|, asserted `<= tolerance` with the same shape.
    fn assert_close(got: &Image, expected: &Image, tolerance: f32, what: &str) -> f32 {
        assert_eq!(got.dimensions(), expected.dimensions(), "{what}: size");
        let err = max_error(got.as_raw(), expected.as_raw());
        println!("{what}: max abs error {err:.3e} (tolerance {tolerance:.0e})");
        assert!(
            err <= tolerance,
            "{what}: max abs error {err} > {tolerance}"
        );
        err
    }

    fn max_error(got: &[f32], expected: &[f32]) -> f32 {
        assert_eq!(got.len(), expected.len());
        got.iter()
            .zip(expected)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max)
    }

    /// Pointwise colour operations: float32 arithmetic in a different order than torch's.
    const POINTWISE: f32 = 1e-5;

    #[test]
    fn adjust_brightness_matches_torchvision() {
        // F.adjust_brightness(img, 1.3)
        let (expected, _) = case("adjust_brightness", 0);
        let got = transforms::adjust_brightness(&input(), 1.3);
        assert_close(&got, &expected, POINTWISE, "adjust_brightness 1.3");
    }

    #[test]
    fn adjust_contrast_matches_torchvision() {
        // F.adjust_contrast(img, 0.6)
        let (expected, _) = case("adjust_contrast", 0);
        let got = transforms::adjust_contrast(&input(), 0.6);
        assert_close(&got, &expected, POINTWISE, "adjust_contrast 0.6");
    }

    #[test]
    fn adjust_saturation_matches_torchvision() {
        // F.adjust_saturation(img, 1.7)
        let (expected, _) = case("adjust_saturation", 0);
        let got = transforms::adjust_saturation(&input(), 1.7);
        assert_close(&got, &expected, POINTWISE, "adjust_saturation 1.7");
    }

    #[test]
    fn adjust_hue_matches_torchvision() {
        // F.adjust_hue(img, 0.12)
        let (expected, _) = case("adjust_hue", 0);
        let got = transforms::adjust_hue(&input(), 0.12);
        assert_close(&got, &expected, POINTWISE, "adjust_hue 0.12");
        // F.adjust_hue(img, -0.3)
        let (expected, _) = case("adjust_hue", 1);
        let got = transforms::adjust_hue(&input(), -0.3);
        assert_close(&got, &expected, POINTWISE, "adjust_hue -0.3");
    }

    #[test]
    fn rgb_to_grayscale_matches_torchvision() {
        // F.rgb_to_grayscale(img, num_output_channels=3)
        let (expected, _) = case("rgb_to_grayscale", 0);
        let got = transforms::rgb_to_grayscale(&input());
        assert_close(&got, &expected, POINTWISE, "rgb_to_grayscale");
    }

    #[test]
    fn color_jitter_applies_in_the_drawn_order() {
        // F.adjust_contrast(F.adjust_hue(F.adjust_brightness(F.adjust_saturation(img, 0.8), 1.2), -0.05), 1.1)
        // i.e. ColorJitter.forward with fn_idx = [2, 0, 3, 1].
        let (expected, _) = case("color_jitter", 0);
        let params = JitterParams {
            order: [2, 0, 3, 1],
            brightness: Some(1.2),
            contrast: Some(1.1),
            saturation: Some(0.8),
            hue: Some(-0.05),
        };
        let got = ColorJitter::new(0.4, 0.4, 0.4, 0.1).apply(&input(), &params);
        assert_close(&got, &expected, POINTWISE, "color_jitter");
    }

    #[test]
    fn gaussian_blur_matches_torchvision() {
        for (index, sigma) in [(0, 0.8f32), (1, 1.7)] {
            // F.gaussian_blur(img, kernel_size=[7, 7], sigma=[0.8, 0.8])
            // F.gaussian_blur(img, kernel_size=[13, 13], sigma=[1.7, 1.7])
            let (expected, case) = case("gaussian_blur", index);
            let k = transforms::gaussian_kernel_size(sigma);
            assert_eq!(k as u64, case["params"]["kernel_size"].as_u64().unwrap());
            let got = GaussianBlur::default().apply(&input(), &sigma);
            // Separable vs torch's single 2-D convolution: rounding only.
            assert_close(
                &got,
                &expected,
                POINTWISE,
                &format!("gaussian_blur σ {sigma}"),
            );
        }
    }

    /// Resizing: the `image` crate's Triangle filter and torch's antialiased bilinear kernel are the
    /// same PIL-style filter (centre `(i + ½)·scale`, support widened by the downscale factor, weights
    /// renormalised at the border). Measured max abs error 1.2e-7 (downscale 7×9 → 4×5), 6.0e-8
    /// (upscale 5×6 → 11×13), 1.2e-7 (resize 7 + center crop 6): float rounding only.
    const RESIZE: f32 = 1e-5;

    #[test]
    fn resized_crop_matches_torchvision() {
        for (index, crop, size) in [
            // F.resized_crop(img, 1, 2, 7, 9, [4, 5], antialias=True)
            (0, [1, 2, 7, 9], [4, 5]),
            // F.resized_crop(img, 2, 3, 5, 6, [11, 13], antialias=True)
            (1, [2, 3, 5, 6], [11, 13]),
        ] {
            let (expected, _) = case("resized_crop", index);
            let [top, left, height, width] = crop;
            let crop = CropBox {
                top,
                left,
                height,
                width,
            };
            let got = transforms::resized_crop(&input(), crop, size);
            assert_close(
                &got,
                &expected,
                RESIZE,
                &format!("resized_crop {crop:?} -> {size:?}"),
            );
        }
        // RandomResizedCrop.apply is resized_crop to a square.
        let square = RandomResizedCrop::new(5).apply(
            &input(),
            &CropBox {
                top: 1,
                left: 2,
                height: 7,
                width: 9,
            },
        );
        assert_eq!(square.dimensions(), (5, 5));
    }

    #[test]
    fn hflip_matches_torchvision() {
        // F.hflip(img)
        let (expected, _) = case("hflip", 0);
        assert_close(&transforms::hflip(&input()), &expected, 0.0, "hflip");
    }

    #[test]
    fn resize_center_crop_matches_torchvision() {
        // F.center_crop(F.resize(img, 7, antialias=True), 6)
        let (expected, _) = case("resize_center_crop", 0);
        let eval = ResizeCenterCrop { size: 6 };
        assert_eq!(eval.resize(), 7);
        assert_close(
            &eval.apply(&input()),
            &expected,
            RESIZE,
            "resize 7 + center_crop 6",
        );
    }

    #[test]
    fn normalize_matches_torchvision() {
        // F.normalize(img, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
        let fixture = fixture();
        let expected = floats(&fixture["normalize"]["chw"]);
        let got = transforms::normalize(&input(), &Normalization::IMAGENET);
        let err = max_error(&got, &expected);
        println!("normalize: max abs error {err:.3e}");
        assert!(err <= POINTWISE, "normalize: {err}");
    }

    #[test]
    fn random_resized_crop_falls_back_like_torchvision() {
        let fixture = fixture();
        for fallback in fixture["fallbacks"].as_array().expect("fallbacks") {
            // e.g. T.RandomResizedCrop.get_params(img, [0.5, 1.0], [10.0, 20.0]) for any torch seed
            let pair = |key: &str| {
                let v: Vec<f64> = fallback[key]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_f64().unwrap())
                    .collect();
                [v[0], v[1]]
            };
            let expected: Vec<usize> = fallback["box"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as usize)
                .collect();
            let crop = RandomResizedCrop {
                size: 4,
                scale: pair("scale"),
                ratio: pair("ratio"),
            };
            for seed in 0..5 {
                let mut rng = datasets::augmentation_rng(seed, 0, 0);
                let got = crop.sample(&mut rng, [9, 12]);
                assert_eq!(
                    [got.top, got.left, got.height, got.width].as_slice(),
                    expected.as_slice(),
                    "{}",
                    fallback["call"]
                );
            }
        }
    }
}
