//! The kernels against the composition of burn ops they replace ([`core_ops::reference`]), values
//! and gradients, on `Autodiff<Flex>`: the same backend runs both sides.

#![allow(dead_code)]

use burn::{
    backend::{Autodiff, Flex, flex::FlexDevice},
    tensor::{DType, Tensor, TensorData, ops::ConvOptions},
};

pub type Ad = Autodiff<Flex>;

/// Fixed pseudo-random values in `[-scale, scale)` (xorshift; independent of burn's generator).
pub fn fixed<const D: usize>(
    shape: [usize; D],
    seed: u64,
    scale: f64,
    dtype: DType,
) -> Tensor<Ad, D> {
    let n: usize = shape.iter().product();
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let values: Vec<f64> = (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) * scale
        })
        .collect();
    Tensor::from_data(
        TensorData::new(values, shape).convert_dtype(dtype),
        &FlexDevice,
    )
}

pub fn values<const D: usize>(t: Tensor<Ad, D>) -> Vec<f64> {
    t.into_data().convert::<f64>().iter::<f64>().collect()
}

/// Asserts `max |a − b| ≤ tol·(1 + max |b|)`: sums of thousands of products (a weight gradient)
/// round in proportion to the tensor's scale, not to each element's.
pub fn assert_close(what: &str, a: &[f64], b: &[f64], tol: f64) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    let scale = 1.0 + b.iter().fold(0.0_f64, |m, v| m.max(v.abs()));
    let worst = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs() / scale)
        .fold(0.0, f64::max);
    assert!(
        worst <= tol,
        "{what}: worst relative difference {worst:e} > {tol:e}"
    );
}

/// Output and the gradients of `Σ out · r` (fixed `r`) with respect to each of `inputs`, for
/// one implementation `op` of an operation.
pub fn run<const D: usize>(
    inputs: &[Tensor<Ad, 4>],
    params: &[Tensor<Ad, 1>],
    op: impl Fn(Vec<Tensor<Ad, 4>>, Vec<Tensor<Ad, 1>>) -> Tensor<Ad, D>,
    dtype: DType,
) -> Vec<Vec<f64>> {
    let inputs: Vec<_> = inputs.iter().map(|t| t.clone().require_grad()).collect();
    let params: Vec<_> = params.iter().map(|t| t.clone().require_grad()).collect();
    let out = op(inputs.clone(), params.clone());
    let r = fixed(out.dims(), 99, 1.0, dtype);
    let grads = (out.clone() * r).sum().backward();
    let mut all = vec![values(out)];
    all.extend(
        inputs
            .iter()
            .map(|t| values(Tensor::from_inner(t.grad(&grads).expect("input gradient")))),
    );
    all.extend(params.iter().map(|t| {
        values(Tensor::from_inner(
            t.grad(&grads).expect("parameter gradient"),
        ))
    }));
    all
}

/// The convolutions checked: (x shape, weight shape, stride, padding, dilation, groups, bias).
pub type ConvCase = ([usize; 4], [usize; 4], usize, usize, usize, usize, bool);

pub fn conv_cases() -> Vec<ConvCase> {
    vec![
        ([2, 3, 7, 6], [4, 3, 3, 3], 1, 1, 1, 1, true), // 3×3 same, bias
        ([3, 4, 9, 8], [6, 4, 3, 3], 2, 1, 1, 1, false), // stride 2
        ([2, 4, 8, 8], [4, 4, 3, 3], 1, 2, 2, 1, false), // dilation 2 (DeepLab)
        ([2, 4, 6, 6], [6, 2, 3, 3], 1, 1, 1, 2, true), // grouped (ResNeXt)
        ([2, 4, 5, 5], [4, 1, 3, 3], 1, 1, 1, 4, false), // depthwise
        ([3, 5, 4, 6], [7, 5, 1, 1], 1, 0, 1, 1, true), // pointwise
        ([2, 6, 7, 7], [4, 6, 1, 1], 2, 0, 1, 1, false), // strided 1×1 (downsample)
        ([1, 3, 11, 10], [5, 3, 7, 7], 2, 3, 1, 1, false), // stem, one image
        ([1, 2, 3, 3], [2, 2, 3, 3], 1, 0, 1, 1, true), // output 1×1, one image
        ([2, 2, 2, 2], [3, 2, 3, 3], 1, 8, 8, 1, false), // dilation 8 on 2×2: taps all padding
        ([1, 2, 5, 3], [2, 2, 3, 3], 2, 3, 3, 1, true), // dilation 3, stride 2, padding 3
        ([1, 128, 100, 100], [4, 128, 3, 3], 1, 1, 1, 1, false), // unfolded in 3 bands
        ([2, 128, 75, 75], [4, 128, 3, 3], 2, 1, 1, 1, true), // 2 bands, stride 2
    ]
}

