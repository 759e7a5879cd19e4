//! Batch normalisation with PyTorch's conventions (`resnet-family.md` §2.1), and EstBN, the
//! micro-batch estimate of batch statistics (`bcn.md` §2.2). Both are stage 1 of BCN.
//!
//! burn's own `BatchNorm` updates its running variance with the biased batch variance; PyTorch uses
//! the unbiased one, so checkpoints and the spec vectors need this layer.

use burn::{
    module::{Initializer, Module, Param, RunningState},
    tensor::{Tensor, backend::Backend},
};
use serde::{Deserialize, Serialize};

/// Where the statistics that normalise a training batch come from.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum BatchStatistics {
    /// The batch's own mean and biased variance; running estimates updated with `momentum`
    /// (PyTorch: weight of the new statistic) and the unbiased variance.
    Batch { momentum: f64 },
    /// EstBN: the running estimates, first moved towards the batch moments at `rate`, then used as
    /// constants (no gradient through them). The official code never sets the rate; 0.01 is the
    /// default here (`bcn.md` §2.2), and 0 logs a warning.
    Estimated {
        #[serde(default = "default_estbn_rate")]
        rate: f64,
    },
}

fn default_estbn_rate() -> f64 {
    0.01
}

/// Per-channel normalisation of `[N, C, H, W]` with a per-channel affine. Field names match
/// PyTorch's `BatchNorm2d` state_dict keys.
#[derive(Module, Debug)]
pub struct BatchNorm2d<B: Backend> {
    pub weight: Param<Tensor<B, 1>>,
    pub bias: Param<Tensor<B, 1>>,
    pub running_mean: RunningState<Tensor<B, 1>>,
    pub running_var: RunningState<Tensor<B, 1>>,
    pub eps: f64,
    #[module(skip)]
    pub statistics: BatchStatistics,
}

impl<B: Backend> BatchNorm2d<B> {
    /// γ = 1, β = 0, running mean 0, running variance 1 (PyTorch's and EstBN's initial state).
    pub fn new(channels: usize, eps: f64, statistics: BatchStatistics, device: &B::Device) -> Self {
        Self {
            weight: Initializer::Ones.init([channels], device),
            bias: Initializer::Zeros.init([channels], device),
            running_mean: RunningState::new(Tensor::zeros([channels], device)),
            running_var: RunningState::new(Tensor::ones([channels], device)),
            eps,
            statistics,
        }
    }

