//! Residual blocks, torchvision "v1.5" layout (`resnet-family.md` §2.2): stride on the 3×3; or
//! Caffe layout (§2.3, Cadene's SE-ResNets): stride on the first 1×1, with squeeze-and-excitation.

use burn::{
    module::Module,
    nn::{Linear, LinearConfig},
    tensor::{
        Tensor,
        activation::{relu, sigmoid},
        backend::Backend,
    },
};
use core_norm::{Conv2d, ConvKind, Norm, NormKind};

/// The projection shortcut, PyTorch's `downsample = Sequential(conv1x1, norm)`; checkpoint keys
/// `downsample.0` / `downsample.1` map to `downsample.conv` / `downsample.norm`.
#[derive(Module, Debug)]
pub struct Downsample<B: Backend> {
    pub conv: Conv2d<B>,
    pub norm: Norm<B>,
}

impl<B: Backend> Downsample<B> {
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        self.norm.forward(self.conv.forward(x))
    }
}

/// The residual path: the projection when the block has one, the input itself otherwise.
fn shortcut<B: Backend>(downsample: Option<&Downsample<B>>, x: &Tensor<B, 4>) -> Tensor<B, 4> {
    match downsample {
        Some(down) => down.forward(x.clone()),
        None => x.clone(),
    }
}

/// What one block is made of: its kinds and its place in the network.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BlockSpec {
    pub conv: ConvKind,
    pub norm: NormKind,
    pub in_channels: usize,
    pub planes: usize,
    pub stride: usize,
    /// Bottleneck: the 3×3's channels, `floor(planes·base_width/64)·groups`; two-path: each
    /// path's width.
    pub width: usize,
    /// Channels out of the block (`planes · expansion` in a ResNet; DLA's blocks give `planes`).
    pub out_channels: usize,
    /// Build the projection shortcut when the shape changes (DLA passes its residual in instead).
    pub shortcut: bool,
    pub groups: usize,
    pub zero_init_residual: bool,
    /// Two-path block only: whether the second path runs at half resolution (`elastic.md` §2.1).
    pub elastic: bool,
    /// Squeeze-and-excitation: after the merged norm (two-path block, [`SeLayer`]) or after
    /// `bn3` (bottleneck, [`SeModule`]).
    pub se: bool,
    /// Bottleneck SE only: inputs appended to the SE's hidden vector after its ReLU (SAKE's
    /// domain bit, `sake.md` §2.2: 1; plain SE: 0).
    pub se_condition: usize,
    /// Bottleneck only: the stride on the first 1×1 (Caffe layout), not on the 3×3.
    pub stride_in_1x1: bool,
    /// Dilation (and padding) of the bottleneck's 3×3 convolution (DeepLab's dilated last stage).
    pub dilation: usize,
}

impl BlockSpec {
    fn downsample<B: Backend>(
        &self,
        out_channels: usize,
        device: &B::Device,
    ) -> Option<Downsample<B>> {
        (self.shortcut && (self.stride != 1 || self.in_channels != out_channels)).then(|| {
            Downsample {
                conv: self
                    .conv
                    .conv(self.in_channels, out_channels, 1)
                    .with_stride(self.stride)
                    .init(device),
                norm: self.norm.init(out_channels, device),
            }
        })
    }

    /// The norm that ends the residual branch, zeroed when the preset asks for it.
    fn last_norm<B: Backend>(&self, channels: usize, device: &B::Device) -> Norm<B> {
        let norm = self.norm.init(channels, device);
        if self.zero_init_residual {
            norm.zero_init_scale()
        } else {
            norm
        }
    }
}

/// Two 3×3 convolutions (ResNet-18/34), expansion 1.
#[derive(Module, Debug)]
pub struct BasicBlock<B: Backend> {
    pub conv1: Conv2d<B>,
    pub bn1: Norm<B>,
    pub conv2: Conv2d<B>,
    pub bn2: Norm<B>,
    pub downsample: Option<Downsample<B>>,
}

/// 1×1 reduce, 3×3 (grouped for ResNeXt), 1×1 expand ×4 (ResNet-50 and up, ResNeXt).
#[derive(Module, Debug)]
pub struct Bottleneck<B: Backend> {
    pub conv1: Conv2d<B>,
    pub bn1: Norm<B>,
    pub conv2: Conv2d<B>,
    pub bn2: Norm<B>,
    pub conv3: Conv2d<B>,
    pub bn3: Norm<B>,
    pub se_module: Option<SeModule<B>>,
    pub downsample: Option<Downsample<B>>,
}

