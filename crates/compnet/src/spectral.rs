//! The mixtures' clustering (`compnet.md` §2.9 step 3): images of a class are split by spectral
//! clustering of their similarity `1 − distance` (2 clusters per split), two levels deep, so at
//! most 4 leaves; a node is split only if it holds more than 10 % of the class's images, and
//! leaves with at most 2 % are dropped. A split is scikit-learn's `SpectralClustering(2,
//! affinity='precomputed')` in outline: the two leading eigenvectors of `D^-½ A D^-½`, rows scaled
//! by `D^-½`, signs fixed, then 2-means (k-means++ restarts from a seeded generator, the lowest
//! inertia kept). The generator differs from scikit-learn's, so ties and restarts may split
//! differently from the released files.

use nalgebra::{DMatrix, SymmetricEigen};
use rand::{RngExt, SeedableRng, rngs::StdRng};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpectralConfig {
    /// Levels of 2-way splits (2: at most 4 leaves).
    pub levels: usize,
    /// A node is split only if it holds more than this fraction of the images.
    pub min_split_fraction: f64,
    /// Leaves with at most this fraction of the images are dropped.
    pub min_leaf_fraction: f64,
    pub seed: u64,
}

impl Default for SpectralConfig {
    fn default() -> Self {
        Self {
            levels: 2,
            min_split_fraction: 0.1,
            min_leaf_fraction: 0.02,
            seed: 0,
        }
    }
}

/// The spectral embedding (2 columns) of the nodes `members` of the `n × n` similarity matrix.
pub fn spectral_embedding(similarity: &[f64], n: usize, members: &[usize]) -> Vec<[f64; 2]> {
    let m = members.len();
    let a = DMatrix::from_fn(m, m, |i, j| similarity[members[i] * n + members[j]]);
    let degree: Vec<f64> = (0..m).map(|i| a.row(i).sum().max(1e-12)).collect();
    let normalised = DMatrix::from_fn(m, m, |i, j| a[(i, j)] / (degree[i] * degree[j]).sqrt());
    let eigen = SymmetricEigen::new(normalised);
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&x, &y| eigen.eigenvalues[y].total_cmp(&eigen.eigenvalues[x]));
    let mut columns: Vec<Vec<f64>> = order
        .iter()
        .take(2)
        .map(|&c| {
            (0..m)
                .map(|i| eigen.eigenvectors[(i, c)] / degree[i].sqrt())
                .collect()
        })
        .collect();
    // scikit-learn's deterministic sign: the entry of largest magnitude is positive.
    for column in &mut columns {
        let largest = column
            .iter()
            .copied()
            .fold(0.0f64, |a, v| if v.abs() > a.abs() { v } else { a });
        if largest < 0.0 {
            column.iter_mut().for_each(|v| *v = -*v);
        }
    }
    (0..m)
        .map(|i| [columns[0][i], columns.get(1).map_or(0.0, |c| c[i])])
        .collect()
}

