//! CompNet's occluded PASCAL3D+ (`compnet.md` §7, `Code/helpers.py getImg`), under
//! `data/pascal3d+_occ/`:
//!
//! * training (L0): `{cat}_imagenet_train.txt` basenames → `TRAINING_DATA/{cat}_imagenet/{name}.JPEG`;
//! * test: `{cat}_imagenet_occ.txt` basenames carrying a 2-character suffix (`_1`). Level ZERO reads
//!   `{cat}LEVELZERO/{name[:-2]}.JPEG` (suffix stripped, no masks); levels ONE/FIVE/NINE read
//!   `{cat}LEVEL{lvl}{occ}/{name}.JPEG` with `occ ∈ {'', '_white', '_noise', '_texture'}`, the
//!   occluder mask from `{cat}LEVEL{lvl}_mask_object/` for object occluders (`occ = ''`) or
//!   `{cat}LEVEL{lvl}_mask/` for box occluders, and the object mask
//!   `0_old_masks/{cat}_imagenet_occludee_mask/{name}.png` (255 = occluder / object).
//!
//! Label = index in the 12-class training list ([`COMPNET_CLASSES`]). Missing list files are skipped,
//! as `getImg` does; a listed image that is missing is an error naming the list and line. Images are
//! resized so that their short side is 224 ([`crate::transforms::resize_short_side`]).

use std::path::{Path, PathBuf};

use crate::transforms::resize_short_side;

use super::{FormatError, checked_index, decode_rgb, numbered_lines, read_text};

/// The training classes; a class's label is its index (car = 5, bus = 4, motorbike = 8).
pub const COMPNET_CLASSES: [&str; 12] = [
    "aeroplane",
    "bicycle",
    "boat",
    "bottle",
    "bus",
    "car",
    "chair",
    "diningtable",
    "motorbike",
    "sofa",
    "train",
    "tvmonitor",
];

/// The classes with occluded test images.
pub const COMPNET_TEST_CLASSES: [&str; 6] =
    ["aeroplane", "bicycle", "bus", "car", "motorbike", "train"];

/// The side images are resized to.
pub const SHORT_SIDE: usize = 224;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OcclusionLevel {
    Zero,
    One,
    Five,
    Nine,
}

impl OcclusionLevel {
    pub fn name(self) -> &'static str {
        match self {
            OcclusionLevel::Zero => "ZERO",
            OcclusionLevel::One => "ONE",
            OcclusionLevel::Five => "FIVE",
            OcclusionLevel::Nine => "NINE",
        }
    }
}

/// The occluder kind: object cut-outs, or boxes filled white, with noise or with texture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OccluderType {
    Object,
    White,
    Noise,
    Texture,
}

impl OccluderType {
    /// The folder suffix `occ` of `{cat}LEVEL{lvl}{occ}`.
    pub fn suffix(self) -> &'static str {
        match self {
            OccluderType::Object => "",
            OccluderType::White => "_white",
            OccluderType::Noise => "_noise",
            OccluderType::Texture => "_texture",
        }
    }
}

/// One image with its label and, for occluded test images, its two masks.
#[derive(Clone, Debug, PartialEq)]
pub struct OccludedItem {
    pub image: PathBuf,
    pub label: usize,
    pub occluder_mask: Option<PathBuf>,
    pub object_mask: Option<PathBuf>,
}

/// The label of a training class.
pub fn compnet_label(root: &Path, category: &str) -> Result<usize, FormatError> {
    COMPNET_CLASSES
        .iter()
        .position(|c| *c == category)
        .ok_or_else(|| {
            FormatError::malformed(
                root,
                None,
                "a category of the 12 CompNet classes",
                format!("`{category}`"),
            )
        })
}

