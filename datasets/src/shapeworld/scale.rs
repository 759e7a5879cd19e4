//! The scale task (ELASTIC, `elastic.md` §1 and §4): several objects of very different sizes per
//! image, with multi-label targets, like MS-COCO's multi-label classification.
//!
//! The radii of an image's `k` objects are drawn log-uniformly from `k` equal strata of
//! `scale_range` (in log space), so every image mixes small and large objects; larger objects are
//! painted first so that small ones stay in view. A class is a target when one of its objects shows
//! at least [`ScaleSample::MIN_VISIBLE`] pixels.

use rand::{RngExt, seq::SliceRandom};

use super::{Layer, Scene, ShapeClass, ShapeWorld, Split};

#[derive(Clone, Debug)]
pub struct ScaleSample {
    pub scene: Scene,
    /// Multi-label target, `[num_classes]`, 1 for a class in view.
    pub targets: Vec<f32>,
    /// Per object (painting order): radius as a fraction of the image side.
    pub scales: Vec<f32>,
    /// Per object: visible pixels.
    pub visible: Vec<usize>,
}

impl ScaleSample {
    pub const MIN_VISIBLE: usize = 3;
}

const SCALE_STREAM: u64 = 0x5343_414C;

impl ShapeWorld {
    /// The settings of the scale task: objects from tiny (3 % of the side) to image-filling.
    pub fn scale_task() -> ShapeWorld {
        ShapeWorld {
            image_size: 64,
            num_classes: ShapeClass::TASK_CLASSES,
            scale_range: [0.03, 0.5],
            objects_per_image: [2, 4],
            ..ShapeWorld::default()
        }
    }

    /// Multi-scale image `index` of `split`.
    pub fn scale_scene(&self, split: Split, index: u64) -> ScaleSample {
        let mut rng = self.task_rng(split, index, SCALE_STREAM);
        let background = self.background(&mut rng);
        let [min, max] = self.objects_per_image;
        let count = rng.random_range(min..=max);
        let (lo, hi) = (self.scale_range[0].ln(), self.scale_range[1].ln());
        let step = (hi - lo) / count as f32;
        let mut scales: Vec<f32> = (0..count)
            .map(|k| {
                let from = lo + step * k as f32;
                (from + step * rng.random_range(0.0..1.0f32)).exp()
            })
            .collect();
        scales.shuffle(&mut rng);
        let n = self.image_size as f32;
        let mut objects: Vec<_> = scales
            .iter()
            .map(|&scale| {
                let class = ShapeClass::ALL[rng.random_range(0..self.num_classes)];
                let mut object = self.object(&mut rng, class);
                object.radius = (scale * n).max(0.5);
                let margin = object.radius * 0.6;
                object.center = [
                    rng.random_range(margin..(n - margin).max(margin + 1e-3)),
                    rng.random_range(margin..(n - margin).max(margin + 1e-3)),
                ];
                object
            })
            .collect();
        objects.sort_by(|a, b| b.radius.total_cmp(&a.radius));
        let scales = objects.iter().map(|o| o.radius / n).collect();
        let scene = self.scene(background, objects);
        let layers = scene.layers();
        let mut visible = vec![0usize; scene.objects.len()];
        for layer in layers {
            if let Layer::Object(k) = layer {
                visible[k] += 1;
            }
        }
        let mut targets = vec![0.0; self.num_classes];
        for (object, &seen) in scene.objects.iter().zip(&visible) {
            if seen >= ScaleSample::MIN_VISIBLE {
                targets[object.class.index()] = 1.0;
            }
        }
        ScaleSample {
            scene,
            targets,
            scales,
            visible,
        }
    }
}

impl ScaleSample {
    /// The size class of an object of radius `scale` (a fraction of the image side): the thirds
    /// of the task's log-uniform radius range [0.03, 0.5], i.e. small below 0.077, large from
    /// 0.2 (ShapeWorld's stand-in for COCO's area thresholds, which would leave "small" empty at
    /// 64 px).
    pub fn size_class(scale: f32) -> usize {
        if scale < 0.077 {
            0
        } else if scale < 0.2 {
            1
        } else {
            2
        }
    }

    /// The targets split by object size: 1 where a visible object of that size shows the class.
    pub fn targets_by_size(&self) -> [Vec<f32>; 3] {
        let mut by_size = [0, 1, 2].map(|_| vec![0.0; self.targets.len()]);
        for ((object, &seen), &scale) in self
            .scene
            .objects
            .iter()
            .zip(&self.visible)
            .zip(&self.scales)
        {
            if seen >= Self::MIN_VISIBLE {
                by_size[Self::size_class(scale)][object.class.index()] = 1.0;
            }
        }
        by_size
    }
}

/// The scale task as a burn dataset of `len` images of one split.
#[derive(Clone, Debug)]
pub struct ShapeWorldScale {
    pub world: ShapeWorld,
    pub split: Split,
    pub len: usize,
}

impl burn::data::dataset::Dataset<crate::MultiLabelItem> for ShapeWorldScale {
    fn get(&self, index: usize) -> Option<crate::MultiLabelItem> {
        (index < self.len).then(|| {
            let sample = self.world.scale_scene(self.split, index as u64);
            crate::MultiLabelItem {
                pixels: sample.scene.render(),
                size: [sample.scene.size, sample.scene.size],
                by_size: sample.targets_by_size(),
                targets: sample.targets,
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
    fn scales_span_the_range_and_targets_name_the_visible_classes() {
        let world = ShapeWorld {
            image_size: 48,
            ..ShapeWorld::scale_task()
        };
        let [lo, hi] = world.scale_range;
        let (mut smallest, mut largest) = (f32::MAX, 0.0f32);
        for index in 0..40 {
            let s = world.scale_scene(Split::Train, index);
            assert!(
                s.scales.windows(2).all(|w| w[0] >= w[1]),
                "large objects first"
            );
            for &scale in &s.scales {
                assert!((lo * 0.999..=hi * 1.001).contains(&scale), "{scale}");
                smallest = smallest.min(scale);
                largest = largest.max(scale);
            }
            if s.scales.len() >= 2 {
                assert!(
                    s.scales[0] / s.scales[s.scales.len() - 1] > 1.5,
                    "{:?}",
                    s.scales
                );
            }
            for (class, &t) in s.targets.iter().enumerate() {
                let shown = s
                    .scene
                    .objects
                    .iter()
                    .zip(&s.visible)
                    .any(|(o, &v)| o.class.index() == class && v >= ScaleSample::MIN_VISIBLE);
                assert_eq!(t == 1.0, shown);
            }
            assert!(s.targets.contains(&1.0));
        }
        assert!(smallest < 0.06 && largest > 0.35, "{smallest} {largest}");
    }

    #[test]
    fn the_size_split_covers_the_targets_and_every_size_occurs() {
        let world = ShapeWorld::scale_task();
        let mut per_size = [0usize; 3];
        for index in 0..60 {
            let s = world.scale_scene(Split::Train, index);
            let by_size = s.targets_by_size();
            for class in 0..s.targets.len() {
                let any = by_size.iter().any(|t| t[class] == 1.0);
                assert_eq!(any, s.targets[class] == 1.0, "image {index} class {class}");
            }
            for (count, t) in per_size.iter_mut().zip(&by_size) {
                *count += t.iter().filter(|&&v| v == 1.0).count();
            }
        }
        // Thirds of the log range: no size is rare.
        let total: usize = per_size.iter().sum();
        assert!(per_size.iter().all(|&n| n * 6 > total), "{per_size:?}");
    }
}
