//! Panoptic evaluation (`axial-deeplab.md` §4.3–4.4): post-processing of every validation image,
//! PQ/SQ/RQ per class and mIoU, the prediction pictures and the run's report.

use std::{fmt::Write as _, path::Path};

use anyhow::{Context, Result};
use burn::data::dataloader::DataLoader;
use burn::tensor::backend::Backend;
use core_train::{
    RunDir, RunMeta,
    checkpoint::write_atomically,
    plot::{Panel, draw_panels, draw_tile_grid},
};
use datasets::{
    EpochLoader,
    shapeworld::{heatmap_picture, instance_picture, rgb_picture, semantic_picture, tile},
};

use super::{
    config::PanopticConfig,
    data::{Labels, PanopticBatch, PanopticItem, valid_loader},
    train::PanopticRow,
};
use crate::{
    PanopticDeepLab,
    metrics::{PanopticQuality, PqSummary, SemanticConfusion},
    postprocess::{PostProcessConfig, find_centers, group_pixels, merge_panoptic},
    targets::{LabelSpace, panoptic_targets},
};

/// What one prediction looks like next to its truth.
pub struct Picture {
    pub item: PanopticItem,
    pub semantic: Vec<u32>,
    pub instance: Vec<u32>,
    pub centers: Vec<[usize; 2]>,
    pub heatmap: Vec<f32>,
}

pub struct Evaluation {
    pub pq: PqSummary,
    pub quality: PanopticQuality,
    pub miou: f64,
    pub images: usize,
    pub pictures: Vec<Picture>,
}

/// One image's post-processed prediction (§4.3).
pub struct PanopticPrediction {
    /// Argmax class per pixel.
    pub semantic: Vec<u32>,
    /// The predicted centre heatmap.
    pub heatmap: Vec<f32>,
    /// Kept instance centres `[row, col]`.
    pub centers: Vec<[usize; 2]>,
    /// `class · divisor + instance` per pixel.
    pub panoptic: Vec<u32>,
}

/// The model's outputs for a batch `[N, 3, H, W]`, post-processed image by image.
pub fn predict_panoptic<B: Backend>(
    model: &PanopticDeepLab<B>,
    images: burn::tensor::Tensor<B, 4>,
    post: &PostProcessConfig,
) -> Vec<PanopticPrediction> {
    let out = model.forward(images);
    let [n, _, h, w] = out.semantic.dims();
    let p = h * w;
    let semantic: Vec<u32> = out
        .semantic
        .argmax(1)
        .into_data()
        .iter::<i64>()
        .map(|c| c as u32)
        .collect();
    let heat: Vec<f32> = out.center.into_data().iter::<f32>().collect();
    let offsets: Vec<f32> = out.offset.into_data().iter::<f32>().collect();
    (0..n)
        .map(|i| {
            let semantic = semantic[i * p..(i + 1) * p].to_vec();
            let heatmap = heat[i * p..(i + 1) * p].to_vec();
            let offsets: Vec<[f32; 2]> = (0..p)
                .map(|q| [offsets[(i * 2) * p + q], offsets[(i * 2 + 1) * p + q]])
                .collect();
            let centers = find_centers(&heatmap, [h, w], post);
            let instance = group_pixels(&semantic, &offsets, &centers, w, &post.thing_classes);
            let panoptic = merge_panoptic(&semantic, &instance, post);
            PanopticPrediction {
                semantic,
                heatmap,
                centers,
                panoptic,
            }
        })
        .collect()
}

/// Post-processes every validation image (§4.3) and scores it (§4.4); keeps the first `pictures`.
pub fn evaluate<B: Backend>(
    model: &PanopticDeepLab<B>,
    loader: &EpochLoader<B, PanopticItem, PanopticBatch<B>>,
    labels: &Labels,
    post: &PostProcessConfig,
    pictures: usize,
) -> Result<Evaluation> {
    let status = loader.status();
    let mut quality = PanopticQuality::new(labels.divisor, labels.void, labels.things.clone());
    let mut confusion = SemanticConfusion::new(labels.classes, labels.void);
    let mut kept = Vec::new();
    let mut images = 0;
    for batch in loader.iter() {
        let predictions = predict_panoptic(model, batch.images, post);
        for (item, prediction) in batch.items.into_iter().zip(predictions) {
            let PanopticPrediction {
                semantic,
                heatmap,
                centers,
                panoptic,
            } = prediction;
            quality.update(&panoptic, &item.panoptic);
            let truth: Vec<u32> = item.panoptic.iter().map(|id| id / labels.divisor).collect();
            confusion.update(&semantic, &truth);
            if kept.len() < pictures {
                kept.push(Picture {
                    instance: thing_segments(&panoptic, labels),
                    semantic,
                    centers,
                    heatmap,
                    item,
                });
            }
            images += 1;
        }
    }
    if let Some(failure) = status.failure() {
        anyhow::bail!("evaluation stopped: {failure}");
    }
    if images == 0 {
        anyhow::bail!("no validation image could be evaluated");
    }
    Ok(Evaluation {
        pq: quality.summary(),
        miou: confusion.mean_iou(),
        quality,
        images,
        pictures: kept,
    })
}

