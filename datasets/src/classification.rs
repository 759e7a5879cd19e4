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
        let labels: Vec<i64> = items.iter().map(|i| i.label as i64).collect();
        ClassificationBatch {
            images: images_tensor(
                items.iter().map(|i| (i.pixels.as_slice(), i.size)),
                &self.normalization,
                device,
            ),
            targets: Tensor::from_data(TensorData::new(labels, [items.len()]), device),
        }
    }
}

/// `[N, 3, H, W]` from `[H, W, 3]` pixels in `[0, 1]`, normalised (HWC → CHW in one pass); every
/// image of a batch must have the same size.
pub fn images_tensor<'a, B: Backend>(
    images: impl ExactSizeIterator<Item = (&'a [f32], [usize; 2])>,
    normalization: &Normalization,
    device: &B::Device,
) -> Tensor<B, 4> {
    let n = images.len();
    let mut size = None;
    let mut data = Vec::new();
    let Normalization { mean, std } = *normalization;
    for (pixels, item_size) in images {
        let [h, w] = *size.get_or_insert_with(|| {
            data.reserve(n * 3 * item_size[0] * item_size[1]);
            item_size
        });
        assert_eq!(
            item_size,
            [h, w],
            "every image of a batch must have the same size"
        );
        for c in 0..3 {
            data.extend(
                pixels[c..]
                    .iter()
                    .step_by(3)
                    .map(|&p| (p - mean[c]) / std[c]),
            );
        }
    }
    let [h, w] = size.unwrap_or([0, 0]);
    Tensor::from_data(TensorData::new(data, [n, 3, h, w]), device)
}

/// A class-balanced label subset for semi-supervised evaluation: from each class, `fraction` of its
/// images (rounded up, at least one), drawn by a seeded shuffle; indices in ascending order.
/// The real ImageNet subsets are files (`ImageFolder::subset_indices`); this draws the same kind of
/// subset for data that has no published one (ShapeWorld).
pub fn balanced_subset(labels: &[usize], fraction: f64, seed: u64) -> Vec<usize> {
    use rand::{SeedableRng, seq::SliceRandom};
    let classes = labels.iter().max().map_or(0, |&m| m + 1);
    let mut by_class = vec![Vec::new(); classes];
    for (index, &label) in labels.iter().enumerate() {
        by_class[label].push(index);
    }
    let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut chosen: Vec<usize> = by_class
        .into_iter()
        .flat_map(|mut members| {
            let take = ((members.len() as f64 * fraction).ceil() as usize)
                .clamp(1, members.len().max(1))
                .min(members.len());
            members.shuffle(&mut rng);
            members.truncate(take);
            members
        })
        .collect();
    chosen.sort_unstable();
    chosen
}

#[cfg(test)]
mod subset_tests {
    use super::balanced_subset;

    #[test]
    fn balanced_subset_takes_the_fraction_of_every_class() {
        // 30 of class 0, 10 of class 1, 0 of class 2, 1 of class 3.
        let labels: Vec<usize> = [vec![0; 30], vec![1; 10], vec![3]].concat();
        let subset = balanced_subset(&labels, 0.1, 7);
        let count = |c| subset.iter().filter(|&&i| labels[i] == c).count();
        assert_eq!((count(0), count(1), count(2), count(3)), (3, 1, 0, 1));
        assert!(subset.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(subset, balanced_subset(&labels, 0.1, 7));
        assert_ne!(subset, balanced_subset(&labels, 0.1, 8));
    }
}
