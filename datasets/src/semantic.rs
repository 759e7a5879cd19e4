//! Semantic segmentation data (`elastic.md` §4.3, `ws.md` §4.2, §7): images with one class index
//! per pixel and the void label 255 (excluded from loss and mIoU) — PASCAL VOC 2012 lists
//! (DeepLabv3.pytorch's `train_aug`/`val`) or the semantic maps of ShapeWorld's panoptic scenes
//! (embedded) — laid out by [`crate::panoptic::Geometry`] (DeepLabv3's training geometry: flip,
//! log-uniform scale, pad, random crop; the evaluation padding) — and the batcher.

use std::sync::Arc;

use burn::{
    data::{dataloader::batcher::Batcher, dataset::Dataset},
    tensor::{Int, Tensor, TensorData, backend::Backend},
};

use crate::{
    Normalization, ShapeWorld, Split,
    classification::images_tensor,
    formats::{FormatError, voc::VocSegmentation},
    panoptic::{Geometry, LabelledImage},
};

/// The label of pixels that count nowhere (object boundaries, padding).
pub const VOID: u8 = 255;

/// One image: RGB in `[0, 1]` (`[H, W, 3]`), a class index per pixel (`[H, W]`), its size.
#[derive(Clone, Debug, PartialEq)]
pub struct SemanticItem {
    pub pixels: Vec<f32>,
    pub labels: Vec<u8>,
    pub size: [usize; 2],
}

/// Normalised images `[B, 3, H, W]` and their labels `[B, H, W]`.
#[derive(Clone, Debug)]
pub struct SemanticBatch<B: Backend> {
    pub images: Tensor<B, 4>,
    pub labels: Tensor<B, 3, Int>,
}

#[derive(Clone, Debug)]
pub struct SemanticBatcher {
    pub normalization: Normalization,
}

impl<B: Backend> Batcher<B, SemanticItem, SemanticBatch<B>> for SemanticBatcher {
    fn batch(&self, items: Vec<SemanticItem>, device: &B::Device) -> SemanticBatch<B> {
        let [h, w] = items.first().map_or([0, 0], |i| i.size);
        let labels: Vec<i64> = items
            .iter()
            .flat_map(|i| i.labels.iter().map(|&l| l as i64))
            .collect();
        SemanticBatch {
            images: images_tensor(
                items.iter().map(|i| (i.pixels.as_slice(), i.size)),
                &self.normalization,
                device,
            ),
            labels: Tensor::from_data(TensorData::new(labels, [items.len(), h, w]), device),
        }
    }
}

impl SemanticItem {
    /// A laid-out image and its labels (anything above 255 becomes void).
    pub fn from_labelled(item: LabelledImage) -> Self {
        let (w, h) = item.image.dimensions();
        SemanticItem {
            pixels: item
                .image
                .as_raw()
                .iter()
                .map(|&v| v as f32 / 255.0)
                .collect(),
            labels: item.panoptic.iter().map(|&l| l.min(255) as u8).collect(),
            size: [h as usize, w as usize],
        }
    }
}

/// A DeepLabv3 list of PASCAL VOC 2012 (labels 0–20 and 255) with its geometry.
pub struct VocSemantic {
    pub reader: Arc<VocSegmentation>,
    pub geometry: Geometry,
}

impl VocSemantic {
    fn load(&self, index: usize) -> Result<SemanticItem, FormatError> {
        let item = self.reader.load(index)?;
        let labelled = LabelledImage {
            image: item.image,
            panoptic: item.label.iter().map(|&l| l as u32).collect(),
        };
        Ok(SemanticItem::from_labelled(self.geometry.apply(
            &labelled,
            VOID as u32,
            index,
        )))
    }
}

impl Dataset<SemanticItem> for VocSemantic {
    fn get(&self, index: usize) -> Option<SemanticItem> {
        if index >= self.reader.len() {
            return None;
        }
        // A corrupt file is an error naming it (or a skipped item), never a short epoch.
        self.load(index).map_or_else(crate::load_failed, Some)
    }

    fn len(&self) -> usize {
        self.reader.len()
    }
}

/// ShapeWorld's panoptic scenes as semantic segmentation: stuff classes first, then the shapes
/// ([`ShapeWorld::semantic_classes`]); no void pixels.
pub struct ShapeWorldSemantic {
    pub world: ShapeWorld,
    pub split: Split,
    pub len: usize,
}

impl Dataset<SemanticItem> for ShapeWorldSemantic {
    fn get(&self, index: usize) -> Option<SemanticItem> {
        (index < self.len).then(|| {
            let sample = self.world.panoptic_scene(self.split, index as u64);
            let n = sample.scene.size;
            SemanticItem {
                pixels: sample.scene.render(),
                labels: sample.semantic.iter().map(|&s| s as u8).collect(),
                size: [n, n],
            }
        })
    }

    fn len(&self) -> usize {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_keep_labels_per_pixel_and_shapeworld_labels_are_its_semantic_classes() {
        let world = ShapeWorld {
            image_size: 16,
            ..ShapeWorld::default()
        };
        let classes = world.semantic_classes().len();
        let set = ShapeWorldSemantic {
            world,
            split: Split::Train,
            len: 3,
        };
        let items: Vec<SemanticItem> = (0..3).filter_map(|i| set.get(i)).collect();
        assert!(set.get(3).is_none());
        assert!(
            items
                .iter()
                .all(|i| i.labels.iter().all(|&l| (l as usize) < classes))
        );
        let batch: SemanticBatch<burn::backend::Flex> = SemanticBatcher {
            normalization: Normalization::IMAGENET,
        }
        .batch(items.clone(), &Default::default());
        assert_eq!(batch.images.dims(), [3, 3, 16, 16]);
        let labels: Vec<i64> = batch.labels.into_data().iter::<i64>().collect();
        assert_eq!(labels[16 * 16 + 5], items[1].labels[5] as i64);
    }

    #[test]
    fn evaluation_pads_with_void_and_training_crops_to_the_crop() {
        let item = LabelledImage {
            image: image::RgbImage::from_pixel(6, 4, image::Rgb([10, 20, 30])),
            panoptic: vec![3; 24],
        };
        let layout = |geometry: &Geometry, index| {
            SemanticItem::from_labelled(geometry.apply(&item, VOID as u32, index))
        };
        let eval = layout(&Geometry::Eval { size: [5, 8] }, 0);
        assert_eq!(eval.size, [5, 8]);
        assert_eq!(eval.labels[0], 3);
        assert_eq!(eval.labels[7], VOID);
        assert_eq!(eval.labels[4 * 8], VOID);
        let train = Geometry::Train {
            augmentation: crate::panoptic::PanopticAugmentation {
                crop: [7, 7],
                scale: [0.5, 2.0],
                scale_step: 0.1,
                flip: true,
                log_uniform: true,
            },
            seed: 1,
            epoch: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
        };
        let a = layout(&train, 2);
        assert_eq!(a.size, [7, 7]);
        assert!(a.labels.iter().all(|&l| l == 3 || l == VOID));
        assert_eq!(a, layout(&train, 2), "a function of (seed, epoch, index)");
    }
}
