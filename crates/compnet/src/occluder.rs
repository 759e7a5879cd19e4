//! The occluder ("clutter") models (`compnet.md` §2.5, pitfall 9): from the vMF activation
//! vectors `L[:, i]` (K values) of every position of the background images of each type —
//! `_white` and `_noise`: one model each, the mean of the per-position L1-normalised vectors
//! (positions whose activations are all zero are left out instead of dividing 0 by 0);
//! `general`: a 5-component vMF mixture over the vectors, positions hard-assigned to their most
//! probable component, one model per non-empty component = the mean of its **raw** vectors (the
//! released code writes only one row: `official_single_general_row`). The head clamps and
//! L1-normalises them at use, which turns the large raw means into indicators.

use crate::vmfmm::{Vmfmm, VmfmmConfig, normalise};

/// Background activation vectors by occluder type.
#[derive(Clone, Debug, Default)]
pub struct BackgroundActivations {
    pub white: Vec<Vec<f64>>,
    pub noise: Vec<Vec<f64>>,
    pub general: Vec<Vec<f64>>,
}

/// How the `general` models are made.
#[derive(Clone, Debug, PartialEq)]
pub struct OccluderConfig {
    pub general: VmfmmConfig,
    /// The released bug: only the first non-empty cluster's row is kept.
    pub official_single_general_row: bool,
}

impl Default for OccluderConfig {
    fn default() -> Self {
        Self {
            general: VmfmmConfig {
                components: 5,
                tol: 1e-10,
                ..VmfmmConfig::default()
            },
            official_single_general_row: false,
        }
    }
}

/// The mean of the L1-normalised vectors (all-zero vectors left out); `None` if none is left.
pub fn normalised_mean(vectors: &[Vec<f64>]) -> Option<Vec<f64>> {
    let dim = vectors.first()?.len();
    let kept: Vec<Vec<f64>> = vectors
        .iter()
        .filter_map(|v| {
            let sum: f64 = v.iter().sum();
            (sum > 0.0).then(|| v.iter().map(|x| x / sum).collect())
        })
        .collect();
    if kept.is_empty() {
        return None;
    }
    let mut mean = vec![0.0; dim];
    for v in &kept {
        for (m, x) in mean.iter_mut().zip(v) {
            *m += x / kept.len() as f64;
        }
    }
    Some(mean)
}

/// The `general` models: one raw mean per non-empty vMF cluster.
pub fn general_models(vectors: &[Vec<f64>], config: &OccluderConfig) -> Vec<Vec<f64>> {
    if vectors.is_empty() {
        return Vec::new();
    }
    let mixture = Vmfmm::fit(vectors, &config.general);
    let unit: Vec<Vec<f64>> = vectors.iter().map(|v| normalise(v)).collect();
    let (posteriors, _) = mixture.e_step(&unit);
    let components = mixture.mu.len();
    let dim = vectors[0].len();
    let mut sums = vec![vec![0.0; dim]; components];
    let mut counts = vec![0usize; components];
    for (v, p) in vectors.iter().zip(&posteriors) {
        let best = crate::first_max(p).0;
        counts[best] += 1;
        for (s, x) in sums[best].iter_mut().zip(v) {
            *s += x;
        }
    }
    let mut models: Vec<Vec<f64>> = sums
        .into_iter()
        .zip(&counts)
        .filter(|(_, n)| **n > 0)
        .map(|(s, &n)| s.iter().map(|x| x / n as f64).collect())
        .collect();
    if config.official_single_general_row {
        models.truncate(1);
    }
    models
}

/// All occluder models, `[N][K]`: `_white`, `_noise` (where their images have activations), then
/// the `general` ones.
pub fn occluder_models(
    activations: &BackgroundActivations,
    config: &OccluderConfig,
) -> Vec<Vec<f64>> {
    normalised_mean(&activations.white)
        .into_iter()
        .chain(normalised_mean(&activations.noise))
        .chain(general_models(&activations.general, config))
        .collect()
}
