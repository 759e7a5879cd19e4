//! Retrieval evaluation of zero-shot SBIR (`sake.md` §2.6): queries (unseen-class sketches) rank the
//! gallery (unseen-class photos) by score — minus the Euclidean distance of L2-normalised features,
//! or minus the Hamming distance of binary codes (§2.7) — ties broken by gallery index (the
//! official unstable sort leaves them unspecified). Per query the VOC all-point AP, optionally on
//! the top k (mAP@k), and precision at k; mAP over queries (the default) or the mean of per-class
//! means (DSN-style). A query without a positive in the gallery is an error, never a NaN.

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

/// How per-query APs become one number.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MapReduction {
    /// The mean over all queries (mAP@all as the paper reports it).
    #[default]
    Queries,
    /// The mean over classes of each class's mean over its queries (DSN-style).
    Classes,
}

/// Rows scaled to unit L2 norm (`[n, dim]` row-major; a zero row stays zero).
pub fn l2_normalize(features: &[f32], dim: usize) -> Vec<f32> {
    features
        .chunks(dim)
        .flat_map(|row| {
            let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
            row.iter().map(move |v| v / norm)
        })
        .collect()
}

/// Scores of every gallery row for one query: minus the Euclidean distance.
pub fn euclidean_scores(query: &[f32], gallery: &[f32], dim: usize) -> Vec<f64> {
    gallery
        .chunks(dim)
        .map(|g| {
            -g.iter()
                .zip(query)
                .map(|(a, b)| ((a - b) as f64).powi(2))
                .sum::<f64>()
                .sqrt()
        })
        .collect()
}

/// Gallery indices by descending score, ties by ascending index (a stable order).
pub fn ranking(scores: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    order
}

/// VOC all-point average precision of a ranked list of relevance flags (`relevant[r]` for rank r),
/// over the first `top` ranks when given (recall denominator `min(top, positives)`); `positives`
/// is the number of relevant gallery items.
pub fn average_precision(relevant: &[bool], positives: usize, top: Option<usize>) -> f64 {
    let ranks = top.map_or(relevant.len(), |k| k.min(relevant.len()));
    let denominator = top.map_or(positives, |k| k.min(positives)).max(1) as f64;
    // (recall, precision) at every rank, with the sentinels (0, 0) and (1, 0).
    let mut recall = vec![0.0];
    let mut precision = vec![0.0];
    let mut tp = 0usize;
    for (r, &hit) in relevant[..ranks].iter().enumerate() {
        tp += hit as usize;
        recall.push(tp as f64 / denominator);
        precision.push(tp as f64 / (r + 1) as f64);
    }
    recall.push(1.0);
    precision.push(0.0);
    // Precision made non-increasing from the right.
    for i in (0..precision.len() - 1).rev() {
        precision[i] = precision[i].max(precision[i + 1]);
    }
    (1..recall.len())
        .filter(|&i| recall[i] != recall[i - 1])
        .map(|i| (recall[i] - recall[i - 1]) * precision[i])
        .sum()
}

/// Fraction of positives among the first `min(k, gallery)` ranks.
pub fn precision_at(relevant: &[bool], k: usize) -> f64 {
    let n = k.min(relevant.len()).max(1);
    relevant[..k.min(relevant.len())]
        .iter()
        .filter(|&&r| r)
        .count() as f64
        / n as f64
}

/// What a retrieval evaluation reports.
#[derive(Clone, Debug, PartialEq)]
pub struct RetrievalScores {
    /// mAP over the whole ranking (reduced as asked).
    pub map_all: f64,
    /// mAP over the first `top` ranks (`None` when not asked).
    pub map_top: Option<f64>,
    /// Mean precision at `precision_k`.
    pub precision: f64,
    pub precision_k: usize,
    pub queries: usize,
    /// The mean over queries of the interpolated precision (the best precision at any recall
    /// ≥ r) at r = 0, 0.05, …, 1: the precision–recall curve.
    pub interpolated_pr: Vec<(f64, f64)>,
}

