//! SAKE's data (`sake.md` §4, §7): the image sets of a zero-shot split — training sketches and
//! photos of the seen classes, held-out seen-class sketches for model selection, unseen-class
//! sketches (queries) and photos (gallery) — from ShapeWorld's sketch task or the extended
//! Sketchy / TU-Berlin lists; each training photo carries its class's relation row `m[c]`; the
//! two training streams zipped into fixed sketch:photo steps, augmented as a function of
//! (seed, epoch, index).

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicUsize, Ordering},
};

use anyhow::{Context, Result};
use burn::{
    data::{dataloader::batcher::Batcher, dataset::Dataset},
    tensor::{Int, Tensor, TensorData, backend::Backend},
};
use datasets::{
    Normalization, ShapeClass, ShapeWorld, Split,
    formats::sketch::{SketchDataset, SketchList, SketchSplit},
    shapeworld::{Hierarchy, rgb_picture},
};
use image::RgbImage;
use rand::{SeedableRng, rngs::Xoshiro256PlusPlus, seq::SliceRandom};

use super::config::{SakeData, SakeExperiment};
use crate::{
    Domain,
    augment::{AffineAugment, affine_warp},
};

/// One image as the model sees it.
#[derive(Clone, Debug)]
pub struct SakeItem {
    /// RGB `[H, W, 3]` in `[0, 1]`.
    pub pixels: Vec<f32>,
    pub size: usize,
    pub domain: Domain,
    /// The class in the set's own label space (seen classes for training and validation, unseen
    /// classes for queries and gallery).
    pub label: usize,
    /// Its index in its image set.
    pub index: usize,
}

/// ShapeWorld's class lists for SAKE.
pub struct ShapeworldClasses {
    pub seen: Vec<ShapeClass>,
    pub unseen: Vec<ShapeClass>,
    /// Every class of the world, in [`ShapeClass::ALL`]'s order (the teacher's head).
    pub teacher: Vec<ShapeClass>,
}

pub fn shapeworld_classes() -> ShapeworldClasses {
    ShapeworldClasses {
        seen: Hierarchy::seen(),
        unseen: Hierarchy::UNSEEN.to_vec(),
        teacher: Hierarchy::teacher_classes().to_vec(),
    }
}

/// `cid_mask`'s rule (§2.4, pitfall 13) on the hierarchy: 1 for the class itself, its path
/// similarity where that is strictly above 0.2, else 0 — `[seen, teacher]`.
pub fn shapeworld_relations(seen: &[ShapeClass], teacher: &[ShapeClass]) -> Vec<Vec<f32>> {
    Hierarchy::similarity_matrix(seen, teacher)
        .into_iter()
        .map(|row| {
            row.into_iter()
                .map(|s| if s > 0.2 { s } else { 0.0 })
                .collect()
        })
        .collect()
}

/// One image set, unaugmented; `get` renders or decodes image `index`.
pub trait ImageSet: Send + Sync {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn domain(&self) -> Domain;
    /// The 8-bit image at its stored resolution and its label.
    fn image(&self, index: usize) -> Result<(RgbImage, usize)>;
}

/// Sketches or photos of ShapeWorld classes.
pub struct ShapeworldSet {
    pub world: ShapeWorld,
    pub split: Split,
    pub classes: Vec<ShapeClass>,
    pub domain: Domain,
    pub len: usize,
}

impl ImageSet for ShapeworldSet {
    fn len(&self) -> usize {
        self.len
    }
    fn domain(&self) -> Domain {
        self.domain
    }
    fn image(&self, index: usize) -> Result<(RgbImage, usize)> {
        let size = self.world.image_size;
        Ok(match self.domain {
            Domain::Sketch => {
                let s = self.world.sketch(self.split, index as u64, &self.classes);
                (rgb_picture(&s.pixels, [size; 2]), s.label)
            }
            Domain::Photo => {
                let (scene, label) = self.world.photo(self.split, index as u64, &self.classes);
                (rgb_picture(&scene.render(), [size; 2]), label)
            }
        })
    }
}

