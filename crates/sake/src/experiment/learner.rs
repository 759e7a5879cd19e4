//! SAKE fine-tuning as burn-train's Learner trains it (`sake.md` §2.4–2.5, §4): [`SakeTraining`]
//! holds the student and the frozen teacher. One step runs the student on a zipped
//! sketch/photo batch (BN statistics over the mixed batch), the teacher in evaluation mode without
//! gradient on the same images and domain bits, and minimises `CE + λ·L_kd` (knowledge
//! preservation on the photos only). Validation classifies the held-out seen-class sketches
//! (model selection). Checkpoints hold both networks, so `--resume` continues exactly.

use burn::{
    module::{AutodiffModule, Module},
    tensor::{
        Tensor,
        backend::{AutodiffBackend, Backend},
    },
    train::{ClassificationOutput, InferenceStep, ItemLazy, TrainOutput, TrainStep},
};
use core_nets::ResNet;
use core_train::{StepMetric, StepValues};

use super::data::SakeBatch;
use crate::{
    SakeLossConfig, SakeNet, knowledge_target,
    loss::{cross_entropy, sake_loss},
    teacher_logits,
};

/// The student (trained) and the teacher (frozen: run in evaluation mode on the inner backend,
/// so no gradient reaches it and the optimizer never moves it).
#[derive(Module, Debug)]
pub struct SakeTraining<B: Backend> {
    pub student: SakeNet<B>,
    pub teacher: ResNet<B>,
    #[module(skip)]
    pub loss: SakeLossConfig,
}

/// The names of a step's monitored values, in order (`metrics.csv`'s columns).
pub const STEP_VALUES: [&str; 4] = [
    "Loss",
    "Cross-entropy",
    "Knowledge preservation",
    "Train top-1",
];

/// [`STEP_VALUES`] as metrics (the top-1 is better higher).
pub fn step_metrics() -> [StepMetric; 4] {
    std::array::from_fn(|i| StepMetric::new(STEP_VALUES[i], i, i == 3))
}

/// One step's monitored values, `[4]`, no gradient.
pub struct SakeStepOutput<B: Backend> {
    pub monitored: Tensor<B, 1>,
    pub batch: usize,
}

impl<B: Backend> ItemLazy for SakeStepOutput<B> {
    type ItemSync = StepValues;

    fn sync(self) -> StepValues {
        StepValues {
            values: self.monitored.into_data().iter::<f64>().collect(),
            batch: self.batch,
        }
    }
}

impl<B: AutodiffBackend> TrainStep for SakeTraining<B> {
    type Input = SakeBatch<B>;
    type Output = SakeStepOutput<B>;

    fn step(&self, batch: SakeBatch<B>) -> TrainOutput<SakeStepOutput<B>> {
        let [n, ..] = batch.images.dims();
        let out = self
            .student
            .forward(batch.images.clone(), batch.domain.clone());
        // The teacher: evaluation-mode BN, no gradient, the same images and domain bits.
        let teacher = self.teacher.valid();
        let z_teacher =
            teacher_logits(&teacher, batch.images.inner(), batch.domain.clone().inner());
        let target = knowledge_target(
            Tensor::from_inner(z_teacher),
            batch
                .relations
                .expect("training batches carry their relation rows")
                .detach(),
            &self.loss,
        );
        let photo = batch.domain.reshape([n]); // tag = y: photos only
        let top1 = out
            .logits
            .clone()
            .argmax(1)
            .reshape([n])
            .equal(batch.labels.clone())
            .float()
            .mean()
            .mul_scalar(100.0);
        let loss = sake_loss(
            out.logits,
            batch.labels,
            out.logits_kd,
            target,
            photo,
            &self.loss,
            matches!(self.student.linear, crate::model::Classifier::Ems(_)),
        );
        let monitored = Tensor::cat(
            vec![
                loss.total.clone().detach(),
                loss.classification.detach(),
                loss.knowledge.detach(),
                top1.detach(),
            ],
            0,
        );
        TrainOutput::new(
            self,
            loss.total.backward(),
            SakeStepOutput {
                monitored,
                batch: n,
            },
        )
    }
}

impl<B: Backend> InferenceStep for SakeTraining<B> {
    type Input = SakeBatch<B>;
    type Output = ClassificationOutput<B>;

    /// The seen-class classifier on held-out sketches (model selection, §4).
    fn step(&self, batch: SakeBatch<B>) -> ClassificationOutput<B> {
        let logits = self.student.forward(batch.images, batch.domain).logits;
        let loss = cross_entropy(logits.clone(), batch.labels.clone());
        ClassificationOutput::new(loss, logits, batch.labels)
    }
}
