//! The (conv, norm) switches every backbone takes (`resnet-family.md` §2.1).

use burn::{
    module::{Module, Param},
    tensor::{Tensor, backend::Backend},
};
use serde::{Deserialize, Serialize};

use crate::{BatchChannelNorm, BatchNorm2d, BatchStatistics, Conv2dConfig, GroupNorm2d, WsVariant};

/// How a backbone's convolutions treat their weights.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ConvKind {
    #[default]
    Plain,
    /// Weight Standardization with the given formula (`ws.md` §2.2).
    Ws {
        #[serde(default)]
        variant: WsVariant,
    },
}

impl ConvKind {
    /// A bias-free `k×k` convolution of this kind, the building block of every ResNet.
    pub fn conv(self, in_channels: usize, out_channels: usize, kernel_size: usize) -> Conv2dConfig {
        Conv2dConfig::new(in_channels, out_channels, kernel_size).with_kind(self)
    }
}

/// How a backbone normalises activations.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum NormKind {
    /// Batch norm with PyTorch conventions (or EstBN statistics).
    Batch {
        #[serde(default = "default_eps")]
        eps: f64,
        #[serde(default = "default_statistics")]
        statistics: BatchStatistics,
    },
    /// `nn.GroupNorm(groups, C)`.
    Group {
        groups: usize,
        #[serde(default = "default_eps")]
        eps: f64,
    },
    /// Batch-Channel Normalization (`bcn.md`): stage 1 per `stage1`, then `groups` group norm with a
    /// per-group affine.
    BatchChannel {
        groups: usize,
        #[serde(default = "default_eps")]
        eps: f64,
        #[serde(default = "default_statistics")]
        stage1: BatchStatistics,
    },
    Identity,
}

fn default_eps() -> f64 {
    1e-5
}

fn default_statistics() -> BatchStatistics {
    BatchStatistics::Batch { momentum: 0.1 }
}

/// A (conv, norm) setting that cannot build the requested layer.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum KindError {
    #[error("{what}: {channels} channels are not divisible into {groups} groups")]
    Groups {
        what: &'static str,
        channels: usize,
        groups: usize,
    },
    #[error("{what} = {value} is out of range: expected {expected}")]
    Range {
        what: &'static str,
        value: f64,
        expected: &'static str,
    },
}

impl NormKind {
    /// PyTorch `BatchNorm2d` defaults.
    pub const BATCH: NormKind = NormKind::Batch {
        eps: 1e-5,
        statistics: BatchStatistics::Batch { momentum: 0.1 },
    };

    pub fn group(groups: usize) -> Self {
        NormKind::Group { groups, eps: 1e-5 }
    }

    pub fn batch_channel(groups: usize, stage1: BatchStatistics) -> Self {
        NormKind::BatchChannel {
            groups,
            eps: 1e-5,
            stage1,
        }
    }

    /// Checks that a layer of `channels` channels can be built, without building it.
    pub fn validate(&self, channels: usize) -> Result<(), KindError> {
        let (groups, eps, statistics) = match *self {
            NormKind::Batch { eps, statistics } => (None, eps, Some(statistics)),
            NormKind::Group { groups, eps } => (Some(groups), eps, None),
            NormKind::BatchChannel {
                groups,
                eps,
                stage1,
            } => (Some(groups), eps, Some(stage1)),
            NormKind::Identity => return Ok(()),
        };
        if let Some(groups) = groups
            && (groups == 0 || !channels.is_multiple_of(groups))
        {
            return Err(KindError::Groups {
                what: "norm.groups",
                channels,
                groups,
            });
        }
        if !(eps > 0.0 && eps < 1.0) {
            return Err(KindError::Range {
                what: "norm.eps",
                value: eps,
                expected: "0 < eps < 1",
            });
        }
        match statistics {
            Some(BatchStatistics::Batch { momentum }) if !(momentum > 0.0 && momentum <= 1.0) => {
                Err(KindError::Range {
                    what: "momentum",
                    value: momentum,
                    expected: "0 < momentum <= 1",
                })
            }
            Some(BatchStatistics::Estimated { rate }) if !(0.0..=1.0).contains(&rate) => {
                Err(KindError::Range {
                    what: "estbn rate",
                    value: rate,
                    expected: "0 <= rate <= 1",
                })
            }
            _ => Ok(()),
        }
    }

    /// Builds the layer for `channels` channels; panics on a setting [`NormKind::validate`] rejects.
    pub fn init<B: Backend>(&self, channels: usize, device: &B::Device) -> Norm<B> {
        if let Err(err) = self.validate(channels) {
            panic!("{err}");
        }
        match *self {
            NormKind::Batch { eps, statistics } => {
                Norm::Batch(BatchNorm2d::new(channels, eps, statistics, device))
            }
            NormKind::Group { groups, eps } => {
                Norm::Group(GroupNorm2d::new(channels, groups, eps, device))
            }
            NormKind::BatchChannel {
                groups,
                eps,
                stage1,
            } => {
                if stage1 == (BatchStatistics::Estimated { rate: 0.0 }) {
                    tracing::warn!(
                        "EstBN update rate is 0: the estimates never move and BCN reduces to a group norm \
                         of x/sqrt(1+1e-5) (bcn.md §2.2)"
                    );
                }
                Norm::BatchChannel(BatchChannelNorm::new(channels, groups, eps, stage1, device))
            }
            NormKind::Identity => Norm::Identity(IdentityNorm),
        }
    }

    /// Whether the layer keeps running statistics (a checkpoint then carries `running_*` buffers).
    pub fn has_running_stats(&self) -> bool {
        matches!(self, NormKind::Batch { .. } | NormKind::BatchChannel { .. })
    }
}

/// A norm slot that passes its input through (`NormKind::Identity`).
#[derive(Module, Clone, Debug, Default)]
pub struct IdentityNorm;

/// One normalisation layer of any kind. Enum variant names are skipped in checkpoint paths, so a
/// slot named `bn1` holds `bn1.weight` whatever its kind.
// Layers are built once per network; boxing the larger variants buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Norm<B: Backend> {
    Batch(BatchNorm2d<B>),
    Group(GroupNorm2d<B>),
    BatchChannel(BatchChannelNorm<B>),
    Identity(IdentityNorm),
}

impl<B: Backend> Norm<B> {
    /// `[N, C, H, W] -> [N, C, H, W]`
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        match self {
            Norm::Batch(norm) => norm.forward(x),
            Norm::Group(norm) => norm.forward(x),
            Norm::BatchChannel(norm) => norm.forward(x),
            Norm::Identity(_) => x,
        }
    }

    /// Zeroes the scale that ends a residual branch: the per-channel γ of BN/GN, and for BCN the
    /// **per-group stage-2 γ**, never the stage-1 γ (`bcn.md` §3, pitfall 4).
    pub fn zero_init_scale(self) -> Self {
        fn zeros<B: Backend, const D: usize>(param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
            param.map(|t| t.zeros_like())
        }
        match self {
            Norm::Batch(mut n) => {
                n.weight = zeros(n.weight);
                Norm::Batch(n)
            }
            Norm::Group(mut n) => {
                n.weight = zeros(n.weight);
                Norm::Group(n)
            }
            Norm::BatchChannel(mut n) => {
                n.weight = zeros(n.weight);
                Norm::BatchChannel(n)
            }
            Norm::Identity(n) => Norm::Identity(n),
        }
    }
}