/// One list of the extended benchmarks.
pub struct ListSet {
    pub list: SketchList,
    pub domain: Domain,
}

impl ImageSet for ListSet {
    fn len(&self) -> usize {
        self.list.len()
    }
    fn domain(&self) -> Domain {
        self.domain
    }
    fn image(&self, index: usize) -> Result<(RgbImage, usize)> {
        let image = self.list.load(index)?;
        Ok((image, self.list.samples[index].label))
    }
}

/// The 8-bit image resized to exactly `size`² (bilinear, aspect not kept: §4, pitfall 9) as
/// `[0, 1]` pixels.
fn item(image: &RgbImage, size: usize, domain: Domain, label: usize, index: usize) -> SakeItem {
    let resized = if image.dimensions() == (size as u32, size as u32) {
        image.clone()
    } else {
        image::imageops::resize(
            image,
            size as u32,
            size as u32,
            image::imageops::FilterType::Triangle,
        )
    };
    SakeItem {
        pixels: resized.as_raw().iter().map(|&b| b as f32 / 255.0).collect(),
        size,
        domain,
        label,
        index,
    }
}

/// An image set served without augmentation (validation, queries, gallery, pictures).
pub struct Plain {
    pub set: Arc<dyn ImageSet>,
    pub size: usize,
}

impl Dataset<SakeItem> for Plain {
    fn get(&self, index: usize) -> Option<SakeItem> {
        if index >= self.set.len() {
            return None;
        }
        match self.set.image(index) {
            Ok((image, label)) => Some(item(&image, self.size, self.set.domain(), label, index)),
            Err(e) => datasets::load_failed(format!("{e:#}")),
        }
    }
    fn len(&self) -> usize {
        self.set.len()
    }
}

/// An epoch's sketch and photo permutations.
type Orders = Arc<[Vec<usize>; 2]>;

/// The training stream (§4, pitfall 6): step `s` is sketches `order_s[s·k_s ..]` then photos
/// `order_p[s·k_p ..]` of this epoch's two permutations; an epoch has as many steps as the
/// shorter stream gives — PyTorch's loaders keep their last partial batch, so a stream of `n`
/// gives `ceil(n / k)` and the last step may be short (Sketchy: 13 sketches + 21 photos). Served
/// in order in batches of `k_s + k_p` (one step per batch), each image augmented by
/// `(seed, epoch, index)`.
pub struct Zipped {
    pub sketches: Arc<dyn ImageSet>,
    pub photos: Arc<dyn ImageSet>,
    pub per_step: [usize; 2],
    pub size: usize,
    pub augment: AffineAugment,
    pub seed: u64,
    /// Set by the loader before each epoch ([`datasets::EpochLoader::sharing_epoch`]).
    pub epoch: Arc<AtomicUsize>,
    orders: Mutex<Option<(usize, Orders)>>,
}

impl Zipped {
    pub fn new(
        sketches: Arc<dyn ImageSet>,
        photos: Arc<dyn ImageSet>,
        per_step: [usize; 2],
        size: usize,
        augment: AffineAugment,
        seed: u64,
    ) -> Self {
        Self {
            sketches,
            photos,
            per_step,
            size,
            augment,
            seed,
            epoch: Arc::new(AtomicUsize::new(0)),
            orders: Mutex::new(None),
        }
    }

    pub fn steps(&self) -> usize {
        let [ks, kp] = self.per_step;
        self.sketches
            .len()
            .div_ceil(ks)
            .min(self.photos.len().div_ceil(kp))
    }

    /// Sketches and photos of the last step (the streams' remainders where they run out there).
    fn last_step(&self) -> [usize; 2] {
        let before = self.steps().saturating_sub(1);
        let [ks, kp] = self.per_step;
        [
            ks.min(self.sketches.len() - before * ks),
            kp.min(self.photos.len() - before * kp),
        ]
    }

    pub fn step_size(&self) -> usize {
        self.per_step[0] + self.per_step[1]
    }

