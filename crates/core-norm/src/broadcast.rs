//! How per-channel (or per-group) parameters meet a batch of activations.
//!
//! burn-flex, the CPU backend, vectorises a broadcast operand only when its broadcast dimensions
//! are the innermost ones and the rest walk its storage contiguously ("one scalar per row"). A
//! `[1, C, 1, 1]` operand against `[N, C, H, W]` has a stride-0 batch dimension outside the
//! channels and falls to a per-element strided iterator, about ten times slower (measured by
//! `cargo xtask bench --case gn32`, see docs/benchmarks.md). Tiling the small operand over the
//! batch first costs `N·C` copies and turns every such product into the fast pattern; on the GPU
//! backends it is one tiny extra kernel.

use burn::tensor::{Tensor, backend::Backend};

/// `[1, ...] -> [n, ...]`: the operand repeated once per sample, contiguous.
pub fn per_sample<B: Backend, const D: usize>(operand: Tensor<B, D>, n: usize) -> Tensor<B, D> {
    operand.repeat_dim(0, n)
}
