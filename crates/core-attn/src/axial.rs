//! Position-sensitive axial attention: H. Wang et al., "Axial-DeepLab: Stand-Alone Axial-Attention
//! for Panoptic Segmentation", ECCV 2020 (arXiv 2003.07853). Spec: `axial-deeplab.md` §2.1 (the
//! PyTorch repository's layer, the default), §2.2 (the DeepLab2 index convention, an option),
//! §2.4 (local span, paper only). Parameter names equal the PyTorch repository's state_dict keys
//! (`qkv_transform.weight`, `bn_qkv`, `bn_similarity`, `bn_output`, `relative`).
//!
//! Departures: a span longer than the axis is allowed (the table's centre is read; with span = axis
//! length, as in the repository, nothing changes), and `Span::Local` attends within a window of
//! keys around each query (the paper's local attention, not in either reference code base: outputs
//! are not reference values), at memory linear in the axis length.

use burn::{
    config::Config,
    module::{Initializer, Module, Param},
    tensor::{
        Bool, Int, Slice, Tensor, TensorData, activation::softmax, backend::Backend,
        module::avg_pool2d,
    },
};
use core_norm::{BatchNorm2d, BatchStatistics};
use serde::{Deserialize, Serialize};

use crate::relative::{RpeConvention, flat_index_table, relative_logits, relative_values};

/// The axis a layer attends along.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Axis {
    Height,
    Width,
}

/// How a strided layer reduces its output (`axial-deeplab.md` §2.2, pitfall 5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StrideMode {
    /// Average pooling `s × s` over both axes after the layer, `floor(L/s)` (the PyTorch repository,
    /// which strides its width layer).
    Pool,
    /// Every `s`-th query along the layer's own axis, `ceil(L/s)` (DeepLab2, which strides both
    /// the height and the width layer of a strided block).
    Decimate,
}

/// Which keys a query sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Span {
    /// Every position of the axis; the table has `2K - 1` offsets and the axis may be at most `K`
    /// long (the repository's `kernel_size`, equal to the axis length there).
    Global { size: usize },
    /// Keys within ±(m - 1)/2 of the query (the paper's span m, `axial-deeplab.md` §2.4).
    Local { size: usize },
}

impl Span {
    /// `K`: the table holds offsets `-(K-1)..=K-1`.
    pub fn size(self) -> usize {
        match self {
            Span::Global { size } | Span::Local { size } => size,
        }
    }
}

#[derive(Config, Debug)]
pub struct AxialAttentionConfig {
    pub in_planes: usize,
    pub out_planes: usize,
    pub span: Span,
    pub axis: Axis,
    #[config(default = 8)]
    pub heads: usize,
    /// Output stride; how it is applied is [`StrideMode`].
    #[config(default = 1)]
    pub stride: usize,
    #[config(default = "StrideMode::Pool")]
    pub stride_mode: StrideMode,
    #[config(default = "RpeConvention::Axpt")]
    pub convention: RpeConvention,
    /// eps of the three batch norms (PyTorch's 1e-5; the spec's test vectors use 0).
    #[config(default = 1e-5)]
    pub bn_eps: f64,
}

#[derive(Module, Debug)]
pub struct AxialAttention<B: Backend> {
    /// The repository's `qkv_transform` (a 1×1 conv1d without bias) holds its weight here.
    pub qkv_transform: QkvTransform<B>,
    pub bn_qkv: BatchNorm2d<B>,
    pub bn_similarity: BatchNorm2d<B>,
    pub bn_output: BatchNorm2d<B>,
    /// `[2·gp, 2K - 1]`: rows `0..gp/2` r^q, `gp/2..gp` r^k, `gp..2gp` r^v; shared by the heads.
    pub relative: Param<Tensor<B, 2>>,
    pub heads: usize,
    pub out_planes: usize,
    pub stride: usize,
    #[module(skip)]
    pub stride_mode: StrideMode,
    #[module(skip)]
    pub span: Span,
    #[module(skip)]
    pub axis: Axis,
    #[module(skip)]
    pub convention: RpeConvention,
}

