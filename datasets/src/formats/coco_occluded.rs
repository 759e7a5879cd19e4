//! CompNet's occluded MS-COCO vehicles (`compnet.md` §7, `Code/helpers.py getImg` with
//! `dataset = 'coco'`), under `data/coco_occ/`:
//!
//! * training (level ZERO): `{cat}_ZERO_train.txt` basenames → `{cat}_zero/{name}.jpg`;
//! * test, level ZERO: `{cat}_ZERO_test.txt` basenames → `{cat}_zero/{name}.jpg`;
//! * test, levels ONE/FIVE/NINE: `{cat}_{ONE|FIVE|NINE}.txt` basenames → `{cat}_occ/{name}.jpg`.
//!
//! The crops are named `{cocoImageId}_{k}_{split}2017` and come without ground-truth masks (so no
//! occluder-localisation ROC on COCO). The evaluation (`compnet.md` §4.3, `test.py`) runs over the
//! vehicle classes [`COMPNET_TEST_CLASSES`](super::occluded::COMPNET_TEST_CLASSES) with the natural occluder type only; classes without a
//! list are skipped.
//!
//! Label = index in the 12-class training list ([`COMPNET_CLASSES`](super::occluded::COMPNET_CLASSES), as
//! [`compnet_label`] gives).
//! Missing list files are skipped, as `getImg` does for the test lists (the PASCAL3D+ reader skips
//! missing training lists too, and so does this one); a listed image that is missing is an error
//! naming the list and line. Images are resized so that their short side is 224
//! ([`crate::transforms::resize_short_side`]).

use std::path::{Path, PathBuf};

use crate::transforms::resize_short_side;

use super::occluded::{OcclusionLevel, SHORT_SIDE, checked_listed, compnet_label, listed_names};
use super::{FormatError, checked_index, decode_rgb};

/// One COCO crop with its label and occlusion level (ZERO for training images).
#[derive(Clone, Debug, PartialEq)]
pub struct OccludedCocoItem {
    pub image: PathBuf,
    pub label: usize,
    pub level: OcclusionLevel,
}

/// A split of occluded MS-COCO vehicles.
#[derive(Clone, Debug)]
pub struct OccludedCoco {
    pub items: Vec<OccludedCocoItem>,
}

/// The list file and image folder of `category` (`train` only matters at level ZERO).
pub fn coco_occluded_paths(
    root: &Path,
    category: &str,
    level: OcclusionLevel,
    train: bool,
) -> (PathBuf, PathBuf) {
    match (level, train) {
        (OcclusionLevel::Zero, true) => (
            root.join(format!("{category}_ZERO_train.txt")),
            root.join(format!("{category}_zero")),
        ),
        (OcclusionLevel::Zero, false) => (
            root.join(format!("{category}_ZERO_test.txt")),
            root.join(format!("{category}_zero")),
        ),
        (level, _) => (
            root.join(format!("{category}_{}.txt", level.name())),
            root.join(format!("{category}_occ")),
        ),
    }
}

impl OccludedCoco {
    /// `root` is `data/coco_occ`; training crops of each category (level ZERO).
    pub fn train(root: &Path, categories: &[&str]) -> Result<Self, FormatError> {
        Self::read(root, categories, OcclusionLevel::Zero, true)
    }

    /// Test crops of each category at `level`.
    pub fn test(
        root: &Path,
        categories: &[&str],
        level: OcclusionLevel,
    ) -> Result<Self, FormatError> {
        Self::read(root, categories, level, false)
    }