/// 2-means of points: labels 0/1 from the best of `restarts` k-means++ starts.
pub fn two_means(points: &[[f64; 2]], restarts: usize, seed: u64) -> Vec<usize> {
    let n = points.len();
    let dist = |a: [f64; 2], b: [f64; 2]| (a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut best: Option<(f64, Vec<usize>)> = None;
    for _ in 0..restarts.max(1) {
        let first = points[rng.random_range(0..n)];
        let weights: Vec<f64> = points.iter().map(|&p| dist(p, first)).collect();
        let total: f64 = weights.iter().sum();
        let second = if total > 0.0 {
            let mut target = rng.random_range(0.0..total);
            let mut pick = n - 1;
            for (i, w) in weights.iter().enumerate() {
                if target < *w {
                    pick = i;
                    break;
                }
                target -= w;
            }
            points[pick]
        } else {
            first
        };
        let mut centres = [first, second];
        let mut labels = vec![0usize; n];
        for _ in 0..300 {
            let next: Vec<usize> = points
                .iter()
                .map(|&p| usize::from(dist(p, centres[1]) < dist(p, centres[0])))
                .collect();
            let changed = next != labels;
            labels = next;
            for (c, centre) in centres.iter_mut().enumerate() {
                let members: Vec<[f64; 2]> = points
                    .iter()
                    .zip(&labels)
                    .filter(|(_, l)| **l == c)
                    .map(|(p, _)| *p)
                    .collect();
                if !members.is_empty() {
                    let k = members.len() as f64;
                    *centre = [
                        members.iter().map(|p| p[0]).sum::<f64>() / k,
                        members.iter().map(|p| p[1]).sum::<f64>() / k,
                    ];
                }
            }
            if !changed {
                break;
            }
        }
        let inertia: f64 = points
            .iter()
            .zip(&labels)
            .map(|(&p, &l)| dist(p, centres[l]))
            .sum();
        if best.as_ref().is_none_or(|(b, _)| inertia < *b) {
            best = Some((inertia, labels));
        }
    }
    best.map(|(_, l)| l).unwrap_or_default()
}

/// The leaves of the hierarchical split of all `n` images (each a list of image indices, in
/// order), small leaves dropped.
pub fn hierarchical_clusters(
    similarity: &[f64],
    n: usize,
    config: &SpectralConfig,
) -> Vec<Vec<usize>> {
    assert_eq!(similarity.len(), n * n, "an n × n similarity matrix");
    let mut nodes = vec![(0..n).collect::<Vec<usize>>()];
    for level in 0..config.levels {
        nodes = nodes
            .into_iter()
            .flat_map(|members| {
                if members.len() < 2 || members.len() as f64 <= config.min_split_fraction * n as f64
                {
                    return vec![members];
                }
                let embedding = spectral_embedding(similarity, n, &members);
                let labels = two_means(&embedding, 10, config.seed.wrapping_add(level as u64));
                let parts: Vec<Vec<usize>> = (0..2)
                    .map(|c| {
                        members
                            .iter()
                            .zip(&labels)
                            .filter(|(_, l)| **l == c)
                            .map(|(i, _)| *i)
                            .collect()
                    })
                    .filter(|p: &Vec<usize>| !p.is_empty())
                    .collect();
                parts
            })
            .collect();
    }
    nodes
        .into_iter()
        .filter(|leaf| leaf.len() as f64 > config.min_leaf_fraction * n as f64)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two blocks of mutually similar images, weakly linked: one split separates them.
    #[test]
    fn a_split_separates_two_blocks() {
        let n = 10;
        let mut s = vec![0.05; n * n];
        for i in 0..n {
            for j in 0..n {
                if (i < 4) == (j < 4) {
                    s[i * n + j] = 0.9;
                }
            }
            s[i * n + i] = 1.0;
        }
        let leaves = hierarchical_clusters(
            &s,
            n,
            &SpectralConfig {
                levels: 1,
                ..SpectralConfig::default()
            },
        );
        let mut leaves = leaves;
        leaves.sort();
        assert_eq!(leaves, vec![(0..4).collect::<Vec<_>>(), (4..10).collect()]);
    }

    fn blocks(sizes: &[usize], within: f64, pair: f64, across: f64) -> (Vec<f64>, Vec<usize>) {
        let n: usize = sizes.iter().sum();
        let block: Vec<usize> = sizes
            .iter()
            .enumerate()
            .flat_map(|(b, &k)| std::iter::repeat_n(b, k))
            .collect();
        let mut s = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                let (a, b) = (block[i], block[j]);
                s[i * n + j] = if i == j {
                    1.0
                } else if a == b {
                    within
                } else if a / 2 == b / 2 {
                    pair
                } else {
                    across
                };
            }
        }
        (s, block)
    }

    /// Four blocks (two pairs) give four pure leaves at two levels.
    #[test]
    fn two_levels_give_four_pure_leaves() {
        let (s, block) = blocks(&[30, 25, 20, 24], 0.95, 0.3, 0.02);
        let leaves = hierarchical_clusters(&s, block.len(), &SpectralConfig::default());
        assert_eq!(leaves.len(), 4);
        for leaf in &leaves {
            assert!(leaf.iter().all(|&i| block[i] == block[leaf[0]]), "{leaf:?}");
        }
    }

    /// A leaf of at most 2 % of the images is dropped; a node of at most 10 % is not split.
    #[test]
    fn small_leaves_are_dropped_and_small_nodes_kept_whole() {
        let (s, block) = blocks(&[98, 2], 0.9, 0.01, 0.01);
        let one_level = SpectralConfig {
            levels: 1,
            ..SpectralConfig::default()
        };
        let leaves = hierarchical_clusters(&s, block.len(), &one_level);
        assert_eq!(leaves, vec![(0..98).collect::<Vec<_>>()]);
        let (s, block) = blocks(&[5, 4], 0.9, 0.01, 0.01);
        let strict = SpectralConfig {
            min_split_fraction: 1.0,
            ..SpectralConfig::default()
        };
        assert_eq!(
            hierarchical_clusters(&s, block.len(), &strict),
            vec![(0..9).collect::<Vec<_>>()]
        );
    }
}
