//! Group and batch normalisation from two reductions over *segments*: how the GPU backends
//! (wgpu, CUDA) run them (the kernels issue, item 2).
//!
//! Both norms standardise segments of an `[N, C, H, W]` tensor that are unions of whole `(n, c)`
//! planes: a group norm's segment is one sample's group of `C/G` channels, a batch norm's is one
//! channel across the batch ([`Segments`]). So both need only
//!
//! * forward: each segment's mean and centred sum of squares ([`segment_moments`]);
//! * backward: sums `Σ a·dy` and `Σ b·dy·(x − mean)` with per-plane weights `a`, `b`
//!   ([`segment_grad_sums`]), from which the weight and bias gradients and the input gradient's
//!   per-plane coefficients follow on small tensors: `dx = rstd·γ·dy − rstd²·(B/M)·(x − mean) −
//!   rstd·A/M`, with `A = Σ γ·dy` and `B = Σ γ·rstd·dy·(x − mean)` over the segment and `M` its
//!   element count. A batch norm gets all four from one pass over its channels; a group norm
//!   takes `A`, `B` over its groups (`a = b = γ`) and `dγ`, `dβ` over the channels (`a = 1`,
//!   `b = rstd`), two passes that each keep a cube busy (per-plane sums would give ResNet-50's
//!   2×2 planes a cube per 4 elements).
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

/// What a reduction runs over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Over {
    /// Each `(n, group)` block of `C/G` consecutive planes.
    Groups(usize),
    /// Each channel's `N` planes.
    Channels,
}

/// Where a reduction's segments lie in a contiguous `[N, C, H, W]` tensor: segment `s` is
/// `count` elements, whole planes of `run = H·W` elements; its element `j` lies in its
/// `r = j / run`-th plane, plane `s·seg_planes + r·run_planes` of the tensor, at `j % run`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub segments: usize,
    pub count: usize,
    pub run: usize,
    pub seg_planes: usize,
    pub run_planes: usize,
}

impl Over {
    /// The segments' layout in a tensor of `dims`.
    pub fn layout(self, [n, c, h, w]: [usize; 4]) -> Layout {
        let hw = h * w;
        let (segments, planes, seg_planes, run_planes) = match self {
            Over::Groups(groups) => (n * groups, c / groups, c / groups, 1),
            Over::Channels => (c, n, 1, c),
        };
        Layout {
            segments,
            count: planes * hw,
            run: hw,
            seg_planes,
            run_planes,
        }
    }

    /// `x` as `[segments, count]` rows (the composition's view of the segments).
    fn rows<B: Backend>(self, x: Tensor<B, 4>) -> Tensor<B, 2> {
        let [n, c, h, w] = x.dims();
        let Layout {
            segments, count, ..
        } = self.layout([n, c, h, w]);
        match self {
            Over::Channels => x
                .reshape([n, c, h * w])
                .swap_dims(0, 1)
                .reshape([segments, count]),
            Over::Groups(_) => x.reshape([segments, count]),
        }
    }
}

/// Each segment's mean and `Σ(x − mean)²`, each `[segments]`: a CubeCL kernel on the CubeCL
/// backends for f32 (non-empty), else composed.
pub fn segment_moments<B: Backend>(x: Tensor<B, 4>, over: Over) -> [Tensor<B, 1>; 2] {
    let layout = over.layout(x.dims());
    if x.dtype() == DType::F32 && layout.count > 0 && layout.segments > 0 {
        crate::with_segment_kernels!(B, |K| {
            let out =
                K::segment_moments(crate::dispatch::cast(crate::dispatch::primitive(x)), layout);
            return out.map(|t| crate::dispatch::cast(crate::dispatch::tensor::<K, 1>(t)));
        });
    }
    let rows = over.rows(x);
    let [segments, _] = rows.dims();
    let mean = rows.clone().mean_dim(1);
    let m2 = (rows - mean.clone()).square().sum_dim(1);
    [mean.reshape([segments]), m2.reshape([segments])]
}

/// Each segment's `Σ a·dy` and `Σ b·dy·(x − shift)` for per-plane `shift`, `a`, `b` (each
/// `[N, C]`), each `[segments]`: a CubeCL kernel on the CubeCL backends for f32, else composed.
pub fn segment_grad_sums<B: Backend>(
    dy: Tensor<B, 4>,
    x: Tensor<B, 4>,
    [shift, a, b]: [Tensor<B, 2>; 3],
    over: Over,
) -> [Tensor<B, 1>; 2] {
    let layout = over.layout(x.dims());
    let f32 = [dy.dtype(), x.dtype(), shift.dtype(), a.dtype(), b.dtype()]
        .iter()
        .all(|&d| d == DType::F32);
    if f32 && layout.count > 0 && layout.segments > 0 {
        crate::with_segment_kernels!(B, |K| {
            let [dy, x] = [dy, x].map(|t| crate::dispatch::cast(crate::dispatch::primitive(t)));
            let planes =
                [shift, a, b].map(|t| crate::dispatch::cast(crate::dispatch::primitive(t)));
            let out = K::segment_grad_sums(dy, x, planes, layout);
            return out.map(|t| crate::dispatch::cast(crate::dispatch::tensor::<K, 1>(t)));
        });
    }
    let weighted_dy = over.rows(dy.clone() * per_plane(a));
    let weighted = over.rows(dy * (x - per_plane(shift)) * per_plane(b));
    let [segments, _] = weighted.dims();
    let sum_a = weighted_dy.sum_dim(1).reshape([segments]);
    let sum_b = weighted.sum_dim(1).reshape([segments]);
    [sum_a, sum_b]
}