pub fn conv_options(
    stride: usize,
    padding: usize,
    dilation: usize,
    groups: usize,
) -> ConvOptions<2> {
    ConvOptions::new([stride; 2], [padding; 2], [dilation; 2], groups)
}

pub fn check_conv(dtype: DType, tol: f64) {
    for (i, (xs, ws, stride, padding, dilation, groups, bias)) in
        conv_cases().into_iter().enumerate()
    {
        let x = fixed(xs, 1 + i as u64, 1.0, dtype);
        let w = fixed(ws, 100 + i as u64, 0.5, dtype);
        let b = fixed([ws[0]], 200 + i as u64, 0.5, dtype);
        let params = if bias { vec![b] } else { vec![] };
        let options = conv_options(stride, padding, dilation, groups);
        let ours = run(
            &[x.clone(), w.clone()],
            &params,
            |t, p| {
                core_ops::conv2d(
                    t[0].clone(),
                    t[1].clone(),
                    p.first().cloned(),
                    options.clone(),
                )
            },
            dtype,
        );
        let burn = run(
            &[x, w],
            &params,
            |t, p| {
                core_ops::reference::conv2d(
                    t[0].clone(),
                    t[1].clone(),
                    p.first().cloned(),
                    options.clone(),
                )
            },
            dtype,
        );
        for (k, (a, b)) in ours.iter().zip(&burn).enumerate() {
            let what = ["output", "dx", "dw", "dbias"][k];
            assert_close(&format!("conv case {i} {what}"), a, b, tol);
        }
    }
}

pub fn check_group_norm(dtype: DType, tol: f64) {
    check_group_norm_of(dtype, tol, core_ops::group_norm);
}

/// A group norm is `(x, weight, bias, groups, eps) -> output`.
pub type GroupNormFn = fn(Tensor<Ad, 4>, Tensor<Ad, 1>, Tensor<Ad, 1>, usize, f64) -> Tensor<Ad, 4>;

/// A training batch norm is `(x, weight, bias, eps) -> (output, mean, variance)`.
pub type BatchNormFn = fn(
    Tensor<Ad, 4>,
    Tensor<Ad, 1>,
    Tensor<Ad, 1>,
    f64,
) -> (Tensor<Ad, 4>, Tensor<Ad, 1>, Tensor<Ad, 1>);

/// `group_norm` against the composition: values and gradients.
pub fn check_group_norm_of(dtype: DType, tol: f64, group_norm: GroupNormFn) {
    for (i, (shape, groups)) in [
        ([2, 6, 5, 4], 3),
        ([3, 8, 3, 3], 8),
        ([2, 4, 7, 1], 1),
        ([1, 32, 4, 4], 32),
    ]
    .into_iter()
    .enumerate()
    {
        let x = fixed(shape, 10 + i as u64, 2.0, dtype).add_scalar(0.7);
        let w = fixed([shape[1]], 20 + i as u64, 1.0, dtype);
        let b = fixed([shape[1]], 30 + i as u64, 1.0, dtype);
        let ours = run(
            std::slice::from_ref(&x),
            &[w.clone(), b.clone()],
            |t, p| group_norm(t[0].clone(), p[0].clone(), p[1].clone(), groups, 1e-5),
            dtype,
        );
        let composed = run(
            &[x],
            &[w, b],
            |t, p| {
                core_ops::reference::group_norm(
                    t[0].clone(),
                    p[0].clone(),
                    p[1].clone(),
                    groups,
                    1e-5,
                )
            },
            dtype,
        );
        for (k, (a, b)) in ours.iter().zip(&composed).enumerate() {
            let what = ["output", "dx", "dweight", "dbias"][k];
            assert_close(&format!("group norm case {i} {what}"), a, b, tol);
        }
    }
}

