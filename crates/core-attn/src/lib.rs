//! Attention layers of the vireo papers.
//!
//! * **Position-sensitive axial attention** (Axial-DeepLab, arXiv 2003.07853; spec
//!   `axial-deeplab.md`): [`AxialAttention`] attends along one axis of a feature map with relative
//!   positional terms for queries, keys and values, batch norms on q/k/v, on each similarity term
//!   and on the output terms, and no `1/√d` temperature. [`RpeConvention`] selects the PyTorch
//!   repository's offsets (default) or DeepLab2's.
//!
//! Training or evaluation behaviour follows the backend, as in `core-norm`: batch statistics when
//! the backend records gradients, running statistics on the inner backend (`model.valid()`).

pub mod axial;
pub mod relative;

pub use axial::{
    AxialAttention, AxialAttentionConfig, AxialError, Axis, QkvTransform, Span, StrideMode,
};
pub use relative::RpeConvention;
