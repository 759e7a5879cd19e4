//! Helpers shared by the binary's end-to-end and fault-injection tests.
#![allow(dead_code)]

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Output},
};

pub const TINY: &[&str] = &[
    "--set",
    "data.train_size=48",
    "--set",
    "data.valid_size=16",
    "--set",
    "data.world.image_size=16",
    "--set",
    "train.batch_size=16",
    "--set",
    "train.num_workers=1",
];

/// `VIREO_TEST_BACKEND=wgpu|cuda` runs the training commands on that backend (the binary must be
/// built with its feature), e.g. on Mesa's software Vulkan: see docs/backends.md.
pub fn vireo<S: AsRef<str>>(args: &[S]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_vireo"));
    command.args(args.iter().map(AsRef::as_ref));
    if let Ok(backend) = std::env::var("VIREO_TEST_BACKEND")
        && matches!(args.first().map(AsRef::as_ref), Some("train" | "eval"))
    {
        command.args(["--backend", &backend]);
    }
    command
}

/// `train <paper> --out <out> --set train.epochs=<epochs>` on the tiny settings, plus `extra`.
pub fn tiny_train(paper: &str, out: &Path, epochs: &str, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = ["train", paper, "--out", out.to_str().unwrap(), "--set"]
        .map(String::from)
        .to_vec();
    args.push(format!("train.epochs={epochs}"));
    args.extend(TINY.iter().chain(extra).map(|s| s.to_string()));
    args
}

