//! Multi-label images (ELASTIC's MS-COCO task, `elastic.md` §4.2, and ShapeWorld's scale task):
//! an image, its 0/1 target over the classes, and the same target split by object size
//! (small / medium / large), which per-size recall and AP read.

use burn::{
    data::dataloader::batcher::Batcher,
    tensor::{Int, Tensor, TensorData, backend::Backend},
};

use crate::{ClassificationBatcher, ClassificationItem};

/// The three object sizes of COCO's evaluation (by area: < 32², < 96², larger).
pub const SIZE_NAMES: [&str; 3] = ["small", "medium", "large"];

#[derive(Clone, Debug, PartialEq)]
pub struct MultiLabelItem {
    /// RGB in `[0, 1]`, row-major `[H, W, 3]`.
    pub pixels: Vec<f32>,
    /// `[H, W]`
    pub size: [usize; 2],
    /// `[classes]`, 1 where the class is in the image.
    pub targets: Vec<f32>,
    /// Per size (small, medium, large): `[classes]`, 1 where an object of that size shows the class.
    pub by_size: [Vec<f32>; 3],
}

/// A batch: normalised images, targets as integers for burn-train's multi-label output, and the
/// targets as floats with their per-size split for evaluation.
#[derive(Clone, Debug)]
pub struct MultiLabelBatch<B: Backend> {
    /// `[B, 3, H, W]`
    pub images: Tensor<B, 4>,
    /// `[B, classes]`, 0/1.
    pub targets: Tensor<B, 2, Int>,
    /// Row-major `[B, classes]` 0/1, and per size the same.
    pub target_values: Vec<f32>,
    pub by_size: [Vec<f32>; 3],
}

#[derive(Clone, Debug)]
pub struct MultiLabelBatcher {
    pub images: ClassificationBatcher,
}

impl<B: Backend> Batcher<B, MultiLabelItem, MultiLabelBatch<B>> for MultiLabelBatcher {
    fn batch(&self, items: Vec<MultiLabelItem>, device: &B::Device) -> MultiLabelBatch<B> {
        let classes = items.first().map_or(0, |i| i.targets.len());
        let target_values: Vec<f32> = items.iter().flat_map(|i| i.targets.clone()).collect();
        let by_size = [0, 1, 2].map(|s| {
            items
                .iter()
                .flat_map(|i| i.by_size[s].clone())
                .collect::<Vec<f32>>()
        });
        let targets = Tensor::from_data(
            TensorData::new(
                target_values.iter().map(|&t| t as i64).collect::<Vec<_>>(),
                [items.len(), classes],
            ),
            device,
        );
        let images: crate::ClassificationBatch<B> = self.images.batch(
            items
                .into_iter()
                .map(|i| ClassificationItem {
                    pixels: i.pixels,
                    size: i.size,
                    label: 0,
                })
                .collect(),
            device,
        );
        MultiLabelBatch {
            images: images.images,
            targets,
            target_values,
            by_size,
        }
    }
}