    /// `[N, C, H, W] -> [N, C, H, W]`; training mode when the backend records gradients.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        if !B::ad_enabled(&x.device()) {
            let (mean, var) = (self.running_mean.value(), self.running_var.value());
            return self.normalize(x, mean, var);
        }
        match self.statistics {
            BatchStatistics::Batch { momentum } => self.forward_batch(x, momentum),
            BatchStatistics::Estimated { rate } => self.forward_estimated(x, rate),
        }
    }

    /// Normalised with the batch's statistics (`core_ops`' fused kernel where the backend has one),
    /// then the running estimates moved towards them.
    fn forward_batch(&self, x: Tensor<B, 4>, momentum: f64) -> Tensor<B, 4> {
        let [n, _, h, w] = x.dims();
        let count = n * h * w;
        let (out, mean, var) =
            core_ops::batch_norm_train(x, self.weight.val(), self.bias.val(), self.eps);
        let unbiased = var.mul_scalar(count as f64 / (count.max(2) - 1) as f64);
        self.running_mean
            .update(ema(self.running_mean.value_sync(), mean, momentum));
        self.running_var
            .update(ema(self.running_var.value_sync(), unbiased, momentum));
        out
    }

    /// `bcn.md` §2.2: update the estimates first (variance centred on the *old* mean estimate),
    /// then normalise with the updated estimates as constants.
    fn forward_estimated(&self, x: Tensor<B, 4>, rate: f64) -> Tensor<B, 4> {
        let [n, c, h, w] = x.dims();
        let old_mean = self.running_mean.value_sync();
        let per_sample = x.clone().detach().reshape([n, c, h * w]); // [N, C, HW]
        let batch_mean = per_sample.clone().mean_dim(2).mean_dim(0).reshape([c]);
        let old = crate::per_sample(old_mean.clone().reshape([1, c, 1]), n); // [N, C, 1]
        let drift_var = (per_sample - old)
            .square()
            .mean_dim(2)
            .mean_dim(0)
            .reshape([c]);
        let mean = ema(old_mean, batch_mean, rate);
        let var = ema(self.running_var.value_sync(), drift_var, rate);
        self.running_mean.update(mean.clone());
        self.running_var.update(var.clone());
        self.normalize(x, mean, var)
    }

    /// `γ (x - mean) / sqrt(var + eps) + β` with per-channel `mean`, `var` of shape `[C]`.
    fn normalize(&self, x: Tensor<B, 4>, mean: Tensor<B, 1>, var: Tensor<B, 1>) -> Tensor<B, 4> {
        self.normalize_with(x, mean, var, self.weight.val(), self.bias.val())
    }

    fn normalize_with(
        &self,
        x: Tensor<B, 4>,
        mean: Tensor<B, 1>,
        var: Tensor<B, 1>,
        weight: Tensor<B, 1>,
        bias: Tensor<B, 1>,
    ) -> Tensor<B, 4> {
        core_ops::batch_norm_fixed(x, mean, var, weight, bias, self.eps)
    }

    /// The same as [`Self::forward`] on one `[N, C, H, W]` tensor whose channels are spread over
    /// `parts` (all `[N, C_t, H, W]`): channel `k` of part `t` is channel `channels[t][k]` of this
    /// norm; together the parts cover every channel once. Each part is normalised where it is, so
    /// nothing is concatenated, interleaved or reduced across parts (axial attention's similarity
    /// and output norms: `axial-deeplab.md` §2.1). Batch statistics only.
    pub fn forward_parts(
        &self,
        parts: Vec<Tensor<B, 4>>,
        channels: &[Vec<usize>],
    ) -> Vec<Tensor<B, 4>> {
        assert_eq!(parts.len(), channels.len(), "one channel list per part");
        let total = self.weight.dims()[0];
        assert_eq!(
            channels.iter().map(Vec::len).sum::<usize>(),
            total,
            "the parts must cover the {total} channels once"
        );
        let device = self.weight.device();
        let index = |list: &Vec<usize>| {
            Tensor::<B, 1, burn::tensor::Int>::from_data(
                burn::tensor::TensorData::new(
                    list.iter().map(|&k| k as i64).collect::<Vec<_>>(),
                    [list.len()],
                ),
                &device,
            )
        };
        let indices: Vec<_> = channels.iter().map(index).collect();
        let affine = |idx: &Tensor<B, 1, burn::tensor::Int>| {
            (
                self.weight.val().select(0, idx.clone()),
                self.bias.val().select(0, idx.clone()),
            )
        };
        let training = parts.first().is_some_and(|p| B::ad_enabled(&p.device()));
        if !training {
            let (mean, var) = (self.running_mean.value(), self.running_var.value());
            return parts
                .into_iter()
                .zip(&indices)
                .map(|(x, idx)| {
                    let (w, b) = affine(idx);
                    let (m, v) = (
                        mean.clone().select(0, idx.clone()),
                        var.clone().select(0, idx.clone()),
                    );
                    self.normalize_with(x, m, v, w, b)
                })
                .collect();
        }
        let BatchStatistics::Batch { momentum } = self.statistics else {
            panic!("BatchNorm2d::forward_parts supports batch statistics only");
        };
        let mut full_mean = Tensor::<B, 1>::zeros([total], &device);
        let mut full_var = Tensor::<B, 1>::zeros([total], &device);
        let [n, _, h, w] = parts[0].dims();
        let count = n * h * w;
        let out = parts
            .into_iter()
            .zip(&indices)
            .map(|(x, idx)| {
                let [n, _, h, w] = x.dims();
                assert_eq!(n * h * w, count, "every part must hold the same samples");
                let (wt, b) = affine(idx);
                let (out, mean, var) = core_ops::batch_norm_train(x, wt, b, self.eps);
                let add = burn::tensor::IndexingUpdateOp::Add;
                full_mean = full_mean.clone().select_assign(0, idx.clone(), mean, add);
                full_var = full_var.clone().select_assign(0, idx.clone(), var, add);
                out
            })
            .collect();
        let unbiased = full_var.mul_scalar(count as f64 / (count.max(2) - 1) as f64);
        self.running_mean
            .update(ema(self.running_mean.value_sync(), full_mean, momentum));
        self.running_var
            .update(ema(self.running_var.value_sync(), unbiased, momentum));
        out
    }
}

/// `(1 - rate) · old + rate · new`, PyTorch's running-statistics update.
fn ema<B: Backend>(old: Tensor<B, 1>, new: Tensor<B, 1>, rate: f64) -> Tensor<B, 1> {
    old.mul_scalar(1.0 - rate) + new.mul_scalar(rate)
}
