//! Labelled images and their batching into burn tensors.

use burn::{
    data::dataloader::batcher::Batcher,
    tensor::{Int, Tensor, TensorData, backend::Backend},
};
use serde::{Deserialize, Serialize};

/// One image with its class: RGB in `[0, 1]`, row-major `[H, W, 3]`.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassificationItem {
    pub pixels: Vec<f32>,
    /// `[H, W]`
    pub size: [usize; 2],
    pub label: usize,
}

/// Per-channel `(x - mean) / std`, applied when batching.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Normalization {
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl Normalization {
    /// The ImageNet statistics every official recipe normalises with.
    pub const IMAGENET: Normalization = Normalization {
        mean: [0.485, 0.456, 0.406],
        std: [0.229, 0.224, 0.225],
    };
}

#[derive(Clone, Debug)]
pub struct ClassificationBatch<B: Backend> {
    /// `[B, 3, H, W]`, normalised.
    pub images: Tensor<B, 4>,
    /// `[B]`
    pub targets: Tensor<B, 1, Int>,
}

#[derive(Clone, Debug)]
pub struct ClassificationBatcher {
    pub normalization: Normalization,
}

impl<B: Backend> Batcher<B, ClassificationItem, ClassificationBatch<B>> for ClassificationBatcher {
    fn batch(&self, items: Vec<ClassificationItem>, device: &B::Device) -> ClassificationBatch<B> {
        let [h, w] = items.first().map(|i| i.size).unwrap_or([0, 0]);
        let mut data = Vec::with_capacity(items.len() * 3 * h * w);
        let Normalization { mean, std } = self.normalization;
        // HWC -> CHW with normalisation in one pass.
        for item in &items {
            assert_eq!(
                item.size,
                [h, w],
                "every image of a batch must have the same size"
            );
            for c in 0..3 {
                data.extend(
                    item.pixels[c..]
                        .iter()
                        .step_by(3)
                        .map(|&p| (p - mean[c]) / std[c]),
                );
            }
        }
        let labels: Vec<i64> = items.iter().map(|i| i.label as i64).collect();
        ClassificationBatch {
            images: Tensor::from_data(TensorData::new(data, [items.len(), 3, h, w]), device),
            targets: Tensor::from_data(TensorData::new(labels, [items.len()]), device),
        }
    }
}
