//! The occlusion-robust classification score and the occluder map (`compnet.md` §2.6, §2.7,
//! pitfalls 5–7, 11, 12). With activations `v [B, K, H, W]`, normalised mixtures
//! `mm [C·M, K, H, W]` (class-major rows), normalised occluder models `β [N, K]` and prior `occ`:
//! `fg = log((1 − occ)·Σ_k mm·v + 1e-10)`, `bg = log(occ·Σ_k β·v + 1e-10)`; per position the better
//! explanation wins. Classification (default) picks one occluder model per (class, mixture) for the
//! whole image; localisation (`mixture_bg`) takes the best occluder per position.

use burn::tensor::{Tensor, backend::Backend};

/// The log-likelihood terms of a batch.
#[derive(Debug, Clone)]
pub struct Terms<B: Backend> {
    /// `[B, C·M, H·W]`: `log((1 − occ)·Σ_k mm·v + 1e-10)`.
    pub fg: Tensor<B, 3>,
    /// `[B, N, H·W]`: `log(occ·Σ_k β·v + 1e-10)`.
    pub bg: Tensor<B, 3>,
    pub mixtures: usize,
}

/// The foreground and occluder terms (§2.6).
pub fn terms<B: Backend>(
    v: Tensor<B, 4>,
    mixtures: Tensor<B, 4>,
    occluders: Tensor<B, 2>,
    occ: f64,
    mixtures_per_class: usize,
) -> Terms<B> {
    let [b, k, h, w] = v.dims();
    let v = v.reshape([b, k, h * w]);
    let fg = mixture_likelihoods(v.clone(), mixtures)
        .mul_scalar(1.0 - occ)
        .add_scalar(1e-10)
        .log();
    let [n, _] = occluders.dims();
    let bg = occluders
        .unsqueeze_dim::<3>(0)
        .expand([b, n, k])
        .matmul(v)
        .mul_scalar(occ)
        .add_scalar(1e-10)
        .log();
    Terms {
        fg,
        bg,
        mixtures: mixtures_per_class,
    }
}

/// `Σ_k mm[r, k, i]·v[b, k, i]`: `[B, C·M, H·W]` from `v [B, K, H·W]` and `mm [C·M, K, H, W]`,
/// as one matrix product per position `i` (`[B, K] · [K, C·M]`). The broadcast product summed over
/// `K` would build `[B, C·M, K, H·W]` with its broadcast dimensions outermost, which the CPU
/// backend walks element by element (a sixth of a CN-vMF training step).
fn mixture_likelihoods<B: Backend>(v: Tensor<B, 3>, mixtures: Tensor<B, 4>) -> Tensor<B, 3> {
    let [rows, k, h, w] = mixtures.dims();
    let mm = mixtures.reshape([rows, k, h * w]).permute([2, 1, 0]); // [H·W, K, C·M]
    v.permute([2, 0, 1]) // [H·W, B, K]
        .matmul(mm)
        .permute([1, 2, 0]) // [B, C·M, H·W]
}

impl<B: Backend> Terms<B> {
    /// `s[b, c·M + m, n] = Σ_i max(fg[b, c·M + m, i], bg[b, n, i])`: `[B, C·M, N]`.
    pub fn pair_scores(&self) -> Tensor<B, 3> {
        let [b, rows, hw] = self.fg.dims();
        let [_, n, _] = self.bg.dims();
        let fg = self
            .fg
            .clone()
            .unsqueeze_dim::<4>(2)
            .expand([b, rows, n, hw]);
        let bg = self
            .bg
            .clone()
            .unsqueeze_dim::<4>(1)
            .expand([b, rows, n, hw]);
        fg.max_pair(bg).sum_dim(3).reshape([b, rows, n])
    }

    /// `bg'[b, i] = max_n bg[b, n, i]`: `[B, 1, H·W]`.
    pub fn best_occluder(&self) -> Tensor<B, 3> {
        self.bg.clone().max_dim(1)
    }

    /// `Σ_i max(fg[b, r, i], bg'[b, i])` per mixture row: `[B, C·M]`.
    pub fn mixture_scores_mixture_bg(&self) -> Tensor<B, 2> {
        let [b, rows, hw] = self.fg.dims();
        let bg = self.best_occluder().expand([b, rows, hw]);
        self.fg.clone().max_pair(bg).sum_dim(2).reshape([b, rows])
    }

