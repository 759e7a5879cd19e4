//! DeepLabv3 (L.-C. Chen et al., "Rethinking Atrous Convolution for Semantic Image Segmentation",
//! arXiv 1706.05587) as the vireo papers use it for PASCAL VOC (`resnet-family.md` §2.8): a ResNet
//! whose last stage keeps stride 16 with dilated 3×3 convolutions
//! ([`ResNetConfig::layer4_dilations`]), the ASPP head — four parallel convolutions (1×1 and 3×3
//! at rates 6, 12, 18) and the image-pooling branch, each conv–norm–ReLU, concatenated, projected
//! and classified — and a bilinear (corner-aligned) upsampling of the logits to the input size.
//! Field names follow DeepLabv3.pytorch / ELASTIC (`aspp1` … `aspp5`, `aspp1_bn` …, `conv2`,
//! `bn2`, `conv3`) so released checkpoints map key for key. Built once here for ELASTIC's VOC task
//! and WS/BCN's VOC presets.

use burn::{
    module::Module,
    tensor::{Tensor, activation::relu, backend::Backend},
};
use core_norm::{Conv2d, ConvKind, Norm, NormKind};
use serde::{Deserialize, Serialize};

use crate::{ResNet, ResNetConfig};

/// The ASPP head's structure.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AsppConfig {
    /// Channels of the backbone features (2048 for a ResNet-50-like stage 4).
    pub in_channels: usize,
    /// Channels of every branch and of the projection (256).
    #[serde(default = "two_fifty_six")]
    pub channels: usize,
    /// Dilations of the three 3×3 branches at output stride 16 (6, 12, 18).
    #[serde(default = "rates")]
    pub rates: [usize; 3],
    pub num_classes: usize,
    #[serde(default)]
    pub conv: ConvKind,
    /// ELASTIC and DeepLabv3.pytorch: BN with momentum 0.0003 in the head.
    #[serde(default = "head_norm")]
    pub norm: NormKind,
}

fn two_fifty_six() -> usize {
    256
}
fn rates() -> [usize; 3] {
    [6, 12, 18]
}
fn head_norm() -> NormKind {
    NormKind::Batch {
        eps: 1e-5,
        statistics: core_norm::BatchStatistics::Batch { momentum: 0.0003 },
    }
}

impl AsppConfig {
    /// The head of `resnet-family.md` §2.8 on `in_channels` features, BN momentum 0.0003.
    pub fn new(in_channels: usize, num_classes: usize) -> Self {
        Self {
            in_channels,
            channels: 256,
            rates: rates(),
            num_classes,
            conv: ConvKind::Plain,
            norm: head_norm(),
        }
    }

    pub fn init<B: Backend>(&self, device: &B::Device) -> Aspp<B> {
        let (c, d) = (self.in_channels, self.channels);
        let branch = |kernel: usize, rate: usize| {
            let conv = self.conv.conv(c, d, kernel);
            match kernel {
                3 => conv.with_padding(rate).with_dilation(rate),
                _ => conv,
            }
            .init(device)
        };
        let norm = || self.norm.init(d, device);
        Aspp {
            aspp1: branch(1, 1),
            aspp2: branch(3, self.rates[0]),
            aspp3: branch(3, self.rates[1]),
            aspp4: branch(3, self.rates[2]),
            aspp5: branch(1, 1),
            aspp1_bn: norm(),
            aspp2_bn: norm(),
            aspp3_bn: norm(),
            aspp4_bn: norm(),
            aspp5_bn: norm(),
            conv2: self.conv.conv(5 * d, d, 1).init(device),
            bn2: norm(),
            conv3: ConvKind::Plain
                .conv(d, self.num_classes, 1)
                .with_bias(true)
                .init(device),
        }
    }
}

#[derive(Module, Debug)]
pub struct Aspp<B: Backend> {
    pub aspp1: Conv2d<B>,
    pub aspp2: Conv2d<B>,
    pub aspp3: Conv2d<B>,
    pub aspp4: Conv2d<B>,
    /// On the globally pooled features.
    pub aspp5: Conv2d<B>,
    pub aspp1_bn: Norm<B>,
    pub aspp2_bn: Norm<B>,
    pub aspp3_bn: Norm<B>,
    pub aspp4_bn: Norm<B>,
    pub aspp5_bn: Norm<B>,
    /// The 1×1 projection of the five concatenated branches.
    pub conv2: Conv2d<B>,
    pub bn2: Norm<B>,
    /// The classifier (with bias).
    pub conv3: Conv2d<B>,
}

