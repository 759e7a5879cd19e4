//! Zero-shot retrieval of a trained student (`sake.md` §2.6, §2.7): unseen-class sketches
//! (domain bit 0) against unseen-class photos (domain bit 1), ranked by −distance of the
//! L2-normalised embeddings and by Hamming distance of ITQ codes; mAP@all, P@k (and mAP@k, P@k at
//! `eval.top`), precision–recall curves, and the retrieval sheet.

use std::{path::Path, sync::Arc};

use anyhow::{Result, bail};
use burn::{data::dataset::Dataset, tensor::backend::Backend};
use core_train::plot::{Panel, draw_tile_grid, draw_xy};
use datasets::EpochLoader;
use image::{Rgb, RgbImage};

use super::{
    config::SakeExperiment,
    data::{ImageSet, Plain, SakeBatcher, SakeSources},
};
use crate::{
    SakeNet,
    itq::{FitSet, Itq, PackedCodes, hamming_scores, matrix},
    retrieval::{RetrievalScores, euclidean_scores, evaluate, l2_normalize, ranking},
};

/// Embeddings of one image set: `[n, dim]` row-major (L2-normalised), labels, and each row's
/// index in the set (images a loader skipped are absent).
#[derive(Clone, Debug)]
pub struct Embedded {
    pub features: Vec<f32>,
    pub labels: Vec<usize>,
    pub indices: Vec<usize>,
    pub dim: usize,
}

/// The student's L2-normalised embeddings of `set` (evaluation mode, the set's domain bit).
pub fn embed<B: Backend>(
    student: &SakeNet<B>,
    set: &Arc<dyn ImageSet>,
    config: &SakeExperiment,
    size: usize,
    device: &B::Device,
) -> Result<Embedded> {
    let batcher = SakeBatcher {
        normalization: config.data.normalization(),
        relations: Arc::new(Vec::new()),
    };
    let loader = EpochLoader::<B, _, _>::new(
        Arc::new(Plain {
            set: set.clone(),
            size,
        }),
        batcher,
        config.eval.batch_size,
        device.clone(),
    )
    .workers(config.train.num_workers)
    .skip_failures(config.data.skip_corrupt());
    let status = loader.status();
    let (mut features, mut labels, mut indices) = (Vec::new(), Vec::new(), Vec::new());
    for batch in burn::data::dataloader::DataLoader::iter(&loader) {
        let e = student.embed(batch.images, batch.domain);
        features.extend(e.into_data().iter::<f32>());
        labels.extend(batch.labels.into_data().iter::<i64>().map(|l| l as usize));
        indices.extend(batch.indices);
    }
    if let Some(failure) = status.failure() {
        bail!("embedding stopped: {failure}");
    }
    let dim = config.model.hashing_dim;
    Ok(Embedded {
        features: l2_normalize(&features, dim),
        labels,
        indices,
        dim,
    })
}

/// Both rankings' scores and curves.
#[derive(Clone, Debug)]
pub struct Retrieval {
    pub real: RetrievalScores,
    pub binary: RetrievalScores,
    pub bits: usize,
    /// Each sheet query's index and its top-10 gallery indices (real-valued ranking).
    pub sheet: Vec<(usize, Vec<usize>)>,
}

/// Queries against the gallery, real-valued and as ITQ codes (§2.6, §2.7).
pub fn retrieve(
    queries: &Embedded,
    gallery: &Embedded,
    config: &SakeExperiment,
) -> Result<Retrieval> {
    let e = &config.eval;
    let dim = queries.dim;
    let real_scores = |i: usize| {
        euclidean_scores(
            &queries.features[i * dim..(i + 1) * dim],
            &gallery.features,
            dim,
        )
    };
    let real = evaluate(
        &queries.labels,
        &gallery.labels,
        real_scores,
        e.top,
        e.precision_k,
        e.map_reduction,
    )?;
    let (q, g) = (
        matrix(&queries.features, dim),
        matrix(&gallery.features, dim),
    );
    let fit_on = match e.itq.fit_on {
        FitSet::Query => q.clone(),
        FitSet::Gallery => g.clone(),
        FitSet::Both => {
            let rows: Vec<f32> = queries
                .features
                .iter()
                .chain(&gallery.features)
                .copied()
                .collect();
            matrix(&rows, dim)
        }
    };
    let itq = Itq::fit(&fit_on, &e.itq)?;
    let (query_codes, gallery_codes) = (
        PackedCodes::pack(&itq.encode(&q)),
        PackedCodes::pack(&itq.encode(&g)),
    );
    let binary_scores = |i: usize| hamming_scores(query_codes.code(i), &gallery_codes);
    let binary = evaluate(
        &queries.labels,
        &gallery.labels,
        binary_scores,
        e.top,
        e.precision_k,
        e.map_reduction,
    )?;
    let sheet = sheet_queries(&queries.labels, e.sheet_queries)
        .into_iter()
        .map(|i| (i, ranking(&real_scores(i)).into_iter().take(10).collect()))
        .collect();
    Ok(Retrieval {
        real,
        binary,
        bits: e.itq.bits,
        sheet,
    })
}

