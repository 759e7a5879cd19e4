//! Axial-DeepLab's panoptic model (`axial-deeplab.md` §3.3): an encoder at output stride 16 and
//! DeepLab2's Panoptic-DeepLab decoder — two branches (semantic, instance), each a 1×1 "ASPP"
//! projection of res5 (`aspp_use_only_1x1_proj_conv`: no atrous branches, no pooling) fused with
//! res3 (stride 8) and res2 (stride 4) by bilinear upsampling (align corners), a 1×1 projection of
//! the low-level feature, concatenation and a 5×5 depthwise-separable conv; then the semantic head
//! (classes), the centre head (1, raw heatmap, no sigmoid) and the offset head (2: dy, dx).
//! Outputs are resized to the input (align corners), offsets scaled by `(H_out−1)/(H_in−1)` and
//! `(W_out−1)/(W_in−1)`.
//!
//! The encoder is the DeepLab2 Axial-ResNet ([`crate::backbone`]) or, for comparisons, a conv
//! ResNet of `core-nets` at output stride 16.

use burn::{
    module::{Initializer, Module},
    tensor::{Tensor, activation::relu, backend::Backend},
};
use core_nets::{ResNet, ResNetConfig};
use core_norm::{Conv2d, ConvKind, NormKind};
use serde::{Deserialize, Serialize};

use crate::backbone::{AxialBackbone, AxialBackboneConfig, ConvBn};

/// The encoder of a panoptic model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EncoderConfig {
    /// The DeepLab2 Axial-ResNet (§3.2).
    Axial(AxialBackboneConfig),
    /// A conv ResNet (`core-nets`), for the comparison of the mini study; its `output_stride`
    /// should be 16 and it needs no classifier (`num_classes` is ignored).
    Resnet(ResNetConfig),
}

impl EncoderConfig {
    /// Channels of res2, res3 and res5.
    pub fn feature_channels(&self) -> [usize; 3] {
        match self {
            EncoderConfig::Axial(c) => {
                let [c2, c3, _, c5] = c.stage_channels();
                [c2, c3, c5]
            }
            EncoderConfig::Resnet(c) => {
                let [c2, c3, _, c5] = c.stage_channels();
                [c2, c3, c5]
            }
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        match self {
            EncoderConfig::Axial(c) => c.validate(),
            EncoderConfig::Resnet(c) => {
                c.validate().map_err(|e| e.to_string())?;
                if c.output_stride != 16 {
                    return Err(format!(
                        "model.encoder.resnet.output_stride = {}: the panoptic decoder expects 16",
                        c.output_stride
                    ));
                }
                if c.small_stem {
                    return Err("model.encoder.resnet.small_stem: the panoptic decoder expects res2 at stride 4 (the standard stem)".into());
                }
                Ok(())
            }
        }
    }

    pub fn init<B: Backend>(&self, device: &B::Device) -> Encoder<B> {
        match self {
            EncoderConfig::Axial(c) => Encoder::Axial(c.init(device)),
            EncoderConfig::Resnet(c) => {
                Encoder::Resnet(c.clone().with_num_classes(None).init(device))
            }
        }
    }
}

// Built once per model; the size of the enum does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Encoder<B: Backend> {
    Axial(AxialBackbone<B>),
    Resnet(ResNet<B>),
}

impl<B: Backend> Encoder<B> {
    /// res2 (stride 4), res3 (stride 8), res5 (stride 16).
    pub fn forward(&self, x: Tensor<B, 4>) -> [Tensor<B, 4>; 3] {
        let [res2, res3, _, res5] = match self {
            Encoder::Axial(backbone) => backbone.forward_features(x),
            Encoder::Resnet(resnet) => resnet.forward_features(x).stages,
        };
        [res2, res3, res5]
    }
}

/// Channel widths of the decoder and heads; the defaults are DeepLab2's Cityscapes configs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecoderConfig {
    /// The 1×1 projection of res5 in both branches (256).
    #[serde(default = "d256")]
    pub aspp_channels: usize,
    /// Semantic decoder width (256) and its res3/res2 projections ([64, 32]).
    #[serde(default = "d256")]
    pub semantic_channels: usize,
    #[serde(default = "semantic_low")]
    pub semantic_low_level: [usize; 2],
    /// Semantic head width (256).
    #[serde(default = "d256")]
    pub semantic_head_channels: usize,
    /// Instance decoder width (128) and its projections ([32, 16]).
    #[serde(default = "d128")]
    pub instance_channels: usize,
    #[serde(default = "instance_low")]
    pub instance_low_level: [usize; 2],
    /// Centre and offset head width (32).
    #[serde(default = "d32")]
    pub instance_head_channels: usize,
    /// Depthwise kernel of every fusion and head conv (5).
    #[serde(default = "d5")]
    pub kernel: usize,
}