/// `qkv_transform.weight` `[2·C_out, C_in, 1]`, output channels grouped per head as
/// `q (gp/2) | k (gp/2) | v (gp)` (`axial-deeplab.md` §2.1).
#[derive(Module, Debug)]
pub struct QkvTransform<B: Backend> {
    pub weight: Param<Tensor<B, 3>>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AxialError {
    #[error("out_planes {out_planes} must be a positive multiple of 2·heads = {}", 2 * heads)]
    Heads { out_planes: usize, heads: usize },
    #[error("span {0} must be at least 1")]
    Span(usize),
    #[error("stride {0} must be at least 1")]
    Stride(usize),
}

impl AxialAttentionConfig {
    pub fn validate(&self) -> Result<(), AxialError> {
        if self.heads == 0
            || self.out_planes == 0
            || !self.out_planes.is_multiple_of(2 * self.heads)
        {
            return Err(AxialError::Heads {
                out_planes: self.out_planes,
                heads: self.heads,
            });
        }
        if self.span.size() == 0 {
            return Err(AxialError::Span(0));
        }
        if self.stride == 0 {
            return Err(AxialError::Stride(0));
        }
        Ok(())
    }

    /// Initialised as the repository does (`axial-deeplab.md` §2.1): qkv ~ N(0, 1/C_in),
    /// relative ~ N(0, 1/gp), batch norms γ = 1, β = 0. Panics on an invalid config
    /// ([`Self::validate`] says why).
    pub fn init<B: Backend>(&self, device: &B::Device) -> AxialAttention<B> {
        if let Err(e) = self.validate() {
            panic!("invalid axial attention config: {e}");
        }
        let gp = self.out_planes / self.heads;
        let k = self.span.size();
        let normal = |std: f64| Initializer::Normal { mean: 0.0, std };
        let bn = |channels| {
            BatchNorm2d::new(
                channels,
                self.bn_eps,
                BatchStatistics::Batch { momentum: 0.1 },
                device,
            )
        };
        AxialAttention {
            qkv_transform: QkvTransform {
                weight: normal((1.0 / self.in_planes as f64).sqrt())
                    .init([2 * self.out_planes, self.in_planes, 1], device),
            },
            bn_qkv: bn(2 * self.out_planes),
            bn_similarity: bn(3 * self.heads),
            bn_output: bn(2 * self.out_planes),
            relative: normal((1.0 / gp as f64).sqrt()).init([2 * gp, 2 * k - 1], device),
            heads: self.heads,
            out_planes: self.out_planes,
            stride: self.stride,
            stride_mode: self.stride_mode,
            span: self.span,
            axis: self.axis,
            convention: self.convention,
        }
    }
}

impl<B: Backend> AxialAttention<B> {
    /// `[N, C_in, H, W] -> [N, C_out, H/s, W/s]`.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let [n, c, h, w] = x.dims();
        // Fold the other axis into the batch: [N·W, C, H] (height) or [N·H, C, W] (width).
        let (columns, len) = match self.axis {
            Axis::Height => (x.permute([0, 3, 1, 2]).reshape([n * w, c, h]), h),
            Axis::Width => (x.permute([0, 2, 1, 3]).reshape([n * h, c, w]), w),
        };
        let mut out = self.attend(columns); // [B', C_out, L]
        let mut len = len;
        if self.stride > 1 && self.stride_mode == StrideMode::Decimate {
            let step = Slice::new(0, None, self.stride as isize);
            out = out.slice([Slice::full(), Slice::full(), step]);
            len = len.div_ceil(self.stride);
        }
        let out = match self.axis {
            Axis::Height => out
                .reshape([n, w, self.out_planes, len])
                .permute([0, 2, 3, 1]),
            Axis::Width => out
                .reshape([n, h, self.out_planes, len])
                .permute([0, 2, 1, 3]),
        };
        if self.stride > 1 && self.stride_mode == StrideMode::Pool {
            let s = self.stride;
            avg_pool2d(out, [s, s], [s, s], [0, 0], false, false)
        } else {
            out
        }
    }

