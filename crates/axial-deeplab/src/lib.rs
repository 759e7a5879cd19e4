//! Axial-DeepLab: H. Wang, Y. Zhu, B. Green, H. Adam, A. Yuille, L.-C. Chen, "Axial-DeepLab:
//! Stand-Alone Axial-Attention for Panoptic Segmentation", ECCV 2020 (arXiv 2003.07853). Spec:
//! `axial-deeplab.md`.
//!
//! * [`AxialResNet`]: the conv-stem Axial-ResNet of the PyTorch repository (§3.1): ResNet stages of
//!   [`AxialBlock`]s whose 3×3 convolution is replaced by a height and a width
//!   [`core_attn::AxialAttention`] layer; `axial26s`, `axial50s`, `axial50m`, `axial50l` with the
//!   repository's exact parameter counts.
//!
//! * [`targets`]: Panoptic-DeepLab training targets (§4.2): semantic weights, Gaussian centre
//!   heatmap, centre offsets.
//! * [`postprocess`]: centres, grouping and the panoptic merge (§4.3).
//! * [`metrics`]: PQ/SQ/RQ per class, things and stuff, and mIoU (§4.4).
//!
//! The panoptic decoder and heads, the losses and the training loop follow (Axial-DeepLab issue).

pub mod block;
pub mod metrics;
pub mod postprocess;
pub mod resnet;
pub mod targets;

pub use block::AxialBlock;
pub use resnet::{
    AXIAL_PRESETS, AxialPreset, AxialResNet, AxialResNetConfig, load_axial_checkpoint,
};
