//! ImageNet beyond the class folders of [`crate::image_folder`]: the class-index file (one wnid per
//! line, optionally followed by its names as in `LOC_synset_mapping.txt`; index = line order), and
//! CO2's semi-supervised subset lists (`co2-moco.md` §7): one training file name per line such as
//! `n01440764_10026.JPEG`, class = the wnid before the first `_`, image at `root/train/<wnid>/<file>`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::{FormatError, checked_index, decode_rgb, numbered_lines, read_text, unit_rgb_hwc};
use crate::ClassificationItem;

/// Synsets in label order: `wnids[i]` has label `i`.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassIndex {
    pub wnids: Vec<String>,
    /// The rest of each line (`"tench, Tinca tinca"`), empty where the file holds wnids only.
    pub names: Vec<String>,
    lookup: HashMap<String, usize>,
}

impl ClassIndex {
    /// Classes in the given order (e.g. the sorted folder names of `train/`).
    pub fn from_wnids(wnids: Vec<String>) -> Self {
        let names = vec![String::new(); wnids.len()];
        let lookup = wnids
            .iter()
            .enumerate()
            .map(|(i, w)| (w.clone(), i))
            .collect();
        Self {
            wnids,
            names,
            lookup,
        }
    }

    /// Reads `wnid [name...]` lines; the label is the line's position among the non-empty lines.
    pub fn read(path: &Path) -> Result<Self, FormatError> {
        let text = read_text(path, "a class-index file, one `wnid [name...]` per line")?;
        let mut wnids = Vec::new();
        let mut names = Vec::new();
        let mut lookup = HashMap::new();
        for (line, content) in numbered_lines(&text) {
            let content = content.trim();
            let (wnid, name) = content
                .split_once(char::is_whitespace)
                .unwrap_or((content, ""));
            if lookup.insert(wnid.to_string(), wnids.len()).is_some() {
                return Err(FormatError::malformed(
                    path,
                    Some(line),
                    "each wnid once",
                    format!("`{wnid}` again"),
                ));
            }
            wnids.push(wnid.to_string());
            names.push(name.trim().to_string());
        }
        if wnids.is_empty() {
            return Err(FormatError::malformed(
                path,
                None,
                "at least one wnid",
                "an empty file",
            ));
        }
        Ok(Self {
            wnids,
            names,
            lookup,
        })
    }