/// Squeeze-and-excitation of Cadene's SE-ResNets (`resnet-family.md` §2.3) and SAKE's
/// conditional form (`sake.md` §2.2), as linear layers (checkpoint keys `se_module.fc1/fc2`; the
/// ImageNet files' 1×1 convolutions are squeezed on import):
/// `g = sigmoid(fc2(concat(relu(fc1(mean_HW x)), condition)))`, `out = x · g`.
#[derive(Module, Debug)]
pub struct SeModule<B: Backend> {
    /// `C → C/16`, with bias.
    pub fc1: Linear<B>,
    /// `C/16 + condition → C`, with bias; the condition's weights are the last inputs.
    pub fc2: Linear<B>,
}

impl<B: Backend> SeModule<B> {
    pub fn new(channels: usize, condition: usize, device: &B::Device) -> Self {
        let hidden = channels / 16;
        Self {
            fc1: LinearConfig::new(channels, hidden).init(device),
            fc2: LinearConfig::new(hidden + condition, channels).init(device),
        }
    }

    /// Inputs fc2 takes beyond the hidden vector (SAKE's domain bit: 1).
    pub fn condition_size(&self) -> usize {
        self.fc2.weight.dims()[0] - self.fc1.weight.dims()[1]
    }

    /// The gate `[B, C]` of squeezed input `s` `[B, C]`: `sigmoid(fc2([relu(fc1(s)), c]))`.
    pub fn gate(&self, squeezed: Tensor<B, 2>, condition: Option<Tensor<B, 2>>) -> Tensor<B, 2> {
        let hidden = relu(self.fc1.forward(squeezed)); // [B, C/16]
        let hidden = match (self.condition_size(), condition) {
            (0, _) => hidden,
            (_, Some(c)) => Tensor::cat(vec![hidden, c], 1), // [B, C/16 + k], the bit last
            (k, None) => panic!("a conditional SE module needs its {k}-value condition"),
        };
        sigmoid(self.fc2.forward(hidden))
    }

    /// `x [B, C, H, W]` scaled per channel by the gate of its spatial mean.
    pub fn forward(&self, x: Tensor<B, 4>, condition: Option<Tensor<B, 2>>) -> Tensor<B, 4> {
        let [n, c, h, w] = x.dims();
        let squeezed = x.clone().reshape([n, c, h * w]).mean_dim(2).reshape([n, c]);
        x * self.gate(squeezed, condition).reshape([n, c, 1, 1])
    }

    /// This module with `extra` more condition inputs whose fc2 weights are zero, so its output
    /// is unchanged whatever the condition (`sake.md` §2.2: SE-ResNet → CSE-ResNet).
    pub fn conditioned(self, extra: usize) -> Self {
        let weight = self.fc2.weight.val(); // [in, out] (burn's layout)
        let [_, out] = weight.dims();
        let device = weight.device();
        let widened = Tensor::cat(vec![weight, Tensor::zeros([extra, out], &device)], 0);
        // A new leaf parameter (on an autodiff backend the concatenation is not one).
        let fc2 = Linear {
            weight: burn::module::Param::from_data(widened.into_data(), &device),
            bias: self.fc2.bias,
        };
        Self { fc1: self.fc1, fc2 }
    }
}

// Blocks are built once per network; boxing the larger variant buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum ResidualBlock<B: Backend> {
    Basic(BasicBlock<B>),
    Bottleneck(Bottleneck<B>),
    TwoPath(TwoPathBottleneck<B>),
}

/// ELASTIC's squeeze-and-excitation (`elastic.md` §2.1, `Selayer`): global average →
/// 1×1 conv (C → C/16, bias) → ReLU → 1×1 conv (→ C, bias) → sigmoid → channel scale.
#[derive(Module, Debug)]
pub struct SeLayer<B: Backend> {
    pub conv1: Conv2d<B>,
    pub conv2: Conv2d<B>,
}

