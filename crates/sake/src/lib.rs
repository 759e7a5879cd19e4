//! SAKE: Q. Liu, L. Xie, H. Wang, A. Yuille, "Semantic-Aware Knowledge Preservation for Zero-Shot
//! Sketch-Based Image Retrieval", ICCV 2019 (arXiv 1904.03208). Spec: `sake.md`.
//!
//! Built so far (the SAKE issue is open): the retrieval evaluation ([`retrieval`]: AP / mAP@all
//! with a stable tie-break and no NaN, mAP@k, P@k, both reductions) and the binary codes ([`itq`]:
//! iterative quantisation with the correct Procrustes update, the NumPy port's transposed update
//! only as an option, Hamming ranking).

//! Through the library (`cargo run --release -p sake --example retrieval`):
//!
#![doc = concat!("```ignore\n", include_str!("../examples/retrieval.rs"), "```")]

pub mod itq;
pub mod retrieval;
