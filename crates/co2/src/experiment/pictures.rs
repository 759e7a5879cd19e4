//! `embedding.png`: the validation embeddings projected on their first two principal components,
//! coloured by class — whether the self-supervised features separate the classes, at a glance.

use std::path::Path;

use anyhow::Result;

use super::evaluate::Embedding;

/// The top two principal directions of `rows` (`[n, dim]`, row-major) by power iteration on the
/// covariance, and the rows' coordinates along them.
pub fn principal_components(rows: &[f32], dim: usize) -> Vec<(f64, f64)> {
    let n = rows.len() / dim.max(1);
    if n == 0 {
        return Vec::new();
    }
    let mut mean = vec![0f64; dim];
    for row in rows.chunks(dim) {
        for (m, &v) in mean.iter_mut().zip(row) {
            *m += v as f64 / n as f64;
        }
    }
    let centred: Vec<Vec<f64>> = rows
        .chunks(dim)
        .map(|row| row.iter().zip(&mean).map(|(&v, m)| v as f64 - m).collect())
        .collect();
    let mut covariance = vec![0f64; dim * dim];
    for row in &centred {
        for i in 0..dim {
            for j in 0..dim {
                covariance[i * dim + j] += row[i] * row[j] / n as f64;
            }
        }
    }
    let mut directions: Vec<Vec<f64>> = Vec::new();
    for component in 0..2 {
        // A fixed, non-degenerate start; 200 iterations converge for these sizes.
        let mut v: Vec<f64> = (0..dim)
            .map(|i| 1.0 + ((i + component) % 7) as f64)
            .collect();
        for _ in 0..200 {
            let mut next: Vec<f64> = (0..dim)
                .map(|i| (0..dim).map(|j| covariance[i * dim + j] * v[j]).sum())
                .collect();
            for d in &directions {
                let along: f64 = next.iter().zip(d).map(|(a, b)| a * b).sum();
                next.iter_mut().zip(d).for_each(|(a, b)| *a -= along * b);
            }
            let norm = next.iter().map(|a| a * a).sum::<f64>().sqrt();
            if norm < 1e-12 {
                break;
            }
            v = next.into_iter().map(|a| a / norm).collect();
        }
        directions.push(v);
    }
    centred
        .iter()
        .map(|row| {
            let along = |d: &Vec<f64>| row.iter().zip(d).map(|(a, b)| a * b).sum::<f64>();
            (along(&directions[0]), along(&directions[1]))
        })
        .collect()
}

pub fn draw_embedding(embedding: &Embedding, names: &[String], path: &Path) -> Result<()> {
    let points: Vec<(f64, f64, usize)> = principal_components(&embedding.features, embedding.dim)
        .into_iter()
        .zip(&embedding.labels)
        .map(|((x, y), &label)| (x, y, label))
        .collect();
    core_train::plot::draw_scatter(
        &points,
        names,
        "validation embeddings (PCA) by class",
        ["first principal component", "second principal component"],
        path,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_component_follows_the_widest_spread() {
        // Points along (1, 1, 0) with a little spread along (0, 0, 1).
        let rows: Vec<f32> = (0..20)
            .flat_map(|i| {
                let t = i as f32 - 9.5;
                [t, t, 0.1 * (i % 3) as f32]
            })
            .collect();
        let coords = principal_components(&rows, 3);
        let spread = |pick: fn(&(f64, f64)) -> f64| {
            let v: Vec<f64> = coords.iter().map(pick).collect();
            v.iter().cloned().fold(f64::MIN, f64::max) - v.iter().cloned().fold(f64::MAX, f64::min)
        };
        assert!(spread(|c| c.0) > 20.0 && spread(|c| c.1) < 0.5);
    }
}