    fn read(
        root: &Path,
        categories: &[&str],
        level: OcclusionLevel,
        train: bool,
    ) -> Result<Self, FormatError> {
        let mut items = Vec::new();
        for category in categories {
            let label = compnet_label(root, category)?;
            let (list, dir) = coco_occluded_paths(root, category, level, train);
            for (line, name) in listed_names(&list)?.unwrap_or_default() {
                let image = checked_listed(&list, line, dir.join(format!("{name}.jpg")))?;
                items.push(OccludedCocoItem {
                    image,
                    label,
                    level,
                });
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::occluded::COMPNET_TEST_CLASSES;

    fn save_jpeg(path: &Path, width: u32, height: u32, shade: u8) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        image::RgbImage::from_pixel(width, height, image::Rgb([shade; 3]))
            .save(path)
            .unwrap();
    }

    /// Training and level-ONE lists for `car` and `bus`, a level-ZERO test list for `car`.
    fn write_fixture(root: &Path) {
        std::fs::write(root.join("car_ZERO_train.txt"), "139_0_train2017\n").unwrap();
        save_jpeg(&root.join("car_zero/139_0_train2017.jpg"), 300, 200, 90);
        std::fs::write(root.join("bus_ZERO_train.txt"), "724_1_train2017\n").unwrap();
        save_jpeg(&root.join("bus_zero/724_1_train2017.jpg"), 160, 240, 40);
        std::fs::write(root.join("car_ZERO_test.txt"), "285_0_val2017\n").unwrap();
        save_jpeg(&root.join("car_zero/285_0_val2017.jpg"), 224, 400, 60);
        std::fs::write(root.join("car_ONE.txt"), "632_2_val2017\n\n").unwrap();
        save_jpeg(&root.join("car_occ/632_2_val2017.jpg"), 300, 200, 20);
        std::fs::write(root.join("bus_ONE.txt"), "776_0_val2017\n").unwrap();
        save_jpeg(&root.join("bus_occ/776_0_val2017.jpg"), 400, 448, 200);
    }

    #[test]
    fn training_crops_are_labelled_by_the_12_class_list_and_resized() {
        let dir = tempfile::tempdir().unwrap();
        write_fixture(dir.path());
        // motorbike has no list: skipped.
        let train = OccludedCoco::train(dir.path(), &["bus", "car", "motorbike"]).unwrap();
        assert_eq!(train.len(), 2);
        assert_eq!(
            train.items.iter().map(|i| i.label).collect::<Vec<_>>(),
            [4, 5]
        );
        assert!(train.items.iter().all(|i| i.level == OcclusionLevel::Zero));
        assert!(
            train.items[0]
                .image
                .ends_with("bus_zero/724_1_train2017.jpg")
        );
        assert!(
            train.items[1]
                .image
                .ends_with("car_zero/139_0_train2017.jpg")
        );
        // portrait 160×240 → 224×336; landscape 300×200 → 336×224
        let bus = train.load(0).unwrap();
        assert_eq!(bus.dimensions(), (224, 336));
        assert!(bus.pixels().all(|p| p.0[0].abs_diff(40) < 4));
        let car = train.load(1).unwrap();
        assert_eq!(car.dimensions(), (336, 224));
        assert!(car.pixels().all(|p| p.0[0].abs_diff(90) < 4));
        let err = train.load(2).unwrap_err().to_string();
        assert!(err.contains("index 2") && err.contains("2 items"), "{err}");
    }

    #[test]
    fn occluded_levels_read_the_occ_folder_and_zero_the_zero_folder() {
        let dir = tempfile::tempdir().unwrap();
        write_fixture(dir.path());
        let one =
            OccludedCoco::test(dir.path(), &COMPNET_TEST_CLASSES, OcclusionLevel::One).unwrap();
        assert_eq!(one.len(), 2);
        assert_eq!(
            one.items[0],
            OccludedCocoItem {
                image: dir.path().join("bus_occ/776_0_val2017.jpg"),
                label: 4,
                level: OcclusionLevel::One,
            }
        );
        assert!(one.items[1].image.ends_with("car_occ/632_2_val2017.jpg"));
        assert_eq!(
            (one.items[1].label, one.items[1].level),
            (5, OcclusionLevel::One)
        );
        // 400×448 → 224 short side: 224×250 (⌊448·224/400⌋ = 250)
        assert_eq!(one.load(0).unwrap().dimensions(), (224, 250));
        assert_eq!(one.load(1).unwrap().dimensions(), (336, 224));

        let zero = OccludedCoco::test(dir.path(), &["bus", "car"], OcclusionLevel::Zero).unwrap();
        assert_eq!(zero.len(), 1);
        assert!(zero.items[0].image.ends_with("car_zero/285_0_val2017.jpg"));
        assert_eq!(zero.items[0].level, OcclusionLevel::Zero);
        // already at short side 224
        assert_eq!(zero.load(0).unwrap().dimensions(), (224, 400));

        // no `{cat}_FIVE.txt` at all: skipped, an empty split
        let five = OccludedCoco::test(dir.path(), &["bus", "car"], OcclusionLevel::Five).unwrap();
        assert!(five.is_empty());
        let (list, images) = coco_occluded_paths(dir.path(), "car", OcclusionLevel::Nine, false);
        assert!(list.ends_with("car_NINE.txt") && images.ends_with("car_occ"));
    }

    #[test]
    fn missing_listed_crops_name_the_list_and_line() {
        let dir = tempfile::tempdir().unwrap();
        write_fixture(dir.path());
        std::fs::write(
            dir.path().join("car_ONE.txt"),
            "632_2_val2017\n  \n404_0_val2017\n",
        )
        .unwrap();
        let err = OccludedCoco::test(dir.path(), &["car"], OcclusionLevel::One)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("car_ONE.txt, line 3") && err.contains("car_occ/404_0_val2017.jpg"),
            "{err}"
        );
        // a ZERO crop listed for training but present only under `_occ`
        std::fs::write(
            dir.path().join("bus_ZERO_train.txt"),
            "724_1_train2017\n776_0_val2017\n",
        )
        .unwrap();
        let err = OccludedCoco::train(dir.path(), &["bus"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("bus_ZERO_train.txt, line 2")
                && err.contains("bus_zero/776_0_val2017.jpg"),
            "{err}"
        );
        let err = OccludedCoco::train(dir.path(), &["truck"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("12 CompNet classes") && err.contains("truck"),
            "{err}"
        );
        std::fs::write(dir.path().join("car_zero/139_0_train2017.jpg"), b"oops").unwrap();
        let train = OccludedCoco::train(dir.path(), &["car"]).unwrap();
        let err = train.load(0).unwrap_err().to_string();
        assert!(
            err.contains("cannot decode image") && err.contains("139_0_train2017.jpg"),
            "{err}"
        );
    }
}