pub fn run_ok<S: AsRef<str> + std::fmt::Debug>(args: &[S]) -> Output {
    let output = vireo(args).output().unwrap();
    assert!(
        output.status.success(),
        "vireo {args:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

pub fn run_err<S: AsRef<str> + std::fmt::Debug>(args: &[S]) -> String {
    let output = vireo(args).output().unwrap();
    assert!(
        !output.status.success(),
        "vireo {args:?} should have failed"
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The only run directory of `paper` under `out`.
pub fn single_run(out: &Path, paper: &str) -> PathBuf {
    let runs: Vec<_> = fs::read_dir(out.join(paper))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    runs[0].clone()
}

pub fn csv_epochs(run: &Path) -> Vec<usize> {
    let text = fs::read_to_string(run.join("metrics.csv")).unwrap();
    text.lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().parse().unwrap())
        .collect()
}

/// Turns a finished 3-epoch run into one killed after epoch 2: drops epoch 3's checkpoint and
/// metrics row; returns the uninterrupted `metrics.csv`.
pub fn forget_epoch_3(run: &Path) -> String {
    forget_epochs_after(run, 2, 3)
}

/// Turns a finished run of `last` epochs into one killed after epoch `kept`: drops the later
/// checkpoints and metrics rows; returns the uninterrupted `metrics.csv`.
pub fn forget_epochs_after(run: &Path, kept: usize, last: usize) -> String {
    let uninterrupted = fs::read_to_string(run.join("metrics.csv")).unwrap();
    for epoch in kept + 1..=last {
        for part in ["model", "optim", "scheduler"] {
            fs::remove_file(run.join(format!("checkpoint/{part}-{epoch}.mpk"))).unwrap();
        }
    }
    let rows: Vec<&str> = uninterrupted.lines().take(kept + 1).collect();
    fs::write(run.join("metrics.csv"), rows.join("\n") + "\n").unwrap();
    uninterrupted
}

/// `metrics.csv` rows without their last two (timing) columns.
pub fn without_timing(csv: &str) -> Vec<String> {
    csv.lines()
        .map(|l| l.rsplitn(3, ',').nth(2).unwrap().to_string())
        .collect()
}

/// A `w`×`h` grey image with a darker square, so random crops differ.
pub fn image_of(w: u32, h: u32, shade: u8) -> image::RgbImage {
    image::RgbImage::from_fn(w, h, |x, y| {
        let v = if x < w / 2 && y < h / 2 {
            shade / 2
        } else {
            shade
        };
        image::Rgb([v, v, v])
    })
}

/// `train <paper> --out <out>` and a `--set` for each of `sets`.
pub fn train_args<S: AsRef<str>>(paper: &str, out: &Path, sets: &[S]) -> Vec<String> {
    let mut args: Vec<String> = ["train", paper, "--out", out.to_str().unwrap()]
        .map(String::from)
        .to_vec();
    for set in sets {
        args.push("--set".into());
        args.push(set.as_ref().to_string());
    }
    args
}

pub fn tiny_axial(out: &Path, epochs: &str) -> Vec<String> {
    train_args(
        "axial",
        out,
        &[
            format!("train.epochs={epochs}"),
            "data.train_size=16".into(),
            "data.valid_size=8".into(),
            "data.world.image_size=17".into(),
            "train.batch_size=8".into(),
            "train.num_workers=1".into(),
            "train.pictures=2".into(),
            "model.encoder.axial.span=9".into(),
        ],
    )
}

pub fn tiny_co2(out: &Path, epochs: &str) -> Vec<String> {
    train_args(
        "co2",
        out,
        &[
            format!("train.epochs={epochs}"),
            "data.train_size=64".into(),
            "data.valid_size=32".into(),
            "data.world.image_size=16".into(),
            "data.augmentation={moco_v2={size=16}}".into(),
            "train.batch_size=16".into(),
            "train.num_workers=1".into(),
            "model.queue=64".into(),
            "knn.k=10".into(),
            "lincls.epochs=1".into(),
            "lincls.batch_size=16".into(),
            "semi.epochs=1".into(),
            "semi.batch_size=8".into(),
        ],
    )
}

pub fn tiny_elastic(out: &Path, epochs: &str) -> Vec<String> {
    train_args(
        "elastic",
        out,
        &[
            format!("train.epochs={epochs}"),
            "data.train_size=48".into(),
            "data.valid_size=16".into(),
            "data.world.image_size=32".into(),
            "train.batch_size=16".into(),
            "train.num_workers=1".into(),
            "model.planes=[8, 8, 16, 16]".into(),
            "model.stem_width=8".into(),
            "model.groups=4".into(),
        ],
    )
}

pub fn tiny_sake(out: &Path, epochs: &str, extra: &[&str]) -> Vec<String> {
    let mut sets: Vec<String> = [
        format!("train.epochs={epochs}"),
        "train.checkpoints_kept=3".into(),
        "train.num_workers=1".into(),
        "data.world.image_size=24".into(),
        "data.train_sketches=26".into(),
        "data.train_photos=52".into(),
        "data.valid_sketches=9".into(),
        "data.query_sketches=12".into(),
        "data.gallery_photos=18".into(),
        "teacher.pretrain.train_size=32".into(),
        "teacher.pretrain.valid_size=16".into(),
        "teacher.pretrain.train.epochs=1".into(),
        "teacher.pretrain.train.batch_size=16".into(),
        "teacher.pretrain.train.num_workers=1".into(),
        "eval.batch_size=16".into(),
        "eval.sheet_queries=2".into(),
    ]
    .into();
    sets.extend(extra.iter().map(|s| s.to_string()));
    train_args("sake", out, &sets)
}

pub fn tiny_compnet(out: &Path, epochs: &str) -> Vec<String> {
    let sets: Vec<String> = [
        format!("train.epochs={epochs}"),
        "train.batch_size=8".into(),
        "train.checkpoints_kept=3".into(),
        "train.num_workers=1".into(),
        "backbone.vgg.width_divisor=16".into(),
        "backbone.pretrain.epochs=1".into(),
        "backbone.pretrain.batch_size=16".into(),
        "backbone.pretrain.num_workers=1".into(),
        "init.dictionary.components=8".into(),
        "init.dictionary_images_per_class=10".into(),
        "data.world.image_size=32".into(),
        "data.world.num_classes=4".into(),
        "data.train_size=40".into(),
        "data.valid_size=8".into(),
        "data.heldout_size=4".into(),
        "data.test_size=8".into(),
        "data.backgrounds=2".into(),
        "eval.batch_size=16".into(),
        "eval.pictures_per_level=1".into(),
    ]
    .into();
    train_args("compnet", out, &sets)
}

/// A two-image Cityscapes panoptic tree (cityscapesScripts' trainId layout): road (train id 0)
/// with one person (11) square per image.
pub fn write_cityscapes(root: &Path, split: &str) {
    let name = format!("gtFine/cityscapes_panoptic_{split}_trainId");
    fs::create_dir_all(root.join(&name)).unwrap();
    fs::create_dir_all(root.join(format!("leftImg8bit/{split}/aachen"))).unwrap();
    let (w, h) = (40u32, 24u32);
    let mut images = Vec::new();
    let mut annotations = Vec::new();
    for k in 0..2u32 {
        let stem = format!("aachen_00000{k}_000019");
        let inside = |x: u32, y: u32| (6 + 9 * k..16 + 9 * k).contains(&x) && (5..15).contains(&y);
        image::RgbImage::from_fn(w, h, |x, y| {
            if inside(x, y) {
                image::Rgb([220, 40, 40])
            } else {
                image::Rgb([90, 90, 90])
            }
        })
        .save(root.join(format!("leftImg8bit/{split}/aachen/{stem}_leftImg8bit.png")))
        .unwrap();
        image::RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([if inside(x, y) { 2 } else { 1 }, 0, 0])
        })
        .save(root.join(format!("{name}/{stem}_gtFine_panoptic.png")))
        .unwrap();
        images.push(format!(
            r#"{{"id": "{stem}", "file_name": "{stem}_leftImg8bit.png", "width": {w}, "height": {h}}}"#
        ));
        annotations.push(format!(
            r#"{{"image_id": "{stem}", "file_name": "{stem}_gtFine_panoptic.png", "segments_info": [
  {{"id": 1, "category_id": 0, "iscrowd": 0, "area": {}, "bbox": [0, 0, {w}, {h}]}},
  {{"id": 2, "category_id": 11, "iscrowd": 0, "area": 100, "bbox": [0, 0, 10, 10]}}]}}"#,
            w * h - 100
        ));
    }
    let categories: Vec<String> = (0..19)
        .map(|c| {
            format!(
                r#"{{"id": {c}, "name": "c{c}", "isthing": {}}}"#,
                (c >= 11) as u8
            )
        })
        .collect();
    fs::write(
        root.join(format!("{name}.json")),
        format!(
            r#"{{"images": [{}], "annotations": [{}], "categories": [{}]}}"#,
            images.join(", "),
            annotations.join(", "),
            categories.join(", ")
        ),
    )
    .unwrap();
}

