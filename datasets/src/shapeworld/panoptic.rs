//! The panoptic task (Axial-DeepLab, `axial-deeplab.md` §4.2 and §7): several object instances
//! ("things") on background regions ("stuff"), with the semantic map, the instance map, instance
//! centres and per-pixel centre offsets.
//!
//! Semantic classes put stuff first, as Cityscapes' train ids do: `0..STUFF_CLASSES` are the stuff
//! classes, `STUFF_CLASSES + c` is shape class `c`. The canonical panoptic id is
//! `semantic · 1000 + instance` (`axial-deeplab.md` §7), instance 0 for stuff.

use rand::RngExt;

use super::{Layer, Scene, ShapeClass, ShapeInstance, ShapeWorld, Split};

/// One visible thing of a panoptic scene.
#[derive(Clone, Debug, PartialEq)]
pub struct PanopticInstance {
    /// 1-based id within the image, as in the instance map.
    pub id: u16,
    /// Shape class, `0..num_classes`.
    pub class: usize,
    /// Semantic class, `STUFF_CLASSES + class`.
    pub semantic: usize,
    /// Visible pixels.
    pub area: usize,
    /// `(row, col)` of the instance's pixel nearest the mean of its pixel coordinates (the mean
    /// itself can fall outside a ring or crescent).
    pub center: [usize; 2],
    /// `[row0, col0, row1, col1)` of the visible pixels.
    pub bbox: [usize; 4],
}

/// One panoptic image and its annotations; maps are row-major `[H, W]`.
#[derive(Clone, Debug)]
pub struct PanopticSample {
    pub scene: Scene,
    pub semantic: Vec<u16>,
    /// 0 on stuff, else the [`PanopticInstance::id`] of the visible instance.
    pub instance: Vec<u16>,
    pub instances: Vec<PanopticInstance>,
    /// `(center_row - row, center_col - col)` on thing pixels, 0 on stuff (`axial-deeplab.md` §4.2).
    pub offsets: Vec<[f32; 2]>,
}

impl PanopticSample {
    pub const LABEL_DIVISOR: u32 = 1000;

    /// `semantic · 1000 + instance` per pixel.
    pub fn panoptic(&self) -> Vec<u32> {
        self.semantic
            .iter()
            .zip(&self.instance)
            .map(|(&s, &i)| s as u32 * Self::LABEL_DIVISOR + i as u32)
            .collect()
    }
}

const PANOPTIC_STREAM: u64 = 0x5041_4E00;

impl ShapeWorld {
    /// Names of the semantic classes of the panoptic task: stuff, then things.
    pub fn semantic_classes(&self) -> Vec<&'static str> {
        super::STUFF_NAMES
            .iter()
            .copied()
            .chain(self.class_names())
            .collect()
    }

    /// Panoptic image `index` of `split`: `objects_per_image` objects of random classes.
    pub fn panoptic_scene(&self, split: Split, index: u64) -> PanopticSample {
        let mut rng = self.task_rng(split, index, PANOPTIC_STREAM);
        let background = self.background(&mut rng);
        let [min, max] = self.objects_per_image;
        let count = rng.random_range(min..=max);
        let mut objects: Vec<ShapeInstance> = Vec::with_capacity(count);
        for _ in 0..count {
            let class = ShapeClass::ALL[rng.random_range(0..self.num_classes)];
            // Spread the objects out so that each stays mostly visible.
            let mut candidate = self.object(&mut rng, class);
            for _ in 0..30 {
                let apart = objects.iter().all(|o| {
                    let (dx, dy) = (
                        o.center[0] - candidate.center[0],
                        o.center[1] - candidate.center[1],
                    );
                    (dx * dx + dy * dy).sqrt() >= 0.8 * (o.radius + candidate.radius)
                });
                if apart {
                    break;
                }
                candidate = self.object(&mut rng, class);
            }
            objects.push(candidate);
        }
        annotate(self.scene(background, objects))
    }
}

