//! The released end-to-end loss (`compnet.md` §2.8, pitfall 8, 15):
//! `L = CE(p, y) + α·L_cluster − β·ml[y]`, with the cross-entropy applied to the already-softmaxed
//! probabilities `p` (a double softmax, as released) and the mixture term rewarding the full robust
//! score.

use burn::tensor::{Int, Tensor, activation::log_softmax, backend::Backend};

/// `Σ_b (1/(H·W)) Σ_i (1 − max_k cos(f_i, μ_k)) / B` on raw features `[B, D, H, W]` and unit
/// kernels `[K, D]`; positions whose feature is all zero contribute nothing (the released code
/// divides by their zero norm: pitfall 15).
pub fn cluster_loss<B: Backend>(
    features: Tensor<B, 4>,
    unit_kernels: Tensor<B, 2>,
) -> Tensor<B, 1> {
    let [b, d, h, w] = features.dims();
    let norm = features.clone().powi_scalar(2).sum_dim(1); // [B, 1, H, W]
    let valid = norm.clone().greater_elem(0.0).float().reshape([b, h * w]);
    let unit = crate::vmf::unit_features(features).reshape([b, d, h * w]);
    let [k, _] = unit_kernels.dims();
    let cos = unit_kernels
        .unsqueeze_dim::<3>(0)
        .expand([b, k, d])
        .matmul(unit); // [B, K, H·W]
    let best = cos.max_dim(1).reshape([b, h * w]);
    ((best.neg().add_scalar(1.0) * valid).sum_dim(1) / (h * w) as f64).mean()
}

/// The released loss terms of a batch: `(CE on p, mixture term −β·ml[y])`, each averaged over the
/// batch.
pub fn released_terms<B: Backend>(
    probabilities: Tensor<B, 2>,
    ml: Tensor<B, 2>,
    labels: Tensor<B, 1, Int>,
    beta: f64,
) -> (Tensor<B, 1>, Tensor<B, 1>) {
    let [batch, _] = probabilities.dims();
    let index = labels.reshape([batch, 1]);
    let ce = log_softmax(probabilities, 1)
        .gather(1, index.clone())
        .neg()
        .mean();
    let mixture = ml.gather(1, index).mean().mul_scalar(-beta);
    (ce, mixture)
}
