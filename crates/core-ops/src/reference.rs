//! The operations composed from ordinary burn ops: what every backend without a kernel of its own
//! runs, and the definition the kernels are tested against.

use burn::tensor::{
    Int, Tensor, TensorData,
    backend::Backend,
    module,
    ops::{ConvOptions, InterpolateMode, InterpolateOptions},
    s,
};

use crate::Pool2d;

/// `[1, ...] -> [n, ...]`: the operand repeated once per sample, contiguous.
///
/// burn-flex, the CPU backend, vectorises a broadcast operand only when its broadcast dimensions
/// are the innermost ones and the rest walk its storage contiguously ("one scalar per row"). A
/// `[1, C, 1, 1]` operand against `[N, C, H, W]` has a stride-0 batch dimension outside the
/// channels and falls to a per-element strided iterator, about ten times slower (measured by
/// `cargo xtask bench --case gn32`, see docs/benchmarks.md). Tiling the small operand over the
/// batch first costs `N·C` copies and turns every such product into the fast pattern; on the GPU
/// backends it is one tiny extra kernel.
pub fn per_sample<B: Backend, const D: usize>(operand: Tensor<B, D>, n: usize) -> Tensor<B, D> {
    operand.repeat_dim(0, n)
}

/// burn's convolution; a strided pointwise one as the stride-1 convolution of every `stride`-th
/// pixel ([`strided_pointwise`]).
pub fn conv2d<B: Backend>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    bias: Option<Tensor<B, 1>>,
    options: ConvOptions<2>,
) -> Tensor<B, 4> {
    let [_, _, kh, kw] = weight.dims();
    if [kh, kw] == [1, 1] && options.stride != [1, 1] && options.padding == [0, 0] {
        let stride_one = ConvOptions::new([1, 1], [0, 0], [1, 1], options.groups);
        return module::conv2d(
            strided_pointwise(x, options.stride),
            weight,
            bias,
            stride_one,
        );
    }
    module::conv2d(x, weight, bias, options)
}

/// The pixels a pointwise convolution of `stride` reads: `x[:, :, ::s₀, ::s₁]`.
///
/// burn-cubecl 0.21 (wgpu, CUDA) computes a convolution's input gradient with a transposed
/// convolution, and its direct transposed-convolution kernel, which autotune picks when it
/// measures fastest, returns zeros whenever `kernel·dilation < stride`: its window of input rows
/// (`kernel·dilation − stride + 1` long) is empty. A ResNet's downsampling shortcut (1×1, stride
/// 2) then passed no gradient back, depending on autotune's timing. A stepped slice and a stride-1
/// convolution compute the same output, and their backward (a stepped `slice_assign` and a
/// stride-1 transposed convolution) is right on every backend.
pub fn strided_pointwise<B: Backend>(x: Tensor<B, 4>, [sh, sw]: [usize; 2]) -> Tensor<B, 4> {
    x.slice(s![.., .., ..;sh as isize, ..;sw as isize])
}

/// [`crate::standardize_weight`] composed: per output channel over `(C_in/groups, kH, kW)`,
/// `(w − mean) / σ` with `σ` as `ws` defines it.
pub fn standardize_weight<B: Backend>(
    weight: Tensor<B, 4>,
    ws: crate::Standardization,
) -> Tensor<B, 4> {
    let shape = weight.dims();
    let [out_channels, fan_in] = [shape[0], shape[1] * shape[2] * shape[3]];
    let w = weight.reshape([out_channels, fan_in]);
    let centred = w.clone() - w.mean_dim(1); // [O, n]
    let divisor = if ws.unbiased { fan_in - 1 } else { fan_in } as f64;
    let var = centred.clone().square().sum_dim(1).div_scalar(divisor); // [O, 1]
    let sigma = if ws.eps_inside_root {
        var.add_scalar(ws.eps).sqrt()
    } else {
        var.clamp_min(crate::VAR_FLOOR).sqrt().add_scalar(ws.eps)
    };
    (centred / sigma).reshape(shape)
}

/// `[N, C, H, W] -> [N, G, C/G·H·W]`: each sample's group standardised with its own mean and biased
/// variance (`bcn.md` §2.1 stage 2).
pub fn group_standardize<B: Backend>(x: Tensor<B, 4>, groups: usize, eps: f64) -> Tensor<B, 3> {
    let [n, c, h, w] = x.dims();
    let grouped = x.reshape([n, groups, c / groups * h * w]);
    let (var, mean) = grouped.clone().var_mean_bias(2); // [N, G, 1]
    (grouped - mean) / var.add_scalar(eps).sqrt()
}

/// [`crate::group_norm`] composed: [`group_standardize`], then the per-channel affine.
pub fn group_norm<B: Backend>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 1>,
    bias: Tensor<B, 1>,
    groups: usize,
    eps: f64,
) -> Tensor<B, 4> {
    let shape = x.dims();
    let [n, c, _, _] = shape;
    let z = group_standardize(x, groups, eps).reshape(shape);
    let per_sample = |v: Tensor<B, 1>| per_sample(v.reshape([1, c, 1, 1]), n); // [N, C, 1, 1]
    z * per_sample(weight) + per_sample(bias)
}

