//! Backbone features and vMF cosine maps of images on the device, brought to the host as
//! [`Map`]s for the initialisation and the occluder models. Images may differ in size (real data
//! keeps each image's aspect, `compnet.md` pitfall 14): consecutive images of one size share a
//! forward pass.

use burn::tensor::{Tensor, backend::Backend};
use datasets::Normalization;

use crate::{backbone::Backbone, init::Map, vmf::VmfKernels};

/// An RGB image in `[0, 1]`, row-major `[H, W, 3]`, with its `[H, W]`.
pub type Image = (Vec<f32>, [usize; 2]);

/// Backbone features `[B, D, H, W]` of same-size RGB images.
pub fn features_of<'a, B: Backend>(
    backbone: &Backbone<B>,
    images: impl ExactSizeIterator<Item = (&'a [f32], [usize; 2])>,
    normalization: &Normalization,
    device: &B::Device,
) -> Tensor<B, 4> {
    backbone.forward(datasets::classification::images_tensor(
        images,
        normalization,
        device,
    ))
}

/// The maps `[C × H × W]` of a batch `[B, C, H, W]`, on the host in f64.
pub fn maps_of<B: Backend>(t: Tensor<B, 4>) -> Vec<Map> {
    let [b, c, h, w] = t.dims();
    let v: Vec<f32> = t.into_data().iter::<f32>().collect();
    v.chunks(c * h * w)
        .take(b)
        .map(|m| Map {
            values: m.iter().map(|&x| f64::from(x)).collect(),
            size: [h, w],
        })
        .collect()
}

/// `items` cut into batches of at most `batch` consecutive items of one size.
pub fn size_runs<T>(items: &[T], batch: usize, size: impl Fn(&T) -> [usize; 2]) -> Vec<&[T]> {
    let mut runs = Vec::new();
    let mut start = 0;
    for i in 1..=items.len() {
        if i == items.len() || i - start == batch.max(1) || size(&items[i]) != size(&items[start]) {
            if i > start {
                runs.push(&items[start..i]);
            }
            start = i;
        }
    }
    runs
}

/// The maps `f(backbone features)` of `images`, one forward pass per run of one size.
fn maps_by_runs<B: Backend>(
    images: &[(&[f32], [usize; 2])],
    backbone: &Backbone<B>,
    normalization: &Normalization,
    batch: usize,
    device: &B::Device,
    f: impl Fn(Tensor<B, 4>) -> Tensor<B, 4>,
) -> Vec<Map> {
    size_runs(images, batch, |i| i.1)
        .into_iter()
        .flat_map(|run| {
            maps_of(f(features_of(
                backbone,
                run.iter().copied(),
                normalization,
                device,
            )))
        })
        .collect()
}

/// The raw feature maps `[D × H × W]` of `images`.
pub fn feature_maps<B: Backend>(
    images: &[(&[f32], [usize; 2])],
    backbone: &Backbone<B>,
    normalization: &Normalization,
    batch: usize,
    device: &B::Device,
) -> Vec<Map> {
    maps_by_runs(images, backbone, normalization, batch, device, |f| f)
}

/// The cosine maps `[K × H × W]` of `images` against `kernels`.
pub fn cosine_maps<B: Backend>(
    images: &[(&[f32], [usize; 2])],
    backbone: &Backbone<B>,
    kernels: &VmfKernels<B>,
    normalization: &Normalization,
    batch: usize,
    device: &B::Device,
) -> Vec<Map> {
    maps_by_runs(images, backbone, normalization, batch, device, |f| {
        kernels.cosine(f)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_break_at_size_changes_and_at_the_batch() {
        let sizes = [[2, 2], [2, 2], [2, 2], [3, 2], [2, 2], [2, 2]];
        let runs = size_runs(&sizes, 2, |s| *s);
        let lengths: Vec<usize> = runs.iter().map(|r| r.len()).collect();
        assert_eq!(lengths, [2, 1, 1, 2]);
        assert!(size_runs(&[] as &[[usize; 2]], 4, |s| *s).is_empty());
    }
}
