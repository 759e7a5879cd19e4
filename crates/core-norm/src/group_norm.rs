//! Group normalisation (Wu & He 2018) as PyTorch's `nn.GroupNorm2d`: biased variance, eps inside the
//! root, per-channel affine. Stage 2 of BCN shares [`group_standardize`] but has a per-group affine.

use burn::{
    module::{Initializer, Module, Param},
    tensor::{Tensor, backend::Backend},
};

/// `[N, C, H, W] -> [N, G, C/G·H·W]`: each sample's group standardised with its own mean and biased
/// variance (`bcn.md` §2.1 stage 2).
pub fn group_standardize<B: Backend>(x: Tensor<B, 4>, groups: usize, eps: f64) -> Tensor<B, 3> {
    let [n, c, h, w] = x.dims();
    let grouped = x.reshape([n, groups, c / groups * h * w]);
    let (var, mean) = grouped.clone().var_mean_bias(2); // [N, G, 1]
    (grouped - mean) / var.add_scalar(eps).sqrt()
}

#[derive(Module, Debug)]
pub struct GroupNorm2d<B: Backend> {
    pub weight: Param<Tensor<B, 1>>,
    pub bias: Param<Tensor<B, 1>>,
    pub groups: usize,
    pub eps: f64,
}

impl<B: Backend> GroupNorm2d<B> {
    pub fn new(channels: usize, groups: usize, eps: f64, device: &B::Device) -> Self {
        Self {
            weight: Initializer::Ones.init([channels], device),
            bias: Initializer::Zeros.init([channels], device),
            groups,
            eps,
        }
    }

    /// `[N, C, H, W] -> [N, C, H, W]`, the same in training and evaluation.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let shape = x.dims();
        let [n, c, _, _] = shape;
        let z = group_standardize(x, self.groups, self.eps).reshape(shape);
        let per_sample = |v: Tensor<B, 1>| crate::per_sample(v.reshape([1, c, 1, 1]), n); // [N, C, 1, 1]
        z * per_sample(self.weight.val()) + per_sample(self.bias.val())
    }
}
