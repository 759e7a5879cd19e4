//! The evaluation (`compnet.md` §4.3): accuracy per occlusion level L0–L3 and per occluder kind for
//! the plain DCNN, CN-WACV's Bernoulli model alone and with the DCNN switch (τ chosen on held-out
//! occluded images unless fixed), and CN-vMF; occluder localisation of CN-vMF (mixture-bg map,
//! ground-truth label) and of the Bernoulli model with the ROC of [`crate::roc`] (threshold
//! averaging per class, classes weighted by their image counts, TPR at FPR 0.2, AUC) on the
//! occluded levels; `occluders.png`, `roc.png`, `accuracy.png`, and the report.

use std::{collections::BTreeMap, fmt::Write};

use anyhow::{Context, Result};
use burn::tensor::{Tensor, activation::softmax, backend::Backend};
use core_train::{
    EpochRow, RunDir, RunMeta,
    checkpoint::write_atomically,
    plot::{Panel, draw_curves, draw_tile_grid, draw_xy},
    report::{group_thousands, write_header},
};
use datasets::shapeworld::{OcclusionLevel, heatmap_picture, rgb_picture, tile};
use serde::Serialize;

use super::{
    config::{CompNetExperiment, CompositionalFeatures},
    data::{OccludedImage, TestItem, backgrounds, heldout_items, mask_at_features, test_items},
    train::InitNote,
};
use crate::{
    bernoulli::{BernoulliNet, bernoulli_occluder_map, switch_choice},
    dcnn::Dcnn,
    features::size_runs,
    model::CompNet,
    official::{background_maps, occluder_models_tensor},
    roc::{RocPoint, auc, average, image_roc, thresholds, tpr_at_fpr},
    score::{MapMode, occluder_map},
};

/// The models of the table, in its order.
pub const MODELS: [&str; 4] = ["DCNN", "Bernoulli", "CN-WACV", "CN-vMF"];

/// What each model says about one image.
#[derive(Clone, Debug)]
pub struct Scored {
    pub label: usize,
    pub level: OcclusionLevel,
    pub kind: Option<String>,
    /// The DCNN's softmax.
    pub dcnn_probabilities: Vec<f32>,
    pub bernoulli_scores: Vec<f32>,
    pub vmf_scores: Vec<f32>,
    /// Occluder maps for the true label, `[H·W]` at feature resolution.
    pub vmf_map: Vec<f32>,
    pub bernoulli_map: Vec<f32>,
    /// Occluder ∧ object at feature resolution (`None` without masks: left out of the ROC).
    pub truth: Option<Vec<bool>>,
    pub feature_size: [usize; 2],
}

fn argmax(v: &[f32]) -> usize {
    crate::first_max(v).0
}

/// Scores the images of `items` with every model, loading them a batch at a time (runs of one
/// size); also the first `keep` loaded images (for pictures).
pub fn score_items<B: Backend>(
    items: &[TestItem],
    keep: usize,
    models: &Models<'_, B>,
    config: &CompNetExperiment,
    device: &B::Device,
) -> Result<(Vec<Scored>, Vec<OccludedImage>)> {
    let mut scored = Vec::with_capacity(items.len());
    let mut kept = Vec::new();
    for chunk in items.chunks(config.eval.batch_size.max(1)) {
        let images = chunk
            .iter()
            .map(TestItem::load)
            .collect::<Result<Vec<OccludedImage>>>()?;
        for run in size_runs(&images, images.len(), |i| i.size) {
            scored.extend(score_images(run, models, config, device));
        }
        kept.extend(images.into_iter().take(keep.saturating_sub(kept.len())));
    }
    Ok((scored, kept))
}

/// The three models an evaluation runs.
pub struct Models<'a, B: Backend> {
    pub dcnn: &'a Dcnn<B>,
    pub compnet: &'a CompNet<B>,
    pub bernoulli: &'a BernoulliNet<B>,
}

