//! The ELASTIC run's evaluation and outputs: the multi-label scores of the final model on the
//! whole validation split (overall and per object size), `curves.png`, `scale-policy.png` (where
//! each elastic block's output came from the half-resolution path) and `report.md`.

use std::{fmt::Write as _, path::Path};

use anyhow::{Context, Result};
use burn::{
    data::dataloader::DataLoader,
    tensor::{Tensor, backend::Backend},
};
use core_nets::{ResNet, ResidualBlock};
use core_train::{
    RunDir, RunMeta,
    checkpoint::write_atomically,
    plot::{Panel, draw_panels, draw_tile_grid},
};
use datasets::{EpochLoader, multilabel::SIZE_NAMES};

use super::{
    config::ElasticExperiment,
    data::ElasticSources,
    train::{ElasticRow, MultiLabelNet, batcher_of},
};
use crate::metrics::{MultiLabelScores, multilabel_scores};

/// The final model's scores on the validation split.
pub struct Evaluation {
    pub scores: MultiLabelScores,
    pub images: usize,
}

/// Scores `model` on every validation image.
pub fn evaluate<B: Backend>(
    model: &MultiLabelNet<B>,
    sources: &ElasticSources,
    config: &ElasticExperiment,
    device: &B::Device,
) -> Result<Evaluation> {
    let loader = EpochLoader::<B, _, _>::new(
        sources.valid.clone(),
        batcher_of(config),
        config.train.batch_size,
        device.clone(),
    )
    .skip_failures(config.data.skip_corrupt());
    let status = loader.status();
    let (mut logits, mut targets) = (Vec::new(), Vec::new());
    let mut by_size: [Vec<f32>; 3] = Default::default();
    for batch in loader.iter() {
        logits.extend(model.net.forward(batch.images).into_data().iter::<f32>());
        targets.extend(batch.target_values);
        for (all, part) in by_size.iter_mut().zip(batch.by_size) {
            all.extend(part);
        }
    }
    if let Some(failure) = status.failure() {
        anyhow::bail!("evaluation stopped: {failure}");
    }
    let classes = sources.classes.len();
    Ok(Evaluation {
        images: targets.len() / classes.max(1),
        scores: multilabel_scores(&logits, &targets, &by_size, classes),
    })
}

/// The share of each elastic block's merged output that came through the half-resolution path,
/// per pixel: `Σ_c |half| / (Σ_c |full| + Σ_c |half|)` over the block's output channels, for every
/// image of `input` (`[N, 3, H, W]`). One `[N, h, w]` map per elastic block, with the block's
/// name.
pub fn half_path_shares<B: Backend>(
    net: &ResNet<B>,
    input: Tensor<B, 4>,
) -> Vec<(String, Vec<f32>, [usize; 3])> {
    let mut x = net.forward_stem(input);
    let mut shares = Vec::new();
    for (stage, blocks) in [&net.layer1, &net.layer2, &net.layer3, &net.layer4]
        .into_iter()
        .enumerate()
    {
        for (index, block) in blocks.iter().enumerate() {
            if let ResidualBlock::TwoPath(b) = block
                && b.elastic
            {
                let (full, half) = b.forward_paths(x.clone());
                let [n, _, h, w] = full.dims();
                let full = full.abs().sum_dim(1);
                let half = half.abs().sum_dim(1);
                let share = half.clone() / (full + half).clamp_min(1e-12);
                shares.push((
                    format!("layer{}.{index}", stage + 1),
                    share.into_data().iter::<f32>().collect(),
                    [n, h, w],
                ));
            }
            x = block.forward(x);
        }
    }
    shares
}

/// A share in [0, 1] as a colour: dark blue (full resolution) → yellow (half resolution).
fn colour(share: f32) -> image::Rgb<u8> {
    let t = share.clamp(0.0, 1.0);
    let lerp = |a: f32, b: f32| (a + (b - a) * t).round() as u8;
    image::Rgb([lerp(20.0, 250.0), lerp(30.0, 220.0), lerp(120.0, 30.0)])
}

const TILE: u32 = 96;

/// The share map `[h, w]` as a heat map over `picture` (a `TILE`-sized image): the colours
/// resized bilinearly to the picture and blended with it half and half.
fn overlay(picture: &image::RgbImage, map: &[f32], [h, w]: [usize; 2]) -> image::RgbImage {
    let small = image::RgbImage::from_fn(w as u32, h as u32, |x, y| {
        colour(map[y as usize * w + x as usize])
    });
    let heat = image::imageops::resize(&small, TILE, TILE, image::imageops::FilterType::Triangle);
    image::RgbImage::from_fn(TILE, TILE, |x, y| {
        let (a, b) = (picture.get_pixel(x, y).0, heat.get_pixel(x, y).0);
        image::Rgb([0, 1, 2].map(|c| ((a[c] as u16 + b[c] as u16) / 2) as u8))
    })
}