    /// The class scores `[B, C]`: default `max_m max_n s[c, m, n]`; with `mixture_bg`
    /// `max_m Σ_i max(fg, bg')`.
    pub fn scores(&self, mixture_bg: bool) -> Tensor<B, 2> {
        let [b, rows, _] = self.fg.dims();
        let classes = rows / self.mixtures;
        let per_row = if mixture_bg {
            self.mixture_scores_mixture_bg()
        } else {
            self.pair_scores().max_dim(2).reshape([b, rows])
        };
        per_row
            .reshape([b, classes, self.mixtures])
            .max_dim(2)
            .reshape([b, classes])
    }
}

/// "Softmax with temperature 2" (§2.1, pitfall 7): `ml = score / (H·W)`,
/// `p = exp(clamp(2·ml, ±88.7)) / Σ`, no max-subtraction.
pub fn class_probabilities<B: Backend>(ml: Tensor<B, 2>) -> Tensor<B, 2> {
    let e = ml.mul_scalar(2.0).clamp(-88.7, 88.7).exp();
    e.clone() / e.sum_dim(1)
}

/// How the occluder map picks the foreground and occluder models (§2.7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapMode {
    /// The per-position best occluder (`use_mixture_bg`, the ROC evaluation's mode).
    MixtureBg,
    /// One occluder for the image: the best (mixture, occluder) pair over all pairs.
    AllPairs,
    /// The released tiling (`official_tiling`): index j visits (j mod M, j mod N), all pairs only
    /// when gcd(M, N) = 1.
    OfficialTiling,
}

/// The first index of the largest value.
fn first_argmax(values: &[f32]) -> usize {
    crate::first_max(values).0
}

/// The occluder map of image `b` for label `y`: `occ[i] = bg(i) − fg[y, m*](i)` (positive: the
/// occluder explains the position better), `[H·W]` values in the feature map's row-major order.
pub fn occluder_map<B: Backend>(terms: &Terms<B>, b: usize, y: usize, mode: MapMode) -> Vec<f32> {
    let m = terms.mixtures;
    let [_, _, hw] = terms.fg.dims();
    let [_, n, _] = terms.bg.dims();
    let rows = |t: Tensor<B, 3>| -> Vec<Vec<f32>> {
        let [_, r, _] = t.dims();
        let data: Vec<f32> = t.into_data().iter::<f32>().collect();
        data.chunks(hw).take(r).map(<[f32]>::to_vec).collect()
    };
    let fg = rows(
        terms
            .fg
            .clone()
            .slice([b..b + 1, y * m..(y + 1) * m, 0..hw]),
    );
    let bg = rows(terms.bg.clone().slice([b..b + 1, 0..n, 0..hw]));
    let score = |f: &[f32], g: &[f32]| f.iter().zip(g).map(|(a, c)| a.max(*c)).sum::<f32>();
    let map = |f: &[f32], g: &[f32]| g.iter().zip(f).map(|(g, f)| g - f).collect();
    match mode {
        MapMode::MixtureBg => {
            let best: Vec<f32> = (0..hw)
                .map(|i| bg.iter().map(|r| r[i]).fold(f32::NEG_INFINITY, f32::max))
                .collect();
            let per_mixture: Vec<f32> = fg.iter().map(|f| score(f, &best)).collect();
            map(&fg[first_argmax(&per_mixture)], &best)
        }
        MapMode::AllPairs => {
            let pairs: Vec<(usize, usize)> =
                (0..m).flat_map(|a| (0..n).map(move |o| (a, o))).collect();
            let values: Vec<f32> = pairs.iter().map(|&(a, o)| score(&fg[a], &bg[o])).collect();
            let (a, o) = pairs[first_argmax(&values)];
            map(&fg[a], &bg[o])
        }
        MapMode::OfficialTiling => {
            let values: Vec<f32> = (0..m * n).map(|j| score(&fg[j % m], &bg[j % n])).collect();
            let j = first_argmax(&values);
            map(&fg[j % m], &bg[j % n])
        }
    }
}