    /// The attention along the last axis of `[B', C_in, L]` columns, `-> [B', C_out, L]`.
    pub fn attend(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let [b, _, l] = x.dims();
        let (g, gp) = (self.heads, self.out_planes / self.heads);
        let qkv = self.project(x); // [B', 2·C_out, L]
        let qkv = qkv.reshape([b * g, 2 * gp, l]);
        let q = qkv.clone().narrow(1, 0, gp / 2); // [B'·G, gp/2, L]
        let k = qkv.clone().narrow(1, gp / 2, gp / 2);
        let v = qkv.narrow(1, gp, gp); // [B'·G, gp, L]
        let (sv, sve) = match self.span {
            Span::Global { size } => self.attend_global([q, k, v], b, size),
            Span::Local { size } => self.attend_window([q, k, v], b, size),
        };
        self.combine_outputs(sv, sve, b)
    }

    /// Every key of the axis: `[B'·G, L, L]` similarities. Returns `sv`, `sve` position-major.
    fn attend_global(
        &self,
        [q, k, v]: [Tensor<B, 3>; 3],
        b: usize,
        span: usize,
    ) -> (Tensor<B, 3>, Tensor<B, 3>) {
        let [bg, d, l] = q.dims();
        let device = q.device();
        assert!(
            l <= span,
            "axial attention along an axis of {l} positions needs a global span of at least {l} (it has {span})"
        );
        // Only offsets −(L−1)..=L−1 occur: read the centre 2L − 1 columns of a longer table.
        let table = self.relative.val().narrow(1, span - l, 2 * l - 1);
        let qv_query_minus_key = self.convention == RpeConvention::Axpt;
        let qv_index = flat_index_table::<B>(l, qv_query_minus_key, false, &device);
        // r^k is read at key − query (both conventions), against the key's own projection.
        let k_index = flat_index_table::<B>(l, false, true, &device);
        let qr = relative_logits(q.clone(), table.clone().narrow(0, 0, d), qv_index.clone());
        let kr = relative_logits(k.clone(), table.clone().narrow(0, d, d), k_index);
        let qk = q.swap_dims(1, 2).matmul(k); // [B'·G, L(i), L(j)]
        let similarity = self.similarity([qk, qr, kr], b); // [B', G, L, L]
        let attention = softmax(similarity, 3).reshape([bg, l, l]);
        let gp = v.dims()[1];
        let sv = attention.clone().matmul(v.swap_dims(1, 2)); // [B'·G, L, gp]
        let sve = relative_values(attention, table.narrow(0, 2 * d, gp), qv_index);
        (sv, sve)
    }