/// `scale-policy.png`: for four validation images, the image and, per elastic block, the share its
/// output took from the half-resolution path as a heat map over the image (blue: full resolution,
/// yellow: half).
pub fn draw_scale_policy<B: Backend>(
    net: &ResNet<B>,
    sources: &ElasticSources,
    config: &ElasticExperiment,
    path: &Path,
    device: &B::Device,
) -> Result<()> {
    let count = sources.valid.len().min(4);
    let images: Vec<_> = (0..count)
        .filter_map(|i| sources.valid.get(i))
        .map(|item| (item.pixels, item.size))
        .collect();
    draw_scale_policy_of(net, images, config.data.normalization(), path, device)
}

/// [`draw_scale_policy`] for `images` (RGB in `[0, 1]`, `[H, W, 3]`, and their `[H, W]`), which
/// the network sees normalised by `normalization`.
pub fn draw_scale_policy_of<B: Backend>(
    net: &ResNet<B>,
    images: Vec<(Vec<f32>, [usize; 2])>,
    normalization: datasets::Normalization,
    path: &Path,
    device: &B::Device,
) -> Result<()> {
    if images.is_empty() {
        return Ok(());
    }
    let pictures: Vec<image::RgbImage> = images
        .iter()
        .map(|(pixels, [h, w])| {
            let bytes = pixels
                .iter()
                .map(|&v| (v.clamp(0.0, 1.0) * 255.0).round() as u8);
            let image = image::RgbImage::from_raw(*w as u32, *h as u32, bytes.collect())
                .expect("item pixels are H×W×3");
            image::imageops::resize(&image, TILE, TILE, image::imageops::FilterType::Nearest)
        })
        .collect();
    let items = images
        .into_iter()
        .map(|(pixels, size)| datasets::ClassificationItem {
            pixels,
            size,
            label: 0,
        })
        .collect();
    let batch: datasets::ClassificationBatch<B> = burn::data::dataloader::batcher::Batcher::batch(
        &datasets::ClassificationBatcher { normalization },
        items,
        device,
    );
    let shares = half_path_shares(net, batch.images);
    if shares.is_empty() {
        // A plain model has no half-resolution path to show.
        return Ok(());
    }
    // At most six blocks, spread over the depth.
    let step = shares.len().div_ceil(6).max(1);
    let shown: Vec<_> = shares.iter().step_by(step).collect();
    let mut tiles = Vec::new();
    for (k, picture) in pictures.iter().enumerate() {
        tiles.push((picture.clone(), "image".to_string()));
        for (name, values, [_, h, w]) in &shown {
            let map = &values[k * h * w..(k + 1) * h * w];
            let mean = map.iter().sum::<f32>() / map.len().max(1) as f32;
            tiles.push((
                overlay(picture, map, [*h, *w]),
                format!("{name} {:.0}%", 100.0 * mean),
            ));
        }
    }
    let refs: Vec<(&image::RgbImage, &str)> = tiles.iter().map(|(t, c)| (t, c.as_str())).collect();
    draw_tile_grid(
        &refs,
        shown.len() + 1,
        "half-resolution share per elastic block",
        path,
    )
}

/// `curves.png` and `report.md` of a multi-label run.
#[allow(clippy::too_many_arguments)]
pub fn write_outputs(
    run: &RunDir,
    meta: &RunMeta,
    config: &ElasticExperiment,
    parameters: usize,
    rows: &[ElasticRow],
    evaluation: Option<&Evaluation>,
    classes: &[String],
    skipped: &[String],
    error: Option<&str>,
) -> Result<()> {
    let result = evaluation.map(|e| {
        let s = &e.scores;
        let mut md = String::new();
        let _ = writeln!(
            md,
            "## Result ({} validation images, {} labels; prediction = logit > 0)\n",
            e.images,
            classes.len()
        );
        let _ = writeln!(
            md,
            "| | precision | recall | F1 |\n|---|---|---|---|\n| per class (mean over classes) | {:.2} % | {:.2} % | {:.2} % |\n| overall | {:.2} % | {:.2} % | {:.2} % |\n",
            s.precision_per_class,
            s.recall_per_class,
            s.f1_per_class,
            s.precision_overall,
            s.recall_overall,
            s.f1_overall
        );
        let _ = writeln!(md, "mAP {:.2} %.\n", s.map);
        let _ = writeln!(
            md,
            "| object size | targets | recall | mAP |\n|---|---|---|---|"
        );
        for (k, name) in SIZE_NAMES.iter().enumerate() {
            let _ = writeln!(
                md,
                "| {name} | {} | {:.2} % | {:.2} % |",
                s.targets_by_size[k], s.recall_by_size[k], s.map_by_size[k]
            );
        }
        let _ = writeln!(
            md,
            "\nPer size: recall of the (image, label) targets an object of that size makes; mAP with a label's positives the images showing it at that size and its negatives the images without it.\n"
        );
        md
    });
    let rows: Vec<ReportRow> = rows
        .iter()
        .map(|r| ReportRow {
            epoch: r.epoch,
            lr: r.lr,
            train_loss: r.train_loss,
            train_score: r.train_f1,
            valid_loss: r.valid_loss,
            valid_score: r.valid_f1,
            images_per_s: r.train_images_per_s,
            seconds: r.epoch_seconds,
        })
        .collect();
    let task = TaskReport {
        loss: "binary cross-entropy",
        score: "F1",
        score_curve: "overall F1 (%, batch mean)",
        result,
    };
    write_report(run, meta, config, parameters, &rows, &task, skipped, error)
}

