//! The plain DCNN of both papers (`compnet.md` §2.2, §4.2): the backbone's features (VGG-16, or a
//! ResNet), global average pooling and a linear classifier over the training classes. CN-WACV routes an image to its
//! compositional model when this network is unsure (§2.10); on the embedded data it is also the
//! backbone the compositional heads sit on (ImageNet pre-training's role), trained first in the
//! same run. torchvision's VGG-16 has a three-layer fully-connected classifier; the head here is
//! one linear layer on the pooled features, since only the features are shared with the
//! compositional models.

use burn::{
    module::Module,
    nn::{Linear, LinearConfig, loss::CrossEntropyLossConfig},
    tensor::{
        Int, Tensor,
        backend::{AutodiffBackend, Backend},
    },
    train::{ClassificationOutput, InferenceStep, TrainOutput, TrainStep},
};
use core_nets::vgg::VggConfig;
use datasets::ClassificationBatch;

use crate::backbone::{Backbone, BackboneChoice, ResNetBackbone};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DcnnConfig {
    pub vgg: VggConfig,
    /// A ResNet instead of VGG ([`crate::backbone`]).
    pub resnet: Option<ResNetBackbone>,
    pub num_classes: usize,
}

impl DcnnConfig {
    pub fn backbone(&self) -> BackboneChoice<'_> {
        BackboneChoice {
            vgg: &self.vgg,
            resnet: self.resnet.as_ref(),
        }
    }

    pub fn init<B: Backend>(&self, device: &B::Device) -> Dcnn<B> {
        let backbone = self.backbone();
        Dcnn {
            features: backbone.init(device),
            fc: LinearConfig::new(backbone.out_channels(), self.num_classes).init(device),
        }
    }
}

/// The backbone's features, global average pooling, a linear classifier.
#[derive(Module, Debug)]
pub struct Dcnn<B: Backend> {
    pub features: Backbone<B>,
    pub fc: Linear<B>,
}

impl<B: Backend> Dcnn<B> {
    /// Logits `[B, classes]`.
    pub fn forward(&self, images: Tensor<B, 4>) -> Tensor<B, 2> {
        self.classify(self.features.forward(images))
    }

    /// Logits of this network's own features `[B, D, H, W]`.
    pub fn classify(&self, features: Tensor<B, 4>) -> Tensor<B, 2> {
        let [b, d, _, _] = features.dims();
        self.fc
            .forward(features.mean_dim(3).mean_dim(2).reshape([b, d]))
    }

    pub fn forward_classification(
        &self,
        images: Tensor<B, 4>,
        targets: Tensor<B, 1, Int>,
    ) -> ClassificationOutput<B> {
        let logits = self.forward(images);
        let loss = CrossEntropyLossConfig::new()
            .init(&logits.device())
            .forward(logits.clone(), targets.clone());
        ClassificationOutput::new(loss, logits, targets)
    }
}

impl<B: AutodiffBackend> TrainStep for Dcnn<B> {
    type Input = ClassificationBatch<B>;
    type Output = ClassificationOutput<B>;

    fn step(&self, batch: ClassificationBatch<B>) -> TrainOutput<ClassificationOutput<B>> {
        let item = self.forward_classification(batch.images, batch.targets);
        TrainOutput::new(self, item.loss.backward(), item)
    }
}

impl<B: Backend> InferenceStep for Dcnn<B> {
    type Input = ClassificationBatch<B>;
    type Output = ClassificationOutput<B>;

    fn step(&self, batch: ClassificationBatch<B>) -> ClassificationOutput<B> {
        self.forward_classification(batch.images, batch.targets)
    }
}
