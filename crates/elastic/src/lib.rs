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
//! * [`metrics`]: multi-label precision / recall / F1 as `multilabel_classify.py`, mAP, and the
//!   per-object-size recall and AP.
//! * [`experiment`]: `vireo train elastic` ([`ELASTIC`]): multi-label training on burn-train's
//!   supervised loop, ShapeWorld's scale task or MS-COCO, report and scale-policy picture.
//!
//! Training and predicting through the library, without the `vireo` binary
//! (`cargo run --release -p elastic --example train_elastic`):
//!
#![doc = concat!("```ignore\n", include_str!("../examples/train_elastic.rs"), "```")]
//!
//! Not yet here (the ELASTIC issue lists them): DLA-X and DenseNet, the ImageNet and VOC tasks,
//! the official checkpoints.

pub mod experiment;
pub mod flops;
pub mod init;
pub mod metrics;
pub mod models;

pub use experiment::{ELASTIC, ElasticExperiment};
pub use flops::resnext_flops;
pub use init::official_init;
pub use models::{ELASTIC_MODELS, ElasticModel};