/// One epoch as an ELASTIC report shows it, whatever the task.
pub struct ReportRow {
    pub epoch: usize,
    pub lr: f64,
    pub train_loss: f64,
    pub train_score: f64,
    pub valid_loss: f64,
    pub valid_score: f64,
    pub images_per_s: f64,
    pub seconds: f64,
}

/// How a task names its loss and its score, and its result section (Markdown) once evaluated.
pub struct TaskReport {
    pub loss: &'static str,
    /// The score's column name in the epoch table.
    pub score: &'static str,
    /// The score's curve title.
    pub score_curve: &'static str,
    pub result: Option<String>,
}

/// `curves.png` and `report.md`: the header, the task's result, the pictures the run left, the
/// epochs and the configuration.
#[allow(clippy::too_many_arguments)]
pub fn write_report(
    run: &RunDir,
    meta: &RunMeta,
    config: &ElasticExperiment,
    parameters: usize,
    rows: &[ReportRow],
    task: &TaskReport,
    skipped: &[String],
    error: Option<&str>,
) -> Result<()> {
    let title = format!("{} — {} ({})", meta.paper, config.description, meta.preset);
    if !rows.is_empty() {
        let series = |pick: fn(&ReportRow) -> f64| -> Vec<(f64, f64)> {
            rows.iter().map(|r| (r.epoch as f64, pick(r))).collect()
        };
        draw_panels(
            &[
                Panel {
                    name: task.loss.into(),
                    series: vec![
                        ("train".into(), series(|r| r.train_loss)),
                        ("valid".into(), series(|r| r.valid_loss)),
                    ],
                },
                Panel {
                    name: task.score_curve.into(),
                    series: vec![
                        ("train".into(), series(|r| r.train_score)),
                        ("valid".into(), series(|r| r.valid_score)),
                    ],
                },
            ],
            &title,
            &run.file("curves.png"),
        )?;
    }
    let mut md = String::new();
    let total: f64 = rows.iter().map(|r| r.seconds).sum();
    core_train::report::write_header(
        &mut md,
        &title,
        meta,
        total,
        rows.len(),
        &config.model_summary(parameters),
        error,
    );
    if let Some(result) = &task.result {
        md.push_str(result);
    }
    if let Some(note) = core_train::report::skipped_note(skipped) {
        let _ = writeln!(md, "{note}\n");
    }
    let _ = writeln!(md, "![loss and {} per epoch](curves.png)\n", task.score);
    if run.file("predictions.png").is_file() {
        let _ = writeln!(
            md,
            "![validation images: truth and prediction](predictions.png)\n"
        );
    }
    if run.file("scale-policy.png").is_file() {
        let _ = writeln!(
            md,
            "![where the elastic blocks used half resolution](scale-policy.png)\n\nThe scale policy: for four validation images, per elastic block, the share of the block's merged output that came through the half-resolution path (`Σ|half| / (Σ|full| + Σ|half|)` over channels, per pixel), as a heat map over the image (blue 0 %, yellow 100 %; the caption gives the image mean).\n"
        );
    }
    let _ = writeln!(md, "## Epochs\n");
    let _ = writeln!(
        md,
        "| epoch | mean lr | train loss | train {0} | valid loss | valid {0} | img/s | s |\n|---|---|---|---|---|---|---|---|",
        task.score
    );
    for r in rows {
        let _ = writeln!(
            md,
            "| {} | {:.2e} | {:.4} | {:.2} | {:.4} | {:.2} | {:.0} | {:.0} |",
            r.epoch,
            r.lr,
            r.train_loss,
            r.train_score,
            r.valid_loss,
            r.valid_score,
            r.images_per_s,
            r.seconds
        );
    }
    let toml = toml::to_string_pretty(config).context("serialising the config as TOML")?;
    let _ = writeln!(md, "\n## Configuration\n\n```toml\n{toml}```");
    write_atomically(&run.file("report.md"), md.as_bytes())
        .with_context(|| format!("writing {}", run.file("report.md").display()))
}