pub fn check_batch_norm(dtype: DType, tol: f64) {
    check_batch_norm_of(dtype, tol, core_ops::batch_norm_train);
}

/// `batch_norm` against the composition: values, gradients and the batch statistics.
pub fn check_batch_norm_of(dtype: DType, tol: f64, batch_norm: BatchNormFn) {
    for (i, shape) in [[4, 3, 5, 4], [2, 5, 1, 7], [8, 2, 2, 2]]
        .into_iter()
        .enumerate()
    {
        let x = fixed(shape, 40 + i as u64, 2.0, dtype).add_scalar(-0.4);
        let w = fixed([shape[1]], 50 + i as u64, 1.0, dtype);
        let b = fixed([shape[1]], 60 + i as u64, 1.0, dtype);
        let ours = run(
            std::slice::from_ref(&x),
            &[w.clone(), b.clone()],
            |t, p| batch_norm(t[0].clone(), p[0].clone(), p[1].clone(), 1e-5).0,
            dtype,
        );
        let composed = run(
            std::slice::from_ref(&x),
            &[w.clone(), b.clone()],
            |t, p| {
                core_ops::reference::batch_norm_train(
                    t[0].clone(),
                    p[0].clone(),
                    p[1].clone(),
                    1e-5,
                )
                .0
            },
            dtype,
        );
        for (k, (a, b)) in ours.iter().zip(&composed).enumerate() {
            let what = ["output", "dx", "dweight", "dbias"][k];
            assert_close(&format!("batch norm case {i} {what}"), a, b, tol);
        }
        let (_, mean, var) = batch_norm(x.clone(), w.clone(), b.clone(), 1e-5);
        let (_, mean_ref, var_ref) = core_ops::reference::batch_norm_train(x, w, b, 1e-5);
        assert_close("batch mean", &values(mean), &values(mean_ref), tol);
        assert_close("batch variance", &values(var), &values(var_ref), tol);
    }
}

/// Batch norm with given (constant) statistics, as evaluation and EstBN use it.
pub fn check_batch_norm_fixed(dtype: DType, tol: f64) {
    for (i, shape) in [[4, 3, 5, 4], [2, 5, 1, 7]].into_iter().enumerate() {
        let x = fixed(shape, 70 + i as u64, 2.0, dtype);
        let [mean, var, w, b] =
            [71, 72, 73, 74].map(|s| fixed([shape[1]], s + i as u64, 1.0, dtype));
        let var = var.abs().add_scalar(0.1);
        let ours = run(
            std::slice::from_ref(&x),
            &[w.clone(), b.clone()],
            |t, p| {
                core_ops::batch_norm_fixed(
                    t[0].clone(),
                    mean.clone(),
                    var.clone(),
                    p[0].clone(),
                    p[1].clone(),
                    1e-5,
                )
            },
            dtype,
        );
        let composed = run(
            &[x],
            &[w, b],
            |t, p| {
                core_ops::reference::channel_affine_normalize(
                    t[0].clone(),
                    mean.clone(),
                    var.clone(),
                    p[0].clone(),
                    p[1].clone(),
                    1e-5,
                )
            },
            dtype,
        );
        for (k, (a, b)) in ours.iter().zip(&composed).enumerate() {
            let what = ["output", "dx", "dweight", "dbias"][k];
            assert_close(
                &format!("fixed-statistics batch norm case {i} {what}"),
                a,
                b,
                tol,
            );
        }
    }
}