/// Points of [`RetrievalScores::interpolated_pr`].
const PR_POINTS: usize = 21;

/// One query's interpolated precision at the [`PR_POINTS`] recall levels.
fn interpolated_precision(relevant: &[bool], positives: usize) -> [f64; PR_POINTS] {
    let mut best_from = vec![0.0f64; relevant.len() + 1]; // max precision at ranks ≥ r
    let mut recall_at = vec![0.0f64; relevant.len()];
    let mut hits = 0usize;
    let precision: Vec<f64> = relevant
        .iter()
        .enumerate()
        .map(|(r, &hit)| {
            hits += hit as usize;
            recall_at[r] = hits as f64 / positives.max(1) as f64;
            hits as f64 / (r + 1) as f64
        })
        .collect();
    for r in (0..relevant.len()).rev() {
        best_from[r] = best_from[r + 1].max(precision[r]);
    }
    std::array::from_fn(|p| {
        let level = p as f64 / (PR_POINTS - 1) as f64;
        // The first rank reaching this recall; precision is maximised over it and later ranks.
        recall_at
            .iter()
            .position(|&rc| rc >= level - 1e-12)
            .map_or(0.0, |r| best_from[r])
    })
}

/// Evaluates every query against the gallery given each query's scores (`scores(q)` returns one
/// score per gallery item, higher = more similar).
pub fn evaluate(
    query_labels: &[usize],
    gallery_labels: &[usize],
    scores: impl Fn(usize) -> Vec<f64>,
    top: Option<usize>,
    precision_k: usize,
    reduction: MapReduction,
) -> Result<RetrievalScores> {
    if query_labels.is_empty() || gallery_labels.is_empty() {
        bail!(
            "retrieval needs queries and a gallery ({} queries, {} gallery items)",
            query_labels.len(),
            gallery_labels.len()
        );
    }
    let mut ap_all = Vec::with_capacity(query_labels.len());
    let mut ap_top = Vec::with_capacity(query_labels.len());
    let mut precision = 0.0;
    let mut pr = [0.0f64; PR_POINTS];
    for (q, &label) in query_labels.iter().enumerate() {
        let positives = gallery_labels.iter().filter(|&&g| g == label).count();
        if positives == 0 {
            bail!("query {q} (class {label}) has no positive in the gallery: its AP is undefined");
        }
        let order = ranking(&scores(q));
        let relevant: Vec<bool> = order.iter().map(|&g| gallery_labels[g] == label).collect();
        ap_all.push(average_precision(&relevant, positives, None));
        if let Some(k) = top {
            ap_top.push(average_precision(&relevant, positives, Some(k)));
        }
        precision += precision_at(&relevant, precision_k);
        for (sum, p) in pr
            .iter_mut()
            .zip(interpolated_precision(&relevant, positives))
        {
            *sum += p;
        }
    }
    let reduce = |aps: &[f64]| match reduction {
        MapReduction::Queries => aps.iter().sum::<f64>() / aps.len() as f64,
        MapReduction::Classes => {
            let mut classes: Vec<usize> = query_labels.to_vec();
            classes.sort_unstable();
            classes.dedup();
            classes
                .iter()
                .map(|&c| {
                    let members: Vec<f64> = query_labels
                        .iter()
                        .zip(aps)
                        .filter(|(l, _)| **l == c)
                        .map(|(_, &ap)| ap)
                        .collect();
                    members.iter().sum::<f64>() / members.len() as f64
                })
                .sum::<f64>()
                / classes.len() as f64
        }
    };
    Ok(RetrievalScores {
        map_all: reduce(&ap_all),
        map_top: top.map(|_| reduce(&ap_top)),
        precision: precision / query_labels.len() as f64,
        precision_k,
        queries: query_labels.len(),
        interpolated_pr: pr
            .iter()
            .enumerate()
            .map(|(p, s)| {
                (
                    p as f64 / (PR_POINTS - 1) as f64,
                    s / query_labels.len() as f64,
                )
            })
            .collect(),
    })
}