/// Semantic and instance maps, instances, centres and offsets of a rendered scene.
fn annotate(scene: Scene) -> PanopticSample {
    let n = scene.size;
    let layers = scene.layers();
    let stuff_classes = super::ShapeWorld::STUFF_CLASSES;
    // Instance ids in painting order, counting only objects with visible pixels.
    let mut ids = vec![0u16; scene.objects.len()];
    let mut next = 0u16;
    for (k, id) in ids.iter_mut().enumerate() {
        if layers.contains(&Layer::Object(k)) {
            next += 1;
            *id = next;
        }
    }
    let mut semantic = vec![0u16; n * n];
    let mut instance = vec![0u16; n * n];
    for (p, layer) in layers.iter().enumerate() {
        match *layer {
            Layer::Object(k) => {
                semantic[p] = (stuff_classes + scene.objects[k].class.index()) as u16;
                instance[p] = ids[k];
            }
            Layer::Stuff(r) => semantic[p] = scene.stuff[r].class as u16,
            Layer::Occluder(_) => unreachable!("panoptic scenes have no occluders"),
        }
    }
    let mut instances = Vec::new();
    let mut offsets = vec![[0.0f32; 2]; n * n];
    for (k, &id) in ids.iter().enumerate() {
        if id == 0 {
            continue;
        }
        let pixels: Vec<usize> = (0..n * n).filter(|&p| instance[p] == id).collect();
        let center = instance_center(&pixels, n);
        for &p in &pixels {
            offsets[p] = [
                center[0] as f32 - (p / n) as f32,
                center[1] as f32 - (p % n) as f32,
            ];
        }
        let rows = pixels.iter().map(|p| p / n);
        let cols = pixels.iter().map(|p| p % n);
        let class = scene.objects[k].class.index();
        instances.push(PanopticInstance {
            id,
            class,
            semantic: stuff_classes + class,
            area: pixels.len(),
            center,
            bbox: [
                rows.clone().min().unwrap_or(0),
                cols.clone().min().unwrap_or(0),
                rows.max().unwrap_or(0) + 1,
                cols.max().unwrap_or(0) + 1,
            ],
        });
    }
    PanopticSample {
        scene,
        semantic,
        instance,
        instances,
        offsets,
    }
}

/// The instance pixel nearest the mean of its pixels' `(row, col)`.
fn instance_center(pixels: &[usize], n: usize) -> [usize; 2] {
    let count = pixels.len().max(1) as f32;
    let mean_row = pixels.iter().map(|p| (p / n) as f32).sum::<f32>() / count;
    let mean_col = pixels.iter().map(|p| (p % n) as f32).sum::<f32>() / count;
    let distance = |p: usize| {
        let (dr, dc) = ((p / n) as f32 - mean_row, (p % n) as f32 - mean_col);
        dr * dr + dc * dc
    };
    let nearest = pixels
        .iter()
        .copied()
        .min_by(|&a, &b| distance(a).total_cmp(&distance(b)))
        .unwrap_or(0);
    [nearest / n, nearest % n]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn world() -> ShapeWorld {
        ShapeWorld {
            image_size: 48,
            num_classes: 12,
            scale_range: [0.1, 0.25],
            ..ShapeWorld::default()
        }
    }

    #[test]
    fn maps_instances_centres_and_offsets_agree() {
        let world = world();
        let n = world.image_size;
        let mut stuff_seen = std::collections::HashSet::new();
        for index in 0..30 {
            let s = world.panoptic_scene(Split::Train, index);
            assert!(!s.instances.is_empty());
            for inst in &s.instances {
                let pixels: Vec<usize> = (0..n * n).filter(|&p| s.instance[p] == inst.id).collect();
                assert_eq!(pixels.len(), inst.area);
                assert!(
                    pixels
                        .iter()
                        .all(|&p| s.semantic[p] as usize == inst.semantic)
                );
                let c = inst.center[0] * n + inst.center[1];
                assert_eq!(s.instance[c], inst.id, "centre inside its instance");
                for &p in &pixels {
                    let (r, col) = ((p / n) as f32, (p % n) as f32);
                    assert_eq!(
                        s.offsets[p],
                        [inst.center[0] as f32 - r, inst.center[1] as f32 - col]
                    );
                    assert!((inst.bbox[0]..inst.bbox[2]).contains(&(p / n)));
                    assert!((inst.bbox[1]..inst.bbox[3]).contains(&(p % n)));
                }
            }
            for p in 0..n * n {
                let thing = s.semantic[p] as usize >= ShapeWorld::STUFF_CLASSES;
                assert_eq!(
                    thing,
                    s.instance[p] != 0,
                    "things and only things carry instances"
                );
                if !thing {
                    assert_eq!(s.offsets[p], [0.0, 0.0]);
                    stuff_seen.insert(s.semantic[p]);
                }
            }
            let panoptic = s.panoptic();
            assert!(
                panoptic
                    .iter()
                    .zip(&s.semantic)
                    .all(|(&id, &sem)| id / 1000 == sem as u32)
            );
            assert_eq!(
                s.scene.render(),
                world.panoptic_scene(Split::Train, index).scene.render()
            );
        }
        assert_eq!(stuff_seen.len(), ShapeWorld::STUFF_CLASSES);
    }

    #[test]
    fn scenes_hold_the_configured_number_of_objects() {
        let world = world();
        for index in 0..20 {
            let s = world.panoptic_scene(Split::Val, index);
            let [lo, hi] = world.objects_per_image;
            assert!((lo..=hi).contains(&s.scene.objects.len()));
        }
    }
}
