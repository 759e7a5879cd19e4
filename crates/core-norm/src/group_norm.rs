//! Group normalisation (Wu & He 2018) as PyTorch's `nn.GroupNorm2d`: biased variance, eps inside the
//! root, per-channel affine. Stage 2 of BCN shares [`group_standardize`] but has a per-group affine.

use burn::{
    module::{Initializer, Module, Param},
    tensor::{Tensor, backend::Backend},
};

pub use core_ops::reference::group_standardize;

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

    /// `[N, C, H, W] -> [N, C, H, W]`, the same in training and evaluation (`core_ops`' fused
    /// kernel where the backend has one).
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        core_ops::group_norm(x, self.weight.val(), self.bias.val(), self.groups, self.eps)
    }
}
