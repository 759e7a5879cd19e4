//! Batch-Channel Normalization (Qiao et al., arXiv 1911.09738), spec `bcn.md` §2.1–§2.3.

use burn::{
    module::{Initializer, Module, Param},
    tensor::{Tensor, backend::Backend},
};

use crate::{BatchNorm2d, BatchStatistics};

/// Stage 1 normalises each channel with batch (or EstBN) statistics and a per-channel affine; stage 2
/// normalises each sample's channel groups with their own statistics and applies a **per-group**
/// affine. Field names are the official checkpoint keys (`weight`/`bias` `[1, G, 1]`, `pbn.*`).
#[derive(Module, Debug)]
pub struct BatchChannelNorm<B: Backend> {
    /// Stage-2 per-group γ, `[1, G, 1]`.
    pub weight: Param<Tensor<B, 3>>,
    /// Stage-2 per-group β, `[1, G, 1]`.
    pub bias: Param<Tensor<B, 3>>,
    /// Stage 1.
    pub pbn: BatchNorm2d<B>,
    pub groups: usize,
    pub eps: f64,
}

impl<B: Backend> BatchChannelNorm<B> {
    /// Stage-1 eps is PyTorch's BatchNorm/EstBN 1e-5; `eps` is the stage-2 eps (1e-5 officially).
    pub fn new(
        channels: usize,
        groups: usize,
        eps: f64,
        statistics: BatchStatistics,
        device: &B::Device,
    ) -> Self {
        Self {
            weight: Initializer::Ones.init([1, groups, 1], device),
            bias: Initializer::Zeros.init([1, groups, 1], device),
            pbn: BatchNorm2d::new(channels, 1e-5, statistics, device),
            groups,
            eps,
        }
    }

    /// `[N, C, H, W] -> [N, C, H, W]`
    ///
    /// Stage 2 is a group norm whose per-channel affine repeats each group's γ and β over the
    /// group's channels (`core_ops::group_norm`, fused where the backend has a kernel); the
    /// gradient of a repeated parameter is the sum over its channels, as for `[1, G, 1]`.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let channels = x.dims()[1];
        let x1 = self.pbn.forward(x);
        let per_channel = |v: Tensor<B, 3>| {
            v.reshape([self.groups, 1])
                .repeat_dim(1, channels / self.groups)
                .reshape([channels])
        };
        core_ops::group_norm(
            x1,
            per_channel(self.weight.val()),
            per_channel(self.bias.val()),
            self.groups,
            self.eps,
        )
    }
}
