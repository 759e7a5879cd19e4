//! ImageNet-style class folders (`ws.md` §7, `resnet-family.md` §7): `root/<split>/<class>/<image>`,
//! labels by sorted class-folder name, non-image files ignored. Images are decoded with the `image`
//! crate at their own size; the crops and resizes of training and evaluation are the
//! [`crate::transforms`] pipelines (`Pipeline::imagenet_train`, `Pipeline::imagenet_eval`) applied
//! through [`crate::Augmented`].

use std::path::{Path, PathBuf};

use crate::ClassificationItem;

#[derive(Debug, thiserror::Error)]
pub enum FolderError {
    #[error(
        "dataset folder {0} does not exist (expected root/train/<class>/<image> and root/val/<class>/<image>)"
    )]
    Missing(PathBuf),
    #[error("cannot list {path}: {reason}")]
    Unreadable { path: PathBuf, reason: String },
    #[error("{0} holds no class folders (expected one sub-folder of images per class)")]
    NoClasses(PathBuf),
    #[error("{0} holds no images (.jpg, .jpeg, .png)")]
    NoImages(PathBuf),
    #[error("the class folders of {split} ({found}) differ from those of train ({expected})")]
    ClassMismatch {
        split: PathBuf,
        expected: String,
        found: String,
    },
}

const EXTENSIONS: [&str; 4] = ["jpg", "jpeg", "png", "JPEG"];

/// One split of an image folder: `(path, label)` pairs, decoded on demand.
#[derive(Clone, Debug)]
pub struct ImageFolder {
    pub classes: Vec<String>,
    pub samples: Vec<(PathBuf, usize)>,
}

fn sorted_entries(path: &Path) -> Result<Vec<PathBuf>, FolderError> {
    if !path.is_dir() {
        return Err(FolderError::Missing(path.to_path_buf()));
    }
    let unreadable = |e: std::io::Error| FolderError::Unreadable {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let mut entries = std::fs::read_dir(path)
        .map_err(unreadable)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(unreadable)?;
    entries.sort();
    Ok(entries)
}

/// The PNG/JPEG files directly in `dir` (any case of the extension), sorted by name; an error
/// names `what` (e.g. "--gallery") and the folder when it cannot be read or holds none.
pub fn image_files(dir: &Path, what: &str) -> Result<Vec<PathBuf>, String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{what} {}: not a readable folder ({e})", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg"))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(format!(
            "{what} {}: no PNG or JPEG images in it",
            dir.display()
        ));
    }
    Ok(files)
}

impl ImageFolder {
    /// Scans `root/split`. `expected_classes`: the train split's classes, which val must repeat.
    pub fn scan(
        root: &Path,
        split: &str,
        expected_classes: Option<&[String]>,
    ) -> Result<Self, FolderError> {
        let dir = root.join(split);
        let class_dirs: Vec<PathBuf> = sorted_entries(&dir)?
            .into_iter()
            .filter(|p| p.is_dir())
            .collect();
        if class_dirs.is_empty() {
            return Err(FolderError::NoClasses(dir));
        }
        let classes: Vec<String> = class_dirs
            .iter()
            .map(|p| {
                p.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        if let Some(expected) = expected_classes
            && expected != classes.as_slice()
        {
            return Err(FolderError::ClassMismatch {
                split: dir,
                expected: format!("{} classes", expected.len()),
                found: format!("{} classes", classes.len()),
            });
        }
        let mut samples = Vec::new();
        for (label, class_dir) in class_dirs.iter().enumerate() {
            for file in sorted_entries(class_dir)? {
                let is_image = file
                    .extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| EXTENSIONS.contains(&e));
                if is_image && file.is_file() {
                    samples.push((file, label));
                }
            }
        }
        if samples.is_empty() {
            return Err(FolderError::NoImages(dir));
        }
        Ok(Self { classes, samples })
    }

    /// The class of every sample, in order.
    pub fn labels(&self) -> Vec<usize> {
        self.samples.iter().map(|(_, label)| *label).collect()
    }

    /// Decodes sample `index` at its own size. A corrupt image is an error naming its path.
    pub fn load(&self, index: usize) -> Result<ClassificationItem, String> {
        let (path, label) = &self.samples[index];
        let image = crate::formats::decode_rgb(path).map_err(|e| e.to_string())?;
        Ok(ClassificationItem {
            pixels: crate::formats::unit_rgb_hwc(&image),
            size: [image.height() as usize, image.width() as usize],
            label: *label,
        })
    }
}

impl burn::data::dataset::Dataset<ClassificationItem> for ImageFolder {
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

    fn write_fixture(root: &Path) {
        for split in ["train", "val"] {
            for (class, shade) in [("n01440764", 40u8), ("n01443537", 200u8)] {
                let dir = root.join(split).join(class);
                std::fs::create_dir_all(&dir).unwrap();
                for i in 0..2u8 {
                    let img = image::RgbImage::from_pixel(
                        12 + i as u32,
                        10,
                        image::Rgb([shade, shade, shade]),
                    );
                    img.save(dir.join(format!("img{i}.jpg"))).unwrap();
                }
                std::fs::write(dir.join("notes.txt"), "not an image").unwrap();
            }
        }
    }

    #[test]
    fn labels_follow_sorted_folders_and_images_are_cropped() {
        let dir = tempfile::tempdir().unwrap();
        write_fixture(dir.path());
        let train = ImageFolder::scan(dir.path(), "train", None).unwrap();
        assert_eq!(train.classes, ["n01440764", "n01443537"]);
        assert_eq!(
            train.samples.iter().map(|s| s.1).collect::<Vec<_>>(),
            [0, 0, 1, 1]
        );
        let val = ImageFolder::scan(dir.path(), "val", Some(&train.classes)).unwrap();
        assert_eq!(val.load(3).unwrap().size, [10, 13]);
        let eval = crate::Augmented::new(val, crate::Pipeline::imagenet_eval(8), 0).unwrap();
        let item = burn::data::dataset::Dataset::get(&eval, 3).unwrap();
        assert_eq!(
            (item.size, item.label, item.pixels.len()),
            ([8, 8], 1, 8 * 8 * 3)
        );
        assert!(
            item.pixels
                .iter()
                .all(|&p| (p - 200.0 / 255.0).abs() < 0.05)
        );
    }

    #[test]
    fn malformed_folders_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let err = ImageFolder::scan(dir.path(), "train", None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("does not exist") && err.contains("train"),
            "{err}"
        );
        std::fs::create_dir_all(dir.path().join("train")).unwrap();
        assert!(
            ImageFolder::scan(dir.path(), "train", None)
                .unwrap_err()
                .to_string()
                .contains("no class folders")
        );
        std::fs::create_dir_all(dir.path().join("train/a")).unwrap();
        assert!(
            ImageFolder::scan(dir.path(), "train", None)
                .unwrap_err()
                .to_string()
                .contains("no images")
        );
        std::fs::write(dir.path().join("train/a/broken.jpg"), b"not a jpeg").unwrap();
        let folder = ImageFolder::scan(dir.path(), "train", None).unwrap();
        assert!(folder.load(0).unwrap_err().contains("broken.jpg"));
    }
}