/// `predictions.png`: per image, the input, semantic truth and prediction, instance truth and
/// prediction with centres, the predicted centre heatmap.
pub fn draw_predictions(pictures: &[Picture], labels: &Labels, path: &Path) -> Result<()> {
    let mut tiles = Vec::new();
    for picture in pictures {
        let item = &picture.item;
        let [h, w] = item.size;
        let image = rgb_picture(&item.pixels, [h, w]);
        let truth_semantic: Vec<u32> = item.panoptic.iter().map(|id| id / labels.divisor).collect();
        let truth_instance = thing_segments(&item.panoptic, labels);
        let truth_centers = truth_centres(&item.panoptic, [h, w], labels);
        tiles.push(tile(image.clone(), "input"));
        tiles.push(tile(
            semantic_picture(&image, &truth_semantic),
            "semantic, truth",
        ));
        tiles.push(tile(
            semantic_picture(&image, &picture.semantic),
            "semantic, predicted",
        ));
        tiles.push(tile(
            instance_picture(&image, &truth_instance, &truth_centers),
            "instances, truth",
        ));
        tiles.push(tile(
            instance_picture(&image, &picture.instance, &picture.centers),
            &format!("instances, predicted ({} centres)", picture.centers.len()),
        ));
        tiles.push(tile(
            heatmap_picture(&picture.heatmap, [h, w]),
            "centre heatmap",
        ));
    }
    let refs: Vec<(&image::RgbImage, &str)> = tiles
        .iter()
        .map(|t| (&t.image, t.caption.as_str()))
        .collect();
    draw_tile_grid(
        &refs,
        6,
        "validation predictions next to ground truth",
        path,
    )
}

/// The panoptic id on thing pixels (one segment per instance), 0 elsewhere.
pub fn thing_segments(panoptic: &[u32], labels: &Labels) -> Vec<u32> {
    panoptic
        .iter()
        .map(|&id| {
            if labels.things.contains(&(id / labels.divisor)) {
                id
            } else {
                0
            }
        })
        .collect()
}

/// Each thing instance's centre as the target generator computes it (rounded mean).
fn truth_centres(panoptic: &[u32], [h, w]: [usize; 2], labels: &Labels) -> Vec<[usize; 2]> {
    let space = LabelSpace {
        divisor: labels.divisor,
        ignore_label: labels.void,
        thing_classes: labels.things.clone(),
        ..LabelSpace::cityscapes()
    };
    panoptic_targets(panoptic, [h, w], &space, |_| false).centers
}

