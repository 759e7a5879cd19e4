//! vMF mixture clustering of backbone features — the dictionary's initialisation (`compnet.md`
//! §2.9, official `vMFMM.py`, test §8.5), in f64: rows normalised as `f / (‖f‖ + 1e-6)`; k-means++
//! seeding on at most 50,000 rows (first centre uniform, then ∝ the squared cosine distance to the
//! nearest chosen centre) or random unit centres; E-step `logP = κ·F μᵀ + log π`, posteriors by
//! softmax, `mllk = mean_n logsumexp_k logP`; M-step `π = Σ_n p / n`,
//! `μ = normalise(pᵀF / Σ_n p)` (the same +1e-6 normaliser); stop when the mean log-likelihood
//! gains less than `tol` (a decrease also stops). Seeded: the same features give the same
//! dictionary.

pub use nalgebra::DMatrix;
use rand::{RngExt, SeedableRng, rngs::Xoshiro256PlusPlus, seq::SliceRandom};
use serde::{Deserialize, Serialize};

/// How the centres start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VmfInit {
    /// k-means++ on cosine distance (`'k++'`, the released choice).
    #[default]
    KMeansPlusPlus,
    /// Random unit vectors.
    Random,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VmfmmConfig {
    pub components: usize,
    pub kappa: f64,
    pub max_iterations: usize,
    pub tol: f64,
    pub init: VmfInit,
    pub seed: u64,
}

impl Default for VmfmmConfig {
    fn default() -> Self {
        Self {
            components: 512,
            kappa: 30.0,
            max_iterations: 150,
            tol: 5e-5,
            init: VmfInit::KMeansPlusPlus,
            seed: 0,
        }
    }
}

/// A fitted (or initial) mixture: unit centres `mu` `[K][D]`, weights `pi`.
#[derive(Clone, Debug, PartialEq)]
pub struct Vmfmm {
    pub mu: Vec<Vec<f64>>,
    pub pi: Vec<f64>,
    pub kappa: f64,
    /// The mean log-likelihood after each E-step.
    pub mllk: Vec<f64>,
}

