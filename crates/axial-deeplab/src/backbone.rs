//! The DeepLab2 Axial-ResNet backbones of the panoptic model (`axial-deeplab.md` §3.2,
//! `model/encoder/axial_resnet{,_instances}.py`): a stem at stride 2 without max-pool (7×7 conv, or
//! the Inception "resnet_beta" stem of three 3×3 convs), then four stages `res2..res5` of
//! [`AxialBlock`]s at strides 2, 2, 2 and 1 (output stride 16; 2 for classification's 32), every
//! block axial with global attention over tables of 2·255 − 1 offsets (DeepLab2's `MAX_SPAN`),
//! offsets read at key − query, strided blocks decimating after each attention layer.
//!
//! `axial_resnet_s/l` and `axial_deeplab_s/l` have DeepLab2's exact parameter counts (running
//! statistics not counted): 11,466,912 / 43,714,048 / 11,565,856 / 43,841,920.
//!
//! DeepLab2 returns each stage's output before its activation and activates it for the next stage
//! and the decoder; that is the same graph as ReLU at the end of each block, which is what
//! [`AxialBlock`] does. Departure: batch norms use PyTorch's eps 1e-5 and momentum 0.1 (DeepLab2:
//! sync BN eps 1e-3, momentum 0.01 in PyTorch's terms).

use burn::{
    module::Module,
    tensor::{Tensor, activation::relu, backend::Backend},
};
use core_attn::{RpeConvention, Span, StrideMode};
use core_norm::{ConvKind, Norm, NormKind};
use serde::{Deserialize, Serialize};

use crate::block::{AxialBlock, AxialBlockSpec};

/// DeepLab2's `MAX_SPAN`: tables hold offsets −254..=254 whatever the input size.
pub const MAX_SPAN: usize = 255;

/// The backbone's first layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StemKind {
    /// 7×7/2 conv, BN, ReLU (`axial_resnet_*`, DeepLab2 `backbone_type = resnet`).
    Resnet,
    /// 3×3/2 conv `w` + BN + ReLU, 3×3 conv `w` + BN + ReLU, 3×3 conv `2w` + BN (+ the ReLU every
    /// stage output gets) (`axial_deeplab_*`, `resnet_beta`).
    Inception,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AxialBackboneConfig {
    pub stem: StemKind,
    /// Blocks of res2..res5: `[3, 4, 6, 3]` in DeepLab2's instances.
    pub layers: [usize; 4],
    /// Width multiplier: attention widths `128·w · 2^i`; 0.5 (S), 1.0 (L).
    pub width: f64,
    /// Stem width (DeepLab2: 64 whatever the width multiplier; the Inception stem ends at twice it).
    #[serde(default = "default_stem_width")]
    pub stem_width: usize,
    /// 16 (res5 not strided, the segmentation default) or 32.
    #[serde(default = "default_output_stride")]
    pub output_stride: usize,
    /// `K`: axes up to this long; the tables hold `2K − 1` offsets.
    #[serde(default = "default_span")]
    pub span: usize,
    /// `true`: the paper's local attention with span m = `span` (§2.4; the paper uses 65 where
    /// global attention does not fit), any axis length; tables of `2m − 1` offsets.
    #[serde(default)]
    pub local: bool,
    #[serde(default = "default_heads")]
    pub heads: usize,
}

fn default_stem_width() -> usize {
    64
}
fn default_output_stride() -> usize {
    16
}
fn default_span() -> usize {
    MAX_SPAN
}
fn default_heads() -> usize {
    8
}

impl AxialBackboneConfig {
    pub fn new(stem: StemKind, layers: [usize; 4], width: f64) -> Self {
        Self {
            stem,
            layers,
            width,
            stem_width: default_stem_width(),
            output_stride: default_output_stride(),
            span: default_span(),
            local: false,
            heads: default_heads(),
        }
    }
    pub fn axial_resnet_s() -> Self {
        Self::new(StemKind::Resnet, [3, 4, 6, 3], 0.5)
    }
    pub fn axial_resnet_l() -> Self {
        Self::new(StemKind::Resnet, [3, 4, 6, 3], 1.0)
    }
    pub fn axial_deeplab_s() -> Self {
        Self::new(StemKind::Inception, [3, 4, 6, 3], 0.5)
    }
    pub fn axial_deeplab_l() -> Self {
        Self::new(StemKind::Inception, [3, 4, 6, 3], 1.0)
    }

    /// Attention widths of res2..res5 (`int(128·w)·2^i`); a block outputs twice its width.
    pub fn planes(&self) -> [usize; 4] {
        let base = (128.0 * self.width) as usize;
        [base, base * 2, base * 4, base * 8]
    }

    /// Output channels of res2, res3, res4, res5.
    pub fn stage_channels(&self) -> [usize; 4] {
        self.planes()
            .map(|p| p * AxialBlock::<burn::backend::Flex>::EXPANSION)
    }

    /// Rejects what cannot be built, naming the key.
    pub fn validate(&self) -> Result<(), String> {
        if self.output_stride != 16 && self.output_stride != 32 {
            return Err(format!(
                "output_stride = {}: expected 16 or 32",
                self.output_stride
            ));
        }
        if self.layers.contains(&0) {
            return Err(format!(
                "layers = {:?}: every stage needs a block",
                self.layers
            ));
        }
        if self.heads == 0 {
            return Err("heads = 0: expected at least 1".into());
        }
        let base = self.planes()[0];
        if base == 0 || !base.is_multiple_of(2 * self.heads) {
            return Err(format!(
                "width = {}: the attention width int(128·width) = {base} must be a positive multiple of 2·heads = {}",
                self.width,
                2 * self.heads
            ));
        }
        if self.stem_width == 0 || self.span == 0 {
            return Err("stem_width and span must be at least 1".into());
        }
        Ok(())
    }

