//! ELASTIC's scale change (`elastic.md` §2.1, pitfall 2): down by replicate-padding odd sizes on the
//! right/bottom and 2×2 average pooling; up by bilinear ×2 with half-pixel centres
//! (`align_corners = false`) and a top-left crop back to the full-resolution size.

use burn::tensor::{Tensor, backend::Backend, module::avg_pool2d, ops::PadMode};

/// `[N, C, H, W] -> [N, C, ⌈H/2⌉, ⌈W/2⌉]`: an odd side is first extended by repeating its last
/// row/column, then 2×2 blocks are averaged.
pub fn elastic_down<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 4> {
    let [_, _, h, w] = x.dims();
    let x = if h % 2 == 1 || w % 2 == 1 {
        x.pad([(0, h % 2), (0, w % 2)], PadMode::Edge)
    } else {
        x
    };
    avg_pool2d(x, [2, 2], [2, 2], [0, 0], true, false)
}

/// `[N, C, h, w] -> [N, C, H, W]`: bilinear ×2 (half-pixel centres, edges clamped) to `[2h, 2w]`,
/// then the top-left `H × W` (`H ≤ 2h`, `W ≤ 2w`).
pub fn elastic_up<B: Backend>(x: Tensor<B, 4>, [height, width]: [usize; 2]) -> Tensor<B, 4> {
    let [n, c, h, w] = x.dims();
    // Differentiable on every backend (burn 0.21's GPU backends lack a bilinear backward).
    let up = core_ops::interpolate_bilinear(x, [2 * h, 2 * w], false);
    if [2 * h, 2 * w] == [height, width] {
        up
    } else {
        up.slice([0..n, 0..c, 0..height, 0..width])
    }
}
