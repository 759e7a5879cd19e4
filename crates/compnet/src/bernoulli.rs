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

/// The DCNN-uncertainty switch (§2.10) for one image: the DCNN's class when its softmax maximum
/// is at least `tau`, else the compositional model's; also whether the image was routed.
pub fn switch_choice(
    dcnn_probabilities: &[f32],
    compositional_scores: &[f32],
    tau: f64,
) -> (usize, bool) {
    let (class, confidence) = crate::first_max(dcnn_probabilities);
    if f64::from(confidence) >= tau {
        (class, false)
    } else {
        (crate::first_max(compositional_scores).0, true)
    }
}

/// [`switch_choice`] over a batch of DCNN logits and compositional scores; returns the
/// predictions and the fraction routed to the compositional model.
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
    let choices: Vec<(usize, bool)> = p
        .chunks(classes)
        .zip(s.chunks(classes))
        .map(|(p, s)| switch_choice(p, s, tau))
        .collect();
    let routed = choices.iter().filter(|c| c.1).count();
    (
        choices.into_iter().map(|c| c.0).collect(),
        routed as f64 / batch.max(1) as f64,
    )
}

/// CN-WACV's compositional model as a module (fitted by ML, never trained end to end): its own
/// dictionary (the one the mixtures were fitted on), the mixtures' log-probabilities, the valid
/// positions and the occluder model.
#[derive(burn::module::Module, Debug)]
pub struct BernoulliNet<B: Backend> {
    pub kernels: crate::vmf::VmfKernels<B>,
    /// `[C·M, K, Hm, Wm]`
    pub log_alpha: burn::module::Param<Tensor<B, 4>>,
    /// `[C·M, 1, Hm, Wm]`: 1 where the mixture has data.
    pub valid: burn::module::Param<Tensor<B, 4>>,
    /// `[K]`
    pub occluder: burn::module::Param<Tensor<B, 1>>,
    #[module(skip)]
    pub settings: BernoulliSettings,
}

/// The fixed settings of a [`BernoulliNet`].
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BernoulliSettings {
    /// A kernel is on where `cos > cos_threshold` (1 − the binary encoding's distance threshold).
    pub cos_threshold: f64,
    pub occ: f64,
    pub mixtures_per_class: usize,
    pub official_padding: bool,
}

impl<B: Backend> BernoulliNet<B> {
    /// The binary maps `[B, K, P]` of backbone features `[B, D, H, W]`.
    pub fn binary(&self, features: Tensor<B, 4>) -> Tensor<B, 3> {
        let [b, _, h, w] = features.dims();
        let cos = self.kernels.cosine(features);
        let k = cos.dims()[1];
        binarise(cos, self.settings.cos_threshold).reshape([b, k, h * w])
    }

    /// The model at a feature map of `[h, w]`: mixtures centre-cropped or padded as CN-vMF's
    /// (`crop_or_pad_as`), padded positions invalid.
    pub fn model(&self, [h, w]: [usize; 2]) -> BernoulliModel<B> {
        let [rows, k, _, _] = self.log_alpha.dims();
        BernoulliModel {
            log_alpha: crate::mixture::crop_or_pad_as(self.log_alpha.val(), [h, w], 0.0).reshape([
                rows,
                k,
                h * w,
            ]),
            valid: crate::mixture::crop_or_pad_as(self.valid.val(), [h, w], 0.0)
                .reshape([rows, h * w]),
            occluder: self.occluder.val(),
            occ: self.settings.occ,
            mixtures_per_class: self.settings.mixtures_per_class,
            official_padding: self.settings.official_padding,
        }
    }
}

/// The Bernoulli model's occluder map for label `y` of image `b`: `bg_i − fg_i` of the label's
/// best mixture (scored with `max(fg, bg)` per position), `[P]`.
pub fn bernoulli_occluder_map<B: Backend>(
    fg: &Tensor<B, 3>,
    bg: &Tensor<B, 2>,
    b: usize,
    y: usize,
    mixtures_per_class: usize,
) -> Vec<f32> {
    let [_, _, p] = fg.dims();
    let m = mixtures_per_class;
    let fg: Vec<f32> = fg
        .clone()
        .slice([b..b + 1, y * m..(y + 1) * m, 0..p])
        .into_data()
        .iter::<f32>()
        .collect();
    let bg: Vec<f32> = bg
        .clone()
        .slice([b..b + 1, 0..p])
        .into_data()
        .iter::<f32>()
        .collect();
    let score = |row: &[f32]| row.iter().zip(&bg).map(|(f, g)| f.max(*g)).sum::<f32>();
    let per_mixture: Vec<f32> = fg.chunks(p).map(score).collect();
    let best = crate::first_max(&per_mixture).0;
    bg.iter()
        .zip(&fg[best * p..(best + 1) * p])
        .map(|(g, f)| g - f)
        .collect()
}