fn decode_mask(path: &Path) -> Result<image::GrayImage, FormatError> {
    if !path.is_file() {
        return Err(FormatError::Missing {
            path: path.to_path_buf(),
            expected: "a 0/255 mask image".into(),
        });
    }
    image::open(path)
        .map(|i| i.to_luma8())
        .map_err(|e| FormatError::Image {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
}

/// A split of occluded PASCAL3D+.
#[derive(Clone, Debug)]
pub struct OccludedPascal3d {
    pub items: Vec<OccludedItem>,
}

/// Reads the basenames of `list` if it exists (`None` otherwise), with their line numbers.
pub(super) fn listed_names(list: &Path) -> Result<Option<Vec<(usize, String)>>, FormatError> {
    if !list.is_file() {
        return Ok(None);
    }
    let text = read_text(list, "one image basename per line")?;
    Ok(Some(
        numbered_lines(&text)
            .map(|(line, name)| (line, name.trim().to_string()))
            .collect(),
    ))
}

/// Errors unless the image a list line names exists.
pub(super) fn checked_listed(
    list: &Path,
    line: usize,
    image: PathBuf,
) -> Result<PathBuf, FormatError> {
    match image.is_file() {
        true => Ok(image),
        false => Err(FormatError::malformed(
            list,
            Some(line),
            format!("an existing image {}", image.display()),
            "no such file",
        )),
    }
}

impl OccludedPascal3d {
    /// `root` is `data/pascal3d+_occ`; training images of each category (L0).
    pub fn train(root: &Path, categories: &[&str]) -> Result<Self, FormatError> {
        let mut items = Vec::new();
        for category in categories {
            let label = compnet_label(root, category)?;
            let list = root.join(format!("{category}_imagenet_train.txt"));
            let dir = root.join(format!("TRAINING_DATA/{category}_imagenet"));
            for (line, name) in listed_names(&list)?.unwrap_or_default() {
                let image = checked_listed(&list, line, dir.join(format!("{name}.JPEG")))?;
                items.push(OccludedItem {
                    image,
                    label,
                    occluder_mask: None,
                    object_mask: None,
                });
            }
        }
        Ok(Self { items })
    }

    /// Test images of each category at `level` with `occluder` (ignored at level ZERO).
    pub fn test(
        root: &Path,
        categories: &[&str],
        level: OcclusionLevel,
        occluder: OccluderType,
    ) -> Result<Self, FormatError> {
        let mut items = Vec::new();
        for category in categories {
            let label = compnet_label(root, category)?;
            let list = root.join(format!("{category}_imagenet_occ.txt"));
            for (line, name) in listed_names(&list)?.unwrap_or_default() {
                let item = match level {
                    OcclusionLevel::Zero => OccludedItem {
                        image: root
                            .join(format!("{category}LEVELZERO"))
                            .join(format!("{}.JPEG", level_zero_name(&list, line, &name)?)),
                        label,
                        occluder_mask: None,
                        object_mask: None,
                    },
                    _ => {
                        let level_dir = format!("{category}LEVEL{}", level.name());
                        let mask_dir = match occluder {
                            OccluderType::Object => format!("{level_dir}_mask_object"),
                            _ => format!("{level_dir}_mask"),
                        };
                        OccludedItem {
                            image: root
                                .join(format!("{level_dir}{}", occluder.suffix()))
                                .join(format!("{name}.JPEG")),
                            label,
                            occluder_mask: Some(root.join(mask_dir).join(format!("{name}.JPEG"))),
                            object_mask: Some(
                                root.join(format!("0_old_masks/{category}_imagenet_occludee_mask"))
                                    .join(format!("{name}.png")),
                            ),
                        }
                    }
                };
                let image = checked_listed(&list, line, item.image)?;
                items.push(OccludedItem { image, ..item });
            }
        }
        Ok(Self { items })
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Item `index`'s image, short side resized to 224.
    pub fn load(&self, index: usize) -> Result<image::RgbImage, FormatError> {
        let item = checked_index(&self.items, index)?;
        Ok(resize_short_side(&decode_rgb(&item.image)?, SHORT_SIDE))
    }

    /// The occluder mask at the resized image's size (`None` at level ZERO and in training).
    pub fn load_occluder_mask(
        &self,
        index: usize,
    ) -> Result<Option<image::GrayImage>, FormatError> {
        let item = checked_index(&self.items, index)?;
        item.occluder_mask
            .as_deref()
            .map(|p| Ok(resize_short_side(&decode_mask(p)?, SHORT_SIDE)))
            .transpose()
    }

    /// The object (occludee) mask at the resized image's size.
    pub fn load_object_mask(&self, index: usize) -> Result<Option<image::GrayImage>, FormatError> {
        let item = checked_index(&self.items, index)?;
        item.object_mask
            .as_deref()
            .map(|p| Ok(resize_short_side(&decode_mask(p)?, SHORT_SIDE)))
            .transpose()
    }
}

/// The L0 image of an occluded-test basename: its 2-character suffix (`_1`) stripped.
pub fn level_zero_name(list: &Path, line: usize, name: &str) -> Result<String, FormatError> {
    name.char_indices()
        .rev()
        .nth(1)
        .map(|(i, _)| name[..i].to_string())
        .filter(|stem| !stem.is_empty())
        .ok_or_else(|| {
            FormatError::malformed(
                list,
                Some(line),
                "a basename with a 2-character occlusion suffix such as `_1`",
                format!("`{name}`"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn save_jpeg(path: &Path, width: u32, height: u32, shade: u8) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        image::RgbImage::from_pixel(width, height, image::Rgb([shade; 3]))
            .save(path)
            .unwrap();
    }

    /// The `compnet.md` §7 fixture.
    fn write_fixture(root: &Path) {
        std::fs::write(root.join("car_imagenet_train.txt"), "n02958343_1\n").unwrap();
        save_jpeg(
            &root.join("TRAINING_DATA/car_imagenet/n02958343_1.JPEG"),
            300,
            200,
            90,
        );
        std::fs::write(root.join("car_imagenet_occ.txt"), "n02958343_2_1\n").unwrap();
        save_jpeg(&root.join("carLEVELZERO/n02958343_2.JPEG"), 200, 300, 10);
        save_jpeg(&root.join("carLEVELONE/n02958343_2_1.JPEG"), 300, 200, 20);
        let mask = image::GrayImage::from_fn(300, 200, |x, _| {
            image::Luma([if x < 150 { 0 } else { 255 }])
        });
        std::fs::create_dir_all(root.join("carLEVELONE_mask_object")).unwrap();
        mask.save(root.join("carLEVELONE_mask_object/n02958343_2_1.JPEG"))
            .unwrap();
        let object = root.join("0_old_masks/car_imagenet_occludee_mask");
        std::fs::create_dir_all(&object).unwrap();
        image::GrayImage::from_pixel(300, 200, image::Luma([255]))
            .save(object.join("n02958343_2_1.png"))
            .unwrap();
    }

    #[test]
    fn training_items_are_labelled_by_the_12_class_list_and_resized() {
        let dir = tempfile::tempdir().unwrap();
        write_fixture(dir.path());
        // bus and motorbike have no lists: skipped.
        let train = OccludedPascal3d::train(dir.path(), &["bus", "car", "motorbike"]).unwrap();
        assert_eq!(train.len(), 1);
        assert_eq!(train.items[0].label, 5);
        assert!(
            train.items[0]
                .image
                .ends_with("TRAINING_DATA/car_imagenet/n02958343_1.JPEG")
        );
        let image = train.load(0).unwrap();
        assert_eq!(image.dimensions(), (336, 224));
        assert!(image.pixels().all(|p| p.0[0].abs_diff(90) < 4));
        assert_eq!(train.load_occluder_mask(0).unwrap(), None);
        assert_eq!([4, 8].map(|l| COMPNET_CLASSES[l]), ["bus", "motorbike"]);
    }

    #[test]
    fn level_one_object_occluders_come_with_both_masks() {
        let dir = tempfile::tempdir().unwrap();
        write_fixture(dir.path());
        let test = OccludedPascal3d::test(
            dir.path(),
            &["car"],
            OcclusionLevel::One,
            OccluderType::Object,
        )
        .unwrap();
        assert_eq!(test.len(), 1);
        let item = &test.items[0];
        assert_eq!(item.label, 5);
        assert!(item.image.ends_with("carLEVELONE/n02958343_2_1.JPEG"));
        assert!(
            item.occluder_mask
                .as_ref()
                .unwrap()
                .ends_with("carLEVELONE_mask_object/n02958343_2_1.JPEG")
        );
        assert!(
            item.object_mask
                .as_ref()
                .unwrap()
                .ends_with("0_old_masks/car_imagenet_occludee_mask/n02958343_2_1.png")
        );
        assert_eq!(test.load(0).unwrap().dimensions(), (336, 224));
        let occluder = test.load_occluder_mask(0).unwrap().unwrap();
        assert_eq!(occluder.dimensions(), (336, 224));
        assert!(occluder.get_pixel(10, 100).0[0] < 30 && occluder.get_pixel(320, 100).0[0] > 225);
        let object = test.load_object_mask(0).unwrap().unwrap();
        assert!(object.pixels().all(|p| p.0[0] == 255));
    }

    #[test]
    fn level_zero_strips_the_suffix_and_box_occluders_use_the_mask_folder() {
        let dir = tempfile::tempdir().unwrap();
        write_fixture(dir.path());
        let zero = OccludedPascal3d::test(
            dir.path(),
            &["car"],
            OcclusionLevel::Zero,
            OccluderType::White,
        )
        .unwrap();
        assert!(
            zero.items[0]
                .image
                .ends_with("carLEVELZERO/n02958343_2.JPEG")
        );
        assert_eq!(
            (
                zero.items[0].occluder_mask.clone(),
                zero.items[0].object_mask.clone()
            ),
            (None, None)
        );
        // portrait 200×300 → 224×336
        assert_eq!(zero.load(0).unwrap().dimensions(), (224, 336));
        save_jpeg(
            &dir.path().join("carLEVELFIVE_white/n02958343_2_1.JPEG"),
            30,
            20,
            0,
        );
        let white = OccludedPascal3d::test(
            dir.path(),
            &["car"],
            OcclusionLevel::Five,
            OccluderType::White,
        )
        .unwrap();
        assert!(
            white.items[0]
                .image
                .ends_with("carLEVELFIVE_white/n02958343_2_1.JPEG")
        );
        assert!(
            white.items[0]
                .occluder_mask
                .as_ref()
                .unwrap()
                .ends_with("carLEVELFIVE_mask/n02958343_2_1.JPEG")
        );
        let err = white.load_occluder_mask(0).unwrap_err().to_string();
        assert!(
            err.contains("carLEVELFIVE_mask/n02958343_2_1.JPEG") && err.contains("does not exist"),
            "{err}"
        );
    }

    #[test]
    fn missing_listed_images_name_the_list_and_line() {
        let dir = tempfile::tempdir().unwrap();
        write_fixture(dir.path());
        std::fs::write(
            dir.path().join("car_imagenet_train.txt"),
            "n02958343_1\nn02958343_404\n",
        )
        .unwrap();
        let err = OccludedPascal3d::train(dir.path(), &["car"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("car_imagenet_train.txt, line 2") && err.contains("n02958343_404.JPEG"),
            "{err}"
        );
        let err = OccludedPascal3d::test(
            dir.path(),
            &["car"],
            OcclusionLevel::Nine,
            OccluderType::Noise,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("car_imagenet_occ.txt, line 1") && err.contains("carLEVELNINE_noise"),
            "{err}"
        );
        let err = OccludedPascal3d::train(dir.path(), &["truck"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("12 CompNet classes") && err.contains("truck"),
            "{err}"
        );
        std::fs::write(
            dir.path()
                .join("TRAINING_DATA/car_imagenet/n02958343_1.JPEG"),
            b"oops",
        )
        .unwrap();
        std::fs::write(dir.path().join("car_imagenet_train.txt"), "n02958343_1\n").unwrap();
        let train = OccludedPascal3d::train(dir.path(), &["car"]).unwrap();
        let err = train.load(0).unwrap_err().to_string();
        assert!(
            err.contains("cannot decode image") && err.contains("n02958343_1.JPEG"),
            "{err}"
        );
    }
}
