//! Panoptic-DeepLab's losses as DeepLab2 computes them (`axial-deeplab.md` §4.2,
//! `model/loss/base_loss.py`): each loss is a per-pixel loss times the pixel weight, reduced per
//! image by `compute_average_top_k_loss` — keep the `round(p·P)` largest weighted pixel losses
//! (p = 0.2 for the semantic loss, 1 for the others), then `sum(kept) / count(kept ≠ 0)` (0 when
//! nothing is kept) — and averaged over the batch. Total = 1·semantic + 200·centre + 0.01·offset.

use burn::tensor::{Int, Tensor, activation::log_softmax, backend::Backend};
use serde::{Deserialize, Serialize};

/// Loss weights and the semantic top-k fraction.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PanopticLossConfig {
    #[serde(default = "one")]
    pub semantic_weight: f64,
    #[serde(default = "center_weight")]
    pub center_weight: f64,
    #[serde(default = "offset_weight")]
    pub offset_weight: f64,
    /// Fraction of the pixels of each image kept by the semantic loss (0.2).
    #[serde(default = "top_k")]
    pub semantic_top_k: f64,
}

fn one() -> f64 {
    1.0
}
fn center_weight() -> f64 {
    200.0
}
fn offset_weight() -> f64 {
    0.01
}
fn top_k() -> f64 {
    0.2
}

impl Default for PanopticLossConfig {
    fn default() -> Self {
        Self {
            semantic_weight: one(),
            center_weight: center_weight(),
            offset_weight: offset_weight(),
            semantic_top_k: top_k(),
        }
    }
}

/// The targets of a batch as tensors, `[N, H, W]` unless noted.
#[derive(Clone, Debug)]
pub struct PanopticTargetBatch<B: Backend> {
    /// Class per pixel; void pixels hold any valid class and weight 0.
    pub semantic: Tensor<B, 3, Int>,
    pub semantic_weights: Tensor<B, 3>,
    pub center: Tensor<B, 3>,
    pub center_weights: Tensor<B, 3>,
    /// `[N, 2, H, W]` `(dy, dx)`.
    pub offsets: Tensor<B, 4>,
    pub offset_weights: Tensor<B, 3>,
}

/// The three weighted terms and their weighted sum, each `[1]`.
#[derive(Clone, Debug)]
pub struct PanopticLoss<B: Backend> {
    pub total: Tensor<B, 1>,
    pub semantic: Tensor<B, 1>,
    pub center: Tensor<B, 1>,
    pub offset: Tensor<B, 1>,
}

impl PanopticLossConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !(self.semantic_top_k > 0.0 && self.semantic_top_k <= 1.0) {
            return Err(format!(
                "loss.semantic_top_k = {}: expected 0 < p ≤ 1",
                self.semantic_top_k
            ));
        }
        for (name, w) in [
            ("semantic_weight", self.semantic_weight),
            ("center_weight", self.center_weight),
            ("offset_weight", self.offset_weight),
        ] {
            if !(w >= 0.0 && w.is_finite()) {
                return Err(format!("loss.{name} = {w}: expected a finite value ≥ 0"));
            }
        }
        Ok(())
    }

    /// Semantic, centre and offset losses of `[N, C, H, W]` logits, `[N, 1, H, W]` heatmap and
    /// `[N, 2, H, W]` offsets.
    pub fn forward<B: Backend>(
        &self,
        semantic: Tensor<B, 4>,
        center: Tensor<B, 4>,
        offset: Tensor<B, 4>,
        targets: &PanopticTargetBatch<B>,
    ) -> PanopticLoss<B> {
        let semantic = semantic_loss(
            semantic,
            targets.semantic.clone(),
            targets.semantic_weights.clone(),
            self.semantic_top_k,
        );
        let center = center_loss(
            center,
            targets.center.clone(),
            targets.center_weights.clone(),
        );
        let offset = offset_loss(
            offset,
            targets.offsets.clone(),
            targets.offset_weights.clone(),
        );
        let total = semantic.clone().mul_scalar(self.semantic_weight)
            + center.clone().mul_scalar(self.center_weight)
            + offset.clone().mul_scalar(self.offset_weight);
        PanopticLoss {
            total,
            semantic,
            center,
            offset,
        }
    }
}

/// Softmax cross-entropy per pixel times its weight, top-k bootstrapped.
pub fn semantic_loss<B: Backend>(
    logits: Tensor<B, 4>,
    labels: Tensor<B, 3, Int>,
    weights: Tensor<B, 3>,
    top_k: f64,
) -> Tensor<B, 1> {
    let [n, _, h, w] = logits.dims();
    let log_p = log_softmax(logits, 1);
    let picked = log_p
        .gather(1, labels.reshape([n, 1, h, w]))
        .reshape([n, h * w]);
    let pixel = picked.neg() * weights.reshape([n, h * w]);
    average_top_k(pixel, top_k)
}

/// Squared error of the raw heatmap times its weight.
pub fn center_loss<B: Backend>(
    heatmap: Tensor<B, 4>,
    target: Tensor<B, 3>,
    weights: Tensor<B, 3>,
) -> Tensor<B, 1> {
    let [n, _, h, w] = heatmap.dims();
    let diff = heatmap.reshape([n, h * w]) - target.reshape([n, h * w]);
    average_top_k(diff.powi_scalar(2) * weights.reshape([n, h * w]), 1.0)
}