impl<B: Backend> Aspp<B> {
    /// `[B, C, h, w]` features → `[B, classes, h, w]` logits.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let [batch, channels, h, w] = x.dims();
        let branch =
            |conv: &Conv2d<B>, norm: &Norm<B>, x: Tensor<B, 4>| relu(norm.forward(conv.forward(x)));
        let a1 = branch(&self.aspp1, &self.aspp1_bn, x.clone());
        let a2 = branch(&self.aspp2, &self.aspp2_bn, x.clone());
        let a3 = branch(&self.aspp3, &self.aspp3_bn, x.clone());
        let a4 = branch(&self.aspp4, &self.aspp4_bn, x.clone());
        let pooled = x
            .reshape([batch, channels, h * w])
            .mean_dim(2)
            .reshape([batch, channels, 1, 1]);
        // Image pooling: bilinear (align_corners) upsampling of a 1×1 map is its broadcast.
        let a5 = branch(&self.aspp5, &self.aspp5_bn, pooled);
        let d = a5.dims()[1];
        let a5 = a5.expand([batch, d, h, w]);
        let h = branch(
            &self.conv2,
            &self.bn2,
            Tensor::cat(vec![a1, a2, a3, a4, a5], 1),
        );
        self.conv3.forward(h)
    }
}

/// `(pattern, replacement)` from the released DeepLabv3 keys (the backbone's at the top level,
/// `aspp.*` beside them) to [`DeepLab`]'s paths.
/// (Applied before the loader strips `module.`, so it takes that prefix too.)
pub const DEEPLAB_KEY_REMAPPING: &[(&str, &str)] =
    &[(r"^(module\.)?(conv1|bn1|layer[1-4])\.", "backbone.$2.")];

/// DeepLabv3: a dilated ResNet (no classifier) and the ASPP head.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeepLabConfig {
    /// `output_stride = 16` and `layer4_dilations` set; `num_classes` unset.
    pub backbone: ResNetConfig,
    pub aspp: AsppConfig,
}

impl DeepLabConfig {
    /// The head on `backbone`'s last stage for `num_classes` classes.
    pub fn new(backbone: ResNetConfig, num_classes: usize) -> Self {
        let channels = backbone.stage_channels()[3];
        Self {
            backbone: backbone.with_num_classes(None),
            aspp: AsppConfig::new(channels, num_classes),
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        self.backbone.validate().map_err(|e| e.to_string())?;
        if self.backbone.output_stride != 16 {
            return Err(format!(
                "model.backbone.output_stride = {}: DeepLabv3 runs at output stride 16",
                self.backbone.output_stride
            ));
        }
        let channels = self.backbone.stage_channels()[3];
        if self.aspp.in_channels != channels {
            return Err(format!(
                "model.aspp.in_channels = {}: the backbone's last stage gives {channels}",
                self.aspp.in_channels
            ));
        }
        if self.aspp.num_classes < 2 || self.aspp.channels == 0 {
            return Err("model.aspp: expected num_classes >= 2 and channels >= 1".into());
        }
        Ok(())
    }

    pub fn init<B: Backend>(&self, device: &B::Device) -> DeepLab<B> {
        DeepLab {
            backbone: self.backbone.clone().with_num_classes(None).init(device),
            aspp: self.aspp.init(device),
        }
    }
}

#[derive(Module, Debug)]
pub struct DeepLab<B: Backend> {
    pub backbone: ResNet<B>,
    pub aspp: Aspp<B>,
}

impl<B: Backend> DeepLab<B> {
    /// `[B, 3, H, W]` → `[B, classes, H, W]` logits.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let [_, _, height, width] = x.dims();
        let features = self.backbone.forward_features(x).stages[3].clone();
        upsample_aligned(self.aspp.forward(features), [height, width])
    }
}

/// Bilinear resize with `align_corners = True` (DeepLabv3's output upsampling; differentiable on
/// every backend through `core_ops::interpolate_bilinear`).
pub fn upsample_aligned<B: Backend>(x: Tensor<B, 4>, size: [usize; 2]) -> Tensor<B, 4> {
    core_ops::interpolate_bilinear(x, size, true)
}
