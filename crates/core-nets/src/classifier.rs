//! A ResNet as an image classifier trained with cross-entropy: the burn-train steps used by the
//! WS and BCN experiments (and any paper that fine-tunes or linearly evaluates a ResNet).

use burn::{
    nn::loss::CrossEntropyLossConfig,
    tensor::{
        Int, Tensor,
        backend::{AutodiffBackend, Backend},
    },
    train::{ClassificationOutput, InferenceStep, TrainOutput, TrainStep},
};
use datasets::ClassificationBatch;

use crate::ResNet;

impl<B: Backend> ResNet<B> {
    /// Logits and the mean cross-entropy against `targets`.
    pub fn forward_classification(
        &self,
        images: Tensor<B, 4>,
        targets: Tensor<B, 1, Int>,
    ) -> ClassificationOutput<B> {
        let logits = self.forward(images); // [B, classes]
        let loss = CrossEntropyLossConfig::new()
            .init(&logits.device())
            .forward(logits.clone(), targets.clone());
        ClassificationOutput::new(loss, logits, targets)
    }
}

impl<B: AutodiffBackend> TrainStep for ResNet<B> {
    type Input = ClassificationBatch<B>;
    type Output = ClassificationOutput<B>;

    fn step(&self, batch: ClassificationBatch<B>) -> TrainOutput<ClassificationOutput<B>> {
        let item = self.forward_classification(batch.images, batch.targets);
        TrainOutput::new(self, item.loss.backward(), item)
    }
}

impl<B: Backend> InferenceStep for ResNet<B> {
    type Input = ClassificationBatch<B>;
    type Output = ClassificationOutput<B>;

    fn step(&self, batch: ClassificationBatch<B>) -> ClassificationOutput<B> {
        self.forward_classification(batch.images, batch.targets)
    }
}
