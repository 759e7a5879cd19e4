//! vireo's own kernels for the operations every model spends its time in: 2-D convolution, group
//! normalisation and batch normalisation (with batch statistics, or with given ones), each
//! forward and backward; the weight standardisation of WS convolutions; bilinear resizing; max
//! pooling.
//!
//! burn 0.21 composes GroupNorm and BatchNorm from ~25 elementwise and reduction passes each way,
//! and burn-flex's convolution backward is a serial col2im and a strided weight-gradient
//! convolution (docs/benchmarks.md; the kernels issue). This crate replaces both:
//!
//! * on **burn-flex** (f32 and f64) with raw-slice kernels ([`flex`]; also WS, bilinear resize
//!   and max pooling): normalisation in a few
//!   passes over memory (statistics, one normalise+affine pass; backward from Σdy and Σdy·x), and
//!   convolution as im2col + `gemm` writing straight into the output, input gradient as
//!   `Wᵀ·dY` + col2im per image in parallel, weight gradient accumulated across the batch into one
//!   contiguous buffer;
//! * under **`Autodiff<Flex>`** with their own backward steps ([`autodiff`]), so a training step
//!   runs the fused backward instead of burn's composed one;
//! * on **wgpu and CUDA** (features `wgpu`, `cuda`; burn's `Wgpu` and `Cuda` under fusion, and
//!   their `Autodiff`): group and batch norm from two CubeCL reductions over the norm's segments
//!   ([`cube`], a custom operation of burn's fusion IR) and element-wise work fusion compiles
//!   ([`segments`], one autodiff node each); their other operations composed;
//! * on **every other backend** (and other dtypes) with the composed definition from ordinary
//!   burn ops ([`reference`]), which is also what the kernels are tested against.
//!
//! How a call finds its kernel: the entry points are generic over `B: Backend` like every module
//! in vireo, and pick their implementation by the backend's type (a `TypeId` comparison resolved
//! per instantiation; [`dispatch`]). burn's own backend-extension pattern (a trait extending
//! `Backend`) would have made every module of eight crates generic over that trait instead; this
//! way a model calls `core_ops::conv2d` and gains the kernels on every backend that has them.
//!
//! Numerics follow PyTorch: biased variance inside the root (`1/sqrt(var + eps)`), statistics
//! from two passes (mean, then the centred sum of squares) in the tensor's own precision.

pub mod autodiff;
#[cfg(feature = "cube")]
pub mod cube;
pub mod dispatch;
pub mod flex;
pub mod reference;
pub mod segments;

use burn::tensor::{Tensor, backend::Backend, ops::ConvOptions};

use dispatch::{Kernels, cast, kernels};
pub use flex::pool::Pool2d;

/// `conv2d(x, weight, bias)` as `burn::tensor::module::conv2d`: `x [N, C_in, H, W]`, `weight
/// [C_out, C_in/groups, kH, kW]`, `bias [C_out]` → `[N, C_out, H', W']`.
pub fn conv2d<B: Backend>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    bias: Option<Tensor<B, 1>>,
    options: ConvOptions<2>,
) -> Tensor<B, 4> {
    match kernels::<B>() {
        Kernels::Flex => cast(flex::conv2d(cast(x), cast(weight), bias.map(cast), options)),
        Kernels::AutodiffFlex => cast(autodiff::conv2d(
            cast(x),
            cast(weight),
            bias.map(cast),
            options,
        )),
        Kernels::Composed | Kernels::Cube | Kernels::AutodiffCube => {
            reference::conv2d(x, weight, bias, options)
        }
    }
}

/// Group normalisation with a per-channel affine, PyTorch's `nn.GroupNorm`: `x [N, C, H, W]`,
/// `weight`, `bias [C]`; each sample's `groups` channel groups standardised with their own mean
/// and biased variance.
pub fn group_norm<B: Backend>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 1>,
    bias: Tensor<B, 1>,
    groups: usize,
    eps: f64,
) -> Tensor<B, 4> {
    match kernels::<B>() {
        Kernels::Flex => cast(flex::group_norm(
            cast(x),
            cast(weight),
            cast(bias),
            groups,
            eps,
        )),
        Kernels::AutodiffFlex => cast(autodiff::group_norm(
            cast(x),
            cast(weight),
            cast(bias),
            groups,
            eps,
        )),
        Kernels::Cube => segments::group_norm(x, weight, bias, groups, eps),
        Kernels::AutodiffCube => {
            with_segment_kernels!(autodiff B, |K| {
            return cast(segments::autodiff::group_norm::<K>(
                cast(x),
                cast(weight),
                cast(bias),
                groups,
                eps,
            ));
            });
            dispatch::unreachable_backend::<B>()
        }
        Kernels::Composed => reference::group_norm(x, weight, bias, groups, eps),
    }
}

/// Training-mode batch normalisation: `x [N, C, H, W]` normalised per channel with the batch's
/// mean and biased variance over `(N, H, W)`, then `weight`, `bias [C]`. Returns the output and
/// the batch's `(mean, biased variance)`, each `[C]` and outside the autodiff graph (for the
/// running estimates).
pub fn batch_norm_train<B: Backend>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 1>,
    bias: Tensor<B, 1>,
    eps: f64,
) -> (Tensor<B, 4>, Tensor<B, 1>, Tensor<B, 1>) {
    match kernels::<B>() {
        Kernels::Flex => cast(flex::batch_norm_train(
            cast(x),
            cast(weight),
            cast(bias),
            eps,
        )),
        Kernels::AutodiffFlex => cast(autodiff::batch_norm_train(
            cast(x),
            cast(weight),
            cast(bias),
            eps,
        )),
        Kernels::Cube => segments::batch_norm_train(x, weight, bias, eps),
        Kernels::AutodiffCube => {
            with_segment_kernels!(autodiff B, |K| {
            return cast(segments::autodiff::batch_norm_train::<K>(
                cast(x),
                cast(weight),
                cast(bias),
                eps,
            ));
            });
            dispatch::unreachable_backend::<B>()
        }
        Kernels::Composed => reference::batch_norm_train(x, weight, bias, eps),
    }
}

