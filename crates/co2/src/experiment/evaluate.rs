//! What a CO2 run shows: the kNN monitor per epoch, the embeddings of the validation split, the
//! curves, the pictures and the report.

use std::fmt::Write as _;

use anyhow::{Context, Result, bail};
use burn::{data::dataloader::DataLoader, tensor::backend::Backend};
use core_train::{
    RunDir, RunMeta,
    checkpoint::write_atomically,
    plot::{Panel, draw_panels},
};
use datasets::{ClassificationBatcher, EpochLoader};

use super::{
    config::Co2Experiment,
    data::{Co2Sources, Items},
    lincls::SupervisedResult,
    train::Co2Row,
};
use crate::{Encoder, knn::knn_predict};

/// Unit embeddings of a split and their labels.
#[derive(Debug)]
pub struct Embedding {
    /// `[n, dim]` row-major.
    pub features: Vec<f32>,
    pub labels: Vec<usize>,
    pub dim: usize,
}

/// The encoder's (eval-mode) embeddings of `items`.
pub fn embed<B: Backend>(
    encoder: &Encoder<B>,
    items: &Items,
    images: &ClassificationBatcher,
    config: &Co2Experiment,
    device: &B::Device,
) -> Result<Embedding> {
    let loader = EpochLoader::<B, _, _>::new(
        items.clone(),
        images.clone(),
        config.train.batch_size,
        device.clone(),
    )
    .workers(config.train.num_workers)
    .skip_failures(config.data.skip_corrupt());
    let status = loader.status();
    let (mut features, mut labels) = (Vec::new(), Vec::new());
    for batch in loader.iter() {
        features.extend(encoder.forward(batch.images).into_data().iter::<f32>());
        labels.extend(batch.targets.into_data().iter::<i64>().map(|l| l as usize));
    }
    if let Some(failure) = status.failure() {
        bail!("embedding stopped: {failure}");
    }
    Ok(Embedding {
        features,
        labels,
        dim: config.model.dim,
    })
}

/// Cosine similarities of the query embedding of one view of each validation image to the key
/// embedding of another view (positives) and to the queue's keys (negatives, the first 64 columns),
/// both encoders in eval mode: the picture of how far apart the two kinds of pairs ended.
pub fn similarity_samples<B: Backend>(
    model: &crate::Moco<B>,
    sources: &Co2Sources,
    images: &ClassificationBatcher,
    config: &Co2Experiment,
    device: &B::Device,
) -> Result<(Vec<f64>, Vec<f64>)> {
    let views = datasets::TwoViews::new(
        sources.valid.clone(),
        config
            .data
            .augmentation()
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("data.augmentation is missing"))?,
        config.train.seed ^ 0x7369_6d73,
        std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0)),
    )
    .map_err(|e| anyhow::anyhow!("data.augmentation: {e}"))?;
    let loader = EpochLoader::<B, _, _>::new(
        std::sync::Arc::new(views),
        super::data::PairBatcher {
            images: images.clone(),
        },
        config.train.batch_size,
        device.clone(),
    )
    .workers(config.train.num_workers);
    let queue = model.queue.snapshot();
    let columns = queue.dims()[1].min(64);
    let negatives = queue.narrow(1, 0, columns);
    let (mut positive, mut negative) = (Vec::new(), Vec::new());
    for batch in loader.iter() {
        let q = model.encoder_q.forward(batch.query);
        let k = model.encoder_k.forward(batch.key);
        positive.extend(crate::loss::row_dot(q.clone(), k).into_data().iter::<f64>());
        negative.extend(q.matmul(negatives.clone()).into_data().iter::<f64>());
    }
    if let Some(failure) = loader.status().failure() {
        bail!("similarities stopped: {failure}");
    }
    Ok((positive, negative))
}

/// The kNN monitor's memory: the training split's embeddings and labels, and how they vote.
#[derive(Debug)]
pub struct KnnMemory {
    pub embedding: Embedding,
    pub classes: usize,
    pub k: usize,
    pub temperature: f64,
}

