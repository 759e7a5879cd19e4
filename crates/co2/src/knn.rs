//! The kNN monitor of self-supervised training (Wu et al. 2018, as MoCo's CIFAR demo runs it): each
//! validation embedding votes with its `k` most similar training embeddings (cosine), each vote
//! weighted `exp(similarity / temperature)`; the class with the largest total wins.

/// Top-1 predictions for `queries` `[n, d]` against `memory` `[m, d]` with `labels`, all rows unit
/// norm (flattened row-major).
pub fn knn_predict(
    queries: &[f32],
    memory: &[f32],
    labels: &[usize],
    dim: usize,
    classes: usize,
    k: usize,
    temperature: f64,
) -> Vec<usize> {
    let m = labels.len();
    let k = k.min(m).max(1);
    queries
        .chunks(dim)
        .map(|q| {
            let mut similarities: Vec<(f32, usize)> = memory
                .chunks(dim)
                .zip(labels)
                .map(|(row, &label)| (row.iter().zip(q).map(|(a, b)| a * b).sum(), label))
                .collect();
            // The k largest similarities, highest first.
            similarities.select_nth_unstable_by(k - 1, |a, b| b.0.total_cmp(&a.0));
            let mut votes = vec![0f64; classes];
            for &(similarity, label) in &similarities[..k] {
                votes[label] += (similarity as f64 / temperature).exp();
            }
            // Ties go to the lower class.
            (0..classes)
                .max_by(|&a, &b| votes[a].total_cmp(&votes[b]).then(b.cmp(&a)))
                .unwrap_or(0)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_weighted_vote_of_the_nearest_wins() {
        // Memory: two class-0 points near (1, 0), three class-1 points near (0, 1).
        let s = std::f32::consts::FRAC_1_SQRT_2;
        let memory = [1.0, 0.0, 0.995, 0.0998, 0.0, 1.0, 0.0998, 0.995, s, s];
        let labels = [0, 0, 1, 1, 1];
        let queries = [0.98, 0.199, 0.1, 0.995];
        assert_eq!(
            knn_predict(&queries, &memory, &labels, 2, 2, 2, 0.1),
            [0, 1]
        );
        // With k = 5 every point votes; the near ones weigh most at a low temperature.
        assert_eq!(
            knn_predict(&queries, &memory, &labels, 2, 2, 5, 0.05),
            [0, 1]
        );
        // At a high temperature the votes are nearly equal and the majority class wins.
        assert_eq!(
            knn_predict(&queries, &memory, &labels, 2, 2, 5, 100.0),
            [1, 1]
        );
    }
}