    /// Writes the file [`ClassIndex::read`] reads back: `wnid` or `wnid name` per line.
    pub fn write(&self, path: &Path) -> Result<(), FormatError> {
        let text: String = self
            .wnids
            .iter()
            .zip(&self.names)
            .map(|(w, n)| match n.is_empty() {
                true => format!("{w}\n"),
                false => format!("{w} {n}\n"),
            })
            .collect();
        std::fs::write(path, text).map_err(|e| FormatError::Unreadable {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    }

    pub fn label_of(&self, wnid: &str) -> Option<usize> {
        self.lookup.get(wnid).copied()
    }

    pub fn len(&self) -> usize {
        self.wnids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.wnids.is_empty()
    }
}

/// The class of a subset entry: the wnid before the first `_` of `n01440764_10026.JPEG`.
pub fn wnid_of_file_name(file_name: &str) -> Option<&str> {
    file_name
        .split_once('_')
        .map(|(wnid, _)| wnid)
        .filter(|w| !w.is_empty())
}

/// A labelled subset of ImageNet train (CO2's 1 % / 10 % lists).
#[derive(Clone, Debug)]
pub struct SemiSupervisedSubset {
    pub samples: Vec<(PathBuf, usize)>,
}

impl SemiSupervisedSubset {
    /// Resolves each line of `list` against `root/train/<wnid>/<file>`; an unknown wnid or a missing
    /// image is an error naming the list and line.
    pub fn read(list: &Path, root: &Path, classes: &ClassIndex) -> Result<Self, FormatError> {
        let text = read_text(list, "a subset list, one `<wnid>_<n>.JPEG` per line")?;
        let mut samples = Vec::new();
        for (line, content) in numbered_lines(&text) {
            let file = content.trim();
            let wnid = wnid_of_file_name(file).ok_or_else(|| {
                FormatError::malformed(
                    list,
                    Some(line),
                    "a file name `<wnid>_<n>.JPEG`",
                    format!("`{file}`"),
                )
            })?;
            let label = classes.label_of(wnid).ok_or_else(|| {
                FormatError::malformed(
                    list,
                    Some(line),
                    format!("a wnid of the {} classes", classes.len()),
                    format!("`{wnid}`"),
                )
            })?;
            let path = root.join("train").join(wnid).join(file);
            if !path.is_file() {
                return Err(FormatError::malformed(
                    list,
                    Some(line),
                    format!("an existing image {}", path.display()),
                    "no such file",
                ));
            }
            samples.push((path, label));
        }
        Ok(Self { samples })
    }

    /// Decodes sample `index` (full size) with its label.
    pub fn load(&self, index: usize) -> Result<ClassificationItem, FormatError> {
        let (path, label) = checked_index(&self.samples, index)?;
        let image = decode_rgb(path)?;
        Ok(ClassificationItem {
            pixels: unit_rgb_hwc(&image),
            size: [image.height() as usize, image.width() as usize],
            label: *label,
        })
    }
}

impl burn::data::dataset::Dataset<ClassificationItem> for SemiSupervisedSubset {
    fn get(&self, index: usize) -> Option<ClassificationItem> {
        if index >= self.samples.len() {
            return None;
        }
        // A corrupt file is an error naming it (or a skipped item), never a short epoch.
        self.load(index).map_or_else(crate::load_failed, Some)
    }

    fn len(&self) -> usize {
        self.samples.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WNIDS: [&str; 2] = ["n01440764", "n01443537"];

    /// 2 classes × 2 images in `train/`, shade 40 for the first class and 200 for the second.
    fn write_train(root: &Path) {
        for (wnid, shade) in WNIDS.iter().zip([40u8, 200]) {
            let dir = root.join("train").join(wnid);
            std::fs::create_dir_all(&dir).unwrap();
            for n in [10026, 10027] {
                image::RgbImage::from_pixel(6, 4, image::Rgb([shade; 3]))
                    .save(dir.join(format!("{wnid}_{n}.JPEG")))
                    .unwrap();
            }
        }
    }

    #[test]
    fn class_index_reads_names_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("LOC_synset_mapping.txt");
        std::fs::write(
            &path,
            "n01440764 tench, Tinca tinca\nn01443537 goldfish, Carassius auratus\n",
        )
        .unwrap();
        let classes = ClassIndex::read(&path).unwrap();
        assert_eq!(classes.wnids, WNIDS);
        assert_eq!(classes.names[1], "goldfish, Carassius auratus");
        assert_eq!(classes.label_of("n01443537"), Some(1));
        assert_eq!(classes.label_of("n99999999"), None);
        let copy = dir.path().join("copy.txt");
        classes.write(&copy).unwrap();
        assert_eq!(ClassIndex::read(&copy).unwrap(), classes);
        let bare = ClassIndex::from_wnids(WNIDS.map(String::from).to_vec());
        bare.write(&copy).unwrap();
        assert_eq!(
            std::fs::read_to_string(&copy).unwrap(),
            "n01440764\nn01443537\n"
        );
    }

    #[test]
    fn duplicate_wnid_is_named_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("classes.txt");
        std::fs::write(&path, "n01440764\nn01443537\nn01440764\n").unwrap();
        let err = ClassIndex::read(&path).unwrap_err().to_string();
        assert!(
            err.contains("classes.txt, line 3") && err.contains("each wnid once"),
            "{err}"
        );
    }

    #[test]
    fn subset_yields_exactly_the_listed_images_with_their_labels() {
        let dir = tempfile::tempdir().unwrap();
        write_train(dir.path());
        let list = dir.path().join("1percent.txt");
        std::fs::write(&list, "n01443537_10027.JPEG\nn01440764_10026.JPEG\n").unwrap();
        let classes = ClassIndex::from_wnids(WNIDS.map(String::from).to_vec());
        let subset = SemiSupervisedSubset::read(&list, dir.path(), &classes).unwrap();
        assert_eq!(subset.samples.len(), 2);
        assert!(
            subset.samples[0]
                .0
                .ends_with("train/n01443537/n01443537_10027.JPEG")
        );
        assert_eq!(
            subset.samples.iter().map(|s| s.1).collect::<Vec<_>>(),
            [1, 0]
        );
        let item = subset.load(0).unwrap();
        assert_eq!((item.size, item.label), ([4, 6], 1));
        assert!(
            item.pixels
                .iter()
                .all(|&p| (p - 200.0 / 255.0).abs() < 0.05)
        );
        assert!(matches!(
            subset.load(2),
            Err(FormatError::Index { index: 2, len: 2 })
        ));
    }

    #[test]
    fn unknown_wnid_and_missing_image_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        write_train(dir.path());
        let classes = ClassIndex::from_wnids(WNIDS.map(String::from).to_vec());
        let list = dir.path().join("subset.txt");
        std::fs::write(&list, "n01440764_10026.JPEG\nn09999999_1.JPEG\n").unwrap();
        let err = SemiSupervisedSubset::read(&list, dir.path(), &classes)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("subset.txt, line 2") && err.contains("a wnid of the 2 classes"),
            "{err}"
        );
        std::fs::write(&list, "\nn01440764_55.JPEG\n").unwrap();
        let err = SemiSupervisedSubset::read(&list, dir.path(), &classes)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("line 2") && err.contains("n01440764_55.JPEG"),
            "{err}"
        );
        std::fs::write(&list, "nownid.JPEG\n").unwrap();
        let err = SemiSupervisedSubset::read(&list, dir.path(), &classes)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("line 1") && err.contains("<wnid>_<n>.JPEG"),
            "{err}"
        );
    }
}