impl KnnMemory {
    /// The memory of `encoder`: the training split embedded.
    pub fn of<B: Backend>(
        encoder: &Encoder<B>,
        sources: &Co2Sources,
        images: &ClassificationBatcher,
        config: &Co2Experiment,
        device: &B::Device,
    ) -> Result<Self> {
        let embedding = embed(encoder, &sources.train, images, config, device)?;
        if embedding.labels.is_empty() {
            bail!("the kNN monitor has no training image (all skipped?)");
        }
        Ok(Self {
            embedding,
            classes: sources.classes.len(),
            k: config.knn.k,
            temperature: config.knn.temperature,
        })
    }

    /// How many of `queries` (`[n, dim]` unit rows) the memory's vote gives their `labels`.
    pub fn correct(&self, queries: &[f32], labels: &[usize]) -> usize {
        let m = &self.embedding;
        knn_predict(
            queries,
            &m.features,
            &m.labels,
            m.dim,
            self.classes,
            self.k,
            self.temperature,
        )
        .iter()
        .zip(labels)
        .filter(|(p, l)| p == l)
        .count()
    }
}

/// kNN top-1 (%) of the validation split against the training split as memory.
pub fn knn_accuracy<B: Backend>(
    encoder: &Encoder<B>,
    sources: &Co2Sources,
    images: &ClassificationBatcher,
    config: &Co2Experiment,
    device: &B::Device,
) -> Result<f64> {
    let memory = KnnMemory::of(encoder, sources, images, config, device)?;
    let queries = embed(encoder, &sources.valid, images, config, device)?;
    if queries.labels.is_empty() {
        bail!("the kNN monitor has no validation image (all skipped?)");
    }
    let correct = memory.correct(&queries.features, &queries.labels);
    Ok(100.0 * correct as f64 / queries.labels.len() as f64)
}

