//! The kernels in f64 against burn's composed operations, at f64 precision. Its own test binary:
//! the device's default float type is switched to f64 before any tensor exists.

mod common;

use burn::{
    backend::{Flex, flex::FlexDevice},
    tensor::DType,
};

fn f64_default() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        burn::tensor::set_default_dtypes::<Flex>(&FlexDevice, DType::F64, DType::I32)
            .expect("the f64 default is set before any tensor is created");
    });
}

#[test]
fn convolution_matches_burn() {
    f64_default();
    common::check_conv(DType::F64, 1e-12);
}

#[test]
fn group_norm_matches_composition() {
    f64_default();
    // The composition itself is off by ~1e-9 here: against central differences (h = 1e-6) on
    // the first case the kernel's input gradient agreed to 2e-10 where burn's composed one was
    // 1.5e-9 away, so the bound is the composition's error, not the kernel's.
    common::check_group_norm(DType::F64, 1e-8);
}

#[test]
fn batch_norm_matches_composition() {
    f64_default();
    common::check_batch_norm(DType::F64, 1e-8);
}

#[test]
fn fixed_statistics_batch_norm_matches_composition() {
    f64_default();
    common::check_batch_norm_fixed(DType::F64, 1e-8);
}

#[test]
fn composed_bilinear_resize_matches_burn() {
    f64_default();
    common::check_interpolate(DType::F64, 1e-12);
}

#[test]
fn inference_path_matches_autodiff_path() {
    f64_default();
    common::check_inner(DType::F64, 0.0);
}
