//! Axial-DeepLab: H. Wang, Y. Zhu, B. Green, H. Adam, A. Yuille, L.-C. Chen, "Axial-DeepLab:
//! Stand-Alone Axial-Attention for Panoptic Segmentation", ECCV 2020 (arXiv 2003.07853). Spec:
//! `axial-deeplab.md`.
//!
//! * [`AxialResNet`]: the conv-stem Axial-ResNet of the PyTorch repository (§3.1): ResNet stages of
//!   [`AxialBlock`]s whose 3×3 convolution is replaced by a height and a width
//!   [`core_attn::AxialAttention`] layer; `axial26s`, `axial50s`, `axial50m`, `axial50l` with the
//!   repository's exact parameter counts.
//!
//! * [`backbone`]: DeepLab2's Axial-ResNet backbones (§3.2) `axial_resnet_s/l`, `axial_deeplab_s/l`
//!   with its exact parameter counts, output stride 16.
//! * [`panoptic`]: the Panoptic-DeepLab decoder and heads on that backbone (§3.3).
//! * [`loss`]: hard-pixel cross-entropy, centre MSE, offset L1 (§4.2).
//! * [`targets`]: Panoptic-DeepLab training targets (§4.2): semantic weights, Gaussian centre
//!   heatmap, centre offsets.
//! * [`postprocess`]: centres, grouping and the panoptic merge (§4.3).
//! * [`metrics`]: PQ/SQ/RQ per class, things and stuff, and mIoU (§4.4).
//! * [`experiment`]: the experiment `vireo train|eval|infer axial` runs ([`AXIAL`]): config, data,
//!   training loop, evaluation, pictures, inference; presets in `presets/`.
//!
//! Training and predicting through the library, without the `vireo` binary
//! (`cargo run --release -p axial-deeplab --example train_axial`):
//!
#![doc = concat!("```ignore\n", include_str!("../examples/train_axial.rs"), "```")]

pub mod backbone;
pub mod block;
pub mod experiment;
pub mod loss;
pub mod metrics;
pub mod panoptic;
pub mod postprocess;
pub mod resnet;
pub mod targets;

pub use backbone::{AxialBackbone, AxialBackboneConfig, BACKBONE_PRESETS, StemKind};
pub use block::AxialBlock;
pub use experiment::{AXIAL, PanopticConfig};
pub use loss::{PanopticLoss, PanopticLossConfig, PanopticTargetBatch};
pub use panoptic::{
    DecoderConfig, EncoderConfig, PanopticDeepLab, PanopticDeepLabConfig, PanopticPrediction,
};
pub use resnet::{
    AXIAL_PRESETS, AxialPreset, AxialResNet, AxialResNetConfig, load_axial_checkpoint,
};
