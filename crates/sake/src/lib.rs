//! SAKE: Q. Liu, L. Xie, H. Wang, A. Yuille, "Semantic-Aware Knowledge Preservation for Zero-Shot
//! Sketch-Based Image Retrieval", ICCV 2019 (arXiv 1904.03208). Spec: `sake.md`.
//!
//! * [`model`]: the CSE-ResNet-50 student with its hashing heads and their SVD initialisation,
//!   the teacher (§2.1–2.3).
//! * [`loss`]: semantic-aware knowledge preservation, `CE + λ·L_kd` (§2.4–2.5).
//! * [`official`]: Cadene's ImageNet SE-ResNet-50 as the teacher, the released SAKE checkpoints.
//! * [`retrieval`]: AP / mAP@all with a stable tie-break and no NaN, mAP@k, P@k, both reductions
//!   (§2.6).
//! * [`augment`]: the affine training augmentation about the top-left corner (§4).
//! * [`experiment`]: `vireo train sake` ([`SAKE`]): teacher, fine-tuning on burn-train's Learner,
//!   retrieval, pictures, report.
//! * [`itq`]: binary codes by iterative quantisation with the correct Procrustes update (the
//!   NumPy port's transposed update only as an option), Hamming ranking (§2.7).

//! Through the library (`cargo run --release -p sake --example retrieval`):
//!
#![doc = concat!("```ignore\n", include_str!("../examples/retrieval.rs"), "```")]

pub mod augment;
pub mod experiment;
pub mod itq;
pub mod loss;
pub mod model;
pub mod official;
pub mod retrieval;

pub use experiment::{SAKE, Sake, SakeExperiment};
pub use loss::{SakeLoss, SakeLossConfig, knowledge_target, sake_loss, soft_cross_entropy};
pub use model::{
    Classifier, Domain, EmsLayer, SakeModelConfig, SakeNet, domain_codes, svd_initialisation,
    teacher_logits,
};
