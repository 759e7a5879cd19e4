//! The vMF kernel layer (`compnet.md` §2.3, pitfalls 1–3): kernels stored unnormalised as
//! `conv1o1.weight [K, D, 1, 1]` and normalised over D at every forward; features normalised per
//! position (a zero vector is divided by 1, so its cosine is 0); the activation
//! `exp(κ·cos)·[cos > threshold]` with a strict gate and no vMF normaliser.

use burn::{
    module::{Module, Param},
    tensor::{Tensor, backend::Backend},
};

/// The vMF dictionary: K kernels of dimension D.
#[derive(Module, Debug)]
pub struct VmfKernels<B: Backend> {
    /// `[K, D, 1, 1]`, raw (the checkpoint's `conv1o1.weight`).
    pub weight: Param<Tensor<B, 4>>,
}

impl<B: Backend> VmfKernels<B> {
    /// Kernels from `[K, D]` rows (e.g. a vMF-clustered dictionary).
    pub fn from_rows(rows: Tensor<B, 2>) -> Self {
        let [k, d] = rows.dims();
        Self {
            weight: Param::from_tensor(rows.reshape([k, d, 1, 1])),
        }
    }

    /// The unit kernels `[K, D]`.
    pub fn unit_kernels(&self) -> Tensor<B, 2> {
        let [k, d, _, _] = self.weight.dims();
        let w = self.weight.val().reshape([k, d]);
        let norm = w.clone().powi_scalar(2).sum_dim(1).sqrt(); // [K, 1]
        w / norm
    }

    /// `cos[b, k, i]` between each position's unit feature and each unit kernel: `[B, K, H, W]`.
    pub fn cosine(&self, features: Tensor<B, 4>) -> Tensor<B, 4> {
        let [b, d, h, w] = features.dims();
        let unit = unit_features(features).reshape([b, d, h * w]);
        let kernels = self.unit_kernels(); // [K, D]
        let k = kernels.dims()[0];
        kernels
            .unsqueeze_dim::<3>(0)
            .expand([b, k, d])
            .matmul(unit)
            .reshape([b, k, h, w])
    }
}

/// Features `[B, D, H, W]` scaled to unit length over D per position; a zero vector stays zero
/// (divided by 1, pitfall 2).
pub fn unit_features<B: Backend>(features: Tensor<B, 4>) -> Tensor<B, 4> {
    let norm = features.clone().powi_scalar(2).sum_dim(1).sqrt(); // [B, 1, H, W]
    let safe = norm.clone().equal_elem(0.0).float() + norm;
    features / safe
}

/// The vMF activation `exp(κ·cos)·[cos > threshold]` (strict; values reach e^κ — keep f32).
pub fn vmf_activation<B: Backend, const D: usize>(
    cos: Tensor<B, D>,
    kappa: f64,
    threshold: f64,
) -> Tensor<B, D> {
    let gate = cos.clone().greater_elem(threshold).float();
    cos.mul_scalar(kappa).exp() * gate
}