/// Weight standardisation, every variant's estimator and eps (`ws.md` §2.2), against its
/// composition; one kernel row constant (zero variance: the `VAR_FLOOR` branch).
pub fn check_standardize(dtype: DType, tol: f64) {
    use core_ops::Standardization;
    let variants = [
        (true, 1e-5, false),  // official PyTorch
        (false, 1e-5, false), // official TF
        (true, 1e-5, true),   // BCN repo, mmcv
        (false, 1e-6, true),  // timm
        (false, 1e-10, true), // BiT
    ];
    // Small kernels, and a ResNet layer's 3×3 and 1×1 (fan-in 576 and 64).
    let shapes = [
        [4, 3, 3, 3],
        [6, 2, 3, 3],
        [5, 7, 1, 1],
        [3, 16, 3, 3],
        [64, 64, 3, 3],
        [256, 64, 1, 1],
    ];
    for (v, (unbiased, eps, eps_inside_root)) in variants.into_iter().enumerate() {
        let ws = Standardization {
            unbiased,
            eps,
            eps_inside_root,
        };
        for (i, shape) in shapes.into_iter().enumerate() {
            let w = fixed(shape, 300 + i as u64, 0.2, dtype).add_scalar(0.05);
            // Output channel 1 constant: an exact 0.25 everywhere, so its variance is exactly 0.
            let row_shape = [1, shape[1], shape[2], shape[3]];
            let row = vec![0.25; row_shape.iter().product()];
            let row = Tensor::from_data(
                TensorData::new(row, row_shape).convert_dtype(dtype),
                &FlexDevice,
            );
            let w = w.slice_assign([1..2, 0..shape[1], 0..shape[2], 0..shape[3]], row);
            let ours = run(
                std::slice::from_ref(&w),
                &[],
                |t, _| core_ops::standardize_weight(t[0].clone(), ws),
                dtype,
            );
            let composed = run(
                &[w],
                &[],
                |t, _| core_ops::reference::standardize_weight(t[0].clone(), ws),
                dtype,
            );
            for (k, (a, b)) in ours.iter().zip(&composed).enumerate() {
                assert!(
                    a.iter().all(|x| x.is_finite()),
                    "variant {v} case {i}: not finite"
                );
                let what = ["output", "dweight"][k];
                assert_close(&format!("WS variant {v} case {i} {what}"), a, b, tol);
            }
        }
    }
}

/// The bilinear resize, the kernel and the composition the GPU backends run, against burn's
/// interpolation.
pub fn check_interpolate(dtype: DType, tol: f64) {
    let cases = [
        ([2, 3, 5, 4], [10, 8], false), // ELASTIC's ×2
        ([2, 3, 5, 4], [9, 7], true),   // DeepLab's aligned resize, odd target
        ([1, 2, 7, 6], [3, 4], true),   // down
        ([1, 2, 7, 6], [4, 3], false),  // down, half-pixel
        ([1, 2, 4, 4], [1, 5], true),   // a single output row
        ([1, 1, 1, 3], [4, 6], false),  // a single input row
    ];
    for (i, (shape, size, align)) in cases.into_iter().enumerate() {
        let x = fixed(shape, 80 + i as u64, 1.0, dtype);
        let burn = run(
            std::slice::from_ref(&x),
            &[],
            |t, _| core_ops::reference::interpolate_bilinear_burn(t[0].clone(), size, align),
            dtype,
        );
        let kernel = run(
            std::slice::from_ref(&x),
            &[],
            |t, _| core_ops::interpolate_bilinear(t[0].clone(), size, align),
            dtype,
        );
        let composed = run(
            &[x],
            &[],
            |t, _| core_ops::reference::interpolate_bilinear(t[0].clone(), size, align),
            dtype,
        );
        for (side, ours) in [("kernel", kernel), ("composed", composed)] {
            for (k, (a, b)) in ours.iter().zip(&burn).enumerate() {
                let what = ["output", "dx"][k];
                assert_close(&format!("{side} bilinear case {i} {what}"), a, b, tol);
            }
        }
    }
}

