//! SAKE's zero-shot sketch-based image retrieval data (`sake.md` §7): Sketchy and TU-Berlin.
//!
//! * List line `<relative path> <int label>`: the path may contain spaces, so the label is the last
//!   whitespace token and the path the preceding tokens re-joined with single spaces; paths are
//!   relative to `dataset/Sketchy/` or `dataset/TUBerlin/`.
//! * Split files `<zeroshot dir>/{version}_filelist_{train|test|zero}.txt`; split `val` reads `test`.
//! * Labels: train/test lists use the ids of `cname_cid.txt`, zero lists those of
//!   `cname_cid_zero.txt` (`name id` lines, the name may contain spaces).
//! * `cid_mask.pickle` converted offline by `datasets/tools/convert_cid_mask.py` to `cid_mask.npy`,
//!   a float64 C-order `[num_classes, 1000]` array whose row `c` is the ImageNet-class mask of
//!   training class id `c`. [`SketchList::mask`] returns row `label` of the sample's label: the
//!   spec's fixture asks for `mask = cid[label]` with a zero-list label 6, so its mask has at least
//!   7 rows here (the spec's "3-class array" cannot be indexed by 6).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{FormatError, checked_index, decode_rgb, numbered_lines, read_bytes, read_text};

/// Which dataset: its folder under `dataset/` and its zero-shot split folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SketchDataset {
    Sketchy,
    TuBerlin,
}

impl SketchDataset {
    pub fn folder(self) -> &'static str {
        match self {
            SketchDataset::Sketchy => "Sketchy",
            SketchDataset::TuBerlin => "TUBerlin",
        }
    }

    pub fn zeroshot_folder(self) -> &'static str {
        match self {
            SketchDataset::Sketchy => "zeroshot1",
            SketchDataset::TuBerlin => "zeroshot",
        }
    }

    /// The list versions of sketches and photos.
    pub fn versions(self) -> (&'static str, &'static str) {
        match self {
            SketchDataset::Sketchy => ("sketch_tx_000000000000_ready", "all_photo"),
            SketchDataset::TuBerlin => ("png_ready", "ImageResized_ready"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SketchSplit {
    Train,
    Val,
    Test,
    Zero,
}

impl SketchSplit {
    /// The file-name part of the split: `val` reads `test`.
    pub fn list_name(self) -> &'static str {
        match self {
            SketchSplit::Train => "train",
            SketchSplit::Val | SketchSplit::Test => "test",
            SketchSplit::Zero => "zero",
        }
    }

    /// `cname_cid_zero.txt` for the zero split, `cname_cid.txt` otherwise.
    pub fn class_file(self) -> &'static str {
        match self {
            SketchSplit::Zero => "cname_cid_zero.txt",
            _ => "cname_cid.txt",
        }
    }
}

/// Splits `<words...> <int>` at its last whitespace token: the words re-joined with single spaces,
/// and the integer. `what` names the left part in the error.
pub fn split_name_and_id(
    path: &Path,
    line: usize,
    content: &str,
    what: &str,
) -> Result<(String, usize), FormatError> {
    let tokens: Vec<&str> = content.split_whitespace().collect();
    let expected = || format!("`<{what}> <int label>`");
    let Some((last, words)) = tokens.split_last().filter(|(_, w)| !w.is_empty()) else {
        return Err(FormatError::malformed(
            path,
            Some(line),
            expected(),
            format!("`{content}`"),
        ));
    };
    let id = last.parse().map_err(|_| {
        FormatError::malformed(
            path,
            Some(line),
            format!("{} ending in a non-negative integer", expected()),
            format!("`{last}`"),
        )
    })?;
    Ok((words.join(" "), id))
}

/// Reads `cname_cid.txt` / `cname_cid_zero.txt` into id → class name.
pub fn read_class_ids(path: &Path) -> Result<BTreeMap<usize, String>, FormatError> {
    let text = read_text(path, "`<class name> <id>` lines")?;
    let mut classes = BTreeMap::new();
    for (line, content) in numbered_lines(&text) {
        let (name, id) = split_name_and_id(path, line, content, "class name")?;
        if let Some(previous) = classes.insert(id, name) {
            return Err(FormatError::malformed(
                path,
                Some(line),
                "each class id once",
                format!("id {id} again (first for `{previous}`)"),
            ));
        }
    }
    Ok(classes)
}

/// The class-to-ImageNet-class masks, `[num_classes, width]` row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct CidMask {
    pub path: PathBuf,
    pub num_classes: usize,
    pub width: usize,
    pub values: Vec<f64>,
}