    /// This epoch's two permutations (computed once per epoch).
    fn orders(&self, epoch: usize) -> Orders {
        let mut cache = self.orders.lock().expect("order cache");
        if let Some((e, orders)) = cache.as_ref()
            && *e == epoch
        {
            return orders.clone();
        }
        let permutation = |n: usize, stream: u64| {
            let mut order: Vec<usize> = (0..n).collect();
            order.shuffle(&mut Xoshiro256PlusPlus::seed_from_u64(
                self.seed ^ stream ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            ));
            order
        };
        let orders = Arc::new([
            permutation(self.sketches.len(), 0x5348_4554),
            permutation(self.photos.len(), 0x5048_4F54),
        ]);
        *cache = Some((epoch, orders.clone()));
        orders
    }
}

impl Dataset<SakeItem> for Zipped {
    fn get(&self, index: usize) -> Option<SakeItem> {
        if index >= self.len() {
            return None;
        }
        let epoch = self.epoch.load(Ordering::SeqCst);
        let orders = self.orders(epoch);
        let (step, slot) = (index / self.step_size(), index % self.step_size());
        let [ks, kp] = self.per_step;
        let sketches_here = if step + 1 == self.steps() {
            self.last_step()[0]
        } else {
            ks
        };
        let (set, i) = if slot < sketches_here {
            (&self.sketches, orders[0][step * ks + slot])
        } else {
            (&self.photos, orders[1][step * kp + slot - sketches_here])
        };
        let (image, label) = match set.image(i) {
            Ok(found) => found,
            Err(e) => return datasets::load_failed(format!("{e:#}")),
        };
        let mut rng = datasets::augmentation_rng(self.seed, epoch as u64, index as u64);
        let image = match self.augment.sample(&mut rng) {
            Some(draw) => affine_warp(&image, &draw),
            None => image,
        };
        Some(item(&image, self.size, set.domain(), label, i))
    }

    fn len(&self) -> usize {
        let [s, p] = self.last_step();
        self.steps().saturating_sub(1) * self.step_size() + s + p
    }
}

/// Everything a SAKE run reads.
#[derive(Clone)]
pub struct SakeSources {
    pub train_sketches: Arc<dyn ImageSet>,
    pub train_photos: Arc<dyn ImageSet>,
    pub valid_sketches: Arc<dyn ImageSet>,
    pub queries: Arc<dyn ImageSet>,
    pub gallery: Arc<dyn ImageSet>,
    pub seen_names: Vec<String>,
    pub unseen_names: Vec<String>,
    /// `m[c]` of each seen class over the teacher's classes.
    pub relations: Arc<Vec<Vec<f32>>>,
    pub image_size: usize,
}

impl SakeExperiment {
    /// The data of this config, checked (lists read, class counts against the model's).
    pub fn sources(&self) -> Result<SakeSources> {
        match &self.data {
            SakeData::Shapeworld {
                world,
                train_sketches,
                train_photos,
                valid_sketches,
                query_sketches,
                gallery_photos,
                ..
            } => {
                let classes = shapeworld_classes();
                let set = |split, classes: &[ShapeClass], domain, len| -> Arc<dyn ImageSet> {
                    Arc::new(ShapeworldSet {
                        world: world.clone(),
                        split,
                        classes: classes.to_vec(),
                        domain,
                        len,
                    })
                };
                let names = |c: &[ShapeClass]| c.iter().map(|c| c.name().to_string()).collect();
                Ok(SakeSources {
                    train_sketches: set(
                        Split::Train,
                        &classes.seen,
                        Domain::Sketch,
                        *train_sketches,
                    ),
                    train_photos: set(Split::Train, &classes.seen, Domain::Photo, *train_photos),
                    valid_sketches: set(Split::Val, &classes.seen, Domain::Sketch, *valid_sketches),
                    queries: set(
                        Split::Test,
                        &classes.unseen,
                        Domain::Sketch,
                        *query_sketches,
                    ),
                    gallery: set(Split::Test, &classes.unseen, Domain::Photo, *gallery_photos),
                    seen_names: names(&classes.seen),
                    unseen_names: names(&classes.unseen),
                    relations: Arc::new(shapeworld_relations(&classes.seen, &classes.teacher)),
                    image_size: world.image_size,
                })
            }
            SakeData::Sketchy {
                root, image_size, ..
            } => self.list_sources(root, SketchDataset::Sketchy, *image_size),
            SakeData::Tuberlin {
                root, image_size, ..
            } => self.list_sources(root, SketchDataset::TuBerlin, *image_size),
        }
    }