impl<B: Backend> SeLayer<B> {
    pub fn new(channels: usize, device: &B::Device) -> Self {
        let conv = |i, o| {
            core_norm::Conv2dConfig::new(i, o, 1)
                .with_bias(true)
                .init(device)
        };
        Self {
            conv1: conv(channels, channels / 16),
            conv2: conv(channels / 16, channels),
        }
    }

    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let [n, c, h, w] = x.dims();
        let squeezed = x
            .clone()
            .reshape([n, c, h * w])
            .mean_dim(2)
            .reshape([n, c, 1, 1]);
        let gate = sigmoid(self.conv2.forward(relu(self.conv1.forward(squeezed))));
        x * gate
    }
}

/// ELASTIC's two-path ResNeXt bottleneck (Wang et al., CVPR 2019; `elastic.md` §2.1,
/// `resnet-family.md` §2.4), expansion 4. Two paths of width `p` with half the cardinality each;
/// the `_d` path runs at half resolution when the block is elastic; the paths' 1×1 outputs are
/// summed and normalised by one `bn3`, then the optional SE, the residual and ReLU. Not elastic,
/// it is a ResNeXt 32×4d block (same parameters) in the official two-path key layout.
#[derive(Module, Debug)]
pub struct TwoPathBottleneck<B: Backend> {
    pub conv1_d: Conv2d<B>,
    pub bn1_d: Norm<B>,
    pub conv2_d: Conv2d<B>,
    pub bn2_d: Norm<B>,
    pub conv3_d: Conv2d<B>,
    pub conv1: Conv2d<B>,
    pub bn1: Norm<B>,
    pub conv2: Conv2d<B>,
    pub bn2: Norm<B>,
    pub conv3: Conv2d<B>,
    pub bn3: Norm<B>,
    pub selayer: Option<SeLayer<B>>,
    pub downsample: Option<Downsample<B>>,
    pub elastic: bool,
}

impl<B: Backend> BasicBlock<B> {
    pub const EXPANSION: usize = 1;

    pub(crate) fn new(spec: &BlockSpec, device: &B::Device) -> Self {
        let out = spec.planes * Self::EXPANSION;
        Self {
            conv1: spec
                .conv
                .conv(spec.in_channels, spec.planes, 3)
                .with_stride(spec.stride)
                .with_padding(1)
                .init(device),
            bn1: spec.norm.init(spec.planes, device),
            conv2: spec
                .conv
                .conv(spec.planes, out, 3)
                .with_padding(1)
                .init(device),
            bn2: spec.last_norm(out, device),
            downsample: spec.downsample(out, device),
        }
    }

    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let shortcut = shortcut(self.downsample.as_ref(), &x);
        let out = relu(self.bn1.forward(self.conv1.forward(x)));
        let out = self.bn2.forward(self.conv2.forward(out));
        relu(out + shortcut)
    }
}

impl<B: Backend> Bottleneck<B> {
    pub const EXPANSION: usize = 4;

    pub(crate) fn new(spec: &BlockSpec, device: &B::Device) -> Self {
        let (width, out) = (spec.width, spec.out_channels);
        let (stride_1x1, stride_3x3) = if spec.stride_in_1x1 {
            (spec.stride, 1)
        } else {
            (1, spec.stride)
        };
        Self {
            conv1: spec
                .conv
                .conv(spec.in_channels, width, 1)
                .with_stride(stride_1x1)
                .init(device),
            bn1: spec.norm.init(width, device),
            conv2: spec
                .conv
                .conv(width, width, 3)
                .with_stride(stride_3x3)
                .with_padding(spec.dilation)
                .with_dilation(spec.dilation)
                .with_groups(spec.groups)
                .init(device),
            bn2: spec.norm.init(width, device),
            conv3: spec.conv.conv(width, out, 1).init(device),
            bn3: spec.last_norm(out, device),
            se_module: spec
                .se
                .then(|| SeModule::new(out, spec.se_condition, device)),
            downsample: spec.downsample(out, device),
        }
    }

    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        self.forward_conditioned(x, None)
    }

    /// The block with its SE module's condition `[B, k]` (SAKE's domain bit).
    pub fn forward_conditioned(
        &self,
        x: Tensor<B, 4>,
        condition: Option<Tensor<B, 2>>,
    ) -> Tensor<B, 4> {
        let shortcut = shortcut(self.downsample.as_ref(), &x);
        let out = self.residual_branch(x, condition);
        relu(out + shortcut)
    }

    /// The block with the residual given (DLA's trees compute it from their pooled input).
    pub fn forward_with_residual(&self, x: Tensor<B, 4>, residual: Tensor<B, 4>) -> Tensor<B, 4> {
        relu(self.residual_branch(x, None) + residual)
    }

    fn residual_branch(&self, x: Tensor<B, 4>, condition: Option<Tensor<B, 2>>) -> Tensor<B, 4> {
        let out = relu(self.bn1.forward(self.conv1.forward(x))); // [B, w, H, W]
        let out = relu(self.bn2.forward(self.conv2.forward(out))); // [B, w, H/s, W/s]
        let out = self.bn3.forward(self.conv3.forward(out)); // [B, 4p, H/s, W/s]
        match &self.se_module {
            Some(se) => se.forward(out, condition),
            None => out,
        }
    }
}