impl CidMask {
    /// Reads a 2-D float64 C-order `.npy` (written by `tools/convert_cid_mask.py`).
    pub fn read(path: &Path) -> Result<Self, FormatError> {
        let bytes = read_bytes(
            path,
            "a [num_classes, 1000] float64 .npy (convert_cid_mask.py)",
        )?;
        let bad = |found: String| {
            FormatError::malformed(path, None, "a 2-D float64 (<f8) C-order .npy array", found)
        };
        let npy = npyz::NpyFile::new(&bytes[..]).map_err(|e| bad(e.to_string()))?;
        let is_f8 = matches!(npy.dtype(), npyz::DType::Plain(t)
            if t.type_char() == npyz::TypeChar::Float && t.size_field() == 8);
        let shape = npy.shape().to_vec();
        if !is_f8 || shape.len() != 2 || npy.order() != npyz::Order::C {
            return Err(bad(format!(
                "dtype {}, shape {shape:?}, {:?} order",
                npy.dtype().descr(),
                npy.order()
            )));
        }
        // The header's shape must fit the bytes that follow it before anything is allocated for it.
        let count = shape.iter().try_fold(1u64, |n, &d| n.checked_mul(d));
        if count.is_none_or(|n| n.saturating_mul(8) > bytes.len() as u64) {
            return Err(bad(format!(
                "a header of shape {shape:?} over {} bytes",
                bytes.len()
            )));
        }
        let values = npy.into_vec::<f64>().map_err(|e| bad(e.to_string()))?;
        Ok(Self {
            path: path.to_path_buf(),
            num_classes: shape[0] as usize,
            width: shape[1] as usize,
            values,
        })
    }