    /// Whether an `[H, W]` input fits: global attention (the default) needs the longest axis it
    /// meets — res2's first block, at the stem's `ceil(L/2)` — to be at most `span` long.
    pub fn check_input(&self, [h, w]: [usize; 2]) -> Result<(), String> {
        let longest = h.max(w).div_ceil(2);
        if !self.local && longest > self.span {
            return Err(format!(
                "global axial attention would run along {longest} positions in res2 but model.encoder.axial.span = {}; raise the span or set model.encoder.axial.local = true",
                self.span
            ));
        }
        Ok(())
    }

    /// Panics on a config [`Self::validate`] rejects.
    pub fn init<B: Backend>(&self, device: &B::Device) -> AxialBackbone<B> {
        if let Err(e) = self.validate() {
            panic!("invalid axial backbone config: {e}");
        }
        let conv_bn = |cin, cout, kernel, stride| ConvBn {
            conv: ConvKind::Plain
                .conv(cin, cout, kernel)
                .with_stride(stride)
                .with_padding(kernel / 2)
                .init(device),
            bn: NormKind::BATCH.init(cout, device),
        };
        let w = self.stem_width;
        let (stem, mut in_channels) = match self.stem {
            StemKind::Resnet => (vec![conv_bn(3, w, 7, 2)], w),
            StemKind::Inception => (
                vec![
                    conv_bn(3, w, 3, 2),
                    conv_bn(w, w, 3, 1),
                    conv_bn(w, 2 * w, 3, 1),
                ],
                2 * w,
            ),
        };
        let strides = [2, 2, 2, if self.output_stride == 32 { 2 } else { 1 }];
        let mut stages = self
            .planes()
            .into_iter()
            .enumerate()
            .map(|(stage, planes)| {
                (0..self.layers[stage])
                    .map(|b| {
                        let spec = AxialBlockSpec {
                            in_channels,
                            planes,
                            span: if self.local {
                                Span::Local { size: self.span }
                            } else {
                                Span::Global { size: self.span }
                            },
                            stride: if b == 0 { strides[stage] } else { 1 },
                            heads: self.heads,
                            convention: RpeConvention::Dl2,
                            stride_mode: StrideMode::Decimate,
                        };
                        in_channels = planes * AxialBlock::<B>::EXPANSION;
                        AxialBlock::new(&spec, device)
                    })
                    .collect::<Vec<_>>()
            });
        let mut next = || stages.next().expect("four stages");
        AxialBackbone {
            stem,
            res2: next(),
            res3: next(),
            res4: next(),
            res5: next(),
        }
    }
}

/// Conv, BN (ReLU applied by the caller).
#[derive(Module, Debug)]
pub struct ConvBn<B: Backend> {
    pub conv: core_norm::Conv2d<B>,
    pub bn: Norm<B>,
}

impl<B: Backend> ConvBn<B> {
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        self.bn.forward(self.conv.forward(x))
    }
}

#[derive(Module, Debug)]
pub struct AxialBackbone<B: Backend> {
    pub stem: Vec<ConvBn<B>>,
    pub res2: Vec<AxialBlock<B>>,
    pub res3: Vec<AxialBlock<B>>,
    pub res4: Vec<AxialBlock<B>>,
    pub res5: Vec<AxialBlock<B>>,
}

impl<B: Backend> AxialBackbone<B> {
    /// `[N, 3, H, W]` → res2 (stride 4), res3 (8), res4 (16), res5 (16 or 32), activated. Each
    /// strided layer gives `ceil(L/2)` positions (`Conv2DSame` and decimation), so crops of the
    /// form 16k + 1 keep every feature map aligned at the corners.
    pub fn forward_features(&self, x: Tensor<B, 4>) -> [Tensor<B, 4>; 4] {
        // The Inception stem's last conv has no activation of its own, but DeepLab2 activates
        // the stem output like every stage output: each stem conv ends in ReLU here.
        let x = self.stem.iter().fold(x, |x, layer| relu(layer.forward(x)));
        let run = |blocks: &[AxialBlock<B>], x| blocks.iter().fold(x, |x, b| b.forward(x));
        let res2 = run(&self.res2, x);
        let res3 = run(&self.res3, res2.clone());
        let res4 = run(&self.res4, res3.clone());
        let res5 = run(&self.res5, res4.clone());
        [res2, res3, res4, res5]
    }
}

/// A named DeepLab2 backbone that `vireo models` lists with its exact parameter count.
pub struct BackbonePreset {
    pub name: &'static str,
    pub config: fn() -> AxialBackboneConfig,
    /// DeepLab2's count, BN γ/β included, running statistics not (`axial-deeplab.md` §3.2).
    pub parameters: usize,
}

pub const BACKBONE_PRESETS: &[BackbonePreset] = &[
    BackbonePreset {
        name: "axial_resnet_s",
        config: AxialBackboneConfig::axial_resnet_s,
        parameters: 11_466_912,
    },
    BackbonePreset {
        name: "axial_resnet_l",
        config: AxialBackboneConfig::axial_resnet_l,
        parameters: 43_714_048,
    },
    BackbonePreset {
        name: "axial_deeplab_s",
        config: AxialBackboneConfig::axial_deeplab_s,
        parameters: 11_565_856,
    },
    BackbonePreset {
        name: "axial_deeplab_l",
        config: AxialBackboneConfig::axial_deeplab_l,
        parameters: 43_841_920,
    },
];