    fn list_sources(
        &self,
        root: &std::path::Path,
        dataset: SketchDataset,
        image_size: usize,
    ) -> Result<SakeSources> {
        let (sketch_version, photo_version) = dataset.versions();
        let read = |version, split| {
            SketchList::read(root, dataset, version, split)
                .with_context(|| format!("data.root = {}", root.display()))
        };
        let train_sketches = read(sketch_version, SketchSplit::Train)?;
        let train_photos = read(photo_version, SketchSplit::Train)?;
        let valid = read(sketch_version, SketchSplit::Val)?;
        let queries = read(sketch_version, SketchSplit::Zero)?;
        let gallery = read(photo_version, SketchSplit::Zero)?;
        let seen_names: Vec<String> = train_sketches.classes.values().cloned().collect();
        if !train_sketches
            .classes
            .keys()
            .copied()
            .eq(0..seen_names.len())
        {
            anyhow::bail!(
                "{}: class ids are not 0..{} (the classifier's rows)",
                train_sketches
                    .list
                    .with_file_name("cname_cid.txt")
                    .display(),
                seen_names.len()
            );
        }
        if seen_names.len() != self.model.num_classes {
            anyhow::bail!(
                "model.num_classes = {}: {} lists {} seen classes",
                self.model.num_classes,
                train_sketches.list.display(),
                seen_names.len()
            );
        }
        let mask = train_photos.cid_mask.as_ref().with_context(|| {
            format!(
                "{}: no cid_mask.npy beside the lists (convert cid_mask.pickle with datasets/tools/convert_cid_mask.py)",
                train_photos.list.display()
            )
        })?;
        let relations = train_sketches
            .classes
            .keys()
            .map(|&class| -> Result<Vec<f32>> {
                let row = mask.row(class)?;
                if row.len() != self.model.teacher_classes {
                    anyhow::bail!(
                        "cid_mask rows have {} values: expected model.teacher_classes = {}",
                        row.len(),
                        self.model.teacher_classes
                    );
                }
                // float64 in the file, f32 in the step (pitfall 14).
                Ok(row.iter().map(|&v| v as f32).collect())
            })
            .collect::<Result<Vec<_>>>()?;
        let unseen_names = queries.classes.values().cloned().collect();
        let list = |list, domain| -> Arc<dyn ImageSet> { Arc::new(ListSet { list, domain }) };
        Ok(SakeSources {
            train_sketches: list(train_sketches, Domain::Sketch),
            train_photos: list(train_photos, Domain::Photo),
            valid_sketches: list(valid, Domain::Sketch),
            queries: list(queries, Domain::Sketch),
            gallery: list(gallery, Domain::Photo),
            seen_names,
            unseen_names,
            relations: Arc::new(relations),
            image_size,
        })
    }
}

/// A batch: images, their domain bits, labels, and (training photos) relation rows.
#[derive(Clone, Debug)]
pub struct SakeBatch<B: Backend> {
    /// `[B, 3, H, W]`, normalised.
    pub images: Tensor<B, 4>,
    /// `[B, 1]`: 0 sketch, 1 photo.
    pub domain: Tensor<B, 2>,
    /// `[B]`
    pub labels: Tensor<B, 1, Int>,
    /// `[B, teacher classes]`: `m[label]` of training images (none for the sets that need none).
    pub relations: Option<Tensor<B, 2>>,
    /// Each image's index in its set (items a loader skipped are absent).
    pub indices: Vec<usize>,
}

