//! Readers for the on-disk formats of the real datasets the specs train and evaluate on
//! (`§7 Dataset formats` of every spec in `shared/specs/`).
//!
//! Each reader scans its index files eagerly (so a malformed list fails at once, naming the file and
//! line) and decodes images on demand through a `load(index)` method. Every failure is a
//! [`FormatError`] that names the file, the line where there is one, and what was expected.
//!
//! * [`imagenet`]: class-index files and CO2's semi-supervised subset lists (`co2-moco.md` §7).
//! * [`cifar`]: CIFAR-10 / CIFAR-100 binary batches.
//! * [`voc`]: PASCAL VOC 2012 XML annotations and the DeepLabv3 segmentation lists (`ws.md` §7).
//! * [`coco`]: COCO instances as multi-label targets (`elastic.md` §7) and COCO-format panoptic
//!   ground truth as the canonical panoptic map (`axial-deeplab.md` §7).
//! * [`sketch`]: SAKE's Sketchy / TU-Berlin lists and class masks (`sake.md` §7).
//! * [`occluded`]: CompNet's occluded PASCAL3D+ (`compnet.md` §7).
//! * [`coco_occluded`]: CompNet's occluded MS-COCO vehicles (`compnet.md` §7).

use std::path::{Path, PathBuf};

pub mod cifar;
pub mod coco;
pub mod coco_occluded;
pub mod imagenet;
pub mod occluded;
pub mod sketch;
pub mod voc;

/// What went wrong reading a dataset file; every message names the file and what was expected.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("{path} does not exist (expected {expected})")]
    Missing { path: PathBuf, expected: String },
    #[error("cannot read {path}: {reason}")]
    Unreadable { path: PathBuf, reason: String },
    #[error("{path}{}: expected {expected}, found {found}", line_suffix(.line))]
    Malformed {
        path: PathBuf,
        /// 1-based line number, where the format has lines.
        line: Option<usize>,
        expected: String,
        found: String,
    },
    #[error("cannot decode image {path}: {reason}")]
    Image { path: PathBuf, reason: String },
    #[error("index {index} is out of range for a dataset of {len} items")]
    Index { index: usize, len: usize },
}

fn line_suffix(line: &Option<usize>) -> String {
    line.map(|n| format!(", line {n}")).unwrap_or_default()
}

impl FormatError {
    fn malformed(
        path: &Path,
        line: Option<usize>,
        expected: impl Into<String>,
        found: impl Into<String>,
    ) -> Self {
        FormatError::Malformed {
            path: path.to_path_buf(),
            line,
            expected: expected.into(),
            found: found.into(),
        }
    }
}

/// Reads a whole file; a missing file is [`FormatError::Missing`] with `expected` saying what it holds.
fn read_bytes(path: &Path, expected: &str) -> Result<Vec<u8>, FormatError> {
    std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => FormatError::Missing {
            path: path.to_path_buf(),
            expected: expected.to_string(),
        },
        _ => FormatError::Unreadable {
            path: path.to_path_buf(),
            reason: e.to_string(),
        },
    })
}

/// Reads a UTF-8 text file (see [`read_bytes`]).
fn read_text(path: &Path, expected: &str) -> Result<String, FormatError> {
    let bytes = read_bytes(path, expected)?;
    String::from_utf8(bytes).map_err(|e| {
        FormatError::malformed(
            path,
            None,
            format!("UTF-8 text ({expected})"),
            e.to_string(),
        )
    })
}

/// The non-empty lines of a text file with their 1-based line numbers, trailing whitespace removed.
fn numbered_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_end()))
        .filter(|(_, l)| !l.trim().is_empty())
}

/// Decodes any image the `image` crate reads into 8-bit RGB; a corrupt or missing file is an error
/// naming it.
pub fn decode_rgb(path: &Path) -> Result<image::RgbImage, FormatError> {
    if !path.is_file() {
        return Err(FormatError::Missing {
            path: path.to_path_buf(),
            expected: "an image file".into(),
        });
    }
    image::open(path)
        .map(|i| i.to_rgb8())
        .map_err(|e| FormatError::Image {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
}

/// RGB in `[0, 1]`, row-major `[H, W, 3]`: the layout of [`crate::ClassificationItem::pixels`].
pub fn unit_rgb_hwc(image: &image::RgbImage) -> Vec<f32> {
    image.as_raw().iter().map(|&p| p as f32 / 255.0).collect()
}

fn checked_index<T>(items: &[T], index: usize) -> Result<&T, FormatError> {
    items.get(index).ok_or(FormatError::Index {
        index,
        len: items.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_message_names_path_line_and_expectation() {
        let e = FormatError::malformed(Path::new("/d/list.txt"), Some(3), "an int label", "`x`");
        assert_eq!(
            e.to_string(),
            "/d/list.txt, line 3: expected an int label, found `x`"
        );
        let e = FormatError::malformed(Path::new("/d/a.bin"), None, "records", "7 bytes");
        assert_eq!(e.to_string(), "/d/a.bin: expected records, found 7 bytes");
    }

    #[test]
    fn corrupt_and_missing_images_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.jpg");
        std::fs::write(&bad, b"not a jpeg").unwrap();
        let err = decode_rgb(&bad).unwrap_err().to_string();
        assert!(
            err.contains("bad.jpg") && err.contains("cannot decode"),
            "{err}"
        );
        let err = decode_rgb(&dir.path().join("gone.png"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("gone.png") && err.contains("does not exist"),
            "{err}"
        );
    }
}
