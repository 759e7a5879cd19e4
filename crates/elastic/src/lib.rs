//! ELASTIC: H. Wang, A. Kembhavi, A. Farhadi, A. Yuille, M. Rastegari, "ELASTIC: Improving CNNs
//! with Dynamic Scaling Policies", CVPR 2019 (arXiv 1812.05262). Spec: `elastic.md`.
//!
//! The two-path block and its resampling are part of the shared ResNet family
//! ([`core_nets::TwoPathBottleneck`], [`core_nets::resample`]: `BlockKind::TwoPath` with the
//! config's `elastic` and `se` switches). This crate owns ELASTIC's models:
//!
//! * [`models`]: the paper's ResNeXt / SE-ResNeXt models, plain and elastic, with their
//!   re-allocated depths (§3) and exact parameter counts.
//! * [`flops`]: the official repository's FLOP counter (§2.4), evaluated on the architecture.
//! * [`init`]: the released initialisation (§3), with the `elastic_init_quirk` switch.
//!
//! Not yet here (the ELASTIC issue lists them): DLA-X and DenseNet, the tasks and their
//! experiment, the official checkpoints.

pub mod flops;
pub mod init;
pub mod models;

pub use flops::{resnext_flops, resnext_gflops};
pub use init::official_init;
pub use models::{ELASTIC_MODELS, ElasticModel};