    /// Row `class`.
    pub fn row(&self, class: usize) -> Result<&[f64], FormatError> {
        match class < self.num_classes {
            true => Ok(&self.values[class * self.width..(class + 1) * self.width]),
            false => Err(FormatError::malformed(
                &self.path,
                None,
                format!("a row per class id (0..{})", self.num_classes),
                format!("class id {class}"),
            )),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct SketchSample {
    /// Relative to the dataset folder, as written in the list (spaces kept).
    pub path: String,
    pub label: usize,
}

/// One split file of one version, with the class names of its label space.
#[derive(Clone, Debug)]
pub struct SketchList {
    /// `dataset/Sketchy` or `dataset/TUBerlin`.
    pub dataset_root: PathBuf,
    pub list: PathBuf,
    pub samples: Vec<SketchSample>,
    /// Id → name from the split's `cname_cid*.txt`.
    pub classes: BTreeMap<usize, String>,
    /// `cid_mask.npy` next to the lists, where it has been converted.
    pub cid_mask: Option<CidMask>,
}

impl SketchList {
    /// `root` is the unzipped `dataset/`; `version` e.g. `png_ready` ([`SketchDataset::versions`]).
    pub fn read(
        root: &Path,
        dataset: SketchDataset,
        version: &str,
        split: SketchSplit,
    ) -> Result<Self, FormatError> {
        let dataset_root = root.join(dataset.folder());
        let zeroshot = dataset_root.join(dataset.zeroshot_folder());
        let classes = read_class_ids(&zeroshot.join(split.class_file()))?;
        let list = zeroshot.join(format!("{version}_filelist_{}.txt", split.list_name()));
        let text = read_text(&list, "`<relative path> <int label>` lines")?;
        let mut samples = Vec::new();
        for (line, content) in numbered_lines(&text) {
            let (path, label) = split_name_and_id(&list, line, content, "relative path")?;
            if !classes.contains_key(&label) {
                return Err(FormatError::malformed(
                    &list,
                    Some(line),
                    format!("a class id of {}", split.class_file()),
                    format!("label {label}"),
                ));
            }
            samples.push(SketchSample { path, label });
        }
        let mask_path = zeroshot.join("cid_mask.npy");
        let cid_mask = match mask_path.is_file() {
            true => Some(CidMask::read(&mask_path)?),
            false => None,
        };
        Ok(Self {
            dataset_root,
            list,
            samples,
            classes,
            cid_mask,
        })
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// `cid_mask[label]` of sample `index`; an error where the mask is absent or has no such row.
    pub fn mask(&self, index: usize) -> Result<&[f64], FormatError> {
        let sample = checked_index(&self.samples, index)?;
        let mask = self.cid_mask.as_ref().ok_or_else(|| FormatError::Missing {
            path: self.list.with_file_name("cid_mask.npy"),
            expected: "cid_mask.pickle converted by datasets/tools/convert_cid_mask.py".into(),
        })?;
        mask.row(sample.label)
    }

    pub fn load(&self, index: usize) -> Result<image::RgbImage, FormatError> {
        decode_rgb(
            &self
                .dataset_root
                .join(&checked_index(&self.samples, index)?.path),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A float64 C-order `.npy` v1.0, byte for byte as `numpy.save` writes it.
    fn write_npy(path: &Path, shape: &str, fortran: bool, values: &[f64]) {
        let mut header = format!(
            "{{'descr': '<f8', 'fortran_order': {}, 'shape': {shape}, }}",
            if fortran { "True" } else { "False" }
        );
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend((header.len() as u16).to_le_bytes());
        bytes.extend(header.as_bytes());
        bytes.extend(values.iter().flat_map(|v| v.to_le_bytes()));
        std::fs::write(path, bytes).unwrap();
    }

    /// Row `c` holds `c + k / 1000` at column `k`.
    fn mask_values(rows: usize) -> Vec<f64> {
        (0..rows * 1000)
            .map(|i| (i / 1000) as f64 + (i % 1000) as f64 / 1000.0)
            .collect()
    }

    /// The `sake.md` §7 fixture, with a 7-row mask so that label 6 has a row.
    fn write_tu_berlin(root: &Path) -> PathBuf {
        let tu = root.join("TUBerlin");
        let zeroshot = tu.join("zeroshot");
        std::fs::create_dir_all(&zeroshot).unwrap();
        std::fs::write(
            zeroshot.join("png_ready_filelist_zero.txt"),
            "png_ready/bottle opener/2188.png 6\npng_ready/banana/836.png 0\n",
        )
        .unwrap();
        let names = [
            "banana",
            "bus",
            "tractor",
            "suitcase",
            "streetlight",
            "telephone",
            "bottle opener",
        ];
        let cname: String = names
            .iter()
            .enumerate()
            .map(|(i, n)| format!("{n} {i}\n"))
            .collect();
        std::fs::write(zeroshot.join("cname_cid_zero.txt"), cname).unwrap();
        write_npy(
            &zeroshot.join("cid_mask.npy"),
            "(7, 1000)",
            false,
            &mask_values(7),
        );
        for (dir, file, shade) in [
            ("bottle opener", "2188.png", 10u8),
            ("banana", "836.png", 240),
        ] {
            let dir = tu.join("png_ready").join(dir);
            std::fs::create_dir_all(&dir).unwrap();
            image::RgbImage::from_pixel(3, 2, image::Rgb([shade; 3]))
                .save(dir.join(file))
                .unwrap();
        }
        zeroshot
    }

    #[test]
    fn zero_list_keeps_spaces_in_paths_and_masks_by_label() {
        let dir = tempfile::tempdir().unwrap();
        write_tu_berlin(dir.path());
        let list = SketchList::read(
            dir.path(),
            SketchDataset::TuBerlin,
            "png_ready",
            SketchSplit::Zero,
        )
        .unwrap();
        assert_eq!(
            list.samples,
            [
                SketchSample {
                    path: "png_ready/bottle opener/2188.png".into(),
                    label: 6
                },
                SketchSample {
                    path: "png_ready/banana/836.png".into(),
                    label: 0
                },
            ]
        );
        assert_eq!(list.classes[&6], "bottle opener");
        let mask = list.mask(0).unwrap();
        assert_eq!((mask.len(), mask[0], mask[999]), (1000, 6.0, 6.999));
        assert_eq!(list.mask(1).unwrap()[1], 0.001);
        assert_eq!(list.load(0).unwrap().get_pixel(0, 0).0, [10; 3]);
    }

    #[test]
    fn val_reads_the_test_list_with_the_training_classes() {
        let dir = tempfile::tempdir().unwrap();
        let zeroshot = write_tu_berlin(dir.path());
        std::fs::write(
            zeroshot.join("cname_cid.txt"),
            "wrist-watch 0\nhot air balloon 1\n",
        )
        .unwrap();
        std::fs::write(
            zeroshot.join("png_ready_filelist_test.txt"),
            "png_ready/hot air balloon/1.png 1\n",
        )
        .unwrap();
        let val = SketchList::read(
            dir.path(),
            SketchDataset::TuBerlin,
            "png_ready",
            SketchSplit::Val,
        )
        .unwrap();
        assert_eq!(val.list.file_name().unwrap(), "png_ready_filelist_test.txt");
        assert_eq!(
            (val.samples[0].path.as_str(), val.samples[0].label),
            ("png_ready/hot air balloon/1.png", 1)
        );
        assert_eq!(val.classes[&1], "hot air balloon");
        let err = SketchList::read(
            dir.path(),
            SketchDataset::TuBerlin,
            "png_ready",
            SketchSplit::Train,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("png_ready_filelist_train.txt") && err.contains("does not exist"),
            "{err}"
        );
    }

    #[test]
    fn lines_without_integer_labels_name_path_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let zeroshot = write_tu_berlin(dir.path());
        let list = zeroshot.join("png_ready_filelist_zero.txt");
        let read = || {
            SketchList::read(
                dir.path(),
                SketchDataset::TuBerlin,
                "png_ready",
                SketchSplit::Zero,
            )
            .unwrap_err()
            .to_string()
        };
        std::fs::write(
            &list,
            "png_ready/banana/836.png 0\npng_ready/banana/837.png\n",
        )
        .unwrap();
        let err = read();
        assert!(
            err.contains("png_ready_filelist_zero.txt, line 2") && err.contains("<int label>"),
            "{err}"
        );
        std::fs::write(&list, "png_ready/bottle opener/2188.png six\n").unwrap();
        let err = read();
        assert!(
            err.contains("line 1") && err.contains("non-negative integer") && err.contains("`six`"),
            "{err}"
        );
        std::fs::write(&list, "png_ready/banana/836.png 29\n").unwrap();
        let err = read();
        assert!(
            err.contains("line 1")
                && err.contains("cname_cid_zero.txt")
                && err.contains("label 29"),
            "{err}"
        );
        std::fs::write(
            zeroshot.join("cname_cid_zero.txt"),
            "banana 0\nbanana split\n",
        )
        .unwrap();
        let err = read();
        assert!(err.contains("cname_cid_zero.txt, line 2"), "{err}");
    }

    #[test]
    fn masks_must_be_2d_c_order_float64_with_a_row_per_label() {
        let dir = tempfile::tempdir().unwrap();
        let zeroshot = write_tu_berlin(dir.path());
        let npy = zeroshot.join("cid_mask.npy");
        write_npy(&npy, "(3, 1000)", false, &mask_values(3));
        let list = SketchList::read(
            dir.path(),
            SketchDataset::TuBerlin,
            "png_ready",
            SketchSplit::Zero,
        )
        .unwrap();
        assert_eq!(list.mask(1).unwrap()[0], 0.0);
        let err = list.mask(0).unwrap_err().to_string();
        assert!(
            err.contains("cid_mask.npy") && err.contains("0..3") && err.contains("class id 6"),
            "{err}"
        );
        write_npy(&npy, "(3, 1000)", true, &mask_values(3));
        let err = CidMask::read(&npy).unwrap_err().to_string();
        assert!(
            err.contains("cid_mask.npy") && err.contains("C-order") && err.contains("Fortran"),
            "{err}"
        );
        write_npy(&npy, "(3000,)", false, &mask_values(3));
        let err = CidMask::read(&npy).unwrap_err().to_string();
        assert!(err.contains("2-D") && err.contains("[3000]"), "{err}");
        std::fs::write(&npy, b"\x93NUMPY garbage").unwrap();
        assert!(
            CidMask::read(&npy)
                .unwrap_err()
                .to_string()
                .contains("cid_mask.npy")
        );
    }
}