#[allow(clippy::too_many_arguments)]
pub fn write_outputs(
    run: &RunDir,
    meta: &RunMeta,
    experiment: &PanopticConfig,
    parameters: usize,
    rows: &[PanopticRow],
    evaluation: Option<&Evaluation>,
    labels: &Labels,
    resumed: Option<usize>,
    error: Option<&str>,
) -> Result<()> {
    let title = format!(
        "{} — {} ({})",
        meta.paper, experiment.description, meta.preset
    );
    if !rows.is_empty() {
        let series = |pick: fn(&PanopticRow) -> f64| {
            rows.iter()
                .map(|r| (r.epoch as f64, pick(r)))
                .collect::<Vec<_>>()
        };
        draw_panels(
            &[
                Panel {
                    name: "training loss (weighted terms)".into(),
                    series: vec![
                        ("total".into(), series(|r| r.loss)),
                        ("semantic".into(), series(|r| r.semantic_loss)),
                        ("200 · centre".into(), series(|r| 200.0 * r.center_loss)),
                        ("0.01 · offset".into(), series(|r| 0.01 * r.offset_loss)),
                    ],
                },
                Panel {
                    name: "validation (%)".into(),
                    series: vec![
                        ("PQ".into(), series(|r| r.pq)),
                        ("PQ things".into(), series(|r| r.pq_things)),
                        ("PQ stuff".into(), series(|r| r.pq_stuff)),
                        ("mIoU".into(), series(|r| r.miou)),
                    ],
                },
            ],
            &title,
            &run.file("curves.png"),
        )?;
    }
    let mut md = String::new();
    let total: f64 = rows.iter().map(|r| r.epoch_seconds).sum();
    core_train::report::write_header(
        &mut md,
        &title,
        meta,
        total,
        rows.len(),
        &experiment.model_summary(parameters),
        error,
    );
    if let Some(epoch) = resumed {
        let _ = writeln!(md, "Resumed after epoch {epoch} from its checkpoint.\n");
    }
    if let Some(evaluation) = evaluation {
        let pq = &evaluation.pq;
        let _ = writeln!(md, "## Result on {} validation images\n", evaluation.images);
        let _ = writeln!(
            md,
            "| PQ | SQ | RQ | PQ things | PQ stuff | mIoU |\n|---|---|---|---|---|---|"
        );
        let _ = writeln!(
            md,
            "| {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |\n",
            100.0 * pq.pq,
            100.0 * pq.sq,
            100.0 * pq.rq,
            100.0 * pq.pq_things,
            100.0 * pq.pq_stuff,
            100.0 * evaluation.miou
        );
        let _ = writeln!(md, "Per class (PQ, SQ, RQ in %; TP/FP/FN segments):\n");
        let _ = writeln!(
            md,
            "| class | kind | PQ | SQ | RQ | TP | FP | FN |\n|---|---|---|---|---|---|---|---|"
        );
        let mut classes: Vec<_> = evaluation.quality.per_class.iter().collect();
        classes.sort_by_key(|(c, _)| **c);
        for (class, q) in classes {
            let name = labels
                .names
                .get(*class as usize)
                .map(String::as_str)
                .unwrap_or("?");
            let kind = if labels.things.contains(class) {
                "thing"
            } else {
                "stuff"
            };
            let (pq, sq, rq) = q.quality().unwrap_or((f64::NAN, f64::NAN, f64::NAN));
            let _ = writeln!(
                md,
                "| {name} | {kind} | {:.1} | {:.1} | {:.1} | {} | {} | {} |",
                100.0 * pq,
                100.0 * sq,
                100.0 * rq,
                q.tp,
                q.fp,
                q.fn_
            );
        }
    }
    let _ = writeln!(md, "\n![losses and validation PQ per epoch](curves.png)\n");
    let _ = writeln!(
        md,
        "![validation predictions next to ground truth](predictions.png)\n"
    );
    let _ = writeln!(md, "## Epochs\n");
    let _ = writeln!(
        md,
        "| epoch | mean lr | loss | semantic | centre | offset | PQ | PQ th | PQ st | mIoU | img/s | s |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        let _ = writeln!(
            md,
            "| {} | {:.2e} | {:.4} | {:.4} | {:.5} | {:.3} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} | {:.0} |",
            r.epoch,
            r.lr,
            r.loss,
            r.semantic_loss,
            r.center_loss,
            r.offset_loss,
            r.pq,
            r.pq_things,
            r.pq_stuff,
            r.miou,
            r.train_images_per_s,
            r.epoch_seconds
        );
    }
    let config = toml::to_string_pretty(experiment).context("serialising the config as TOML")?;
    let _ = writeln!(md, "\n## Configuration\n\n```toml\n{config}```");
    write_atomically(&run.file("report.md"), md.as_bytes())
        .with_context(|| format!("writing {}", run.file("report.md").display()))
}

/// `vireo eval axial --run DIR`: PQ/SQ/RQ and mIoU of a run's final model (or newest intact
/// checkpoint) on its validation split, and `eval-predictions.png` in the run directory.
pub fn evaluate_run<B: Backend>(
    experiment: PanopticConfig,
    run: &RunDir,
    device: &B::Device,
) -> Result<String> {
    let (model, path) = run.load_final_model(experiment.model.init::<B>(device), device)?;
    let sources = experiment.data.sources(experiment.train.seed)?;
    experiment.check_labels(&sources.labels)?;
    let labels = &sources.labels;
    let loader = valid_loader::<B>(&experiment, &sources, device);
    let evaluation = evaluate(
        &model,
        &loader,
        labels,
        &experiment.postprocess_config(labels),
        experiment.train.pictures,
    )?;
    let pictures = run.file("eval-predictions.png");
    draw_predictions(&evaluation.pictures, labels, &pictures)?;
    let pq = &evaluation.pq;
    Ok(format!(
        "{}: {} validation images, PQ {:.2} % (SQ {:.2}, RQ {:.2}; things {:.2}, stuff {:.2}), mIoU {:.2} %; pictures: {}",
        path.display(),
        evaluation.images,
        100.0 * pq.pq,
        100.0 * pq.sq,
        100.0 * pq.rq,
        100.0 * pq.pq_things,
        100.0 * pq.pq_stuff,
        100.0 * evaluation.miou,
        pictures.display()
    ))
}
