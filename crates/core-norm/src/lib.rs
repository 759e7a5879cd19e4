//! Normalisation layers of two papers by Qiao et al., as implemented by their official code:
//!
//! * **Weight Standardization** (arXiv 1903.10520; spec `ws.md`): [`Conv2d`] with
//!   [`ConvKind::Ws`] and every formula variant in circulation ([`WsVariant`]).
//! * **Batch-Channel Normalization** (arXiv 1911.09738; spec `bcn.md`): [`BatchChannelNorm`], a
//!   batch-statistics stage (batch norm or the micro-batch EstBN) followed by group normalisation
//!   with a per-group affine.
//!
//! Backbones take a ([`ConvKind`], [`NormKind`]) pair and build their layers through
//! [`ConvKind::conv`] and [`NormKind::init`], so WS, GN, BN and BCN are switches over one network.
//!
//! Training or evaluation behaviour follows burn's convention: a layer runs in training mode when its
//! backend records gradients (`B::ad_enabled`), i.e. inside a `Learner` train step, and in evaluation
//! mode on the inner backend (`model.valid()`).

mod batch_norm;
mod bcn;
mod conv;
mod group_norm;
mod kinds;
mod ws;

pub use batch_norm::{BatchNorm2d, BatchStatistics};
pub use bcn::BatchChannelNorm;
pub use conv::{Conv2d, Conv2dConfig};
pub use core_ops::reference::per_sample;
pub use group_norm::{GroupNorm2d, group_standardize};
pub use kinds::{ConvKind, IdentityNorm, KindError, Norm, NormKind};
pub use ws::{WsVariant, standardize_weight};
