//! CIFAR-10 / CIFAR-100 binary versions (the "for C programs" archives; the class-count datasets that
//! the ResNet / WS / BCN specs list as small-scale checks, `resnet-family.md` §7).
//!
//! * CIFAR-10, `cifar-10-batches-bin/`: `data_batch_1..5.bin` (train), `test_batch.bin`; a record is
//!   1 label byte + 3072 pixel bytes (1024 R, 1024 G, 1024 B, each row-major 32×32); class names one a
//!   line in `batches.meta.txt`.
//! * CIFAR-100, `cifar-100-binary/`: `train.bin`, `test.bin`; a record is coarse byte + fine byte +
//!   3072; names in `fine_label_names.txt` / `coarse_label_names.txt`.

use std::path::Path;

use super::{FormatError, checked_index, numbered_lines, read_bytes, read_text, unit_rgb_hwc};
use crate::ClassificationItem;

const SIDE: usize = 32;
const PIXELS: usize = 3 * SIDE * SIDE;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CifarSplit {
    Train,
    Test,
}

/// Which archive: its folder, files, label bytes and class counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CifarVersion {
    Cifar10,
    Cifar100,
}

impl CifarVersion {
    fn folder(self) -> &'static str {
        match self {
            CifarVersion::Cifar10 => "cifar-10-batches-bin",
            CifarVersion::Cifar100 => "cifar-100-binary",
        }
    }

    fn files(self, split: CifarSplit) -> Vec<String> {
        match (self, split) {
            (CifarVersion::Cifar10, CifarSplit::Train) => {
                (1..=5).map(|k| format!("data_batch_{k}.bin")).collect()
            }
            (CifarVersion::Cifar10, CifarSplit::Test) => vec!["test_batch.bin".into()],
            (CifarVersion::Cifar100, CifarSplit::Train) => vec!["train.bin".into()],
            (CifarVersion::Cifar100, CifarSplit::Test) => vec!["test.bin".into()],
        }
    }

    /// Label bytes before the pixels: fine only (10) or coarse then fine (100).
    fn label_bytes(self) -> usize {
        match self {
            CifarVersion::Cifar10 => 1,
            CifarVersion::Cifar100 => 2,
        }
    }

    /// Bytes per record: label bytes + 3072 pixel bytes.
    pub fn record_size(self) -> usize {
        self.label_bytes() + PIXELS
    }

    fn num_classes(self) -> usize {
        match self {
            CifarVersion::Cifar10 => 10,
            CifarVersion::Cifar100 => 100,
        }
    }
}

/// One split held in memory (CIFAR is 180 MB at most), pixels kept planar as stored.
#[derive(Clone, Debug)]
pub struct Cifar {
    pub version: CifarVersion,
    pub classes: Vec<String>,
    /// CIFAR-100's 20 superclass names; empty for CIFAR-10.
    pub coarse_classes: Vec<String>,
    pub labels: Vec<usize>,
    /// CIFAR-100's superclass per record; empty for CIFAR-10.
    pub coarse_labels: Vec<usize>,
    planes: Vec<u8>,
}

/// Class names one a line; blank lines (the meta files end with some) are skipped.
fn read_label_names(path: &Path, count: usize) -> Result<Vec<String>, FormatError> {
    let text = read_text(path, &format!("{count} class names, one a line"))?;
    let names: Vec<String> = numbered_lines(&text)
        .map(|(_, l)| l.trim().to_string())
        .collect();
    if names.len() != count {
        return Err(FormatError::malformed(
            path,
            None,
            format!("{count} class names"),
            format!("{} names", names.len()),
        ));
    }
    Ok(names)
}

/// Checks a label byte of record `record` against the class count.
fn checked_label(
    path: &Path,
    record: usize,
    kind: &str,
    value: u8,
    count: usize,
) -> Result<usize, FormatError> {
    match (value as usize) < count {
        true => Ok(value as usize),
        false => Err(FormatError::malformed(
            path,
            None,
            format!("{kind} labels below {count}"),
            format!("{kind} label {value} in record {record}"),
        )),
    }
}

