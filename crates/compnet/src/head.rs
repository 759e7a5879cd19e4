//! The CN-vMF head as a module (`compnet.md` §2.1–2.6, §3): the vMF kernels (`conv1o1.weight`)
//! and the raw spatial mixtures (`mix_model [C·M, K, Hm, Wm]`) are its trainable parameters, named
//! as in the released `best.pth`; occluder models are given per call (they are rebuilt from
//! background images, not saved). A forward normalises kernels, features and mixtures, crops or
//! pads the mixtures to the feature map, and scores every class.

use burn::{
    module::{Module, Param},
    tensor::{Tensor, backend::Backend},
};
use serde::{Deserialize, Serialize};

use crate::{
    mixture::{crop_or_pad_as, normalise_over_kernels},
    score::{Terms, class_probabilities, terms},
    vmf::{VmfKernels, vmf_activation},
};

/// The head's fixed settings (released defaults).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HeadConfig {
    /// κ of the vMF activation (30).
    pub kappa: f64,
    /// The activation's strict gate on the cosine (0).
    pub threshold: f64,
    /// The occlusion prior (0.6).
    pub occ: f64,
    /// Mixtures per class (4).
    pub mixtures_per_class: usize,
    /// Score with the per-position best occluder (localisation) instead of one per image.
    pub mixture_bg: bool,
}

impl Default for HeadConfig {
    fn default() -> Self {
        Self {
            kappa: 30.0,
            threshold: 0.0,
            occ: 0.6,
            mixtures_per_class: 4,
            mixture_bg: false,
        }
    }
}

#[derive(Module, Debug)]
pub struct CompositionalHead<B: Backend> {
    /// The vMF dictionary `[K, D, 1, 1]`, raw.
    pub conv1o1: VmfKernels<B>,
    /// The spatial mixtures `[C·M, K, Hm, Wm]`, raw.
    pub mix_model: Param<Tensor<B, 4>>,
    #[module(skip)]
    pub config: HeadConfig,
}

/// What the head gives for a batch.
#[derive(Debug, Clone)]
pub struct HeadOutput<B: Backend> {
    /// `[B, C]` occlusion-robust scores.
    pub scores: Tensor<B, 2>,
    /// `[B, C]`: scores / (H·W) ("mix_likeli").
    pub ml: Tensor<B, 2>,
    /// `[B, C]`: the temperature-2 softmax of `ml`.
    pub probabilities: Tensor<B, 2>,
    pub terms: Terms<B>,
}

impl<B: Backend> CompositionalHead<B> {
    pub fn new(kernels: Tensor<B, 2>, mixtures: Tensor<B, 4>, config: HeadConfig) -> Self {
        Self {
            conv1o1: VmfKernels::from_rows(kernels),
            mix_model: Param::from_tensor(mixtures),
            config,
        }
    }

    /// The vMF activations `[B, K, H, W]` of backbone features `[B, D, H, W]`.
    pub fn activations(&self, features: Tensor<B, 4>) -> Tensor<B, 4> {
        vmf_activation(
            self.conv1o1.cosine(features),
            self.config.kappa,
            self.config.threshold,
        )
    }

    /// Scores of features `[B, D, H, W]` against the mixtures and the raw occluder models
    /// `[N, K]`.
    pub fn forward(&self, features: Tensor<B, 4>, occluders: Tensor<B, 2>) -> HeadOutput<B> {
        let [_, _, h, w] = features.dims();
        let v = self.activations(features);
        let mixtures = crop_or_pad_as(normalise_over_kernels(self.mix_model.val()), [h, w], 0.0);
        let terms = terms(
            v,
            mixtures,
            normalise_over_kernels(occluders),
            self.config.occ,
            self.config.mixtures_per_class,
        );
        let scores = terms.scores(self.config.mixture_bg);
        let ml = scores.clone() / (h * w) as f64;
        HeadOutput {
            probabilities: class_probabilities(ml.clone()),
            ml,
            scores,
            terms,
        }
    }
}