/// `f / (‖f‖ + 1e-6)`.
pub fn normalise(row: &[f64]) -> Vec<f64> {
    let norm = row.iter().map(|v| v * v).sum::<f64>().sqrt() + 1e-6;
    row.iter().map(|v| v / norm).collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Rows as an `N × D` matrix.
pub fn matrix(rows: &[Vec<f64>]) -> DMatrix<f64> {
    let dim = rows.first().map_or(0, Vec::len);
    DMatrix::from_fn(rows.len(), dim, |i, j| rows[i][j])
}

fn rows_of(m: &DMatrix<f64>) -> Vec<Vec<f64>> {
    (0..m.nrows())
        .map(|i| m.row(i).iter().copied().collect())
        .collect()
}

impl Vmfmm {
    /// Posteriors `[N][K]` of unit rows `features` and the mean log-likelihood.
    pub fn e_step(&self, features: &[Vec<f64>]) -> (Vec<Vec<f64>>, f64) {
        let (p, mllk) = self.e_step_matrix(&matrix(features));
        (rows_of(&p), mllk)
    }

    /// [`Self::e_step`] on an `N × D` matrix of unit rows: `logP = κ·F μᵀ + log π` as one matrix
    /// product, then a stabilised softmax per row; posteriors `N × K`.
    pub fn e_step_matrix(&self, features: &DMatrix<f64>) -> (DMatrix<f64>, f64) {
        let mut log_p = features * matrix(&self.mu).transpose() * self.kappa;
        let log_pi: Vec<f64> = self.pi.iter().map(|p| p.ln()).collect();
        let mut total = 0.0;
        for mut row in log_p.row_iter_mut() {
            for (v, lp) in row.iter_mut().zip(&log_pi) {
                *v += lp;
            }
            let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = row.iter().map(|l| (l - max).exp()).sum();
            total += max + sum.ln();
            for v in row.iter_mut() {
                *v = (*v - max).exp() / sum;
            }
        }
        (log_p, total / features.nrows().max(1) as f64)
    }

    /// Weights and centres from the posteriors.
    pub fn m_step(&mut self, features: &[Vec<f64>], posteriors: &[Vec<f64>]) {
        self.m_step_matrix(&matrix(features), &matrix(posteriors));
    }

    /// [`Self::m_step`] on matrices: `π = Σ_n p / n`, `μ = normalise(pᵀF / Σ_n p)`.
    pub fn m_step_matrix(&mut self, features: &DMatrix<f64>, posteriors: &DMatrix<f64>) {
        let n = features.nrows().max(1) as f64;
        let centres = posteriors.transpose() * features; // K × D
        for (k, centre) in centres.row_iter().enumerate() {
            let mass: f64 = posteriors.column(k).sum();
            self.pi[k] = mass / n;
            let scaled: Vec<f64> = centre.iter().map(|c| c / mass).collect();
            self.mu[k] = normalise(&scaled);
        }
    }

    /// Seeds a mixture on `rows` (raw features), as `config.init` says.
    pub fn initial(rows: &[Vec<f64>], config: &VmfmmConfig) -> Self {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(config.seed);
        let features: Vec<Vec<f64>> = rows.iter().map(|r| normalise(r)).collect();
        let k = config.components;
        let dim = features.first().map_or(0, Vec::len);
        let raw_pi: Vec<f64> = (0..k).map(|_| rng.random::<f64>()).collect();
        let sum: f64 = raw_pi.iter().sum();
        let pi = raw_pi.iter().map(|p| p / sum).collect();
        let mu = match config.init {
            VmfInit::Random => (0..k)
                .map(|_| {
                    normalise(
                        &(0..dim)
                            .map(|_| rng.random::<f64>() - 0.5)
                            .collect::<Vec<_>>(),
                    )
                })
                .collect(),
            VmfInit::KMeansPlusPlus => {
                let mut pool: Vec<usize> = (0..features.len()).collect();
                pool.shuffle(&mut rng);
                pool.truncate(50_000);
                let mut centres = vec![features[pool[rng.random_range(0..pool.len())]].clone()];
                let mut nearest: Vec<f64> = pool
                    .iter()
                    .map(|&i| 1.0 - dot(&features[i], &centres[0]))
                    .collect();
                while centres.len() < k {
                    let weights: Vec<f64> = nearest.iter().map(|d| d.max(0.0).powi(2)).collect();
                    let total: f64 = weights.iter().sum();
                    let chosen = if total > 0.0 {
                        let mut r = rng.random::<f64>() * total;
                        weights
                            .iter()
                            .position(|w| {
                                r -= w;
                                r <= 0.0
                            })
                            .unwrap_or(pool.len() - 1)
                    } else {
                        rng.random_range(0..pool.len())
                    };
                    let centre = features[pool[chosen]].clone();
                    for (d, &i) in nearest.iter_mut().zip(&pool) {
                        *d = d.min(1.0 - dot(&features[i], &centre));
                    }
                    centres.push(centre);
                }
                centres
            }
        };
        Self {
            mu,
            pi,
            kappa: config.kappa,
            mllk: Vec::new(),
        }
    }

    /// EM from [`Vmfmm::initial`] until the mean log-likelihood gains less than `tol`.
    pub fn fit(rows: &[Vec<f64>], config: &VmfmmConfig) -> Self {
        let unit: Vec<Vec<f64>> = rows.iter().map(|r| normalise(r)).collect();
        let features = matrix(&unit);
        drop(unit);
        let mut model = Self::initial(rows, config);
        for _ in 0..config.max_iterations {
            let (posteriors, mllk) = model.e_step_matrix(&features);
            let previous = model.mllk.last().copied();
            model.mllk.push(mllk);
            if previous.is_some_and(|p| mllk - p < config.tol) {
                break;
            }
            model.m_step_matrix(&features, &posteriors);
        }
        model
    }
}