    /// The paper's local span m (§2.4): each query sees the `W = 2·⌊(m−1)/2⌋ + 1` keys at offsets
    /// `−⌊(m−1)/2⌋..=⌊(m−1)/2⌋`, keys beyond the axis masked. The table keeps the global layout's
    /// `2m − 1` columns (so a global layer of span m reads the same ones); only the centre `W` are
    /// read, the rest stay at their initial values. Similarities are `[B'·G, L, W]`, so
    /// memory grows with `L·W`, not `L²`; the relative terms need no gather at all (window slot w
    /// is offset w − ⌊(m−1)/2⌋). The similarity norm's statistics run over the window slots,
    /// masked slots included (they hold the clamped edge key): paper-only, not reference values.
    fn attend_window(
        &self,
        [q, k, v]: [Tensor<B, 3>; 3],
        b: usize,
        span: usize,
    ) -> (Tensor<B, 3>, Tensor<B, 3>) {
        let [bg, d, l] = q.dims();
        let gp = v.dims()[1];
        let device = q.device();
        let half = span.saturating_sub(1) / 2;
        let w = 2 * half + 1;
        // Table columns of each window slot (offset o = slot − half, key − query).
        let column = |query_minus_key: bool| -> Vec<i64> {
            (0..w)
                .map(|slot| {
                    let o = slot as i64 - half as i64;
                    let t = if query_minus_key { -o } else { o };
                    t + span as i64 - 1
                })
                .collect()
        };
        let select_columns = |rows: Tensor<B, 2>, query_minus_key: bool| {
            let index = Tensor::<B, 1, Int>::from_data(
                TensorData::new(column(query_minus_key), [w]),
                &device,
            );
            rows.select(1, index) // [depth, W]
        };
        let table = self.relative.val();
        let qv_query_minus_key = self.convention == RpeConvention::Axpt;
        let r_q = select_columns(table.clone().narrow(0, 0, d), qv_query_minus_key);
        let r_k = select_columns(table.clone().narrow(0, d, d), false);
        let r_v = select_columns(table.narrow(0, 2 * d, gp), qv_query_minus_key);
        // Key position of (query i, slot s), clamped; and whether it lies outside the axis.
        let (mut keys, mut outside) = (Vec::with_capacity(l * w), Vec::with_capacity(l * w));
        for i in 0..l as i64 {
            for slot in 0..w as i64 {
                let j = i + slot - half as i64;
                keys.push(j.clamp(0, l as i64 - 1));
                outside.push(j < 0 || j >= l as i64);
            }
        }
        let keys = Tensor::<B, 1, Int>::from_data(TensorData::new(keys, [l * w]), &device);
        let window = |t: Tensor<B, 3>| {
            // [B'·G, depth, L] -> [B'·G·L, W, depth]: the keys (or values) of each query's window.
            let depth = t.dims()[1];
            t.swap_dims(1, 2)
                .select(1, keys.clone())
                .reshape([bg * l, w, depth])
        };
        let q_rows = q.swap_dims(1, 2); // [B'·G, L, d]
        let qk = window(k.clone())
            .matmul(q_rows.clone().reshape([bg * l, d, 1]))
            .reshape([bg, l, w]);
        let qr = q_rows.matmul(r_q.reshape([1, d, w])); // [B'·G, L, W]
        // kr(i, s) = Σ_c k[c, key(i, s)] · r^k[c, s]: the windowed keys against the slot's column.
        let kr = (window(k) * r_k.swap_dims(0, 1).reshape([1, w, d]))
            .sum_dim(2)
            .reshape([bg, l, w]);
        let similarity = self.similarity([qk, qr, kr], b); // [B', G, L, W]
        let mask = Tensor::<B, 2, Bool>::from_data(TensorData::new(outside, [l, w]), &device)
            .reshape([1, 1, l, w])
            .expand(similarity.dims());
        let attention =
            softmax(similarity.mask_fill(mask, f32::NEG_INFINITY), 3).reshape([bg, l, w]);
        let sv = attention
            .clone()
            .reshape([bg * l, 1, w])
            .matmul(window(v))
            .reshape([bg, l, gp]);
        let sve = attention.matmul(r_v.swap_dims(0, 1).reshape([1, w, gp])); // [B'·G, L, gp]
        (sv, sve)
    }

    /// `bn_qkv(W · x)`: the 1×1 projection to per-head q, k, v.
    fn project(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let [b, _, l] = x.dims();
        let weight = self.qkv_transform.weight.val(); // [2·C_out, C_in, 1]
        let [out, cin, _] = weight.dims();
        let qkv = weight.reshape([1, out, cin]).matmul(x); // [B', 2·C_out, L]
        // [B', C, 1, L], not [B', C, L, 1]: burn-flex vectorises a per-channel affine only when
        // the broadcast dimensions are the innermost ones.
        self.bn_qkv
            .forward(qkv.reshape([b, out, 1, l]))
            .reshape([b, out, l])
    }

