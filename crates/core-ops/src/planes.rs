//! Group and batch normalisation from two per-plane reductions: how the GPU backends (wgpu, CUDA)
//! run them (the kernels issue, item 2).
//!
//! Both norms standardise *segments* of an `[N, C, H, W]` tensor that are unions of whole `(n, c)`
//! planes: a group norm's segment is one sample's group of `C/G` channels, a batch norm's is one
//! channel across the batch ([`Segments`]). So both need only
//!
//! * forward: each plane's mean and centred sum of squares ([`plane_moments`]), combined into the
//!   segment's mean and variance on `[N, C]` tensors (Chan et al.'s pairwise update:
//!   `M2 = Σ M2ᵢ + Σ nᵢ (meanᵢ − mean)²`, so no sum of squares of raw values is ever formed);
//! * backward: each plane's `Σ dy` and `Σ dy·(x − mean)` ([`plane_grad_sums`]), from which the
//!   weight and bias gradients and the input gradient's per-plane coefficients follow on `[N, C]`
//!   tensors: `dx = rstd·γ·dy − rstd²·(B/M)·(x − mean) − rstd·A/M` with `A = Σ γ·Σdy`, `B = Σ γ·rstd·Σdy(x − mean)`
//!   over the segment's planes and `M` its element count.
//!
//! The two reductions are CubeCL kernels on the CubeCL backends ([`crate::cube`], a custom
//! operation under fusion) and compositions of burn ops elsewhere; the rest is per-plane
//! element-wise work that burn's fusion compiles into one kernel per direction. Under autodiff the
//! whole normalisation is one node with this backward ([`autodiff`]).

use burn::tensor::{DType, Tensor, backend::Backend};

/// Which planes of `[N, C, H, W]` share one mean and variance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Segments {
    /// Each sample's `groups` groups of consecutive channels (group normalisation).
    Group(usize),
    /// Each channel across the batch (batch normalisation).
    Batch,
}

impl Segments {
    /// Planes per segment for a batch of `n` samples of `c` channels.
    fn planes(self, n: usize, c: usize) -> usize {
        match self {
            Segments::Group(groups) => c / groups,
            Segments::Batch => n,
        }
    }

    /// `v [N, C]` summed over each segment's planes, the sum given to each of its planes.
    fn sum<B: Backend>(self, v: Tensor<B, 2>) -> Tensor<B, 2> {
        let [n, c] = v.dims();
        match self {
            Segments::Group(groups) => v
                .reshape([n, groups, c / groups])
                .sum_dim(2)
                .repeat_dim(2, c / groups)
                .reshape([n, c]),
            Segments::Batch => v.sum_dim(0).repeat_dim(0, n),
        }
    }
}

/// Each `(n, c)` plane's mean and `Σ(x − mean)²`, each `[N, C]`: a CubeCL kernel on the CubeCL
/// backends for f32, else composed.
pub fn plane_moments<B: Backend>(x: Tensor<B, 4>) -> [Tensor<B, 2>; 2] {
    if x.dtype() == DType::F32 {
        crate::with_plane_kernels!(B, |K| {
            let [mean, m2] = K::plane_moments(crate::dispatch::cast(x.into_primitive().tensor()));
            return [mean, m2].map(|t| {
                crate::dispatch::cast(Tensor::<K, 2>::from_primitive(
                    burn::tensor::TensorPrimitive::Float(t),
                ))
            });
        });
    }
    let [n, c, h, w] = x.dims();
    let planes = x.reshape([n, c, h * w]);
    let mean = planes.clone().mean_dim(2);
    let m2 = (planes - mean.clone()).square().sum_dim(2);
    [mean.reshape([n, c]), m2.reshape([n, c])]
}

/// Each plane's `Σ dy` and `Σ dy·(x − shift)` for `shift [N, C]`, each `[N, C]`: a CubeCL kernel
/// on the CubeCL backends for f32, else composed.
pub fn plane_grad_sums<B: Backend>(
    dy: Tensor<B, 4>,
    x: Tensor<B, 4>,
    shift: Tensor<B, 2>,
) -> [Tensor<B, 2>; 2] {
    if x.dtype() == DType::F32 && dy.dtype() == DType::F32 {
        crate::with_plane_kernels!(B, |K| {
            let [dy, x] = [dy, x].map(|t| crate::dispatch::cast(t.into_primitive().tensor()));
            let shift = crate::dispatch::cast(shift.into_primitive().tensor());
            let sums = K::plane_grad_sums(dy, x, shift);
            return sums.map(|t| {
                crate::dispatch::cast(Tensor::<K, 2>::from_primitive(
                    burn::tensor::TensorPrimitive::Float(t),
                ))
            });
        });
    }
    let [n, c, h, w] = x.dims();
    let dy = dy.reshape([n, c, h * w]);
    let centred = x.reshape([n, c, h * w]) - shift.reshape([n, c, 1]);
    let sum_dy = dy.clone().sum_dim(2).reshape([n, c]);
    let sum_dy_x = (dy * centred).sum_dim(2).reshape([n, c]);
    [sum_dy, sum_dy_x]
}

