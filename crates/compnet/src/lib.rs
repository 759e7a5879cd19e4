//! Compositional Nets: A. Kortylewski, Q. Liu, H. Wang, Z. Zhang, A. Yuille, "Combining
//! Compositional Models and Deep Networks for Robust Object Classification under Occlusion", WACV
//! 2020 (CN-WACV), and A. Kortylewski, J. He, Q. Liu, A. Yuille, "Compositional Convolutional
//! Neural Networks: A Deep Architecture with Innate Robustness to Partial Occlusion", CVPR 2020
//! (CN-vMF), with occluder localisation (arXiv 1911.08571). Spec: `compnet.md`.
//!
//! The math, one module per part of the spec: [`vmf`] — the vMF kernel layer and activation
//! (§2.3); [`mixture`] — mixture normalisation and `crop_or_pad_as` (§2.4); [`score`] — the
//! occlusion-robust score in both background modes, the temperature-2 softmax and the occluder
//! map (all pairs by default, the official tiling as a switch; §2.6–2.7); [`loss`] — the released
//! loss terms (§2.8); [`roc`] — occluder localisation's ROC (§4.3); [`vmfmm`] — vMF mixture
//! clustering (§2.9); [`binary`], [`spectral`], [`mixture_init`] — binary encodings, image
//! distances, hierarchical spectral clustering and the mixtures' ML/EM; [`occluder`] — occluder
//! models from background activations (§2.5); [`bernoulli`] — CN-WACV's Bernoulli score and the
//! DCNN switch (§2.10).
//!
//! The networks: [`backbone`] (VGG-16 from core-nets' `vgg`, or a core-nets ResNet), [`dcnn`]
//! (the plain classifier), [`head`] (the compositional head with the released parameter names),
//! [`model`] (CN-vMF with its end-to-end loss). The pipeline: [`init`] (the initialisation
//! stage), [`features`] (backbone outputs to the host), [`official`] (the released `best.pth`,
//! initialisation files and background folder), [`experiment`] (`vireo train compnet`).

pub mod backbone;
pub mod bernoulli;
pub mod binary;
pub mod dcnn;
pub mod experiment;
pub mod features;
pub mod head;
pub mod init;
pub mod loss;
pub mod mixture;
pub mod mixture_init;
pub mod model;
pub mod occluder;
pub mod official;
pub mod roc;
pub mod score;
pub mod spectral;
pub mod vmf;
pub mod vmfmm;

pub use experiment::{COMPNET, CompNetExperiment};

/// The first index of the largest value and the value (`(0, −∞)` for no values; NaN never
/// wins): the argmax every score, assignment and prediction here uses.
pub fn first_max<T: Lowest>(values: &[T]) -> (usize, T) {
    values.iter().enumerate().fold(
        (0, T::LOWEST),
        |(bi, bv), (i, &v)| {
            if v > bv { (i, v) } else { (bi, bv) }
        },
    )
}

/// The float types [`first_max`] takes, with their `−∞`.
pub trait Lowest: PartialOrd + Copy {
    const LOWEST: Self;
}

impl Lowest for f32 {
    const LOWEST: Self = f32::NEG_INFINITY;
}

impl Lowest for f64 {
    const LOWEST: Self = f64::NEG_INFINITY;
}