/// Max pooling against burn's: (x shape, kernel, stride, padding, dilation, ceil_mode).
pub fn check_max_pool(dtype: DType, tol: f64) {
    let cases = [
        ([2, 3, 8, 8], 2, 2, 0, 1, false),  // VGG
        ([2, 3, 9, 7], 3, 2, 1, 1, false),  // ResNet's stem, odd sizes
        ([1, 2, 9, 8], 3, 2, 0, 1, true),   // the ceil-mode stem (resnet.rs)
        ([1, 2, 7, 8], 3, 1, 1, 1, false),  // overlapping windows: gradients add
        ([1, 2, 10, 9], 3, 2, 1, 2, false), // dilated
        ([1, 1, 5, 6], 2, 3, 1, 1, true),   // stride above the kernel, ceil
        ([3, 1, 1, 1], 1, 1, 0, 1, false),  // one pixel
    ];
    for (i, (shape, k, s, p, d, ceil)) in cases.into_iter().enumerate() {
        let x = fixed(shape, 120 + i as u64, 1.0, dtype);
        let pool = core_ops::Pool2d {
            kernel: [k, k],
            stride: [s, s],
            padding: [p, p],
            dilation: [d, d],
            ceil_mode: ceil,
        };
        let burn = run(
            std::slice::from_ref(&x),
            &[],
            |t, _| core_ops::reference::max_pool2d(t[0].clone(), pool),
            dtype,
        );
        let kernel = run(
            &[x],
            &[],
            |t, _| core_ops::max_pool2d(t[0].clone(), [k, k], [s, s], [p, p], [d, d], ceil),
            dtype,
        );
        for (j, (a, b)) in kernel.iter().zip(&burn).enumerate() {
            let what = ["output", "dx"][j];
            assert_close(&format!("max pool case {i} {what}"), a, b, tol);
        }
    }
}

/// The inference path (`Flex` without autodiff) gives the autodiff path's values.
pub fn check_inner(dtype: DType, tol: f64) {
    let x = fixed([3, 4, 6, 6], 7, 1.0, dtype);
    let w = fixed([8, 4, 3, 3], 8, 0.5, dtype);
    let options = conv_options(1, 1, 1, 1);
    let inner = core_ops::conv2d(x.clone().inner(), w.clone().inner(), None, options.clone());
    let outer = core_ops::conv2d(x.clone(), w, None, options);
    assert_close(
        "conv on flex",
        &values(Tensor::<Ad, 4>::from_inner(inner)),
        &values(outer),
        tol,
    );
    let g = fixed([4], 9, 1.0, dtype);
    let inner = core_ops::group_norm(
        x.clone().inner(),
        g.clone().inner(),
        g.clone().inner(),
        2,
        1e-5,
    );
    let outer = core_ops::group_norm(x.clone(), g.clone(), g.clone(), 2, 1e-5);
    assert_close(
        "group norm on flex",
        &values(Tensor::<Ad, 4>::from_inner(inner)),
        &values(outer),
        tol,
    );
    let inner = core_ops::batch_norm_train(
        x.clone().inner(),
        g.clone().inner(),
        g.clone().inner(),
        1e-5,
    )
    .0;
    let outer = core_ops::batch_norm_train(x.clone(), g.clone(), g, 1e-5).0;
    assert_close(
        "batch norm on flex",
        &values(Tensor::<Ad, 4>::from_inner(inner)),
        &values(outer),
        tol,
    );
    let inner = core_ops::interpolate_bilinear(x.clone().inner(), [11, 13], false);
    let outer = core_ops::interpolate_bilinear(x.clone(), [11, 13], false);
    assert_close(
        "bilinear resize on flex",
        &values(Tensor::<Ad, 4>::from_inner(inner)),
        &values(outer),
        tol,
    );
    let (k, s, p, d) = ([3, 3], [2, 2], [1, 1], [1, 1]);
    let inner = core_ops::max_pool2d(x.clone().inner(), k, s, p, d, false);
    let outer = core_ops::max_pool2d(x, k, s, p, d, false);
    assert_close(
        "max pool on flex",
        &values(Tensor::<Ad, 4>::from_inner(inner)),
        &values(outer),
        tol,
    );
}
