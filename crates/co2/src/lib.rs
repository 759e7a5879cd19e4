//! CO2: C. Wei, H. Wang, W. Shen, A. Yuille, "CO2: Consistent Contrast for Unsupervised Visual
//! Representation Learning", ICLR 2021 (arXiv 2010.02217), on MoCo v1/v2. Spec: `co2-moco.md`.
//! There is no official CO2 code; every uncertain choice of the paper is an option of
//! [`Co2Config`] (§2.2), and the community form is selectable (§2.3).
//!
//! * [`loss`]: InfoNCE (§2.1), the consistency term with its options, the community form.
//! * [`Queue`]: the negatives `[dim, K]` and their pointer (§2.1).
//! * [`momentum`]: the key encoder's update, parameters only.
//! * [`moco`]: the query and key encoders (core-nets ResNet + v1/v2 head), key BN split.
//!
//! * [`experiment`]: `vireo train co2` ([`CO2`]): pre-training, the kNN monitor ([`knn`]), linear
//!   evaluation, pictures, report.
//!
//! Pre-training and predicting through the library, without the `vireo` binary
//! (`cargo run --release -p co2 --example train_co2`):
//!
#![doc = concat!("```ignore\n", include_str!("../examples/train_co2.rs"), "```")]
//!
//! * [`official`]: the released MoCo checkpoints, both encoders, queue and pointer.
//!
//! * [`experiment::lincls`]: linear evaluation and semi-supervised fine-tuning after pre-training.

pub mod experiment;
pub mod knn;
pub mod loss;
pub mod moco;
pub mod momentum;
pub mod official;
pub mod queue;

pub use experiment::{CO2, Co2Experiment};
pub use loss::{Co2Config, Co2Form, Co2Loss, Negatives, co2_loss, consistency_loss, info_nce};
pub use moco::{Encoder, Head, KeyBn, Moco, MocoConfig};
pub use queue::Queue;