/// What the forward pass leaves: the output, and per plane its segment's mean, variance and
/// `1/sqrt(var + eps)` (each `[N, C]`).
#[derive(Clone, Debug)]
pub struct Normalized<B: Backend> {
    pub output: Tensor<B, 4>,
    pub mean: Tensor<B, 2>,
    pub var: Tensor<B, 2>,
    pub rstd: Tensor<B, 2>,
}

/// `[N, C]` → `[N, C, 1, 1]`, to scale each plane.
fn per_plane<B: Backend>(v: Tensor<B, 2>) -> Tensor<B, 4> {
    let [n, c] = v.dims();
    v.reshape([n, c, 1, 1])
}

/// `γ (x − mean) / sqrt(var + eps) + β` with the segments' biased statistics (`gn.md`,
/// `bcn.md` §2.1), `weight`, `bias [C]`.
pub fn forward<B: Backend>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 1>,
    bias: Tensor<B, 1>,
    segments: Segments,
    eps: f64,
) -> Normalized<B> {
    let [n, c, h, w] = x.dims();
    let [plane_mean, plane_m2] = plane_moments(x.clone());
    let planes = segments.planes(n, c) as f64;
    let hw = (h * w) as f64;
    let mean = segments.sum(plane_mean.clone()).div_scalar(planes);
    let spread = (plane_mean - mean.clone()).square().mul_scalar(hw);
    let var = segments.sum(plane_m2 + spread).div_scalar(planes * hw);
    let rstd = var.clone().add_scalar(eps).sqrt().recip();
    let scale = rstd.clone() * weight.reshape([1, c]);
    let output = (x - per_plane(mean.clone())) * per_plane(scale) + bias.reshape([1, c, 1, 1]);
    Normalized {
        output,
        mean,
        var,
        rstd,
    }
}

/// The gradients of [`forward`] for the output gradient `dy`: `(dx, dweight, dbias)`.
pub fn backward<B: Backend>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 1>,
    mean: Tensor<B, 2>,
    rstd: Tensor<B, 2>,
    dy: Tensor<B, 4>,
    segments: Segments,
) -> (Tensor<B, 4>, Tensor<B, 1>, Tensor<B, 1>) {
    let [n, c, h, w] = x.dims();
    let count = (segments.planes(n, c) * h * w) as f64;
    let [sum_dy, sum_dy_x] = plane_grad_sums(dy.clone(), x.clone(), mean.clone());
    let gamma = weight.reshape([1, c]);
    let dweight = (rstd.clone() * sum_dy_x.clone()).sum_dim(0).reshape([c]);
    let dbias = sum_dy.clone().sum_dim(0).reshape([c]);
    let a = segments.sum(sum_dy * gamma.clone()).div_scalar(count);
    let b = segments
        .sum(sum_dy_x * gamma.clone() * rstd.clone())
        .div_scalar(count);
    let dy_scale = rstd.clone() * gamma;
    let x_scale = -(rstd.clone().square() * b);
    let offset = -(rstd * a);
    let dx =
        dy * per_plane(dy_scale) + (x - per_plane(mean)) * per_plane(x_scale) + per_plane(offset);
    (dx, dweight, dbias)
}

/// Group normalisation ([`crate::group_norm`]) on a backend without autodiff.
pub fn group_norm<B: Backend>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 1>,
    bias: Tensor<B, 1>,
    groups: usize,
    eps: f64,
) -> Tensor<B, 4> {
    forward(x, weight, bias, Segments::Group(groups), eps).output
}

/// `[N, C]` statistics that are equal along the batch (a batch norm's) → `[C]`.
fn per_channel<B: Backend>(v: Tensor<B, 2>) -> Tensor<B, 1> {
    let [_, c] = v.dims();
    v.narrow(0, 0, 1).reshape([c])
}

/// A training batch norm's output and the batch's mean and biased variance `[C]`.
pub type BatchNormed<B> = (Tensor<B, 4>, Tensor<B, 1>, Tensor<B, 1>);

