//! The spatial mixture models and occluder models as every forward uses them (`compnet.md` §2.4,
//! §2.5, pitfall 4): clamped to [0, 1], L1-normalised over the kernels (an all-zero position stays
//! zero), then centre-cropped or zero-padded to the feature map's size.

use burn::tensor::{Tensor, backend::Backend};

/// `clamp(x, 0, 1) / max(Σ_k, 1e-12)` over dimension 1 (the kernels) of `[R, K, …]`.
pub fn normalise_over_kernels<B: Backend, const D: usize>(raw: Tensor<B, D>) -> Tensor<B, D> {
    let clamped = raw.clamp(0.0, 1.0);
    let sum = clamped.clone().sum_dim(1).clamp_min(1e-12);
    clamped / sum
}

/// `crop_or_pad_as` (§2.4, test §8.3): the last two dimensions of `input` centre-padded with
/// `value` (top/left `⌊(out − in)/2⌋`, the rest bottom/right) then centre-cropped (start
/// `⌊(in − out)/2⌋`) to `[h, w]`.
pub fn crop_or_pad_as<B: Backend>(
    input: Tensor<B, 4>,
    [h, w]: [usize; 2],
    value: f32,
) -> Tensor<B, 4> {
    let [n, c, hi, wi] = input.dims();
    let (pad_h, pad_w) = (h.saturating_sub(hi), w.saturating_sub(wi));
    let (top, left) = (pad_h / 2, pad_w / 2);
    let padded = if pad_h > 0 || pad_w > 0 {
        let mut canvas =
            Tensor::<B, 4>::full([n, c, hi + pad_h, wi + pad_w], value, &input.device());
        canvas = canvas.slice_assign([0..n, 0..c, top..top + hi, left..left + wi], input);
        canvas
    } else {
        input
    };
    let [_, _, hp, wp] = padded.dims();
    let (y0, x0) = ((hp - h.min(hp)) / 2, (wp - w.min(wp)) / 2);
    padded.slice([0..n, 0..c, y0..y0 + h, x0..x0 + w])
}