/// Batches [`SakeItem`]s; relation rows looked up by label in `relations` (seen classes; empty:
/// no relation rows).
#[derive(Clone)]
pub struct SakeBatcher {
    pub normalization: Normalization,
    pub relations: Arc<Vec<Vec<f32>>>,
}

impl<B: Backend> Batcher<B, SakeItem, SakeBatch<B>> for SakeBatcher {
    fn batch(&self, items: Vec<SakeItem>, device: &B::Device) -> SakeBatch<B> {
        let n = items.len();
        let images = datasets::classification::images_tensor(
            items
                .iter()
                .map(|i| (i.pixels.as_slice(), [i.size, i.size])),
            &self.normalization,
            device,
        );
        let domains: Vec<Domain> = items.iter().map(|i| i.domain).collect();
        let labels: Vec<i64> = items.iter().map(|i| i.label as i64).collect();
        let relations = self.relations.first().map(|first| {
            let width = first.len();
            let rows: Vec<f32> = items
                .iter()
                .flat_map(|i| {
                    self.relations
                        .get(i.label)
                        .cloned()
                        .unwrap_or_else(|| vec![0.0; width])
                })
                .collect();
            Tensor::from_data(TensorData::new(rows, [n, width]), device)
        });
        SakeBatch {
            images,
            domain: crate::domain_codes(&domains, device),
            labels: Tensor::from_data(TensorData::new(labels, [n]), device),
            relations,
            indices: items.iter().map(|i| i.index).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(domain: Domain, len: usize) -> Arc<dyn ImageSet> {
        Arc::new(ShapeworldSet {
            world: ShapeWorld {
                image_size: 16,
                ..ShapeWorld::default()
            },
            split: Split::Train,
            classes: shapeworld_classes().seen,
            domain,
            len,
        })
    }

    #[test]
    fn the_zipped_stream_ends_with_the_shorter_loader_and_keeps_its_partial_batch() {
        // 30 sketches in 13s: 3 batches (13, 13, 4); 100 photos in 26s: 4 batches. The epoch is
        // 3 steps, the last one 4 sketches + 26 photos, as PyTorch's zipped loaders give.
        let no_augment = AffineAugment {
            probability: 0.0,
            ..AffineAugment::default()
        };
        let zipped = Zipped::new(
            set(Domain::Sketch, 30),
            set(Domain::Photo, 100),
            [13, 26],
            16,
            no_augment,
            7,
        );
        assert_eq!(zipped.steps(), 3);
        assert_eq!(zipped.len(), 2 * 39 + 4 + 26);
        let items: Vec<SakeItem> = (0..zipped.len()).map(|i| zipped.get(i).unwrap()).collect();
        let domains = |range: std::ops::Range<usize>| {
            items[range].iter().map(|i| i.domain).collect::<Vec<_>>()
        };
        assert!(domains(0..13).iter().all(|d| *d == Domain::Sketch));
        assert!(domains(13..39).iter().all(|d| *d == Domain::Photo));
        assert!(domains(78..82).iter().all(|d| *d == Domain::Sketch));
        assert!(domains(82..108).iter().all(|d| *d == Domain::Photo));
        // Every sketch once per epoch; the photo permutation is cut at 3 · 26.
        let mut sketches: Vec<usize> = items
            .iter()
            .filter(|i| i.domain == Domain::Sketch)
            .map(|i| i.index)
            .collect();
        sketches.sort_unstable();
        assert_eq!(sketches, (0..30).collect::<Vec<_>>());
        // The first item is the first sketch of the epoch's permutation.
        let orders = zipped.orders(0);
        assert_eq!(items[0].index, orders[0][0]);
        assert_eq!(
            items[0].pixels,
            Plain {
                set: set(Domain::Sketch, 30),
                size: 16
            }
            .get(orders[0][0])
            .unwrap()
            .pixels
        );
        // A new epoch draws new permutations.
        assert_ne!(zipped.orders(1)[0], orders[0]);
    }
}