impl Segments {
    fn over(self) -> Over {
        match self {
            Segments::Group(groups) => Over::Groups(groups),
            Segments::Batch => Over::Channels,
        }
    }

    /// Per-segment values `[segments]` as per-plane values `[N, C]`.
    fn per_plane<B: Backend>(self, v: Tensor<B, 1>, [n, c]: [usize; 2]) -> Tensor<B, 2> {
        match self {
            Segments::Group(groups) => v
                .reshape([n, groups, 1])
                .repeat_dim(2, c / groups)
                .reshape([n, c]),
            Segments::Batch => v.reshape([1, c]).repeat_dim(0, n),
        }
    }

    /// Elements per segment.
    fn count(self, [n, c, h, w]: [usize; 4]) -> usize {
        self.over().layout([n, c, h, w]).count
    }
}

/// What the forward pass leaves: the output, and each segment's mean, biased variance and
/// `1/sqrt(var + eps)` (each `[segments]`: `[N·G]` or `[C]`).
#[derive(Clone, Debug)]
pub struct Normalized<B: Backend> {
    pub output: Tensor<B, 4>,
    pub mean: Tensor<B, 1>,
    pub var: Tensor<B, 1>,
    pub rstd: Tensor<B, 1>,
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
    let dims = x.dims();
    let [n, c, _, _] = dims;
    if let Segments::Group(groups) = segments {
        assert!(
            groups > 0 && c.is_multiple_of(groups),
            "group norm: {c} channels do not split into {groups} groups"
        );
    }
    let [mean, m2] = segment_moments(x.clone(), segments.over());
    let var = m2.div_scalar(segments.count(dims) as f64);
    let rstd = var.clone().add_scalar(eps).sqrt().recip();
    let rows = |v: Tensor<B, 1>| segments.per_plane(v, [n, c]);
    let scale = rows(rstd.clone()) * weight.reshape([1, c]);
    let centred = x - per_plane(rows(mean.clone()));
    let output = centred * per_plane(scale) + bias.reshape([1, c, 1, 1]);
    Normalized {
        output,
        mean,
        var,
        rstd,
    }
}

/// The gradients of [`forward`] for the output gradient `dy`, given its per-segment `mean` and
/// `rstd`: `(dx, dweight, dbias)`.
pub fn backward<B: Backend>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 1>,
    mean: Tensor<B, 1>,
    rstd: Tensor<B, 1>,
    dy: Tensor<B, 4>,
    segments: Segments,
) -> (Tensor<B, 4>, Tensor<B, 1>, Tensor<B, 1>) {
    let dims = x.dims();
    let [n, c, _, _] = dims;
    let count = segments.count(dims) as f64;
    let planes = |v: Tensor<B, 1>| segments.per_plane(v, [n, c]);
    let gamma = weight.clone().reshape([1, c]).repeat_dim(0, n); // [N, C]
    let ones = gamma.ones_like();
    let (shift, rstd_p) = (planes(mean), planes(rstd.clone()));
    // Per segment: A = Σ γ·dy and B = Σ γ·rstd·dy·(x − mean); per channel: dγ and dβ.
    let (a, b, dweight, dbias) = match segments {
        Segments::Group(_) => {
            let weights = [shift.clone(), gamma.clone(), gamma.clone()];
            let [a, b] = segment_grad_sums(dy.clone(), x.clone(), weights, segments.over());
            let weights = [shift.clone(), ones, rstd_p.clone()];
            let [dbias, dweight] =
                segment_grad_sums(dy.clone(), x.clone(), weights, Over::Channels);
            (a, b * rstd, dweight, dbias)
        }
        Segments::Batch => {
            let weights = [shift.clone(), ones.clone(), ones];
            let [dbias, sum_dy_x] =
                segment_grad_sums(dy.clone(), x.clone(), weights, Over::Channels);
            let dweight = sum_dy_x * rstd;
            let (a, b) = (dbias.clone() * weight.clone(), dweight.clone() * weight);
            (a, b, dweight, dbias)
        }
    };
    let (a, b) = (planes(a.div_scalar(count)), planes(b.div_scalar(count)));
    let dy_scale = rstd_p.clone() * gamma;
    let x_scale = -(rstd_p.clone().square() * b);
    let offset = -(rstd_p * a);
    let dx =
        dy * per_plane(dy_scale) + (x - per_plane(shift)) * per_plane(x_scale) + per_plane(offset);
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
    (out.output, out.mean, out.var)
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
        tensor::{Tensor, backend::Backend, ops::FloatTensor},
    };

    use super::Segments;
    use crate::dispatch::{primitive as unwrap, tensor as wrap};

    #[derive(Debug)]
    struct SegmentNormBackward;

    /// The input, the weight, each segment's mean and `1/sqrt(var + eps)`, the segments.
    type State<B> = (
        FloatTensor<B>,
        FloatTensor<B>,
        FloatTensor<B>,
        FloatTensor<B>,
        Segments,
    );

    impl<B: Backend> Backward<B, 3> for SegmentNormBackward {
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
        let node = match SegmentNormBackward
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
        let stat = Tensor::from_inner;
        (output, stat(inner.mean), stat(inner.var))
    }
}