/// Per-channel mean and biased variance over `(N, H, W)`, each `[C]`.
///
/// Reduced over `H·W` first, then over the batch (equal-size parts, so the mean of means is the
/// mean): every reduction runs along the innermost dimension of a contiguous tensor, where
/// burn-flex vectorises, instead of transposing the whole batch to `[C, N·H·W]`.
pub fn channel_moments<B: Backend>(x: Tensor<B, 4>) -> (Tensor<B, 1>, Tensor<B, 1>) {
    let [n, c, h, w] = x.dims();
    let grouped = x.reshape([n, c, h * w]); // [N, C, HW]
    let mean = grouped.clone().mean_dim(2).mean_dim(0); // [1, C, 1]
    let centred = grouped - per_sample(mean.clone(), n);
    let var = centred.square().mean_dim(2).mean_dim(0); // [1, C, 1]
    (mean.reshape([c]), var.reshape([c]))
}

/// `γ (x - mean) / sqrt(var + eps) + β` with per-channel `mean`, `var`, `weight`, `bias` `[C]`.
pub fn channel_affine_normalize<B: Backend>(
    x: Tensor<B, 4>,
    mean: Tensor<B, 1>,
    var: Tensor<B, 1>,
    weight: Tensor<B, 1>,
    bias: Tensor<B, 1>,
    eps: f64,
) -> Tensor<B, 4> {
    let [n, c, _, _] = x.dims();
    let scale = weight / var.add_scalar(eps).sqrt(); // [C]
    let shift = bias - mean * scale.clone();
    let per_sample = |v: Tensor<B, 1>| per_sample(v.reshape([1, c, 1, 1]), n); // [N, C, 1, 1]
    x * per_sample(scale) + per_sample(shift)
}

/// [`crate::batch_norm_train`] composed: [`channel_moments`], then [`channel_affine_normalize`].
pub fn batch_norm_train<B: Backend>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 1>,
    bias: Tensor<B, 1>,
    eps: f64,
) -> (Tensor<B, 4>, Tensor<B, 1>, Tensor<B, 1>) {
    let (mean, var) = channel_moments(x.clone());
    let out = channel_affine_normalize(x, mean.clone(), var.clone(), weight, bias, eps);
    (out, mean.detach(), var.detach())
}

/// burn's bilinear resize of `x [N, C, H, W]` to `size` (PyTorch's `F.interpolate(mode="bilinear")`).
pub fn interpolate_bilinear_burn<B: Backend>(
    x: Tensor<B, 4>,
    size: [usize; 2],
    align_corners: bool,
) -> Tensor<B, 4> {
    let options =
        InterpolateOptions::new(InterpolateMode::Bilinear).with_align_corners(align_corners);
    module::interpolate(x, size, options)
}

/// For one axis resized from `input` to `output` samples: each output sample's two source
/// indices and the weight of the second, as PyTorch's bilinear interpolation computes them
/// (`align_corners`: the end samples coincide; otherwise half-pixel centres, clamped at 0).
pub fn bilinear_taps(
    input: usize,
    output: usize,
    align_corners: bool,
) -> (Vec<i64>, Vec<i64>, Vec<f64>) {
    let last = input.saturating_sub(1);
    let mut taps = (
        Vec::with_capacity(output),
        Vec::with_capacity(output),
        Vec::with_capacity(output),
    );
    for o in 0..output {
        let source = if align_corners {
            if output > 1 {
                o as f64 * last as f64 / (output - 1) as f64
            } else {
                0.0
            }
        } else {
            ((o as f64 + 0.5) * input as f64 / output as f64 - 0.5).max(0.0)
        };
        let first = (source.floor() as usize).min(last);
        taps.0.push(first as i64);
        taps.1.push((first + 1).min(last) as i64);
        taps.2.push(source - first as f64);
    }
    taps
}

/// The bilinear resize composed from `select`, products and sums, so that it has a backward on
/// every backend (burn 0.21's CubeCL backends have no bilinear interpolation backward).
pub fn interpolate_bilinear<B: Backend>(
    x: Tensor<B, 4>,
    [height, width]: [usize; 2],
    align_corners: bool,
) -> Tensor<B, 4> {
    let [_, _, h, w] = x.dims();
    let along = |x: Tensor<B, 4>, dim: usize, input: usize, output: usize| {
        let (first, second, weight) = bilinear_taps(input, output, align_corners);
        let device = x.device();
        let index =
            |v: Vec<i64>| Tensor::<B, 1, Int>::from_data(TensorData::new(v, [output]), &device);
        let mut shape = [1, 1, 1, 1];
        shape[dim] = output;
        let weight = Tensor::<B, 1>::from_data(TensorData::new(weight, [output]), &device)
            .cast(x.dtype())
            .reshape(shape);
        let a = x.clone().select(dim, index(first));
        let b = x.select(dim, index(second));
        a.clone() + (b - a) * weight
    };
    let rows = along(x, 2, h, height);
    along(rows, 3, w, width)
}

/// burn's own max pool, cut to PyTorch's output size ([`crate::max_pool2d`]'s definition):
/// burn 0.21 rounds a `ceil_mode` size up without PyTorch's rule that the last window start
/// inside the input or its left padding, so with a stride above the kernel, or padding, it can
/// return one more row or column (a window over padding alone), which is dropped here.
pub fn max_pool2d<B: Backend>(x: Tensor<B, 4>, pool: Pool2d) -> Tensor<B, 4> {
    let [_, _, h, w] = x.dims();
    let [oh, ow] = pool.output_size([h, w]);
    let y = module::max_pool2d(
        x,
        pool.kernel,
        pool.stride,
        pool.padding,
        pool.dilation,
        pool.ceil_mode,
    );
    let [_, _, bh, bw] = y.dims();
    if [bh, bw] == [oh, ow] {
        y
    } else {
        y.slice(s![.., .., ..oh, ..ow])
    }
}