/// Scores same-size `images` with every model (one forward of the backbone when the
/// compositional models sit on the DCNN's features).
fn score_images<B: Backend>(
    images: &[OccludedImage],
    models: &Models<'_, B>,
    config: &CompNetExperiment,
    device: &B::Device,
) -> Vec<Scored> {
    let x = datasets::classification::images_tensor::<B>(
        images.iter().map(|i| (i.pixels.as_slice(), i.size)),
        &config.data.normalization(),
        device,
    );
    let features = models.compnet.backbone.forward(x.clone());
    let [b, _, h, w] = features.dims();
    let logits = match config.backbone.compositional {
        CompositionalFeatures::Dcnn => models.dcnn.classify(features.clone()),
        CompositionalFeatures::Imagenet => models.dcnn.forward(x),
    };
    let probabilities = softmax(logits, 1);
    let vmf = models.compnet.forward_features(features.clone());
    let bern = models.bernoulli.model([h, w]);
    let binary = models.bernoulli.binary(features);
    let (fg, bg) = bern.terms(binary.clone());
    let bern_scores = bern.scores(binary);
    let rows = |t: Tensor<B, 2>| -> Vec<Vec<f32>> {
        let [_, c] = t.dims();
        let v: Vec<f32> = t.into_data().iter::<f32>().collect();
        v.chunks(c).map(<[f32]>::to_vec).collect()
    };
    let (probabilities, vmf_scores, bern_scores) =
        (rows(probabilities), rows(vmf.scores), rows(bern_scores));
    images
        .iter()
        .enumerate()
        .take(b)
        .map(|(i, image)| Scored {
            label: image.label,
            level: image.level,
            kind: image.kind.clone(),
            dcnn_probabilities: probabilities[i].clone(),
            bernoulli_scores: bern_scores[i].clone(),
            vmf_scores: vmf_scores[i].clone(),
            vmf_map: occluder_map(&vmf.terms, i, image.label, MapMode::MixtureBg),
            bernoulli_map: bernoulli_occluder_map(
                &fg,
                &bg,
                i,
                image.label,
                config.head.mixtures_per_class,
            ),
            truth: image
                .occluded_object
                .as_ref()
                .map(|m| mask_at_features(m, image.size, [h, w])),
            feature_size: [h, w],
        })
        .collect()
}

/// The predictions of each model in [`MODELS`] order, and the fraction CN-WACV routed.
fn predictions(scored: &[&Scored], tau: f64) -> ([Vec<usize>; 4], f64) {
    let switched: Vec<(usize, bool)> = scored
        .iter()
        .map(|s| switch_choice(&s.dcnn_probabilities, &s.bernoulli_scores, tau))
        .collect();
    let routed = switched.iter().filter(|c| c.1).count() as f64 / scored.len().max(1) as f64;
    (
        [
            scored
                .iter()
                .map(|s| argmax(&s.dcnn_probabilities))
                .collect(),
            scored.iter().map(|s| argmax(&s.bernoulli_scores)).collect(),
            switched.into_iter().map(|c| c.0).collect(),
            scored.iter().map(|s| argmax(&s.vmf_scores)).collect(),
        ],
        routed,
    )
}

fn accuracy(scored: &[&Scored], predicted: &[usize]) -> f64 {
    let correct = scored
        .iter()
        .zip(predicted)
        .filter(|(s, p)| s.label == **p)
        .count();
    100.0 * correct as f64 / scored.len().max(1) as f64
}

