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

/// The GPU backends' norms (`core_ops::segments`: statistics per segment, the backward from
/// per-plane or per-channel sums, one autodiff node) with the reductions composed, as on any
/// backend without the CubeCL kernels: the algebra, at f64 precision.
#[test]
fn segment_norms_match_composition() {
    f64_default();
    common::check_group_norm_of(DType::F64, 1e-8, core_ops::segments::autodiff::group_norm);
    common::check_batch_norm_of(
        DType::F64,
        1e-8,
        core_ops::segments::autodiff::batch_norm_train,
    );
}

#[test]
fn fixed_statistics_batch_norm_matches_composition() {
    f64_default();
    common::check_batch_norm_fixed(DType::F64, 1e-8);
}

#[test]
fn weight_standardization_matches_composition() {
    f64_default();
    // The composition's weight gradient is ~1e-8 off (relative) in f64, the kernel's is not: see
    // the central-difference test below.
    common::check_standardize(DType::F64, 1e-7);
}

#[test]
fn weight_standardization_gradient_matches_central_differences() {
    use burn::tensor::{Tensor, TensorData};
    f64_default();
    let ws = core_ops::Standardization {
        unbiased: true,
        eps: 1e-5,
        eps_inside_root: false,
    };
    let shape = [4, 3, 3, 3];
    let w = common::fixed(shape, 300, 0.2, DType::F64).add_scalar(0.05);
    let kernel = common::run(
        std::slice::from_ref(&w),
        &[],
        |t, _| core_ops::standardize_weight(t[0].clone(), ws),
        DType::F64,
    );
    // `run` differentiates Σ out·r with r = fixed(out shape, seed 99).
    let r = common::values(common::fixed(shape, 99, 1.0, DType::F64));
    let loss = |values: Vec<f64>| -> f64 {
        let w: Tensor<common::Ad, 4> =
            Tensor::from_data(TensorData::new(values, shape), &FlexDevice);
        let out = common::values(core_ops::standardize_weight(w, ws));
        out.iter().zip(&r).map(|(o, r)| o * r).sum()
    };
    let base = common::values(w);
    let h = 1e-6;
    for i in [0, 5, 33, 60, 107] {
        let at = |delta: f64| {
            let mut v = base.clone();
            v[i] += delta;
            loss(v)
        };
        let central = (at(h) - at(-h)) / (2.0 * h);
        let analytic = kernel[1][i];
        assert!(
            (central - analytic).abs() <= 1e-9 * (1.0 + central.abs()),
            "element {i}: kernel {analytic}, central differences {central}"
        );
    }
}

#[test]
fn bilinear_resize_matches_burn() {
    f64_default();
    common::check_interpolate(DType::F64, 1e-12);
}

#[test]
fn max_pool_matches_burn() {
    f64_default();
    common::check_max_pool(DType::F64, 1e-14);
}

#[test]
fn inference_path_matches_autodiff_path() {
    f64_default();
    common::check_inner(DType::F64, 0.0);
}
