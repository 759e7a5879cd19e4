//! PASCAL VOC 2012 (`co2-moco.md` §7, `ws.md` §7, `elastic.md` §7), relative to `VOCdevkit/VOC2012/`:
//!
//! * classification / detection: ids from `ImageSets/Main/<split>.txt`, objects from
//!   `Annotations/<id>.xml` (`object/name`, `difficult`, `bndbox/{xmin,ymin,xmax,ymax}` 1-based),
//!   images `JPEGImages/<id>.jpg`; multi-label targets over the 20 object classes (background
//!   excluded) in [`VOC_CLASSES`] order.
//! * segmentation (DeepLabv3.pytorch `pascal.py`): `list/train_aug.txt`, `list/val.txt`, each line
//!   `/JPEGImages/x.jpg /SegmentationClassAug/x.png`, the root and the slash-prefixed string
//!   concatenated. Labels are single-channel indices 0–20 (background = 0) and 255 (ignore); a palette
//!   PNG is read as its raw indices through the `png` crate, because the `image` crate expands
//!   palettes to RGB.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use super::{FormatError, checked_index, decode_rgb, numbered_lines, read_bytes, read_text};

/// The 20 object classes as named in the XML files, in the order of `ws.md` §7 without background;
/// index `i` here is segmentation class `i + 1`.
pub const VOC_CLASSES: [&str; 20] = [
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
];

/// The label value of pixels excluded from the loss (object boundaries).
pub const VOC_IGNORE: u8 = 255;

/// One `<object>`: class index into [`VOC_CLASSES`], the 1-based pixel box as written.
#[derive(Clone, Debug, PartialEq)]
pub struct VocObject {
    pub class: usize,
    pub difficult: bool,
    /// `[xmin, ymin, xmax, ymax]`, 1-based inclusive as in the XML.
    pub bbox: [f32; 4],
}

#[derive(Clone, Debug, PartialEq)]
pub struct VocAnnotation {
    pub id: String,
    pub objects: Vec<VocObject>,
}

/// Per-class multi-label target: `present` if any object of the class is annotated (difficult ones
/// included), `difficult` if every such object is difficult, so evaluation can ignore the class there.
#[derive(Clone, Debug, PartialEq)]
pub struct VocLabels {
    pub present: [bool; 20],
    pub difficult: [bool; 20],
}

impl VocAnnotation {
    /// The image's multi-label target over [`VOC_CLASSES`].
    pub fn multi_label(&self) -> VocLabels {
        let mut present = [false; 20];
        let mut any_easy = [false; 20];
        for object in &self.objects {
            present[object.class] = true;
            any_easy[object.class] |= !object.difficult;
        }
        VocLabels {
            present,
            difficult: std::array::from_fn(|c| present[c] && !any_easy[c]),
        }
    }
}

/// The text of the child element `name` of `node`, if any.
fn child_text<'a>(node: roxmltree::Node<'a, 'a>, name: &str) -> Option<&'a str> {
    node.children()
        .find(|c| c.has_tag_name(name))
        .and_then(|c| c.text())
        .map(str::trim)
}

/// Parses `Annotations/<id>.xml`; an unknown class or a malformed box is an error naming the file.
pub fn read_annotation(path: &Path) -> Result<VocAnnotation, FormatError> {
    let text = read_text(path, "a VOC annotation XML")?;
    let doc = roxmltree::Document::parse(&text).map_err(|e| {
        FormatError::malformed(
            path,
            Some(e.pos().row as usize),
            "well-formed VOC XML",
            e.to_string(),
        )
    })?;
    let line_of = |node: roxmltree::Node| Some(doc.text_pos_at(node.range().start).row as usize);
    let id = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut objects = Vec::new();
    for object in doc
        .root_element()
        .children()
        .filter(|n| n.has_tag_name("object"))
    {
        let name = child_text(object, "name").unwrap_or("");
        let class = VOC_CLASSES.iter().position(|c| *c == name).ok_or_else(|| {
            FormatError::malformed(
                path,
                line_of(object),
                "an object name among the 20 VOC classes",
                format!("`{name}`"),
            )
        })?;
        let difficult = match child_text(object, "difficult") {
            None | Some("0") => false,
            Some("1") => true,
            Some(other) => {
                return Err(FormatError::malformed(
                    path,
                    line_of(object),
                    "<difficult> 0 or 1",
                    format!("`{other}`"),
                ));
            }
        };
        let bndbox = object.children().find(|c| c.has_tag_name("bndbox"));
        let mut bbox = [0.0; 4];
        for (slot, key) in bbox.iter_mut().zip(["xmin", "ymin", "xmax", "ymax"]) {
            let value = bndbox.and_then(|b| child_text(b, key));
            *slot = value.and_then(|v| v.parse().ok()).ok_or_else(|| {
                FormatError::malformed(
                    path,
                    line_of(object),
                    format!("a number in bndbox/{key}"),
                    format!("{value:?}"),
                )
            })?;
        }
        objects.push(VocObject {
            class,
            difficult,
            bbox,
        });
    }
    Ok(VocAnnotation { id, objects })
}

