//! Every real-format reader on random, truncated and bit-flipped bytes (faults issue): none may
//! panic, and every error names the file it could not read. Bounded and seeded (`CASES` inputs per
//! reader, the same every run), so it runs in CI; set `VIREO_FUZZ_CASES` to run more.

use std::{
    fs,
    panic::{AssertUnwindSafe, catch_unwind},
    path::Path,
};

use datasets::formats::{
    FormatError, cifar, coco,
    coco_occluded::OccludedCoco,
    imagenet::{ClassIndex, SemiSupervisedSubset},
    occluded::OccludedPascal3d,
    sketch::{CidMask, SketchDataset, SketchList, SketchSplit, read_class_ids},
    voc,
};
use rand::{RngExt, SeedableRng, rngs::Xoshiro256PlusPlus};

fn cases() -> usize {
    std::env::var("VIREO_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(48)
}

/// The ways a file goes bad: cut short, bits flipped, bytes inserted, noise of the right length,
/// nothing at all.
fn mutate(seed: &[u8], rng: &mut Xoshiro256PlusPlus) -> Vec<u8> {
    let mut bytes = seed.to_vec();
    match rng.random_range(0..5) {
        0 => bytes.truncate(rng.random_range(0..=seed.len())),
        1 => {
            for _ in 0..rng.random_range(1..8) {
                if !bytes.is_empty() {
                    let i = rng.random_range(0..bytes.len());
                    bytes[i] ^= 1 << rng.random_range(0..8);
                }
            }
        }
        2 => {
            let at = rng.random_range(0..=bytes.len());
            let junk: Vec<u8> = (0..rng.random_range(1..64)).map(|_| rng.random()).collect();
            bytes.splice(at..at, junk);
        }
        3 => bytes = (0..seed.len()).map(|_| rng.random()).collect(),
        _ => bytes.clear(),
    }
    bytes
}

/// Writes mutations of `seed` to `path` and calls `read` on each: no panic; an error names `path`.
fn fuzz<T>(name: &str, path: &Path, seed: &[u8], read: impl Fn() -> Result<T, FormatError>) {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(name.len() as u64 * 7919);
    fs::write(path, seed).unwrap();
    assert!(read().is_ok(), "{name}: the seed itself must read");
    let file_name = path.file_name().unwrap().to_string_lossy().into_owned();
    for case in 0..cases() {
        let bytes = mutate(seed, &mut rng);
        fs::write(path, &bytes).unwrap();
        match catch_unwind(AssertUnwindSafe(&read)) {
            Err(_) => panic!(
                "{name}: case {case} panicked on {} bytes: {bytes:?}",
                bytes.len()
            ),
            Ok(Err(e)) => assert!(
                e.to_string().contains(&file_name),
                "{name}: case {case}: the error does not name {file_name}: {e}"
            ),
            Ok(Ok(_)) => {}
        }
    }
}

fn png(w: u32, h: u32, f: impl Fn(u32, u32) -> [u8; 3]) -> Vec<u8> {
    let image = image::RgbImage::from_fn(w, h, |x, y| image::Rgb(f(x, y)));
    let mut out = std::io::Cursor::new(Vec::new());
    image.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

#[test]
fn text_and_list_readers_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let index = dir.path().join("classes.txt");
    fuzz(
        "class index",
        &index,
        b"n01440764 tench, Tinca tinca\nn01443537 goldfish\n",
        || ClassIndex::read(&index),
    );
    let classes = ClassIndex::from_wnids(vec!["n01440764".into(), "n01443537".into()]);
    for file in [
        "n01440764/n01440764_10026.JPEG",
        "n01443537/n01443537_10007.JPEG",
    ] {
        let path = dir.path().join("train").join(file);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, b"an image").unwrap();
    }
    let list = dir.path().join("1percent.txt");
    fuzz(
        "subset list",
        &list,
        b"n01440764_10026.JPEG\nn01443537_10007.JPEG\n",
        || SemiSupervisedSubset::read(&list, dir.path(), &classes),
    );
    let ids = dir.path().join("cname_cid.txt");
    fuzz("class ids", &ids, b"airplane 0\nalarm clock 1\n", || {
        read_class_ids(&ids)
    });
    // Sketchy's zero-shot lists: the class ids, then a file list against them.
    let zeroshot = dir.path().join("Sketchy/zeroshot1");
    fs::create_dir_all(&zeroshot).unwrap();
    fs::write(
        zeroshot.join("cname_cid.txt"),
        "airplane 0\nalarm clock 1\n",
    )
    .unwrap();
    let sketches = zeroshot.join("all_photo_filelist_train.txt");
    fuzz(
        "sketch list",
        &sketches,
        b"photo/airplane/n02691156_58.jpg 0\nphoto/alarm clock/n02694662_92.jpg 1\n",
        || {
            SketchList::read(
                dir.path(),
                SketchDataset::Sketchy,
                "all_photo",
                SketchSplit::Train,
            )
        },
    );
    // VOC: the segmentation pair list and a detection split with its XML.
    let voc_root = dir.path().join("voc");
    fs::create_dir_all(voc_root.join("list")).unwrap();
    let pairs = voc_root.join("list/val.txt");
    fuzz(
        "voc segmentation list",
        &pairs,
        b"/JPEGImages/2007_000032.jpg /SegmentationClassAug/2007_000032.png\n",
        || voc::VocSegmentation::read(&voc_root, "val"),
    );
    fs::create_dir_all(voc_root.join("ImageSets/Main")).unwrap();
    fs::create_dir_all(voc_root.join("Annotations")).unwrap();
    fs::write(
        voc_root.join("Annotations/2007_000027.xml"),
        "<annotation><object><name>person</name><difficult>0</difficult><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax><ymax>5</ymax></bndbox></object></annotation>",
    )
    .unwrap();
    let split = voc_root.join("ImageSets/Main/val.txt");
    fuzz("voc split", &split, b"2007_000027\n", || {
        voc::VocDetection::read(&voc_root, "val")
    });
    // CompNet's occluded PASCAL3D+ and MS-COCO vehicle lists.
    let pascal = dir.path().join("occluded");
    let image = pascal.join("TRAINING_DATA/car_imagenet/n02814533_1234.JPEG");
    fs::create_dir_all(image.parent().unwrap()).unwrap();
    fs::write(&image, b"an image").unwrap();
    let list = pascal.join("car_imagenet_train.txt");
    fuzz("occluded pascal3d list", &list, b"n02814533_1234\n", || {
        OccludedPascal3d::train(&pascal, &["car"])
    });
    let coco_root = dir.path().join("coco_occ");
    let (list, images) = datasets::formats::coco_occluded::coco_occluded_paths(
        &coco_root,
        "car",
        datasets::formats::occluded::OcclusionLevel::Zero,
        true,
    );
    fs::create_dir_all(&images).unwrap();
    fs::create_dir_all(list.parent().unwrap()).unwrap();
    fs::write(images.join("car_000001.jpg"), b"an image").unwrap();
    fuzz("occluded coco list", &list, b"car_000001\n", || {
        OccludedCoco::train(&coco_root, &["car"])
    });
    let meta = dir.path().join("cifar-10-batches-bin");
    fs::create_dir_all(&meta).unwrap();
    let names: String = (0..10).map(|k| format!("class{k}\n")).collect();
    fs::write(meta.join("test_batch.bin"), vec![3u8; 2 * 3073]).unwrap();
    let names_path = meta.join("batches.meta.txt");
    fuzz("cifar names", &names_path, names.as_bytes(), || {
        cifar::Cifar::read(
            dir.path(),
            cifar::CifarVersion::Cifar10,
            cifar::CifarSplit::Test,
        )
    });
}

