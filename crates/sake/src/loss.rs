//! Semantic-aware knowledge preservation (`sake.md` §2.4–2.5): the teacher's ImageNet prediction
//! on each photo, biased toward the ImageNet classes related to the photo's benchmark class, is
//! distilled into the student's ImageNet head; sketches do not take part.

use burn::tensor::{
    Int, Tensor,
    activation::{log_softmax, softmax},
    backend::Backend,
};
use serde::{Deserialize, Serialize};

/// The loss's weights (`sake.md` §2.4, §2.5).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SakeLossConfig {
    /// `sake_lambda`: the weight of the knowledge-preservation term (0: plain fine-tuning).
    pub sake_lambda: f64,
    /// `kd_lambda`: scales the teacher's logits inside the target softmax (an inverse temperature).
    pub kd_lambda: f64,
    /// `kdneg_lambda`: scales the class-relation vector added to them.
    pub kdneg_lambda: f64,
    /// With the EMS classifier (`model.ems`): the factor `m` on each sample's true-class logit
    /// before the cross-entropy (official `EMSLoss`; 1 throughout the 20-epoch recipe — the
    /// official doubling at epochs 20 and 25 lies beyond it).
    pub ems_m: f64,
}

impl Default for SakeLossConfig {
    fn default() -> Self {
        Self {
            sake_lambda: 1.0,
            kd_lambda: 1.0,
            kdneg_lambda: 0.3,
            ems_m: 1.0,
        }
    }
}

/// The distillation target `softmax(kd_lambda · z_teacher + kdneg_lambda · m[c])` `[B, K]`, where
/// `relations` `[B, K]` holds each sample's class-relation row `m[c]`.
pub fn knowledge_target<B: Backend>(
    teacher_logits: Tensor<B, 2>,
    relations: Tensor<B, 2>,
    config: &SakeLossConfig,
) -> Tensor<B, 2> {
    softmax(
        teacher_logits.mul_scalar(config.kd_lambda) + relations.mul_scalar(config.kdneg_lambda),
        1,
    )
}

/// `Σ_b tag_b Σ_j −log_softmax(z_student)[b, j] · target[b, j] / Σ_b tag_b` `[1]`: the soft
/// cross-entropy over the samples tagged 1 (photos), normalised by their number. A batch with no
/// tagged sample gives 0 (the official division would give NaN; SAKE's fixed sketch:photo batches
/// never have none).
pub fn soft_cross_entropy<B: Backend>(
    student_logits: Tensor<B, 2>,
    target: Tensor<B, 2>,
    tags: Tensor<B, 1>,
) -> Tensor<B, 1> {
    let per_sample = (log_softmax(student_logits, 1) * target)
        .sum_dim(1)
        .neg()
        .squeeze_dim::<1>(1); // [B]
    (per_sample * tags.clone()).sum() / tags.sum().clamp_min(1.0)
}

/// The validation form (§2.4; the official `validate`): no relation rows, the softmax of the
/// teacher's raw logits (no `kd_lambda`), the mean over the whole batch.
pub fn validation_kd<B: Backend>(
    student_logits: Tensor<B, 2>,
    teacher_logits: Tensor<B, 2>,
) -> Tensor<B, 1> {
    let [batch, _] = student_logits.dims();
    let target = softmax(teacher_logits, 1);
    let ones = Tensor::ones([batch], &target.device());
    soft_cross_entropy(student_logits, target, ones)
}

/// The parts of SAKE's objective for one batch.
#[derive(Debug, Clone)]
pub struct SakeLoss<B: Backend> {
    /// `CE + sake_lambda · L_kd`, `[1]`.
    pub total: Tensor<B, 1>,
    /// Cross-entropy over all samples (sketches and photos), mean, `[1]`.
    pub classification: Tensor<B, 1>,
    /// The knowledge-preservation term, `[1]`.
    pub knowledge: Tensor<B, 1>,
}

/// `sake.md` §2.5: `L = CE(logits, labels) + sake_lambda · L_kd` with `L_kd` on the samples whose
/// `photo` tag is 1; with `ems` (the EMS classifier's logits) the CE is [`ems_cross_entropy`].
#[allow(clippy::too_many_arguments)]
pub fn sake_loss<B: Backend>(
    logits: Tensor<B, 2>,
    labels: Tensor<B, 1, Int>,
    student_kd: Tensor<B, 2>,
    target: Tensor<B, 2>,
    photo: Tensor<B, 1>,
    config: &SakeLossConfig,
    ems: bool,
) -> SakeLoss<B> {
    let classification = if ems {
        ems_cross_entropy(logits, labels, config.ems_m)
    } else {
        cross_entropy(logits, labels)
    };
    let knowledge = soft_cross_entropy(student_kd, target, photo);
    SakeLoss {
        total: classification.clone() + knowledge.clone().mul_scalar(config.sake_lambda),
        classification,
        knowledge,
    }
}

/// Official `EMSLoss`: the cross-entropy of the logits with each true-class logit multiplied by
/// `m` (the EMS layer's logits are minus distances, so `m > 1` is a margin).
pub fn ems_cross_entropy<B: Backend>(
    logits: Tensor<B, 2>,
    labels: Tensor<B, 1, Int>,
    m: f64,
) -> Tensor<B, 1> {
    let [batch, classes] = logits.dims();
    let columns = Tensor::<B, 1, Int>::arange(0..classes as i64, &logits.device())
        .reshape([1, classes])
        .expand([batch, classes]);
    let target = labels
        .clone()
        .reshape([batch, 1])
        .expand([batch, classes])
        .equal(columns)
        .float(); // [B, C] one-hot
    let factor = target.mul_scalar(m - 1.0).add_scalar(1.0);
    cross_entropy(logits * factor, labels)
}

/// Mean cross-entropy of `logits` `[B, C]` against integer `labels` `[B]`.
pub fn cross_entropy<B: Backend>(logits: Tensor<B, 2>, labels: Tensor<B, 1, Int>) -> Tensor<B, 1> {
    let [batch, _] = logits.dims();
    log_softmax(logits, 1)
        .gather(1, labels.reshape([batch, 1]))
        .neg()
        .mean()
}
