//! The mixtures' maximum-likelihood initialisation (`compnet.md` §2.9 steps 4–6, test §8.6), in
//! f64. Each image is a likelihood map `[K × P]` (kernel-major, P positions, zero where padded);
//! the first M-step normalises each position `L / (Σ_k L + 1e-3)` and averages over the images
//! that have a non-zero entry there (`N_samp`); the E-step scores an image under a mixture by
//! `Σ_pos log(Σ_k L·α + 1e-10)`. The released EM overwrites the stored maps with posteriors
//! (`em_inplace_quirk`); [`em_step`] keeps the maps.

/// Per-position normalisation `L / (Σ_k L + 1e-3)` of a `[K × P]` map.
pub fn normalise_map(map: &[f64], kernels: usize) -> Vec<f64> {
    let positions = map.len() / kernels;
    let mut out = map.to_vec();
    for p in 0..positions {
        let sum: f64 = (0..kernels).map(|k| map[k * positions + p]).sum();
        for k in 0..kernels {
            out[k * positions + p] = map[k * positions + p] / (sum + 1e-3);
        }
    }
    out
}

/// `N_samp[k, p]`: how many maps have a non-zero entry at `(k, p)` (padding excluded).
pub fn sample_counts(maps: &[Vec<f64>]) -> Vec<f64> {
    let len = maps.first().map_or(0, Vec::len);
    (0..len)
        .map(|i| maps.iter().filter(|m| m[i] != 0.0).count() as f64)
        .collect()
}

/// `α = Σ_maps values / (N_samp + 1e-5)` where `N_samp > 0`, else 0.
pub fn average_where_sampled(values: &[Vec<f64>], counts: &[f64]) -> Vec<f64> {
    counts
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            if n > 0.0 {
                values.iter().map(|v| v[i]).sum::<f64>() / (n + 1e-5)
            } else {
                0.0
            }
        })
        .collect()
}

/// The first M-step of one mixture over its images' raw maps.
pub fn first_m_step(maps: &[Vec<f64>], kernels: usize) -> Vec<f64> {
    let normalised: Vec<Vec<f64>> = maps.iter().map(|m| normalise_map(m, kernels)).collect();
    average_where_sampled(&normalised, &sample_counts(maps))
}

/// `Σ_pos log(Σ_k L·α + 1e-10)` of map `L` under mixture `α` (both `[K × P]`).
pub fn log_likelihood(map: &[f64], alpha: &[f64], kernels: usize) -> f64 {
    let positions = map.len() / kernels;
    (0..positions)
        .map(|p| {
            let s: f64 = (0..kernels)
                .map(|k| map[k * positions + p] * alpha[k * positions + p])
                .sum();
            (s + 1e-10).ln()
        })
        .sum()
}

/// The posterior `α·L / (Σ_k α·L + 1e-10)` of map `L` under mixture `α` (both `[K × P]`).
pub fn posterior(map: &[f64], alpha: &[f64], kernels: usize) -> Vec<f64> {
    let positions = alpha.len() / kernels;
    let mut r = vec![0.0; map.len()];
    for p in 0..positions {
        let sum: f64 = (0..kernels)
            .map(|k| alpha[k * positions + p] * map[k * positions + p])
            .sum();
        for k in 0..kernels {
            let i = k * positions + p;
            r[i] = alpha[i] * map[i] / (sum + 1e-10);
        }
    }
    r
}

/// One EM iteration over maps assigned to mixtures: E — each map to its best mixture; M — each
/// mixture from the posteriors `α·L / (Σ_k α·L + 1e-10)` of its maps. Returns the assignment and
/// the new mixtures (a mixture left without maps keeps its parameters).
pub fn em_step(
    maps: &[Vec<f64>],
    mixtures: &[Vec<f64>],
    kernels: usize,
) -> (Vec<usize>, Vec<Vec<f64>>) {
    let assignment: Vec<usize> = maps
        .iter()
        .map(|map| {
            let scores: Vec<f64> = mixtures
                .iter()
                .map(|alpha| log_likelihood(map, alpha, kernels))
                .collect();
            crate::first_max(&scores).0
        })
        .collect();
    let updated = mixtures
        .iter()
        .enumerate()
        .map(|(m, alpha)| {
            let members: Vec<&Vec<f64>> = maps
                .iter()
                .zip(&assignment)
                .filter(|(_, a)| **a == m)
                .map(|(map, _)| map)
                .collect();
            if members.is_empty() {
                return alpha.clone();
            }
            let posteriors: Vec<Vec<f64>> = members
                .iter()
                .map(|map| posterior(map, alpha, kernels))
                .collect();
            let owned: Vec<Vec<f64>> = members.iter().map(|m| (*m).clone()).collect();
            average_where_sampled(&posteriors, &sample_counts(&owned))
        })
        .collect();
    (assignment, updated)
}