impl Cifar {
    /// Reads `root/<cifar-10-batches-bin | cifar-100-binary>/`.
    pub fn read(
        root: &Path,
        version: CifarVersion,
        split: CifarSplit,
    ) -> Result<Self, FormatError> {
        let dir = root.join(version.folder());
        let (classes, coarse_classes) = match version {
            CifarVersion::Cifar10 => (read_label_names(&dir.join("batches.meta.txt"), 10)?, vec![]),
            CifarVersion::Cifar100 => (
                read_label_names(&dir.join("fine_label_names.txt"), 100)?,
                read_label_names(&dir.join("coarse_label_names.txt"), 20)?,
            ),
        };
        let mut cifar = Self {
            version,
            classes,
            coarse_classes,
            labels: vec![],
            coarse_labels: vec![],
            planes: vec![],
        };
        for file in version.files(split) {
            cifar.read_batch(&dir.join(file))?;
        }
        Ok(cifar)
    }

    /// Appends the records of one batch file.
    fn read_batch(&mut self, path: &Path) -> Result<(), FormatError> {
        let record_size = self.version.record_size();
        let bytes = read_bytes(
            path,
            &format!("{:?} records of {record_size} bytes", self.version),
        )?;
        if bytes.is_empty() || bytes.len() % record_size != 0 {
            return Err(FormatError::malformed(
                path,
                None,
                format!("a positive multiple of the {record_size}-byte record size"),
                format!("{} bytes", bytes.len()),
            ));
        }
        for (record, chunk) in bytes.chunks_exact(record_size).enumerate() {
            let fine = chunk[self.version.label_bytes() - 1];
            self.labels.push(checked_label(
                path,
                record,
                "fine",
                fine,
                self.version.num_classes(),
            )?);
            if self.version == CifarVersion::Cifar100 {
                self.coarse_labels
                    .push(checked_label(path, record, "coarse", chunk[0], 20)?);
            }
            self.planes
                .extend_from_slice(&chunk[self.version.label_bytes()..]);
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Record `index` as a 32×32 RGB image (planes interleaved).
    pub fn image(&self, index: usize) -> Result<image::RgbImage, FormatError> {
        checked_index(&self.labels, index)?;
        let planes = &self.planes[index * PIXELS..(index + 1) * PIXELS];
        let plane = SIDE * SIDE;
        let interleaved = (0..plane)
            .flat_map(|p| [planes[p], planes[plane + p], planes[2 * plane + p]])
            .collect();
        image::RgbImage::from_raw(SIDE as u32, SIDE as u32, interleaved).ok_or(FormatError::Index {
            index,
            len: self.len(),
        })
    }

    /// Record `index` with its (fine) label, RGB in `[0, 1]` HWC.
    pub fn load(&self, index: usize) -> Result<ClassificationItem, FormatError> {
        let image = self.image(index)?;
        Ok(ClassificationItem {
            pixels: unit_rgb_hwc(&image),
            size: [SIDE, SIDE],
            label: self.labels[index],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record whose R plane is `r`, G is the pixel's row, B its column.
    fn record(labels: &[u8], r: u8) -> Vec<u8> {
        let mut bytes = labels.to_vec();
        bytes.extend(std::iter::repeat_n(r, SIDE * SIDE));
        bytes.extend((0..SIDE * SIDE).map(|p| (p / SIDE) as u8));
        bytes.extend((0..SIDE * SIDE).map(|p| (p % SIDE) as u8));
        bytes
    }

    fn write_names(path: &Path, prefix: &str, count: usize) {
        let names: String = (0..count).map(|i| format!("{prefix}{i}\n")).collect();
        std::fs::write(path, names + "\n").unwrap();
    }

    fn write_cifar10(root: &Path) -> std::path::PathBuf {
        let dir = root.join("cifar-10-batches-bin");
        std::fs::create_dir_all(&dir).unwrap();
        write_names(&dir.join("batches.meta.txt"), "class", 10);
        for k in 1..=5u8 {
            let bytes = [record(&[k], 10 * k), record(&[9], 7)].concat();
            std::fs::write(dir.join(format!("data_batch_{k}.bin")), bytes).unwrap();
        }
        std::fs::write(dir.join("test_batch.bin"), record(&[3], 99)).unwrap();
        dir
    }

    #[test]
    fn cifar10_records_are_decoded_planar_to_rgb() {
        let dir = tempfile::tempdir().unwrap();
        write_cifar10(dir.path());
        let train = Cifar::read(dir.path(), CifarVersion::Cifar10, CifarSplit::Train).unwrap();
        assert_eq!(train.len(), 10);
        assert_eq!(train.labels, [1, 9, 2, 9, 3, 9, 4, 9, 5, 9]);
        assert_eq!(train.classes[9], "class9");
        let image = train.image(2).unwrap();
        assert_eq!(image.get_pixel(5, 3).0, [20, 3, 5]);
        let test = Cifar::read(dir.path(), CifarVersion::Cifar10, CifarSplit::Test).unwrap();
        let item = test.load(0).unwrap();
        assert_eq!((item.label, item.size), (3, [32, 32]));
        // pixel (row 1, col 2): R 99, G = row 1, B = col 2
        let p = (SIDE + 2) * 3;
        assert_eq!(
            &item.pixels[p..p + 3],
            &[99.0 / 255.0, 1.0 / 255.0, 2.0 / 255.0]
        );
    }

    #[test]
    fn cifar100_reads_coarse_and_fine_labels() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("cifar-100-binary");
        std::fs::create_dir_all(&data).unwrap();
        write_names(&data.join("fine_label_names.txt"), "fine", 100);
        write_names(&data.join("coarse_label_names.txt"), "coarse", 20);
        let bytes = [record(&[19, 99], 1), record(&[0, 42], 2)].concat();
        std::fs::write(data.join("test.bin"), bytes).unwrap();
        let test = Cifar::read(dir.path(), CifarVersion::Cifar100, CifarSplit::Test).unwrap();
        assert_eq!(
            (test.labels.clone(), test.coarse_labels.clone()),
            (vec![99, 42], vec![19, 0])
        );
        assert_eq!(test.coarse_classes[19], "coarse19");
        assert_eq!(test.image(1).unwrap().get_pixel(0, 0).0, [2, 0, 0]);
    }

    #[test]
    fn truncated_files_and_bad_labels_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let data = write_cifar10(dir.path());
        let mut bytes = record(&[1], 0);
        bytes.pop();
        std::fs::write(data.join("test_batch.bin"), &bytes).unwrap();
        let err = Cifar::read(dir.path(), CifarVersion::Cifar10, CifarSplit::Test)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("test_batch.bin")
                && err.contains("3073-byte record")
                && err.contains("3072 bytes"),
            "{err}"
        );
        std::fs::write(
            data.join("test_batch.bin"),
            [record(&[1], 0), record(&[12], 0)].concat(),
        )
        .unwrap();
        let err = Cifar::read(dir.path(), CifarVersion::Cifar10, CifarSplit::Test)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("test_batch.bin")
                && err.contains("below 10")
                && err.contains("label 12 in record 1"),
            "{err}"
        );
        std::fs::remove_file(data.join("data_batch_4.bin")).unwrap();
        let err = Cifar::read(dir.path(), CifarVersion::Cifar10, CifarSplit::Train)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("data_batch_4.bin") && err.contains("does not exist"),
            "{err}"
        );
        write_names(&data.join("batches.meta.txt"), "c", 9);
        let err = Cifar::read(dir.path(), CifarVersion::Cifar10, CifarSplit::Test)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("batches.meta.txt") && err.contains("10 class names"),
            "{err}"
        );
    }
}
