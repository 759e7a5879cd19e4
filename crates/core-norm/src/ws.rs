//! Weight Standardization (Qiao et al., arXiv 1903.10520), spec `ws.md` §2.1–§2.2.

use burn::tensor::{Tensor, backend::Backend};
use serde::{Deserialize, Serialize};

/// The WS formulas in circulation (`ws.md` §2.2). They differ in the variance estimator, where eps
/// enters and its value; a checkpoint must run with the variant it was trained with.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum WsVariant {
    /// pytorch-classification, maskrcnn-benchmark, DeepLabv3.pytorch: unbiased std, `std + 1e-5`.
    #[default]
    OfficialTorch,
    /// The README's TensorFlow snippet and dgcnn: biased std, `std + 1e-5`.
    OfficialTf,
    /// Batch-Channel-Normalization `imagenet/models/layers.py`, mmcv `ConvAWS2d`: unbiased,
    /// `sqrt(var + 1e-5)`.
    BcnRepo,
    /// timm `StdConv2d`: biased, `sqrt(var + eps)` with eps 1e-6 (1e-8 in BiT/ViT-hybrid configs).
    Timm { eps: f64 },
    /// big_transfer (BiT): biased, `sqrt(var + 1e-10)`.
    Bit,
}

impl WsVariant {
    /// timm's default `StdConv2d` eps.
    pub const TIMM: WsVariant = WsVariant::Timm { eps: 1e-6 };

    fn unbiased(self) -> bool {
        matches!(self, WsVariant::OfficialTorch | WsVariant::BcnRepo)
    }

    fn eps(self) -> f64 {
        match self {
            WsVariant::OfficialTorch | WsVariant::OfficialTf | WsVariant::BcnRepo => 1e-5,
            WsVariant::Timm { eps } => eps,
            WsVariant::Bit => 1e-10,
        }
    }

    fn eps_inside_root(self) -> bool {
        !matches!(self, WsVariant::OfficialTorch | WsVariant::OfficialTf)
    }
}

/// Below this variance a kernel counts as constant: its standard deviation is taken as
/// `sqrt(VAR_FLOOR)` so that the backward pass of `sqrt` stays finite (`ws.md` §2.1, pitfall 10).
/// The forward value of such a channel is unchanged: its centred weights are (numerically) zero.
const VAR_FLOOR: f64 = 1e-30;

/// `What[o] = (W[o] - mean_o) / sigma_o` per output channel over `(C_in/groups, kH, kW)`
/// (`ws.md` §2.1), with `sigma_o` as the variant defines it. Differentiable in `W`.
pub fn standardize_weight<B: Backend>(weight: Tensor<B, 4>, variant: WsVariant) -> Tensor<B, 4> {
    let shape = weight.dims();
    let [out_channels, fan_in] = [shape[0], shape[1] * shape[2] * shape[3]];
    assert!(
        fan_in > 1 || !variant.unbiased(),
        "weight standardization needs a fan-in above 1 for the unbiased variance (got kernel {shape:?})"
    );
    let w = weight.reshape([out_channels, fan_in]);
    let centred = w.clone() - w.mean_dim(1); // [O, n]
    let divisor = if variant.unbiased() {
        fan_in - 1
    } else {
        fan_in
    } as f64;
    let var = centred.clone().square().sum_dim(1).div_scalar(divisor); // [O, 1]
    let eps = variant.eps();
    let sigma = if variant.eps_inside_root() {
        var.add_scalar(eps).sqrt()
    } else {
        var.clamp_min(VAR_FLOOR).sqrt().add_scalar(eps)
    };
    (centred / sigma).reshape(shape)
}
