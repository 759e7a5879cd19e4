//! Binary codes by iterative quantisation (Gong & Lazebnik, CVPR 2011), as `sake.md` §2.7 gives it
//! for the paper's 64-bit results (the official repository has none): centre the fitting set,
//! project on its top `bits` principal directions, then from a random orthogonal `R₀` alternate
//! `B = sign(V R)` (0 → +1) and the orthogonal Procrustes update `C = Bᵀ V = Ũ Σ Ṽᵀ`, `R = Ṽ Ũᵀ`.
//! The DSN NumPy port's transposed update (`R = Ṽᵀ Ũᵀ`, NumPy's third SVD output already being
//! `Vᵀ`) is kept only as [`ItqConfig::numpy_port_bug`]. Codes are ranked by Hamming distance,
//! ties by gallery index.

use anyhow::{Result, bail};
use nalgebra::{DMatrix, SymmetricEigen};
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

/// Which features the rotation is fitted on (each set is centred on its own mean when encoded,
/// as DSN does; `both` fits on their union).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FitSet {
    /// The query features (DSN).
    #[default]
    Query,
    Gallery,
    Both,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItqConfig {
    /// Code length (64 in the paper).
    #[serde(default = "sixty_four")]
    pub bits: usize,
    #[serde(default = "fifty")]
    pub n_iter: usize,
    #[serde(default)]
    pub seed: u64,
    #[serde(default)]
    pub fit_on: FitSet,
    /// The DSN NumPy port's transposed Procrustes update (a bug; for comparison only).
    #[serde(default)]
    pub numpy_port_bug: bool,
}

fn sixty_four() -> usize {
    64
}
fn fifty() -> usize {
    50
}

impl Default for ItqConfig {
    fn default() -> Self {
        Self {
            bits: 64,
            n_iter: 50,
            seed: 0,
            fit_on: FitSet::Query,
            numpy_port_bug: false,
        }
    }
}

/// A fitted quantiser: `code(x) = sign((x − mean) · W · R) ≥ 0`, with `mean` the encoded set's own.
#[derive(Clone, Debug)]
pub struct Itq {
    /// `[dim, bits]`: the principal directions.
    pub projection: DMatrix<f64>,
    /// `[bits, bits]`, orthogonal.
    pub rotation: DMatrix<f64>,
    /// `‖B − V R‖²` after each iteration (non-increasing with the correct update).
    pub losses: Vec<f64>,
}

/// `rows` (`[n, dim]` row-major) as a matrix.
pub fn matrix(rows: &[f32], dim: usize) -> DMatrix<f64> {
    let n = rows.len() / dim.max(1);
    DMatrix::from_row_iterator(n, dim, rows.iter().map(|&v| v as f64))
}

/// `x` minus its column means.
pub fn centred(x: &DMatrix<f64>) -> DMatrix<f64> {
    let mut x = x.clone();
    let n = x.nrows().max(1) as f64;
    for mut column in x.column_iter_mut() {
        let mean = column.sum() / n;
        column.add_scalar_mut(-mean);
    }
    x
}

/// `sign(v)` with 0 → +1.
pub fn sign(v: &DMatrix<f64>) -> DMatrix<f64> {
    v.map(|x| if x >= 0.0 { 1.0 } else { -1.0 })
}

/// One Procrustes step: the rotation closest to mapping `v` onto the codes `b`
/// (`C = Bᵀ V = Ũ Σ Ṽᵀ`, `R = Ṽ Ũᵀ`, independent of the SVD's sign choices); with
/// `numpy_port_bug`, `R = Ṽᵀ Ũᵀ`, which does depend on them (NumPy's LAPACK and nalgebra differ,
/// so the slip's exact values are not reproducible across libraries).
pub fn procrustes(b: &DMatrix<f64>, v: &DMatrix<f64>, numpy_port_bug: bool) -> DMatrix<f64> {
    let c = b.transpose() * v;
    let svd = c.svd(true, true);
    let u = svd.u.expect("U requested");
    let v_t = svd.v_t.expect("Vᵀ requested");
    if numpy_port_bug {
        // NumPy's svd returns Vᵀ as its third output; the port transposes it again.
        v_t.clone() * u.transpose()
    } else {
        v_t.transpose() * u.transpose()
    }
}

