//! The flex kernels under `Autodiff<Flex>`, each registered with its own backward step (burn's
//! backend-extension pattern: a `Backward` implementation per operation, whose state holds what
//! the backward needs from the forward).
//!
//! The backward computes only the gradients of inputs that require one: the input gradient of a
//! network's first convolution, for one, is never formed.

use burn::{
    backend::{
        Autodiff, Flex,
        autodiff::{
            checkpoint::{base::Checkpointer, strategy::NoCheckpointing},
            grads::Gradients,
            ops::{Backward, Ops, OpsKind},
        },
        flex::FlexTensor,
    },
    tensor::{Tensor, ops::ConvOptions},
};

use crate::{
    Standardization,
    dispatch::{primitive, tensor},
    flex::{
        self, conv,
        norm::{self, Norm},
        pool::{self, Pool2d},
        real_dtype, resize, standardize,
    },
    reference,
};

type Ad = Autodiff<Flex>;
type AdPrimitive = burn::tensor::ops::FloatTensor<Ad>;

/// A result of the inner backend, outside the graph.
fn untracked<const D: usize>(primitive: FlexTensor) -> Tensor<Ad, D> {
    Tensor::from_inner(flex::tensor(primitive))
}

#[derive(Debug)]
struct ConvBackward;

/// What the convolution's backward needs: the input, the weight, the options.
type ConvState = (FlexTensor, FlexTensor, ConvOptions<2>);

fn conv_grads<const N: usize>(ops: Ops<ConvState, N>, grads: &mut Gradients) {
    let grad = grads.consume::<Flex>(&ops.node);
    let (x, weight, options) = ops.state;
    let wanted = [0, 1, 2].map(|i| ops.parents.get(i).is_some_and(Option::is_some));
    let out = conv::backward(&x, &weight, &grad, &options, wanted);
    let computed = [out.x, out.weight, out.bias];
    for (parent, gradient) in ops.parents.into_iter().zip(computed) {
        if let (Some(node), Some(gradient)) = (parent, gradient) {
            grads.register::<Flex>(node.id, gradient);
        }
    }
}

impl Backward<Flex, 2> for ConvBackward {
    type State = ConvState;
    fn backward(self, ops: Ops<ConvState, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        conv_grads(ops, grads);
    }
}

impl Backward<Flex, 3> for ConvBackward {
    type State = ConvState;
    fn backward(self, ops: Ops<ConvState, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        conv_grads(ops, grads);
    }
}

/// [`crate::conv2d`] under autodiff.
pub fn conv2d(
    x: Tensor<Ad, 4>,
    weight: Tensor<Ad, 4>,
    bias: Option<Tensor<Ad, 1>>,
    options: ConvOptions<2>,
) -> Tensor<Ad, 4> {
    let mut dtypes = vec![x.dtype(), weight.dtype()];
    dtypes.extend(bias.as_ref().map(|b| b.dtype()));
    if real_dtype(&dtypes).is_none() {
        return reference::conv2d(x, weight, bias, options);
    }
    let (x, weight) = (primitive(x), primitive(weight));
    let state = (
        x.primitive.clone(),
        weight.primitive.clone(),
        options.clone(),
    );
    tensor(match bias.map(primitive) {
        Some(bias) => {
            let out = conv::forward(
                &x.primitive,
                &weight.primitive,
                Some(&bias.primitive),
                &options,
            );
            let nodes = [x.node.clone(), weight.node.clone(), bias.node.clone()];
            match <ConvBackward as Backward<Flex, 3>>::prepare::<NoCheckpointing>(
                ConvBackward,
                nodes,
            )
            .compute_bound()
            .stateful()
            {
                OpsKind::Tracked(prep) => prep.finish(state, out),
                OpsKind::UnTracked(prep) => prep.finish(out),
            }
        }
        None => {
            let out = conv::forward(&x.primitive, &weight.primitive, None, &options);
            let nodes = [x.node.clone(), weight.node.clone()];
            match <ConvBackward as Backward<Flex, 2>>::prepare::<NoCheckpointing>(
                ConvBackward,
                nodes,
            )
            .compute_bound()
            .stateful()
            {
                OpsKind::Tracked(prep) => prep.finish(state, out),
                OpsKind::UnTracked(prep) => prep.finish(out),
            }
        }
    })
}

