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
fn max_pool_matches_burn() {
    common::check_max_pool(DType::F32, 1e-6);
}

#[test]
fn max_pool_follows_pytorch_on_ties_nan_and_ceil_mode() {
    // PyTorch's CPU rule (`val > max || isnan(val)`), by hand: one 2×2 window per plane, and a
    // padded 3×3 window over a plane of −∞ (its index starts at the first element inside).
    use burn::{backend::flex::FlexDevice, tensor::Tensor};
    let inf = f32::INFINITY;
    let x = Tensor::<common::Ad, 4>::from_floats(
        [
            [[[1.0, 3.0], [3.0, 2.0]]],
            [[[1.0, f32::NAN], [5.0, 2.0]]],
            [[[-inf, -inf], [-inf, -inf]]],
        ],
        &FlexDevice,
    )
    .require_grad();
    let out = core_ops::max_pool2d(x.clone(), [2, 2], [2, 2], [0, 0], [1, 1], false);
    let values = out.clone().into_data().to_vec::<f32>().unwrap();
    assert_eq!(values[0], 3.0);
    assert!(values[1].is_nan());
    assert_eq!(values[2], -inf);
    let dx = x.grad(&out.sum().backward()).unwrap();
    let dx = dx.into_data().to_vec::<f32>().unwrap();
    assert_eq!(
        dx,
        [0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]
    );
    let padded = Tensor::<common::Ad, 4>::full([1, 1, 2, 2], -inf, &FlexDevice).require_grad();
    let out = core_ops::max_pool2d(padded.clone(), [3, 3], [2, 2], [1, 1], [1, 1], false);
    let dx = padded.grad(&out.sum().backward()).unwrap();
    assert_eq!(
        dx.into_data().to_vec::<f32>().unwrap(),
        [1.0, 0.0, 0.0, 0.0]
    );
    // Ceil mode with a stride above the kernel: PyTorch 2.15 (`F.max_pool2d(arange(30.)
    // .reshape(1, 1, 5, 6), 2, 3, 1, 1, True)`) gives 2×3, where burn's rounding gives 3×3.
    let ramp = Tensor::<common::Ad, 4>::from_data(
        burn::tensor::TensorData::new((0..30).map(|v| v as f32).collect(), [1, 1, 5, 6]),
        &FlexDevice,
    );
    let out = core_ops::max_pool2d(ramp, [2, 2], [3, 3], [1, 1], [1, 1], true);
    assert_eq!(out.dims(), [1, 1, 2, 3]);
    let values = out.into_data().to_vec::<f32>().unwrap();
    assert_eq!(values, [0.0, 3.0, 5.0, 18.0, 21.0, 23.0]);
    // A plane smaller than the kernel: one window in ceil mode (PyTorch: 4.0), none without
    // ("Output size is too small").
    let small = Tensor::<common::Ad, 4>::from_floats([[[[1.0, 2.0], [3.0, 4.0]]]], &FlexDevice);
    let out = core_ops::max_pool2d(small.clone(), [3, 3], [2, 2], [0, 0], [1, 1], true);
    assert_eq!(out.into_data().to_vec::<f32>().unwrap(), [4.0]);
    let floor = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        core_ops::max_pool2d(small, [3, 3], [2, 2], [0, 0], [1, 1], false)
    }));
    assert!(floor.is_err(), "an output of no rows is an error");
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