/// Every model's accuracy on `scored`, named `level`.
fn level_result(level: String, scored: &[&Scored], tau: f64) -> LevelResult {
    let (p, routed) = predictions(scored, tau);
    LevelResult {
        level,
        images: scored.len(),
        accuracy: MODELS
            .iter()
            .zip(&p)
            .map(|(m, p)| (m.to_string(), accuracy(scored, p)))
            .collect(),
        routed,
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct LevelResult {
    pub level: String,
    pub images: usize,
    /// Model → top-1 (%).
    pub accuracy: BTreeMap<String, f64>,
    /// CN-WACV: the fraction of images given to the compositional model.
    pub routed: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Localisation {
    pub model: String,
    /// Over the occluded levels L1–L3.
    pub auc: f64,
    pub tpr_at_fpr_02: f64,
    /// Per level L1, L2, L3.
    pub auc_per_level: Vec<f64>,
    /// The averaged curve, `(fpr, tpr)` (ROC picture).
    #[serde(skip)]
    pub curve: Vec<RocPoint>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Evaluation {
    pub levels: Vec<LevelResult>,
    /// L1–L3 by occluder kind.
    pub kinds: Vec<LevelResult>,
    pub tau: f64,
    /// How τ was set.
    pub tau_source: String,
    pub localisation: Vec<Localisation>,
    /// Occluder models scored against at test time.
    pub occluder_models: usize,
    pub occluder_source: String,
}

impl Evaluation {
    /// The mean over levels of `model`'s accuracy (%).
    pub fn mean_accuracy(&self, model: &str) -> f64 {
        self.levels
            .iter()
            .map(|l| l.accuracy.get(model).copied().unwrap_or(f64::NAN))
            .sum::<f64>()
            / self.levels.len().max(1) as f64
    }

    pub fn summary(&self) -> String {
        let auc = |m: &str| {
            self.localisation
                .iter()
                .find(|l| l.model == m)
                .map_or(f64::NAN, |l| l.auc)
        };
        format!(
            "mean accuracy over L0–L3: DCNN {:.1} %, CN-WACV {:.1} %, CN-vMF {:.1} %; occluder AUC CN-vMF {:.3}, Bernoulli {:.3}",
            self.mean_accuracy("DCNN"),
            self.mean_accuracy("CN-WACV"),
            self.mean_accuracy("CN-vMF"),
            auc("CN-vMF"),
            auc("Bernoulli"),
        )
    }

    /// The mini study's columns besides CN-vMF's mean accuracy: the DCNN, CN-WACV and CN-vMF
    /// per level, both models' occluder AUC.
    pub fn study_columns(&self) -> Vec<(String, f64)> {
        let mut columns = Vec::new();
        for model in ["DCNN", "CN-WACV", "CN-vMF"] {
            for l in &self.levels {
                columns.push((
                    format!("{model} {}", l.level),
                    l.accuracy.get(model).copied().unwrap_or(f64::NAN),
                ));
            }
        }
        for l in &self.localisation {
            columns.push((format!("{} AUC (×100)", l.model), 100.0 * l.auc));
        }
        columns
    }
}

fn level_name(level: OcclusionLevel) -> String {
    format!("{level:?}")
}

/// The ROC of `map` over `scored` (occluded levels only), averaged per class then over classes
/// weighted by their counts.
fn localisation(
    scored: &[&Scored],
    map: fn(&Scored) -> &Vec<f32>,
    model: &str,
    tp_hack: bool,
) -> Localisation {
    let ts = thresholds();
    let curve_of = |set: &[&Scored]| -> Vec<RocPoint> {
        let mut by_class: BTreeMap<usize, Vec<(Vec<RocPoint>, f64)>> = BTreeMap::new();
        for s in set {
            by_class.entry(s.label).or_default().push((
                image_roc(map(s), s.truth.as_deref().unwrap_or(&[]), &ts, tp_hack),
                1.0,
            ));
        }
        let per_class: Vec<(Vec<RocPoint>, f64)> = by_class
            .values()
            .map(|curves| (average(curves), curves.len() as f64))
            .collect();
        average(&per_class)
    };
    let curve = curve_of(scored);
    let auc_per_level = [OcclusionLevel::L1, OcclusionLevel::L2, OcclusionLevel::L3]
        .iter()
        .map(|&level| {
            let set: Vec<&Scored> = scored
                .iter()
                .copied()
                .filter(|s| s.level == level)
                .collect();
            if set.is_empty() {
                f64::NAN
            } else {
                auc(&curve_of(&set))
            }
        })
        .collect();
    Localisation {
        model: model.into(),
        auc: auc(&curve),
        tpr_at_fpr_02: tpr_at_fpr(&curve, 0.2),
        auc_per_level,
        curve,
    }
}

/// The occluder models CN-vMF is evaluated with: rebuilt from the trained dictionary (fixed), or
/// the ones it trained with (the released staleness, `eval.stale_occluders`).
fn evaluation_occluders<B: Backend>(
    config: &CompNetExperiment,
    model: &CompNet<B>,
    device: &B::Device,
) -> Result<(CompNet<B>, String)> {
    if config.eval.stale_occluders {
        let n = model.occluders.dims()[0];
        return Ok((
            model.clone(),
            format!(
                "{n} occluder models from the initial dictionary (the released staleness, eval.stale_occluders)"
            ),
        ));
    }
    let maps = background_maps(
        &backgrounds(&config.data)?,
        &model.backbone,
        &model.head.conv1o1,
        &config.data.normalization(),
        config.eval.batch_size,
        device,
    );
    let occluders = occluder_models_tensor(&maps, &config.head, &config.init_config(), device)?;
    let n = occluders.dims()[0];
    let mut rebuilt = model.clone();
    rebuilt.occluders = burn::module::Param::from_tensor(occluders);
    Ok((
        rebuilt,
        format!("{n} occluder models rebuilt from the trained dictionary (the fixed behaviour)"),
    ))
}

/// Evaluates every model on the test levels and, with `run`, draws the pictures.
pub fn evaluate<B: Backend>(
    config: &CompNetExperiment,
    dcnn: &Dcnn<B>,
    model: &CompNet<B>,
    bernoulli: &BernoulliNet<B>,
    run: Option<&RunDir>,
    device: &B::Device,
) -> Result<Evaluation> {
    let (model, occluder_source) = evaluation_occluders(config, model, device)?;
    let occluder_models = model.occluders.dims()[0];
    let models = Models {
        dcnn,
        compnet: &model,
        bernoulli,
    };
    // τ on the held-out images.
    let (tau, tau_source) = match config.eval.tau_switch {
        Some(tau) => (tau, "fixed (eval.tau_switch)".to_string()),
        None => {
            let heldout = heldout_items(&config.data)?;
            let (scored, _) = score_items(&heldout, 0, &models, config, device)?;
            let refs: Vec<&Scored> = scored.iter().collect();
            let mut best = (config.eval.tau_grid[0], f64::NEG_INFINITY);
            for &tau in &config.eval.tau_grid {
                let acc = level_result(String::new(), &refs, tau).accuracy["CN-WACV"];
                if acc > best.1 {
                    best = (tau, acc);
                }
            }
            let levels = if config.data.square() {
                "L0–L3"
            } else {
                "L0 only"
            };
            (
                best.0,
                format!(
                    "chosen on {} held-out images ({levels}): {:.1} % there",
                    heldout.len(),
                    best.1
                ),
            )
        }
    };
    let mut all = Vec::new();
    let mut levels = Vec::new();
    for level in OcclusionLevel::ALL {
        let items = test_items(&config.data, level)?;
        let keep = if run.is_some() {
            config.eval.pictures_per_level
        } else {
            0
        };
        let (scored, shown) = score_items(&items, keep, &models, config, device)?;
        let refs: Vec<&Scored> = scored.iter().collect();
        levels.push(level_result(level_name(level), &refs, tau));
        if let Some(run) = run {
            pictures(config, &shown, &scored, level, run)?;
        }
        all.extend(scored);
    }
    let occluded: Vec<&Scored> = all
        .iter()
        .filter(|s| s.level != OcclusionLevel::L0)
        .collect();
    let mut kind_names: Vec<&str> = Vec::new();
    for s in &occluded {
        if let Some(kind) = s.kind.as_deref()
            && !kind_names.contains(&kind)
        {
            kind_names.push(kind);
        }
    }
    let kinds = kind_names
        .iter()
        .map(|&kind| {
            let set: Vec<&Scored> = occluded
                .iter()
                .copied()
                .filter(|s| s.kind.as_deref() == Some(kind))
                .collect();
            level_result(kind.to_string(), &set, tau)
        })
        .collect();
    let masked: Vec<&Scored> = occluded
        .iter()
        .copied()
        .filter(|s| s.truth.is_some())
        .collect();
    let hack = config.eval.official_tp_hack;
    let localisation = if masked.is_empty() {
        Vec::new()
    } else {
        vec![
            localisation(&masked, |s| &s.vmf_map, "CN-vMF", hack),
            localisation(&masked, |s| &s.bernoulli_map, "Bernoulli", hack),
        ]
    };
    let evaluation = Evaluation {
        levels,
        kinds,
        tau,
        tau_source,
        localisation,
        occluder_models,
        occluder_source,
    };
    if let Some(run) = run {
        draw_summary(&evaluation, run)?;
    }
    Ok(evaluation)
}

/// A feature-resolution map `[h, w]` upsampled (nearest) to the image `[ih, iw]`, scaled
/// `[0, hi] → [0, 1]`.
pub fn map_picture(
    map: &[f32],
    [h, w]: [usize; 2],
    [ih, iw]: [usize; 2],
    hi: f32,
) -> image::RgbImage {
    let values: Vec<f32> = (0..ih * iw)
        .map(|p| {
            let (y, x) = (p / iw * h / ih, p % iw * w / iw);
            (map[y * w + x] / hi).clamp(0.0, 1.0)
        })
        .collect();
    heatmap_picture(&values, [ih, iw])
}

/// `occluders-L{n}.png`: per image, the image, the true occluder mask, CN-vMF's occluder map
/// (colour limits [0, 7] as the released demo) and the Bernoulli model's (scaled to its largest
/// value among the pictured images).
fn pictures(
    config: &CompNetExperiment,
    images: &[OccludedImage],
    scored: &[Scored],
    level: OcclusionLevel,
    run: &RunDir,
) -> Result<()> {
    let n = config.eval.pictures_per_level.min(images.len());
    if n == 0 {
        return Ok(());
    }
    let names = config.data.class_names();
    let bern_hi = scored[..n]
        .iter()
        .flat_map(|s| s.bernoulli_map.iter().copied())
        .fold(1e-6f32, f32::max);
    let mut tiles = Vec::new();
    for (image, s) in images.iter().zip(scored).take(n) {
        let size = image.size;
        // Without masks (COCO) the truth tile is black.
        let truth: Vec<f32> = match &image.occluded_object {
            Some(mask) => mask.iter().map(|&m| f32::from(u8::from(m))).collect(),
            None => vec![0.0; size[0] * size[1]],
        };
        tiles.push(tile(
            rgb_picture(&image.pixels, size),
            &format!(
                "{} ({:?})",
                names.get(image.label).map_or("?", |n| n.as_str()),
                level
            ),
        ));
        tiles.push(tile(heatmap_picture(&truth, size), "occluded object"));
        tiles.push(tile(
            map_picture(&s.vmf_map, s.feature_size, size, 7.0),
            "CN-vMF map",
        ));
        tiles.push(tile(
            map_picture(&s.bernoulli_map, s.feature_size, size, bern_hi),
            "Bernoulli map",
        ));
    }
    let refs: Vec<(&image::RgbImage, &str)> = tiles
        .iter()
        .map(|t| (&t.image, t.caption.as_str()))
        .collect();
    draw_tile_grid(
        &refs,
        4,
        &format!("Occluder localisation, {level:?}: image, truth, CN-vMF, Bernoulli"),
        &run.file(&format!("occluders-{level:?}.png")),
    )
}

fn draw_summary(e: &Evaluation, run: &RunDir) -> Result<()> {
    let series = MODELS
        .iter()
        .map(|m| {
            (
                m.to_string(),
                e.levels
                    .iter()
                    .enumerate()
                    .map(|(i, l)| (i as f64, l.accuracy[*m]))
                    .collect(),
            )
        })
        .collect();
    draw_xy(
        &[Panel {
            name: "top-1 (%)".into(),
            series,
        }],
        "Accuracy under occlusion",
        "occlusion level (0 = L0 … 3 = L3)",
        &run.file("accuracy.png"),
    )?;
    let curves = e
        .localisation
        .iter()
        .map(|l| {
            let mut points: Vec<(f64, f64)> = l.curve.iter().map(|p| (p.fpr, p.tpr)).collect();
            points.push((0.0, 0.0));
            points.push((1.0, 1.0));
            points.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
            (format!("{} (AUC {:.3})", l.model, l.auc), points)
        })
        .collect();
    draw_xy(
        &[Panel {
            name: "true-positive rate".into(),
            series: curves,
        }],
        "Occluder localisation (L1–L3), averaged ROC",
        "false-positive rate",
        &run.file("roc.png"),
    )
}

/// `curves.png` and `report.md`.
#[allow(clippy::too_many_arguments)]
pub fn write_report(
    run: &RunDir,
    meta: &RunMeta,
    config: &CompNetExperiment,
    parameters: usize,
    rows: &[EpochRow],
    init: &InitNote,
    evaluation: Option<&Evaluation>,
    selection: &str,
    stopped: Option<&str>,
) -> Result<()> {
    if !rows.is_empty() {
        draw_curves(rows, "CN-vMF end-to-end training", &run.file("curves.png"))?;
    }
    let mut md = String::new();
    let seconds: f64 = rows.iter().map(|r| r.epoch_seconds).sum();
    write_header(
        &mut md,
        "Compositional Nets: classification and occluder localisation under occlusion",
        meta,
        seconds,
        rows.len(),
        &config.model_summary(parameters, init.mixture_size),
        stopped,
    );
    let _ = writeln!(md, "{}\n", config.description);
    let _ = writeln!(md, "## Stages\n");
    let _ = writeln!(
        md,
        "- DCNN (`dcnn/`): L0 validation top-1 {}.",
        init.dcnn_valid_top1
            .map_or("-".to_string(), |v| format!("{v:.2} %"))
    );
    let _ = writeln!(
        md,
        "- Initialisation (`init/`, {:.0} s, {}): {} vMF kernels; mixtures of {} × {} from {} clusters per class (images per cluster {:?}); {} occluder models; CN-WACV binarises at cos > {:.2}.",
        init.seconds,
        init.source,
        config.kernels(),
        init.mixture_size[0],
        init.mixture_size[1],
        init.clusters
            .iter()
            .map(Vec::len)
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join("/"),
        init.clusters,
        init.occluders,
        1.0 - init.bernoulli_threshold
    );
    if !selection.is_empty() {
        let _ = writeln!(md, "- CN-vMF training: model of {selection}.");
    }
    let _ = writeln!(md);
    if let Some(e) = evaluation {
        let _ = writeln!(md, "## Accuracy per occlusion level (top-1, %)\n");
        let _ = writeln!(
            md,
            "| level | images | {} | CN-WACV routed |",
            MODELS.join(" | ")
        );
        let _ = writeln!(md, "|---|---|{}---|", "---|".repeat(MODELS.len()));
        let mean = |m: &str| e.mean_accuracy(m);
        for l in e.levels.iter().chain(&e.kinds) {
            let _ = write!(md, "| {} | {} |", l.level, group_thousands(l.images));
            for m in MODELS {
                let _ = write!(md, " {:.1} |", l.accuracy[m]);
            }
            let _ = writeln!(md, " {:.0} % |", 100.0 * l.routed);
        }
        let _ = write!(md, "| mean L0–L3 | |");
        for m in MODELS {
            let _ = write!(md, " {:.1} |", mean(m));
        }
        let _ = writeln!(md, " |\n");
        let _ = writeln!(
            md,
            "Rows Patch, Clutter, Object: the occluded levels L1–L3 by occluder kind. CN-WACV = the DCNN, or the Bernoulli model when the DCNN's softmax maximum is below τ = {} ({}). CN-vMF scores against {}.\n",
            e.tau, e.tau_source, e.occluder_source
        );
        let _ = writeln!(md, "![accuracy](accuracy.png)\n");
        let _ = writeln!(md, "## Occluder localisation (L1–L3)\n");
        let _ = writeln!(
            md,
            "| model | AUC | TPR at FPR 0.2 | AUC L1 | AUC L2 | AUC L3 |\n|---|---|---|---|---|---|"
        );
        for l in &e.localisation {
            let _ = writeln!(
                md,
                "| {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} |",
                l.model,
                l.auc,
                l.tpr_at_fpr_02,
                l.auc_per_level[0],
                l.auc_per_level[1],
                l.auc_per_level[2]
            );
        }
        let _ = writeln!(
            md,
            "\nROC over feature positions against occluder ∧ object, thresholds −100 … 99.95, averaged per class then weighted by class counts{}.\n",
            if config.eval.official_tp_hack {
                "; the released TP hack is on"
            } else {
                ""
            }
        );
        let _ = writeln!(md, "![roc](roc.png)\n");
        for level in OcclusionLevel::ALL {
            let file = format!("occluders-{level:?}.png");
            if run.file(&file).is_file() {
                let _ = writeln!(md, "![{level:?}]({file})\n");
            }
        }
    }
    if !rows.is_empty() {
        let _ = writeln!(md, "## CN-vMF training\n\n![curves](curves.png)\n");
        let _ = writeln!(
            md,
            "| epoch | lr | train loss | valid loss | train top-1 | valid top-1 | s |\n|---|---|---|---|---|---|---|"
        );
        for r in rows {
            let _ = writeln!(
                md,
                "| {} | {:.2e} | {:.4} | {:.4} | {:.1} % | {:.1} % | {:.0} |",
                r.epoch,
                r.lr,
                r.train_loss,
                r.valid_loss,
                r.train_top1,
                r.valid_top1,
                r.epoch_seconds
            );
        }
    }
    write_atomically(&run.file("report.md"), md.as_bytes())
        .with_context(|| format!("writing {}", run.file("report.md").display()))
}