/// A split of `ImageSets/Main/<split>.txt` with every annotation parsed.
#[derive(Clone, Debug)]
pub struct VocDetection {
    pub root: PathBuf,
    pub annotations: Vec<VocAnnotation>,
}

impl VocDetection {
    /// `voc_root` is `VOCdevkit/VOC2012` (or `VOC2007`).
    pub fn read(voc_root: &Path, split: &str) -> Result<Self, FormatError> {
        let list = voc_root.join("ImageSets/Main").join(format!("{split}.txt"));
        let text = read_text(&list, "one image id per line")?;
        let annotations = numbered_lines(&text)
            .map(|(line, id)| {
                let xml = voc_root
                    .join("Annotations")
                    .join(format!("{}.xml", id.trim()));
                if !xml.is_file() {
                    // The list names an image without annotation: say where it was listed.
                    return Err(FormatError::malformed(
                        &list,
                        Some(line),
                        format!("an id with an annotation {}", xml.display()),
                        "no such file",
                    ));
                }
                read_annotation(&xml)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            root: voc_root.to_path_buf(),
            annotations,
        })
    }

    pub fn len(&self) -> usize {
        self.annotations.len()
    }

    pub fn is_empty(&self) -> bool {
        self.annotations.is_empty()
    }

    /// `JPEGImages/<id>.jpg` of item `index`.
    pub fn load(&self, index: usize) -> Result<image::RgbImage, FormatError> {
        let annotation = checked_index(&self.annotations, index)?;
        decode_rgb(
            &self
                .root
                .join("JPEGImages")
                .join(format!("{}.jpg", annotation.id)),
        )
    }
}

/// Decodes a label PNG to its raw single-channel values: palette indices for an indexed PNG (no
/// palette expansion), grey levels for a greyscale one. Returns `(width, height, values)`.
pub fn read_index_png(path: &Path) -> Result<(u32, u32, Vec<u8>), FormatError> {
    let bytes = read_bytes(path, "a single-channel label PNG")?;
    let image_error = |e: png::DecodingError| FormatError::Image {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let mut decoder = png::Decoder::new(Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::IDENTITY);
    let mut reader = decoder.read_info().map_err(image_error)?;
    let (color, depth) = reader.output_color_type();
    if !matches!(color, png::ColorType::Indexed | png::ColorType::Grayscale)
        || depth != png::BitDepth::Eight
    {
        return Err(FormatError::malformed(
            path,
            None,
            "an 8-bit palette or greyscale PNG",
            format!("{color:?} at {depth:?} bits"),
        ));
    }
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| FormatError::Image {
            path: path.to_path_buf(),
            reason: "image too large".into(),
        })?;
    let mut values = vec![0; size];
    let info = reader.next_frame(&mut values).map_err(image_error)?;
    values.truncate(info.buffer_size());
    Ok((info.width, info.height, values))
}

/// Checks every label value is a class 0–20 or [`VOC_IGNORE`].
fn checked_voc_labels(path: &Path, width: u32, values: &[u8]) -> Result<(), FormatError> {
    match values
        .iter()
        .position(|&v| v > VOC_CLASSES.len() as u8 && v != VOC_IGNORE)
    {
        None => Ok(()),
        Some(p) => Err(FormatError::malformed(
            path,
            None,
            "label values 0–20 or 255",
            format!(
                "value {} at row {}, column {}",
                values[p],
                p / width as usize,
                p % width as usize
            ),
        )),
    }
}

/// One image with its per-pixel class indices, row-major `[H, W]`.
#[derive(Clone, Debug, PartialEq)]
pub struct SegmentationItem {
    pub image: image::RgbImage,
    pub label: Vec<u8>,
}

/// A DeepLabv3 list: `(image, label)` path pairs.
#[derive(Clone, Debug)]
pub struct VocSegmentation {
    pub pairs: Vec<(PathBuf, PathBuf)>,
}

/// `root` followed by the slash-prefixed list entry, as `pascal.py` concatenates them.
fn concatenated_path(root: &Path, entry: &str) -> PathBuf {
    PathBuf::from(format!("{}{entry}", root.display()))
}

