//! CN-vMF as one network (`compnet.md` §2.1, §2.8, §3, §4.1): the frozen VGG features, the
//! compositional head and the occluder models it scores against, with the end-to-end loss —
//! the released form (default; cross-entropy on the already-softmaxed output, the cluster loss
//! and the full robust score) or the paper's. Parameter names follow the released `best.pth`
//! (`backbone.*` maps to `backbone.convs.*`, `conv1o1.weight` and `mix_model` to `head.*`).

use burn::{
    module::{AutodiffModule, Module, Param},
    tensor::{
        Int, Tensor,
        activation::log_softmax,
        backend::{AutodiffBackend, Backend},
    },
    train::{ClassificationOutput, InferenceStep, TrainOutput, TrainStep},
};
use datasets::ClassificationBatch;
use serde::{Deserialize, Serialize};

use crate::{
    backbone::Backbone,
    head::{CompositionalHead, HeadOutput},
    loss::{cluster_loss, released_terms},
};

/// Which end-to-end loss trains the head (§2.8).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossForm {
    /// `CE(softmax(p), y) + α·L_cluster − β·ml[y]` (released `train.py`).
    #[default]
    Released,
    /// `CE(p, y) + γ_vmf·L_vmf + γ_mix·L_mix`: the paper's form, with the mixture term on the
    /// positions of the best mixture that the object (not the occluder) explains. The backbone is
    /// frozen, so its weight-decay term is 0.
    Paper,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LossConfig {
    pub form: LossForm,
    /// α: the cluster loss (released: 3; the paper form's γ_vmf).
    pub alpha: f64,
    /// β: the mixture term (released: 3; the paper form's γ_mix).
    pub beta: f64,
}

impl Default for LossConfig {
    fn default() -> Self {
        Self {
            form: LossForm::Released,
            alpha: 3.0,
            beta: 3.0,
        }
    }
}

/// The backbone, the head and the occluder models.
#[derive(Module, Debug)]
pub struct CompNet<B: Backend> {
    /// Frozen: never given a gradient, run outside the autodiff graph.
    pub backbone: Backbone<B>,
    pub head: CompositionalHead<B>,
    /// The raw occluder models `[N, K]` (§2.5), fixed during training.
    pub occluders: Param<Tensor<B, 2>>,
    #[module(skip)]
    pub loss: LossConfig,
}

/// Occluder models `[N][K]` (host, as [`crate::init::vmf_occluders`] makes them) as a tensor.
pub fn occluder_tensor<B: Backend>(rows: &[Vec<f64>], device: &B::Device) -> Tensor<B, 2> {
    let k = rows.first().map_or(0, Vec::len);
    Tensor::from_data(
        burn::tensor::TensorData::new(
            rows.concat()
                .iter()
                .map(|&v| v as f32)
                .collect::<Vec<f32>>(),
            [rows.len(), k],
        ),
        device,
    )
}

impl<B: Backend> CompNet<B> {
    pub fn new(
        backbone: Backbone<B>,
        head: CompositionalHead<B>,
        occluders: Tensor<B, 2>,
        loss: LossConfig,
    ) -> Self {
        Self {
            backbone: backbone.no_grad(),
            head,
            occluders: Param::from_tensor(occluders).set_require_grad(false),
            loss,
        }
    }

    /// The backbone's features `[B, D, H, W]` (training runs the frozen backbone on the inner
    /// backend instead, in its train step).
    pub fn features(&self, images: Tensor<B, 4>) -> Tensor<B, 4> {
        self.backbone.forward(images).detach()
    }

    pub fn forward_features(&self, features: Tensor<B, 4>) -> HeadOutput<B> {
        self.head.forward(features, self.occluders.val().detach())
    }

    pub fn forward(&self, images: Tensor<B, 4>) -> HeadOutput<B> {
        self.forward_features(self.features(images))
    }

    /// The training loss of a batch (mean over its images).
    pub fn loss(
        &self,
        features: Tensor<B, 4>,
        output: &HeadOutput<B>,
        targets: Tensor<B, 1, Int>,
    ) -> Tensor<B, 1> {
        let cluster = cluster_loss(features, self.head.conv1o1.unit_kernels());
        match self.loss.form {
            LossForm::Released => {
                let (ce, mixture) = released_terms(
                    output.probabilities.clone(),
                    output.ml.clone(),
                    targets,
                    self.loss.beta,
                );
                ce + cluster.mul_scalar(self.loss.alpha) + mixture
            }
            LossForm::Paper => {
                let [batch, _] = output.ml.dims();
                let index = targets.clone().reshape([batch, 1]);
                let ce = log_softmax(output.ml.clone().mul_scalar(2.0), 1)
                    .gather(1, index)
                    .neg()
                    .mean();
                ce + cluster.mul_scalar(self.loss.alpha)
                    + paper_mixture_term(output, targets).mul_scalar(self.loss.beta)
            }
        }
    }