#[test]
fn binary_readers_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    // CIFAR-10: records of one label byte and 3072 pixels.
    let root = dir.path().join("cifar");
    let folder = root.join("cifar-10-batches-bin");
    fs::create_dir_all(&folder).unwrap();
    let names: String = (0..10).map(|k| format!("class{k}\n")).collect();
    fs::write(folder.join("batches.meta.txt"), names).unwrap();
    let batch = folder.join("test_batch.bin");
    let mut records = vec![7u8; 2 * 3073];
    records[0] = 1;
    records[3073] = 9;
    fuzz("cifar batch", &batch, &records, || {
        cifar::Cifar::read(&root, cifar::CifarVersion::Cifar10, cifar::CifarSplit::Test)
            .and_then(|c| c.load(0).map(|_| c))
    });
    // The relation mask: a [2, 3] float64 .npy.
    let mut npy = b"\x93NUMPY\x01\x00".to_vec();
    let mut header = "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }".to_string();
    while !(10 + header.len() + 1).is_multiple_of(64) {
        header.push(' ');
    }
    header.push('\n');
    npy.extend_from_slice(&(header.len() as u16).to_le_bytes());
    npy.extend_from_slice(header.as_bytes());
    for v in [1.0f64, 0.5, 0.0, 0.25, 1.0, 0.0] {
        npy.extend_from_slice(&v.to_le_bytes());
    }
    let mask = dir.path().join("cid_mask.npy");
    fuzz("cid mask", &mask, &npy, || CidMask::read(&mask));
    // Images, and the palette-index PNGs of VOC segmentation.
    let image = dir.path().join("photo.png");
    let picture = png(9, 7, |x, y| [x as u8 * 20, y as u8 * 30, 90]);
    fuzz("png image", &image, &picture, || {
        datasets::formats::decode_rgb(&image)
    });
    let jpeg_path = dir.path().join("photo.jpg");
    let mut jpeg = std::io::Cursor::new(Vec::new());
    image::RgbImage::from_fn(16, 8, |x, _| image::Rgb([x as u8 * 10, 50, 200]))
        .write_to(&mut jpeg, image::ImageFormat::Jpeg)
        .unwrap();
    fuzz("jpeg image", &jpeg_path, jpeg.get_ref(), || {
        datasets::formats::decode_rgb(&jpeg_path)
    });
    let label = dir.path().join("2007_000032.png");
    let mut gray = std::io::Cursor::new(Vec::new());
    image::GrayImage::from_fn(6, 5, |x, y| image::Luma([((x + y) % 3) as u8]))
        .write_to(&mut gray, image::ImageFormat::Png)
        .unwrap();
    fuzz("voc label png", &label, gray.get_ref(), || {
        voc::read_index_png(&label)
    });
}