    /// `Σ_t BN_sim(stack(qk, qr, kr))_t`, channel `t·G + g` (`axial-deeplab.md` §2.1, pitfall 4);
    /// each term `[B'·G, L, L]`, normalised in place (never stacked).
    fn similarity(&self, terms: [Tensor<B, 3>; 3], b: usize) -> Tensor<B, 4> {
        let [bg, l, keys] = terms[0].dims();
        let g = bg / b;
        let channels: Vec<Vec<usize>> = (0..3).map(|t| (t * g..(t + 1) * g).collect()).collect();
        let parts = terms.map(|t| t.reshape([b, g, l, keys])).to_vec();
        let [qk, qr, kr]: [Tensor<B, 4>; 3] = self
            .bn_similarity
            .forward_parts(parts, &channels)
            .try_into()
            .expect("three terms");
        qk + qr + kr
    }

    /// `Σ_u BN_out(interleave(sv, sve))_u` with channel `2·oc + u` (`axial-deeplab.md` §2.1);
    /// `sv`, `sve` position-major `[B'·G, L, gp]`, each normalised in place.
    fn combine_outputs(&self, sv: Tensor<B, 3>, sve: Tensor<B, 3>, b: usize) -> Tensor<B, 3> {
        let [bg, l, gp] = sv.dims();
        let c = bg / b * gp;
        let channel_major = |t: Tensor<B, 3>| {
            t.reshape([b, bg / b, l, gp])
                .swap_dims(2, 3)
                .reshape([b, c, 1, l])
        };
        // Content u = 0 and positional u = 1 of output channel oc sit at 2·oc + u.
        let channels: Vec<Vec<usize>> = (0..2)
            .map(|u| (0..c).map(|oc| 2 * oc + u).collect())
            .collect();
        let [sv, sve]: [Tensor<B, 4>; 2] = self
            .bn_output
            .forward_parts(vec![channel_major(sv), channel_major(sve)], &channels)
            .try_into()
            .expect("two terms");
        (sv + sve).reshape([b, c, l])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::{backend::Flex, tensor::Distribution};

    #[test]
    fn local_span_ignores_keys_outside_the_window() {
        let device = Default::default();
        let layer = AxialAttentionConfig::new(4, 8, Span::Local { size: 3 }, Axis::Height)
            .with_heads(2)
            .init::<Flex>(&device);
        let x = Tensor::<Flex, 4>::random([1, 4, 6, 2], Distribution::Normal(0.0, 1.0), &device);
        // Change positions 3..6 only: the first query (window 0..=1) must not notice.
        let far = x.clone().slice([0..1, 0..4, 3..6, 0..2]).mul_scalar(5.0);
        let changed = x.clone().slice_assign([0..1, 0..4, 3..6, 0..2], far);
        let first = |t: Tensor<Flex, 4>| layer.forward(t).slice([0..1, 0..8, 0..1, 0..2]);
        first(x.clone()).to_data().assert_approx_eq::<f32>(
            &first(changed.clone()).to_data(),
            burn::tensor::Tolerance::absolute(1e-6),
        );
        // A global layer does notice.
        let global = AxialAttentionConfig::new(4, 8, Span::Global { size: 6 }, Axis::Height)
            .with_heads(2)
            .init::<Flex>(&device);
        let diff = (global.forward(x).slice([0..1, 0..8, 0..1, 0..2])
            - global.forward(changed).slice([0..1, 0..8, 0..1, 0..2]))
        .abs()
        .max()
        .into_scalar();
        assert!(diff > 1e-4, "{diff}");
    }

    #[test]
    fn a_local_window_equals_global_attention_over_that_window() {
        // Evaluation-mode norms act per position, so query 4 of a span-5 layer on 9 positions sees
        // exactly what query 2 of a global layer (same table, K = 5) sees on positions 2..7.
        let device = Default::default();
        for convention in [RpeConvention::Axpt, RpeConvention::Dl2] {
            let local = AxialAttentionConfig::new(4, 16, Span::Local { size: 5 }, Axis::Height)
                .with_heads(2)
                .with_convention(convention)
                .init::<Flex>(&device);
            let x =
                Tensor::<Flex, 4>::random([1, 4, 9, 2], Distribution::Normal(0.0, 1.0), &device);
            let out = local.forward(x.clone()); // initialises the lazy parameters before the clone
            let global = AxialAttention {
                span: Span::Global { size: 5 },
                ..local.clone()
            };
            let window = global.forward(x.slice([0..1, 0..4, 2..7, 0..2]));
            for (query, slot) in [(4, 2), (2, 0), (6, 4)] {
                let (a, b) = (
                    out.clone().slice([0..1, 0..16, query..query + 1, 0..2]),
                    window.clone().slice([0..1, 0..16, slot..slot + 1, 0..2]),
                );
                if query == 4 {
                    a.into_data().assert_approx_eq::<f32>(
                        &b.into_data(),
                        burn::tensor::Tolerance::absolute(1e-5),
                    );
                } else {
                    // Queries 2 and 6 also see keys 0..2 / 7..9 outside the cut: they differ.
                    let diff = (a - b).abs().max().into_scalar();
                    assert!(diff > 1e-4, "{convention:?} query {query}: {diff}");
                }
            }
        }
    }

    #[test]
    fn shapes_strides_and_parameter_counts() {
        let device = Default::default();
        // axial-deeplab.md §3.1 per-layer count: C_in·2C_out + 2·2C_out + 2·3G + 2·2C_out + 2gp·(2K-1).
        let (cin, cout, g, k) = (64usize, 64usize, 8usize, 56usize);
        let layer = AxialAttentionConfig::new(cin, cout, Span::Global { size: k }, Axis::Width)
            .with_stride(2)
            .init::<Flex>(&device);
        let gp = cout / g;
        let expected =
            cin * 2 * cout + 2 * 2 * cout + 2 * 3 * g + 2 * 2 * cout + 2 * gp * (2 * k - 1);
        assert_eq!(layer.num_params(), expected + running_stats(cout, g));
        let x = Tensor::<Flex, 4>::zeros([1, cin, 8, 8], &device);
        assert_eq!(layer.forward(x).dims(), [1, cout, 4, 4]);
    }

    #[test]
    fn decimation_keeps_every_other_query_of_its_own_axis() {
        let device = Default::default();
        let config = AxialAttentionConfig::new(4, 16, Span::Global { size: 9 }, Axis::Height)
            .with_heads(2)
            .with_stride_mode(StrideMode::Decimate);
        let full = config.init::<Flex>(&device);
        let x = Tensor::<Flex, 4>::random([2, 4, 5, 3], Distribution::Normal(0.0, 1.0), &device);
        // Decimating after attention: every query still sees all keys.
        let expected = full.forward(x.clone()).slice([
            Slice::full(),
            Slice::full(),
            Slice::new(0, None, 2),
            Slice::full(),
        ]);
        // Parameters are initialised lazily: clone only after the first forward pass.
        let strided = AxialAttention {
            stride: 2,
            ..full.clone()
        };
        let out = strided.forward(x);
        // DeepLab2's `strides=2` on 5 positions gives 3 (§8.5); the other axis is untouched.
        assert_eq!(out.dims(), [2, 16, 3, 3]);
        out.into_data().assert_approx_eq::<f32>(
            &expected.into_data(),
            burn::tensor::Tolerance::absolute(1e-5),
        );
    }

    /// burn's `num_params` counts the running statistics of the three batch norms too.
    fn running_stats(cout: usize, g: usize) -> usize {
        2 * (2 * cout) + 2 * (3 * g) + 2 * (2 * cout)
    }

    #[test]
    fn invalid_configs_are_named() {
        let bad = AxialAttentionConfig::new(4, 12, Span::Global { size: 4 }, Axis::Height);
        assert_eq!(
            bad.validate(),
            Err(AxialError::Heads {
                out_planes: 12,
                heads: 8
            })
        );
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("multiple of 2·heads = 16")
        );
    }
}