impl<B: Backend> TwoPathBottleneck<B> {
    pub const EXPANSION: usize = 4;

    pub(crate) fn new(spec: &BlockSpec, device: &B::Device) -> Self {
        let (p, out) = (spec.width, spec.out_channels);
        let path = || {
            (
                spec.conv.conv(spec.in_channels, p, 1).init(device),
                spec.norm.init(p, device),
                spec.conv
                    .conv(p, p, 3)
                    .with_stride(spec.stride)
                    .with_padding(spec.dilation)
                    .with_dilation(spec.dilation)
                    .with_groups(spec.groups / 2)
                    .init(device),
                spec.norm.init(p, device),
                spec.conv.conv(p, out, 1).init(device),
            )
        };
        let (conv1_d, bn1_d, conv2_d, bn2_d, conv3_d) = path();
        let (conv1, bn1, conv2, bn2, conv3) = path();
        Self {
            conv1_d,
            bn1_d,
            conv2_d,
            bn2_d,
            conv3_d,
            conv1,
            bn1,
            conv2,
            bn2,
            conv3,
            bn3: spec.last_norm(out, device),
            selayer: spec.se.then(|| SeLayer::new(out, device)),
            downsample: spec.downsample(out, device),
            elastic: spec.elastic,
        }
    }

    /// The two paths' outputs before they are summed, both at the input's resolution:
    /// `(conv3(x), up(conv3_d(down(x))))` — ELASTIC's scale policy is their balance.
    pub fn forward_paths(&self, x: Tensor<B, 4>) -> (Tensor<B, 4>, Tensor<B, 4>) {
        let [_, _, h, w] = x.dims();
        let half = if self.elastic {
            crate::resample::elastic_down(x.clone())
        } else {
            x.clone()
        };
        let half = relu(self.bn1_d.forward(self.conv1_d.forward(half)));
        let half = relu(self.bn2_d.forward(self.conv2_d.forward(half)));
        let half = self.conv3_d.forward(half);
        let half = if self.elastic {
            crate::resample::elastic_up(half, [h, w])
        } else {
            half
        };
        let full = relu(self.bn1.forward(self.conv1.forward(x)));
        let full = relu(self.bn2.forward(self.conv2.forward(full)));
        (self.conv3.forward(full), half)
    }

    /// The merged, not yet normalised output `conv3(x) + up(conv3_d(down(x)))` (§8.3 checks it).
    pub fn forward_merged(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let (full, half) = self.forward_paths(x);
        full + half
    }

    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let shortcut = shortcut(self.downsample.as_ref(), &x);
        self.forward_with_residual(x, shortcut)
    }

    /// The block with the residual given (DLA's trees compute it from their pooled input).
    pub fn forward_with_residual(&self, x: Tensor<B, 4>, residual: Tensor<B, 4>) -> Tensor<B, 4> {
        let out = self.bn3.forward(self.forward_merged(x));
        let out = match &self.selayer {
            Some(se) => se.forward(out),
            None => out,
        };
        relu(out + residual)
    }
}

impl<B: Backend> ResidualBlock<B> {
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        self.forward_conditioned(x, None)
    }

    /// The block with a condition for its SE module (bottlenecks only; others ignore it).
    pub fn forward_conditioned(
        &self,
        x: Tensor<B, 4>,
        condition: Option<Tensor<B, 2>>,
    ) -> Tensor<B, 4> {
        match self {
            ResidualBlock::Basic(block) => block.forward(x),
            ResidualBlock::Bottleneck(block) => block.forward_conditioned(x, condition),
            ResidualBlock::TwoPath(block) => block.forward(x),
        }
    }
}
