//! COCO JSON formats.
//!
//! * Instances as multi-label targets (`elastic.md` §7): per image the set of category ids of its
//!   annotations, crowd annotations included, mapped to `0..C-1` by sorted category id; each
//!   annotation's area is kept for the size split (small < 32², medium < 96², large otherwise).
//! * Panoptic ground truth in COCO format (`axial-deeplab.md` §7): a JSON with `images`,
//!   `annotations` (`file_name`, `segments_info: [{id, category_id, iscrowd, area, bbox}]`) and
//!   `categories` (`isthing`), plus PNGs encoding segment ids as `id = R + 256·G + 256²·B`. They become
//!   the canonical DeepLab2 map `semantic · divisor + instance`, as DL2's `build_{coco,cityscapes}_data.py`
//!   builds it: pixels start at `ignore · divisor` (void, PNG id 0); each listed segment writes its
//!   train id; non-crowd thing segments get instance ids counted from 1 per class in `segments_info`
//!   order, crowd and stuff segments instance 0. As in DL2, a segment whose pixel count differs from
//!   its `area` is an error; so, here, is a PNG id that `segments_info` does not list.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{FormatError, checked_index, decode_rgb, read_text};

/// COCO's image ids are integers, Cityscapes' (`aachen_000000_000019`) strings.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(untagged)]
pub enum ImageId {
    Number(u64),
    Name(String),
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct CocoImage {
    pub id: ImageId,
    pub file_name: String,
    #[serde(default)]
    pub width: u32,
    #[serde(default)]
    pub height: u32,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct CocoCategory {
    pub id: u64,
    pub name: String,
    /// Panoptic files only: 1 for countable things, 0 for stuff.
    #[serde(default)]
    pub isthing: u8,
}

#[derive(Clone, Debug, Deserialize)]
struct InstanceAnnotation {
    image_id: ImageId,
    category_id: u64,
    #[serde(default)]
    area: f64,
    #[serde(default)]
    iscrowd: u8,
}

#[derive(Debug, Deserialize)]
struct InstancesFile {
    images: Vec<CocoImage>,
    annotations: Vec<InstanceAnnotation>,
    categories: Vec<CocoCategory>,
}

/// Parses a COCO JSON; a syntax or schema error names the file and the line serde stopped at.
fn read_json<T: serde::de::DeserializeOwned>(
    path: &Path,
    expected: &str,
) -> Result<T, FormatError> {
    let text = read_text(path, expected)?;
    serde_json::from_str(&text)
        .map_err(|e| FormatError::malformed(path, Some(e.line()), expected, e.to_string()))
}

/// COCO's object size classes by annotation area (pixels).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectSize {
    Small,
    Medium,
    Large,
}

impl ObjectSize {
    /// small < 32², medium < 96², large otherwise.
    pub fn of_area(area: f64) -> Self {
        if area < 32.0 * 32.0 {
            ObjectSize::Small
        } else if area < 96.0 * 96.0 {
            ObjectSize::Medium
        } else {
            ObjectSize::Large
        }
    }
}

/// One annotation reduced to what the multi-label task uses.
#[derive(Clone, Debug, PartialEq)]
pub struct LabelledObject {
    /// Index into [`CocoMultiLabel::category_ids`].
    pub class: usize,
    pub area: f64,
    pub crowd: bool,
}

/// Every image of an instances file with its annotations as class indices.
#[derive(Clone, Debug)]
pub struct CocoMultiLabel {
    pub image_dir: PathBuf,
    pub images: Vec<CocoImage>,
    /// Sorted category ids; class `c` is `category_ids[c]`.
    pub category_ids: Vec<u64>,
    /// The categories' names in the same order.
    pub category_names: Vec<String>,
    /// Per image (in `images` order) its annotations.
    pub objects: Vec<Vec<LabelledObject>>,
}

impl CocoMultiLabel {
    /// Reads `instances_*.json`; images are looked up in `image_dir` by `file_name`.
    pub fn read(annotations: &Path, image_dir: &Path) -> Result<Self, FormatError> {
        let file: InstancesFile = read_json(
            annotations,
            "COCO instances JSON (images, annotations, categories)",
        )?;
        let category_ids: Vec<u64> = file
            .categories
            .iter()
            .map(|c| c.id)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let category_names = category_ids
            .iter()
            .map(|id| {
                file.categories
                    .iter()
                    .find(|c| c.id == *id)
                    .map_or_else(|| format!("category {id}"), |c| c.name.clone())
            })
            .collect();
        let class_of: HashMap<u64, usize> = category_ids
            .iter()
            .enumerate()
            .map(|(i, &c)| (c, i))
            .collect();
        let image_of: HashMap<&ImageId, usize> = file
            .images
            .iter()
            .enumerate()
            .map(|(i, im)| (&im.id, i))
            .collect();
        let mut objects = vec![Vec::new(); file.images.len()];
        for (k, a) in file.annotations.iter().enumerate() {
            let image = *image_of.get(&a.image_id).ok_or_else(|| {
                FormatError::malformed(
                    annotations,
                    None,
                    "annotations whose image_id is in images",
                    format!("image_id {:?} in annotation {k}", a.image_id),
                )
            })?;
            let class = *class_of.get(&a.category_id).ok_or_else(|| {
                FormatError::malformed(
                    annotations,
                    None,
                    "annotations whose category_id is in categories",
                    format!("category_id {} in annotation {k}", a.category_id),
                )
            })?;
            objects[image].push(LabelledObject {
                class,
                area: a.area,
                crowd: a.iscrowd != 0,
            });
        }
        Ok(Self {
            image_dir: image_dir.to_path_buf(),
            images: file.images,
            category_ids,
            category_names,
            objects,
        })
    }