fn d256() -> usize {
    256
}
fn d128() -> usize {
    128
}
fn d32() -> usize {
    32
}
fn d5() -> usize {
    5
}
fn semantic_low() -> [usize; 2] {
    [64, 32]
}
fn instance_low() -> [usize; 2] {
    [32, 16]
}

impl Default for DecoderConfig {
    fn default() -> Self {
        Self {
            aspp_channels: d256(),
            semantic_channels: d256(),
            semantic_low_level: semantic_low(),
            semantic_head_channels: d256(),
            instance_channels: d128(),
            instance_low_level: instance_low(),
            instance_head_channels: d32(),
            kernel: d5(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PanopticDeepLabConfig {
    pub encoder: EncoderConfig,
    #[serde(default)]
    pub decoder: DecoderConfig,
    /// Semantic classes (19 on Cityscapes).
    pub num_classes: usize,
}

impl PanopticDeepLabConfig {
    pub fn validate(&self) -> Result<(), String> {
        self.encoder.validate()?;
        let d = &self.decoder;
        let widths = [
            d.aspp_channels,
            d.semantic_channels,
            d.semantic_head_channels,
            d.instance_channels,
            d.instance_head_channels,
            d.semantic_low_level[0],
            d.semantic_low_level[1],
            d.instance_low_level[0],
            d.instance_low_level[1],
            self.num_classes,
        ];
        if widths.contains(&0) {
            return Err("model.decoder widths and model.num_classes must be at least 1".into());
        }
        if d.kernel.is_multiple_of(2) {
            return Err(format!(
                "model.decoder.kernel = {}: expected an odd size",
                d.kernel
            ));
        }
        Ok(())
    }

    /// Panics on a config [`Self::validate`] rejects.
    pub fn init<B: Backend>(&self, device: &B::Device) -> PanopticDeepLab<B> {
        if let Err(e) = self.validate() {
            panic!("invalid panoptic model config: {e}");
        }
        let d = &self.decoder;
        let [c2, c3, c5] = self.encoder.feature_channels();
        let branch = |channels, low: [usize; 2]| Branch {
            aspp: conv_bn(c5, d.aspp_channels, 1, 1, device),
            fuse_res3: Fuse {
                project: conv_bn(c3, low[0], 1, 1, device),
                fuse: separable(d.aspp_channels + low[0], channels, d.kernel, device),
            },
            fuse_res2: Fuse {
                project: conv_bn(c2, low[1], 1, 1, device),
                fuse: separable(channels + low[1], channels, d.kernel, device),
            },
        };
        let head = |cin, width, out| Head {
            conv: separable(cin, width, d.kernel, device),
            out: ConvKind::Plain
                .conv(width, out, 1)
                .with_bias(true)
                // TruncatedNormal(0.01) in DeepLab2; at 0.01 truncation at 2σ changes nothing visible.
                .with_initializer(Initializer::Normal {
                    mean: 0.0,
                    std: 0.01,
                })
                .init(device),
        };
        PanopticDeepLab {
            encoder: self.encoder.init(device),
            semantic_decoder: branch(d.semantic_channels, d.semantic_low_level),
            instance_decoder: branch(d.instance_channels, d.instance_low_level),
            semantic_head: head(
                d.semantic_channels,
                d.semantic_head_channels,
                self.num_classes,
            ),
            center_head: head(d.instance_channels, d.instance_head_channels, 1),
            offset_head: head(d.instance_channels, d.instance_head_channels, 2),
        }
    }
}

fn conv_bn<B: Backend>(
    cin: usize,
    cout: usize,
    kernel: usize,
    groups: usize,
    device: &B::Device,
) -> ConvBn<B> {
    ConvBn {
        conv: ConvKind::Plain
            .conv(cin, cout, kernel)
            .with_padding(kernel / 2)
            .with_groups(groups)
            .init(device),
        bn: NormKind::BATCH.init(cout, device),
    }
}

/// Depthwise `k×k` + BN + ReLU, pointwise 1×1 + BN + ReLU.
fn separable<B: Backend>(
    cin: usize,
    cout: usize,
    kernel: usize,
    device: &B::Device,
) -> DepthwiseSeparable<B> {
    DepthwiseSeparable {
        depthwise: conv_bn(cin, cin, kernel, cin, device),
        pointwise: conv_bn(cin, cout, 1, 1, device),
    }
}

#[derive(Module, Debug)]
pub struct DepthwiseSeparable<B: Backend> {
    pub depthwise: ConvBn<B>,
    pub pointwise: ConvBn<B>,
}

impl<B: Backend> DepthwiseSeparable<B> {
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        relu(self.pointwise.forward(relu(self.depthwise.forward(x))))
    }
}

/// One decoder stage: project the low-level feature, upsample the high-level one to its size,
/// concatenate `[high, low]`, fuse.
#[derive(Module, Debug)]
pub struct Fuse<B: Backend> {
    pub project: ConvBn<B>,
    pub fuse: DepthwiseSeparable<B>,
}

impl<B: Backend> Fuse<B> {
    pub fn forward(&self, high: Tensor<B, 4>, low: Tensor<B, 4>) -> Tensor<B, 4> {
        let [_, _, h, w] = low.dims();
        let low = relu(self.project.forward(low));
        let high = resize(high, [h, w]);
        self.fuse.forward(Tensor::cat(vec![high, low], 1))
    }
}

#[derive(Module, Debug)]
pub struct Branch<B: Backend> {
    pub aspp: ConvBn<B>,
    pub fuse_res3: Fuse<B>,
    pub fuse_res2: Fuse<B>,
}

impl<B: Backend> Branch<B> {
    /// `[res2, res3, res5]` → the branch's stride-4 feature.
    pub fn forward(&self, [res2, res3, res5]: [Tensor<B, 4>; 3]) -> Tensor<B, 4> {
        let x = relu(self.aspp.forward(res5));
        let x = self.fuse_res3.forward(x, res3);
        self.fuse_res2.forward(x, res2)
    }
}

#[derive(Module, Debug)]
pub struct Head<B: Backend> {
    pub conv: DepthwiseSeparable<B>,
    pub out: Conv2d<B>,
}

impl<B: Backend> Head<B> {
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        self.out.forward(self.conv.forward(x))
    }
}

#[derive(Module, Debug)]
pub struct PanopticDeepLab<B: Backend> {
    pub encoder: Encoder<B>,
    pub semantic_decoder: Branch<B>,
    pub instance_decoder: Branch<B>,
    pub semantic_head: Head<B>,
    pub center_head: Head<B>,
    pub offset_head: Head<B>,
}

/// The three predictions at input resolution.
#[derive(Clone, Debug)]
pub struct PanopticPrediction<B: Backend> {
    /// `[N, classes, H, W]` logits.
    pub semantic: Tensor<B, 4>,
    /// `[N, 1, H, W]` raw centre heatmap.
    pub center: Tensor<B, 4>,
    /// `[N, 2, H, W]` `(dy, dx)` in input pixels.
    pub offset: Tensor<B, 4>,
}

impl<B: Backend> PanopticDeepLab<B> {
    /// `[N, 3, H, W]` (scaled to `x/127.5 − 1`) → predictions at `H × W`.
    pub fn forward(&self, x: Tensor<B, 4>) -> PanopticPrediction<B> {
        let [_, _, h, w] = x.dims();
        let features = self.encoder.forward(x);
        let semantic = self.semantic_decoder.forward(features.clone());
        let instance = self.instance_decoder.forward(features);
        let offset = self.offset_head.forward(instance.clone());
        PanopticPrediction {
            semantic: resize(self.semantic_head.forward(semantic), [h, w]),
            center: resize(self.center_head.forward(instance), [h, w]),
            offset: resize_offsets(offset, [h, w]),
        }
    }
}

/// Bilinear resize with aligned corners (DeepLab2 resizes every feature and output this way;
/// differentiable on every backend through `core_ops::interpolate_bilinear`).
pub fn resize<B: Backend>(x: Tensor<B, 4>, size: [usize; 2]) -> Tensor<B, 4> {
    let [_, _, h, w] = x.dims();
    if [h, w] == size {
        return x;
    }
    core_ops::interpolate_bilinear(x, size, true)
}

/// Resizes `(dy, dx)` offsets and rescales them to the new pixel grid:
/// `dy · (H_out − 1)/(H_in − 1)`, `dx · (W_out − 1)/(W_in − 1)` (§3.3, pitfall 11).
pub fn resize_offsets<B: Backend>(offsets: Tensor<B, 4>, size: [usize; 2]) -> Tensor<B, 4> {
    let [n, _, h, w] = offsets.dims();
    if [h, w] == size {
        return offsets;
    }
    let ratio = |out: usize, inp: usize| {
        if inp > 1 {
            (out - 1) as f32 / (inp - 1) as f32
        } else {
            1.0
        }
    };
    let scale =
        Tensor::<B, 1>::from_floats([ratio(size[0], h), ratio(size[1], w)], &offsets.device())
            .reshape([1, 2, 1, 1]);
    let resized = resize(offsets, size);
    resized * scale.expand([n, 2, size[0], size[1]])
}