/// `curves.png` and `report.md` (and, for a finished run, `embedding.png`).
#[allow(clippy::too_many_arguments)]
pub fn write_outputs(
    run: &RunDir,
    meta: &RunMeta,
    config: &Co2Experiment,
    parameters: usize,
    rows: &[Co2Row],
    stages: &[SupervisedResult],
    embedding: Option<&Embedding>,
    similarities: Option<&(Vec<f64>, Vec<f64>)>,
    knn: &[(String, f64)],
    classes: &[String],
    error: Option<&str>,
) -> Result<()> {
    let title = format!("{} — {} ({})", meta.paper, config.description, meta.preset);
    if !rows.is_empty() {
        let series = |pick: fn(&Co2Row) -> f64| -> Vec<(f64, f64)> {
            rows.iter().map(|r| (r.epoch as f64, pick(r))).collect()
        };
        let alpha = config.co2.alpha;
        let mut panels = vec![
            Panel {
                name: "pre-training loss".into(),
                series: vec![
                    ("total".into(), series(|r| r.loss)),
                    ("InfoNCE".into(), series(|r| r.info_nce)),
                    (
                        format!("{alpha} · CO2"),
                        rows.iter()
                            .map(|r| (r.epoch as f64, alpha * r.consistency))
                            .collect(),
                    ),
                ],
            },
            Panel {
                name: "mean similarity".into(),
                series: vec![
                    ("positive q·k".into(), series(|r| r.positive_similarity)),
                    ("negative q·n".into(), series(|r| r.negative_similarity)),
                ],
            },
            Panel {
                name: "validation kNN top-1 (%)".into(),
                series: vec![("kNN".into(), series(|r| r.knn_top1))],
            },
        ];
        if !stages.is_empty() {
            panels.push(Panel {
                name: "after pre-training: validation top-1 (%)".into(),
                series: stages
                    .iter()
                    .map(|l| {
                        (
                            l.name.clone(),
                            l.rows
                                .iter()
                                .map(|r| (r.epoch as f64, r.valid_top1))
                                .collect(),
                        )
                    })
                    .collect(),
            });
        }
        draw_panels(&panels, &title, &run.file("curves.png"))?;
    }
    if let Some(embedding) = embedding {
        super::pictures::draw_embedding(embedding, classes, &run.file("embedding.png"))?;
    }
    if let Some((positive, negative)) = similarities {
        core_train::plot::draw_histograms(
            &[
                (
                    "positive pairs (two views of one image)".into(),
                    positive.clone(),
                ),
                ("negative pairs (query and queue)".into(), negative.clone()),
            ],
            (-1.0, 1.0),
            50,
            "cosine similarity at the end of pre-training (validation images)",
            "q·k",
            &run.file("similarities.png"),
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
        &config.model_summary(parameters),
        error,
    );
    if !knn.is_empty() || !stages.is_empty() {
        let _ = writeln!(md, "## Result\n");
        let _ = writeln!(md, "| | top-1 | top-5 |\n|---|---|---|");
        for (label, top1) in knn {
            let _ = writeln!(
                md,
                "| kNN monitor (k = {}, T = {}), {label} | {top1:.2} % | |",
                config.knn.k, config.knn.temperature
            );
        }
        for l in stages {
            let _ = writeln!(
                md,
                "| {} ({} images), final epoch {} | {:.2} % | {:.2} % |",
                l.name,
                l.images,
                l.rows.len(),
                l.final_top1,
                l.final_top5
            );
            let _ = writeln!(
                md,
                "| {}, best epoch | {:.2} % | {:.2} % |",
                l.name, l.best_top1, l.best_top5
            );
        }
        let _ = writeln!(
            md,
            "\nChance level: {:.1} % ({} classes).\n",
            100.0 / classes.len().max(1) as f64,
            classes.len()
        );
    }
    let _ = writeln!(
        md,
        "![losses, similarities, kNN and the supervised stages per epoch](curves.png)\n"
    );
    if embedding.is_some() {
        let _ = writeln!(
            md,
            "![validation embeddings, first two principal components, by class](embedding.png)\n"
        );
    }
    if similarities.is_some() {
        let _ = writeln!(
            md,
            "![positive and negative similarities at the end](similarities.png)\n"
        );
    }
    let _ = writeln!(md, "## Pre-training epochs\n");
    let _ = writeln!(
        md,
        "| epoch | mean lr | loss | InfoNCE | CO2 | sim pos | sim neg | kNN top-1 | img/s | s |\n|---|---|---|---|---|---|---|---|---|---|"
    );
    for r in rows {
        let _ = writeln!(
            md,
            "| {} | {:.2e} | {:.4} | {:.4} | {:.4} | {:.3} | {:.3} | {:.2} | {:.0} | {:.0} |",
            r.epoch,
            r.lr,
            r.loss,
            r.info_nce,
            r.consistency,
            r.positive_similarity,
            r.negative_similarity,
            r.knn_top1,
            r.train_images_per_s,
            r.epoch_seconds
        );
    }
    for l in stages {
        let mut heading = l.name.clone();
        heading[..1].make_ascii_uppercase();
        let _ = writeln!(md, "\n## {heading}: epochs\n");
        let _ = writeln!(
            md,
            "| epoch | lr | train loss | valid top-1 | valid top-5 |\n|---|---|---|---|---|"
        );
        for r in &l.rows {
            let _ = writeln!(
                md,
                "| {} | {:.2e} | {:.4} | {:.2} | {:.2} |",
                r.epoch, r.lr, r.train_loss, r.valid_top1, r.valid_top5
            );
        }
    }
    let toml = toml::to_string_pretty(config).context("serialising the config as TOML")?;
    let _ = writeln!(md, "\n## Configuration\n\n```toml\n{toml}```");
    write_atomically(&run.file("report.md"), md.as_bytes())
        .with_context(|| format!("writing {}", run.file("report.md").display()))
}