#[test]
fn annotation_readers_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let xml = dir.path().join("2007_000027.xml");
    fuzz(
        "voc annotation",
        &xml,
        br#"<annotation><filename>2007_000027.jpg</filename><object><name>person</name><difficult>0</difficult><bndbox><xmin>174</xmin><ymin>101</ymin><xmax>349</xmax><ymax>351</ymax></bndbox></object></annotation>"#,
        || voc::read_annotation(&xml),
    );
    let instances = dir.path().join("instances_val2017.json");
    fuzz(
        "coco instances",
        &instances,
        br#"{"images": [{"id": 1, "file_name": "a.jpg", "width": 4, "height": 3}], "annotations": [{"id": 5, "image_id": 1, "category_id": 18, "area": 6.0, "bbox": [0, 0, 3, 2], "iscrowd": 0}], "categories": [{"id": 18, "name": "dog", "supercategory": "animal"}]}"#,
        || coco::CocoMultiLabel::read(&instances, dir.path()),
    );
    // A panoptic JSON, then its PNG: the id colours and the segments must agree.
    let json = dir.path().join("panoptic_val2017.json");
    let pngs = dir.path().join("panoptic_val2017");
    fs::create_dir_all(&pngs).unwrap();
    let seed_json = br#"{"images": [{"id": 1, "file_name": "a.jpg", "width": 4, "height": 3}], "annotations": [{"image_id": 1, "file_name": "a.png", "segments_info": [{"id": 1, "category_id": 7, "iscrowd": 0, "area": 12, "bbox": [0, 0, 4, 3]}]}], "categories": [{"id": 7, "name": "road", "isthing": 0}]}"#;
    fs::write(pngs.join("a.png"), png(4, 3, |_, _| [1, 0, 0])).unwrap();
    let read = || coco::CocoPanoptic::read(&json, &pngs, |n| dir.path().join(n), None);
    fuzz("coco panoptic json", &json, seed_json, read);
    fs::write(&json, seed_json).unwrap();
    let label = pngs.join("a.png");
    let reader = read().unwrap();
    fuzz(
        "coco panoptic png",
        &label,
        &png(4, 3, |_, _| [1, 0, 0]),
        || reader.load_label(0),
    );
}