impl VocSegmentation {
    /// Reads `voc_root/list/<list>.txt` (`train_aug` or `val`).
    pub fn read(voc_root: &Path, list: &str) -> Result<Self, FormatError> {
        let path = voc_root.join("list").join(format!("{list}.txt"));
        let text = read_text(
            &path,
            "lines `/JPEGImages/<id>.jpg /SegmentationClassAug/<id>.png`",
        )?;
        let mut pairs = Vec::new();
        for (line, content) in numbered_lines(&text) {
            let tokens: Vec<&str> = content.split_whitespace().collect();
            match tokens[..] {
                [image, label] if image.starts_with('/') && label.starts_with('/') => pairs.push((
                    concatenated_path(voc_root, image),
                    concatenated_path(voc_root, label),
                )),
                _ => {
                    return Err(FormatError::malformed(
                        &path,
                        Some(line),
                        "two slash-prefixed paths `/JPEGImages/<id>.jpg /SegmentationClassAug/<id>.png`",
                        format!("`{content}`"),
                    ));
                }
            }
        }
        Ok(Self { pairs })
    }

    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Decodes pair `index`; the label must match the image's size and hold only 0–20 and 255.
    pub fn load(&self, index: usize) -> Result<SegmentationItem, FormatError> {
        let (image_path, label_path) = checked_index(&self.pairs, index)?;
        let image = decode_rgb(image_path)?;
        let (width, height, label) = read_index_png(label_path)?;
        if (width, height) != image.dimensions() {
            return Err(FormatError::malformed(
                label_path,
                None,
                format!(
                    "the size {}×{} of {}",
                    image.width(),
                    image.height(),
                    image_path.display()
                ),
                format!("{width}×{height}"),
            ));
        }
        checked_voc_labels(label_path, width, &label)?;
        Ok(SegmentationItem { image, label })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANNOTATION: &str = r#"<annotation>
  <filename>2007_000032.jpg</filename>
  <object>
    <name>aeroplane</name>
    <difficult>0</difficult>
    <bndbox><xmin>104</xmin><ymin>78</ymin><xmax>375</xmax><ymax>183</ymax></bndbox>
  </object>
  <object>
    <name>person</name>
    <difficult>1</difficult>
    <bndbox><xmin>195</xmin><ymin>180</ymin><xmax>213</xmax><ymax>229</ymax></bndbox>
  </object>
  <object>
    <name>aeroplane</name>
    <difficult>1</difficult>
    <bndbox><xmin>133</xmin><ymin>88</ymin><xmax>197.5</xmax><ymax>123</ymax></bndbox>
  </object>
</annotation>
"#;

    fn write_detection(root: &Path) {
        for dir in ["Annotations", "ImageSets/Main", "JPEGImages"] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
        }
        std::fs::write(root.join("Annotations/2007_000032.xml"), ANNOTATION).unwrap();
        std::fs::write(root.join("ImageSets/Main/train.txt"), "2007_000032\n").unwrap();
        image::RgbImage::from_pixel(8, 6, image::Rgb([250, 10, 10]))
            .save(root.join("JPEGImages/2007_000032.jpg"))
            .unwrap();
    }

    #[test]
    fn annotations_give_boxes_and_multi_labels_with_difficult_flags() {
        let dir = tempfile::tempdir().unwrap();
        write_detection(dir.path());
        let voc = VocDetection::read(dir.path(), "train").unwrap();
        let a = &voc.annotations[0];
        assert_eq!(a.id, "2007_000032");
        assert_eq!(a.objects.len(), 3);
        assert_eq!(a.objects[0].bbox, [104.0, 78.0, 375.0, 183.0]);
        assert_eq!(a.objects[2].bbox[2], 197.5);
        assert_eq!((a.objects[1].class, a.objects[1].difficult), (14, true));
        let labels = a.multi_label();
        let present: Vec<usize> = (0..20).filter(|&c| labels.present[c]).collect();
        let difficult: Vec<usize> = (0..20).filter(|&c| labels.difficult[c]).collect();
        // aeroplane has an easy object, person only a difficult one
        assert_eq!((present, difficult), (vec![0, 14], vec![14]));
        assert_eq!(voc.load(0).unwrap().dimensions(), (8, 6));
    }