/// Training-mode batch normalisation ([`crate::batch_norm_train`]) on a backend without
/// autodiff: the output and the batch's mean and biased variance.
pub fn batch_norm_train<B: Backend>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 1>,
    bias: Tensor<B, 1>,
    eps: f64,
) -> BatchNormed<B> {
    let out = forward(x, weight, bias, Segments::Batch, eps);
    (out.output, per_channel(out.mean), per_channel(out.var))
}

/// The two norms under `Autodiff<B>`: one graph node each, with [`backward`] as its step.
pub mod autodiff {
    use burn::{
        backend::{
            Autodiff,
            autodiff::{
                checkpoint::{base::Checkpointer, strategy::NoCheckpointing},
                grads::Gradients,
                ops::{Backward, Ops, OpsKind},
            },
        },
        tensor::{Tensor, TensorPrimitive, backend::Backend, ops::FloatTensor},
    };

    use super::{Segments, per_channel};

    #[derive(Debug)]
    struct PlanesBackward;

    /// The input, the weight, each plane's segment mean and `1/sqrt(var + eps)`, the segments.
    type State<B> = (
        FloatTensor<B>,
        FloatTensor<B>,
        FloatTensor<B>,
        FloatTensor<B>,
        Segments,
    );

    fn wrap<B: Backend, const D: usize>(primitive: FloatTensor<B>) -> Tensor<B, D> {
        Tensor::from_primitive(TensorPrimitive::Float(primitive))
    }

    fn unwrap<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> FloatTensor<B> {
        tensor.into_primitive().tensor()
    }

    impl<B: Backend> Backward<B, 3> for PlanesBackward {
        type State = State<B>;
        fn backward(self, ops: Ops<State<B>, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
            let dy = grads.consume::<B>(&ops.node);
            let (x, weight, mean, rstd, segments) = ops.state;
            let (dx, dweight, dbias) = super::backward::<B>(
                wrap(x),
                wrap(weight),
                wrap(mean),
                wrap(rstd),
                wrap(dy),
                segments,
            );
            let computed = [unwrap(dx), unwrap(dweight), unwrap(dbias)];
            for (parent, gradient) in ops.parents.into_iter().zip(computed) {
                if let Some(node) = parent {
                    grads.register::<B>(node.id, gradient);
                }
            }
        }
    }

    /// The norm's output as a graph node, and the forward's statistics (outside the graph).
    fn normalize<B: Backend>(
        x: Tensor<Autodiff<B>, 4>,
        weight: Tensor<Autodiff<B>, 1>,
        bias: Tensor<Autodiff<B>, 1>,
        segments: Segments,
        eps: f64,
    ) -> (Tensor<Autodiff<B>, 4>, super::Normalized<B>) {
        let (x, weight, bias) = (unwrap(x), unwrap(weight), unwrap(bias));
        let inner = super::forward::<B>(
            wrap(x.primitive.clone()),
            wrap(weight.primitive.clone()),
            wrap(bias.primitive.clone()),
            segments,
            eps,
        );
        let output = unwrap(inner.output.clone());
        let nodes = [x.node.clone(), weight.node.clone(), bias.node.clone()];
        let node = match PlanesBackward
            .prepare::<NoCheckpointing>(nodes)
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let state = (
                    x.primitive,
                    weight.primitive,
                    unwrap(inner.mean.clone()),
                    unwrap(inner.rstd.clone()),
                    segments,
                );
                prep.finish(state, output)
            }
            OpsKind::UnTracked(prep) => prep.finish(output),
        };
        (wrap(node), inner)
    }

    /// [`crate::group_norm`] under `Autodiff<B>`.
    pub fn group_norm<B: Backend>(
        x: Tensor<Autodiff<B>, 4>,
        weight: Tensor<Autodiff<B>, 1>,
        bias: Tensor<Autodiff<B>, 1>,
        groups: usize,
        eps: f64,
    ) -> Tensor<Autodiff<B>, 4> {
        normalize(x, weight, bias, Segments::Group(groups), eps).0
    }

    /// [`crate::batch_norm_train`] under `Autodiff<B>`.
    pub fn batch_norm_train<B: Backend>(
        x: Tensor<Autodiff<B>, 4>,
        weight: Tensor<Autodiff<B>, 1>,
        bias: Tensor<Autodiff<B>, 1>,
        eps: f64,
    ) -> super::BatchNormed<Autodiff<B>> {
        let (output, inner) = normalize(x, weight, bias, Segments::Batch, eps);
        let stat = |v| Tensor::from_inner(per_channel(v));
        (output, stat(inner.mean), stat(inner.var))
    }
}
