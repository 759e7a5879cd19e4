//! The kernels in f32 (vireo's training precision) against burn's composed operations.

mod common;

use burn::tensor::DType;

#[test]
fn convolution_matches_burn() {
    common::check_conv(DType::F32, 2e-5);
}

#[test]
fn group_norm_matches_composition() {
    common::check_group_norm(DType::F32, 2e-5);
}

#[test]
fn batch_norm_matches_composition() {
    common::check_batch_norm(DType::F32, 2e-5);
}

#[test]
fn fixed_statistics_batch_norm_matches_composition() {
    common::check_batch_norm_fixed(DType::F32, 2e-5);
}

#[test]
fn weight_standardization_matches_composition() {
    common::check_standardize(DType::F32, 2e-5);
}

#[test]
fn bilinear_resize_matches_burn() {
    common::check_interpolate(DType::F32, 1e-5);
}

#[test]
fn inference_path_matches_autodiff_path() {
    common::check_inner(DType::F32, 0.0);
}

#[test]
fn dispatch_picks_the_kernels() {
    use burn::backend::{Autodiff, Flex};
    use core_ops::dispatch::{Kernels, kernels};
    assert_eq!(kernels::<Flex>(), Kernels::Flex);
    assert_eq!(kernels::<Autodiff<Flex>>(), Kernels::AutodiffFlex);
}

#[test]
fn the_backward_is_the_same_from_run_to_run() {
    // An exact `--resume` needs the weight gradient summed in a fixed order across threads.
    use burn::tensor::Tensor;
    let x = common::fixed([16, 8, 12, 12], 3, 1.0, DType::F32).require_grad();
    let w = common::fixed([8, 8, 3, 3], 4, 0.5, DType::F32).require_grad();
    let grads = || {
        let out = core_ops::conv2d(x.clone(), w.clone(), None, common::conv_options(1, 1, 1, 1));
        let g = (out.clone() * out).sum().backward();
        let values = |t: Tensor<burn::backend::Flex, 4>| t.into_data().to_vec::<f32>().unwrap();
        (values(x.grad(&g).unwrap()), values(w.grad(&g).unwrap()))
    };
    let first = grads();
    for _ in 0..5 {
        assert!(
            grads() == first,
            "a gradient changed between identical runs"
        );
    }
}