    #[test]
    fn unknown_class_and_bad_box_name_the_xml() {
        let dir = tempfile::tempdir().unwrap();
        write_detection(dir.path());
        let path = dir.path().join("Annotations/2007_000032.xml");
        std::fs::write(
            &path,
            ANNOTATION.replace("<name>person</name>", "<name>unicorn</name>"),
        )
        .unwrap();
        let err = VocDetection::read(dir.path(), "train")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("2007_000032.xml, line 8")
                && err.contains("20 VOC classes")
                && err.contains("unicorn"),
            "{err}"
        );
        std::fs::write(&path, ANNOTATION.replace("<ymax>183</ymax>", "")).unwrap();
        let err = read_annotation(&path).unwrap_err().to_string();
        assert!(
            err.contains("line 3") && err.contains("bndbox/ymax"),
            "{err}"
        );
        std::fs::write(&path, "<annotation><object>").unwrap();
        let err = read_annotation(&path).unwrap_err().to_string();
        assert!(
            err.contains("2007_000032.xml") && err.contains("well-formed"),
            "{err}"
        );
    }

    /// A palette PNG whose indices are `values` (palette entries deliberately unlike the indices).
    fn write_palette_png(path: &Path, width: u32, height: u32, values: &[u8]) {
        let file = std::fs::File::create(path).unwrap();
        let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), width, height);
        encoder.set_color(png::ColorType::Indexed);
        encoder.set_depth(png::BitDepth::Eight);
        encoder.set_palette(
            (0..=255u8)
                .flat_map(|i| [i / 2, 128, 255 - i])
                .collect::<Vec<_>>(),
        );
        let mut writer = encoder.write_header().unwrap();
        writer.write_image_data(values).unwrap();
    }

    /// `ws.md` §7 fixture: a 5×7 JPEG, a 5×7 label PNG with {0, 15, 255}, both lists with one line.
    fn write_segmentation(root: &Path, values: &[u8]) {
        for dir in ["JPEGImages", "SegmentationClassAug", "list"] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
        }
        image::RgbImage::from_pixel(5, 7, image::Rgb([30, 60, 90]))
            .save(root.join("JPEGImages/2007_000032.jpg"))
            .unwrap();
        write_palette_png(
            &root.join("SegmentationClassAug/2007_000032.png"),
            5,
            7,
            values,
        );
        let line = "/JPEGImages/2007_000032.jpg /SegmentationClassAug/2007_000032.png\n";
        std::fs::write(root.join("list/train_aug.txt"), line).unwrap();
        std::fs::write(root.join("list/val.txt"), line).unwrap();
    }

    fn fixture_values() -> Vec<u8> {
        (0..35).map(|p| [0, 15, 255][p % 3]).collect()
    }

    #[test]
    fn segmentation_lists_give_raw_palette_indices() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("VOC2012");
        write_segmentation(&root, &fixture_values());
        for list in ["train_aug", "val"] {
            let voc = VocSegmentation::read(&root, list).unwrap();
            assert_eq!(voc.len(), 1);
            assert_eq!(
                voc.pairs[0].1,
                PathBuf::from(format!(
                    "{}/SegmentationClassAug/2007_000032.png",
                    root.display()
                ))
            );
            let item = voc.load(0).unwrap();
            assert_eq!(item.image.dimensions(), (5, 7));
            assert_eq!(item.label, fixture_values());
        }
        // A greyscale label PNG (the SBD "Aug" files) reads the same.
        let grey = image::GrayImage::from_raw(5, 7, fixture_values()).unwrap();
        grey.save(root.join("SegmentationClassAug/2007_000032.png"))
            .unwrap();
        let voc = VocSegmentation::read(&root, "val").unwrap();
        assert_eq!(voc.load(0).unwrap().label, fixture_values());
    }

    #[test]
    fn bad_values_sizes_and_lines_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("VOC2012");
        let mut values = fixture_values();
        values[7] = 37;
        write_segmentation(&root, &values);
        let voc = VocSegmentation::read(&root, "val").unwrap();
        let err = voc.load(0).unwrap_err().to_string();
        assert!(
            err.contains("2007_000032.png")
                && err.contains("0–20 or 255")
                && err.contains("value 37 at row 1, column 2"),
            "{err}"
        );
        write_palette_png(
            &root.join("SegmentationClassAug/2007_000032.png"),
            7,
            5,
            &fixture_values(),
        );
        let err = voc.load(0).unwrap_err().to_string();
        assert!(
            err.contains("size 5×7") && err.contains("found 7×5"),
            "{err}"
        );
        std::fs::write(
            root.join("SegmentationClassAug/2007_000032.png"),
            b"garbage",
        )
        .unwrap();
        let err = voc.load(0).unwrap_err().to_string();
        assert!(err.contains("2007_000032.png"), "{err}");
        std::fs::write(root.join("list/val.txt"), "/JPEGImages/a.jpg /SegmentationClassAug/a.png\nJPEGImages/b.jpg SegmentationClassAug/b.png\n").unwrap();
        let err = VocSegmentation::read(&root, "val").unwrap_err().to_string();
        assert!(
            err.contains("val.txt, line 2") && err.contains("slash-prefixed"),
            "{err}"
        );
    }
}