    /// Scores, loss and classification output of a batch's features.
    pub fn classify_features(
        &self,
        features: Tensor<B, 4>,
        targets: Tensor<B, 1, Int>,
    ) -> ClassificationOutput<B> {
        let output = self.forward_features(features.clone());
        let loss = self.loss(features, &output, targets.clone());
        ClassificationOutput::new(loss, output.ml, targets)
    }
}

/// The paper's `L_mix = −(1/(H·W)) Σ_i (1 − z_i↑)·fg[y, m↑, i]` (§2.8): `m↑` the label's best
/// mixture under the per-position best occluder, `z_i↑ = 1` where that occluder explains position
/// i better; averaged over the batch.
pub fn paper_mixture_term<B: Backend>(
    output: &HeadOutput<B>,
    targets: Tensor<B, 1, Int>,
) -> Tensor<B, 1> {
    let terms = &output.terms;
    let [batch, rows, p] = terms.fg.dims();
    let m = terms.mixtures;
    let classes = rows / m;
    let index = targets.reshape([batch, 1, 1, 1]).expand([batch, 1, m, p]);
    let fg_y = terms
        .fg
        .clone()
        .reshape([batch, classes, m, p])
        .gather(1, index)
        .reshape([batch, m, p]);
    let bg = terms.best_occluder(); // [B, 1, P]
    let per_mixture = fg_y
        .clone()
        .max_pair(bg.clone().expand([batch, m, p]))
        .sum_dim(2); // [B, M, 1]
    let best = per_mixture.argmax(1).expand([batch, 1, p]);
    let fg = fg_y.gather(1, best); // [B, 1, P]
    let object = fg.clone().greater_equal(bg).float();
    (fg * object)
        .sum_dim(2)
        .reshape([batch])
        .neg()
        .div_scalar(p as f64)
        .mean()
}

impl<B: AutodiffBackend> TrainStep for CompNet<B> {
    type Input = ClassificationBatch<B>;
    type Output = ClassificationOutput<B>;

    /// The frozen backbone runs on the inner backend: no graph, and a ResNet's batch norms use
    /// their running statistics (the released model's backbone is in eval mode).
    fn step(&self, batch: ClassificationBatch<B>) -> TrainOutput<ClassificationOutput<B>> {
        let features =
            Tensor::from_inner(self.backbone.clone().valid().forward(batch.images.inner()));
        let item = self.classify_features(features, batch.targets);
        TrainOutput::new(self, item.loss.backward(), item)
    }
}

impl<B: Backend> InferenceStep for CompNet<B> {
    type Input = ClassificationBatch<B>;
    type Output = ClassificationOutput<B>;

    fn step(&self, batch: ClassificationBatch<B>) -> ClassificationOutput<B> {
        self.classify_features(self.features(batch.images), batch.targets)
    }
}

#[cfg(test)]
mod tests {
    use burn::{backend::Flex, tensor::TensorData};

    use super::*;
    use crate::score::Terms;

    /// One class, two mixtures, three positions, one occluder at 0 everywhere: mixture 0 scores
    /// 1 + 0 + 0.5 (best), its fg wins at positions 0 and 2, so `L_mix = −(1 + 0.5)/3`.
    #[test]
    fn the_paper_mixture_term_sums_the_best_mixtures_object_positions() {
        let device = Default::default();
        let fg = Tensor::<Flex, 3>::from_data(
            TensorData::new(vec![1.0f32, -1.0, 0.5, 0.0, 0.0, -0.2], [1, 2, 3]),
            &device,
        );
        let bg = Tensor::<Flex, 3>::zeros([1, 1, 3], &device);
        let zeros = Tensor::<Flex, 2>::zeros([1, 1], &device);
        let output = HeadOutput {
            scores: zeros.clone(),
            ml: zeros.clone(),
            probabilities: zeros,
            terms: Terms {
                fg,
                bg,
                mixtures: 2,
            },
        };
        let targets = Tensor::<Flex, 1, Int>::from_data(TensorData::new(vec![0i64], [1]), &device);
        let value: f32 = paper_mixture_term(&output, targets).into_scalar();
        assert!((value - (-0.5)).abs() < 1e-6, "{value}");
    }
}