#[derive(Debug)]
struct NormBackward;

/// The input, the weight, the saved mean and `1/sqrt(var + eps)`, and which norm it was.
type NormState = (FlexTensor, FlexTensor, FlexTensor, FlexTensor, Norm);

impl Backward<Flex, 3> for NormBackward {
    type State = NormState;
    fn backward(self, ops: Ops<NormState, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<Flex>(&ops.node);
        let (x, weight, mean, rstd, which) = ops.state;
        let out = norm::backward(which, &x, &weight, &mean, &rstd, &grad);
        for (parent, gradient) in ops.parents.into_iter().zip([out.x, out.weight, out.bias]) {
            if let Some(node) = parent {
                grads.register::<Flex>(node.id, gradient);
            }
        }
    }
}

/// Registers a normalisation's output with [`NormBackward`].
fn record_norm(
    [x, weight, bias]: &[AdPrimitive; 3],
    output: FlexTensor,
    state: impl FnOnce() -> NormState,
) -> AdPrimitive {
    let nodes = [x.node.clone(), weight.node.clone(), bias.node.clone()];
    match NormBackward
        .prepare::<NoCheckpointing>(nodes)
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(state(), output),
        OpsKind::UnTracked(prep) => prep.finish(output),
    }
}

/// [`crate::group_norm`] under autodiff.
pub fn group_norm(
    x: Tensor<Ad, 4>,
    weight: Tensor<Ad, 1>,
    bias: Tensor<Ad, 1>,
    groups: usize,
    eps: f64,
) -> Tensor<Ad, 4> {
    if real_dtype(&[x.dtype(), weight.dtype(), bias.dtype()]).is_none() {
        return reference::group_norm(x, weight, bias, groups, eps);
    }
    let inputs = [primitive(x), primitive(weight), primitive(bias)];
    let [xp, wp, bp] = [0, 1, 2].map(|i| &inputs[i].primitive);
    let forward = norm::group_norm_forward(xp, wp, bp, groups, eps);
    let state = || {
        let (x, w) = (xp.clone(), wp.clone());
        (x, w, forward.mean, forward.rstd, Norm::Group { groups })
    };
    tensor(record_norm(&inputs, forward.output, state))
}

/// [`crate::batch_norm_train`] under autodiff.
pub fn batch_norm_train(
    x: Tensor<Ad, 4>,
    weight: Tensor<Ad, 1>,
    bias: Tensor<Ad, 1>,
    eps: f64,
) -> (Tensor<Ad, 4>, Tensor<Ad, 1>, Tensor<Ad, 1>) {
    if real_dtype(&[x.dtype(), weight.dtype(), bias.dtype()]).is_none() {
        return reference::batch_norm_train(x, weight, bias, eps);
    }
    let inputs = [primitive(x), primitive(weight), primitive(bias)];
    let [xp, wp, bp] = [0, 1, 2].map(|i| &inputs[i].primitive);
    let forward = norm::batch_norm_forward(xp, wp, bp, eps);
    let (mean, var) = (forward.mean.clone(), forward.var);
    let state = || {
        let (x, w) = (xp.clone(), wp.clone());
        (x, w, forward.mean, forward.rstd, Norm::Batch)
    };
    let output = tensor(record_norm(&inputs, forward.output, state));
    (output, untracked(mean), untracked(var))
}

/// [`crate::batch_norm_fixed`] under autodiff. Statistics that require a gradient (none of
/// vireo's layers passes such) take the composed path, which differentiates them.
pub fn batch_norm_fixed(
    x: Tensor<Ad, 4>,
    [mean, var, weight, bias]: [Tensor<Ad, 1>; 4],
    eps: f64,
) -> Tensor<Ad, 4> {
    let dtypes = [
        x.dtype(),
        mean.dtype(),
        var.dtype(),
        weight.dtype(),
        bias.dtype(),
    ];
    if real_dtype(&dtypes).is_none() || mean.is_require_grad() || var.is_require_grad() {
        return reference::channel_affine_normalize(x, mean, var, weight, bias, eps);
    }
    let (mean, var) = (flex::primitive(mean.inner()), flex::primitive(var.inner()));
    let inputs = [primitive(x), primitive(weight), primitive(bias)];
    let [xp, wp, bp] = [0, 1, 2].map(|i| &inputs[i].primitive);
    let (output, rstd) = norm::batch_norm_fixed_forward(xp, &mean, &var, wp, bp, eps);
    let state = || (xp.clone(), wp.clone(), mean, rstd, Norm::Fixed);
    tensor(record_norm(&inputs, output, state))
}