    pub fn len(&self) -> usize {
        self.images.len()
    }

    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }

    pub fn num_classes(&self) -> usize {
        self.category_ids.len()
    }

    /// 0/1 over the classes: 1 where the image has an annotation of the class.
    pub fn target(&self, index: usize) -> Result<Vec<f32>, FormatError> {
        self.target_where(index, |_| true)
    }

    /// As [`CocoMultiLabel::target`], counting only annotations of the given size.
    pub fn target_of_size(&self, index: usize, size: ObjectSize) -> Result<Vec<f32>, FormatError> {
        self.target_where(index, |o| ObjectSize::of_area(o.area) == size)
    }

    fn target_where(
        &self,
        index: usize,
        keep: impl Fn(&LabelledObject) -> bool,
    ) -> Result<Vec<f32>, FormatError> {
        let mut target = vec![0.0; self.num_classes()];
        for object in checked_index(&self.objects, index)?
            .iter()
            .filter(|o| keep(o))
        {
            target[object.class] = 1.0;
        }
        Ok(target)
    }

    pub fn load(&self, index: usize) -> Result<image::RgbImage, FormatError> {
        decode_rgb(
            &self
                .image_dir
                .join(&checked_index(&self.images, index)?.file_name),
        )
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct SegmentInfo {
    pub id: u32,
    pub category_id: u64,
    #[serde(default)]
    pub iscrowd: u8,
    #[serde(default)]
    pub area: u64,
    #[serde(default)]
    pub bbox: [f64; 4],
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct PanopticAnnotation {
    pub image_id: ImageId,
    /// The PNG in the panoptic folder.
    pub file_name: String,
    pub segments_info: Vec<SegmentInfo>,
}

#[derive(Debug, Deserialize)]
struct PanopticFile {
    images: Vec<CocoImage>,
    annotations: Vec<PanopticAnnotation>,
    categories: Vec<CocoCategory>,
}

/// How a dataset's category ids become DL2 train ids.
#[derive(Clone, Debug, PartialEq)]
pub struct PanopticMapping {
    pub train_id: BTreeMap<u64, u32>,
    /// Train ids of countable classes, which get instance ids.
    pub thing_train_ids: BTreeSet<u32>,
    /// Train id of void pixels (PNG id 0).
    pub ignore_label: u32,
    pub divisor: u32,
    /// DL2's `treat_crowd_as_ignore`: crowd pixels become void instead of keeping their class.
    pub crowd_as_ignore: bool,
}

impl PanopticMapping {
    /// COCO panoptic (DL2): categories in sorted id order → 1..=133, 0 = void, divisor 256; things
    /// from `isthing`.
    pub fn coco(categories: &[CocoCategory]) -> Self {
        let mut sorted: Vec<&CocoCategory> = categories.iter().collect();
        sorted.sort_by_key(|c| c.id);
        Self {
            train_id: sorted
                .iter()
                .enumerate()
                .map(|(i, c)| (c.id, i as u32 + 1))
                .collect(),
            thing_train_ids: sorted
                .iter()
                .enumerate()
                .filter(|(_, c)| c.isthing != 0)
                .map(|(i, _)| i as u32 + 1)
                .collect(),
            ignore_label: 0,
            divisor: 256,
            crowd_as_ignore: false,
        }
    }

    /// Cityscapes panoptic from `createPanopticImgs.py --use-train-id` (`*_trainId.json`):
    /// category ids already are train ids 0..18, things 11–18, ignore 255, divisor 1000.
    pub fn cityscapes_train_ids() -> Self {
        Self {
            train_id: (0..19).map(|t| (t as u64, t)).collect(),
            thing_train_ids: (11..19).collect(),
            ignore_label: 255,
            divisor: 1000,
            crowd_as_ignore: false,
        }
    }

    /// Cityscapes panoptic with label ids (`createPanopticImgs.py` without `--use-train-id`),
    /// mapped to train ids by cityscapesScripts' `labels.py`.
    pub fn cityscapes_label_ids() -> Self {
        const LABEL_IDS: [u64; 19] = [
            7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33,
        ];
        Self {
            train_id: LABEL_IDS
                .iter()
                .enumerate()
                .map(|(t, &l)| (l, t as u32))
                .collect(),
            ..Self::cityscapes_train_ids()
        }
    }
}

/// One segment of an image after mapping.
#[derive(Clone, Debug, PartialEq)]
pub struct PanopticSegment {
    /// The id encoded in the PNG.
    pub id: u32,
    pub train_id: u32,
    /// 0 for stuff and crowd.
    pub instance_id: u32,
    pub crowd: bool,
    pub thing: bool,
    pub area: u64,
    /// `[x, y, w, h]` as in the JSON.
    pub bbox: [f64; 4],
}

/// The canonical label of one image, maps row-major `[H, W]`.
#[derive(Clone, Debug, PartialEq)]
pub struct PanopticLabel {
    pub width: u32,
    pub height: u32,
    /// `semantic · divisor + instance`
    pub panoptic: Vec<i32>,
    pub semantic: Vec<u32>,
    /// In `segments_info` order.
    pub segments: Vec<PanopticSegment>,
}

/// The segment id a PNG pixel encodes: `R + 256·G + 256²·B`.
pub fn segment_id_of_rgb([r, g, b]: [u8; 3]) -> u32 {
    r as u32 + 256 * g as u32 + 256 * 256 * b as u32
}

/// DL2's consistency check: each segment covers exactly its `area` pixels of the PNG.
fn checked_segment_areas(
    png_path: &Path,
    segments: &[PanopticSegment],
    pixel_count: &HashMap<u32, u64>,
) -> Result<(), FormatError> {
    for s in segments {
        let count = pixel_count.get(&s.id).copied().unwrap_or(0);
        if count != s.area {
            return Err(FormatError::malformed(
                png_path,
                None,
                format!("segment {} to cover its area of {} pixels", s.id, s.area),
                format!("{count} pixels"),
            ));
        }
    }
    Ok(())
}

/// Builds the canonical DL2 label of one image from its segment-id PNG and `segments_info`.
pub fn canonical_panoptic(
    png_path: &Path,
    ids: &image::RgbImage,
    segments_info: &[SegmentInfo],
    mapping: &PanopticMapping,
) -> Result<PanopticLabel, FormatError> {
    let mut segments = Vec::with_capacity(segments_info.len());
    let mut instance_count: BTreeMap<u32, u32> = BTreeMap::new();
    for s in segments_info {
        let train_id = *mapping.train_id.get(&s.category_id).ok_or_else(|| {
            FormatError::malformed(
                png_path,
                None,
                "segments whose category_id the mapping knows",
                format!("category_id {} of segment {}", s.category_id, s.id),
            )
        })?;
        let thing = mapping.thing_train_ids.contains(&train_id);
        let crowd = s.iscrowd != 0;
        let instance_id = match thing && !crowd {
            true => {
                let count = instance_count.entry(train_id).or_default();
                *count += 1;
                *count
            }
            false => 0,
        };
        if instance_id >= mapping.divisor {
            return Err(FormatError::malformed(
                png_path,
                None,
                format!(
                    "fewer than {} instances of train id {train_id}",
                    mapping.divisor
                ),
                format!("{instance_id}"),
            ));
        }
        segments.push(PanopticSegment {
            id: s.id,
            train_id,
            instance_id,
            crowd,
            thing,
            area: s.area,
            bbox: s.bbox,
        });
    }
    let by_id: HashMap<u32, &PanopticSegment> = segments.iter().map(|s| (s.id, s)).collect();
    let void = (mapping.ignore_label, 0);
    let mut semantic = Vec::with_capacity(ids.len() / 3);
    let mut panoptic = Vec::with_capacity(ids.len() / 3);
    let mut pixel_count: HashMap<u32, u64> = HashMap::new();
    for (x, y, pixel) in ids.enumerate_pixels() {
        let id = segment_id_of_rgb(pixel.0);
        let (class, instance) = match (id, by_id.get(&id)) {
            (0, _) => void,
            (_, Some(s)) if s.crowd && mapping.crowd_as_ignore => void,
            (_, Some(s)) => (s.train_id, s.instance_id),
            (_, None) => {
                return Err(FormatError::malformed(
                    png_path,
                    None,
                    "segment ids listed in segments_info (or 0 for void)",
                    format!("id {id} at row {y}, column {x}"),
                ));
            }
        };
        *pixel_count.entry(id).or_default() += 1;
        semantic.push(class);
        panoptic.push((class * mapping.divisor + instance) as i32);
    }
    checked_segment_areas(png_path, &segments, &pixel_count)?;
    Ok(PanopticLabel {
        width: ids.width(),
        height: ids.height(),
        panoptic,
        semantic,
        segments,
    })
}

/// A panoptic split: annotations paired with their images.
#[derive(Clone, Debug)]
pub struct CocoPanoptic {
    pub annotations: Vec<PanopticAnnotation>,
    pub categories: Vec<CocoCategory>,
    pub image_paths: Vec<PathBuf>,
    pub png_dir: PathBuf,
    pub mapping: PanopticMapping,
}

impl CocoPanoptic {
    /// Reads a panoptic JSON; `image_path` places an image's `file_name`, `mapping` (None: COCO's,
    /// from the file's categories) turns category ids into train ids.
    pub fn read(
        json: &Path,
        png_dir: &Path,
        image_path: impl Fn(&str) -> PathBuf,
        mapping: Option<PanopticMapping>,
    ) -> Result<Self, FormatError> {
        let file: PanopticFile =
            read_json(json, "COCO panoptic JSON (images, annotations, categories)")?;
        let file_of: HashMap<&ImageId, &str> = file
            .images
            .iter()
            .map(|i| (&i.id, i.file_name.as_str()))
            .collect();
        let image_paths = file
            .annotations
            .iter()
            .enumerate()
            .map(|(k, a)| match file_of.get(&a.image_id) {
                Some(name) => Ok(image_path(name)),
                None => Err(FormatError::malformed(
                    json,
                    None,
                    "annotations whose image_id is in images",
                    format!("image_id {:?} in annotation {k}", a.image_id),
                )),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mapping = mapping.unwrap_or_else(|| PanopticMapping::coco(&file.categories));
        Ok(Self {
            annotations: file.annotations,
            categories: file.categories,
            image_paths,
            png_dir: png_dir.to_path_buf(),
            mapping,
        })
    }

    /// `root/annotations/panoptic_{split}2017.json`, PNGs in `root/annotations/panoptic_{split}2017/`
    /// (where the official zip unpacks them), images in `root/{split}2017/`.
    pub fn coco(root: &Path, split: &str) -> Result<Self, FormatError> {
        let images = root.join(format!("{split}2017"));
        Self::read(
            &root.join(format!("annotations/panoptic_{split}2017.json")),
            &root.join(format!("annotations/panoptic_{split}2017")),
            |name| images.join(name),
            None,
        )
    }

    /// cityscapesScripts' `gtFine/cityscapes_panoptic_{split}_trainId{.json,/}`, images in
    /// `leftImg8bit/{split}/{city}/` with the city the file name's prefix before `_`.
    pub fn cityscapes(root: &Path, split: &str) -> Result<Self, FormatError> {
        let images = root.join("leftImg8bit").join(split);
        let name = format!("gtFine/cityscapes_panoptic_{split}_trainId");
        Self::read(
            &root.join(format!("{name}.json")),
            &root.join(name),
            |file| images.join(file.split('_').next().unwrap_or("")).join(file),
            Some(PanopticMapping::cityscapes_train_ids()),
        )
    }

    pub fn len(&self) -> usize {
        self.annotations.len()
    }

    pub fn is_empty(&self) -> bool {
        self.annotations.is_empty()
    }

    pub fn load_image(&self, index: usize) -> Result<image::RgbImage, FormatError> {
        decode_rgb(checked_index(&self.image_paths, index)?)
    }

    /// The canonical label of item `index`; its PNG must match the image's size when both are read.
    pub fn load_label(&self, index: usize) -> Result<PanopticLabel, FormatError> {
        let annotation = checked_index(&self.annotations, index)?;
        let png = self.png_dir.join(&annotation.file_name);
        let ids = decode_rgb(&png)?;
        canonical_panoptic(&png, &ids, &annotation.segments_info, &self.mapping)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `elastic.md` §7: 2 images, 3 annotations of categories 1 and 90 (areas 500, 10,000), 80
    /// categories (1..=90 with COCO's ten gaps).
    fn instances_json() -> String {
        let gaps = [12, 26, 29, 30, 45, 66, 68, 69, 71, 83];
        let categories: Vec<String> = (1..=90u64)
            .filter(|c| !gaps.contains(c))
            .map(|c| format!(r#"{{"id": {c}, "name": "c{c}", "supercategory": "s"}}"#))
            .collect();
        format!(
            r#"{{
  "images": [{{"id": 9, "file_name": "a.jpg", "width": 4, "height": 3}},
             {{"id": 25, "file_name": "b.jpg", "width": 4, "height": 3}}],
  "annotations": [
    {{"id": 1, "image_id": 9, "category_id": 1, "area": 500, "iscrowd": 0, "bbox": [0, 0, 1, 1]}},
    {{"id": 2, "image_id": 9, "category_id": 90, "area": 10000, "iscrowd": 1, "bbox": [0, 0, 1, 1]}},
    {{"id": 3, "image_id": 25, "category_id": 90, "area": 500, "iscrowd": 0, "bbox": [0, 0, 1, 1]}}
  ],
  "categories": [{}]
}}"#,
            categories.join(", ")
        )
    }

    fn ones(target: &[f32]) -> Vec<usize> {
        (0..target.len()).filter(|&i| target[i] == 1.0).collect()
    }

    #[test]
    fn instances_become_multi_label_targets_by_sorted_category() {
        let dir = tempfile::tempdir().unwrap();
        let json = dir.path().join("instances_val2014.json");
        std::fs::write(&json, instances_json()).unwrap();
        let coco = CocoMultiLabel::read(&json, &dir.path().join("val2014")).unwrap();
        assert_eq!((coco.len(), coco.num_classes()), (2, 80));
        assert_eq!(
            (
                coco.category_names[0].as_str(),
                coco.category_names[79].as_str()
            ),
            ("c1", "c90")
        );
        let target = coco.target(0).unwrap();
        assert_eq!((target.len(), ones(&target)), (80, vec![0, 79]));
        assert_eq!(ones(&coco.target(1).unwrap()), [79]);
        assert_eq!(
            ones(&coco.target_of_size(0, ObjectSize::Small).unwrap()),
            [0]
        );
        assert_eq!(
            ones(&coco.target_of_size(0, ObjectSize::Large).unwrap()),
            [79]
        );
        assert!(ones(&coco.target_of_size(0, ObjectSize::Medium).unwrap()).is_empty());
        assert!(coco.objects[0][1].crowd);
        assert_eq!(
            [31.9 * 31.9, 32.0 * 32.0, 96.0 * 96.0].map(ObjectSize::of_area),
            [ObjectSize::Small, ObjectSize::Medium, ObjectSize::Large]
        );
        let err = coco.load(1).unwrap_err().to_string();
        assert!(err.contains("b.jpg"), "{err}");
    }

    #[test]
    fn malformed_instances_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let json = dir.path().join("instances.json");
        std::fs::write(
            &json,
            instances_json().replace("\"image_id\": 25", "\"image_id\": 26"),
        )
        .unwrap();
        let err = CocoMultiLabel::read(&json, dir.path())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("instances.json")
                && err.contains("image_id is in images")
                && err.contains("annotation 2"),
            "{err}"
        );
        std::fs::write(&json, instances_json().replace("\"images\"", "\"imgs\"")).unwrap();
        let err = CocoMultiLabel::read(&json, dir.path())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("instances.json, line")
                && err.contains("COCO instances JSON")
                && err.contains("images"),
            "{err}"
        );
    }

    /// `axial-deeplab.md` §7: a 4×6 image; segment 1 (road, train id 0, stuff) fills the first
    /// row, segments 2 and 3 are two persons (train id 11); the last pixel is void.
    fn write_panoptic(root: &Path, extra_id: Option<u32>) {
        let name = "gtFine/cityscapes_panoptic_val_trainId";
        std::fs::create_dir_all(root.join(name)).unwrap();
        std::fs::create_dir_all(root.join("leftImg8bit/val/aachen")).unwrap();
        image::RgbImage::from_pixel(6, 4, image::Rgb([1, 2, 3]))
            .save(root.join("leftImg8bit/val/aachen/aachen_000000_000019_leftImg8bit.png"))
            .unwrap();
        // segment ids 1, 2 and 3 encoded with G/B bytes too: 1 + 256·4 = 1025 for the second person.
        let ids = [1u32, 2, 1025];
        let mut png = image::RgbImage::new(6, 4);
        for (x, y, p) in png.enumerate_pixels_mut() {
            let id = match (y, x) {
                (3, 5) => extra_id.unwrap_or(0),
                (0, _) => ids[0],
                (_, 0..=2) => ids[1],
                _ => ids[2],
            };
            *p = image::Rgb([(id % 256) as u8, (id / 256 % 256) as u8, (id / 65536) as u8]);
        }
        png.save(root.join(format!("{name}/aachen_000000_000019_gtFine_panoptic.png")))
            .unwrap();
        let json = r#"{
  "images": [{"id": "aachen_000000_000019", "file_name": "aachen_000000_000019_leftImg8bit.png",
              "width": 6, "height": 4}],
  "annotations": [{"image_id": "aachen_000000_000019",
                   "file_name": "aachen_000000_000019_gtFine_panoptic.png",
                   "segments_info": [
      {"id": 1, "category_id": 0, "iscrowd": 0, "area": 6, "bbox": [0, 0, 6, 1]},
      {"id": 2, "category_id": 11, "iscrowd": 0, "area": 9, "bbox": [0, 1, 3, 3]},
      {"id": 1025, "category_id": 11, "iscrowd": 0, "area": 8, "bbox": [3, 1, 3, 3]}]}],
  "categories": [{"id": 0, "name": "road", "isthing": 0}, {"id": 11, "name": "person", "isthing": 1}]
}"#;
        std::fs::write(root.join(format!("{name}.json")), json).unwrap();
    }

    #[test]
    fn cityscapes_panoptic_png_becomes_the_canonical_map() {
        let dir = tempfile::tempdir().unwrap();
        write_panoptic(dir.path(), None);
        let set = CocoPanoptic::cityscapes(dir.path(), "val").unwrap();
        assert_eq!(set.len(), 1);
        assert_eq!(set.load_image(0).unwrap().dimensions(), (6, 4));
        let label = set.load_label(0).unwrap();
        assert_eq!((label.width, label.height), (6, 4));
        #[rustfmt::skip]
        let expected = [
            0, 0, 0, 0, 0, 0,
            11001, 11001, 11001, 11002, 11002, 11002,
            11001, 11001, 11001, 11002, 11002, 11002,
            11001, 11001, 11001, 11002, 11002, 255_000,
        ];
        assert_eq!(label.panoptic, expected);
        assert_eq!(label.semantic[..7], [0, 0, 0, 0, 0, 0, 11]);
        assert_eq!(label.semantic[23], 255);
        let instances: Vec<(u32, u32, bool)> = label
            .segments
            .iter()
            .map(|s| (s.train_id, s.instance_id, s.thing))
            .collect();
        assert_eq!(instances, [(0, 0, false), (11, 1, true), (11, 2, true)]);
    }

    #[test]
    fn crowd_segments_keep_their_class_with_instance_zero() {
        let segments = [
            SegmentInfo {
                id: 5,
                category_id: 1,
                iscrowd: 1,
                area: 1,
                bbox: [0.0; 4],
            },
            SegmentInfo {
                id: 6,
                category_id: 1,
                iscrowd: 0,
                area: 1,
                bbox: [0.0; 4],
            },
            SegmentInfo {
                id: 7,
                category_id: 200,
                iscrowd: 0,
                area: 1,
                bbox: [0.0; 4],
            },
        ];
        let categories: Vec<CocoCategory> = [(1, 1), (92, 0), (200, 0)]
            .map(|(id, isthing)| CocoCategory {
                id,
                name: format!("c{id}"),
                isthing,
            })
            .to_vec();
        let mut mapping = PanopticMapping::coco(&categories);
        let ids =
            image::RgbImage::from_fn(4, 1, |x, _| image::Rgb([[5, 6, 7, 0][x as usize], 0, 0]));
        let label = canonical_panoptic(Path::new("p.png"), &ids, &segments, &mapping).unwrap();
        // person → 1, category 200 → 3; crowd person instance 0; void = 0·256
        assert_eq!(label.panoptic, [256, 257, 768, 0]);
        assert!(label.segments[0].crowd);
        mapping.crowd_as_ignore = true;
        let label = canonical_panoptic(Path::new("p.png"), &ids, &segments, &mapping).unwrap();
        assert_eq!(label.panoptic, [0, 257, 768, 0]);
        let mut wrong_area = segments.clone();
        wrong_area[2].area = 3;
        let err = canonical_panoptic(Path::new("p.png"), &ids, &wrong_area, &mapping)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("p.png")
                && err.contains("segment 7 to cover its area of 3")
                && err.contains("found 1 pixels"),
            "{err}"
        );
    }

    #[test]
    fn unknown_png_segment_ids_name_the_png_and_id() {
        let dir = tempfile::tempdir().unwrap();
        write_panoptic(dir.path(), Some(70_000));
        let set = CocoPanoptic::cityscapes(dir.path(), "val").unwrap();
        let err = set.load_label(0).unwrap_err().to_string();
        assert!(
            err.contains("aachen_000000_000019_gtFine_panoptic.png")
                && err.contains("listed in segments_info")
                && err.contains("id 70000 at row 3, column 5"),
            "{err}"
        );
        std::fs::write(
            dir.path().join(
                "gtFine/cityscapes_panoptic_val_trainId/aachen_000000_000019_gtFine_panoptic.png",
            ),
            b"broken",
        )
        .unwrap();
        let err = set.load_label(0).unwrap_err().to_string();
        assert!(
            err.contains("cannot decode image") && err.contains("_gtFine_panoptic.png"),
            "{err}"
        );
    }
}
