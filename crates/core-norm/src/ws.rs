//! Weight Standardization (Qiao et al., arXiv 1903.10520), spec `ws.md` §2.1–§2.2.

use burn::tensor::{Tensor, backend::Backend};
use core_ops::Standardization;
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

    /// The variant's estimator and eps for `core_ops::standardize_weight`.
    pub fn standardization(self) -> Standardization {
        let (unbiased, eps, eps_inside_root) = match self {
            WsVariant::OfficialTorch => (true, 1e-5, false),
            WsVariant::OfficialTf => (false, 1e-5, false),
            WsVariant::BcnRepo => (true, 1e-5, true),
            WsVariant::Timm { eps } => (false, eps, true),
            WsVariant::Bit => (false, 1e-10, true),
        };
        Standardization {
            unbiased,
            eps,
            eps_inside_root,
        }
    }
}

/// `What[o] = (W[o] - mean_o) / sigma_o` per output channel over `(C_in/groups, kH, kW)`
/// (`ws.md` §2.1), with `sigma_o` as the variant defines it. Differentiable in `W`; one fused
/// kernel each way on the CPU (`core_ops::standardize_weight`).
pub fn standardize_weight<B: Backend>(weight: Tensor<B, 4>, variant: WsVariant) -> Tensor<B, 4> {
    core_ops::standardize_weight(weight, variant.standardization())
}