/// `count` queries spread over the classes: the first query of each class in turn.
fn sheet_queries(labels: &[usize], count: usize) -> Vec<usize> {
    let mut classes: Vec<usize> = labels.to_vec();
    classes.sort_unstable();
    classes.dedup();
    let mut picked = Vec::new();
    for round in 0.. {
        let before = picked.len();
        for &c in &classes {
            if picked.len() == count {
                return picked;
            }
            if let Some(i) = labels
                .iter()
                .enumerate()
                .filter(|(_, l)| **l == c)
                .nth(round)
            {
                picked.push(i.0);
            }
        }
        if picked.len() == before {
            break;
        }
    }
    picked
}

/// `pr-curves.png`: real-valued against binary codes.
pub fn draw_precision_recall(retrieval: &Retrieval, dim: usize, path: &Path) -> Result<()> {
    let panel = Panel {
        name: "unseen-class retrieval".into(),
        series: vec![
            (
                format!("real-valued ({dim}-d)"),
                retrieval.real.interpolated_pr.clone(),
            ),
            (
                format!("binary ({} bits, ITQ)", retrieval.bits),
                retrieval.binary.interpolated_pr.clone(),
            ),
        ],
    };
    draw_xy(
        &[panel],
        "precision–recall (mean interpolated precision)",
        "recall",
        path,
    )
}

/// `retrieval.png`: per row a query sketch, then its 10 nearest gallery photos, framed green
/// when of the query's class and red when not.
pub fn draw_sheet(
    retrieval: &Retrieval,
    sources: &SakeSources,
    queries: &Embedded,
    gallery: &Embedded,
    path: &Path,
) -> Result<()> {
    let tile = |set: &Arc<dyn ImageSet>, index: usize| -> Result<RgbImage> {
        let item = Plain {
            set: set.clone(),
            size: sources.image_size.max(48),
        }
        .get(index)
        .ok_or_else(|| anyhow::anyhow!("image {index} could not be loaded for the sheet"))?;
        let bytes = item
            .pixels
            .iter()
            .map(|v| (v * 255.0).round() as u8)
            .collect();
        Ok(RgbImage::from_raw(item.size as u32, item.size as u32, bytes).expect("[H, W, 3]"))
    };
    let mut tiles: Vec<(RgbImage, String)> = Vec::new();
    for (query, top) in &retrieval.sheet {
        let class = queries.labels[*query];
        let name = &sources.unseen_names[class];
        tiles.push((
            tile(&sources.queries, queries.indices[*query])?,
            format!("query: {name}"),
        ));
        for (rank, &g) in top.iter().enumerate() {
            let hit = gallery.labels[g] == class;
            let colour = if hit {
                Rgb([0, 170, 0])
            } else {
                Rgb([220, 0, 0])
            };
            tiles.push((
                framed(tile(&sources.gallery, gallery.indices[g])?, colour),
                format!("{} {}", rank + 1, sources.unseen_names[gallery.labels[g]]),
            ));
        }
        // Rows are 11 wide: pad a short gallery's row.
        while !tiles.len().is_multiple_of(11) {
            tiles.push((
                RgbImage::from_pixel(8, 8, Rgb([255, 255, 255])),
                String::new(),
            ));
        }
    }
    let refs: Vec<(&RgbImage, &str)> = tiles.iter().map(|(t, c)| (t, c.as_str())).collect();
    draw_tile_grid(
        &refs,
        11,
        "query sketch, its 10 nearest photos (green: same class)",
        path,
    )
}

/// `image` with a 3-pixel border of `colour`.
fn framed(mut image: RgbImage, colour: Rgb<u8>) -> RgbImage {
    let (w, h) = image.dimensions();
    for y in 0..h {
        for x in 0..w {
            if x < 3 || y < 3 || x + 3 >= w || y + 3 >= h {
                image.put_pixel(x, y, colour);
            }
        }
    }
    image
}
