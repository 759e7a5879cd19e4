//! Retrieval evaluation of zero-shot SBIR (`sake.md` §2.6): queries (unseen-class sketches) rank the
//! gallery (unseen-class photos) by score — minus the Euclidean distance of L2-normalised features,
//! or minus the Hamming distance of binary codes (§2.7) — ties broken by gallery index (the
//! official unstable sort leaves them unspecified). Per query the VOC all-point AP, optionally on
//! the top k (mAP@k), and precision at k; mAP over queries (the default) or the mean of per-class
//! means (DSN-style). A query without a positive in the gallery is an error, never a NaN.

use anyhow::{Result, bail};
use rayon::prelude::*;
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
    assert!(
        query.len() == dim && gallery.len().is_multiple_of(dim.max(1)),
        "retrieval features: a query of {} values and a gallery of {} values are not rows of {dim}",
        query.len(),
        gallery.len()
    );
    gallery
        .chunks(dim)
        .map(|g| -squared_distance(query, g).sqrt())
        .collect()
}

/// `Σ (a − b)²`, differences in f32 and squares summed in f64, in four running sums (which the
/// compiler vectorises; one sum in order would be a chain of dependent additions). Since
/// 2026-12-01; the single sum before rounded differently in the last bits, so exact distance
/// ties, and mAPs in their last digits, may differ from runs before that.
fn squared_distance(a: &[f32], b: &[f32]) -> f64 {
    let square = |(x, y): (&f32, &f32)| f64::from(x - y).powi(2);
    let (a4, b4) = (a.chunks_exact(4), b.chunks_exact(4));
    let tail: f64 = a4.remainder().iter().zip(b4.remainder()).map(square).sum();
    let mut sums = [0.0f64; 4];
    for (x, y) in a4.zip(b4) {
        for (sum, pair) in sums.iter_mut().zip(x.iter().zip(y)) {
            *sum += square(pair);
        }
    }
    sums.iter().sum::<f64>() + tail
}

/// Gallery indices by descending score (`f64::total_cmp`), ties by ascending index (a stable
/// order). Sorts `(key, index)` pairs, which are all distinct, so an unstable sort of them gives
/// exactly that order without an indirect comparison per step.
pub fn ranking(scores: &[f64]) -> Vec<usize> {
    let mut keyed: Vec<(u64, usize)> = scores
        .iter()
        .enumerate()
        .map(|(i, &s)| (descending_key(s), i))
        .collect();
    keyed.sort_unstable();
    keyed.into_iter().map(|(_, i)| i).collect()
}

/// A key whose ascending order is the descending order of `f64::total_cmp`: negatives (sign bit
/// set) have every bit flipped, the rest only the sign bit (total_cmp's key), then all bits flip.
fn descending_key(score: f64) -> u64 {
    let bits = score.to_bits();
    let ascending = if bits >> 63 == 1 {
        !bits
    } else {
        bits | 1 << 63
    };
    !ascending
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

/// One query's contributions to [`RetrievalScores`].
struct QueryScores {
    ap_all: f64,
    ap_top: Option<f64>,
    precision: f64,
    pr: [f64; PR_POINTS],
}

/// Evaluates every query against the gallery given each query's scores (`scores(q)` returns one
/// score per gallery item, higher = more similar); the queries run in parallel.
pub fn evaluate(
    query_labels: &[usize],
    gallery_labels: &[usize],
    scores: impl Fn(usize) -> Vec<f64> + Sync,
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
    let mut positives = Vec::with_capacity(query_labels.len());
    for (q, &label) in query_labels.iter().enumerate() {
        let count = gallery_labels.iter().filter(|&&g| g == label).count();
        if count == 0 {
            bail!("query {q} (class {label}) has no positive in the gallery: its AP is undefined");
        }
        positives.push(count);
    }
    // Queries in parallel; their results are summed in query order, so the numbers do not depend
    // on the thread count.
    let per_query: Vec<QueryScores> = (0..query_labels.len())
        .into_par_iter()
        .map(|q| {
            let (label, positives) = (query_labels[q], positives[q]);
            let order = ranking(&scores(q));
            let relevant: Vec<bool> = order.iter().map(|&g| gallery_labels[g] == label).collect();
            QueryScores {
                ap_all: average_precision(&relevant, positives, None),
                ap_top: top.map(|k| average_precision(&relevant, positives, Some(k))),
                precision: precision_at(&relevant, precision_k),
                pr: interpolated_precision(&relevant, positives),
            }
        })
        .collect();
    let ap_all: Vec<f64> = per_query.iter().map(|s| s.ap_all).collect();
    let ap_top: Vec<f64> = per_query.iter().filter_map(|s| s.ap_top).collect();
    let precision: f64 = per_query.iter().map(|s| s.precision).sum();
    let mut pr = [0.0f64; PR_POINTS];
    for s in &per_query {
        for (sum, p) in pr.iter_mut().zip(s.pr) {
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