/// `‖B − V R‖²` (Frobenius).
pub fn quantisation_loss(b: &DMatrix<f64>, v: &DMatrix<f64>, r: &DMatrix<f64>) -> f64 {
    (b - v * r).norm_squared()
}

/// A random orthogonal `n × n` matrix (QR of a Gaussian one).
fn random_rotation(n: usize, seed: u64) -> DMatrix<f64> {
    let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(seed);
    // Box–Muller normals.
    let mut normal = || {
        let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
        let u2: f64 = rng.random();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    };
    let g = DMatrix::from_fn(n, n, |_, _| normal());
    g.qr().q()
}

impl Itq {
    /// Fits on `x` (`[n, dim]`, already chosen per [`FitSet`]).
    pub fn fit(x: &DMatrix<f64>, config: &ItqConfig) -> Result<Self> {
        let (n, dim) = x.shape();
        if config.bits == 0 || config.bits > dim {
            bail!(
                "itq.bits = {}: expected 1 ..= the feature dimension {dim}",
                config.bits
            );
        }
        if n < 2 {
            bail!("ITQ needs at least 2 features to fit on, got {n}");
        }
        let x = centred(x);
        // PCA: the top `bits` eigenvectors of the covariance.
        let covariance = x.transpose() * &x / (n as f64 - 1.0);
        let eigen = SymmetricEigen::new(covariance);
        let mut order: Vec<usize> = (0..dim).collect();
        order.sort_by(|&a, &b| eigen.eigenvalues[b].total_cmp(&eigen.eigenvalues[a]));
        let projection =
            DMatrix::from_fn(dim, config.bits, |i, j| eigen.eigenvectors[(i, order[j])]);
        let v = &x * &projection;
        let mut rotation = random_rotation(config.bits, config.seed);
        let mut losses = Vec::with_capacity(config.n_iter);
        for _ in 0..config.n_iter {
            let b = sign(&(&v * &rotation));
            rotation = procrustes(&b, &v, config.numpy_port_bug);
            losses.push(quantisation_loss(&b, &v, &rotation));
        }
        Ok(Self {
            projection,
            rotation,
            losses,
        })
    }

    /// Codes of `x` (`[n, dim]`, centred on its own mean): one `bool` per bit (`true` = +1).
    pub fn encode(&self, x: &DMatrix<f64>) -> Vec<Vec<bool>> {
        let v = centred(x) * &self.projection * &self.rotation;
        v.row_iter()
            .map(|row| row.iter().map(|&z| z >= 0.0).collect())
            .collect()
    }
}

/// Binary codes packed 64 bits to a word, one row of words per code (what the Hamming ranking
/// reads: a popcount per word instead of a comparison per bit).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackedCodes {
    words_per_code: usize,
    words: Vec<u64>,
}

impl PackedCodes {
    /// Packs codes of one length, at least one bit (`true` = +1), bit `i` into word `i / 64`.
    pub fn pack(codes: &[Vec<bool>]) -> Self {
        let bits = codes.first().map_or(1, Vec::len);
        assert!(
            bits > 0 && codes.iter().all(|c| c.len() == bits),
            "binary codes must have one length of at least one bit"
        );
        let words_per_code = bits.div_ceil(64);
        let mut words = vec![0u64; codes.len() * words_per_code];
        for (row, code) in words.chunks_mut(words_per_code).zip(codes) {
            for (i, _) in code.iter().enumerate().filter(|(_, b)| **b) {
                row[i / 64] |= 1 << (i % 64);
            }
        }
        Self {
            words_per_code,
            words,
        }
    }

    /// Code `i`'s words.
    pub fn code(&self, i: usize) -> &[u64] {
        &self.words[i * self.words_per_code..(i + 1) * self.words_per_code]
    }

    /// How many codes.
    pub fn len(&self) -> usize {
        self.words.len() / self.words_per_code
    }

    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }
}

/// Minus the Hamming distance of `query` (a code of `gallery`'s length, packed) to every gallery
/// code (higher = more similar).
pub fn hamming_scores(query: &[u64], gallery: &PackedCodes) -> Vec<f64> {
    assert_eq!(query.len(), gallery.words_per_code, "query code length");
    gallery
        .words
        .chunks(gallery.words_per_code)
        .map(|code| {
            let distance: u32 = code
                .iter()
                .zip(query)
                .map(|(a, b)| (a ^ b).count_ones())
                .sum();
            -f64::from(distance)
        })
        .collect()
}