/// Absolute error of `(dy, dx)` averaged over the two channels, times its weight.
pub fn offset_loss<B: Backend>(
    offsets: Tensor<B, 4>,
    target: Tensor<B, 4>,
    weights: Tensor<B, 3>,
) -> Tensor<B, 1> {
    let [n, _, h, w] = offsets.dims();
    let l1 = (offsets - target).abs().mean_dim(1).reshape([n, h * w]);
    average_top_k(l1 * weights.reshape([n, h * w]), 1.0)
}

/// DeepLab2's `compute_average_top_k_loss` on `[N, P]` weighted pixel losses, then the batch
/// mean: per image the `round(p·P)` largest, summed, divided by how many of them are non-zero.
pub fn average_top_k<B: Backend>(pixel_losses: Tensor<B, 2>, top_k: f64) -> Tensor<B, 1> {
    let [n, p] = pixel_losses.dims();
    let kept = if top_k < 1.0 {
        let k = ((top_k * p as f64).round() as usize).clamp(1, p);
        let (_, indices) = pixel_losses.clone().detach().topk_with_indices(k, 1);
        pixel_losses.gather(1, indices)
    } else {
        pixel_losses
    };
    let nonzero = kept.clone().detach().not_equal_elem(0.0).float().sum_dim(1); // [N, 1]
    // divide_no_nan: an image with nothing kept contributes 0.
    let per_image = kept.sum_dim(1) / nonzero.clone().clamp_min(1.0);
    per_image.reshape([n]).mean()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::{
        backend::{Autodiff, Flex},
        tensor::{TensorData, Tolerance},
    };

    type B = Flex;

    #[test]
    fn top_k_keeps_the_largest_and_divides_by_the_non_zero_count() {
        let device = Default::default();
        // Image 0: P = 5, k = round(0.4·5) = 2 → {4, 3} → 7 / 2. Image 1: {2, 0} → 2 / 1.
        let losses = Tensor::<B, 2>::from_data(
            TensorData::new(
                vec![1.0f32, 4.0, 0.0, 3.0, 2.0, 0.0, 2.0, 0.0, 0.0, 0.0],
                [2, 5],
            ),
            &device,
        );
        let value = average_top_k(losses.clone(), 0.4).into_scalar();
        assert!((value - (3.5 + 2.0) / 2.0).abs() < 1e-6, "{value}");
        // All kept: image 0 sums 10 over 4 non-zero, image 1 sums 2 over 1.
        let all = average_top_k(losses, 1.0).into_scalar();
        assert!((all - (2.5 + 2.0) / 2.0).abs() < 1e-6, "{all}");
        // Nothing non-zero: 0, not NaN.
        let zero = average_top_k(Tensor::<B, 2>::zeros([1, 4], &device), 0.5).into_scalar();
        assert_eq!(zero, 0.0);
    }

    #[test]
    fn cross_entropy_matches_the_formula_and_ignores_weight_zero() {
        let device = Default::default();
        // One image, 2 classes, 1×2 pixels: logits (0, ln 3) → p(class 1) = 3/4.
        let logits = Tensor::<B, 4>::from_data(
            TensorData::new(vec![0.0f32, 0.0, 3f32.ln(), 3f32.ln()], [1, 2, 1, 2]),
            &device,
        );
        let labels =
            Tensor::<B, 3, Int>::from_data(TensorData::new(vec![1i64, 0], [1, 1, 2]), &device);
        let weights =
            Tensor::<B, 3>::from_data(TensorData::new(vec![3.0f32, 0.0], [1, 1, 2]), &device);
        let loss = semantic_loss(logits, labels, weights, 1.0).into_scalar();
        // Only pixel 0 counts: 3 · −ln(3/4), divided by one non-zero pixel.
        assert!((loss - 3.0 * -(0.75f32).ln()).abs() < 1e-5, "{loss}");
    }

    #[test]
    fn centre_and_offset_losses_and_their_gradients() {
        let device = Default::default();
        let heat = Tensor::<Autodiff<B>, 4>::from_data(
            TensorData::new(vec![0.5f32, 0.0, 1.0, 0.2], [1, 1, 2, 2]),
            &device,
        )
        .require_grad();
        let target = Tensor::from_data(
            TensorData::new(vec![1.0f32, 0.0, 1.0, 0.0], [1, 2, 2]),
            &device,
        );
        let weights = Tensor::ones([1, 2, 2], &device);
        // Errors² 0.25, 0, 0, 0.04 → two non-zero → 0.145.
        let loss = center_loss(heat.clone(), target, weights);
        assert!((loss.clone().into_scalar() - 0.145).abs() < 1e-6);
        let grads = loss.backward();
        // d/dx of (x−t)²/2 = (x − t): −0.5, 0, 0, 0.2.
        heat.grad(&grads)
            .unwrap()
            .to_data()
            .assert_approx_eq::<f32>(
                &TensorData::new(vec![-0.5f32, 0.0, 0.0, 0.2], [1, 1, 2, 2]),
                Tolerance::absolute(1e-6),
            );
        // Offsets: |(1, −3)| mean 2 on the weighted pixel, the other pixel weight 0.
        let offsets = Tensor::<B, 4>::from_data(
            TensorData::new(vec![1.0f32, 5.0, -3.0, 5.0], [1, 2, 1, 2]),
            &device,
        );
        let weights =
            Tensor::<B, 3>::from_data(TensorData::new(vec![1.0f32, 0.0], [1, 1, 2]), &device);
        let l1 = offset_loss(offsets, Tensor::zeros([1, 2, 1, 2], &device), weights).into_scalar();
        assert!((l1 - 2.0).abs() < 1e-6, "{l1}");
    }
}