pub fn fixture(crate_dir: &str, name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(crate_dir)
        .join("tests/fixtures")
        .join(name)
        .to_str()
        .unwrap()
        .to_string()
}

pub fn json_of(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stdout)))
}

/// The `top` lists of `vireo infer --json`: `k` entries each, probabilities descending.
pub fn top_lists(json: &serde_json::Value, images: usize, k: usize) -> Vec<Vec<(String, f64)>> {
    let predictions = json.as_array().expect("an array of predictions");
    assert_eq!(predictions.len(), images, "{json}");
    predictions
        .iter()
        .map(|p| {
            let top: Vec<(String, f64)> = p["result"]["top"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| {
                    (
                        t["name"].as_str().unwrap().to_string(),
                        t["probability"].as_f64().unwrap(),
                    )
                })
                .collect();
            assert_eq!(top.len(), k, "{p}");
            assert!(top.windows(2).all(|w| w[0].1 >= w[1].1), "{top:?}");
            assert!(top.iter().map(|t| t.1).sum::<f64>() <= 1.0 + 1e-5);
            top
        })
        .collect()
}

/// A two-class image folder under `dir/folder` (4 images per class and split) and a tiny ws config
/// training on it (`extra`: more `[data]` lines); returns the config's path.
pub fn image_folder_config(dir: &Path, extra: &str) -> PathBuf {
    let root = dir.join("folder");
    for split in ["train", "val"] {
        for (class, shade) in [("n01", 30u8), ("n02", 220u8)] {
            let class_dir = root.join(split).join(class);
            fs::create_dir_all(&class_dir).unwrap();
            for i in 0..4u32 {
                let img = image_of(20 + i, 18, shade);
                img.save(class_dir.join(format!("{i}.png"))).unwrap();
            }
        }
    }
    let config = dir.join("folder.toml");
    fs::write(
        &config,
        format!(
            r#"
[train]
epochs = 2
batch_size = 4
num_workers = 1
[train.optimizer]
lr = 0.05
[train.schedule]
kind = "constant"
[model]
block = "basic"
layers = [1, 1, 1, 1]
planes = [8, 8, 8, 8]
stem_width = 8
small_stem = true
num_classes = 2
norm = {{ kind = "group", groups = 4 }}
[data]
source = "image_folder"
root = "{}"
image_size = 12
{extra}
"#,
            root.display()
        ),
    )
    .unwrap();
    config
}

/// The two-image Cityscapes-format tree under `dir/cityscapes` and a tiny axial config training on
/// it (`extra`: more `[data]` lines); returns the config's path.
pub fn cityscapes_config(dir: &Path, extra: &str) -> PathBuf {
    let data = dir.join("cityscapes");
    write_cityscapes(&data, "train");
    write_cityscapes(&data, "val");
    let config = dir.join("cityscapes.toml");
    fs::write(
        &config,
        format!(
            r#"description = "Cityscapes-format fixture"
[train]
epochs = 1
batch_size = 2
num_workers = 1
lr = 1e-3
pictures = 1
[train.schedule]
kind = "poly"
[model]
num_classes = 19
[model.encoder.axial]
stem = "resnet"
layers = [1, 1, 1, 1]
width = 0.125
stem_width = 8
span = 17
[model.decoder]
aspp_channels = 16
semantic_channels = 16
semantic_low_level = [8, 8]
semantic_head_channels = 16
instance_channels = 8
instance_low_level = [8, 4]
instance_head_channels = 8
[targets]
sigma = 2.0
small_instance_area = 64
small_instance_weight = 3.0
[postprocess]
center_threshold = 0.1
nms_kernel = 3
keep_k_centers = 10
stuff_area_limit = 4
[data]
source = "files"
format = "cityscapes"
root = "{}"
augmentation = {{ crop = [17, 25] }}
eval_size = [25, 33]
{extra}
"#,
            data.display()
        ),
    )
    .unwrap();
    config
}

/// Every one of `files` (relative paths) exists in `run`.
pub fn assert_files(run: &Path, files: &[&str]) {
    for file in files {
        assert!(
            run.join(file).is_file(),
            "{}: missing {file}",
            run.display()
        );
    }
}