/// Batch normalisation with given statistics (evaluation, EstBN): `γ (x − mean) / sqrt(var +
/// eps) + β` per channel, `mean`, `var`, `weight`, `bias` each `[C]`. The statistics are
/// constants: no gradient flows into them.
pub fn batch_norm_fixed<B: Backend>(
    x: Tensor<B, 4>,
    mean: Tensor<B, 1>,
    var: Tensor<B, 1>,
    weight: Tensor<B, 1>,
    bias: Tensor<B, 1>,
    eps: f64,
) -> Tensor<B, 4> {
    match kernels::<B>() {
        Kernels::Flex => cast(flex::batch_norm_fixed(
            cast(x),
            cast([mean, var, weight, bias]),
            eps,
        )),
        Kernels::AutodiffFlex => cast(autodiff::batch_norm_fixed(
            cast(x),
            cast([mean, var, weight, bias]),
            eps,
        )),
        Kernels::Composed | Kernels::Cube | Kernels::AutodiffCube => {
            reference::channel_affine_normalize(x, mean, var, weight, bias, eps)
        }
    }
}

/// Bilinear resize of `x [N, C, H, W]` to `size`, PyTorch's `F.interpolate(mode="bilinear",
/// align_corners=…)`: a separable kernel on the CPU backend (burn-flex's own backward was a tenth
/// of an ELASTIC training step); elsewhere the composition [`reference::interpolate_bilinear`],
/// because burn 0.21's CubeCL backends (wgpu, CUDA) panic in the backward of a bilinear
/// interpolation.
pub fn interpolate_bilinear<B: Backend>(
    x: Tensor<B, 4>,
    size: [usize; 2],
    align_corners: bool,
) -> Tensor<B, 4> {
    match kernels::<B>() {
        Kernels::Flex => cast(flex::interpolate_bilinear(cast(x), size, align_corners)),
        Kernels::AutodiffFlex => cast(autodiff::interpolate_bilinear(cast(x), size, align_corners)),
        Kernels::Composed | Kernels::Cube | Kernels::AutodiffCube => {
            reference::interpolate_bilinear(x, size, align_corners)
        }
    }
}

/// 2-D max pooling with burn's `module::max_pool2d` signature and PyTorch's output size
/// (implicit −∞ padding, dilation, `ceil_mode` on every backend). On the CPU backend (f32, f64)
/// a kernel of core-ops' (burn-flex's tracks indices in a scalar 3-D loop even for inference)
/// that also follows PyTorch on ties (the window's first maximum gets the gradient) and NaN (it
/// wins); elsewhere burn's own max pool, whose tie and NaN handling is the backend's.
pub fn max_pool2d<B: Backend>(
    x: Tensor<B, 4>,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    dilation: [usize; 2],
    ceil_mode: bool,
) -> Tensor<B, 4> {
    let pool = Pool2d {
        kernel,
        stride,
        padding,
        dilation,
        ceil_mode,
    };
    match kernels::<B>() {
        Kernels::Flex => cast(flex::max_pool2d(cast(x), pool)),
        Kernels::AutodiffFlex => cast(autodiff::max_pool2d(cast(x), pool)),
        Kernels::Composed | Kernels::Cube | Kernels::AutodiffCube => reference::max_pool2d(x, pool),
    }
}

/// How weight standardisation measures a kernel's spread: the WS formulas in circulation differ
/// in the variance estimator and in where `eps` enters (`ws.md` §2.2; core-norm's `WsVariant`
/// names them).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Standardization {
    /// Variance with divisor `fan_in − 1` (else `fan_in`).
    pub unbiased: bool,
    pub eps: f64,
    /// `σ = sqrt(var + eps)` (else `sqrt(var) + eps`).
    pub eps_inside_root: bool,
}

/// Below this variance a kernel counts as constant: with `eps` outside the root its standard
/// deviation is taken as `sqrt(VAR_FLOOR)`, so that the backward pass of `sqrt` stays finite
/// (`ws.md` §2.1, pitfall 10). The forward value of such a channel is unchanged: its centred
/// weights are (numerically) zero.
pub const VAR_FLOOR: f64 = 1e-30;

/// Weight standardisation (`ws.md` §2.1): `weight [O, C_in/groups, kH, kW]` with each output
/// channel's kernel centred and divided by its standard deviation, as `ws` defines it.
/// Differentiable in `weight`.
///
/// # Panics
/// With the unbiased variance and a fan-in of 1 (the variance would divide by zero).
pub fn standardize_weight<B: Backend>(weight: Tensor<B, 4>, ws: Standardization) -> Tensor<B, 4> {
    let shape = weight.dims();
    assert!(
        shape[1] * shape[2] * shape[3] > 1 || !ws.unbiased,
        "weight standardization needs a fan-in above 1 for the unbiased variance (got kernel {shape:?})"
    );
    match kernels::<B>() {
        Kernels::Flex => cast(flex::standardize_weight(cast(weight), ws)),
        Kernels::AutodiffFlex => cast(autodiff::standardize_weight(cast(weight), ws)),
        Kernels::Composed | Kernels::Cube | Kernels::AutodiffCube => {
            reference::standardize_weight(weight, ws)
        }
    }
}
