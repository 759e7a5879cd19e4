//! CN-WACV (`compnet.md` §2.10): the compositional model on binarised activations
//! `b_{k,i} = [cos(f_i, μ_k) > t_b]` with per-class spatial Bernoulli mixtures (log-probabilities
//! `logα`) and an occluder model β, and the DCNN-uncertainty switch:
//! ```text
//! fg_i = Σ_k [b·logα + (1 − b)·log(1 − exp(logα))] + log(1 − occ)
//! bg_i = Σ_k [b·log(β + 1e-3) + (1 − b)·log(1 − (β + 1e-3))] + log(occ)
//! s_y  = max_m Σ_i max(fg_i, bg_i)
//! ```
//! Padded mixture positions are excluded (`fg_i = bg_i`) — the released padding value makes
//! `log(1 − exp(·))` NaN, kept only as `official_padding` for bug reproduction.

use burn::tensor::{Tensor, backend::Backend};

/// `[cos > threshold]` as 0/1 floats.
pub fn binarise<B: Backend, const D: usize>(cos: Tensor<B, D>, threshold: f64) -> Tensor<B, D> {
    cos.greater_elem(threshold).float()
}

/// A fitted Bernoulli compositional model at one feature size.
#[derive(Debug, Clone)]
pub struct BernoulliModel<B: Backend> {
    /// `[C·M, K, P]` log-probabilities (class-major rows, P = H·W positions).
    pub log_alpha: Tensor<B, 3>,
    /// `[C·M, P]`: 1 where the mixture has data, 0 where it was padded to the common size.
    pub valid: Tensor<B, 2>,
    /// `[K]`: the occluder model.
    pub occluder: Tensor<B, 1>,
    pub occ: f64,
    pub mixtures_per_class: usize,
    /// Score padded positions as the released code does (NaN; bug reproduction only).
    pub official_padding: bool,
}

impl<B: Backend> BernoulliModel<B> {
    /// `(fg [B, C·M, P], bg [B, P])` of binary maps `b` `[B, K, P]`.
    pub fn terms(&self, b: Tensor<B, 3>) -> (Tensor<B, 3>, Tensor<B, 2>) {
        let [batch, k, p] = b.dims();
        let [rows, _, _] = self.log_alpha.dims();
        let on = b.clone().unsqueeze_dim::<4>(1); // [B, 1, K, P]
        let la = self.log_alpha.clone().unsqueeze_dim::<4>(0); // [1, R, K, P]
        let l1m = la.clone().exp().neg().add_scalar(1.0).log();
        let fg = (on.clone() * la + on.neg().add_scalar(1.0) * l1m)
            .sum_dim(2)
            .reshape([batch, rows, p])
            .add_scalar((1.0 - self.occ).ln());
        let beta = self.occluder.clone().add_scalar(1e-3).reshape([1, k, 1]);
        let bg = (b.clone() * beta.clone().log()
            + b.neg().add_scalar(1.0) * beta.neg().add_scalar(1.0).log())
        .sum_dim(1)
        .reshape([batch, p])
        .add_scalar(self.occ.ln());
        let fg = if self.official_padding {
            fg
        } else {
            let valid = self
                .valid
                .clone()
                .unsqueeze_dim::<3>(0)
                .expand([batch, rows, p]);
            let bg_rows = bg.clone().unsqueeze_dim::<3>(1).expand([batch, rows, p]);
            fg.mask_where(valid.equal_elem(0.0), bg_rows)
        };
        (fg, bg)
    }

    /// Class scores `[B, C]`: `max_m Σ_i max(fg_i, bg_i)`.
    pub fn scores(&self, b: Tensor<B, 3>) -> Tensor<B, 2> {
        let (fg, bg) = self.terms(b);
        let [batch, rows, p] = fg.dims();
        let bg = bg.unsqueeze_dim::<3>(1).expand([batch, rows, p]);
        let classes = rows / self.mixtures_per_class;
        fg.max_pair(bg)
            .sum_dim(2)
            .reshape([batch, classes, self.mixtures_per_class])
            .max_dim(2)
            .reshape([batch, classes])
    }
}

/// The DCNN-uncertainty switch (§2.10): each image keeps the DCNN's class when its softmax maximum
/// is at least `tau`, else takes the compositional model's; returns the predictions and the
/// fraction routed to the compositional model.
pub fn switch_predictions<B: Backend>(
    dcnn_logits: Tensor<B, 2>,
    compositional_scores: Tensor<B, 2>,
    tau: f64,
) -> (Vec<usize>, f64) {
    let [batch, classes] = dcnn_logits.dims();
    let p: Vec<f32> = burn::tensor::activation::softmax(dcnn_logits, 1)
        .into_data()
        .iter::<f32>()
        .collect();
    let s: Vec<f32> = compositional_scores.into_data().iter::<f32>().collect();
    let argmax = |row: &[f32]| {
        row.iter()
            .enumerate()
            .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &v)| {
                if v > bv { (i, v) } else { (bi, bv) }
            })
    };
    let mut routed = 0;
    let predictions = (0..batch)
        .map(|i| {
            let (class, confidence) = argmax(&p[i * classes..(i + 1) * classes]);
            if f64::from(confidence) >= tau {
                class
            } else {
                routed += 1;
                argmax(&s[i * classes..(i + 1) * classes]).0
            }
        })
        .collect();
    (predictions, routed as f64 / batch.max(1) as f64)
}