/// A one-input operation's backward and what it needs from the forward.
#[derive(Clone, Debug)]
enum Unary {
    /// The weight, the forward's per-row statistics, the variant (boxed: the resize's state is
    /// a few words).
    Standardize(Box<(FlexTensor, FlexTensor, Standardization)>),
    /// The input's shape and `align_corners`.
    Resize([usize; 4], bool),
    /// The input's shape and each output's argmax in its input plane.
    MaxPool([usize; 4], Vec<u32>),
}

#[derive(Debug)]
struct UnaryBackward;

impl Backward<Flex, 1> for UnaryBackward {
    type State = Unary;
    fn backward(self, ops: Ops<Unary, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<Flex>(&ops.node);
        let [Some(node)] = ops.parents else { return };
        let gradient = match ops.state {
            Unary::Standardize(state) => {
                let (weight, stats, ws) = *state;
                standardize::backward(&weight, &stats, &grad, ws)
            }
            Unary::Resize(input_shape, align_corners) => {
                resize::backward(&grad, input_shape, align_corners)
            }
            Unary::MaxPool(input_shape, argmax) => pool::backward(&grad, &argmax, input_shape),
        };
        grads.register::<Flex>(node.id, gradient);
    }
}

/// Registers a one-input operation's output with [`UnaryBackward`].
fn record_unary(x: &AdPrimitive, output: FlexTensor, state: impl FnOnce() -> Unary) -> AdPrimitive {
    match UnaryBackward
        .prepare::<NoCheckpointing>([x.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(state(), output),
        OpsKind::UnTracked(prep) => prep.finish(output),
    }
}

/// [`crate::standardize_weight`] under autodiff.
pub fn standardize_weight(weight: Tensor<Ad, 4>, ws: Standardization) -> Tensor<Ad, 4> {
    if real_dtype(&[weight.dtype()]).is_none() {
        return reference::standardize_weight(weight, ws);
    }
    let weight = primitive(weight);
    let forward = standardize::forward(&weight.primitive, ws);
    let state = || Unary::Standardize(Box::new((weight.primitive.clone(), forward.stats, ws)));
    tensor(record_unary(&weight, forward.output, state))
}

/// [`crate::interpolate_bilinear`] under autodiff.
pub fn interpolate_bilinear(
    x: Tensor<Ad, 4>,
    size: [usize; 2],
    align_corners: bool,
) -> Tensor<Ad, 4> {
    if real_dtype(&[x.dtype()]).is_none() {
        return reference::interpolate_bilinear_burn(x, size, align_corners);
    }
    let input_shape = x.dims();
    let x = primitive(x);
    let output = resize::forward(&x.primitive, size, align_corners);
    tensor(record_unary(&x, output, || {
        Unary::Resize(input_shape, align_corners)
    }))
}

/// [`crate::max_pool2d`] under autodiff.
pub fn max_pool2d(x: Tensor<Ad, 4>, pool: Pool2d) -> Tensor<Ad, 4> {
    if real_dtype(&[x.dtype()]).is_none() {
        return reference::max_pool2d(x, pool);
    }
    let input_shape = x.dims();
    let x = primitive(x);
    // The argmax only when a gradient will be asked for.
    match UnaryBackward
        .prepare::<NoCheckpointing>([x.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let (output, argmax) = pool::forward_with_argmax(&x.primitive, &pool);
            tensor(prep.finish(Unary::MaxPool(input_shape, argmax), output))
        }
        OpsKind::UnTracked(prep) => tensor(prep.finish(pool::forward(&x.primitive, &pool))),
    }
}
